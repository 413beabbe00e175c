"""A local multi-host topology of the portal, started by one command:

    make cluster            (or: .venv/bin/python -m scripts.cluster --help)

Two portal "hosts", each a ``manage.py run_portal`` (gunicorn, the db_worker(s) and the
watchdog, stopped together) on a port of its own, with a state directory of its own
(PORTAL_VAR_DIR), so nothing is shared through the file system by accident; nginx in
front, round-robin between them with the proxy settings shipped for production
(deploy/nginx/lcs-portal-proxy.conf), and an environment behind the forward-auth
configuration (docs/nginx-forward-auth.conf). PostgreSQL and Redis are the machine's:
the hosts share them and nothing else, as production hosts do (docs/deploy.md).

Every process runs in a process group of its own, so that one host can be killed as a
crash would (tests/cluster/), and Ctrl-C stops everything that was started. The tests
start the same topology through :class:`Cluster`.
"""

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROXY_SNIPPET = ROOT / "deploy" / "nginx" / "lcs-portal-proxy.conf"
FORWARD_AUTH_CONF = ROOT / "docs" / "nginx-forward-auth.conf"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/lcs_portal_cluster"
# A Redis database is taken for the cluster's sessions and cache by setting this key in
# it (SET NX), so that two clusters (a developer's and a test run) never share one.
REDIS_OWNER_KEY = "lcs-portal-cluster:owner"
REDIS_DATABASES = range(15, 1, -1)
# The caller's variables the hosts do not inherit: a developer's or the test run's files
# and switches must not steer them.
NOT_INHERITED = (
    "PORTAL_DRIVERS_FILE",
    "SIMULATED_DRIVER_FAIL_FILE",
    "DEBUG",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)
# What the stand-in environment behind forward auth answers: who reached it.
ENVIRONMENT_ANSWER = (
    r"environment reached\nuser=$http_x_portal_user\nroles=$http_x_portal_roles"
    r"\ncookie=$http_cookie\n"
)


class ClusterError(Exception):
    """Something the cluster needs is missing or did not come up; the message says what."""


def http_status(url, timeout=5):
    """The status of a GET (no redirect followed), or None when nothing answers."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def wait_for(predicate, timeout, interval=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def processes():
    """Every live process: (pid, parent pid, process group, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fields[0] != "Z":
            found.append((int(entry.name), int(fields[1]), int(fields[2]), cmdline))
    return found


def children(pid):
    """The processes whose parent is ``pid``: (pid, command line) pairs."""
    return [(child, cmdline) for child, parent, _, cmdline in processes() if parent == pid]


def group_alive(pgid):
    return any(group == pgid for _, _, group, _ in processes())


def signal_group(pid, signum):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def stop_group(process, timeout=20):
    """SIGTERM the group's leader (run_portal stops its children), then SIGKILL the
    group, so that nothing of it outlives a failed run."""
    if process is None:
        return
    if process.poll() is None:
        # A paused (SIGSTOPped) worker handles SIGTERM only once it runs again.
        signal_group(process.pid, signal.SIGCONT)
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    signal_group(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(timeout=10)


def claim_redis_database(url="redis://127.0.0.1:6379"):
    """A Redis database number nobody else's cluster holds, and the token that holds it."""
    import redis

    token = secrets.token_hex(8)
    for number in REDIS_DATABASES:
        client = redis.Redis.from_url(url, db=number)
        try:
            if client.set(REDIS_OWNER_KEY, token, nx=True, ex=24 * 3600):
                return number, token
        except redis.ConnectionError as exc:
            raise ClusterError(f"Redis does not answer at {url}: {exc}") from None
        finally:
            client.close()
    raise ClusterError(f"Every Redis database {REDIS_DATABASES[-1]} to 15 is held by a cluster.")


def release_redis_database(url, number, token):
    """Empty the database, if it is still ours: sessions are in PostgreSQL as well
    (cached_db), so nothing is lost."""
    import redis

    client = redis.Redis.from_url(url, db=number)
    try:
        if client.get(REDIS_OWNER_KEY) == token.encode():
            client.flushdb()
    except redis.ConnectionError:
        pass
    finally:
        client.close()


def create_database(url):
    """Create the database ``url`` names when it does not exist yet."""
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1].split("?")[0]
    maintenance = url.rsplit("/", 1)[0] + "/postgres"
    try:
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            if not exists:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise ClusterError(f"PostgreSQL does not answer at {maintenance}: {exc}") from None


def find_nginx():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        raise ClusterError("nginx is not installed (scripts/ensure-system-packages, as root).")
    return nginx


@dataclass
class Host:
    """One portal host: run_portal and everything it starts, in one process group."""

    number: int
    port: int
    var_dir: Path
    env: dict
    process: subprocess.Popen | None = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self):
        return self.var_dir / "portal.log"

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def start(self):
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "run_portal",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--no-local-sandbox",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def wait_until_healthy(self, timeout=60):
        def healthy():
            if not self.running:
                raise ClusterError(f"host {self.number} stopped:\n{self.log()[-3000:]}")
            return http_status(f"{self.url}/healthz") == 200

        if not wait_for(healthy, timeout):
            raise ClusterError(f"host {self.number} is not healthy:\n{self.log()[-3000:]}")

    def workers(self):
        """The pids of the host's task workers (one per queue run_portal starts)."""
        if not self.running:
            return []
        return [pid for pid, cmdline in children(self.process.pid) if " db_worker" in cmdline]

    def pause_workers(self):
        """Stop the host's workers where they are (SIGSTOP): they take no task until
        resumed. Used to measure one host's workers, or to let a chosen host's worker
        take a task."""
        for pid in self.workers():
            os.kill(pid, signal.SIGSTOP)

    def resume_workers(self):
        for pid in self.workers():
            os.kill(pid, signal.SIGCONT)

    def kill(self):
        """kill -9 everything of the host at once, as a crash of the machine would."""
        if self.process is not None:
            signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            # Until the last of them is gone, a connection may still be accepted.
            wait_for(lambda: not group_alive(self.process.pid), timeout=10, interval=0.01)

    def stop(self):
        stop_group(self.process)


@dataclass
class Cluster:
    """The topology: hosts, nginx in front of them, an environment behind forward auth.

    ``environ`` is added to every host's environment (e.g. OPERATION_DEADLINE_SECONDS).
    """

    state_dir: Path
    database_url: str
    redis_url: str
    hosts_count: int = 2
    host_ports: list = field(default_factory=list)
    nginx_port: int = 8080
    environment_port: int = 8081
    # Where the stand-in environment runs, behind the forward-auth server; never asked
    # for by a browser. 0: the environment's port + 1000.
    upstream_port: int = 0
    forward_auth_slug: str = "demo-sandbox"
    environ: dict = field(default_factory=dict)
    secret_key: str = ""
    hosts: list = field(default_factory=list, init=False)
    nginx: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self):
        self.state_dir = Path(self.state_dir).resolve()
        self.secret_key = self.secret_key or os.environ.get("SECRET_KEY") or self._secret_key()
        ports = self.host_ports or [8001 + n for n in range(self.hosts_count)]
        self.hosts = [
            Host(n, port, self.state_dir / f"host-{n}", self.env(self.state_dir / f"host-{n}"))
            for n, port in enumerate(ports[: self.hosts_count], start=1)
        ]

    def _secret_key(self):
        # Every host signs with the same key, as production hosts must (docs/deploy.md).
        path = self.state_dir / "secret-key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(50))
        return path.read_text().strip()

    @property
    def url(self):
        """The portal through nginx."""
        return f"http://127.0.0.1:{self.nginx_port}"

    def env(self, var_dir):
        """The environment of a process of the portal whose state lives in ``var_dir``."""
        env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
        env.update(
            DJANGO_SETTINGS_MODULE="lcs_portal.settings",
            DATABASE_URL=self.database_url,
            SECRET_KEY=self.secret_key,
            PORTAL_TLS="0",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PORTAL_VAR_DIR=str(var_dir),
            PORTAL_SESSION_ENGINE="cached_db",
            PORTAL_CACHE_URL=self.redis_url,
            PORTAL_LOCAL_SANDBOX="0",
            PYTHONUNBUFFERED="1",
        )
        env.update({key: str(value) for key, value in self.environ.items()})
        return env

    def manage(self, *args, env=None, timeout=600):
        """Run ``manage.py`` as the hosts would (their settings), in a state directory
        of its own; its output."""
        var_dir = self.state_dir / "manage"
        var_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=dict(self.env(var_dir), **(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise ClusterError(f"manage.py {' '.join(args)}:\n{result.stdout}{result.stderr}")
        return result.stdout

    def prepare(self, seed=True):
        """Migrate the database, collect static files, and seed the demo data."""
        self.manage("migrate", "--no-input", "-v", "0")
        self.manage("collectstatic", "--no-input", "-v", "0")
        if seed:
            return self.manage("seed_demo")
        return ""

    def start(self):
        for host in self.hosts:
            host.start()
        for host in self.hosts:
            host.wait_until_healthy()
        self.start_nginx()

    def start_host(self, number):
        host = self.hosts[number - 1]
        host.start()
        host.wait_until_healthy()

    def ensure_running(self):
        """Start again whatever host is down (a test killed it)."""
        for host in self.hosts:
            if not host.running:
                self.start_host(host.number)

    def write_drivers(self, entries):
        """Per-environment drivers (PORTAL_DRIVERS_FILE), the same on every host."""
        import json

        for host in self.hosts:
            host.var_dir.mkdir(parents=True, exist_ok=True)
            path = host.var_dir / "drivers.json"
            data = json.loads(path.read_text()) if path.exists() else {}
            data.update(entries)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=2))
            temporary.replace(path)

    # --- nginx ---------------------------------------------------------------------

    def nginx_conf(self):
        directory = self.state_dir / "nginx"
        servers = "\n".join(
            f"        server 127.0.0.1:{host.port} max_fails=1 fail_timeout=5s;"
            for host in self.hosts
        )
        return f"""
worker_processes 1;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    # Which host answered each request: the last address nginx tried.
    log_format routed '$request_method $request_uri $status upstream=$upstream_addr';
    access_log {directory}/access.log routed;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;

    # The portal hosts, round-robin (nginx's default), as deploy/nginx/lcs-portal.conf.
    upstream lcs_portal {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{self.nginx_port};
        location / {{
            include {PROXY_SNIPPET};
        }}
    }}

    # The stand-in environment: it shows who reached it through forward auth.
    server {{
        listen 127.0.0.1:{self.environment_upstream_port};
        location / {{
            default_type text/plain;
            return 200 "{ENVIRONMENT_ANSWER}";
        }}
    }}

    include {directory}/forward-auth.conf;
}}
"""

    @property
    def session_cookie_name(self):
        return self.env(self.state_dir).get("SESSION_COOKIE_NAME", "portal_session")

    @property
    def environment_upstream_port(self):
        return self.upstream_port or self.environment_port + 1000

    def routed(self, method, path):
        """How many requests ``method path`` nginx has passed to each host, by number."""
        log = self.state_dir / "nginx" / "access.log"
        lines = log.read_text().splitlines() if log.exists() else []
        numbers = {f"127.0.0.1:{host.port}": host.number for host in self.hosts}
        served = dict.fromkeys(numbers.values(), 0)
        for line in lines:
            if line.startswith(f"{method} {path} "):
                address = line.rsplit("upstream=", 1)[1].split(", ")[-1]
                if address in numbers:
                    served[numbers[address]] += 1
        return served

    def forward_auth_conf(self):
        """docs/nginx-forward-auth.conf with its placeholders filled for this cluster."""
        values = {
            "LISTEN": f"127.0.0.1:{self.environment_port}",
            "SERVER_NAME": "127.0.0.1",
            "ENVIRONMENT_UPSTREAM": f"http://127.0.0.1:{self.environment_upstream_port}",
            "PORTAL_URL": self.url,
            "ENVIRONMENT_SLUG": self.forward_auth_slug,
            "PORTAL_COOKIE": self.session_cookie_name,
        }
        text = FORWARD_AUTH_CONF.read_text()
        for name, value in values.items():
            text = text.replace(f"@{name}@", value)
        left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
        if left:
            raise ClusterError(
                f"{FORWARD_AUTH_CONF} has placeholders the cluster does not fill: {left}"
            )
        return text

    def start_nginx(self):
        directory = self.state_dir / "nginx"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "forward-auth.conf").write_text(self.forward_auth_conf())
        conf = directory / "nginx.conf"
        conf.write_text(self.nginx_conf())
        command = [find_nginx(), "-p", str(directory), "-c", str(conf), "-e", "stderr"]
        command += ["-g", f"daemon off; pid {directory / 'nginx.pid'};"]
        with (directory / "nginx.out").open("a") as log:
            self.nginx = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def up():
            if self.nginx.poll() is not None:
                raise ClusterError(f"nginx stopped:\n{(directory / 'nginx.out').read_text()}")
            return http_status(f"{self.url}/healthz") == 200

        if not wait_for(up, 30):
            raise ClusterError(f"nginx does not answer on port {self.nginx_port}")

    def stop(self):
        """Stop everything that was started, hosts first (nginx sees them go)."""
        for host in self.hosts:
            host.stop()
        stop_group(self.nginx)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


#: Seconds before a host that died is started again; doubled while it keeps dying soon
#: after its start, up to RESTART_AFTER_MAX (systemd's Restart=on-failure with a
#: RestartSec, and its start limit, spared).
RESTART_AFTER = 2.0
RESTART_AFTER_MAX = 30.0
#: A host that ran this long before it died was healthy: its back-off starts afresh.
STEADY_SECONDS = 60.0


class Supervisor:
    """Keeps a cluster's hosts running, as systemd's Restart=on-failure would: a host
    that dies (killed, crashed, exited non-zero) is started again after a back-off, while
    the other hosts and nginx go on serving. Each check is one pass; ``check`` is False
    once the cluster must stop (nginx died, or a host exited cleanly: somebody stopped
    it on purpose)."""

    def __init__(self, cluster, backoff=RESTART_AFTER, out=None, clock=time.monotonic):
        self.cluster = cluster
        self.backoff = backoff
        self.out = out or sys.stderr
        self.clock = clock
        self.started_at = {host.number: clock() for host in cluster.hosts}
        self.delay = dict.fromkeys(self.started_at, backoff)
        self.restart_at = {}  # host number: when it is started again
        self.restarts = dict.fromkeys(self.started_at, 0)

    def say(self, text):
        print(text, file=self.out, flush=True)

    def check(self):
        now = self.clock()
        if self.cluster.nginx is not None and self.cluster.nginx.poll() is not None:
            self.say("nginx stopped; stopping the cluster.")
            return False
        for host in self.cluster.hosts:
            if host.running:
                continue
            if host.number not in self.restart_at:
                code = host.process.returncode if host.process is not None else None
                if code == 0:
                    self.say(f"host {host.number} exited cleanly; stopping the cluster.")
                    return False
                # What is left of its process group (a worker whose parent died) goes
                # with it, as systemd's KillMode=control-group does.
                if host.process is not None:
                    signal_group(host.process.pid, signal.SIGKILL)
                if now - self.started_at[host.number] >= STEADY_SECONDS:
                    self.delay[host.number] = self.backoff
                delay = self.delay[host.number]
                self.restart_at[host.number] = now + delay
                how = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
                self.say(
                    f"host {host.number} died ({how}); starting it again in {delay:g} s. "
                    "The other hosts go on serving."
                )
            elif now >= self.restart_at[host.number]:
                del self.restart_at[host.number]
                self.delay[host.number] = min(self.delay[host.number] * 2, RESTART_AFTER_MAX)
                self.started_at[host.number] = now
                self.restarts[host.number] += 1
                host.start()
                self.say(f"host {host.number} started again (pid {host.process.pid}).")
        return True


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m scripts.cluster",
        description="Run two portal hosts behind nginx on this machine's PostgreSQL and "
        "Redis, with an environment behind forward auth; Ctrl-C stops everything.",
    )
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--port", type=int, default=8080, help="nginx, in front of the hosts")
    parser.add_argument(
        "--host-port", type=int, default=8001, help="the first host's port; the next ones follow"
    )
    parser.add_argument("--environment-port", type=int, default=8081)
    parser.add_argument("--environment", default="demo-sandbox", help="its slug in the portal")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="without a database")
    parser.add_argument("--state-dir", default=str(ROOT / "var" / "cluster"))
    parser.add_argument("--no-seed", action="store_false", dest="seed")
    parser.add_argument(
        "--restart-after",
        type=float,
        default=RESTART_AFTER,
        help="seconds before a host that died is started again (default %(default)s)",
    )
    args = parser.parse_args(argv)

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    redis_number = token = cluster = None
    try:
        create_database(args.database_url)
        redis_number, token = claim_redis_database(args.redis)
        cluster = Cluster(
            state_dir=args.state_dir,
            database_url=args.database_url,
            redis_url=f"{args.redis}/{redis_number}",
            hosts_count=args.hosts,
            host_ports=[args.host_port + n for n in range(args.hosts)],
            nginx_port=args.port,
            environment_port=args.environment_port,
            forward_auth_slug=args.environment,
        )
        print(f"Preparing {args.database_url} (migrate, collectstatic, seed_demo)...")
        print(cluster.prepare(seed=args.seed), end="")
        # The hosts run no Local sandbox (its supervisord is one machine's): there its
        # environment uses the simulated driver, as every other one does.
        print("The cluster starts no Local sandbox services: its environment is simulated here.")
        cluster.start()
        print(f"\nPortal through nginx (round-robin): {cluster.url}/")
        for host in cluster.hosts:
            print(f"  host {host.number}: {host.url}/  state {host.var_dir}  log {host.log_path}")
        print(
            f"Environment {args.environment} behind forward auth: "
            f"http://127.0.0.1:{args.environment_port}/"
        )
        print(f"  nginx's log, with the host that answered: {cluster.state_dir}/nginx/access.log")
        print(f"PostgreSQL {args.database_url}, Redis {cluster.redis_url}")
        print("Ctrl-C stops everything.", flush=True)
        supervisor = Supervisor(cluster, backoff=args.restart_after)
        while not stopping and supervisor.check():
            time.sleep(0.5)
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        if cluster is not None:
            cluster.stop()
        if redis_number is not None:
            release_redis_database(args.redis, redis_number, token)
    print("Stopped the hosts and nginx.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
