"""Restart service: Deployed -> Restarting service -> Deployed, with its history."""

import pytest

from environments.models import (
    Operation,
    OperationKind,
    Outcome,
    ServiceState,
    Status,
)
from environments.refusals import OperationRefused
from tests.conftest import make_environment, run_worker

RESTART = OperationKind.RESTART_SERVICE


def test_restart_shows_restarting_service_until_the_worker_finishes(environment, manager, start):
    operation = start(RESTART, environment, manager, service_kind="aos")

    environment.refresh_from_db()
    assert environment.status == Status.RESTARTING_SERVICE
    assert operation.outcome == Outcome.QUEUED
    assert environment.services.get(kind="aos").state == ServiceState.RESTARTING

    run_worker()

    environment.refresh_from_db()
    operation.refresh_from_db()
    assert environment.status == Status.DEPLOYED
    assert operation.outcome == Outcome.SUCCEEDED
    assert operation.status_before == Status.DEPLOYED
    assert operation.status_after == Status.DEPLOYED
    assert operation.finished_at is not None
    assert "restarting AOS" in operation.log_text
    aos = environment.services.get(kind="aos")
    assert aos.state == ServiceState.RUNNING
    assert aos.last_restarted_at == operation.finished_at


def test_restart_writes_one_history_row_with_who_and_why(environment, manager, start):
    start(RESTART, environment, manager, service_kind="mr", reason="MR is stuck")

    operation = Operation.objects.get()
    assert operation.requested_by == manager
    assert operation.reason == "MR is stuck"
    assert operation.activity == "Restart service: MR"
    assert operation.activity_id is not None


def test_second_restart_is_refused_while_one_runs(environment, manager, owner, start):
    start(RESTART, environment, manager, service_kind="aos")

    with pytest.raises(OperationRefused) as refused:
        start(RESTART, environment, owner, service_kind="dixf")

    assert refused.value.code == OperationRefused.BUSY
    assert "Another operation is in progress" in refused.value.message
    assert Operation.objects.count() == 1


def test_enable_maintenance_is_refused_while_a_restart_runs(environment, manager, start):
    start(RESTART, environment, manager, service_kind="aos")

    with pytest.raises(OperationRefused) as refused:
        start(OperationKind.ENABLE_MAINTENANCE, environment, manager)

    assert refused.value.code == OperationRefused.BUSY


def test_failed_restart_leaves_the_environment_failed_with_the_error(
    environment, manager, start, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    operation = start(RESTART, environment, manager, service_kind="aos")

    run_worker()

    environment.refresh_from_db()
    operation.refresh_from_db()
    assert environment.status == Status.FAILED
    assert operation.outcome == Outcome.FAILED
    assert operation.status_after == Status.FAILED
    assert "Simulated failure of restart_service" in operation.error
    assert environment.services.get(kind="aos").state == ServiceState.FAILED


def test_restart_of_an_unknown_service_is_refused(environment, manager, start):
    with pytest.raises(OperationRefused) as refused:
        start(RESTART, environment, manager, service_kind="sql")

    assert refused.value.code == OperationRefused.INVALID
    assert not Operation.objects.exists()


def test_restart_is_refused_on_a_tier_1_environment_with_the_reason(project, manager, start):
    environment = make_environment(project, tier=1)

    with pytest.raises(OperationRefused) as refused:
        start(RESTART, environment, manager, service_kind="aos")

    assert refused.value.code == OperationRefused.INELIGIBLE
    assert "it is Tier 1, not Tier 2 to 5" in refused.value.message
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED
    assert not Operation.objects.exists()
