"""A real db_worker process runs the task; the watchdog fails what a dead worker left."""

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from environments import operations
from environments.models import Operation, OperationKind, Outcome, Status
from tests.conftest import subprocess_env


def start_worker():
    return subprocess.Popen(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--interval",
            "0.2",
            "--queue-name",
            "*",
        ],
        env=subprocess_env(SIMULATED_DRIVER_DELAY="0.5"),
        cwd=settings.BASE_DIR,
    )


def wait_for(predicate, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.django_db(transaction=True)
def test_a_db_worker_process_restarts_the_service_and_settles_deployed(environment, manager):
    worker = start_worker()
    try:
        operation = operations.restart_service(environment, manager, "aos")

        def settled():
            environment.refresh_from_db()
            return environment.status == Status.DEPLOYED

        assert wait_for(settled), f"still {environment.status}"
        operation.refresh_from_db()
        assert operation.outcome == Outcome.SUCCEEDED
        assert "restarting AOS" in operation.log
    finally:
        worker.terminate()
        worker.wait(timeout=10)


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
def test_deadline_task_fails_an_operation_killed_mid_run(environment, manager, settings):
    """kill -9 the worker during a restart; a new worker fails it at its deadline."""
    settings.OPERATION_DEADLINE_SECONDS = 3
    env = subprocess_env(SIMULATED_DRIVER_DELAY="60")
    worker = subprocess.Popen(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--interval",
            "0.2",
            "--queue-name",
            "*",
        ],
        env=env,
        cwd=settings.BASE_DIR,
    )
    try:
        operation = operations.restart_service(environment, manager, "aos")
        assert wait_for(lambda: Operation.objects.get(pk=operation.pk).outcome == Outcome.RUNNING)
        worker.kill()
        worker.wait(timeout=10)
        worker = start_worker()

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
        worker.terminate()
        worker.wait(timeout=10)


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
