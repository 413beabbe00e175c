"""Background work: a view never does slow work, it enqueues one of these."""

import logging

from django.conf import settings
from django_tasks import task

from environments import crypto, notifications, operations, webhooks, windows
from environments.drivers import DriverError, OperationLog, get_driver
from environments.drivers.database import get_database_driver
from environments.drivers.firewall import get_firewall_driver
from environments.models import OperationKind

logger = logging.getLogger(__name__)


@task()
def run_operation(operation_id):
    """Perform a queued operation through the environment's driver, then finish it."""
    operation = operations.mark_running(operation_id)
    if operation is None:
        logger.info("Operation %s is no longer queued; nothing to do.", operation_id)
        return
    log = OperationLog()
    try:
        perform(operation, log)
    except DriverError as exc:
        operations.fail_operation(operation_id, str(exc), log.text)
    except Exception as exc:
        logger.exception("Operation %s failed unexpectedly", operation.activity_id)
        operations.fail_operation(
            operation_id, f"Unexpected error in the driver: {type(exc).__name__}: {exc}", log.text
        )
    else:
        operations.complete_operation(operation_id, log.text)


def perform(operation, log):
    """Ask the driver to do (or, for a rollback, undo) the operation's action."""
    driver = get_driver(operation.environment, log, deadline=operation.deadline)
    verb = "Undoing" if operation.undo else "Performing"
    log.write(f"{verb} {operation.action_text} with the {driver.name} driver")
    if operation.action == OperationKind.RESTART_SERVICE:
        # A restart cannot be taken back; undoing a failed one means bringing the
        # service back up, which is another restart.
        driver.restart_service(operation.service.kind)
    elif operation.action == OperationKind.ENABLE_MAINTENANCE:
        driver.set_maintenance_mode(not operation.undo)
    elif operation.action == OperationKind.DISABLE_MAINTENANCE:
        driver.set_maintenance_mode(operation.undo)
    elif operation.action == OperationKind.ENABLE_ACCESS:
        get_firewall_driver(operation.environment, log).apply_firewall_rule(operation.firewall_rule)
    elif operation.action == OperationKind.REMOVE_ACCESS:
        get_firewall_driver(operation.environment, log).remove_firewall_rule(
            operation.firewall_rule
        )
    elif operation.action == OperationKind.REQUEST_ACCESS:
        account = operation.database_account
        password = crypto.unseal(account.password_encrypted)
        if password is None:
            raise DriverError("The account's password could not be read; request access again.")
        get_database_driver(operation.environment, log).create_database_account(account, password)
    elif operation.action == OperationKind.REVOKE_ACCESS:
        get_database_driver(operation.environment, log).drop_database_account(
            operation.database_account
        )
    else:
        raise DriverError(f"No driver action for {operation.action!r}.")


@task()
def enforce_deadline(operation_id):
    """Fail the operation if it is still running at its deadline."""
    operations.fail_overdue_operation(operation_id)


@task(queue_name=settings.ACCESS_QUEUE)
def expire_access_grant(model_name, grant_id):
    """End a firewall rule or database account at its expiry time."""
    operations.expire_grant(model_name, grant_id)


# --- Scheduled maintenance windows (environments/windows.py) ---------------------------
# On the access queue, whose worker never waits behind a restart: a window starts and
# ends on time.


@task(queue_name=settings.ACCESS_QUEUE)
def start_maintenance_window(window_id):
    windows.start_window(window_id)


@task(queue_name=settings.ACCESS_QUEUE)
def end_maintenance_window(window_id):
    windows.end_window(window_id)


# --- Notifications: mail and webhooks, on a queue of their own ----------------------------


@task(queue_name=settings.NOTIFY_QUEUE)
def remind_maintenance_window(window_id):
    windows.remind(window_id)


@task(queue_name=settings.NOTIFY_QUEUE)
def warn_access_expiring(model_name, grant_id):
    notifications.warn_access_expiring(model_name, grant_id)


@task(queue_name=settings.NOTIFY_QUEUE)
def send_notification(notification_id):
    notifications.send(notification_id)


@task(queue_name=settings.NOTIFY_QUEUE)
def deliver_webhook(delivery_id):
    webhooks.deliver(delivery_id)
