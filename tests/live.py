"""Real processes against the test database: gunicorn serving the portal, db_worker
running its tasks, and plain HTTP requests to them (no HTTP library beyond the
standard one)."""

import glob
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import subprocess_env


def free_port():
    return free_ports(1)[0]


def free_ports(count):
    """Ports free on 127.0.0.1 now, all different (the sockets are held until all bound)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def is_running(pid):
    """Whether the process is alive (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str
    seconds: float = 0.0

    def header(self, name):
        return self.headers.get(name)

    def cookies(self):
        """The Set-Cookie headers, by cookie name."""
        jar = SimpleCookie()
        for value in self.headers.get_all("Set-Cookie") or []:
            jar.load(value)
        return jar


def request(port, path, *, method="GET", headers=None, body=None, timeout=30):
    """One request that follows no redirect."""
    if isinstance(body, str):
        body = body.encode()
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        return Answer(response.status, response.headers, text, time.monotonic() - started)
    finally:
        connection.close()


@dataclass
class Session:
    """A signed-in browser, as far as the portal can tell: its cookies and CSRF token."""

    cookies: dict = field(default_factory=dict)
    csrf_token: str = ""

    @property
    def cookie_header(self):
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def headers(self, htmx=True, **extra):
        headers = {"Cookie": self.cookie_header, "X-CSRFToken": self.csrf_token}
        if htmx:
            headers["HX-Request"] = "true"
        headers.update(extra)
        return headers


def signed_in(port, user, page="/environments/"):
    """A Session for ``user`` (force_login in the shared test database), with the CSRF
    token a page of the portal hands out."""
    client = Client()
    client.force_login(user)
    session = Session(
        {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
    )
    answer = request(port, page, headers={"Cookie": session.cookie_header})
    assert answer.status == 200, answer.body[:500]
    for name, morsel in answer.cookies().items():
        session.cookies[name] = morsel.value
    match = re.search(r'"X-CSRFToken": "([^"]+)"', answer.body)
    assert match, "the page carries no CSRF token in hx-headers"
    session.csrf_token = match.group(1)
    return session


def post_form(session, port, path, data, *, htmx=True):
    from urllib.parse import urlencode

    return request(
        port,
        path,
        method="POST",
        body=urlencode(data, doseq=True),
        headers=session.headers(htmx, **{"Content-Type": "application/x-www-form-urlencoded"}),
    )


class Gunicorn:
    """gunicorn serving the portal on a free port of 127.0.0.1, in its own process group."""

    def __init__(self, log_path, *, workers=3, threads=8, env=None, port=None):
        self.port = port or free_port()
        self.log_path = Path(log_path)
        self.workers, self.threads = workers, threads
        self.env = env if env is not None else subprocess_env()
        self.process = None

    def start(self, timeout=30):
        self.env.setdefault("PORTAL_TLS", "0")
        self.env.setdefault("ALLOWED_HOSTS", "127.0.0.1")
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "lcs_portal.wsgi",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--threads",
                    str(self.threads),
                    "--graceful-timeout",
                    "10",
                ],
                env=self.env,
                cwd=settings.BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_answering(self.process, self.port, "/accounts/login/", self.log_path, timeout)
        return self

    def kill(self):
        """kill -9 the master and its workers (its process group), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self):
        stop(self.process)

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""


def wait_until_answering(process, port, path, log_path, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(
                f"{process.args[:3]} exited with {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            request(port, path, timeout=5)
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing answered on port {port} within {timeout} s:\n{log_path.read_text()}")


def start_worker(log_path, *, env=None, command="db_worker"):
    """A db_worker on the test database (or the database ``env`` names)."""
    with Path(log_path).open("a") as log:
        return subprocess.Popen(
            [
                sys.executable,
                str(settings.BASE_DIR / "manage.py"),
                command,
                "--no-reload",
                "--no-startup-delay",
                "--interval",
                "0.1",
                "--queue-name",
                "*",
            ],
            env=env if env is not None else subprocess_env(),
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop(process):
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_for(predicate, timeout=30, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def held_drivers(directory, slug):
    """Drivers for ``slug`` whose work goes on until the file ``release`` exists: the
    command driver (restart, maintenance mode) waits for it in its health check, the
    firewall command in a loop. Returns the file and the settings to pass to processes.
    A test touches ``release`` in its ``finally`` too, so nothing keeps waiting.
    """
    import json

    directory = Path(directory)
    release = directory / "release"
    release.unlink(missing_ok=True)  # an earlier test's, in the same folder
    wait_for_release = ["test", "-e", str(release)]
    drivers = directory / "drivers.json"
    drivers.write_text(
        json.dumps(
            {
                slug: {
                    "driver": "command",
                    "restart": ["true"],
                    "health": wait_for_release,
                    "maintenance_on": ["true"],
                    "maintenance_off": ["true"],
                    "maintenance_health": wait_for_release,
                    "health_interval": 0.05,
                }
            }
        )
    )
    settings_ = {
        "PORTAL_DRIVERS_FILE": drivers,
        "PORTAL_FIREWALL_DRIVER": "command",
        "PORTAL_FIREWALL_APPLY": json.dumps(
            # Bounded (two minutes), so that a test that fails never leaves it behind.
            [
                "sh",
                "-c",
                f"i=0; until [ -e '{release}' ]; do i=$((i+1)); [ $i -gt 2400 ] && exit 1; "
                "sleep 0.05; done",
            ]
        ),
        "PORTAL_FIREWALL_REMOVE": '["true"]',
    }
    return release, settings_


# --- A PostgreSQL cluster of a test's own -----------------------------------------------


def postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL's server binaries are missing (scripts/ensure-postgres)")
    return Path(found[-1]).parent


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port, run as
    the postgres user when the tests run as root (initdb refuses root)."""

    def __init__(self, *, password=None):
        """With ``password``, connections over TCP must give it (SCRAM-SHA-256)."""
        self.bin = postgres_bin()
        self.port = free_port()
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix="lcs-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")

    def run(self, *args):
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def init(self, database="portal"):
        auth = ["--auth=trust"]
        if self.password:
            pwfile = self.dir / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self.as_root:
                shutil.chown(pwfile, "postgres", "postgres")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        self.run("initdb", "-D", str(self.data), "-U", "postgres", *auth, "--no-sync")
        self.start()
        self.run("createdb", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", database)
        self.database = database

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self):
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self):
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self):
        secret = f":{self.password}" if self.password else ""
        return f"postgres://postgres{secret}@127.0.0.1:{self.port}/{self.database}"
