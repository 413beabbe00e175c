"""A chaos soak of the portal on the topology of scripts/cluster.py:

    make soak                       (or: .venv/bin/python -m scripts.soak --minutes 60 --seed 7)

Two portal hosts behind nginx (supervised as `make cluster` does: a host that dies is
started again), on a PostgreSQL server and a Redis of the soak's own. Simulated users,
each with an API token and a signed-in session, act on 50 environments through nginx
for N minutes: restarts and maintenance mode by API and by the pages' forms, windows
scheduled a minute or two ahead (some cancelled), firewall rules and database accounts
requested and revoked, history pages and CSV. Faults come at times a seed fixes: a host
killed (its process group), one task worker killed, a host frozen (SIGSTOP) for 20 s,
PostgreSQL restarted, Redis stopped for 30 s, a webhook receiver that times out; and on
a share of environments the driver's restart hangs past the operation's deadline.

The drivers are stand-ins that record what they do: a command driver that appends each
action to a file (with {since}, the moment its operation began, the same in every
attempt), a firewall command that keeps its rules in a file, and the real postgres
driver on a share of environments, creating logins on the soak's own server.

After a quiet period the soak checks its invariants on the database, the drivers'
records and what the clients saw, prints a report and writes it as JSON; it exits 1 when
an invariant fails. The seed fixes the plan (who does what, which fault when), not the
timing. docs/reliability.md has the figures of a run.
"""

import argparse
import contextlib
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

from scripts.cluster import ROOT, Cluster, ClusterError, Supervisor, wait_for

ENVIRONMENTS = 50
USERS = 24
#: Environments whose restart command hangs past the operation's deadline.
HANGING = 4
#: Environments whose database accounts the real postgres driver makes.
POSTGRES_ENVIRONMENTS = 6
#: The shortened settings: everything settles within the quiet period.
DEADLINE = 40
LEASE = 15
SWEEP = 5
SETTINGS = {
    "OPERATION_DEADLINE_SECONDS": DEADLINE,
    "OPERATION_STEP_LEASE_SECONDS": LEASE,
    "WATCHDOG_LOOP_SECONDS": SWEEP,
    "WINDOW_START_RETRY_MINUTES": 1,
    "WINDOW_RETRY_SECONDS": 5,
    "DELIVERY_RETRY_FIRST_SECONDS": 2,
    "DELIVERY_RETRY_MAX_SECONDS": 8,
    "DELIVERY_MAX_ATTEMPTS": 4,
    "DELIVERY_CLAIM_SECONDS": 15,
    "DELIVERY_OVERDUE_SECONDS": 10,
    "WEBHOOK_TIMEOUT_SECONDS": 2,
    "PORTAL_API_RATE_LIMIT": 100000,
    # The soak's webhook receiver listens on 127.0.0.1.
    "PORTAL_WEBHOOKS_ALLOW_PRIVATE": 1,
    "AXES_FAILURE_LIMIT": 1000,
    "SIMULATED_DRIVER_DELAY": 0,
}
#: Requests give up after this long: an answer that takes longer counts as an error.
CLIENT_TIMEOUT = 30
#: How much longer the quiet period waits while a webhook backlog is being worked off.
QUIET_DELIVERIES_SECONDS = 900
#: A fault's window of errors lasts from its injection until its recovery plus this.
MARGIN = 20
PASSWORD = "soak password, not a secret"
#: Answers that are not errors: the portal said no for a reason a user can act on
#: (403: an admin took the user's role away in the meantime).
FINE = {200, 201, 202, 204, 302, 400, 403, 404, 409, 422}
FAULTS = ("kill_host", "kill_worker", "freeze_host", "restart_postgres", "stop_redis", "webhook")


def now():
    return time.time()


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --- The soak's own PostgreSQL and Redis ------------------------------------------------


class Postgres:
    """A PostgreSQL cluster in a temporary directory, on a free port (run as the postgres
    user when the soak runs as root: initdb refuses root)."""

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise ClusterError("PostgreSQL's server binaries are missing (scripts/ensure-postgres)")
        self.bin = Path(found[-1]).parent
        self.port = free_ports(1)[0]
        self.dir = Path(tempfile.mkdtemp(prefix="lcs-soak-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")

    def run(self, *args):
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise ClusterError(f"{args[0]}: {result.stdout}{result.stderr}")

    def init(self):
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self.start()
        self.run("createdb", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "portal")

    def start(self):
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=300 -c log_lock_waits=on"
        )
        log = str(self.dir / "log")
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        wait_for(self.answers, 30)

    def answers(self):
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def restart(self):
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.start()

    def destroy(self, keep_log=None):
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(ClusterError):
                self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        if keep_log and (self.dir / "log").exists():
            shutil.copy(self.dir / "log", keep_log)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database="portal", user="postgres"):
        return f"postgres://{user}@127.0.0.1:{self.port}/{database}"


class Redis:
    """redis-server on a free port, keeping nothing on disk."""

    def __init__(self, folder):
        self.port = free_ports(1)[0]
        self.folder = folder
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        server = shutil.which("redis-server")
        if not server:
            raise ClusterError("redis-server is not installed (scripts/ensure-system-packages).")
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_for(self.answers, 10):
            raise ClusterError("redis-server did not start")

    def answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# --- The drivers' stand-ins ----------------------------------------------------------------


def processes_carrying(state):
    """The processes with the soak's state folder in their environment (the hosts', and
    the drivers' commands they started), but this one."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):  # ended meanwhile, or not ours to read
            pid = int(environ.parent.name)
            if pid != os.getpid() and str(state).encode() in environ.read_bytes():
                found.append(pid)
    return found


def stop_driver_commands(state):
    """Kill the drivers' commands still running: each runs in a process group of its own
    (so that its timeout stops its children too), which a killed host leaves behind, as
    a host's systemd unit would not."""
    for pid in processes_carrying(state):
        if pid != os.getpgrp():
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def drivers_file(state, slugs, hanging):
    """The command driver for every environment: each action appends a line to
    ``actions`` (environment, action, what, since); on the hanging ones the restart
    then sleeps past the deadline (its timeout is longer)."""
    record = state / "actions"
    append = f'echo "$0 $1 $2 $3" >> {record}'
    entries = {}
    for slug in slugs:
        hangs = slug in hanging
        restart = f"{append}; sleep {DEADLINE + 30}" if hangs else append
        entries[slug] = {
            "driver": "command",
            "timeout": DEADLINE + 20 if hangs else 20,
            "health_interval": 0.5,
            "restart": ["sh", "-c", restart, "{environment}", "restart", "{service}", "{since}"],
            "health": ["true"],
            "maintenance_on": ["sh", "-c", append, "{environment}", "maintenance", "on", "{since}"],
            "maintenance_off": [
                "sh",
                "-c",
                append,
                "{environment}",
                "maintenance",
                "off",
                "{since}",
            ],
            "maintenance_health": ["true"],
        }
    return entries


def firewall_settings(state):
    """A firewall that keeps its rules in a file, one ``rule-id cidr`` a line."""
    rules, lock = state / "firewall-rules", state / "firewall.lock"
    rules.touch()
    apply = f'exec 9>>{lock}; flock 9; echo "$0 $1" >> {rules}'
    remove = (
        f'exec 9>>{lock}; flock 9; grep -vx "$0 $1" {rules} > {rules}.new; mv {rules}.new {rules}'
    )
    return {
        "PORTAL_FIREWALL_DRIVER": "command",
        "PORTAL_FIREWALL_APPLY": json.dumps(["sh", "-c", apply, "{rule}", "{cidr}"]),
        "PORTAL_FIREWALL_REMOVE": json.dumps(["sh", "-c", remove, "{rule}", "{cidr}"]),
    }


def set_up_database_server(postgres, databases):
    """docs/drivers.md's set-up on the soak's server: portal_jit with CREATEROLE, no
    database open to PUBLIC, and each environment's database owned by a role of its own
    that portal_jit is a member of."""
    import psycopg

    with psycopg.connect(postgres.url("postgres"), autocommit=True) as admin:
        admin.execute("CREATE ROLE portal_jit LOGIN CREATEROLE")
        for name in databases:
            admin.execute(f'CREATE ROLE "{name}_owner" NOLOGIN')
            admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}_owner"')
            admin.execute(f'GRANT "{name}_owner" TO portal_jit')
        for (name,) in admin.execute("SELECT datname FROM pg_database WHERE datallowconn"):
            admin.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
        admin.execute("GRANT CONNECT ON DATABASE postgres TO portal_jit")
    for name in databases:
        with psycopg.connect(postgres.url(name), autocommit=True) as connection:
            connection.execute(f'ALTER SCHEMA public OWNER TO "{name}_owner"')
            connection.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            connection.execute(f'SET ROLE "{name}_owner"')
            connection.execute("CREATE TABLE orders (id serial PRIMARY KEY, note text)")


SEED = """
import json
from django.contrib.auth import get_user_model
from environments.models import *
from environments.tokens import issue
User = get_user_model()
spec = json.loads({spec!r})
project = Project.objects.create(name="Soak", slug="soak")
environments = Environment.objects.bulk_create(
    Environment(
        project=project, name=slug, slug=slug, tier=2, type="sandbox",
        subscription="microsoft", deployment="self_service",
        **(dict(database_server="soak", database_name=spec["databases"][slug])
           if slug in spec["databases"] else {{}}),
    )
    for slug in spec["environments"]
)
Service.objects.bulk_create(
    Service(environment=e, kind=kind) for e in environments for kind in ServiceKind.values
)
tokens, memberships = {{}}, {{}}
for name in spec["users"]:
    user = User.objects.create_user(name, password=spec["password"], is_staff=True,
                                    is_superuser=name == spec["users"][0])
    membership = ProjectMembership.objects.create(user=user, project=project, role="owner")
    tokens[name] = issue(user, name="soak", scope="maintain")[1]
    memberships[name] = [membership.pk, user.pk, project.pk]
Webhook.objects.create(project=project, name="soak", url=spec["webhook"], secret="soak-secret")
print(json.dumps({{"tokens": tokens, "memberships": memberships}}))
"""


# --- Clients -------------------------------------------------------------------------------


class Client:
    """One simulated user: an API token and a signed-in session, through nginx."""

    def __init__(self, port, name, token):
        self.port, self.name, self.token = port, name, token
        self.cookies = {}
        self.csrf = ""

    def call(self, method, path, body=None, headers=None):
        """(status or None, body text): None when nothing answered in time."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
            for value in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.status, text
        except OSError:
            return None, ""
        finally:
            connection.close()

    def api(self, method, path, data=None):
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        body = json.dumps(data) if data is not None else None
        return self.call(method, f"/api/v1{path}", body, headers)

    def page(self, method, path, data=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if method == "POST":
            headers.update(
                {
                    "X-CSRFToken": self.csrf,
                    "HX-Request": "true",
                    "Content-Type": "application/x-www-form-urlencoded",
                }
            )
            body = urlencode(data or {})
        return self.call(method, path, body, headers)

    def sign_in(self):
        status, text = self.page("GET", "/accounts/login/")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text)
        if status != 200 or not match:
            return False
        self.csrf = match.group(1)
        form = {"username": self.name, "password": PASSWORD, "csrfmiddlewaretoken": self.csrf}
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        status, _ = self.call("POST", "/accounts/login/", urlencode(form), headers)
        if status != 302:
            return False
        status, text = self.page("GET", "/environments/")
        match = re.search(r'"X-CSRFToken": "([^"]+)"', text)
        if match:
            self.csrf = match.group(1)
        return status == 200


class Record:
    """What the clients saw, shared by their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # (sent, answered, what, status)
        self.accepted = []  # (activity_id, time of the request)
        self.windows = []
        self.rules = []
        self.accounts = []

    def saw(self, what, status, at):
        with self.lock:
            self.requests.append((at, now(), what, status))


def change_role(client, rng, memberships, roles):
    """In Django admin, as an admin does: another user's project role, Project owner to
    team member (which ends the grants they hold) and back."""
    name = rng.choice(sorted(roles))
    pk, user, project = memberships[name]
    path = f"/admin/environments/projectmembership/{pk}/change/"
    status, text = client.page("GET", path)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text)
    if status != 200 or not match:
        return status, text
    role = "member" if roles[name] == "owner" else "owner"
    form = {
        "csrfmiddlewaretoken": match.group(1),
        "user": user,
        "project": project,
        "role": role,
        "_save": "Save",
    }
    status, text = client.page("POST", path, form)
    if status == 302:
        roles[name] = role
    # The form shown again means it refused the change: never expected here.
    return ("admin form refused" if status == 200 else status), text


def act(client, rng, record, slugs, pg_slugs, stop, last_window, memberships=None):
    """One user's session: an action every 1 to 4 s until ``stop``; windows are
    scheduled until the monotonic time ``last_window`` only (the quiet period need not
    wait for windows scheduled at the last moment). The admin (given ``memberships``)
    also changes the others' roles in Django admin."""
    signed_in = client.sign_in()
    mine = {"rules": [], "accounts": [], "windows": []}
    roles = {name: "owner" for name in memberships or {} if name != client.name}
    while not stop.is_set():
        stop.wait(rng.uniform(1, 4))
        if stop.is_set():
            return
        slug = rng.choice(slugs)
        choice = rng.random()
        at = now()
        # Rarer than the rest: each writes a history row, and sends a webhook event, on
        # every one of the project's environments.
        if roles and signed_in and rng.random() < 0.05:
            status, text = change_role(client, rng, memberships, roles)
            what = "admin role change"
        elif choice < 0.22:
            service = rng.choice(["aos", "dixf", "mr"])
            data = {"action": "restart_service", "service": service, "reason": "soak"}
            status, text = client.api("POST", f"/environments/{slug}/operations", data)
            what = "api restart"
        elif choice < 0.32:
            action = rng.choice(["enable_maintenance", "disable_maintenance"])
            status, text = client.api(
                "POST", f"/environments/{slug}/operations", {"action": action, "reason": "soak"}
            )
            what = f"api {action}"
        elif choice < 0.42 and signed_in:
            action = rng.choice(["restart_service", "enable_maintenance", "disable_maintenance"])
            data = {"reason": "soak by the page", "service": rng.choice(["aos", "dixf", "mr"])}
            status, text = client.page("POST", f"/environments/{slug}/maintain/{action}/", data)
            what = f"page {action}"
        elif choice < 0.50:
            data = {
                "name": f"soak-{rng.randrange(10**6)}",
                "address": f"203.0.113.{rng.randrange(1, 250)}",
                "reason": "soak",
                "hours": 1,
            }
            status, text = client.api("POST", f"/environments/{slug}/firewall-rules", data)
            what = "api firewall rule"
            if status == 202:
                mine["rules"].append(json.loads(text)["firewall_rule"]["id"])
        elif choice < 0.56 and mine["rules"]:
            rule = mine["rules"].pop(rng.randrange(len(mine["rules"])))
            status, text = client.api("DELETE", f"/firewall-rules/{rule}")
            what = "api remove rule"
        elif choice < 0.62:
            slug = rng.choice(pg_slugs)
            data = {"level": rng.choice(["read", "read_write"]), "reason": "soak", "hours": 1}
            status, text = client.api("POST", f"/environments/{slug}/database-accounts", data)
            what = "api database account"
            if status == 202:
                mine["accounts"].append(json.loads(text)["database_account"]["id"])
        elif choice < 0.68 and mine["accounts"]:
            account = mine["accounts"].pop(rng.randrange(len(mine["accounts"])))
            status, text = client.api("DELETE", f"/database-accounts/{account}")
            what = "api revoke account"
        elif choice < 0.74 and time.monotonic() < last_window:
            start = datetime.now(UTC) + timedelta(seconds=rng.uniform(60, 120))
            data = {
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(seconds=rng.uniform(30, 60))).isoformat(),
                "reason": "soak window",
                "notify_users": False,
            }
            status, text = client.api("POST", f"/environments/{slug}/maintenance-windows", data)
            what = "api schedule window"
            if status == 201:
                mine["windows"].append(json.loads(text)["id"])
        elif choice < 0.78 and mine["windows"]:
            window = mine["windows"].pop(rng.randrange(len(mine["windows"])))
            status, text = client.api("POST", f"/maintenance-windows/{window}/cancel")
            what = "api cancel window"
        elif choice < 0.83:
            status, text = client.api("GET", "/history?limit=50")
            what = "api history"
        elif choice < 0.88 and signed_in:
            if rng.random() < 0.5:
                action = "enable_access"
                data = {
                    "name": f"page-{rng.randrange(10**6)}",
                    "address": f"198.51.100.{rng.randrange(1, 250)}",
                }
            else:
                slug, action = rng.choice(pg_slugs), "request_access"
                data = {"level": rng.choice(["read", "read_write"])}
            data.update(reason="soak by the page", hours=1)
            status, text = client.page("POST", f"/environments/{slug}/maintain/{action}/", data)
            what = f"page {action}"
        elif choice < 0.94 and signed_in:
            status, text = client.page("GET", f"/environments/{slug}/history.csv")
            what = "page history csv"
        elif choice < 0.97 and signed_in:
            status, text = client.page("GET", f"/environments/{slug}/")
            what = "page environment"
        else:
            # Somebody looks after a Failed environment: Resume or Abort, as people do.
            status, text = client.api("GET", f"/environments/{slug}")
            what = "api environment"
            if status == 200 and json.loads(text).get("status") == "failed":
                record.saw(what, status, at)
                at = now()
                action = rng.choice(["resume", "abort"])
                data = {"action": action, "reason": "soak: looking after it"}
                status, text = client.api("POST", f"/environments/{slug}/operations", data)
                what = f"api {action}"
        record.saw(what, status, at)
        if status == 202 and what.startswith("api"):
            body = json.loads(text)
            operation = body.get("operation", body) if "operation" in body else body
            if operation and "activity_id" in operation:
                with record.lock:
                    record.accepted.append((operation["activity_id"], at))
        if status in (401, 403) and what.startswith("page"):
            # The session was lost (Redis or a host went away mid-write): sign in again.
            signed_in = client.sign_in()


# --- The webhook receiver ---------------------------------------------------------------


class Receiver:
    """Webhook events, by delivery id; it answers slower than the portal waits while
    ``slow`` is set."""

    def __init__(self):
        self.slow = threading.Event()
        self.received = []  # (delivery id, event, activity id)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.slow.is_set():
                    time.sleep(SETTINGS["WEBHOOK_TIMEOUT_SECONDS"] + 2)
                    with contextlib.suppress(OSError):
                        self.send_response(504)
                        self.end_headers()
                    return
                with contextlib.suppress(ValueError):
                    payload = json.loads(body)
                    operation = payload
                    with receiver.lock:
                        receiver.received.append(
                            (
                                self.headers.get("X-Portal-Delivery"),
                                self.headers.get("X-Portal-Event"),
                                operation.get("activity_id"),
                            )
                        )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# --- Faults --------------------------------------------------------------------------------


def plan_faults(rng, seconds):
    """(offset in seconds, fault) for a run of ``seconds``, in order: each fault at
    least once, spread from 10 % to 85 % of the run; a third of them come with a
    second fault of another kind 3 to 15 s later, while the first still lasts, as
    production sees them."""
    count = max(len(FAULTS), int(seconds / 150))
    kinds = list(FAULTS) + [rng.choice(FAULTS) for _ in range(count - len(FAULTS))]
    rng.shuffle(kinds)
    span = seconds * 0.75
    plan = []
    for n, kind in enumerate(kinds):
        offset = round(seconds * 0.1 + span * (n + rng.uniform(0.1, 0.6)) / len(kinds), 1)
        plan.append((offset, kind))
        if rng.random() < 1 / 3:
            other = rng.choice([k for k in FAULTS if k != kind])
            plan.append((round(offset + rng.uniform(3, 15), 1), other))
    return sorted(plan)


class Injector:
    def __init__(self, cluster, postgres, redis, receiver, rng, log):
        self.cluster, self.postgres, self.redis, self.receiver = cluster, postgres, redis, receiver
        self.rng, self.log = rng, log
        self.done = []  # {kind, target, started, recovered}
        self.unrecovered = []  # (kind, why)
        #: Set when the soak ends early (Ctrl-C): a fault under way stops waiting and
        #: starts nothing again, and none begins, so that the clean-up stops everything.
        self.ended = threading.Event()
        self.lock = threading.Lock()
        self.under_way = 0

    def end(self, timeout=60):
        """No fault begins from now on; wait for those under way to finish."""
        with self.lock:
            self.ended.set()
        wait_for(lambda: self.under_way == 0, timeout, interval=0.1)

    def inject(self, kind):
        with self.lock:
            if self.ended.is_set():
                return
            self.under_way += 1
        started = now()
        target = ""
        try:
            target = self._inject(kind)
        except ClusterError as exc:
            self.log(f"fault {kind}: not recovered: {exc}")
            self.unrecovered.append((kind, str(exc)))
        finally:
            with self.lock:
                self.under_way -= 1
        recovered = now()
        self.done.append(dict(kind=kind, target=target, started=started, recovered=recovered))
        self.log(f"fault {kind} {target}: {recovered - started:.1f} s until recovered")

    def _inject(self, kind):
        """Inject one fault and wait until it is over; its target."""
        target = ""
        if kind == "kill_host":
            host = self.rng.choice(self.cluster.hosts)
            target = f"host {host.number}"
            if host.running:
                os.killpg(host.process.pid, signal.SIGKILL)
            wait_for(
                lambda: self.ended.is_set() or (host.running and self.healthy(host)),
                180,
                interval=0.5,
            )
        elif kind == "kill_worker":
            host = self.rng.choice(self.cluster.hosts)
            workers = host.workers()
            if workers:
                pid = self.rng.choice(workers)
                target = f"worker {pid} of host {host.number}"
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # run_portal starts it again after its delay.
            self.ended.wait(5)
        elif kind == "freeze_host":
            host = self.rng.choice(self.cluster.hosts)
            target = f"host {host.number}"
            if host.running:
                group = host.process.pid
                os.killpg(group, signal.SIGSTOP)
                self.ended.wait(20)
                # Another fault may have killed the frozen host meanwhile.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGCONT)
        elif kind == "restart_postgres":
            self.postgres.restart()
        elif kind == "stop_redis":
            self.redis.stop()
            if not self.ended.wait(30):
                self.redis.start()
        elif kind == "webhook":
            self.receiver.slow.set()
            self.ended.wait(30)
            self.receiver.slow.clear()
        return target

    @staticmethod
    def healthy(host):
        from scripts.cluster import http_status

        return http_status(f"{host.url}/healthz") == 200


# --- The invariants ---------------------------------------------------------------------------


def check(database_url, state, record, receiver, injector, postgres, pg_databases, ci):
    import psycopg

    results = {}
    figures = {}

    def rows(sql, *params, url=database_url):
        with psycopg.connect(url, autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()

    def verdict(name, problems):
        results[name] = {
            "pass": not problems,
            "problems": [str(p) for p in problems[:20]],
            "count": len(problems),
        }

    verdict("the portal recovered from every fault", injector.unrecovered)
    by_start = sorted(injector.done, key=lambda fault: fault["started"])
    overlapping = [
        (a["kind"], b["kind"])
        for n, a in enumerate(by_start)
        for b in by_start[n + 1 :]
        if b["started"] < a["recovered"]
    ]
    figures["faults_overlapping"] = len(overlapping)

    sweep = timedelta(seconds=SWEEP * 2)
    overdue = rows(
        "SELECT activity_id, kind, deadline FROM environments_operation "
        "WHERE outcome IN ('queued', 'running') AND deadline < now() - %s",
        sweep,
    )
    verdict("no operation active past its deadline plus a sweep", overdue)

    # Over the whole run, from the history: how long after its deadline an operation
    # settled, outside faults. A figure, not an invariant: the next watchdog pass fails
    # it, and how long a pass takes depends on the machine's load.
    faults = [(f["started"], f["recovered"] + MARGIN) for f in injector.done]
    late = []
    for deadline, finished in rows(
        "SELECT deadline, finished_at FROM environments_operation WHERE finished_at > deadline"
    ):
        if not any(start <= deadline.timestamp() <= end for start, end in faults):
            late.append((finished - deadline).total_seconds())
    figures["settled_after_deadline_outside_faults"] = {
        "count": len(late),
        "over_two_sweeps": sum(1 for over in late if over > 2 * SWEEP),
        "max_seconds": round(max(late, default=0), 1),
    }

    operations = {
        str(activity): (outcome, started, finished)
        for activity, outcome, started, finished in rows(
            "SELECT activity_id, outcome, started_at, finished_at FROM environments_operation"
        )
    }
    missing = []
    settle = []
    for activity, at in record.accepted:
        found = operations.get(activity)
        if found is None or found[0] in ("queued", "running"):
            missing.append((activity, found and found[0]))
        elif found[2] is not None:
            settle.append(found[2].timestamp() - at)
    verdict("every 202 has its history row, settled", missing)
    if settle:
        settle.sort()
        figures["confirm_to_settled_seconds"] = {
            "count": len(settle),
            "p50": round(statistics.median(settle), 2),
            "p99": round(settle[min(len(settle) - 1, int(len(settle) * 0.99))], 2),
        }
    figures["operations_by_outcome"] = dict(
        rows("SELECT outcome, count(*) FROM environments_operation GROUP BY outcome")
    )

    # Driver actions done twice: the same (environment, action, what, since) recorded
    # more than once, allowed only when the operation's log says an attempt was cut off.
    actions = Counter()
    path = state / "actions"
    for line in path.read_text().splitlines() if path.exists() else []:
        actions[tuple(line.split())] += 1
    twice = []
    for key, count in actions.items():
        if count < 2:
            continue
        slug, since = key[0], key[-1]
        cut = rows(
            "SELECT count(*) FROM environments_operation o "
            "JOIN environments_environment e ON e.id = o.environment_id "
            "JOIN environments_operationlogline l ON l.operation_id = o.id "
            "WHERE e.slug = %s AND o.memo->>'since' = %s AND l.text LIKE %s",
            slug,
            since,
            "%was cut off%",
        )[0][0]
        if not cut:
            twice.append((key, count))
    figures["driver_actions"] = sum(actions.values())
    figures["driver_actions_repeated_after_a_cut"] = sum(
        count - 1 for key, count in actions.items() if count > 1
    )
    verdict("no driver action ran twice unless its first attempt was cut off (and logged)", twice)

    # Two Maintain operations running on one environment at one moment.
    maintain = rows(
        "SELECT e.slug, o.activity_id, o.started_at, coalesce(o.finished_at, now()) "
        "FROM environments_operation o JOIN environments_environment e ON e.id = o.environment_id "
        # The Maintain kinds by name: history rows written finished (roles, windows
        # scheduled or cancelled) and access grants are not Maintain operations.
        "WHERE o.kind IN ('restart_service', 'enable_maintenance', 'disable_maintenance', "
        "'resume', 'rollback', 'abort') "
        "ORDER BY e.slug, o.started_at"
    )
    overlaps = []
    last = {}
    for slug, activity, started, finished in maintain:
        before = last.get(slug)
        if before and started < before[1]:
            overlaps.append((slug, before[0], activity))
        if not before or finished > before[1]:
            last[slug] = (activity, finished)
    verdict("never two Maintain operations at once on one environment", overlaps)

    windows = rows(
        "SELECT w.id, e.slug, w.state, w.started_at, w.ended_at "
        "FROM environments_maintenancewindow w JOIN environments_environment e "
        "ON e.id = w.environment_id ORDER BY e.slug, w.started_at"
    )
    figures["windows_by_state"] = dict(Counter(state_ for _, _, state_, _, _ in windows))
    unsettled = [
        (w, slug, s)
        for w, slug, s, _, _ in windows
        if s not in ("completed", "cancelled", "missed")
    ]
    active_together = []
    last = {}
    for window, slug, _, started, ended in windows:
        if started is None:
            continue
        ended = ended or datetime.now(UTC)
        before = last.get(slug)
        if before and started < before[1]:
            active_together.append((slug, before[0], window))
        last[slug] = (window, ended)
    verdict("every window ended Completed, Cancelled or Missed", unsettled)
    verdict("never two windows active at once on one environment", active_together)

    ended_accounts = rows(
        "SELECT username FROM environments_databaseaccount WHERE ended_at IS NOT NULL"
    )
    roles = {name for (name,) in rows("SELECT rolname FROM pg_roles", url=postgres.url("postgres"))}
    left_roles = [name for (name,) in ended_accounts if name in roles]
    figures["database_accounts"] = rows(
        "SELECT count(*), count(ended_at) FROM environments_databaseaccount"
    )[0]
    verdict("no PostgreSQL role left for an ended database account", left_roles)
    rules_file = state / "firewall-rules"
    held = {line.split()[0] for line in rules_file.read_text().splitlines() if line.strip()}
    ended_rules = rows("SELECT id FROM environments_firewallrule WHERE ended_at IS NOT NULL")
    left_rules = [rule for (rule,) in ended_rules if str(rule) in held]
    figures["firewall_rules"] = rows(
        "SELECT count(*), count(ended_at) FROM environments_firewallrule"
    )[0]
    verdict("no firewall rule left for an ended grant", left_rules)

    # An admin made the user a team member: the grants their role allowed ended with it.
    outlived = rows(
        "SELECT 'firewall rule', g.id, g.requested_by_id FROM environments_firewallrule g "
        "WHERE g.ended_at IS NULL UNION ALL "
        "SELECT 'database account', g.id, g.requested_by_id FROM environments_databaseaccount g "
        "WHERE g.ended_at IS NULL"
    )
    members = {
        user
        for (user,) in rows(
            "SELECT m.user_id FROM environments_projectmembership m "
            "JOIN auth_user u ON u.id = m.user_id WHERE m.role = 'member' AND NOT u.is_superuser"
        )
    }
    outlived = [grant for grant in outlived if grant[2] in members]
    figures["admin_role_changes"] = rows(
        "SELECT count(*) FROM environments_operation WHERE kind = 'change_project_role'"
    )[0][0]
    verdict("no grant outlives its holder's maintain role", outlived)

    deliveries = rows(
        "SELECT delivery_id, state, attempts, event, payload->>'activity_id' "
        "FROM environments_webhookdelivery"
    )
    max_attempts = SETTINGS["DELIVERY_MAX_ATTEMPTS"]
    undelivered = [
        (d, s, a)
        for d, s, a, _, _ in deliveries
        if not (s == "delivered" or (s == "failed" and a >= max_attempts))
    ]
    figures["webhook_deliveries"] = dict(Counter(s for _, s, _, _, _ in deliveries))
    reached = {activity for _, _, activity in receiver.received}
    verdict(
        "webhooks reached the receiver",
        [] if reached or not deliveries else ["no delivery reached the receiver"],
    )
    verdict("every webhook delivery delivered, or given up after its last attempt", undelivered)
    ids_per_event = defaultdict(set)
    for delivery, event, activity in receiver.received:
        ids_per_event[(event, activity)].add(delivery)
    duplicates = [key for key, ids in ids_per_event.items() if len(ids) > 1]
    verdict("no webhook event received twice with different delivery ids", duplicates)

    # Client errors, per fault window.
    windows_of = [
        (fault["kind"], fault["started"], fault["recovered"] + MARGIN) for fault in injector.done
    ]
    per_fault = Counter()
    outside = []
    answers = Counter()
    for at, answered, what, status in record.requests:
        answers[str(status)] += 1
        if status in FINE:
            continue
        # A request sent just before a fault may be cut by it: it counts for the fault
        # when any of its time falls in the fault's window.
        matched = [kind for kind, start, end in windows_of if at <= end and answered >= start]
        if matched:
            per_fault[matched[0]] += 1
        else:
            outside.append((round(at, 1), what, status))
    figures["client_answers"] = dict(answers)
    figures["client_errors_by_request"] = dict(
        Counter(f"{what} {status}" for *_, what, status in record.requests if status not in FINE)
    )
    figures["client_errors_per_fault"] = dict(per_fault)
    figures["client_errors_outside_faults"] = len(outside)
    if not ci:
        verdict("no client error outside a fault window", outside)
    return results, figures


def quiet(database_url, log):
    """Wait until no operation is active, no window is still to come or active and no
    delivery is pending, and then two sweeps more (what a sweep would still settle);
    at most until the last window the clients could have scheduled has ended and every
    deadline has passed, or longer while the webhook deliveries still pending keep
    falling (a backlog being worked off, up to QUIET_DELIVERIES_SECONDS more)."""
    import psycopg

    pending_sql = (
        "SELECT (SELECT count(*) FROM environments_operation "
        "WHERE outcome IN ('queued', 'running')), "
        "(SELECT count(*) FROM environments_maintenancewindow "
        "WHERE state IN ('scheduled', 'active')), "
        "(SELECT count(*) FROM environments_webhookdelivery WHERE state = 'pending')"
    )
    started = time.monotonic()
    end = started + 120 + 60 + DEADLINE + 4 * SWEEP + 30
    pending = None
    deliveries = []  # pending deliveries, a count every 5 s
    while True:
        with contextlib.suppress(psycopg.OperationalError):
            with psycopg.connect(database_url, autocommit=True) as connection:
                pending = connection.execute(pending_sql).fetchone()
            if not any(pending):
                break
            deliveries.append(pending[2])
        falling = len(deliveries) > 1 and deliveries[-1] < deliveries[-2]
        if time.monotonic() > end and not (
            falling and time.monotonic() < end + QUIET_DELIVERIES_SECONDS
        ):
            break
        time.sleep(5)
    time.sleep(2 * SWEEP)
    log(f"Quiet after {time.monotonic() - started:.0f} s (still pending: {pending})")


# --- The run ----------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m scripts.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument(
        "--ci", action="store_true", help="check the invariants only, not the client errors"
    )
    parser.add_argument(
        "--report", default=None, help="the JSON report (default var/soak/report-<seed>.json)"
    )
    parser.add_argument("--state-dir", default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    rng = random.Random(seed)
    seconds = args.minutes * 60
    print(f"Soak: {args.minutes:g} minutes, seed {seed}", flush=True)
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="lcs-soak-")).resolve()
    state.mkdir(parents=True, exist_ok=True)
    report_path = Path(args.report or ROOT / "var" / "soak" / f"report-{seed}.json")

    def log(text):
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    postgres = Postgres()
    redis = Redis(state)
    receiver = Receiver()
    cluster = supervisor = None
    stop, clients_stop = threading.Event(), threading.Event()
    record = Record()
    injector = None
    results = figures = None
    users = []
    faulting = []
    supervision = None
    interrupted = False
    try:
        postgres.init()
        redis.start()
        log(f"PostgreSQL in {postgres.dir} on port {postgres.port}, Redis on port {redis.port}")
        slugs = [f"soak-{n:02}" for n in range(1, ENVIRONMENTS + 1)]
        hanging = slugs[:HANGING]
        pg_slugs = slugs[HANGING : HANGING + POSTGRES_ENVIRONMENTS]
        databases = {slug: f"erp_{slug.replace('-', '_')}" for slug in pg_slugs}
        set_up_database_server(postgres, databases.values())
        users = [f"user{n:02}" for n in range(1, args.users + 1)]
        nginx_port, environment_port, upstream_port, *host_ports = free_ports(5)
        environ = dict(
            SETTINGS,
            **firewall_settings(state),
            PORTAL_DATABASE_DRIVER="postgres",
            PORTAL_DB_SERVER_SOAK_URL=postgres.url("postgres", user="portal_jit"),
            PORTAL_BASE_URL=f"http://127.0.0.1:{nginx_port}",
        )
        cluster = Cluster(
            state_dir=state / "cluster",
            database_url=postgres.url(),
            redis_url=redis.url,
            host_ports=host_ports,
            nginx_port=nginx_port,
            environment_port=environment_port,
            upstream_port=upstream_port,
            environ=environ,
        )
        cluster.write_drivers(drivers_file(state, slugs, hanging))
        for host in cluster.hosts:
            host.env["PORTAL_DRIVERS_FILE"] = str(host.var_dir / "drivers.json")
        log("Preparing the database (migrate, seed)...")
        cluster.prepare(seed=False)
        spec = dict(
            environments=slugs,
            databases=databases,
            users=users,
            password=PASSWORD,
            webhook=receiver.url,
        )
        seeded = json.loads(
            cluster.manage("shell", "-c", SEED.format(spec=json.dumps(spec)))
            .strip()
            .splitlines()[-1]
        )
        tokens, memberships = seeded["tokens"], seeded["memberships"]
        cluster.start()
        log(f"Cluster up: nginx {cluster.url}, hosts {[h.url for h in cluster.hosts]}")
        supervisor = Supervisor(cluster, backoff=2, out=sys.stdout)

        def supervise():
            while not stop.is_set():
                supervisor.check()
                time.sleep(0.5)

        supervision = threading.Thread(target=supervise, daemon=True)
        supervision.start()

        clients = [
            threading.Thread(
                target=act,
                args=(
                    Client(nginx_port, name, tokens[name]),
                    random.Random(rng.random()),
                    record,
                    slugs,
                    pg_slugs,
                    clients_stop,
                    time.monotonic() + max(seconds - 90, seconds / 2),
                    # The first user is the admin.
                    memberships if name == users[0] else None,
                ),
                daemon=True,
            )
            for name in users
        ]
        for thread in clients:
            thread.start()
        injector = Injector(cluster, postgres, redis, receiver, rng, log)
        plan = plan_faults(rng, seconds)
        log("Faults planned: " + ", ".join(f"{kind} at {offset:g} s" for offset, kind in plan))
        began = time.monotonic()
        for offset, kind in plan:
            wait = began + offset - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            log(f"injecting {kind}")
            # Each fault in a thread of its own: the next may come while one lasts.
            faulting.append(threading.Thread(target=injector.inject, args=(kind,)))
            faulting[-1].start()
        for thread in faulting:
            thread.join()
        time.sleep(max(0, began + seconds - time.monotonic()))
        clients_stop.set()
        for thread in clients:
            thread.join(timeout=CLIENT_TIMEOUT + 5)
        log("Clients stopped; quiet until nothing is pending (operations, windows, deliveries)...")
        quiet(postgres.url(), log)
        results, figures = check(
            postgres.url(), state, record, receiver, injector, postgres, databases, args.ci
        )
    except ClusterError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        log("Interrupted: stopping the cluster, Redis and PostgreSQL")
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave servers running.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop.set()
        clients_stop.set()
        # Ctrl-C may come while a thread starts: is_alive() is False until it runs.
        if injector is not None:
            injector.end()
        # The supervisor's last pass ends before the hosts stop: it would start them again.
        if supervision is not None and supervision.is_alive():
            supervision.join(timeout=60)
        steps = [
            cluster.stop if cluster is not None else None,
            lambda: stop_driver_commands(state),
            redis.stop,
            # Its log names both sides of a deadlock.
            lambda: postgres.destroy(keep_log=state / "postgres.log"),
            receiver.server.shutdown,
        ]
        for step in filter(None, steps):
            try:
                step()
            except Exception as exc:  # the next steps still run: nothing left behind
                log(f"Clean-up: {exc!r}")
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        return 130
    report = {
        "seed": seed,
        "minutes": args.minutes,
        "users": len(users),
        "environments": ENVIRONMENTS,
        "settings": SETTINGS,
        "faults": [
            {**f, "seconds": round(f["recovered"] - f["started"], 1)} for f in injector.done
        ],
        "host_restarts": supervisor.restarts if supervisor else {},
        "figures": figures,
        "invariants": results,
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, default=str))
    print_report(report)
    print(f"Report: {report_path}\nSeed: {seed}")
    return 0 if all(r["pass"] for r in results.values()) else 1


def print_report(report):
    figures = report["figures"]
    print("\n== Soak report ==")
    print(f"operations by outcome: {figures['operations_by_outcome']}")
    print(
        f"faults: {dict(Counter(f['kind'] for f in report['faults']))}; "
        f"host restarts {report['host_restarts']}"
    )
    print(f"client answers: {figures['client_answers']}")
    print(
        f"client errors per fault: {figures['client_errors_per_fault']}, "
        f"outside: {figures['client_errors_outside_faults']}"
    )
    print(f"Confirm to settled: {figures.get('confirm_to_settled_seconds')}")
    for key in (
        "settled_after_deadline",
        "settled_after_deadline_outside_faults",
        "faults_overlapping",
        "admin_role_changes",
        "driver_actions",
        "driver_actions_repeated_after_a_cut",
        "windows_by_state",
        "database_accounts",
        "firewall_rules",
        "webhook_deliveries",
    ):
        print(f"{key}: {figures.get(key)}")
    for name, result in report["invariants"].items():
        mark = "pass" if result["pass"] else f"FAIL ({result['count']}): {result['problems'][:5]}"
        print(f"  [{mark}] {name}")


if __name__ == "__main__":
    sys.exit(main())
