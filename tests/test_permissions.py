"""Who may start which Maintain action: every action, every kind of user."""

import pytest

from environments.models import Operation, OperationKind, Status
from environments.refusals import OperationRefused
from tests.conftest import run_worker

ALLOWED = {"owner": True, "manager": True, "superuser": True, "member": False, "outsider": False}


def deployed(environment, manager, start, fail_driver):
    pass


def in_maintenance(environment, manager, start, fail_driver):
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    run_worker()


def failed(environment, manager, start, fail_driver):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()
    fail_driver()


ACTIONS = [
    (OperationKind.RESTART_SERVICE, deployed, {"service_kind": "aos"}),
    (OperationKind.ENABLE_MAINTENANCE, deployed, {}),
    (OperationKind.DISABLE_MAINTENANCE, in_maintenance, {}),
    (OperationKind.RESUME, failed, {}),
    (OperationKind.ROLLBACK, failed, {}),
    (OperationKind.ABORT, failed, {}),
    (
        OperationKind.ENABLE_ACCESS,
        deployed,
        {"name": "office", "cidr": "203.0.113.7/32", "reason": "logs"},
    ),
    (OperationKind.REQUEST_ACCESS, deployed, {"level": "read", "reason": "logs"}),
]


@pytest.mark.parametrize("who, allowed", ALLOWED.items())
@pytest.mark.parametrize(
    "kind, prepare, kwargs", ACTIONS, ids=[kind.value for kind, _, _ in ACTIONS]
)
def test_only_owners_managers_and_superusers_may_start_maintain_actions(
    environment, users, start, fail_driver, who, allowed, kind, prepare, kwargs
):
    prepare(environment, users["manager"], start, fail_driver)
    environment.refresh_from_db()
    status, rows = environment.status, Operation.objects.count()
    if allowed:
        operation = start(kind, environment, users[who], **kwargs)
        assert operation.requested_by == users[who] and operation.kind == kind
    else:
        with pytest.raises(OperationRefused) as refused:
            start(kind, environment, users[who], **kwargs)
        assert refused.value.code == OperationRefused.FORBIDDEN
        assert Operation.objects.count() == rows
        environment.refresh_from_db()
        assert environment.status == status


def test_inactive_manager_may_not_act(environment, manager, start):
    manager.is_active = False
    manager.save()
    with pytest.raises(OperationRefused):
        start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED
