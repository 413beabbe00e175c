"""Tasks queued before their code moved (a window's start up to 90 days ahead) still run:
the migration that moved them rewrites the path each queued row names."""

import importlib
from datetime import timedelta

from django.apps import apps
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from environments.models import MaintenanceWindow, WindowState
from environments.windows import schedule
from tests.conftest import committing, run_worker

moved = importlib.import_module("environments.migrations.0011_task_paths_follow_the_code")


def test_a_window_start_queued_under_the_old_path_still_starts_the_window(environment, manager):
    now = timezone.now()
    with committing():
        window = schedule(
            environment,
            manager,
            starts_at=now + timedelta(minutes=5),
            ends_at=now + timedelta(hours=1),
            reason="patching",
        )
    start_task = DBTaskResult.objects.get(
        task_path="environments.windows.lifecycle.start_maintenance_window"
    )
    # As a release before the move queued it, and due now.
    DBTaskResult.objects.filter(pk=start_task.pk).update(
        task_path="environments.tasks.start_maintenance_window", run_after=now
    )
    MaintenanceWindow.objects.filter(pk=window.pk).update(starts_at=now - timedelta(seconds=1))

    moved.forwards(apps, None)
    with committing():
        run_worker()

    start_task.refresh_from_db()
    assert start_task.task_path == "environments.windows.lifecycle.start_maintenance_window"
    assert start_task.status == "SUCCESSFUL"
    window.refresh_from_db()
    assert window.state == WindowState.ACTIVE


def test_every_old_path_names_a_task_that_exists():
    from django.utils.module_loading import import_string
    from django_tasks.base import Task

    for new in moved.MOVED.values():
        if new == "environments.operations.core.run_operation":
            continue  # 0012 makes its queued rows the first step of their operation
        assert isinstance(import_string(new), Task), new
