"""The one interface every driver implements, and the log it writes to."""

from django.db import transaction
from django.utils import timezone

from environments.models import Environment, OperationLogLine


class DriverError(Exception):
    """The driver could not do what was asked; the message says why, for the history."""


class OperationLog:
    """What a driver did, a line at a time, each kept with its time.

    Given an operation, every line is written to the database the moment the driver
    writes it (an OperationLogLine, in a short transaction of its own, with the
    environment's revision), so the operation's page, the API and ``portal --wait``
    show progress while it runs. The worker runs the driver outside any transaction,
    so each line commits at once. Bounded so a chatty command cannot fill the
    database: past ``limit`` characters, one line says the log was cut.
    """

    def __init__(self, operation=None, limit=64 * 1024):
        self.operation = operation
        self.limit = limit
        self.lines = []  # (time, text), as written
        self._size = 0
        self.truncated = False

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
    """Acts on one environment. Every method either returns when the work is done and
    healthy, or raises DriverError with a message fit for the history.

    ``deadline`` (an aware datetime, or None) is the operation's: a driver that waits
    for something stops waiting there. ``config`` is the environment's entry in the
    driver configuration file (see ``environments.drivers.config``).
    """

    name = "base"

    def __init__(self, environment, log, *, deadline=None, config=None):
        self.environment = environment
        self.log = log
        self.deadline = deadline
        self.config = config or {}

    def restart_service(self, service_kind):
        raise NotImplementedError

    def set_maintenance_mode(self, enabled):
        raise NotImplementedError
