"""The one interface every driver implements, and the log it writes to.

An action is a chain of short steps (environments.operations.core runs them): a driver
method does one step (run a command, check health once) and returns None when the action
is done, or ``Later(step, seconds)`` to be called again with that step. It never sleeps
or waits for a service, so one worker drives many operations at once.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from environments.models import Environment, OperationLogLine


class DriverError(Exception):
    """The driver could not do what was asked; the message says why, for the history."""


class TryAgain(DriverError):
    """A passing failure (a server that did not answer): the same step runs again after
    ``seconds``, a few times, before the action fails with this message."""

    def __init__(self, message, seconds):
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class Health:
    """One answer of a service's health check: up or not, and what it said (why not)."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Later:
    """Not done yet: the step named ``step`` runs after ``seconds``."""

    step: str
    seconds: float


class OperationLog:
    """What a driver did, a line at a time, each kept with its time.

    Given an operation, every line is written to the database the moment the driver
    writes it (an OperationLogLine, in a short transaction of its own, with the
    environment's revision), so the operation's page, the API and ``portal --wait``
    show progress while it runs. The worker runs the driver outside any transaction,
    so each line commits at once. Bounded so a chatty command cannot fill the
    database: past ``limit`` characters in all, one line says the log was cut.
    """

    def __init__(self, operation=None, limit=64 * 1024):
        self.operation = operation
        self.limit = limit
        self.lines = []  # (time, text), as written
        # The bound holds across the operation's steps: each step logs through a new one.
        self._size = operation.log_size() if operation is not None else 0
        self.truncated = self._size >= limit

    def write(self, line):
        if self.truncated:
            return
        now = timezone.now()
        text = line.rstrip()
        room = self.limit - self._size
        if len(text) > room:
            text = text[:room]
            self.truncated = True
        if text or not self.truncated:
            self._size += len(text)
            self._store(now, text)
        if self.truncated:
            self._store(now, f"[log cut at {self.limit} characters]")

    def _store(self, at, text):
        self.lines.append((at, text))
        if self.operation is None:
            return
        with transaction.atomic():
            OperationLogLine.objects.create(operation_id=self.operation.pk, at=at, text=text)
            Environment.objects.filter(pk=self.operation.environment_id).bump_revision()

    @property
    def text(self):
        return "".join(f"{at:%Y-%m-%d %H:%M:%S} {text}\n" for at, text in self.lines)


class Driver:
    """Acts on one environment, a step at a time. Each method does the step it is given
    ("act" first) and returns None when the action is done and healthy, ``Later`` for
    the next step, or raises DriverError with a message fit for the history.

    ``deadline`` (an aware datetime, or None) is the operation's: a driver stops asking
    for later steps there. ``memo`` is kept across the action's steps (values fixed at
    its start, attempts so far). ``config`` is the environment's entry in the driver
    configuration file (see ``environments.drivers.config``).
    """

    name = "base"

    def __init__(self, environment, log, *, deadline=None, config=None, memo=None):
        self.environment = environment
        self.log = log
        self.deadline = deadline
        self.config = config or {}
        self.memo = {} if memo is None else memo

    def restart_service(self, service_kind, step="act"):
        raise NotImplementedError

    def set_maintenance_mode(self, enabled, step="act"):
        raise NotImplementedError

    def has_health_check(self, service_kind):
        """Whether ``check_service`` can say if the service is up (a configured check)."""
        return False

    def check_service(self, service_kind):
        """Ask once, now, whether the service is up: a ``Health``. One short step, never
        longer than the driver's health timeout; called only when ``has_health_check``."""
        raise NotImplementedError
