"""Driver log lines, one row each, written as the driver runs (progress while an
operation is active). Operations from before keep their log in Operation.log; it is
not split into rows: pages and the API fall back to it when an operation has no lines.

On PostgreSQL the lines are history too: the trigger function of 0003 refuses to
delete them.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

CREATE = """
CREATE TRIGGER environments_operationlogline_no_delete
    BEFORE DELETE ON environments_operationlogline
    FOR EACH ROW EXECUTE FUNCTION environments_operation_refuse_delete()
"""
DROP = (
    "DROP TRIGGER IF EXISTS environments_operationlogline_no_delete "
    "ON environments_operationlogline"
)


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("environments", "0012_operations_run_as_steps"),
    ]

    operations = [
        migrations.CreateModel(
            name="OperationLogLine",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                ("text", models.TextField()),
                (
                    "operation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="log_lines",
                        to="environments.operation",
                    ),
                ),
            ],
            options={
                "ordering": ["at", "id"],
                "indexes": [
                    models.Index(fields=["operation", "at", "id"], name="op_log_line_order")
                ],
            },
        ),
        migrations.RunPython(create_trigger, drop_trigger, elidable=False),
    ]
