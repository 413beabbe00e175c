"""A real nginx in front of an environment asks the portal, running under gunicorn,
before every request (auth_request), with the shipped docs/nginx-forward-auth.conf."""

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.test import Client

from environments import operations
from environments.models import EnvironmentRole, EnvironmentRoleKind, Status
from tests.conftest import make_user, subprocess_env

SHIPPED_CONF = settings.BASE_DIR / "docs" / "nginx-forward-auth.conf"
# The portal's session cookie, and the environment's own cookie of the name Django uses
# by default, which environments behind the gate set too.
PORTAL = settings.SESSION_COOKIE_NAME
ENVIRONMENT_COOKIE = "sessionid=envvalue"
# tests.conftest's environment: nginx is configured for it before any test creates it.
ENVIRONMENT_SLUG = "demo-sandbox"


def find_nginx():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        pytest.fail(
            "nginx is not installed; the forward-auth test needs Debian's nginx "
            "(scripts/ensure-system-packages installs it, as root)."
        )
    return nginx


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port, path="/", *, method="GET", cookies=(), headers=None):
    """One request that follows no redirect, with one Cookie header line per item of
    ``cookies``: (status, headers, body)."""
    body = b"x=1" if method == "POST" else None
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        for cookie in cookies:
            connection.putheader("Cookie", cookie)
        if body:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        # latin-1: whatever bytes reached the environment come back, undecoded.
        return response.status, dict(response.getheaders()), response.read().decode("latin-1")
    finally:
        connection.close()


def wait_until_answering(process, port, path, log, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited with {process.returncode}:\n{log.read_text()}")
        try:
            request(port, path)
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing answered on port {port} within {timeout} s:\n{log.read_text()}")


def stop(process):
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def render_shipped_conf(**values):
    text = SHIPPED_CONF.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    left = set(re.findall(r"@[A-Z_]+@", text))
    assert not left, f"placeholders the test does not fill: {left}"
    return text


# What the stand-in environment answers: the identity and cookies that reached it.
UPSTREAM_ANSWER = (
    r"environment reached\nuser=$http_x_portal_user\nroles=$http_x_portal_roles"
    r"\nwindow=$http_x_portal_maintenance_window\ncookie=$http_cookie\n"
)


def nginx_conf(directory, forward_auth_conf, upstream_port):
    """The main configuration: everything under ``directory``, nothing written to /var;
    the environment is a second server that shows what reached it (and takes cookies
    larger than nginx's default 8k line)."""
    return f"""
error_log {directory}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;

    server {{
        listen 127.0.0.1:{upstream_port};
        large_client_header_buffers 4 32k;
        location / {{
            default_type text/plain;
            return 200 "{UPSTREAM_ANSWER}";
        }}
    }}

    include {forward_auth_conf};
}}
"""


@dataclass
class Gate:
    proxy_port: int
    portal_url: str

    @property
    def sign_in_url(self):
        return f"{self.portal_url}/environments/{ENVIRONMENT_SLUG}/sign-in/"

    def get(self, *cookies, **kwargs):
        """A request to the environment through nginx, one Cookie line per argument."""
        return request(self.proxy_port, "/some/page?x=1", cookies=cookies, **kwargs)


@pytest.fixture(scope="module")
def gate(django_db_setup, tmp_path_factory):
    """The portal under gunicorn, and nginx with the shipped conf in front of a stand-in
    environment, for the whole module: each test brings its own users and sessions."""
    nginx = find_nginx()
    tmp_path = tmp_path_factory.mktemp("forward-auth")
    portal_port, upstream_port, proxy_port = free_port(), free_port(), free_port()
    portal_url = f"http://127.0.0.1:{portal_port}"
    gunicorn = nginx_process = None
    try:
        portal_log = tmp_path / "gunicorn.log"
        with portal_log.open("w") as log:
            gunicorn = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "lcs_portal.wsgi",
                    "--bind",
                    f"127.0.0.1:{portal_port}",
                    "--workers",
                    "1",
                    "--threads",
                    "4",
                ],
                env=subprocess_env(PORTAL_TLS=0, ALLOWED_HOSTS="127.0.0.1"),
                cwd=settings.BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_answering(
            gunicorn, portal_port, f"/environments/{ENVIRONMENT_SLUG}/auth/", portal_log
        )

        forward_auth_conf = tmp_path / "forward-auth.conf"
        forward_auth_conf.write_text(
            render_shipped_conf(
                LISTEN=f"127.0.0.1:{proxy_port}",
                SERVER_NAME="127.0.0.1",
                ENVIRONMENT_UPSTREAM=f"http://127.0.0.1:{upstream_port}",
                PORTAL_URL=portal_url,
                ENVIRONMENT_SLUG=ENVIRONMENT_SLUG,
                PORTAL_COOKIE=PORTAL,
            )
        )
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_conf(tmp_path, forward_auth_conf, upstream_port))
        nginx_log = tmp_path / "nginx.out"
        with nginx_log.open("w") as log:
            nginx_process = subprocess.Popen(
                [
                    nginx,
                    "-p",
                    str(tmp_path),
                    "-c",
                    str(conf),
                    "-e",
                    str(tmp_path / "error.log"),
                    "-g",
                    f"daemon off; pid {tmp_path / 'nginx.pid'};",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_answering(nginx_process, proxy_port, "/", nginx_log)
        yield Gate(proxy_port, portal_url)
    finally:
        stop(nginx_process)
        stop(gunicorn)


def session_key(user):
    """A portal session for ``user`` in the shared test database."""
    client = Client()
    client.force_login(user)
    return client.cookies[PORTAL].value


@pytest.fixture
def ursula(environment):
    """A plain User of the environment: let in unless maintenance mode is on."""
    user = make_user("ursula")
    EnvironmentRole.objects.create(
        user=user, environment=environment, role=EnvironmentRoleKind.USER
    )
    return user


@pytest.mark.django_db(transaction=True)
def test_nginx_lets_only_maintenance_roles_through_while_in_maintenance(
    gate, environment, manager, maint, ursula
):
    maint_cookie = f"{PORTAL}={session_key(maint)}"
    user_cookie = f"{PORTAL}={session_key(ursula)}"

    # Deployed: a plain User gets through, named, without the portal's cookie.
    status, _, body = gate.get(f"theme=dark; {user_cookie}", headers={"X-Portal-User": "root"})
    assert status == 200, body
    assert "environment reached" in body
    assert "user=ursula\nroles=user\n" in body
    assert "cookie=theme=dark\n" in body
    assert PORTAL not in body
    status, _, body = gate.get(user_cookie, method="POST")
    assert (status, "environment reached" in body) == (200, True)

    # Not signed in to the portal: off to its sign-in gate.
    status, headers, _ = gate.get()
    assert status == 302
    assert headers["Location"] == gate.sign_in_url

    operation = operations.enable_maintenance(environment, manager)
    operations.complete_operation(operation.pk)
    environment.refresh_from_db()
    assert environment.status == Status.IN_MAINTENANCE

    status, _, body = gate.get(maint_cookie)
    assert status == 200, body
    assert "user=maya\nroles=maintenance_mode_user\n" in body

    status, _, body = gate.get(user_cookie)
    assert status == 403
    assert "environment reached" not in body
    assert f'href="{gate.sign_in_url}"' in body

    operation = operations.disable_maintenance(environment, manager)
    status, _, _ = gate.get(user_cookie)
    assert status == 403, "a User got through while Servicing"
    operations.complete_operation(operation.pk)
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED

    status, _, body = gate.get(user_cookie)
    assert status == 200, body
    assert "user=ursula\nroles=user\n" in body


@pytest.mark.django_db(transaction=True)
def test_nginx_hands_the_planned_maintenance_window_to_the_environment(
    gate, environment, manager, ursula
):
    from datetime import timedelta

    from django.utils import timezone

    from environments import windows

    user_cookie = f"{PORTAL}={session_key(ursula)}"
    _, _, body = gate.get(user_cookie)
    assert "\nwindow=\n" in body  # nothing planned

    starts = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    window = windows.schedule(
        environment, manager, starts_at=starts, ends_at=starts + timedelta(hours=1), reason="x"
    )

    status, _, body = gate.get(user_cookie)
    assert status == 200, body
    utc = "%Y-%m-%dT%H:%M:%SZ"
    planned = f"{window.starts_at:{utc}}/{window.ends_at:{utc}}"
    assert f"\nwindow={planned}\n" in body


# Cookie header lines with one copy of the portal's cookie ("{portal}" is it, whole;
# "{key}" its value), and the cookies the environment must receive.
ONE_PORTAL_COOKIE = {
    "alone": (["{portal}"], ""),
    "after the environment's sessionid": (
        [f"{ENVIRONMENT_COOKIE}; {{portal}}"],
        ENVIRONMENT_COOKIE,
    ),
    "before the environment's sessionid": (
        [f"{{portal}}; {ENVIRONMENT_COOKIE}"],
        ENVIRONMENT_COOKIE,
    ),
    "in the middle": (
        [f"theme=dark; {{portal}}; {ENVIRONMENT_COOKIE}"],
        f"theme=dark; {ENVIRONMENT_COOKIE}",
    ),
    "without spaces": (["theme=dark;{portal};lang=en"], "theme=dark;lang=en"),
    "with spaces and tabs around its name": (
        [f"theme=dark; \t{PORTAL} \t= {{key}} ; lang=en"],
        "theme=dark; lang=en",
    ),
    # Python's str.strip(), and so Django, takes a no-break space for a space.
    "after a no-break space": ([f"theme=dark;\xa0{PORTAL}\xa0={{key}}"], "theme=dark"),
    "beside cookies whose names contain the portal's": (
        [f"x{PORTAL}=1; {{portal}}; {PORTAL}x=2; a={PORTAL}=3"],
        f"x{PORTAL}=1; {PORTAL}x=2; a={PORTAL}=3",
    ),
    "on its own Cookie line after the environment's": (
        [ENVIRONMENT_COOKIE, "{portal}"],
        ENVIRONMENT_COOKIE,
    ),
    "on its own Cookie line before the environment's": (
        ["{portal}", f"{ENVIRONMENT_COOKIE}; theme=dark"],
        f"{ENVIRONMENT_COOKIE}; theme=dark",
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "cookie_lines, environment_cookies", ONE_PORTAL_COOKIE.values(), ids=ONE_PORTAL_COOKIE
)
def test_environment_gets_its_own_cookies_and_never_the_portal_session(
    gate, ursula, cookie_lines, environment_cookies
):
    key = session_key(ursula)
    lines = [line.format(portal=f"{PORTAL}={key}", key=key) for line in cookie_lines]

    status, _, body = gate.get(*lines)

    assert status == 200, body
    assert "user=ursula\nroles=user\n" in body
    assert f"\ncookie={environment_cookies}\n" in body
    assert key not in body


# Two copies of the portal's cookie: nginx cannot know which one is the portal's. Django
# reads the last; the old conf took out only the first and passed the last one on.
PORTAL_COOKIE_TWICE = {
    "a stale one first": [f"{PORTAL}=stale; other=1; {{portal}}"],
    "a stale one last": [f"{{portal}}; other=1; {PORTAL}=stale"],
    "after the environment's sessionid": [f"{ENVIRONMENT_COOKIE}; {PORTAL}=stale; {{portal}}"],
    "the same one twice": ["{portal}; {portal}"],
    "the second with a space before =": [f"{{portal}};{PORTAL} =stale"],
    "the second after a no-break space": [f"{{portal}};\xa0{PORTAL}=stale"],
    "on two Cookie lines": [f"{PORTAL}=stale", "{portal}"],
    "on two Cookie lines, the second in the middle": [
        "{portal}",
        f"theme=dark; {PORTAL}=stale; lang=en",
    ],
    # No valid session at all: the portal would answer 401 and nginx send the browser to
    # sign in (302); the 400 shows that nginx answered before asking the portal.
    "neither of them valid": [f"{PORTAL}=stale; {PORTAL}=other"],
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cookie_lines", PORTAL_COOKIE_TWICE.values(), ids=PORTAL_COOKIE_TWICE)
def test_portal_cookie_sent_twice_is_refused_before_the_portal_is_asked(gate, ursula, cookie_lines):
    key = session_key(ursula)
    lines = [line.format(portal=f"{PORTAL}={key}") for line in cookie_lines]

    status, headers, body = gate.get(*lines)

    assert status == 400, body
    assert "environment reached" not in body
    assert key not in body
    assert headers["Content-Type"] == "text/html"
    assert f'href="{gate.sign_in_url}"' in body


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "cookie", [f"x{PORTAL}={{key}}", f"{PORTAL}x={{key}}", f"a={PORTAL}={{key}}"]
)
def test_cookies_that_only_look_like_the_portals_sign_nobody_in(gate, ursula, cookie):
    status, headers, body = gate.get(cookie.format(key=session_key(ursula)))

    assert status == 302, body
    assert headers["Location"] == gate.sign_in_url


@pytest.mark.django_db(transaction=True)
def test_environment_cookies_are_not_sent_to_the_portal(gate, ursula):
    """Only the portal's cookie goes to the auth request. An environment's cookies,
    here three lines that together pass the 8k gunicorn takes in one header, can
    neither break nor sway the portal's answer."""
    big_cookies = [f"big{n}={n * 3000}" for n in "abc"]
    key = session_key(ursula)

    status, _, body = gate.get(*big_cookies, f"{PORTAL}={key}")

    assert status == 200, body
    assert f"\ncookie={'; '.join(big_cookies)}\n" in body
    assert key not in body
