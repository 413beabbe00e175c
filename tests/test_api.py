"""The API does what the pages do, through the same operations and rules: Maintain
actions and their recovery, database access, history with a cursor, and problems."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from environments.models import (
    DatabaseAccount,
    EnvironmentType,
    FirewallRule,
    Operation,
    OperationKind,
    Outcome,
    Status,
)
from tests.api_clients import API, api_client, send
from tests.conftest import committing, make_environment, run_worker
from tests.helpers import add_history


def start(client, environment, action, **body):
    body = dict(action=action, **body)
    body.setdefault("reason", "from a script")
    return act(client, "POST", f"{API}/environments/{environment.slug}/operations", body)


def act(client, method, path, body=None):
    """A request that starts work, its tasks enqueued as a real commit would."""
    with committing():
        return send(client, method, path, body)


def problem(response):
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)


# --- Maintain actions -------------------------------------------------------------------


def test_restart_answers_202_with_the_operation_and_its_location(api_as_manager, environment):
    response = start(api_as_manager, environment, "restart_service", service="aos")
    assert response.status_code == 202
    body = response.json()
    assert response["Location"] == f"{API}/operations/{body['activity_id']}"
    assert body["activity"] == "Restart service: AOS"
    assert body["outcome"] == "queued" and body["active"] is True
    assert body["environment_status_label"] == "Restarting service"
    environment.refresh_from_db()
    assert environment.status == Status.RESTARTING_SERVICE


def test_an_operation_is_followed_to_its_end_by_its_location(api_as_manager, environment):
    location = start(api_as_manager, environment, "restart_service", service="dixf")["Location"]
    run_worker()
    body = api_as_manager.get(location).json()
    assert body["outcome"] == "succeeded" and body["active"] is False
    assert body["status_before"] == "deployed" and body["status_after"] == "deployed"
    assert body["environment_status_label"] == "Deployed"
    assert body["finished_at"] and body["duration_seconds"] is not None
    assert "simulated" in body["log"]


def test_what_the_api_changes_lands_in_history_via_the_tokens_name(api_as_manager, environment):
    start(api_as_manager, environment, "enable_maintenance", reason="patching")
    operation = Operation.objects.get()
    assert operation.via == "API (nightly)"
    assert operation.reason == "patching"
    assert operation.requested_by.username == "mona"
    row = api_as_manager.get(f"{API}/environments/{environment.slug}/history").json()["items"][0]
    assert row["via"] == "API (nightly)" and row["requested_by"] == "mona"


def test_the_history_page_shows_via_api(client, api_as_manager, environment, manager):
    start(api_as_manager, environment, "enable_maintenance")
    client.force_login(manager)
    page = client.get(f"/environments/{environment.slug}/history/").content.decode()
    assert "via API (nightly)" in page


def test_a_second_action_while_one_runs_is_409_with_the_reason(api_as_manager, environment):
    assert start(api_as_manager, environment, "restart_service", service="aos").status_code == 202
    response = start(api_as_manager, environment, "enable_maintenance")
    assert response.status_code == 409
    body = problem(response)
    assert body["type"] == "urn:lcs-portal:problem:busy"
    assert "Another operation is in progress" in body["detail"]
    assert Operation.objects.count() == 1


def test_an_action_the_status_does_not_allow_is_409(api_as_manager, environment):
    response = start(api_as_manager, environment, "disable_maintenance")
    assert response.status_code == 409
    assert problem(response)["type"] == "urn:lcs-portal:problem:not_allowed"


def test_restart_on_an_ineligible_environment_is_409_with_why(api_as_manager, project):
    production = make_environment(project, type=EnvironmentType.PRODUCTION, tier=5)
    response = start(api_as_manager, production, "restart_service", service="aos")
    assert response.status_code == 409
    body = problem(response)
    assert body["type"] == "urn:lcs-portal:problem:ineligible"
    assert "not a sandbox" in body["detail"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"action": "restart_service", "service": "sql", "reason": "x"}, "service"),
        ({"action": "restart_service", "reason": "x"}, "service"),
        ({"action": "enable_maintenance", "reason": "x" * 501}, "reason"),
        ({"action": 5, "reason": "x"}, "action"),
        ({"reason": "x"}, "action"),
    ],
)
def test_bad_values_are_400_with_the_field_named(api_as_manager, environment, body, field):
    response = act(
        api_as_manager, "POST", f"{API}/environments/{environment.slug}/operations", body
    )
    assert response.status_code == 400
    assert field in [error["field"] for error in problem(response)["errors"]]
    assert not Operation.objects.exists()


def test_a_body_that_is_not_json_is_400(api_as_manager, environment):
    response = api_as_manager.post(
        f"{API}/environments/{environment.slug}/operations", "{", content_type="application/json"
    )
    assert response.status_code == 400
    assert problem(response)["status"] == 400


def test_resume_rollback_and_abort_recover_a_failed_environment(
    api_as_manager, environment, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    start(api_as_manager, environment, "restart_service", service="aos")
    run_worker()
    environment.refresh_from_db()
    assert environment.status == Status.FAILED
    details = api_as_manager.get(f"{API}/environments/{environment.slug}").json()
    assert details["failed_operation"]["activity"] == "Restart service: AOS"
    assert {"resume", "rollback", "abort"} <= set(details["available_actions"])

    assert start(api_as_manager, environment, "resume").status_code == 202
    run_worker()
    assert Operation.objects.filter(kind="resume").get().outcome == Outcome.FAILED
    assert start(api_as_manager, environment, "rollback").status_code == 202
    run_worker()
    rollback = Operation.objects.get(kind="rollback")
    assert rollback.outcome == Outcome.FAILED  # the driver still fails

    response = start(api_as_manager, environment, "abort")
    assert response.status_code == 202
    assert response.json()["outcome"] == "aborted"
    assert response.json()["active"] is False
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED


def test_the_environment_shows_services_grants_and_who_may_sign_in(
    api_as_manager, environment, maint, owner
):
    start(api_as_manager, environment, "enable_maintenance")
    run_worker()
    body = api_as_manager.get(f"{API}/environments/{environment.slug}").json()
    assert body["status"] == "in_maintenance" and body["maintenance_mode"] is True
    assert body["who_may_sign_in"].startswith("Only System administrators")
    assert body["maintenance_users"] == [
        {"username": "maya", "role": "maintenance_mode_user", "role_label": "Maintenance mode user"}
    ]
    assert [s["code"] for s in body["services"]] == ["AOS", "DIXF", "MR"]
    assert body["available_actions"] == ["disable_maintenance", "enable_access", "request_access"]


def test_environments_filter_by_project_and_status(api_as_manager, environment, other_environment):
    assert [e["slug"] for e in api_as_manager.get(f"{API}/environments").json()] == [
        environment.slug
    ]
    assert api_as_manager.get(f"{API}/environments?project=contoso").json()[0]["slug"] == (
        environment.slug
    )
    assert api_as_manager.get(f"{API}/environments?project=fabrikam").json() == []
    assert api_as_manager.get(f"{API}/environments?status=failed").json() == []
    assert api_as_manager.get(f"{API}/environments?status=broken").status_code == 400


# --- Database access ------------------------------------------------------------------


def test_a_firewall_rule_is_made_and_removed(api_as_manager, environment):
    body = {"name": "office", "address": "203.0.113.7", "reason": "support", "hours": 2}
    response = act(
        api_as_manager, "POST", f"{API}/environments/{environment.slug}/firewall-rules", body
    )
    assert response.status_code == 202
    rule = response.json()["firewall_rule"]
    assert rule["cidr"] == "203.0.113.7/32" and rule["state"] == "Being applied"
    assert response["Location"].endswith(response.json()["operation"]["activity_id"])
    run_worker()
    response = act(api_as_manager, "DELETE", f"{API}/firewall-rules/{rule['id']}")
    assert response.status_code == 202
    assert response.json()["firewall_rule"]["state"] == "Removed"
    assert response.json()["operation"]["kind"] == "remove_access"
    assert response.json()["operation"]["via"] == "API (nightly)"
    again = act(api_as_manager, "DELETE", f"{API}/firewall-rules/{rule['id']}")
    assert again.status_code == 409
    assert "already ended" in problem(again)["detail"]


@pytest.mark.parametrize("address", ["0.0.0.0/0", "10.0.0.0/8", "127.0.0.1", "not an address", "*"])
def test_firewall_rules_follow_the_pages_rules_for_addresses(api_as_manager, environment, address):
    body = {"name": "wide", "address": address, "reason": "support"}
    response = act(
        api_as_manager, "POST", f"{API}/environments/{environment.slug}/firewall-rules", body
    )
    assert response.status_code == 400
    assert problem(response)["errors"][0]["field"] == "address"
    assert not FirewallRule.objects.exists()


def test_access_longer_than_the_maximum_is_400(api_as_manager, environment):
    body = {"level": "read", "reason": "support", "hours": 100}
    response = act(
        api_as_manager, "POST", f"{API}/environments/{environment.slug}/database-accounts", body
    )
    assert response.status_code == 400
    assert "at most" in problem(response)["detail"]


def test_the_database_password_is_in_the_creating_answer_only(api_as_manager, environment):
    body = {"level": "read_write", "reason": "support"}
    response = act(
        api_as_manager, "POST", f"{API}/environments/{environment.slug}/database-accounts", body
    )
    assert response.status_code == 202
    account = response.json()["database_account"]
    password = account["password"]
    assert len(password) >= 32
    assert account["database"] == environment.database_name and account["port"] == 5432
    assert account["level"] == "read_write"
    run_worker()
    for path in [
        f"{API}/environments/{environment.slug}",
        response["Location"],
        f"{API}/history",
        f"{API}/environments/{environment.slug}/history",
    ]:
        answer = api_as_manager.get(path)
        assert answer.status_code == 200
        assert password not in answer.content.decode()
    response = act(api_as_manager, "DELETE", f"{API}/database-accounts/{account['id']}")
    assert response.status_code == 202
    assert response.json()["database_account"]["state"] == "Revoked"
    assert "password" not in response.json()["database_account"]
    assert DatabaseAccount.objects.get().password_encrypted == ""


def test_database_access_on_an_ineligible_environment_is_409(api_as_manager, project):
    legacy = make_environment(project, deployment="legacy")
    body = {"level": "read", "reason": "support"}
    response = act(
        api_as_manager, "POST", f"{API}/environments/{legacy.slug}/database-accounts", body
    )
    assert response.status_code == 409
    assert problem(response)["type"] == "urn:lcs-portal:problem:ineligible"


# --- History ------------------------------------------------------------------------


def walk(client, url):
    rows, pages = [], 0
    while url:
        page = client.get(url).json()
        rows += page["items"]
        url = page["next"]
        pages += 1
    return rows, pages


def test_the_cursor_walks_every_row_once_newest_first(api_as_manager, environment, manager):
    add_history(environment, manager, 25)
    rows, pages = walk(api_as_manager, f"{API}/environments/{environment.slug}/history?limit=10")
    assert pages == 3
    started = [row["started_at"] for row in rows]
    assert len(rows) == 25 == len({row["activity_id"] for row in rows})
    assert started == sorted(started, reverse=True)


def test_the_cursor_walks_rows_that_share_one_start_time_each_once(
    api_as_manager, environment, manager
):
    older = add_history(environment, manager, 2, start=timezone.now() - timedelta(days=2))
    tied = add_history(environment, manager, 7)
    newer = add_history(environment, manager, 2, start=timezone.now() - timedelta(hours=1))
    one_time = timezone.now() - timedelta(hours=12)
    Operation.objects.filter(pk__in=[op.pk for op in tied]).update(started_at=one_time)

    # Pages of 3 end inside the tied rows, twice.
    rows, pages = walk(api_as_manager, f"{API}/environments/{environment.slug}/history?limit=3")

    ids = [row["activity_id"] for row in rows]
    assert len(ids) == len(set(ids)) == 11
    assert set(ids) == {str(op.activity_id) for op in older + tied + newer}
    assert pages == 4
    assert ids[:2] == [str(op.activity_id) for op in reversed(newer)]
    assert ids[-2:] == [str(op.activity_id) for op in reversed(older)]


def test_rows_written_while_walking_shift_no_page(api_as_manager, environment, manager):
    add_history(environment, manager, 30)
    first = api_as_manager.get(f"{API}/history?limit=10").json()
    # Ten new rows arrive between pages, as a busy portal's would.
    add_history(environment, manager, 10, start=timezone.now())
    rest, _ = walk(api_as_manager, first["next"])
    ids = [row["activity_id"] for row in first["items"] + rest]
    assert len(ids) == 30 == len(set(ids))


def test_the_next_link_keeps_the_filters(api_as_manager, environment, manager):
    add_history(environment, manager, 5, kind=OperationKind.ENABLE_MAINTENANCE)
    add_history(environment, manager, 5, outcome=Outcome.FAILED)
    url = f"{API}/history?outcome=failed&limit=2"
    first = api_as_manager.get(url).json()
    assert "outcome=failed" in first["next"] and first["next"].startswith("http://testserver/")
    rows, pages = walk(api_as_manager, url)
    assert len(rows) == 5 and pages == 3
    assert {row["outcome"] for row in rows} == {"failed"}


def test_history_filters_are_the_pages(api_as_manager, environment, manager, owner):
    add_history(environment, manager, 3)
    add_history(environment, owner, 2, start=timezone.now() - timedelta(days=10))
    assert len(api_as_manager.get(f"{API}/history?user=ALI").json()["items"]) == 2
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert len(api_as_manager.get(f"{API}/history?since={since}").json()["items"]) == 3
    assert len(api_as_manager.get(f"{API}/history?kind=restart_service").json()["items"]) == 5
    assert api_as_manager.get(f"{API}/history?type=roles").json()["items"] == []
    assert api_as_manager.get(f"{API}/history?type=everything").status_code == 400
    bad = api_as_manager.get(f"{API}/history?since=2026-12-02&until=2026-12-01")
    assert bad.status_code == 400 and "From date" in problem(bad)["detail"]
    assert api_as_manager.get(f"{API}/history?cursor=nonsense").status_code == 400
    assert api_as_manager.get(f"{API}/history?limit=100000").status_code == 400


def test_history_across_environments_shows_every_kind_by_default(
    api_as_manager, environment, manager
):
    add_history(environment, manager, 1, kind=OperationKind.GRANT_ROLE)
    assert len(api_as_manager.get(f"{API}/history").json()["items"]) == 1
    assert api_as_manager.get(f"{API}/history?type=maintain").json()["items"] == []


def test_a_deep_page_costs_what_the_first_does(api_as_manager, environment, manager):
    """Keyset paging: no OFFSET, and the same queries on page 1 and on the last page."""
    add_history(environment, manager, 60)
    url = f"{API}/environments/{environment.slug}/history?limit=5"
    with CaptureQueriesContext(connection) as first:
        page = api_as_manager.get(url).json()
    for _ in range(10):
        page = api_as_manager.get(page["next"]).json()
    with CaptureQueriesContext(connection) as deep:
        api_as_manager.get(page["next"])
    assert len(first.captured_queries) == len(deep.captured_queries)
    assert not any("OFFSET" in query["sql"] for query in deep.captured_queries)


# --- Problems ---------------------------------------------------------------------


def test_a_server_error_is_a_problem_too(manager, environment, monkeypatch):
    from environments.api import environments as endpoints

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(endpoints, "environment_for", broken)
    client = api_client(manager, raise_request_exception=False)
    response = client.get(f"{API}/environments/{environment.slug}")
    assert response.status_code == 500
    body = problem(response)
    assert body["type"] == "urn:lcs-portal:problem:server_error"
    assert "boom" not in response.content.decode()


def test_a_wrong_method_is_405_with_allow(api_as_manager, environment):
    response = api_as_manager.put(f"{API}/environments/{environment.slug}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert problem(response)["detail"] == "PUT is not allowed here; use GET, HEAD."


def test_answers_are_never_stored_by_a_cache(api_as_manager, environment):
    response = api_as_manager.get(f"{API}/environments/{environment.slug}")
    assert "no-store" in response["Cache-Control"]


def test_the_api_ignores_the_session_cookie(client, manager, environment):
    client.force_login(manager)
    response = client.get(f"{API}/environments")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_needs_no_csrf_token(manager, environment):
    client = api_client(manager, enforce_csrf_checks=True)
    assert start(client, environment, "enable_maintenance").status_code == 202


def test_the_pages_404_is_still_a_page(manager):
    client = Client()
    client.force_login(manager)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_busy_environment_with_an_empty_reason_is_409_on_the_page_and_in_the_api(
    client, api_as_manager, manager, environment
):
    """Both check the state before the input, in one place (operations.start_from_input)."""
    assert start(api_as_manager, environment, "restart_service", service="aos").status_code == 202
    api = start(api_as_manager, environment, "enable_maintenance", reason="")
    client.force_login(manager)
    page = client.post(
        f"/environments/{environment.slug}/maintain/enable_maintenance/",
        {"reason": ""},
        HTTP_HX_REQUEST="true",
    )
    assert (api.status_code, page.status_code) == (409, 409)
    assert problem(api)["type"] == "urn:lcs-portal:problem:busy"
    assert "Another operation is in progress" in page.content.decode()
