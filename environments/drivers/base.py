"""The one interface every driver implements, and the log it writes to.

An action is a chain of short steps (environments.operations.core runs them): a driver
method does one step (run a command, check health once) and returns None when the action
is done, or ``Later(step, seconds)`` to be called again with that step. It never sleeps
or waits for a service, so one worker drives many operations at once.
"""

from dataclasses import dataclass

from django.utils import timezone


class DriverError(Exception):
    """The driver could not do what was asked; the message says why, for the history."""


class TryAgain(DriverError):
    """A passing failure (a server that did not answer): the same step runs again after
    ``seconds``, a few times, before the action fails with this message."""

    def __init__(self, message, seconds):
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class Later:
    """Not done yet: the step named ``step`` runs after ``seconds``."""

    step: str
    seconds: float


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
