"""What the operations announce, sent inside their transaction: a receiver that fails
rolls the change back with it. environments.windows and environments.notify listen
(connected in EnvironmentsConfig.ready); operations never import them."""

from django.dispatch import Signal

#: A history row was written (``operation``, ``environment``): an operation started, or
#: a row written already finished (a role change).
operation_written = Signal()

#: An operation ended (``operation``, ``environment``): succeeded, failed, rolled back
#: or aborted.
operation_finished = Signal()
