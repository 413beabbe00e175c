"""From Failed: Resume runs the operation again, Rollback undoes it, Abort gives up."""

import pytest

from environments.models import Operation, OperationKind, Outcome, ServiceState, Status
from environments.refusals import OperationRefused
from tests.conftest import run_worker


@pytest.fixture
def failed_enable(environment, manager, start, fail_driver):
    """An Enable Maintenance mode whose driver failed, and the driver fixed since."""
    fail_driver(f"{environment.slug} set_maintenance_mode")
    operation = start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    run_worker()
    environment.refresh_from_db()
    assert environment.status == Status.FAILED
    fail_driver()  # nothing fails any more
    return operation


def test_resume_runs_the_failed_operation_again_to_its_target(
    environment, manager, start, failed_enable
):
    resumed = start(OperationKind.RESUME, environment, manager)
    environment.refresh_from_db()
    assert environment.status == Status.SERVICING

    run_worker()

    environment.refresh_from_db()
    resumed.refresh_from_db()
    assert environment.status == Status.IN_MAINTENANCE
    assert resumed.outcome == Outcome.SUCCEEDED
    assert resumed.failed_operation == failed_enable
    assert resumed.activity == "Resume: Enable Maintenance mode"
    assert (resumed.status_before, resumed.status_after) == (Status.FAILED, Status.IN_MAINTENANCE)


def test_rollback_undoes_the_operation_and_returns_to_the_status_before(
    environment, manager, start, failed_enable
):
    rollback = start(OperationKind.ROLLBACK, environment, manager)
    run_worker()

    environment.refresh_from_db()
    rollback.refresh_from_db()
    assert environment.status == Status.DEPLOYED
    assert rollback.outcome == Outcome.ROLLED_BACK
    assert "Undoing Enable Maintenance mode" in rollback.log_text
    assert "turning maintenance mode off" in rollback.log_text


def test_abort_returns_to_the_status_before_without_acting(
    environment, manager, start, failed_enable
):
    abort = start(OperationKind.ABORT, environment, manager)

    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED
    assert abort.outcome == Outcome.ABORTED
    assert abort.finished_at is not None
    assert abort.log_text == ""
    run_worker()
    assert Operation.objects.filter(outcome=Outcome.ABORTED).count() == 1


def test_the_failed_operation_keeps_its_failure_in_history(
    environment, manager, start, failed_enable
):
    start(OperationKind.ABORT, environment, manager)

    failed_enable.refresh_from_db()
    assert failed_enable.outcome == Outcome.FAILED
    assert "Simulated failure" in failed_enable.error


def test_resume_that_fails_again_leaves_failed(
    environment, manager, start, fail_driver, failed_enable
):
    fail_driver(f"{environment.slug} *")
    resumed = start(OperationKind.RESUME, environment, manager)
    run_worker()

    environment.refresh_from_db()
    resumed.refresh_from_db()
    assert environment.status == Status.FAILED
    assert resumed.outcome == Outcome.FAILED


def test_rollback_of_a_failed_restart_brings_the_service_back(
    environment, manager, start, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="dixf")
    run_worker()
    fail_driver()

    rollback = start(OperationKind.ROLLBACK, environment, manager)
    environment.refresh_from_db()
    assert environment.status == Status.RESTARTING_SERVICE
    run_worker()

    environment.refresh_from_db()
    rollback.refresh_from_db()
    assert environment.status == Status.DEPLOYED
    assert rollback.activity == "Rollback: Restart service: DIXF"
    assert environment.services.get(kind="dixf").state == ServiceState.RUNNING


@pytest.mark.parametrize(
    "kind", [OperationKind.RESUME, OperationKind.ROLLBACK, OperationKind.ABORT]
)
def test_recovery_is_refused_when_nothing_failed(environment, manager, start, kind):
    with pytest.raises(OperationRefused) as refused:
        start(kind, environment, manager)
    assert refused.value.code == OperationRefused.NOT_ALLOWED


@pytest.mark.parametrize(
    "kind", [OperationKind.RESUME, OperationKind.ROLLBACK, OperationKind.ABORT]
)
def test_team_member_may_not_recover_a_failed_environment(
    environment, member, start, failed_enable, kind
):
    with pytest.raises(OperationRefused) as refused:
        start(kind, environment, member)
    assert refused.value.code == OperationRefused.FORBIDDEN


@pytest.mark.parametrize(
    "kind, status",
    [
        (OperationKind.RESUME, Status.IN_MAINTENANCE),
        (OperationKind.ROLLBACK, Status.DEPLOYED),
        (OperationKind.ABORT, Status.DEPLOYED),
    ],
)
def test_recovery_acts_on_the_failed_operation_even_after_access_and_role_changes(
    environment, manager, maint, start, failed_enable, kind, status
):
    """Access grants and role changes are history rows too; they never stand in for the
    operation the environment failed in."""
    from environments.operations import record_role_change

    start(
        OperationKind.ENABLE_ACCESS,
        environment,
        manager,
        name="office",
        cidr="203.0.113.7/32",
        reason="look at the logs",
    )
    run_worker()
    record_role_change(environment, manager, maint, "user", granted=True)

    recovery = start(kind, environment, manager)
    run_worker()

    environment.refresh_from_db()
    recovery.refresh_from_db()
    assert recovery.failed_operation == failed_enable
    assert environment.status == status


def test_failed_maintenance_keeps_users_out_after_an_access_grant(
    environment, manager, start, failed_enable
):
    start(OperationKind.REQUEST_ACCESS, environment, manager, level="read", reason="x")
    run_worker()
    environment.refresh_from_db()
    assert environment.maintenance_mode
