"""Operations run as short steps: one worker drives many at once, a lost or repeated step
changes nothing twice, and a running operation can be stopped between two steps.

Order is proved, never speed: the steps the simulated driver was asked for are recorded
as they happen, and the worker here is the test's own (conftest.run_worker)."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from environments import operations
from environments.drivers import Later, OperationLog
from environments.drivers.simulated import SimulatedDriver
from environments.models import Operation, OperationKind, Outcome, Status
from environments.operations.core import claim_step, next_step, requeue_lost_steps, run_step
from tests.api_clients import API, send
from tests.conftest import committing, make_environment, run_worker

RESTART = OperationKind.RESTART_SERVICE


@pytest.fixture
def steps(monkeypatch, settings):
    """Every step the simulated driver is asked for, in order: (slug, step)."""
    settings.SIMULATED_DRIVER_DELAY = 0.3
    settings.SIMULATED_DRIVER_POLL = 0.1
    asked = []
    act = SimulatedDriver._act

    def recording(self, step, action, description):
        asked.append((self.environment.slug, step))
        return act(self, step, action, description)

    monkeypatch.setattr(SimulatedDriver, "_act", recording)
    return asked


@pytest.fixture
def counted_steps(monkeypatch):
    """The simulated driver's action done at its second check, whatever the clock says
    (each next step due at once): every step it is asked for, in order: (slug, step)."""
    asked = []

    def stepped(self, step, action, description):
        asked.append((self.environment.slug, step))
        checks = self.memo["checks"] = self.memo.get("checks", -1) + 1
        return None if checks == 2 else Later("check", 0)

    monkeypatch.setattr(SimulatedDriver, "_act", stepped)
    return asked


def test_four_restarts_on_four_environments_advance_together_with_one_worker(
    project, manager, start, counted_steps
):
    steps = counted_steps
    environments = [make_environment(project, name=f"Sandbox {n}") for n in range(4)]
    for environment in environments:
        start(RESTART, environment, manager, service_kind="aos")

    run_worker()

    slugs = [environment.slug for environment in environments]
    second = {slug: [i for i, (s, _) in enumerate(steps) if s == slug][1] for slug in slugs}
    last = {slug: max(i for i, (s, _) in enumerate(steps) if s == slug) for slug in slugs}
    # Each operation's second step ran before any operation's last one: none waited for
    # another to end.
    assert max(second.values()) < min(last.values())
    for environment in environments:
        environment.refresh_from_db()
        assert environment.status == Status.DEPLOYED


def test_each_step_appends_its_lines_and_names_the_next_one(environment, manager, start, steps):
    operation = start(RESTART, environment, manager, service_kind="aos")
    run_worker()
    operation.refresh_from_db()
    assert operation.outcome == Outcome.SUCCEEDED
    assert operation.step_number >= 2 and operation.step == ""
    text = operation.log_text
    assert "simulated: restarting AOS on" in text
    assert "Next: check at" in text
    assert text.index("Next: check at") < text.index("restarting AOS: done")


def test_a_step_run_twice_changes_nothing_the_second_time(environment, manager, start, steps):
    operation = start(RESTART, environment, manager, service_kind="aos")
    run_step.call(operation.pk, 1)  # the first step: the restart, then a check later
    asked = list(steps)
    run_step.call(operation.pk, 1)  # a duplicate of it (another host's, a retry)
    assert steps == asked
    operation.refresh_from_db()
    assert operation.step_number == 2 and operation.outcome == Outcome.RUNNING


def test_a_step_whose_worker_died_is_handed_out_again_and_says_so(
    environment, manager, start, steps, settings
):
    operation = start(RESTART, environment, manager, service_kind="aos")
    now = timezone.now()
    # A worker claimed step 1 and died holding it.
    claim_step(operation.pk, 1, now=now - timedelta(seconds=settings.OPERATION_STEP_LEASE_SECONDS))
    DBTaskResult.objects.all().delete()  # its task went with it

    assert requeue_lost_steps(now=now + timedelta(seconds=1)) == [(operation.pk, 1, RESTART)]
    run_worker()

    operation.refresh_from_db()
    assert operation.outcome == Outcome.SUCCEEDED
    assert "The previous attempt of step 1 (act) was cut off" in operation.log_text
    assert steps.count((environment.slug, "act")) == 1  # the cut attempt never called it


def test_a_step_not_yet_due_is_not_handed_out_again(environment, manager, start, steps):
    operation = start(RESTART, environment, manager, service_kind="aos")
    assert requeue_lost_steps() == []
    assert Operation.objects.get(pk=operation.pk).step_number == 1


def test_the_first_step_is_queued_due_now_not_behind_later_ones(environment, manager, start):
    start(RESTART, environment, manager, service_kind="aos")
    task = DBTaskResult.objects.get(task_path="environments.operations.core.run_step")
    # Without run_after django-tasks-db stores the year 9999, after every due later step.
    assert task.run_after <= timezone.now()


# --- Stop ---------------------------------------------------------------------------------


def test_stop_between_steps_fails_the_operation_at_once_with_who_and_why(
    environment, manager, start, steps
):
    operation = start(RESTART, environment, manager, service_kind="aos")
    run_step.call(operation.pk, 1)  # the restart ran; a health check is due later

    with committing():
        operations.stop(environment, manager, "wrong environment")

    operation.refresh_from_db()
    environment.refresh_from_db()
    assert operation.outcome == Outcome.FAILED
    assert operation.error == "Stopped by mona: wrong environment"
    assert environment.status == Status.FAILED
    run_worker()  # the health check that was due finds the operation over
    assert steps == [(environment.slug, "act")]


def test_stop_lets_the_step_in_flight_end_and_runs_no_further_step(
    environment, manager, start, steps
):
    operation = start(RESTART, environment, manager, service_kind="aos")
    claimed, _ = claim_step(operation.pk, 1)  # a worker is running step 1 now

    operations.stop(environment, manager, "wrong environment")

    operation.refresh_from_db()
    assert operation.outcome == Outcome.RUNNING and operation.is_stopping
    # The step ends and asks for a next one: none runs; only now does it fail.
    next_step(claimed, 1, Later("check", 0), OperationLog(claimed))
    operation.refresh_from_db()
    assert operation.outcome == Outcome.FAILED
    assert operation.error == "Stopped by mona: wrong environment"
    assert operation.step_number == 1


def test_stop_is_refused_when_nothing_runs(environment, manager):
    with pytest.raises(operations.OperationRefused) as refused:
        operations.stop(environment, manager, "why")
    assert refused.value.code == operations.OperationRefused.NOT_ALLOWED


def test_stop_does_not_stop_ending_access(environment, manager):
    # Only a Maintain operation stops; a removal runs beside anything.
    assert not Operation.objects.maintain().filter(kind=OperationKind.REMOVE_ACCESS).exists()
    with pytest.raises(operations.OperationRefused):
        operations.stop(environment, manager, "why")


def test_stop_on_the_page_asks_for_a_reason_then_stops(
    as_manager, environment, manager, start, steps
):
    operation = start(RESTART, environment, manager, service_kind="aos")
    run_step.call(operation.pk, 1)
    url = reverse("environment-stop", args=[environment.slug])
    page = as_manager.get(environment.get_absolute_url()).content.decode()
    assert 'data-testid="stop"' in page and "Deadline" in page

    confirm = as_manager.get(url, HTTP_HX_REQUEST="true")
    assert confirm.status_code == 200 and 'data-testid="confirm-stop"' in confirm.content.decode()
    empty = as_manager.post(url, {"reason": ""}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 400
    assert Operation.objects.get(pk=operation.pk).is_active

    with committing():
        done = as_manager.post(url, {"reason": "wrong sandbox"}, HTTP_HX_REQUEST="true")
    assert done.status_code == 200
    operation.refresh_from_db()
    assert operation.error == "Stopped by mona: wrong sandbox"


def test_stop_through_the_api_says_via_api(api_as_manager, environment, manager, start, steps):
    operation = start(RESTART, environment, manager, service_kind="aos")
    run_step.call(operation.pk, 1)
    path = f"{API}/operations/{operation.activity_id}/stop"

    refused = send(api_as_manager, "POST", path, {"reason": ""})
    assert refused.status_code == 400
    with committing():
        answer = send(api_as_manager, "POST", path, {"reason": "wrong sandbox"})

    assert answer.status_code == 202
    assert answer.json()["outcome"] == "failed"
    assert answer.json()["error"] == "Stopped by mona: wrong sandbox"
    assert "Stop asked for by mona via API (nightly): wrong sandbox" in answer.json()["log"]
    again = send(api_as_manager, "POST", path, {"reason": "again"})
    assert again.status_code == 409


# --- The upgrade ---------------------------------------------------------------------------


def test_an_operation_running_at_the_upgrade_goes_on_as_steps(environment, manager, steps):
    """What 0012 finds: an operation the old worker ran, and its queued run_operation."""
    migration = importlib.import_module("environments.migrations.0012_operations_run_as_steps")
    with committing():
        operation = operations.restart_service(environment, manager, "aos", reason="upgrade")
    DBTaskResult.objects.filter(task_path="environments.operations.core.run_step").update(
        task_path="environments.operations.core.run_operation",
        args_kwargs={"args": [operation.pk], "kwargs": {}},
    )
    Operation.objects.filter(pk=operation.pk).update(step="", step_number=0, step_due_at=None)

    migration.steps_for_active_operations(apps, None)
    run_worker()

    operation.refresh_from_db()
    assert operation.outcome == Outcome.SUCCEEDED
    assert not DBTaskResult.objects.filter(
        task_path="environments.operations.core.run_operation"
    ).exists()


def test_twenty_windows_starting_at_one_minute_go_into_maintenance_together(
    project, manager, counted_steps
):
    steps = counted_steps
    from environments import windows

    starts_at = timezone.now() + timedelta(hours=1)
    environments = [make_environment(project, name=f"Night {n}") for n in range(20)]
    scheduled = []
    with committing():
        for environment in environments:
            scheduled.append(
                windows.schedule(
                    environment,
                    manager,
                    starts_at=starts_at,
                    ends_at=starts_at + timedelta(hours=1),
                    reason="patch night",
                )
            )
    DBTaskResult.objects.all().delete()  # their own tasks wake an hour from now
    with committing():
        for window in scheduled:  # what the twenty start tasks do at that minute
            windows.start_window(window.pk, now=starts_at)

    run_worker()

    slugs = [environment.slug for environment in environments]
    second = {slug: [i for i, (s, _) in enumerate(steps) if s == slug][1] for slug in slugs}
    last = {slug: max(i for i, (s, _) in enumerate(steps) if s == slug) for slug in slugs}
    assert max(second.values()) < min(last.values())
    for environment in environments:
        environment.refresh_from_db()
        assert environment.status == Status.IN_MAINTENANCE


def test_a_health_check_that_never_answers_holds_up_no_other_environment(
    project, manager, start, settings, tmp_path, steps
):
    """One environment's AOS never answers its health check (the command driver, each
    check cut at its health_timeout); another's restart settles meanwhile, while the
    first still checks."""
    import json
    import sys

    stuck = make_environment(project, name="Stuck sandbox")
    other = make_environment(project, name="Other sandbox")
    settings.PORTAL_DRIVERS_FILE = tmp_path / "drivers.json"
    settings.PORTAL_DRIVERS_FILE.write_text(
        json.dumps(
            {
                stuck.slug: {
                    "driver": "command",
                    "restart": [sys.executable, "-c", "pass"],
                    "health": [sys.executable, "-c", "import time; time.sleep(60)"],
                    "health_interval": 0.5,
                }
            }
        )
    )
    settings.OPERATION_DEADLINE_SECONDS = 4
    hung = start(RESTART, stuck, manager, service_kind="aos")
    settled = start(RESTART, other, manager, service_kind="aos")

    run_worker()

    hung.refresh_from_db()
    settled.refresh_from_db()
    assert settled.outcome == Outcome.SUCCEEDED
    assert hung.outcome == Outcome.FAILED
    assert "did not pass its health check" in hung.error
    checks = [line.at for line in hung.log_lines.all() if "not passed yet" in line.text]
    assert checks and settled.finished_at < hung.finished_at
    # Still checking after the other one had settled.
    assert hung.log_lines.filter(at__gt=settled.finished_at).exists()


def test_a_stop_reaches_the_webhooks_with_who_and_why(environment, manager, start, steps):
    from environments.models import Webhook, WebhookDelivery

    Webhook.objects.create(
        project=environment.project, name="chat", url="http://127.0.0.1:9/hook", secret="s"
    )
    operation = start(RESTART, environment, manager, service_kind="aos")
    run_step.call(operation.pk, 1)
    with committing():
        operations.stop(environment, manager, "wrong sandbox")

    finished = WebhookDelivery.objects.get(event="operation.finished")
    assert finished.payload["outcome"] == "failed"
    assert finished.payload["error"] == "Stopped by mona: wrong sandbox"
    assert "Stopped by mona: wrong sandbox" in finished.payload["text"]
