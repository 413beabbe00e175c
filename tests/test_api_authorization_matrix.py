"""Every API endpoint x every role, generated from the table in tests/api_matrix.py."""

import json
import re

import pytest
from django.conf import settings

from environments.api import api
from environments.models import (
    DatabaseAccount,
    Environment,
    FirewallRule,
    MaintenanceWindow,
    Operation,
    TokenScope,
)
from tests.api_clients import api_client, send
from tests.api_matrix import MATRIX, ROLES, markdown_table

CASES = [
    pytest.param(method, path, body, role, expected, id=f"{method} {path} as {role}")
    for _, method, path, body, answers in MATRIX
    for role, expected in zip(ROLES, answers, strict=True)
]


@pytest.mark.parametrize("method, path, body, role, expected", CASES)
def test_api_authorization_matrix(world, method, path, body, role, expected):
    client = api_client(world["users"][role])
    before = Operation.objects.count()
    windows_before = list(MaintenanceWindow.objects.values_list("pk", "state"))
    response = send(client, method, path.format(**world["values"]), body)
    assert response.status_code == expected, response.content[:500]
    content_type = response["Content-Type"]
    if path.endswith("/docs"):
        assert content_type.startswith("text/html")
    elif path.endswith(".csv") and expected < 400:
        assert content_type == "text/csv; charset=utf-8"
    elif expected >= 400:
        # Every failure is a problem, never a page.
        assert content_type == "application/problem+json"
        problem = json.loads(response.content)
        assert problem["status"] == expected
        assert {"type", "title", "detail"} <= problem.keys()
        # A refusal changes nothing.
        assert Operation.objects.count() == before
        assert list(MaintenanceWindow.objects.values_list("pk", "state")) == windows_before
    else:
        assert content_type.startswith("application/json")
    if role == "outsider":
        assert world["environment"].name not in b"".join(response).decode()


WRITES = [
    pytest.param(method, path, body, id=f"{method} {path}")
    for _, method, path, body, _ in MATRIX
    if method != "GET"
]


def everything_a_write_could_change():
    """The rows an API request could change, as the database holds them."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Operation, MaintenanceWindow, FirewallRule, DatabaseAccount, Environment)
    }


@pytest.mark.parametrize("role", [role for role in ROLES if role != "anonymous"])
@pytest.mark.parametrize("method, path, body", WRITES)
def test_a_read_token_is_refused_every_change_with_403_and_changes_nothing(
    world, method, path, body, role
):
    client = api_client(world["users"][role], TokenScope.READ)
    before = everything_a_write_could_change()

    response = send(client, method, path.format(**world["values"]), body)

    assert response.status_code == 403, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "urn:lcs-portal:problem:insufficient_scope"
    assert everything_a_write_could_change() == before


def test_the_matrix_covers_every_endpoint_of_the_api():
    schema = api.get_openapi_schema(path_prefix="/api/v1")
    covered = {(method, re.sub(r"\{\w+\}", "{}", path)) for _, method, path, _, _ in MATRIX}
    for path, methods in schema["paths"].items():
        for method in methods:
            shape = re.sub(r"\{\w+\}", "{}", path)
            assert (method.upper(), shape) in covered, f"no row for {method.upper()} {path}"


@pytest.mark.parametrize(
    "method, path, body",
    [(m, p, b) for _, m, p, b, _ in MATRIX if re.search(r"\{(slug|rule|account|window)\}", p)],
)
def test_an_outsider_cannot_tell_another_projects_things_from_none(world, method, path, body):
    client = api_client(world["users"]["outsider"])
    # The same request id on both: a problem's instance is the request's own.
    client.defaults["HTTP_X_REQUEST_ID"] = "probe"
    real = send(client, method, path.format(**world["values"]), body)
    values = dict(
        world["values"], slug="no-such-environment", rule=999999, account=999999, window=999999
    )
    unknown = send(client, method, path.format(**values), body)
    assert real.status_code == unknown.status_code == 404
    assert real.content == unknown.content


def test_the_documented_table_is_this_matrix():
    docs = (settings.BASE_DIR / "docs" / "api.md").read_text()
    assert markdown_table() in docs
