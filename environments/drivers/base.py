"""The one interface every driver implements, and the log it writes to."""

from django.utils import timezone


class DriverError(Exception):
    """The driver could not do what was asked; the message says why, for the history."""


class OperationLog:
    """Timestamped lines of what a driver did, bounded so a chatty command cannot
    fill the database; when cut, the log says so."""

    def __init__(self, limit=64 * 1024):
        self.limit = limit
        self._parts = []
        self._size = 0
        self.truncated = False

    def write(self, line):
        entry = f"{timezone.now():%Y-%m-%d %H:%M:%S} {line.rstrip()}\n"
        room = self.limit - self._size
        if room <= 0:
            self.truncated = True
            return
        if len(entry) > room:
            entry = entry[:room]
            self.truncated = True
        self._parts.append(entry)
        self._size += len(entry)

    @property
    def text(self):
        text = "".join(self._parts)
        if self.truncated:
            text += f"[log cut at {self.limit} characters]\n"
        return text


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
