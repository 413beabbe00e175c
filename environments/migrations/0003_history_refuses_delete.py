"""On PostgreSQL, the database itself refuses to delete history.

The portal deletes no Operation, and the admin offers no way to; this trigger holds
against everything else that reaches the database (a shell, a script, a bad query).
TRUNCATE, which needs the table's owner, is left to the database's own permissions.

SQLite, the demo database, gets no trigger: its DELETE is how Django empties tables
between transactional tests, and a trigger cannot tell that from any other DELETE.
"""

from django.db import migrations

CREATE = [
    """
CREATE FUNCTION environments_operation_refuse_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'The environment history is append-only: rows cannot be deleted.'
        USING ERRCODE = 'restrict_violation';
END
$$
""",
    """
CREATE TRIGGER environments_operation_no_delete
    BEFORE DELETE ON environments_operation
    FOR EACH ROW EXECUTE FUNCTION environments_operation_refuse_delete()
""",
]

DROP = [
    "DROP TRIGGER IF EXISTS environments_operation_no_delete ON environments_operation",
    "DROP FUNCTION IF EXISTS environments_operation_refuse_delete()",
]


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE:
            schema_editor.execute(statement)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("environments", "0002_access_grants_and_role_history")]

    operations = [migrations.RunPython(create_trigger, drop_trigger, elidable=False)]
