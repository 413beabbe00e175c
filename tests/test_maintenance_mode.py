"""Maintenance mode: Deployed -> Servicing -> In Maintenance, and back."""

import pytest

from environments.models import Operation, OperationKind, Outcome, Status
from environments.operations import OperationRefused
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
