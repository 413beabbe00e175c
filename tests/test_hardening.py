"""Hardening: deploy checks, Content Security Policy, cookies and HSTS over TLS, session
expiry, sign-in throttling, the admin's path, and plain error pages."""

import importlib
import json
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from importlib import import_module
from unittest import mock

import pytest
from django.conf import settings
from django.test import Client
from django.urls import clear_url_caches, reverse
from django.utils import timezone

from environments.models import OperationKind
from tests.conftest import PASSWORD, subprocess_env
from tests.live import Gunicorn, request

TEMPLATES = settings.BASE_DIR / "templates"


def production_env(**overrides):
    env = subprocess_env(
        DJANGO_SETTINGS_MODULE="lcs_portal.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="0",
        PORTAL_TLS="1",
        ALLOWED_HOSTS="portal.example.com",
        LOG_LEVEL="WARNING",
    )
    # Set by test harnesses (tests/browser/conftest.py), never in production.
    for name in ("PORTAL_ALLOW_INSECURE_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"):
        env.pop(name, None)
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def run_manage(*args, env):
    return subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), *args],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_settings(*names, **env):
    """The values the production settings take from ``env``, read in a fresh process."""
    code = (
        "import json\nfrom django.conf import settings\n"
        f"print(json.dumps({{n: str(getattr(settings, n)) for n in {list(names)!r}}}))"
    )
    result = run_manage("shell", "-c", code, env=production_env(**env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- Deploy checks ----------------------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check", env=production_env(SECRET_KEY=""))
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_settings_from_the_environment():
    values = production_settings(
        "ADMIN_PATH",
        "AXES_FAILURE_LIMIT",
        "AXES_COOLOFF_TIME",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_SSL_REDIRECT",
        ADMIN_PATH="/ops-admin/",
        AXES_FAILURE_LIMIT=3,
        AXES_COOLOFF_MINUTES=30,
    )
    assert values == {
        "ADMIN_PATH": "ops-admin/",
        "AXES_FAILURE_LIMIT": "3",
        "AXES_COOLOFF_TIME": "0:30:00",
        "SESSION_COOKIE_SECURE": "True",
        "CSRF_COOKIE_SECURE": "True",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_SSL_REDIRECT": "True",
    }


# --- Content Security Policy and other headers ------------------------------------------


def csp(response):
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.fixture
def pages(client, superuser, environment, start):
    start(OperationKind.ENABLE_MAINTENANCE, environment, superuser, reason="<b>why</b>")
    client.force_login(superuser)
    slug = environment.slug
    return [
        "/environments/",
        f"/environments/{slug}/",
        f"/environments/{slug}/status/",
        f"/environments/{slug}/history/",
        "/history/",
        reverse("admin:index"),
        reverse("admin:environments_operation_changelist"),
    ]


def test_every_page_sends_a_strict_content_security_policy(client, pages):
    for path in [*pages, "/accounts/login/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        policy = csp(response)
        assert policy["default-src"] == ["'self'"], path
        assert policy["script-src"] == ["'self'"], path
        assert policy["style-src"] == ["'self'"], path
        assert policy["frame-ancestors"] == ["'none'"], path
        assert policy["object-src"] == ["'none'"], path
        assert "unsafe" not in response.headers["Content-Security-Policy"], path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Referrer-Policy"] == "same-origin", path


def test_bodiless_answers_carry_no_policy_and_pages_still_do(client, superuser, environment, start):
    # Forward auth (204) and a poll's revalidation (304) have no document to govern.
    client.force_login(superuser)
    forward_auth = client.get(reverse("environment-auth", args=[environment.slug]))
    start(OperationKind.ENABLE_MAINTENANCE, environment, superuser, reason="keep it polling")
    status = reverse("environment-status", args=[environment.slug])
    first = client.get(status, {"part": "badge"}, headers={"HX-Request": "true"})
    revalidated = client.get(
        status,
        {"part": "badge"},
        headers={"HX-Request": "true", "If-None-Match": first.headers.get("ETag", "")},
    )

    assert forward_auth.status_code == 204
    assert "Content-Security-Policy" not in forward_auth.headers
    assert first.status_code == 200
    assert csp(first)["default-src"] == ["'self'"]
    assert revalidated.status_code == 304
    assert "Content-Security-Policy" not in revalidated.headers


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"<style\b", re.I), "<style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "event handler attribute"),
    (re.compile(r"\shx-on", re.I), "hx-on attribute (needs eval)"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]


def inline_code(html):
    return [what for pattern, what in INLINE if pattern.search(html)]


def test_templates_have_no_inline_script_or_style():
    found = {
        str(path.relative_to(TEMPLATES)): inline_code(path.read_text())
        for path in TEMPLATES.rglob("*.html")
    }
    assert {name: what for name, what in found.items() if what} == {}
    assert len(found) >= 10


def test_rendered_pages_have_no_inline_script_or_style(client, pages):
    for path in pages[:5]:
        html = client.get(path).content.decode()
        assert inline_code(html) == [], path


def test_htmx_is_configured_without_eval(client, member):
    client.force_login(member)
    html = client.get("/environments/").content.decode()
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']+)'", html).group(1))
    assert config["allowEval"] is False
    assert config["allowScriptTags"] is False
    assert config["includeIndicatorStyles"] is False


# --- Cookies, HSTS and redirects when served over TLS -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_over_tls_cookies_are_secure_httponly_samesite_and_hsts_is_sent(member, tmp_path):
    server = Gunicorn(
        tmp_path / "gunicorn.log", workers=1, threads=2, env=subprocess_env(PORTAL_TLS=1)
    ).start()
    try:
        port = server.port
        origin = f"https://127.0.0.1:{port}"
        tls = {"X-Forwarded-Proto": "https", "Host": f"127.0.0.1:{port}"}

        plain = request(port, "/accounts/login/", headers={"Host": f"127.0.0.1:{port}"})
        assert plain.status == 301
        assert plain.header("Location") == f"{origin}/accounts/login/"

        page = request(port, "/accounts/login/", headers=tls)
        assert page.status == 200
        hsts = page.header("Strict-Transport-Security")
        assert hsts == "max-age=31536000; includeSubDomains; preload"
        csrf = page.cookies()["csrftoken"]
        assert (csrf["secure"], csrf["httponly"], csrf["samesite"]) == (True, True, "Lax")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1)

        signed_in = request(
            port,
            "/accounts/login/",
            method="POST",
            body=f"csrfmiddlewaretoken={token}&username=tom&password={PASSWORD}",
            headers={
                **tls,
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={csrf.value}",
                "Origin": origin,
                "Referer": f"{origin}/accounts/login/",
            },
        )
        assert signed_in.status == 302, signed_in.body[:1000]
        session = signed_in.cookies()[settings.SESSION_COOKIE_NAME]
        assert (session["secure"], session["httponly"], session["samesite"]) == (
            True,
            True,
            "Lax",
        )
        # Ends when the browser closes: no lifetime of its own.
        assert not session["expires"] and not session["max-age"]
    finally:
        server.stop()


# --- Sessions ---------------------------------------------------------------------------


def test_a_session_lasts_at_most_the_configured_age_and_ends_with_the_browser(client, member):
    assert (
        client.post("/accounts/login/", {"username": "tom", "password": PASSWORD}).status_code
        == 302
    )
    assert client.session.get_expire_at_browser_close()
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE <= 12 * 3600

    store = import_module(settings.SESSION_ENGINE).SessionStore(client.session.session_key)
    store.set_expiry(timezone.now() - timedelta(seconds=1))
    store.save()
    response = client.get("/environments/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- Sign-in throttling -----------------------------------------------------------------


def sign_in(client, username, password, path="/accounts/login/"):
    return client.post(path, {"username": username, "password": password})


def test_repeated_failed_sign_ins_lock_the_account_with_a_clear_message(client, member, owner):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        response = sign_in(client, "tom", "wrong password")
        assert response.status_code == 200
        assert "did not match" in response.content.decode()

    response = sign_in(client, "tom", "wrong password")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed sign-ins to this account" in page
    assert 'data-testid="lockout"' in page and 'name="password"' in page

    # Even the right password is refused while the account is locked...
    response = sign_in(client, "tom", PASSWORD)
    assert response.status_code == 429
    assert client.get("/environments/").status_code == 302
    # ...on the admin's sign-in page too,
    admin_login = reverse("admin:login")
    assert sign_in(client, "tom", PASSWORD, admin_login).status_code == 429
    # while other accounts sign in as usual.
    assert sign_in(Client(), "alice", PASSWORD).status_code == 302


def test_the_lock_lifts_after_the_cool_off(client, member):
    from axes.models import AccessAttempt

    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "tom", "wrong password")
    assert sign_in(client, "tom", PASSWORD).status_code == 429

    # The cool-off passes: the failures are that much older.
    past = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.filter(username="tom").update(attempt_time=past)
    assert sign_in(client, "tom", PASSWORD).status_code == 302
    assert not AccessAttempt.objects.filter(username="tom").exists()


def test_a_successful_sign_in_resets_the_count(client, member):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "tom", "wrong password")
    assert sign_in(client, "tom", PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "tom", "wrong password").status_code == 200
    assert sign_in(client, "tom", PASSWORD).status_code == 302


def test_password_checks_without_a_request_still_work(member):
    from django.contrib.auth import authenticate

    assert authenticate(username="tom", password=PASSWORD) == member
    assert authenticate(username="tom", password="wrong") is None


# --- The admin's path -------------------------------------------------------------------


@pytest.fixture
def admin_path(settings):
    import lcs_portal.urls

    def move(path):
        settings.ADMIN_PATH = path
        importlib.reload(lcs_portal.urls)
        clear_url_caches()

    original = settings.ADMIN_PATH
    yield move
    move(original)


def test_the_admin_is_served_at_the_configured_path(client, superuser, admin_path):
    client.force_login(superuser)
    admin_path("ops-admin-7f3a/")
    assert reverse("admin:index") == "/ops-admin-7f3a/"
    assert client.get("/ops-admin-7f3a/").status_code == 200
    assert client.get("/admin/").status_code == 404
    assert 'href="/ops-admin-7f3a/"' in client.get("/environments/").content.decode()


# --- Error pages ------------------------------------------------------------------------


def test_a_server_error_is_a_plain_page_without_a_traceback(member):
    client = Client(raise_request_exception=False)
    client.force_login(member)
    with mock.patch(
        "environments.web.environment_list.Paginator",
        side_effect=RuntimeError("secret detail"),
    ):
        response = client.get("/environments/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong" in page
    assert "Traceback" not in page and "secret detail" not in page
    assert "RuntimeError" not in page


def test_a_forged_csrf_token_gets_a_plain_403_page(environment, manager):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    response = client.post(
        f"/environments/{environment.slug}/maintain/enable_maintenance/",
        {"csrfmiddlewaretoken": "forged"},
    )
    assert response.status_code == 403
    assert "security token was missing or did not match" in response.content.decode()


# --- Security review 2026-12 ------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/environments/",
        "/environments/{slug}/",
        "/environments/{slug}/history/",
        "/environments/{slug}/history.csv",
        "/history/",
        "/history.csv",
        "/environments/{slug}/history/{activity}/",
    ],
)
def test_private_pages_are_never_kept_by_the_browser(client, environment, manager, start, path):
    from environments.models import OperationKind

    operation = start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    client.force_login(manager)
    response = client.get(path.format(slug=environment.slug, activity=operation.activity_id))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


@pytest.mark.parametrize("path", ["/accounts/password_reset/", "/accounts/reset/x/y/"])
def test_password_reset_is_not_served(client, path):
    assert client.get(path).status_code == 404
    assert client.post(path, {"email": "a@example.com"}).status_code == 404


def test_signing_in_and_changing_ones_password_are_served(client, member):
    assert client.get("/accounts/login/").status_code == 200
    client.force_login(member)
    assert client.get("/accounts/password_change/").status_code == 200


def test_a_password_change_in_the_portals_pages_keeps_this_session_and_ends_the_others(
    client, member
):
    other = Client()
    other.force_login(member)
    client.force_login(member)
    settings_page = client.get(reverse("user-settings")).content.decode()
    assert reverse("password_change") in settings_page
    page = client.get(reverse("password_change"))
    assert "Change your password" in page.content.decode()
    assert "Django administration" not in page.content.decode()

    wrong = client.post(
        reverse("password_change"),
        {"old_password": "wrong", "new_password1": "x", "new_password2": "y"},
    )
    assert wrong.status_code == 200 and 'class="field-error"' in wrong.content.decode()

    new = "a-much-longer-passphrase-42"
    done = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
        follow=True,
    )
    assert "Password changed" in done.content.decode()
    member.refresh_from_db()
    assert member.check_password(new)
    assert client.get(reverse("environment-list")).status_code == 200
    assert other.get(reverse("environment-list")).status_code == 302


def test_nobody_can_lock_an_account_out_from_another_address(client, member):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client(REMOTE_ADDR="198.51.100.9").post(
            "/accounts/login/", {"username": "tom", "password": "wrong"}
        )
    attacker = Client(REMOTE_ADDR="198.51.100.9")
    assert sign_in(attacker, "tom", PASSWORD).status_code == 429
    # tom, from his own address, is not locked out.
    assert sign_in(Client(REMOTE_ADDR="203.0.113.20"), "tom", PASSWORD).status_code == 302


def test_behind_a_proxy_the_clients_own_address_counts(settings, member):
    settings.PORTAL_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client(**proxy, HTTP_X_FORWARDED_FOR="198.51.100.9").post(
            "/accounts/login/", {"username": "tom", "password": "wrong"}
        )
    locked = Client(**proxy, HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert sign_in(locked, "tom", PASSWORD).status_code == 429
    # A client cannot choose its address by writing its own X-Forwarded-For in front.
    forged = Client(**proxy, HTTP_X_FORWARDED_FOR="203.0.113.20, 198.51.100.9")
    assert sign_in(forged, "tom", PASSWORD).status_code == 429
    other = Client(**proxy, HTTP_X_FORWARDED_FOR="203.0.113.20")
    assert sign_in(other, "tom", PASSWORD).status_code == 302


def test_an_administrator_lifts_a_lockout_with_axes_reset_username(client, member):
    from django.core.management import call_command

    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "tom", "wrong password")
    assert sign_in(client, "tom", PASSWORD).status_code == 429
    call_command("axes_reset_username", "tom")
    assert sign_in(client, "tom", PASSWORD).status_code == 302
