"""A real db_worker process runs the task; the watchdog fails what a dead worker left."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from environments import operations
from environments.models import Operation, OperationKind, Outcome, Status
from tests.conftest import subprocess_env
from tests.live import start_worker, stop, wait_for


@pytest.mark.django_db(transaction=True)
def test_a_db_worker_process_restarts_the_service_and_settles_deployed(
    environment, manager, tmp_path
):
    worker = start_worker(tmp_path / "worker.log", env=subprocess_env(SIMULATED_DRIVER_DELAY=0.5))
    try:
        operation = operations.restart_service(environment, manager, "aos")

        def settled():
            environment.refresh_from_db()
            return environment.status == Status.DEPLOYED

        assert wait_for(settled), f"still {environment.status}"
        operation.refresh_from_db()
        assert operation.outcome == Outcome.SUCCEEDED
        assert "restarting AOS" in operation.log_text
    finally:
        stop(worker)


@pytest.mark.django_db(transaction=True)
def test_watchdog_fails_an_operation_whose_worker_is_gone(environment, manager):
    # No worker runs: the operation stays queued, as if its worker died.
    operation = operations.enable_maintenance(environment, manager)
    assert operations.fail_overdue_operations() == []

    later = operation.deadline + timedelta(seconds=1)
    failed = operations.fail_overdue_operations(now=later)

    assert [op.pk for op in failed] == [operation.pk]
    environment.refresh_from_db()
    operation.refresh_from_db()
    assert environment.status == Status.FAILED
    assert operation.outcome == Outcome.FAILED
    assert "did not finish within its deadline" in operation.error


@pytest.mark.django_db(transaction=True)
def test_deadline_task_fails_an_operation_killed_mid_run(environment, manager, settings, tmp_path):
    """kill -9 the worker during a restart whose service never comes back; a new worker
    carries on with its steps and fails it at its deadline."""
    settings.OPERATION_DEADLINE_SECONDS = 3
    log = tmp_path / "worker.log"
    worker = start_worker(log, env=subprocess_env(SIMULATED_DRIVER_DELAY=60))
    try:
        operation = operations.restart_service(environment, manager, "aos")
        assert wait_for(lambda: Operation.objects.get(pk=operation.pk).outcome == Outcome.RUNNING)
        worker.kill()
        worker.wait(timeout=10)
        worker = start_worker(log, env=subprocess_env(SIMULATED_DRIVER_DELAY=60))

        def failed():
            environment.refresh_from_db()
            return environment.status == Status.FAILED

        assert wait_for(failed, timeout=30)
        operation.refresh_from_db()
        assert operation.outcome == Outcome.FAILED
        assert "deadline" in operation.error
        assert operation.finished_at >= operation.deadline
        assert timezone.now() >= operation.deadline
    finally:
        stop(worker)


@pytest.mark.django_db(transaction=True)
def test_watchdog_command_reports_what_it_failed(environment, manager, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.OPERATION_DEADLINE_SECONDS = 0
    operation = operations.START_FUNCTIONS[OperationKind.ENABLE_MAINTENANCE](environment, manager)
    time.sleep(0.05)
    out = StringIO()
    call_command("watchdog", stdout=out)
    assert f"({operation.activity_id}): deadline passed" in out.getvalue()
