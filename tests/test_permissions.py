"""Who may start which Maintain action."""

import pytest

from environments.models import Operation, OperationKind
from environments.operations import OperationRefused

STARTS = [
    (OperationKind.RESTART_SERVICE, {"service_kind": "aos"}),
    (OperationKind.ENABLE_MAINTENANCE, {}),
]

ALLOWED = {"owner": True, "manager": True, "superuser": True, "member": False, "outsider": False}


@pytest.mark.parametrize("who, allowed", ALLOWED.items())
@pytest.mark.parametrize("kind, kwargs", STARTS)
def test_only_owners_managers_and_superusers_may_start_maintain_actions(
    environment, users, start, who, allowed, kind, kwargs
):
    if allowed:
        operation = start(kind, environment, users[who], **kwargs)
        assert operation.requested_by == users[who]
    else:
        with pytest.raises(OperationRefused) as refused:
            start(kind, environment, users[who], **kwargs)
        assert refused.value.code == OperationRefused.FORBIDDEN
        assert not Operation.objects.exists()


def test_inactive_manager_may_not_act(environment, manager, start):
    manager.is_active = False
    manager.save()
    with pytest.raises(OperationRefused):
        start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
