"""The portal behind a transaction-pooling PgBouncer, as docs/deploy.md sets hosts up:
gunicorn and a db_worker reach PostgreSQL through a real pgbouncer on a free port, with
fewer server connections than clients, and PORTAL_PG_PREPARE=0."""

import csv
import io
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.db import connection

from environments.models import Operation, OperationKind, Outcome
from tests.api_clients import token_for
from tests.conftest import subprocess_env
from tests.helpers import add_history
from tests.live import Gunicorn, free_port, request, signed_in, start_worker, stop, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="PgBouncer pools PostgreSQL: the PostgreSQL run of `make test` runs it",
    ),
]

#: Server connections PgBouncer may open: fewer than the clients below, so they share.
POOL_SIZE = 3


class ThrowawayPgbouncer:
    """pgbouncer in transaction mode on a free port of 127.0.0.1, in front of the test
    run's PostgreSQL; as the postgres user when the tests run as root (it refuses root)."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lcs-pgbouncer-", dir="/tmp"))
        self.process = None

    def start(self):
        database = connection.settings_dict
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={database['HOST'] or '127.0.0.1'} port={database['PORT'] or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'users.txt'}\n"
            # What deploy/pgbouncer/pgbouncer.ini asks for.
            "pool_mode = transaction\nserver_reset_query =\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"default_pool_size = {POOL_SIZE}\nreserve_pool_size = 0\nmax_client_conn = 200\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        command = [shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"]
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            for path in self.dir.iterdir():
                shutil.chown(path, "postgres", "postgres")
            command += ["-u", "postgres"]
        self.process = subprocess.Popen(
            [*command, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_for(self.answers, timeout=15), self.log()

    def answers(self):
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                return conn.execute("select 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/{connection.settings_dict['NAME']}"

    def log(self):
        path = self.dir / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def stop(self):
        stop(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def portal_behind_pgbouncer(tmp_path):
    bouncer = ThrowawayPgbouncer()
    # A restart takes 5 s, so that the Confirms below all meet it running.
    env = subprocess_env(
        DATABASE_URL=bouncer.url, PORTAL_PG_PREPARE="0", SIMULATED_DRIVER_DELAY="5"
    )
    server = Gunicorn(tmp_path / "gunicorn.log", workers=2, threads=4, env=env)
    worker = None
    try:
        bouncer.start()
        server.start()
        worker = start_worker(tmp_path / "worker.log", env=env)
        yield server, bouncer
    finally:
        stop(worker)
        server.stop()
        bouncer.stop()
    log = server.log()
    assert "Traceback" not in log, log[-3000:]


def test_the_portal_works_through_a_transaction_pooling_pgbouncer(
    portal_behind_pgbouncer, environment, manager, member, capsys
):
    server, bouncer = portal_behind_pgbouncer
    port = server.port
    details = environment.get_absolute_url()
    add_history(environment, manager, 1_201)
    session = signed_in(port, manager, page=details)
    _, secret = token_for(manager)

    # Pages, the poll and the API, from more threads than PgBouncer has connections.
    paths = ["/environments/", details, f"{details}status/", "/history/", f"{details}history/"]
    answers = []

    def browse():
        for path in paths * 3:
            answers.append(request(port, path, headers=session.headers()).status)

    threads = [threading.Thread(target=browse) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers) == {200} and len(answers) == 6 * 3 * len(paths)
    api = request(port, "/api/v1/environments", headers={"Authorization": f"Bearer {secret}"})
    assert api.status == 200

    # Concurrent Confirms: exactly one starts; the worker runs it through PgBouncer too.
    confirms = []

    def confirm():
        confirms.append(
            request(
                port,
                f"{details}maintain/restart_service/",
                method="POST",
                body=urlencode({"service": "aos", "reason": "through PgBouncer"}),
                headers=session.headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
            ).status
        )

    threads = [threading.Thread(target=confirm) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(confirms) == [200] + [409] * 9, confirms
    restart = Operation.objects.get(kind=OperationKind.RESTART_SERVICE, reason="through PgBouncer")
    assert wait_for(lambda: _outcome(restart) == Outcome.SUCCEEDED, timeout=30)

    # The CSV export, page by page, with nothing held open between transactions.
    export = request(
        port, f"/environments/{environment.slug}/history.csv", headers=session.headers(htmx=False)
    )
    assert export.status == 200, export.body[:500]
    rows = list(csv.reader(io.StringIO(export.body)))
    assert len(rows) == 1 + 1_201 + 1  # the header, the rows added, the restart

    with capsys.disabled():
        print(
            f"\npgbouncer (transaction mode, {POOL_SIZE} server connections): "
            f"{len(answers)} page requests from 6 threads all 200; 10 Confirms, 1 started, "
            f"finished Succeeded by a db_worker through it; CSV of {len(rows) - 1} rows"
        )


def _outcome(operation):
    operation.refresh_from_db()
    return operation.outcome
