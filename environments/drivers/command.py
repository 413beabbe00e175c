"""The command driver: runs configured argument lists, never through a shell.

An environment's entry in the driver configuration file (``environments.drivers.config``)
names the commands::

    {
      "driver": "command",
      "restart": {"aos": [...], "dixf": [...], "mr": [...]},
      "health": {"aos": [...], "dixf": [...], "mr": [...]},
      "maintenance_on": [...],
      "maintenance_off": [...],
      "maintenance_health": [...],
      "timeout": 30,
      "health_interval": 1,
      "health_timeout": 1,
      "output_limit": 16384,
      "cwd": "/srv/erp"
    }

``restart`` and ``health`` may also be one argument list for every service. Arguments
may hold placeholders: ``{service}`` (aos, dixf or mr), ``{environment}`` (the slug),
``{maintenance}`` (on or off) and ``{since}`` (the ISO time the action began, so a
health check can insist on a process started after it); other braces are left alone.

Every command runs with a timeout (never past the operation's deadline) and keeps
the first and last ``output_limit / 2`` bytes of stdout and of stderr in the log, saying
how much it cut. After a restart, and after turning maintenance mode on or off, the
health check runs once a step, every ``health_interval`` seconds, each time for at most
``health_timeout`` (no longer than the interval), until it passes or the operation's
deadline passes; only then does the action count as done. No step waits: between two
checks the worker drives other operations.

The same ``health`` commands keep the services table true between operations: a
periodic task (environments.operations.health) runs each service's check once, for at
most ``health_timeout``, with ``{since}`` the Unix epoch (no action began: any process
that answers counts), and stores its answer as the service's last known state.
"""

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from environments.drivers.base import Driver, DriverError, Health, Later

DEFAULT_TIMEOUT = 30.0
DEFAULT_HEALTH_INTERVAL = 1.0
DEFAULT_OUTPUT_LIMIT = 16 * 1024
#: Characters of a failed command's stderr quoted in the operation's error.
ERROR_TAIL = 800
#: Seconds a timed-out command gets between SIGTERM and SIGKILL.
STOP_GRACE = 2.0
#: ``{since}`` of a periodic health check, which follows no action: any process counts.
EPOCH = "1970-01-01T00:00:00+00:00"
#: Characters of a periodic check's answer kept with the service.
HEALTH_DETAIL = 300

SETTINGS = frozenset(
    {
        "driver",
        "restart",
        "health",
        "maintenance_on",
        "maintenance_off",
        "maintenance_health",
        "timeout",
        "health_interval",
        "health_timeout",
        "output_limit",
        "cwd",
    }
)


class BoundedOutput:
    """One stream of a command: its first and last bytes up to ``limit`` in all, and
    how many bytes were cut between them."""

    def __init__(self, name, limit):
        self.name = name
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.size = 0

    def feed(self, chunk):
        self.size += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    @property
    def cut(self):
        return self.size - len(self.head) - len(self.tail)

    @property
    def text(self):
        head = self.head.decode(errors="replace")
        tail = self.tail.decode(errors="replace")
        if not self.cut:
            return head + tail
        return (
            f"{head}\n[cut {self.cut} bytes of {self.name} here: {self.size} bytes in all, "
            f"kept the first {len(self.head)} and the last {len(self.tail)}]\n{tail}"
        )

    def ending(self, chars=ERROR_TAIL):
        """The last ``chars`` characters, for an error message."""
        text = self.tail.decode(errors="replace") if self.cut else self.text
        text = text.strip()
        if len(text) > chars:
            return "..." + text[-chars:]
        return text


@dataclass
class Result:
    argv: list
    timeout: float
    stdout: BoundedOutput
    stderr: BoundedOutput
    returncode: int | None = None
    seconds: float = 0.0
    timed_out: bool = False
    start_error: str = ""

    @property
    def ok(self):
        return self.returncode == 0 and not self.timed_out

    @property
    def command(self):
        return shlex.join(self.argv)

    def outcome(self):
        """How it ended, in a few words: "exited with status 1"."""
        if self.start_error:
            return f"could not be started: {self.start_error}"
        if self.timed_out:
            return f"did not finish within {round(self.timeout, 2):g} s and was stopped"
        if self.returncode < 0:
            try:
                signame = signal.Signals(-self.returncode).name
            except ValueError:
                signame = f"signal {-self.returncode}"
            return f"was ended by {signame}"
        return f"exited with status {self.returncode}"

    def problem(self):
        """How it failed, with the tail of stderr (or of stdout when stderr is empty)."""
        tail = self.stderr.ending() or self.stdout.ending()
        return f"{self.outcome()}: {tail}" if tail else self.outcome()


def run_command(argv, *, timeout, cwd=None, output_limit=DEFAULT_OUTPUT_LIMIT):
    """Run ``argv`` without a shell, in its own process group, for at most ``timeout``
    seconds; a command still running then is stopped with its whole group."""
    result = Result(
        argv=list(argv),
        timeout=timeout,
        stdout=BoundedOutput("stdout", output_limit),
        stderr=BoundedOutput("stderr", output_limit),
    )
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            shell=False,
            start_new_session=True,
        )
    except OSError as exc:
        result.start_error = exc.strerror or str(exc)
        return result
    readers = [
        threading.Thread(target=_drain, args=(process.stdout, result.stdout), daemon=True),
        threading.Thread(target=_drain, args=(process.stderr, result.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        result.timed_out = True
        _stop_group(process)
    result.returncode = process.returncode
    # A process the command left behind may hold its pipes open; its output is not
    # worth waiting for.
    for reader in readers:
        reader.join(timeout=STOP_GRACE)
    result.seconds = time.monotonic() - started
    return result


def _drain(pipe, output):
    with pipe:
        while chunk := pipe.read1(64 * 1024):
            output.feed(chunk)


def _stop_group(process):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # The leader is gone; anything of its group that ignored SIGTERM is not.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        return


def _fill(argument, values):
    for name, value in values.items():
        argument = argument.replace("{" + name + "}", value)
    return argument


class CommandDriver(Driver):
    name = "command"

    def __init__(self, environment, log, *, deadline=None, config=None, memo=None):
        super().__init__(environment, log, deadline=deadline, config=config, memo=memo)
        if self.deadline is None:
            self.deadline = timezone.now() + timedelta(seconds=settings.OPERATION_DEADLINE_SECONDS)
        unknown = sorted(set(self.config) - SETTINGS)
        if unknown:
            raise DriverError(
                f"Unknown setting {', '.join(map(repr, unknown))} in {self._where}; "
                f"the command driver knows {', '.join(sorted(SETTINGS))}."
            )
        self.timeout = self._positive("timeout", DEFAULT_TIMEOUT, "seconds")
        self.health_interval = self._positive("health_interval", DEFAULT_HEALTH_INTERVAL, "seconds")
        self.health_timeout = self._positive("health_timeout", self.health_interval, "seconds")
        if self.health_timeout > self.health_interval:
            raise DriverError(
                f'"health_timeout" in {self._where} must be at most "health_interval" '
                f"({self.health_interval:g} s): a check may not outlast the wait between two."
            )
        self.output_limit = int(self._positive("output_limit", DEFAULT_OUTPUT_LIMIT, "bytes"))
        self.cwd = self.config.get("cwd") or None
        if self.cwd is not None and not os.path.isdir(self.cwd):
            raise DriverError(f'"cwd" in {self._where} is not a directory: {self.cwd}.')

    # --- The driver's actions, a step at a time ---------------------------------------

    def restart_service(self, service_kind, step="act"):
        code = service_kind.upper()
        name = self.environment.name
        values = self._values(service=service_kind)
        health = self._argv("health", service_kind, "health check")
        if step == "act":
            restart = self._argv("restart", service_kind, "restart command")
            self._run(f"Restarting {code} on {name}", restart, values)
            return self._first_check(code, health, values)
        return self._check_health(code, f"{code} on {name}", health, values)

    def set_maintenance_mode(self, enabled, step="act"):
        state = "on" if enabled else "off"
        name = self.environment.name
        values = self._values(maintenance=state)
        health = self._argv("maintenance_health", None, "maintenance health check")
        subject = f"maintenance mode {state}"
        if step == "act":
            command = self._argv(f"maintenance_{state}", None, f"maintenance {state} command")
            self._run(f"Turning maintenance mode {state} in {name}", command, values)
            return self._first_check(subject, health, values)
        return self._check_health(subject, f"{name} (maintenance mode {state})", health, values)

    def has_health_check(self, service_kind):
        health = self.config.get("health")
        if isinstance(health, dict):
            return health.get(service_kind) is not None
        return health is not None

    def check_service(self, service_kind):
        template = self._argv("health", service_kind, "health check")
        values = {"service": service_kind, "environment": self.environment.slug, "since": EPOCH}
        argv = [_fill(argument, values) for argument in template]
        result = run_command(
            argv, timeout=self.health_timeout, cwd=self.cwd, output_limit=self.output_limit
        )
        if result.ok:
            return Health(ok=True, detail=result.stdout.ending(HEALTH_DETAIL))
        return Health(ok=False, detail=result.problem()[:HEALTH_DETAIL])

    # --- Running commands -------------------------------------------------------------

    def _run(self, what, template, values):
        """Run one command; ``what`` ("Restarting AOS on X") heads its error."""
        argv = [_fill(argument, values) for argument in template]
        remaining = self._remaining()
        if remaining <= 0:
            raise DriverError(
                f"{what}: the operation's deadline passed before `{shlex.join(argv)}` could run."
            )
        self.log.write(f"$ {shlex.join(argv)}")
        result = self._command(argv, remaining)
        self._log_result(result)
        if not result.ok:
            raise DriverError(f"{what} failed: `{result.command}` {result.problem()}")
        return result

    def _first_check(self, subject, template, values):
        argv = [_fill(argument, values) for argument in template]
        self.log.write(
            f"Health check of {subject}, every {self.health_interval:g} s until it passes or "
            f"the deadline at {timezone.localtime(self.deadline):%H:%M:%S %Z}: "
            f"$ {shlex.join(argv)}"
        )
        return Later("health", 0)

    def _check_health(self, subject, who, template, values):
        """Run the health check once: None when it passed, else the next check; fail when
        the deadline passes first.

        ``subject`` names the check in the log ("AOS"), ``who`` in the error
        ("AOS on Local sandbox").
        """
        argv = [_fill(argument, values) for argument in template]
        attempts = self.memo.get("attempts", 0)
        remaining = self._remaining()
        since = (timezone.now() - datetime.fromisoformat(values["since"])).total_seconds()
        if remaining <= 0:
            raise DriverError(
                f"{who} did not pass its health check before the operation's deadline "
                f"({attempts} attempts in {since:.1f} s). The last `{shlex.join(argv)}` "
                f"{self.memo.get('last_problem', 'never ran')}"
            )
        attempts += 1
        self.memo["attempts"] = attempts
        timeout = min(self.health_timeout, remaining)
        result = run_command(argv, timeout=timeout, cwd=self.cwd, output_limit=self.output_limit)
        since = (timezone.now() - datetime.fromisoformat(values["since"])).total_seconds()
        if result.ok:
            self.log.write(
                f"Health check of {subject} passed (attempt {attempts}, {since:.1f} s after "
                "the action began)"
            )
            self._log_output(result)
            return None
        if result.timed_out and timeout < self.health_timeout and "last_problem" in self.memo:
            # A check the deadline cut short says nothing about the service: the error
            # keeps what the last whole check found ("does not answer"), not "0.01 s".
            return self._next_check()
        # A check that keeps failing the same way is logged once, not every time.
        problem = result.problem()
        if problem != self.memo.get("last_problem"):
            self.log.write(
                f"Health check of {subject} not passed yet (attempt {attempts}): {problem}"
            )
            self.memo["last_problem"] = problem
        return self._next_check()

    def _next_check(self):
        # At the deadline at the latest, so that this driver says why the check did not
        # pass, before the watchdog fails the operation knowing nothing.
        return Later("health", max(0, min(self.health_interval, self._remaining())))

    def _command(self, argv, remaining):
        return run_command(
            argv,
            timeout=min(self.timeout, remaining),
            cwd=self.cwd,
            output_limit=self.output_limit,
        )

    def _log_result(self, result, prefix=""):
        self.log.write(f"{prefix}{result.outcome()} ({result.seconds:.1f} s)")
        self._log_output(result)

    def _log_output(self, result):
        for output in (result.stdout, result.stderr):
            if output.size:
                text = output.text.rstrip("\n")
                self.log.write(
                    f"{output.name}:\n" + "\n".join(f"  {line}" for line in text.split("\n"))
                )

    # --- Configuration ------------------------------------------------------------------

    @property
    def _where(self):
        return f"the entry for {self.environment.slug} in {settings.PORTAL_DRIVERS_FILE}"

    def _values(self, **values):
        # {since} is the moment the action began, the same in every step.
        since = self.memo.setdefault("since", timezone.now().isoformat())
        values.update(environment=self.environment.slug, since=since)
        return values

    def _remaining(self):
        return (self.deadline - timezone.now()).total_seconds()

    def _positive(self, key, default, unit):
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise DriverError(f'"{key}" in {self._where} must be a positive number of {unit}.')
        return value

    def _argv(self, key, service_kind, description):
        value = self.config.get(key)
        name = f'"{key}"'
        if isinstance(value, dict) and service_kind is not None:
            value = value.get(service_kind)
            name = f'"{key}" → "{service_kind}"'
        subject = f"{service_kind.upper()} " if service_kind else ""
        if value is None:
            raise DriverError(
                f"No {subject}{description} is configured for {self.environment.name}: "
                f"set {name} in {self._where}."
            )
        if not (isinstance(value, list) and value and all(isinstance(a, str) for a in value)):
            raise DriverError(
                f"{name} in {self._where} must be a non-empty list of strings "
                f"(an argument list, run without a shell)."
            )
        return value
