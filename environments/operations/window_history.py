"""The history rows of maintenance windows scheduled and cancelled, written by
environments.windows in the transaction that changes the window. (A window's start and
end are Enable and Disable Maintenance mode operations of their own.)"""

from datetime import UTC

from django.utils import timezone

from environments.models import OperationKind
from environments.operations.core import write_record


def record_window_change(environment, window, user, kind, reason, *, now=None, via=""):
    """``kind``: SCHEDULE_WINDOW or CANCEL_WINDOW; ``environment``: the locked row."""
    if kind not in (OperationKind.SCHEDULE_WINDOW, OperationKind.CANCEL_WINDOW):
        raise ValueError(f"{kind} is not a change of a maintenance window")
    # The history is read in many time zones: its text names the period in UTC.
    with timezone.override(UTC):
        period = window.period_text
    return write_record(
        environment, user, kind, now, target=period, reason=reason, window=window, via=via
    )
