"""Hostile input, generated: every form and endpoint gets what Hypothesis invents.

Each case must get a clear 4xx and write nothing (or, for free text that is allowed,
be stored as given and shown escaped, and exported to CSV with formulas neutralised).
The Django test client raises on any server error, so a 500 fails the property.
At the end of the module one line reports how many cases ran.
"""

import csv
import io
import ipaddress
import string
from collections import Counter
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test import Client
from django.utils.html import escape
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from environments import operations
from environments.models import (
    AccessLevel,
    DatabaseAccount,
    Environment,
    FirewallRule,
    Operation,
)
from tests.authz_matrix import MATRIX
from tests.conftest import make_user

CASES = Counter()
STATUSES = Counter()


def fuzz(examples):
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture(scope="module", autouse=True)
def report_case_count(request):
    yield
    if not CASES:
        return
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(
            f"\nfuzz ({connection.vendor}): {sum(CASES.values())} cases in {len(CASES)} "
            f"properties, {sum(STATUSES.values())} requests, "
            f"{sum(n for s, n in STATUSES.items() if s >= 500)} server errors; "
            f"answers {dict(sorted(STATUSES.items()))}"
        )


def send(client, method, path, data=None, **extra):
    response = getattr(client, method.lower())(path, data, **extra)
    STATUSES[response.status_code] += 1
    assert response.status_code < 500, (method, path, data)
    return response


def written(environment):
    """What a refused request must leave as it was."""
    environment = Environment.objects.get(pk=environment.pk)
    return (
        Operation.objects.count(),
        FirewallRule.objects.count(),
        DatabaseAccount.objects.count(),
        environment.status,
    )


HTMX = {"headers": {"HX-Request": "true"}}
SLUG_PATHS = [(method, path) for _, method, path, _ in MATRIX if "{slug}" in path]
ACTIONS = [name.value for name in operations.START_FUNCTIONS]
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=80)
printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=40
)


# --- Unknown things in the URL ---------------------------------------------------------


@fuzz(80)
@given(
    slug=st.from_regex(r"[-a-zA-Z0-9_]{1,60}", fullmatch=True), target=st.sampled_from(SLUG_PATHS)
)
def test_unknown_environments_are_404_and_nothing_is_written(as_manager, environment, slug, target):
    assume(slug != environment.slug)
    CASES["unknown environment"] += 1
    method, path = target
    before = written(environment)
    values = {
        "slug": slug,
        "rule": 1,
        "account": 1,
        "activity": "00000000-0000-0000-0000-000000000000",
        "window": 1,
        "calendar": "no-such-calendar",
    }
    response = send(as_manager, method, path.format(**values), {"reason": "x"})
    # Forward auth refuses an unknown environment like a known one: it says nothing.
    assert response.status_code == (403 if path.endswith("/auth/") else 404)
    assert written(environment) == before


@fuzz(60)
@given(
    action=st.text(
        alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=40,
    ),
    method=st.sampled_from(["GET", "POST"]),
)
def test_unknown_actions_are_refused_and_nothing_is_written(
    as_manager, environment, action, method
):
    assume(action not in ACTIONS)
    CASES["unknown action"] += 1
    before = written(environment)
    path = f"/environments/{environment.slug}/maintain/{quote(action, safe='')}/"
    response = send(as_manager, method, path, {"reason": "x"} if method == "POST" else None)
    assert response.status_code in (400, 404)
    assert written(environment) == before


@fuzz(50)
@given(service=text)
def test_unknown_services_are_refused_with_400(as_manager, environment, service):
    assume(service.strip() not in ("aos", "dixf", "mr"))
    CASES["unknown service"] += 1
    before = written(environment)
    response = send(
        as_manager,
        "POST",
        f"/environments/{environment.slug}/maintain/restart_service/",
        {"service": service, "reason": "x"},
        **HTMX,
    )
    assert response.status_code == 400
    assert written(environment) == before


@fuzz(40)
@given(
    target=st.sampled_from(
        [(m, p) for _, m, p, _ in MATRIX if p != "/" and "accounts" not in p and "{admin}" not in p]
    ),
    method=st.sampled_from(["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "HEAD", "GET", "POST"]),
)
def test_wrong_methods_get_405_and_nothing_is_written(world, as_manager, target, method):
    allowed, path = target
    assume(method != allowed)
    # These answer both: GET is the confirm step (or the form), POST does it.
    both = ("/remove/", "/revoke/", "/cancel/", "/end/", "/windows/schedule/", "/settings/")
    assume(not (path.endswith(both) and method in ("GET", "POST")))
    assume(not ("/maintain/" in path and method in ("GET", "POST")))
    CASES["wrong method"] += 1
    environment = world["environment"]
    before = written(environment)
    response = send(as_manager, method, path.format(**world["values"]))
    assert response.status_code == 405
    assert written(environment) == before


# --- CSRF ---------------------------------------------------------------------------------


POST_PATHS = [p for _, m, p, _ in MATRIX if m == "POST"]


@fuzz(60)
@given(
    path=st.sampled_from(POST_PATHS),
    token=st.one_of(
        st.none(),
        st.text(max_size=80),
        st.from_regex(r"[a-zA-Z0-9]{64}", fullmatch=True),
        st.just("other session"),
    ),
    where=st.sampled_from(["field", "header"]),
    cookie=st.booleans(),
)
def test_missing_or_forged_csrf_tokens_get_403_and_nothing_is_written(
    world, manager, path, token, where, cookie
):
    CASES["csrf"] += 1
    environment = world["environment"]
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    if cookie:
        client.get(f"/environments/{environment.slug}/")
    if token == "other session":
        other = Client()
        other.force_login(manager)
        page = other.get(f"/environments/{environment.slug}/").content.decode()
        token = page.split('"X-CSRFToken": "', 1)[1].split('"', 1)[0]
    data, headers = {"reason": "x", "service": "aos"}, {"HX-Request": "true"}
    if token is not None:
        if where == "field":
            data["csrfmiddlewaretoken"] = token
        else:
            headers["X-CSRFToken"] = token
    before = written(environment)
    response = send(client, "POST", path.format(**world["values"]), data, headers=headers)
    assert response.status_code == 403
    assert written(environment) == before


# --- Oversize and malformed form input -------------------------------------------------


@fuzz(40)
@given(
    reason=st.text(alphabet=string.printable, min_size=501, max_size=3000),
    action=st.sampled_from(
        ["restart_service", "enable_maintenance", "enable_access", "request_access"]
    ),
)
def test_oversize_reasons_are_refused_with_400(as_manager, environment, reason, action):
    assume(len(reason.strip()) > 500)
    CASES["oversize reason"] += 1
    before = written(environment)
    data = {
        "reason": reason,
        "service": "aos",
        "name": "office",
        "address": "203.0.113.7",
        "level": "read",
    }
    response = send(
        as_manager, "POST", f"/environments/{environment.slug}/maintain/{action}/", data, **HTMX
    )
    assert response.status_code == 400
    assert written(environment) == before


def is_network(value):
    try:
        ipaddress.ip_network(value.strip(), strict=False)
        return True
    except ValueError:
        return False


octet = st.integers(0, 255)
bad_addresses = st.one_of(
    st.text(max_size=60).filter(lambda v: not is_network(v)),
    st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", octet, octet, octet, st.integers(256, 99999)),
    st.builds(lambda a, p: f"{a}.0.0.0/{p}", st.integers(1, 223), st.integers(33, 999)),
    # Wider than /24 (IPv4) or /64 (IPv6).
    st.builds(lambda a, p: f"{a}.1.2.3/{p}", st.integers(1, 223), st.integers(0, 23)),
    st.builds(lambda p: f"2001:db8::/{p}", st.integers(0, 63)),
    # Loopback, link-local, multicast, unspecified.
    st.builds(lambda b, c: f"127.{b}.{c}.1", octet, octet),
    st.builds(lambda c, d: f"169.254.{c}.{d}", octet, octet),
    st.builds(lambda a, d: f"{a}.0.0.{d}", st.integers(224, 239), octet),
    st.sampled_from(
        ["0.0.0.0", "::", "::1", "fe80::1", "ff02::1", "*", "any", "all", "0.0.0.0/0", "::/0"]
    ),
)


@fuzz(100)
@given(address=bad_addresses)
def test_malformed_or_unsafe_addresses_are_refused_with_400(as_manager, environment, address):
    CASES["bad address"] += 1
    before = written(environment)
    response = send(
        as_manager,
        "POST",
        f"/environments/{environment.slug}/maintain/enable_access/",
        {"name": "office", "address": address, "reason": "support", "hours": "1"},
        **HTMX,
    )
    assert response.status_code == 400, address
    assert written(environment) == before


bad_hours = st.one_of(
    st.floats(max_value=0.0999, allow_nan=False).map(repr),
    st.floats(min_value=django_settings.ACCESS_MAX_HOURS, exclude_min=True, allow_nan=False).map(
        repr
    ),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e309", "-1e309", "8.0000001", "0", "-0"]),
    st.text(max_size=20).filter(lambda v: v.strip() != "" and not _is_float(v)),
)


def _is_float(value):
    try:
        float(value)
        return True
    except ValueError:
        return False


@fuzz(80)
@given(hours=bad_hours, action=st.sampled_from(["enable_access", "request_access"]))
def test_out_of_range_durations_are_refused_with_400(as_manager, environment, hours, action):
    CASES["bad duration"] += 1
    before = written(environment)
    data = {
        "name": "office",
        "address": "203.0.113.7",
        "level": "read",
        "reason": "support",
        "hours": hours,
    }
    response = send(
        as_manager, "POST", f"/environments/{environment.slug}/maintain/{action}/", data, **HTMX
    )
    assert response.status_code == 400, hours
    assert written(environment) == before


@fuzz(40)
@given(name=text, level=text)
def test_bad_rule_names_and_access_levels_are_refused_with_400(
    as_manager, environment, name, level
):
    CASES["bad name or level"] += 1
    before = written(environment)
    slug = environment.slug
    if (
        not (name.strip() and name.strip()[0].isascii() and name.strip()[0].isalnum())
        or len(name.strip()) > 64
    ):
        response = send(
            as_manager,
            "POST",
            f"/environments/{slug}/maintain/enable_access/",
            {"name": name, "address": "203.0.113.7", "reason": "support"},
            **HTMX,
        )
        assert response.status_code == 400
    if level.strip() not in AccessLevel.values:
        response = send(
            as_manager,
            "POST",
            f"/environments/{slug}/maintain/request_access/",
            {"level": level, "reason": "support"},
            **HTMX,
        )
        assert response.status_code == 400
    assert written(environment) == before


HISTORY_KEYS = ["kind", "outcome", "user", "since", "until", "before", "after", "page"]


@fuzz(80)
@given(
    params=st.dictionaries(st.sampled_from(HISTORY_KEYS), text, max_size=4),
    page=st.sampled_from(
        [
            "/history/",
            "/history.csv",
            "/environments/{slug}/history/",
            "/environments/{slug}/history.csv",
            "/environments/",
        ]
    ),
)
def test_history_filters_never_fail(world, as_manager, params, page):
    CASES["history filters"] += 1
    response = send(as_manager, "GET", page.format(**world["values"]), params)
    assert response.status_code in (200, 400)


@fuzz(40)
@given(username=text, password=text, page=st.sampled_from(["/accounts/login/", "/{admin}login/"]))
def test_sign_in_forms_refuse_anything_but_the_password(member, username, password, page):
    CASES["sign-in"] += 1
    client = Client()
    response = send(
        client,
        "POST",
        page.format(admin=django_settings.ADMIN_PATH),
        {"username": username, "password": password},
    )
    assert response.status_code in (200, 429)
    assert "_auth_user_id" not in client.session


# --- Free text: stored as given, escaped on every page, neutralised in CSV ----------------


tag = st.sampled_from(
    [
        "script",
        "img src=x onerror=alert(1)",
        "svg onload=alert(1)",
        "iframe",
        "b",
        'a href="javascript:alert(1)"',
    ]
)
markup = st.builds(lambda pre, t, post: f"{pre}<{t}>{post}</script>\"'&", printable, tag, printable)


@fuzz(40)
@given(reason=markup)
def test_markup_in_free_text_is_escaped_on_every_page(world, as_manager, reason):
    CASES["markup escaped"] += 1
    environment = world["environment"]
    slug = environment.slug
    with transaction.atomic():
        response = send(
            as_manager,
            "POST",
            f"/environments/{slug}/maintain/enable_maintenance/",
            {"reason": reason},
            **HTMX,
        )
        assert response.status_code == 200
        operation = Operation.objects.get(kind="enable_maintenance")
        stored = operation.reason
        assert stored == reason.strip()
        pages = [
            f"/environments/{slug}/",
            f"/environments/{slug}/status/",
            f"/environments/{slug}/history/",
            "/history/",
            f"/environments/{slug}/history/{operation.activity_id}/",
        ]
        for page in pages:
            html = send(as_manager, "GET", page).content.decode()
            assert stored not in html, page
        detail = send(as_manager, "GET", pages[-1]).content.decode()
        assert escape(stored) in detail
        transaction.set_rollback(True)


FORMULA = ("=", "+", "-", "@", "\t", "\r")
formula = st.builds(lambda start, rest: start + rest, st.sampled_from("=+-@"), printable)


@fuzz(30)
@given(
    reason=formula,
    name=formula,
    username=st.builds(
        lambda s, r: s + r, st.sampled_from("+-@"), st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True)
    ),
)
def test_csv_export_neutralises_formulas_in_every_cell(world, reason, name, username):
    CASES["csv formulas"] += 1
    environment = world["environment"]
    with transaction.atomic():
        Environment.objects.filter(pk=environment.pk).update(name=name)
        user = make_user(username)
        environment.project.memberships.create(user=user, role="owner")
        client = Client()
        client.force_login(user)
        response = send(
            client,
            "POST",
            f"/environments/{environment.slug}/maintain/enable_maintenance/",
            {"reason": reason},
            **HTMX,
        )
        assert response.status_code == 200
        for page in ("/history.csv", f"/environments/{environment.slug}/history.csv"):
            body = b"".join(send(client, "GET", page).streaming_content).decode()
            rows = list(csv.reader(io.StringIO(body)))
            assert len(rows) >= 2
            cells = [cell for row in rows[1:] for cell in row]
            assert [c for c in cells if c.startswith(FORMULA)] == []
            assert "'" + reason.strip() in cells and "'" + name in cells and "'" + username in cells
        transaction.set_rollback(True)
