"""Maintenance mode: Deployed -> Servicing -> In Maintenance, and back."""

import pytest

from environments.models import Operation, OperationKind, Outcome, Status
from environments.refusals import OperationRefused
from tests.conftest import run_worker

ENABLE = OperationKind.ENABLE_MAINTENANCE
DISABLE = OperationKind.DISABLE_MAINTENANCE


def test_enable_goes_through_servicing_to_in_maintenance(environment, owner, start):
    start(ENABLE, environment, owner)
    environment.refresh_from_db()
    assert environment.status == Status.SERVICING

    run_worker()

    environment.refresh_from_db()
    assert environment.status == Status.IN_MAINTENANCE
    operation = Operation.objects.get()
    assert operation.outcome == Outcome.SUCCEEDED
    assert (operation.status_before, operation.status_after) == (
        Status.DEPLOYED,
        Status.IN_MAINTENANCE,
    )


def test_disable_goes_through_servicing_back_to_deployed(environment, owner, start):
    start(ENABLE, environment, owner)
    run_worker()

    start(DISABLE, environment, owner)
    environment.refresh_from_db()
    assert environment.status == Status.SERVICING
    run_worker()

    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED
    kinds = list(Operation.objects.order_by("started_at").values_list("kind", "outcome"))
    assert kinds == [(ENABLE, Outcome.SUCCEEDED), (DISABLE, Outcome.SUCCEEDED)]


def test_enable_is_refused_while_in_maintenance(environment, owner, start):
    start(ENABLE, environment, owner)
    run_worker()

    with pytest.raises(OperationRefused) as refused:
        start(ENABLE, environment, owner)

    assert refused.value.code == OperationRefused.NOT_ALLOWED
    assert "not possible while Demo sandbox is In Maintenance" in refused.value.message


def test_restart_is_refused_while_in_maintenance(environment, owner, start):
    start(ENABLE, environment, owner)
    run_worker()

    with pytest.raises(OperationRefused) as refused:
        start(OperationKind.RESTART_SERVICE, environment, owner, service_kind="aos")

    assert refused.value.code == OperationRefused.NOT_ALLOWED


def test_details_page_lists_who_may_sign_in_during_maintenance(
    client, environment, owner, maint, start
):
    start(ENABLE, environment, owner)
    run_worker()
    client.force_login(owner)
    body = client.get(environment.get_absolute_url()).content.decode()
    assert 'data-testid="maintenance-notice"' in body
    assert "Who can sign in meanwhile: maya (Maintenance mode user)" in body


def test_list_marks_environments_in_maintenance_mode(client, environment, owner, start):
    from django.urls import reverse

    client.force_login(owner)
    assert (
        'data-testid="maintenance-hint"'
        not in client.get(reverse("environment-list")).content.decode()
    )
    start(ENABLE, environment, owner)
    run_worker()
    body = client.get(reverse("environment-list")).content.decode()
    assert "In Maintenance" in body and 'data-testid="maintenance-hint"' in body


def test_failed_maintenance_operation_keeps_the_notice(
    environment, owner, client, start, fail_driver
):
    fail_driver(f"{environment.slug} set_maintenance_mode")
    start(ENABLE, environment, owner)
    run_worker()
    client.force_login(owner)
    body = client.get(environment.get_absolute_url()).content.decode()
    assert "Failed" in body and 'data-testid="maintenance-notice"' in body
