"""Maintenance windows through the API: scheduled, listed, cancelled and ended early
under the windows pages' rules, with times that say their offset."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from environments import operations, windows
from environments.models import (
    MaintenanceWindow,
    Operation,
    OperationKind,
    ServiceKind,
    Status,
    TokenScope,
    WindowState,
)
from tests.api_clients import API, api_client, send
from tests.conftest import committing, run_worker

HOUR = timedelta(hours=1)


def schedule(client, environment, starts_at, ends_at=None, **body):
    body = {
        "starts_at": starts_at.isoformat(),
        "ends_at": (ends_at or starts_at + HOUR).isoformat(),
        "reason": "Upgrade to 10.0.40",
        **body,
    }
    with committing():
        return send(
            client, "POST", f"{API}/environments/{environment.slug}/maintenance-windows", body
        )


def cancel(client, window, reason="Moved to Friday"):
    return send(client, "POST", f"{window['url']}/cancel", {"reason": reason})


def test_a_window_scheduled_through_the_api_answers_201_with_its_location(
    api_as_manager, environment, manager, t0
):
    response = schedule(api_as_manager, environment, t0, notify_users=False)

    assert response.status_code == 201, response.content
    body = response.json()
    window = MaintenanceWindow.objects.get()
    assert response["Location"] == f"{API}/maintenance-windows/{window.pk}" == body["url"]
    assert (window.starts_at, window.ends_at, window.scheduled_by) == (t0, t0 + HOUR, manager)
    assert window.notify_users is False
    assert body["state"] == "scheduled" and body["scheduled_by"] == manager.username
    assert api_as_manager.get(body["url"]).json() == body


def test_a_time_with_an_offset_is_stored_in_utc(api_as_manager, environment, t0):
    pacific = timezone.get_fixed_timezone(-8 * 60)
    local = datetime.combine(t0.date() + timedelta(days=1), datetime.min.time(), pacific)
    two_am = local.replace(hour=2)

    response = schedule(api_as_manager, environment, two_am)
    assert response.status_code == 201

    stored = MaintenanceWindow.objects.get().starts_at
    assert stored.astimezone(UTC).hour == 10 and stored == two_am
    # The answer says it in UTC, as every time of the API, and as reading it back does.
    assert response.json()["starts_at"].endswith("T10:00:00Z")
    assert api_as_manager.get(response["Location"]).json() == response.json()


@pytest.mark.parametrize("starts_at", ["2030-01-01T22:00:00", 1924984800, "tonight", None], ids=str)
def test_a_time_without_an_offset_or_not_one_at_all_is_refused_and_nothing_is_scheduled(
    api_as_manager, environment, starts_at
):
    body = {"starts_at": starts_at, "ends_at": "2030-01-01T23:00:00Z", "reason": "x"}
    response = send(
        api_as_manager, "POST", f"{API}/environments/{environment.slug}/maintenance-windows", body
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "starts_at" in response.json()["detail"]
    assert not MaintenanceWindow.objects.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"reason": ""}, "Give a reason"),
        ({"ends_at": "same as the start"}, "The end must come after the start."),
        ({"starts_at": "in the past"}, "The start must be in the future."),
        ({"ends_at": "a day and a half later"}, "A window lasts at most 24 hours."),
    ],
)
def test_the_pages_rules_refuse_a_bad_window_with_400(
    api_as_manager, environment, t0, change, message
):
    values = {
        "same as the start": t0,
        "in the past": timezone.now() - HOUR,
        "a day and a half later": t0 + timedelta(hours=36),
    }
    body = {key: values.get(value, value) for key, value in change.items()}
    starts_at = body.pop("starts_at", t0)
    ends_at = body.pop("ends_at", None)

    response = schedule(api_as_manager, environment, starts_at, ends_at, **body)

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not MaintenanceWindow.objects.exists()


def test_an_overlapping_window_is_refused_naming_the_other(api_as_manager, environment, t0):
    assert schedule(api_as_manager, environment, t0).status_code == 201

    response = schedule(api_as_manager, environment, t0 + HOUR / 2)

    assert response.status_code == 400
    assert "overlaps another window" in response.json()["detail"]
    assert "Upgrade to 10.0.40" in response.json()["detail"]
    assert MaintenanceWindow.objects.count() == 1


def test_the_list_shows_windows_to_come_and_a_state_on_request(
    api_as_manager, environment, manager, t0
):
    first = schedule(api_as_manager, environment, t0 + 2 * HOUR).json()
    second = schedule(api_as_manager, environment, t0).json()
    assert cancel(api_as_manager, first).status_code == 200
    path = f"{API}/environments/{environment.slug}/maintenance-windows"

    assert [w["id"] for w in api_as_manager.get(path).json()] == [second["id"]]
    cancelled = api_as_manager.get(path, {"state": "cancelled"}).json()
    assert [(w["id"], w["state"], w["ended_by"]) for w in cancelled] == [
        (first["id"], "cancelled", manager.username)
    ]
    assert api_as_manager.get(path, {"state": ""}).json() == api_as_manager.get(path).json()
    wrong = api_as_manager.get(path, {"state": "soon"})
    assert wrong.status_code == 400 and "'scheduled', 'active'" in wrong.json()["detail"]


def test_the_list_costs_the_same_queries_for_one_window_or_ten(
    api_as_manager, environment, manager, t0, django_assert_max_num_queries
):
    path = f"{API}/environments/{environment.slug}/maintenance-windows?state=cancelled"
    for n in range(10):
        window = schedule(api_as_manager, environment, t0 + n * HOUR).json()
        assert cancel(api_as_manager, window).status_code == 200
        if n == 0:
            with CaptureQueriesContext(connection) as captured:
                api_as_manager.get(path)
            for_one = len(captured)  # read now: the next request empties the log
    with django_assert_max_num_queries(for_one):
        assert len(api_as_manager.get(path).json()) == 10
    assert len(api_as_manager.get(f"{path}&limit=3").json()) == 3


def test_a_window_is_cancelled_once_then_409(api_as_manager, environment, t0):
    window = schedule(api_as_manager, environment, t0).json()

    cancelled = cancel(api_as_manager, window)
    again = cancel(api_as_manager, window)

    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert again.status_code == 409 and "Cancelled" in again.json()["detail"]


def test_an_active_window_ended_early_turns_maintenance_mode_off_and_completes(
    api_as_manager, environment, t0
):
    window = schedule(api_as_manager, environment, t0).json()
    with committing():
        windows.start_window(window["id"], now=t0)
    run_worker()

    with committing():
        response = api_as_manager.post(f"{window['url']}/end")
    assert response.status_code == 202
    operation = response.json()["operation"]
    assert operation["kind"] == OperationKind.DISABLE_MAINTENANCE
    assert operation["via"] == "API (nightly)"
    assert response["Location"] == f"{API}/operations/{operation['activity_id']}"
    run_worker()

    assert api_as_manager.get(window["url"]).json()["state"] == WindowState.COMPLETED
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED


def test_an_active_window_with_maintenance_mode_already_off_completes_at_once_with_200(
    api_as_manager, environment, manager, t0
):
    window = schedule(api_as_manager, environment, t0).json()
    with committing():
        windows.start_window(window["id"], now=t0)
    run_worker()
    with committing():
        operations.disable_maintenance(environment, manager, reason="done early")
    run_worker()
    MaintenanceWindow.objects.filter(pk=window["id"]).update(state=WindowState.ACTIVE)

    response = api_as_manager.post(f"{window['url']}/end")

    assert response.status_code == 200, response.content
    assert response.json()["operation"] is None
    assert response.json()["maintenance_window"]["state"] == WindowState.COMPLETED


def test_a_window_that_has_not_started_cannot_be_ended(api_as_manager, environment, t0):
    window = schedule(api_as_manager, environment, t0).json()
    response = api_as_manager.post(f"{window['url']}/end")
    assert response.status_code == 409 and "Only an active window" in response.json()["detail"]
    assert not Operation.objects.filter(kind=OperationKind.DISABLE_MAINTENANCE).exists()


def test_a_read_token_lists_windows_but_schedules_none(manager, environment, t0):
    reader = api_client(manager, TokenScope.READ)
    assert reader.get(f"{API}/environments/{environment.slug}/maintenance-windows").json() == []
    response = schedule(reader, environment, t0)
    assert response.status_code == 403
    assert response.json()["type"] == "urn:lcs-portal:problem:insufficient_scope"
    assert not MaintenanceWindow.objects.exists()


def test_the_environment_names_its_next_window_without_a_query_more(
    api_as_manager, environment, t0, django_assert_max_num_queries
):
    path = f"{API}/environments"
    with CaptureQueriesContext(connection) as captured:
        assert api_as_manager.get(path).json()[0]["maintenance_window"] is None
    without = len(captured)
    schedule(api_as_manager, environment, t0)

    with django_assert_max_num_queries(without):
        listed = api_as_manager.get(path).json()[0]["maintenance_window"]
    details = api_as_manager.get(f"{path}/{environment.slug}").json()["maintenance_window"]

    assert listed == details
    assert listed["starts_at"] == t0.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed["url"] == f"{API}/environments/{environment.slug}/maintenance-windows"


def test_scheduling_and_cancelling_through_the_api_are_in_its_history_with_the_reasons(
    api_as_manager, environment, t0
):
    window = schedule(api_as_manager, environment, t0).json()
    assert cancel(api_as_manager, window, "Moved to Friday").status_code == 200

    history = api_as_manager.get(
        f"{API}/environments/{environment.slug}/history", {"type": "windows"}
    ).json()["items"]
    period = f"{t0:%Y-%m-%d %H:%M} to {t0 + HOUR:%H:%M} UTC"
    assert [
        (row["kind"], row["type"], row["target"], row["reason"], row["requested_by"], row["via"])
        for row in history
    ] == [
        ("cancel_window", "Maintenance window", period, "Moved to Friday", "mona", "API (nightly)"),
        (
            "schedule_window",
            "Maintenance window",
            period,
            "Upgrade to 10.0.40",
            "mona",
            "API (nightly)",
        ),
    ]
    assert {row["outcome"] for row in history} == {"succeeded"}
    assert all(row["finished_at"] for row in history)


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}])
def test_cancelling_without_a_reason_is_400_and_the_window_stays_scheduled(
    api_as_manager, environment, t0, body
):
    window = schedule(api_as_manager, environment, t0).json()

    response = send(api_as_manager, "POST", f"{window['url']}/cancel", body)

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "reason", "message": "Give a reason: it is kept in the environment history."}
    ]
    assert MaintenanceWindow.objects.get().state == WindowState.SCHEDULED
    assert not Operation.objects.filter(kind=OperationKind.CANCEL_WINDOW).exists()


@pytest.mark.parametrize("notify_users", [0, 1, "true", "no"])
def test_notify_users_must_be_true_or_false_not_a_number_or_text(
    api_as_manager, environment, t0, notify_users
):
    response = schedule(api_as_manager, environment, t0, notify_users=notify_users)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "notify_users"
    assert not MaintenanceWindow.objects.exists()


def test_hours_given_as_text_are_400_and_nothing_is_requested(api_as_manager, environment):
    body = {"level": "read", "reason": "support", "hours": "2"}

    response = send(
        api_as_manager, "POST", f"{API}/environments/{environment.slug}/database-accounts", body
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "hours"
    assert not Operation.objects.exists()


def start_now(client, environment, **body):
    body = {"hours": 2, "reason": "Hotfix", **body}
    with committing():
        return send(
            client, "POST", f"{API}/environments/{environment.slug}/maintenance-windows/now", body
        )


def test_start_now_turns_maintenance_on_with_an_automatic_end_and_answers_202(
    api_as_manager, environment
):
    response = start_now(api_as_manager, environment, hours=1.5)

    assert response.status_code == 202
    body = response.json()
    window = MaintenanceWindow.objects.get()
    assert response["Location"].endswith(f"/maintenance-windows/{window.pk}")
    assert body["maintenance_window"]["state"] == "active"
    assert body["operation"]["kind"] == "enable_maintenance"
    assert window.ends_at - window.starts_at == timedelta(hours=1.5)
    operation = window.operations.get(kind=OperationKind.ENABLE_MAINTENANCE)
    assert operation.via.startswith("API (") and operation.reason == "Scheduled maintenance: Hotfix"


def test_start_now_while_another_operation_runs_is_409_and_keeps_no_window(
    api_as_manager, environment, manager
):
    operations.restart_service(environment, manager, ServiceKind.AOS, reason="busy")

    response = start_now(api_as_manager, environment)

    assert response.status_code == 409
    assert not MaintenanceWindow.objects.exists()


@pytest.mark.parametrize("hours", [0, 0.1, 1000])
def test_start_now_outside_its_hours_is_400_on_the_hours(api_as_manager, environment, hours):
    response = start_now(api_as_manager, environment, hours=hours)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "hours"
    assert not MaintenanceWindow.objects.exists()
