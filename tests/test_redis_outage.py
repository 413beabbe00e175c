"""Redis going away: a portal with its sessions and cache in Redis (as docs/deploy.md
sets hosts up) goes on from PostgreSQL while Redis is down, and uses Redis again when
it is back. A Redis of its own, on a free port, is stopped and started for real."""

import re
import shutil
import signal
import subprocess
import time
from urllib.parse import urlencode

import pytest
import redis
from django.conf import settings

from environments.models import Operation, OperationKind
from tests.api_clients import token_for
from tests.conftest import PASSWORD, subprocess_env
from tests.live import Gunicorn, free_port, request, signed_in, stop, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class ThrowawayRedis:
    """redis-server on a free port of 127.0.0.1, keeping nothing on disk."""

    def __init__(self, folder):
        self.port = free_port()
        self.folder = folder
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        assert wait_for(lambda: _answers(client), timeout=10), "redis-server did not start"

    def stop(self):
        stop(self.process)


def _answers(client):
    try:
        return client.ping()
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture
def portal_on_redis(tmp_path):
    cache = ThrowawayRedis(tmp_path)
    env = subprocess_env(PORTAL_CACHE_URL=cache.url, PORTAL_SESSION_ENGINE="cached_db")
    server = Gunicorn(tmp_path / "gunicorn.log", workers=1, threads=4, env=env)
    try:
        cache.start()
        server.start()
        yield server, cache
    finally:
        server.stop()
        cache.stop()


def sign_in_through_the_form(port, user):
    """Sign in as a browser does: the form's CSRF token, then the POST. The session
    cookie, or None when refused."""
    page = request(port, "/accounts/login/")
    cookies = {name: morsel.value for name, morsel in page.cookies().items()}
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1)
    answer = request(
        port,
        "/accounts/login/",
        method="POST",
        body=urlencode(
            {
                "csrfmiddlewaretoken": token,
                "username": user.username,
                "password": PASSWORD,
                "next": "/environments/",
            }
        ),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items()),
            "Referer": f"http://127.0.0.1:{port}/accounts/login/",
        },
    )
    assert answer.status == 302, answer.body[:500]
    return answer.cookies()[settings.SESSION_COOKIE_NAME].value


def test_the_portal_goes_on_from_postgresql_while_redis_is_down_and_back_on_redis_after(
    portal_on_redis, environment, manager, maint, capsys
):
    server, cache = portal_on_redis
    port = server.port
    details = environment.get_absolute_url()
    session = signed_in(port, manager, page=details)
    cookie = {"Cookie": session.cookie_header}
    maint_cookie = {"Cookie": signed_in(port, maint).cookie_header}
    _, secret = token_for(manager)
    pages = {
        "list": ("/environments/", cookie, 200),
        "details": (details, cookie, 200),
        "poll": (f"{details}status/", {**cookie, "HX-Request": "true"}, 200),
        "history": ("/history/", cookie, 200),
        "forward auth": (f"{details}auth/", maint_cookie, 204),
        "API": ("/api/v1/environments", {"Authorization": f"Bearer {secret}"}, 200),
        "signed out": ("/environments/", {}, 302),
    }

    def answers():
        return {
            name: request(port, path, headers=sent).status
            for name, (path, sent, _) in pages.items()
        }

    expected = {name: status for name, (_, _, status) in pages.items()}
    assert answers() == expected

    cache.stop()
    started = time.monotonic()
    assert answers() == expected  # with nothing from Redis
    new_session = {
        "Cookie": f"{settings.SESSION_COOKIE_NAME}={sign_in_through_the_form(port, manager)}"
    }
    assert request(port, "/environments/", headers=new_session).status == 200
    confirm = request(
        port,
        f"{details}maintain/enable_maintenance/",
        method="POST",
        body=urlencode({"reason": "while Redis is down"}),
        headers=session.headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
    )
    assert confirm.status == 200, confirm.body[:500]
    assert Operation.objects.filter(kind=OperationKind.ENABLE_MAINTENANCE).count() == 1
    down_for = time.monotonic() - started

    cache.start()  # an empty Redis, as after a restart
    client = redis.Redis.from_url(cache.url)
    # Used again once the process stops leaving it alone (lcs_portal/cache.AWAY_SECONDS).
    assert wait_for(lambda: answers() == expected and client.dbsize() > 0, timeout=20)

    # A Redis that takes connections but never answers (stopped, not gone): the socket
    # timeouts end each wait, and the process then leaves Redis alone.
    cache.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert answers() == expected
        hung_for = time.monotonic() - started
    finally:
        cache.process.send_signal(signal.SIGCONT)

    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert "it cannot be reached (Timeout" in log and "it cannot be reached (Error" in log
    with capsys.disabled():
        print(
            f"\nredis outage: {len(pages)} kinds of request and a sign-in answered as with "
            f"Redis, and a Maintain action started, in {down_for:.2f} s without it; the "
            f"{len(pages)} requests took {hung_for:.2f} s with a Redis that did not answer"
        )
