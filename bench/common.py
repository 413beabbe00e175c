"""What the benchmark's parts share: the database, the portal's processes, wrk."""

import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
VAR_DIR = BASE_DIR / "var" / "bench"
SERVER_URL = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- PostgreSQL -----------------------------------------------------------------------


def database_url(name):
    return f"{SERVER_URL}/{name}"


def create_database(name, *, fresh=False, template=None):
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = False
        if not exists:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    return database_url(name)


def query(url, sql, params=()):
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def postgres_version():
    return query(database_url("postgres"), "SHOW server_version")[0][0]


# --- The portal's settings and processes ---------------------------------------------


def portal_env(url, secret_key=None, **overrides):
    """Production settings (DEBUG off, a real SECRET_KEY), plain HTTP on loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="lcs_portal.settings",
        DEBUG="0",
        SECRET_KEY=secret_key or secrets.token_urlsafe(50),
        PORTAL_TLS="0",
        DATABASE_URL=url,
        PORTAL_VAR_DIR=str(VAR_DIR / "var"),
        PORTAL_BENCH_VIEWS="1",
        PORTAL_LOCAL_SANDBOX="0",
        LOG_LEVEL="WARNING",
    )
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def manage(env, *args, capture=False):
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return result.stdout


def prepare(env):
    """Sign in scale-admin through the configured session store; the URLs to measure."""
    out = subprocess.run(
        [PYTHON, "-m", "bench.prepare"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        text=True,
        stdout=subprocess.PIPE,
    ).stdout
    return json.loads(out)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(env, *, workers, worker_class="sync", threads=1, timeout=30):
    """The portal under gunicorn on 127.0.0.1; yields (base URL, master process)."""
    port = free_port()
    command = [
        str(Path(PYTHON).parent / "gunicorn"),
        "lcs_portal.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--threads",
        str(threads),
        "--timeout",
        str(timeout),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/bench/bare/", timeout=2).read()  # noqa: S310
                break
            except OSError:  # refused, reset or timed out: not up yet
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield base, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def gunicorn_workers(env, **server):
    """gunicorn alone; yields (base URL, its workers' pids)."""
    with gunicorn(env, **server) as (base, master):
        yield base, children(master.pid)


@contextmanager
def run_portal(env):
    """`manage.py run_portal` as `make run` starts it (gunicorn, db_worker, watchdog);
    yields (base URL, the pids of its gunicorn workers)."""
    port = free_port()
    command = [PYTHON, "manage.py", "run_portal", "--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        command, cwd=BASE_DIR, env=env, start_new_session=True, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/bench/bare/", timeout=2).read()  # noqa: S310
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("run_portal did not start") from None
                time.sleep(0.2)
        masters = [
            pid
            for pid in children(process.pid)
            if "gunicorn" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        time.sleep(1)  # its workers are up
        yield base, [worker for master in masters for worker in children(master)]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def children(pid):
    """The child processes of pid (gunicorn's workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def cpu_seconds(pids):
    """User plus system CPU time of these processes so far, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def vm_hwm_kib(pid):
    """Peak resident memory of a process (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


# --- wrk ------------------------------------------------------------------------------


def ensure_wrk():
    if shutil.which("wrk"):
        return shutil.which("wrk")
    log("wrk is missing: installing Debian's package")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    return shutil.which("wrk")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(url, *, headers=(), duration=10, connections=8, threads=1):
    """Requests per second and p50/p99 latency (ms) of url, from wrk --latency."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    for header in headers:
        command += ["-H", header]
    out = subprocess.run(command + [url], check=True, text=True, capture_output=True).stdout
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
    }
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    result["non_2xx_3xx"] = int(bad.group(1)) if bad else 0
    result["socket_errors"] = errors.group(1) if errors else ""
    return result


def fetch(url, headers=None):
    """(status, headers, body) of one GET, without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (http only)
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# --- The machine ------------------------------------------------------------------------


def machine():
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    import django

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True
    ).stdout.strip()
    return {
        "commit": commit or "unknown",
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "postgresql": postgres_version(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "kernel": platform.release(),
    }
