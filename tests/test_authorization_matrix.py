"""Every URL x every role, generated from the table in tests/authz_matrix.py."""

import re

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from environments.models import (
    Operation,
)
from tests.authz_matrix import MATRIX, ROLES, markdown_table


def answer(client, method, path):
    if method == "GET":
        return client.get(path)
    return client.post(path, {"reason": "matrix"}, headers={"HX-Request": "true"})


def describe(response, environment):
    """The response in the matrix's words (htmx requests are sent to sign in with an
    HX-Redirect, which makes the browser load the sign-in page)."""
    if response.has_header("HX-Redirect"):
        location = response["HX-Redirect"]
    elif response.status_code == 302:
        location = response["Location"]
    else:
        return response.status_code
    if location.startswith(reverse("admin:login")):
        return "→admin sign-in"
    if location.startswith(reverse("login")):
        return "→sign-in"
    if location == reverse("environment-list"):
        return "→list"
    if location == environment.url:
        return "→environment"
    if location == environment.get_absolute_url():
        return "→details"
    return f"302 {location}"


CASES = [
    pytest.param(method, path, role, expected, id=f"{method} {path} as {role}")
    for _, method, path, answers in MATRIX
    for role, expected in zip(ROLES, answers, strict=True)
]


@pytest.mark.parametrize("method, path, role, expected", CASES)
def test_authorization_matrix(world, method, path, role, expected):
    client = Client()
    user = world["users"][role]
    if user is not None:
        client.force_login(user)
    before = Operation.objects.count()
    response = answer(client, method, path.format(**world["values"]))
    assert describe(response, world["environment"]) == expected
    if not 200 <= response.status_code < 300:
        # A refusal changes nothing.
        assert Operation.objects.count() == before
    if role == "outsider" and response.status_code < 300 and response.streaming is False:
        assert world["environment"].name not in response.content.decode()


def test_the_matrix_covers_every_url_of_the_portal():
    from django.urls import get_resolver

    covered = {re.sub(r"\{\w+\}", "x", path) for _, _, path, _ in MATRIX}
    patterns = [str(p.pattern) for p in get_resolver("environments.web.urls").url_patterns]
    for pattern in patterns:
        shape = "/" + re.sub(r"<[^>]+>", "x", pattern)
        assert any(re.fullmatch(re.escape(shape).replace("x", "[^/]+"), c) for c in covered), (
            f"no row for {pattern}"
        )


@pytest.mark.parametrize(
    "path",
    [path for _, _, path, answers in MATRIX if "{slug}" in path],
)
def test_an_outsider_cannot_tell_another_projects_environment_from_none(world, client, path):
    client.force_login(world["users"]["outsider"])
    method = next(m for _, m, p, _ in MATRIX if p == path)
    real = answer(client, method, path.format(**world["values"]))
    values = dict(world["values"], slug="no-such-environment")
    unknown = answer(client, method, path.format(**values))
    assert real.status_code == unknown.status_code in (403, 404)
    assert without_csrf_token(real.content) == without_csrf_token(unknown.content)


def without_csrf_token(content):
    """The page without its CSRF tokens, which are masked anew for every response."""
    content = re.sub(rb'"X-CSRFToken": "[^"]+"', b"", content)
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", content)


def test_the_documented_table_is_this_matrix():
    docs = (settings.BASE_DIR / "docs" / "reliability.md").read_text()
    assert markdown_table() in docs
