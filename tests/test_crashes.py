"""Crashes: the web server restarted or killed mid-operation, and PostgreSQL gone for a
moment. (kill -9 of the db_worker mid-restart is tests/test_worker_process.py.)"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings
from django.db import connection

from environments.models import Operation, Outcome, Status
from tests.conftest import subprocess_env
from tests.live import (
    Gunicorn,
    ThrowawayPostgres,
    free_port,
    held_drivers,
    post_form,
    request,
    signed_in,
    start_worker,
    stop,
    wait_for,
)


@pytest.mark.django_db(transaction=True)
def test_restarting_or_killing_gunicorn_mid_operation_loses_nothing(
    environment, manager, tmp_path, capsys
):
    release, held = held_drivers(tmp_path, environment.slug)
    env = subprocess_env(**held)
    server = Gunicorn(tmp_path / "gunicorn.log", workers=2, threads=4, env=env).start()
    worker = start_worker(tmp_path / "worker.log", env=env)
    try:
        port, slug = server.port, environment.slug
        session = signed_in(port, manager)
        answer = post_form(
            session,
            port,
            f"/environments/{slug}/maintain/restart_service/",
            {"service": "aos", "reason": "crash test"},
        )
        assert answer.status == 200, answer.body[:500]
        operation = Operation.objects.get()
        assert wait_for(lambda: Operation.objects.get().outcome == Outcome.RUNNING)

        # A graceful reload (SIGHUP: new workers, the listening socket kept) while a
        # browser keeps polling: every poll is answered.
        polls, waits, started, stop_polling = [], [], [], threading.Event()

        def poll():
            while not stop_polling.is_set():
                started.append(time.monotonic())
                try:
                    status = request(
                        port, f"/environments/{slug}/status/", headers=session.headers()
                    ).status
                except Exception as exc:  # recorded: the assertion shows it
                    status = repr(exc)
                polls.append(status)
                waits.append(time.monotonic() - started[-1])
                time.sleep(0.02)

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.3)
        booted = server.log().count("Booting worker")
        hup = time.monotonic()
        os.kill(server.process.pid, signal.SIGHUP)
        # New workers boot, then the old ones finish what they were answering and exit.
        assert wait_for(lambda: server.log().count("Booting worker") >= booted + 2, timeout=30)
        assert wait_for(lambda: server.log().count("Worker exiting") >= 2, timeout=30)
        reloaded = time.monotonic()
        # Polls go on until three sent after the reload have been answered.
        assert wait_for(lambda: sum(t > reloaded for t in started[: len(polls)]) >= 3)
        stop_polling.set()
        poller.join(timeout=30)
        assert started[0] < hup, "no poll before the reload"
        assert polls and set(polls) == {200}, polls

        # A crash: kill -9 the master and its workers, start a new one on the same port.
        server.kill()
        killed = time.monotonic()
        server = Gunicorn(tmp_path / "gunicorn2.log", workers=2, threads=4, env=env, port=port)
        server.start()
        back_after = time.monotonic() - killed
        answer = request(port, f"/environments/{slug}/status/", headers=session.headers())
        assert answer.status == 200, "the session did not survive the restart"
        assert "Restarting service" in answer.body

        release.touch()
        answer = None

        def settled():
            nonlocal answer
            answer = request(port, f"/environments/{slug}/status/", headers=session.headers())
            return answer.status == 200 and 'data-status="deployed"' in answer.body

        assert wait_for(settled, timeout=30)
        assert "Deployed" in answer.body
        operation.refresh_from_db()
        assert operation.outcome == Outcome.SUCCEEDED
        assert Operation.objects.count() == 1
        environment.refresh_from_db()
        assert environment.status == Status.DEPLOYED
        with capsys.disabled():
            print(
                f"\ngunicorn restarts ({connection.vendor}): {len(polls)} polls across a "
                f"graceful reload, all 200, the slowest {max(waits):.2f} s; "
                f"after kill -9 a new gunicorn answered in "
                f"{back_after:.1f} s; the operation then finished Succeeded, 1 history row"
            )
    finally:
        release.touch()
        stop(worker)
        server.stop()


# --- PostgreSQL gone for a moment --------------------------------------------------------


SEED = """
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from environments.models import Project, ProjectMembership
from tests.conftest import make_environment, make_user
project = Project.objects.create(name="Outage", slug="outage")
make_environment(project, name="Outage sandbox", slug="outage-sandbox")
user = make_user("ops")
ProjectMembership.objects.create(user=user, project=project, role="owner")
session = import_module(settings.SESSION_ENGINE).SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(session.session_key)
"""


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="uses a PostgreSQL cluster of its own: the PostgreSQL run of `make test` runs it",
)
def test_portal_and_worker_recover_from_a_postgresql_outage(tmp_path, capsys):
    postgres = ThrowawayPostgres()
    portal = None
    try:
        postgres.init()
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="lcs_portal.settings_test",
            DATABASE_URL=postgres.url,
            DEBUG="0",
            PORTAL_TLS="0",
            PORTAL_LOCAL_SANDBOX="0",
            SIMULATED_DRIVER_DELAY="0.3",
            ALLOWED_HOSTS="127.0.0.1",
        )
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]

        def run_manage(*args):
            result = subprocess.run(
                [*manage, *args],
                env=env,
                cwd=settings.BASE_DIR,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout

        run_manage("migrate", "--no-input", "-v", "0")
        session_key = run_manage("shell", "-c", SEED).strip().splitlines()[-1]
        cookie = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}"}

        port = free_port()
        log_path = tmp_path / "run_portal.log"
        with log_path.open("w") as log:
            portal = subprocess.Popen(
                [
                    *manage,
                    "run_portal",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "--threads",
                    "2",
                    "--no-local-sandbox",
                ],
                env=env,
                cwd=settings.BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        details = "/environments/outage-sandbox/"
        assert wait_for(lambda: answers(port, details, cookie) == 200, timeout=30), (
            log_path.read_text()
        )

        postgres.stop()
        down = time.monotonic()
        for path in (details, "/environments/", "/history/", details + "status/"):
            answer = request(port, path, headers=cookie)
            assert answer.status == 500, (path, answer.status)
            assert "Something went wrong" in answer.body
            assert "Traceback" not in answer.body and "psycopg" not in answer.body
        # Long enough for the worker to notice, exit and be started again (twice).
        time.sleep(5)
        assert portal.poll() is None, "run_portal stopped when the database went away"

        postgres.start()
        outage = time.monotonic() - down
        up = time.monotonic()
        assert wait_for(lambda: answers(port, details, cookie) == 200, timeout=30)
        pages_back = time.monotonic() - up

        session = signed_in_by_cookie(port, cookie, details)
        answer = request(
            port,
            details + "maintain/restart_service/",
            method="POST",
            body="service=aos&reason=after+the+outage",
            headers=session
            | {"Content-Type": "application/x-www-form-urlencoded", "HX-Request": "true"},
        )
        assert answer.status == 200, answer.body[:1000]

        def settled():
            answer = request(port, details + "status/", headers=cookie)
            return 'data-status="deployed"' in answer.body and "Succeeded" in answer.body

        assert wait_for(settled, timeout=30), log_path.read_text()[-5000:]
        worker_back = time.monotonic() - up
        log = log_path.read_text()
        assert "db_worker exited" in log and "starting it again" in log
        with capsys.disabled():
            print(
                f"\npostgresql outage: {outage:.1f} s down, pages answered the plain 500 page; "
                f"pages back {pages_back:.1f} s after PostgreSQL, a restart started then "
                f"finished Succeeded {worker_back:.1f} s after it"
            )
    finally:
        if portal is not None and portal.poll() is None:
            portal.terminate()
            try:
                portal.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(portal.pid, signal.SIGKILL)
                portal.wait(timeout=10)
        postgres.destroy()


def answers(port, path, headers):
    try:
        return request(port, path, headers=headers, timeout=5).status
    except OSError:
        return None


def signed_in_by_cookie(port, cookie, page):
    """The headers of a signed-in htmx request: the session cookie and a CSRF token."""
    import re

    answer = request(port, page, headers=cookie)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', answer.body).group(1)
    csrf_cookie = answer.cookies()[settings.CSRF_COOKIE_NAME].value
    return {
        "Cookie": f"{cookie['Cookie']}; {settings.CSRF_COOKIE_NAME}={csrf_cookie}",
        "X-CSRFToken": token,
    }
