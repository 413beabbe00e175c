"""History cannot be deleted: not by the portal, not in the admin, and on PostgreSQL
not even by a DELETE that reaches the database."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from environments.drivers import OperationLog
from environments.models import Environment, Operation, OperationKind, OperationLogLine

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the trigger exists on PostgreSQL only; the PostgreSQL run of `make test` runs this",
)


@pytest.fixture
def history(environment, manager, start):
    return start(OperationKind.ENABLE_MAINTENANCE, environment, manager)


@on_postgresql
def test_postgresql_refuses_a_raw_delete_of_history(history):
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM environments_operation WHERE id = %s", [history.pk])
    assert Operation.objects.filter(pk=history.pk).exists()


@on_postgresql
def test_postgresql_refuses_a_queryset_delete_of_history(history):
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        Operation.objects.all()._raw_delete(connection.alias)
    assert Operation.objects.count() == 1


@on_postgresql
def test_postgresql_refuses_a_raw_delete_of_a_log_line(history):
    OperationLog(history).write("turning maintenance mode on")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        OperationLogLine.objects.all()._raw_delete(connection.alias)
    assert OperationLogLine.objects.count() == 1


def test_the_admin_offers_no_way_to_delete_history(client, superuser, history):
    client.force_login(superuser)
    delete_url = reverse("admin:environments_operation_delete", args=[history.pk])
    assert client.get(delete_url).status_code == 403
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = client.get(reverse("admin:environments_operation_changelist"))
    assert changelist.status_code == 200
    assert "delete_selected" not in changelist.content.decode()
    response = client.post(
        reverse("admin:environments_operation_changelist"),
        {"action": "delete_selected", "_selected_action": [history.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert Operation.objects.filter(pk=history.pk).exists()


def test_deleting_an_environment_with_history_is_refused_in_the_admin(
    client, superuser, environment, history
):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:environments_environment_delete", args=[environment.pk]), {"post": "yes"}
    )
    assert response.status_code in (200, 403)
    assert Environment.objects.filter(pk=environment.pk).exists()
    assert Operation.objects.filter(pk=history.pk).exists()
