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

import pytest
from django.conf import settings
from django.test import Client

from environments import operations
from environments.models import EnvironmentRole, EnvironmentRoleKind, Status
from tests.conftest import make_user, subprocess_env

SHIPPED_CONF = settings.BASE_DIR / "docs" / "nginx-forward-auth.conf"


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


def request(port, path="/", *, method="GET", cookie=None, headers=None):
    """One request that follows no redirect: (status, headers, body)."""
    headers = dict(headers or {})
    if cookie:
        headers["Cookie"] = cookie
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=b"x=1" if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
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
    r"\ncookie=$http_cookie\n"
)


def nginx_conf(directory, forward_auth_conf, upstream_port):
    """The main configuration: everything under ``directory``, nothing written to /var;
    the environment is a second server that shows what reached it."""
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
        location / {{
            default_type text/plain;
            return 200 "{UPSTREAM_ANSWER}";
        }}
    }}

    include {forward_auth_conf};
}}
"""


def session_cookie(user):
    """A portal session for ``user`` in the shared test database, as a Cookie value."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@pytest.mark.django_db(transaction=True)
def test_nginx_lets_only_maintenance_roles_through_while_in_maintenance(
    environment, manager, maint, tmp_path
):
    nginx = find_nginx()
    user = make_user("ursula")
    EnvironmentRole.objects.create(
        user=user, environment=environment, role=EnvironmentRoleKind.USER
    )
    maint_cookie, user_cookie = session_cookie(maint), session_cookie(user)
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
            gunicorn, portal_port, f"/environments/{environment.slug}/auth/", portal_log
        )

        forward_auth_conf = tmp_path / "forward-auth.conf"
        forward_auth_conf.write_text(
            render_shipped_conf(
                LISTEN=f"127.0.0.1:{proxy_port}",
                SERVER_NAME="127.0.0.1",
                ENVIRONMENT_UPSTREAM=f"http://127.0.0.1:{upstream_port}",
                PORTAL_URL=portal_url,
                ENVIRONMENT_SLUG=environment.slug,
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

        def through_nginx(cookie=None, **kwargs):
            return request(proxy_port, "/some/page?x=1", cookie=cookie, **kwargs)

        # Deployed: a plain User gets through, named, without the portal's cookie.
        status, _, body = through_nginx(
            f"theme=dark; {user_cookie}", headers={"X-Portal-User": "root"}
        )
        assert status == 200, body
        assert "environment reached" in body
        assert "user=ursula\nroles=user\n" in body
        assert "cookie=theme=dark\n" in body
        assert "sessionid" not in body
        _, _, body = through_nginx(f"{user_cookie}; theme=dark; lang=en")
        assert "cookie=theme=dark; lang=en\n" in body
        status, _, body = through_nginx(user_cookie, method="POST")
        assert (status, "environment reached" in body) == (200, True)

        # Not signed in to the portal: off to its sign-in gate.
        status, headers, _ = through_nginx()
        assert status == 302
        assert headers["Location"] == f"{portal_url}/environments/{environment.slug}/sign-in/"

        operation = operations.enable_maintenance(environment, manager)
        operations.complete_operation(operation.pk)
        environment.refresh_from_db()
        assert environment.status == Status.IN_MAINTENANCE

        status, _, body = through_nginx(maint_cookie)
        assert status == 200, body
        assert "user=maya\nroles=maintenance_mode_user\n" in body

        status, _, body = through_nginx(user_cookie)
        assert status == 403
        assert "environment reached" not in body
        assert f'href="{portal_url}/environments/{environment.slug}/sign-in/"' in body

        operation = operations.disable_maintenance(environment, manager)
        status, _, _ = through_nginx(user_cookie)
        assert status == 403, "a User got through while Servicing"
        operations.complete_operation(operation.pk)
        environment.refresh_from_db()
        assert environment.status == Status.DEPLOYED

        status, _, body = through_nginx(user_cookie)
        assert status == 200, body
        assert "user=ursula\nroles=user\n" in body
    finally:
        stop(nginx_process)
        stop(gunicorn)
