"""The background tasks moved beside the functions they run: tasks already queued (a
window's start up to 90 days ahead) are rewritten to name their new place. Run it with
the workers stopped (docs/deploy.md, upgrades)."""

from django.db import migrations

MOVED = {
    "environments.tasks.run_operation": "environments.operations.core.run_operation",
    "environments.tasks.enforce_deadline": "environments.operations.core.enforce_deadline",
    "environments.tasks.expire_access_grant": "environments.operations.core.expire_access_grant",
    "environments.tasks.start_maintenance_window": (
        "environments.windows.lifecycle.start_maintenance_window"
    ),
    "environments.tasks.end_maintenance_window": (
        "environments.windows.lifecycle.end_maintenance_window"
    ),
    "environments.tasks.remind_maintenance_window": (
        "environments.windows.lifecycle.remind_maintenance_window"
    ),
    "environments.tasks.warn_access_expiring": (
        "environments.notify.notifications.warn_access_expiring_task"
    ),
    "environments.tasks.send_notification": "environments.notify.notifications.send_notification",
    "environments.tasks.deliver_webhook": "environments.notify.webhooks.deliver_webhook",
}


def rename(apps, schema_editor, moves):
    DBTaskResult = apps.get_model("django_tasks_database", "DBTaskResult")
    for old, new in moves.items():
        DBTaskResult.objects.filter(task_path=old, status="READY").update(task_path=new)


def forwards(apps, schema_editor):
    rename(apps, schema_editor, MOVED)


def backwards(apps, schema_editor):
    rename(apps, schema_editor, {new: old for old, new in MOVED.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("environments", "0010_grants_remember_how_they_ended"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
