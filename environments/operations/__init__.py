"""The only writer: every change of an environment's status, of its grants and of its
roles goes through these functions, which write the history row in the same
transaction (environments.operations.events announces each one)."""

from environments.operations.core import (
    busy_message,
    check_allowed,
    claim_step,
    complete_operation,
    end_grant,
    expire_grant,
    fail_operation,
    fail_overdue_operation,
    fail_overdue_operations,
    requeue_lost_steps,
)
from environments.operations.grants import (
    access_lifetime,
    account_password,
    enable_access,
    end_access_of,
    expire_access,
    remove_access,
    request_access,
    revoke_access,
)
from environments.operations.health import start_health_checks
from environments.operations.maintain import (
    abort,
    disable_maintenance,
    enable_maintenance,
    restart_service,
    resume,
    rollback,
    stop,
    stoppable,
)
from environments.operations.requests import START_FUNCTIONS, form_for, start_from_input
from environments.operations.roles import (
    delete_environment_role,
    delete_project_membership,
    record_role_change,
    save_environment_role,
    save_project_membership,
)
from environments.operations.window_history import record_window_change
from environments.refusals import OperationRefused
