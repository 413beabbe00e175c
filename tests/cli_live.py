"""The `portal` script run as people and scripts run it: the installed script in its
own process, against a live portal (gunicorn and a db_worker on the test database) or
against a stand-in server on 127.0.0.1 that answers what a misplaced front end would."""

import os
import pty
import select
import struct
import subprocess
import sys
import termios
import threading
from contextlib import contextmanager
from fcntl import ioctl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from django_tasks_db.models import DBTaskResult

from tests.live import Gunicorn, start_worker, stop

PORTAL = Path(sys.executable).parent / "portal"


@contextmanager
def live_portal(folder, env):
    """gunicorn and a db_worker with the environment ``env`` (from subprocess_env);
    yields the portal's URL. The gunicorn log must hold no traceback when it stops."""
    server = Gunicorn(folder / "gunicorn.log", workers=2, threads=4, env=env)
    worker = None
    try:
        server.start()
        worker = start_worker(folder / "worker.log", env=env)
        yield f"http://127.0.0.1:{server.port}"
    finally:
        stop(worker)
        server.stop()
        log = server.log()
        assert "Traceback" not in log, log[-3000:]


def portal_env(**values):
    """This process's environment for the script, without Django's settings."""
    env = dict(os.environ, COLUMNS="200")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update({key: str(value) for key, value in values.items()})
    return env


def run_portal(*args, env, stdin=None, timeout=60):
    """`portal ARGS...`: (exit code, stdout, stderr). ``stdin`` is text to pipe in;
    without it standard input is empty and not a terminal."""
    result = subprocess.run(
        [str(PORTAL), *args],
        env=env,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, result.stdout, result.stderr


def run_in_terminal(*args, env, columns=80, timeout=60):
    """`portal ARGS...` with stdout and stderr on a terminal ``columns`` wide: (exit
    code, what the terminal received, with CR LF read as LF)."""
    controller, terminal = pty.openpty()
    ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {key: value for key, value in env.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        [str(PORTAL), *args],
        env=dict(env, TERM="xterm-256color"),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    received = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], timeout)
            if not ready:
                raise TimeoutError(received.decode(errors="replace"))
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            received += chunk
        code = process.wait(timeout=timeout)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return code, received.decode().replace("\r\n", "\n")


def idle():
    """The worker has nothing queued or running."""
    return not (DBTaskResult.objects.ready().exists() or DBTaskResult.objects.running().exists())


@contextmanager
def stand_in(status, body, headers=()):
    """A server on 127.0.0.1 that answers every request with ``status``, ``headers``
    and ``body`` (what a sign-in front end or a proxy's error page would); yields its
    URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        do_POST = do_DELETE = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
