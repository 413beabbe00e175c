"""The OpenAPI document says what the server does: the media type of its failures,
what a malformed path, query or body gets, which values are required and allowed, and
how the transport is refused (too large, not JSON, HEAD, a Read token)."""

import json
import re

import pytest
from django.conf import settings

from environments.forms import HISTORY_TYPES
from environments.models import (
    FirewallRule,
    MaintenanceWindow,
    Operation,
    OperationKind,
    Outcome,
    ServiceKind,
    Status,
    TokenScope,
    WindowState,
)
from tests.api_clients import API, api_client, send


@pytest.fixture
def document(client):
    return client.get(f"{API}/openapi.json").json()


def operation_of(document, method, path):
    return document["paths"][f"{API}{path}"][method.lower()]


def problem(response, status):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)


# --- 1. Failures are application/problem+json, in the document too ---------------------


def test_every_failure_the_document_lists_is_application_problem_json(document):
    failures = [
        (method, path, status, answer)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        for status, answer in operation["responses"].items()
        if int(status) >= 400
    ]
    assert len(failures) > 50
    for method, path, status, answer in failures:
        assert list(answer["content"]) == ["application/problem+json"], (method, path, status)
        schema = answer["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ProblemOut"}


def test_answers_that_succeed_stay_application_json(document):
    answer = operation_of(document, "GET", "/environments")["responses"]["200"]
    assert list(answer["content"]) == ["application/json"]


# --- 2. A malformed id in a path is 404, as a missing one --------------------------------

MALFORMED = [
    ("GET", "/maintenance-windows/{window_id}", "abc"),
    ("POST", "/maintenance-windows/{window_id}/cancel", "abc"),
    ("POST", "/maintenance-windows/{window_id}/end", "1.5"),
    ("DELETE", "/firewall-rules/{rule_id}", "abc"),
    ("DELETE", "/database-accounts/{account_id}", "-"),
    ("GET", "/operations/{activity_id}", "not-a-uuid"),
    ("POST", "/operations/{activity_id}/stop", "not-a-uuid"),
]


@pytest.mark.parametrize("method, template, value", MALFORMED)
def test_a_malformed_id_in_the_path_is_a_documented_404(
    api_as_manager, document, method, template, value
):
    path = re.sub(r"\{\w+\}", value, template)
    body = json.dumps({"reason": "matrix"}) if path.endswith("/stop") else ""

    response = api_as_manager.generic(method, f"{API}{path}", body, content_type="application/json")

    assert problem(response, 404)["type"] == "urn:lcs-portal:problem:not_found"
    assert "404" in operation_of(document, method, template)["responses"]


# --- 3. Required is required; values the server takes are the ones it lists ------------


def test_a_reason_is_required_by_the_document_as_by_the_server(document):
    schemas = document["components"]["schemas"]
    for name in ("OperationIn", "WindowIn", "FirewallRuleIn", "DatabaseAccountIn"):
        assert "reason" in schemas[name]["required"], name
        assert "default" not in schemas[name]["properties"]["reason"], name
        assert schemas[name]["properties"]["reason"]["minLength"] == 1, name


def test_a_window_without_a_reason_is_refused(api_as_manager, environment, t0):
    body = {"starts_at": t0.isoformat(), "ends_at": (t0.replace(hour=(t0.hour + 1) % 24))}
    body["ends_at"] = body["ends_at"].isoformat()
    response = api_as_manager.post(
        f"{API}/environments/{environment.slug}/maintenance-windows",
        body,
        content_type="application/json",
    )
    assert "reason" in problem(response, 400)["detail"]
    assert not MaintenanceWindow.objects.exists()


def _enum(document, schema):
    """The values a (query or body) schema allows, through references and unions."""
    if "$ref" in schema:
        return _enum(document, document["components"]["schemas"][schema["$ref"].split("/")[-1]])
    found = set(schema.get("enum", []))
    for option in schema.get("anyOf", []):
        found |= _enum(document, option)
    return found


def _query_parameter(document, path, name):
    parameters = operation_of(document, "GET", path)["parameters"]
    return next(p["schema"] for p in parameters if p["name"] == name)


@pytest.mark.parametrize(
    "path, name, values",
    [
        ("/environments", "status", Status.values),
        ("/environments/{slug}/maintenance-windows", "state", WindowState.values),
        ("/history", "type", list(HISTORY_TYPES)),
        ("/history", "kind", OperationKind.values),
        ("/environments/{slug}/history", "outcome", Outcome.values),
    ],
)
def test_a_filter_lists_the_values_the_server_takes_and_refuses_others(
    api_as_manager, document, environment, path, name, values
):
    # Empty filters nothing, as on the pages.
    assert _enum(document, _query_parameter(document, path, name)) == {*values, ""}
    url = f"{API}{path.format(slug=environment.slug)}"
    assert api_as_manager.get(url, {name: values[0]}).status_code == 200
    assert api_as_manager.get(url, {name: ""}).status_code == 200
    assert name in problem(api_as_manager.get(url, {name: "bogus"}), 400)["detail"]


def test_the_service_to_restart_is_one_of_the_services(document):
    service = document["components"]["schemas"]["OperationIn"]["properties"]["service"]
    assert _enum(document, service) == {*ServiceKind.values, None}


def test_an_address_has_a_pattern_and_a_named_format(document):
    address = document["components"]["schemas"]["FirewallRuleIn"]["properties"]["address"]
    assert address["format"] == "ip-address-or-cidr"
    assert address["pattern"]


@pytest.mark.parametrize("day", ["0", "1764633086", "20261201", "2026-12-1", "yesterday"])
def test_a_day_that_is_not_written_as_one_is_refused(api_as_manager, day):
    assert "until" in problem(api_as_manager.get(f"{API}/history", {"until": day}), 400)["detail"]


def test_a_day_written_as_one_is_taken(api_as_manager):
    assert api_as_manager.get(f"{API}/history", {"until": "2026-12-01"}).status_code == 200


# --- 4. Transport: too large, not JSON, HEAD, and the Read token first -------------------


def firewall_rule_body(**changes):
    return {"name": "office", "address": "203.0.113.7", "reason": "support", **changes}


def test_a_body_over_the_limit_is_413_with_the_limit(api_as_manager, environment):
    body = json.dumps(firewall_rule_body(reason="x" * 3_000_000))
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = api_as_manager.post(
        f"{API}/environments/{environment.slug}/firewall-rules",
        body,
        content_type="application/json",
    )

    found = problem(response, 413)
    assert found["type"] == "urn:lcs-portal:problem:content_too_large"
    assert found["limit"] == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in found["detail"]
    assert not FirewallRule.objects.exists()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_json_sent_as_something_else_is_415_and_nothing_starts(
    api_as_manager, environment, content_type
):
    response = api_as_manager.post(
        f"{API}/environments/{environment.slug}/operations",
        json.dumps({"action": "enable_maintenance", "reason": "patching"}),
        content_type=content_type,
    )

    found = problem(response, 415)
    assert found["type"] == "urn:lcs-portal:problem:unsupported_media_type"
    assert content_type in found["detail"]
    assert not Operation.objects.exists()


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_with_a_charset_or_a_json_suffix_is_read_as_json(
    api_as_manager, environment, content_type
):
    body = firewall_rule_body()
    del body["reason"]

    response = api_as_manager.post(
        f"{API}/environments/{environment.slug}/firewall-rules",
        json.dumps(body),
        content_type=content_type,
    )

    assert [e["field"] for e in problem(response, 400)["errors"]] == ["reason"]


def test_the_document_lists_413_and_415_where_a_body_is_read(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            has_body = "requestBody" in operation
            for status in ("413", "415"):
                assert (status in operation["responses"]) == has_body, (method, path, status)


def test_head_answers_as_get_without_the_body(api_as_manager, environment):
    path = f"{API}/environments/{environment.slug}"
    got = api_as_manager.get(path)

    head = api_as_manager.head(path)

    assert head.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == got["Content-Type"]
    assert int(head["Content-Length"]) == len(got.content)


def test_head_where_get_is_not_allowed_is_405_naming_the_methods(api_as_manager, environment):
    response = api_as_manager.head(f"{API}/environments/{environment.slug}/operations")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.parametrize(
    "path, body, content_type",
    [
        ("/environments/{slug}/operations", "{not json", "application/json"),
        ("/environments/{slug}/operations", json.dumps({"action": 7}), "application/json"),
        ("/environments/{slug}/operations", "action=abort", "text/plain"),
        ("/environments/no-such-environment/firewall-rules", "{}", "application/json"),
        ("/maintenance-windows/abc/cancel", "", "application/json"),
    ],
)
def test_a_read_token_is_refused_for_its_scope_before_the_request_is_read(
    manager, environment, path, body, content_type
):
    client = api_client(manager, TokenScope.READ)

    response = client.post(
        f"{API}{path.format(slug=environment.slug)}", body, content_type=content_type
    )

    assert problem(response, 403)["type"] == "urn:lcs-portal:problem:insufficient_scope"


def test_a_project_filter_with_a_nul_byte_is_a_400_not_a_500(api_as_manager):
    """PostgreSQL refuses NUL in a string (Schemathesis sent one): the filter is a slug."""
    response = send(api_as_manager, "GET", f"{API}/environments?project=ab%00c")
    assert response.status_code == 400


# --- 5. Headers: what a request may send and what an answer carries, and their statuses --

CONDITIONAL = [
    "/environments/{slug}",
    "/operations/{activity_id}",
    "/maintenance-windows/{window_id}",
]
PAGED = [
    "/environments",
    "/environments/{slug}/maintenance-windows",
    "/history",
    "/environments/{slug}/history",
]
RATE_LIMIT = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path.removeprefix(API), operation


def header_parameters(operation):
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "header"}


def test_every_post_and_delete_takes_an_idempotency_key_and_says_what_it_may_get(document):
    writes = [(m, p, op) for m, p, op in operations(document) if m in ("POST", "DELETE")]
    assert len(writes) >= 11
    for method, path, operation in writes:
        key = header_parameters(operation).get("Idempotency-Key")
        assert key and not key["required"], (method, path)
        assert key["schema"]["maxLength"] == 255 and key["schema"]["pattern"], (method, path)
        responses = operation["responses"]
        # A malformed key (400), its request still in flight (409), reused (422).
        for status in ("400", "409", "422"):
            assert status in responses, (method, path, status)
        assert "Idempotency-Key" in responses["409"]["description"], (method, path)
        assert "Idempotency-Key" in responses["422"]["description"], (method, path)
        succeeded = next(answer for status, answer in responses.items() if status < "300")
        assert "Idempotent-Replayed" in succeeded["headers"], (method, path)


def test_every_answer_documents_its_request_id_and_the_rate_limit(document):
    for method, path, operation in operations(document):
        for status, answer in operation["responses"].items():
            headers = answer.get("headers", {})
            where = (method, path, status)
            assert headers.get("X-Request-Id", {}).get("required") is True, where
            if status == "401":  # no valid token: nothing was counted
                assert not set(RATE_LIMIT) & set(headers), where
                continue
            for name in RATE_LIMIT:
                assert name in headers, (*where, name)
                assert headers[name]["required"] == (int(status) < 400), (*where, name)


@pytest.mark.parametrize("path", CONDITIONAL)
def test_a_conditional_get_takes_if_none_match_and_documents_its_etag_and_304(document, path):
    operation = operation_of(document, "GET", path)
    assert "If-None-Match" in header_parameters(operation)
    for status in ("200", "304"):
        assert operation["responses"][status]["headers"]["ETag"]["required"] is True, status
    assert "content" not in operation["responses"]["304"]


def test_only_the_conditional_gets_document_an_etag(document):
    with_etag = {
        path
        for method, path, operation in operations(document)
        if any("ETag" in answer.get("headers", {}) for answer in operation["responses"].values())
    }
    assert with_etag == set(CONDITIONAL)


@pytest.mark.parametrize("path", PAGED)
def test_a_paged_list_documents_its_link_header(document, path):
    headers = operation_of(document, "GET", path)["responses"]["200"]["headers"]
    assert 'rel="next"' in headers["Link"]["description"]
    assert not headers["Link"]["required"]  # the last page has none


def test_the_headers_the_document_requires_are_sent(
    api_as_manager, document, environment, t0, superuser, manager
):
    """The document's promises checked against real answers: a list, a conditional GET
    and its 304, a POST, its replay and the reuse of its key."""

    def check(response, method, path):
        answer = operation_of(document, method, path)["responses"][str(response.status_code)]
        for name, header in answer["headers"].items():
            if header["required"]:
                assert response.has_header(name), (method, path, response.status_code, name)
                pattern = header["schema"].get("pattern")
                assert not pattern or re.fullmatch(pattern, response[name]), response[name]

    slug = environment.slug
    check(api_as_manager.get(f"{API}/environments"), "GET", "/environments")
    first = api_as_manager.get(f"{API}/environments/{slug}")
    check(first, "GET", "/environments/{slug}")
    again = api_as_manager.get(f"{API}/environments/{slug}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    check(again, "GET", "/environments/{slug}")
    url = f"{API}/tokens"
    body = {"name": "documented", "scope": "read", "user": manager.username}
    key = {"HTTP_IDEMPOTENCY_KEY": "documented-1"}
    as_superuser = api_client(superuser)
    made = as_superuser.post(url, body, content_type="application/json", **key)
    assert made.status_code == 201
    check(made, "POST", "/tokens")
    replayed = as_superuser.post(url, body, content_type="application/json", **key)
    assert replayed["Idempotent-Replayed"] == "true"
    check(replayed, "POST", "/tokens")
    reused = as_superuser.post(
        url, {**body, "name": "other"}, content_type="application/json", **key
    )
    assert problem(reused, 422)["type"] == "urn:lcs-portal:problem:idempotency_key_reused"
    check(reused, "POST", "/tokens")
