"""Run the portal: gunicorn, the task workers, the watchdog and the local sandbox's
supervisord together, stopped together."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections

from environments.demo.local_sandbox.supervisord import SERVICES, SLUG, LocalSandbox
from environments.drivers.simulated import read_failures
from environments.models import Environment

#: The task worker and the watchdog exit when they lose the database (django-tasks-db's
#: worker does not wait for it); they are started again, and work again once it is back.
RESTARTED = ("db_worker", "access_worker", "notify_worker", "watchdog", "sync_identity")
RESTART_DELAY = 2.0
#: What gunicorn listens on when --bind names no port.
GUNICORN_PORT = "8000"
#: Hosts that listen everywhere: no address to put in a link.
WILDCARD_HOSTS = ("0.0.0.0", "[::]", "")  # noqa: S104 (recognised, not bound)


def bind_address(bind):
    """(host, port) of a gunicorn --bind on TCP ("[::1]:8000" gives "[::1]"); None for a
    unix socket or a file descriptor."""
    if bind.startswith(("unix:", "fd://")):
        return None
    if ":" not in bind or bind.endswith("]"):
        return bind, GUNICORN_PORT
    host, _, port = bind.rpartition(":")
    return host, port


def links_address(bind, configured, default):
    """The address links in mails, webhook events and calendar feeds use
    (PORTAL_BASE_URL), and a warning for the console or "".

    ``configured`` is PORTAL_BASE_URL as its environment sets it (None when unset): it
    wins, with a warning when it differs from a concrete --bind (right behind a proxy,
    wrong otherwise). Unset, it is derived from a concrete --bind; a wildcard one
    (0.0.0.0) is no address to link to, so the default stays, with a warning.
    """
    address = bind_address(bind)
    concrete = address is not None and address[0] not in WILDCARD_HOSTS
    derived = f"http://{address[0]}:{address[1]}" if concrete else None
    if configured:
        configured = configured.rstrip("/")
        if derived and configured != derived:
            return configured, (
                f"Links in mails, webhook events and calendar feeds point at {configured} "
                f"(PORTAL_BASE_URL), not at {derived}, where the portal listens: right "
                "behind a proxy; otherwise set PORTAL_BASE_URL to the address people use."
            )
        return configured, ""
    if derived:
        return derived, ""
    return default, (
        f"The portal listens on {bind}, which is no address to link to: links in mails, "
        f"webhook events and calendar feeds point at {default}. Set PORTAL_BASE_URL to "
        "the address people use (e.g. http://portal.example:8000)."
    )


class Command(BaseCommand):
    help = (
        "Serve the portal with gunicorn and run the task workers (one for access and "
        "maintenance windows, one for mails and webhooks) and the "
        "watchdog beside it, and supervisord with the Local sandbox's services when that "
        "environment exists; Ctrl-C stops all."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--threads", type=int, default=4)
        parser.add_argument(
            "--access-log",
            action="store_true",
            help="Print a line for every request (the status polls make many).",
        )
        parser.add_argument(
            "--no-local-sandbox",
            action="store_false",
            dest="local_sandbox",
            help="Do not start the Local sandbox's supervisord (PORTAL_LOCAL_SANDBOX=0 too).",
        )

    def handle(self, *args, bind, workers, threads, access_log, local_sandbox, **options):
        # Only the portal's own deployment checks: Django's would flag the local demo.
        self.check(tags=["drivers"], include_deployment_checks=True)
        self.set_portal_address(bind)
        for problem in read_failures()[1]:
            self.stderr.write(f"Warning: {problem}")
        connections.close_all()
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        commands = {
            "gunicorn": [
                python,
                "-m",
                "gunicorn",
                "lcs_portal.wsgi",
                "--bind",
                bind,
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                *(["--access-logfile", "-"] if access_log else []),
                "--graceful-timeout",
                "5",
            ],
            "db_worker": self._worker(manage, "default"),
            # Ending access never waits behind a restart (settings.ACCESS_QUEUE).
            "access_worker": self._worker(manage, settings.ACCESS_QUEUE),
            # Mails and webhook events: a slow receiver never holds up an operation.
            "notify_worker": self._worker(manage, settings.NOTIFY_QUEUE),
            # The backstop for lost tasks: fails operations past their deadline and
            # ends access past its expiry, once a minute (WATCHDOG_LOOP_SECONDS).
            "watchdog": [python, manage, "watchdog", "--loop", str(settings.WATCHDOG_LOOP_SECONDS)],
        }
        if settings.OIDC_ISSUER:
            # Single sign-on users' groups, read again at the provider (docs/sso.md): a
            # process of its own, so a slow provider never delays the watchdog.
            loop = str(settings.OIDC_SYNC_SECONDS)
            commands["sync_identity"] = [python, manage, "sync_identity", "--loop", loop]
        sandbox = self._local_sandbox() if local_sandbox else None
        if sandbox is not None:
            # supervisord stops its services when it gets SIGTERM (or the terminal's SIGINT).
            commands["supervisord"] = sandbox.supervisord_command()
        children = {}
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, command in commands.items():
            children[name] = subprocess.Popen(command, cwd=settings.BASE_DIR, env=os.environ)
        self.stdout.write(
            f"Portal running on http://{bind}/ (Ctrl-C stops it); links in mails, webhook "
            f"events and calendar feeds point at {os.environ['PORTAL_BASE_URL']}."
        )
        if sandbox is not None:
            urls = ", ".join(f"{s.upper()} {sandbox.health_url(s)}" for s in SERVICES)
            self.stdout.write(f"Local sandbox under supervisord ({sandbox.conf_path}): {urls}")
        restart_at = {}
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is None:
                        continue
                    if name not in RESTARTED:
                        self.stderr.write(f"{name} exited with {child.returncode}; stopping.")
                        stopping = True
                    elif name not in restart_at:
                        self.stderr.write(
                            f"{name} exited with {child.returncode}; starting it again "
                            f"in {RESTART_DELAY:g} s."
                        )
                        restart_at[name] = time.monotonic() + RESTART_DELAY
                    elif time.monotonic() >= restart_at[name]:
                        del restart_at[name]
                        children[name] = subprocess.Popen(
                            commands[name], cwd=settings.BASE_DIR, env=os.environ
                        )
                time.sleep(0.3)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            deadline = time.monotonic() + 10
            for child in children.values():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        self.stdout.write(f"Stopped {', '.join(children)}.")

    def set_portal_address(self, bind):
        """Set PORTAL_BASE_URL (and, if need be, ALLOWED_HOSTS) for the processes it
        starts, which read them from their environment."""
        url, warning = links_address(
            bind, os.environ.get("PORTAL_BASE_URL"), settings.PORTAL_BASE_URL
        )
        if warning:
            self.stderr.write(f"Warning: {warning}")
        os.environ["PORTAL_BASE_URL"] = url
        address = bind_address(bind)
        host = address[0] if address else ""
        explicit = "ALLOWED_HOSTS" in os.environ
        if host not in (*WILDCARD_HOSTS, *settings.ALLOWED_HOSTS) and not explicit:
            # A page asked for at the address the portal listens on must not get 400.
            os.environ["ALLOWED_HOSTS"] = ",".join([*settings.ALLOWED_HOSTS, host])

    def _worker(self, manage, queue):
        worker = [sys.executable, manage, "db_worker", "--no-reload", "--interval", "0.5"]
        return [*worker, "--queue-name", queue]

    def _local_sandbox(self):
        """The Local sandbox to run, with its files written; None when there is none."""
        if not settings.PORTAL_LOCAL_SANDBOX:
            return None
        exists = Environment.objects.filter(slug=SLUG).exists()
        connections.close_all()
        if not exists:
            return None
        sandbox = LocalSandbox.from_settings()
        if sandbox.install() is not None:
            self.stderr.write(
                f"{settings.PORTAL_DRIVERS_FILE} is TOML: add the {SLUG} entry that "
                f"`manage.py local_sandbox` prints."
            )
        return sandbox
