"""Environment.revision, the key of its pages' caches and ETags, and maintenance_mode,
kept beside the status so that the sign-in gate reads one row."""

from django.db import migrations, models

MAINTENANCE_ACTIONS = ("enable_maintenance", "disable_maintenance")
MAINTAIN_KINDS = ("restart_service", *MAINTENANCE_ACTIONS, "resume", "rollback", "abort")


def set_maintenance_mode(apps, schema_editor):
    Environment = apps.get_model("environments", "Environment")
    Operation = apps.get_model("environments", "Operation")
    Environment.objects.filter(status__in=["servicing", "in_maintenance"]).update(
        maintenance_mode=True
    )
    for environment in Environment.objects.filter(status="failed"):
        latest = (
            Operation.objects.filter(environment=environment, kind__in=MAINTAIN_KINDS)
            .order_by("-started_at", "-id")
            .first()
        )
        if latest is not None and latest.action in MAINTENANCE_ACTIONS:
            environment.maintenance_mode = True
            environment.save(update_fields=["maintenance_mode"])


class Migration(migrations.Migration):
    dependencies = [("environments", "0004_operation_active_index")]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="maintenance_mode",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.AddField(
            model_name="environment",
            name="revision",
            field=models.PositiveBigIntegerField(default=1, editable=False),
        ),
        migrations.RunPython(set_maintenance_mode, migrations.RunPython.noop),
    ]
