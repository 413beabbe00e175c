"""The Maintain menu: restart a service, maintenance mode on and off, and recovery from
Failed (Resume, Rollback, Abort)."""

from environments.models import Operation, OperationKind, Outcome, ServiceKind, ServiceState
from environments.operations import events
from environments.operations.core import start_operation, write_operation
from environments.refusals import OperationRefused


def restart_service(environment, user, service_kind, reason="", via=""):
    if service_kind not in ServiceKind.values:
        raise OperationRefused(
            "Choose a service to restart: AOS, DIXF or MR.", OperationRefused.INVALID
        )

    def start(locked, now):
        service = locked.services.filter(kind=service_kind).first()
        if service is None:
            raise OperationRefused(
                f"{locked.name} has no {ServiceKind(service_kind).label}.",
                OperationRefused.INVALID,
            )
        status_before = locked.status
        locked.restart_service()
        service.state = ServiceState.RESTARTING
        service.save(update_fields=["state"])
        return write_operation(
            locked,
            user,
            OperationKind.RESTART_SERVICE,
            now,
            reason=reason,
            service=service,
            status_before=status_before,
            via=via,
        )

    return start_operation(environment, user, OperationKind.RESTART_SERVICE, start)


def enable_maintenance(environment, user, reason="", via="", window=None):
    """``window``: the maintenance window that turns it on (environments.windows)."""
    return _start_action(
        environment, user, OperationKind.ENABLE_MAINTENANCE, reason, via, window=window
    )


def disable_maintenance(environment, user, reason="", via="", window=None):
    return _start_action(
        environment, user, OperationKind.DISABLE_MAINTENANCE, reason, via, window=window
    )


def resume(environment, user, reason="", via=""):
    """Run the failed operation again."""
    return _start_recovery(environment, user, OperationKind.RESUME, reason, via)


def rollback(environment, user, reason="", via=""):
    """Undo the failed operation and return to the status before it."""
    return _start_recovery(environment, user, OperationKind.ROLLBACK, reason, via)


def abort(environment, user, reason="", via=""):
    """Return to the status before the failed operation without acting."""
    return _start_recovery(environment, user, OperationKind.ABORT, reason, via)


def _start_action(environment, user, kind, reason, via="", window=None):
    def start(locked, now):
        status_before = locked.status
        getattr(locked, kind)()
        return write_operation(
            locked,
            user,
            kind,
            now,
            reason=reason,
            status_before=status_before,
            via=via,
            window=window,
        )

    return start_operation(environment, user, kind, start)


def _start_recovery(environment, user, kind, reason, via=""):
    def start(locked, now):
        failed = locked.failed_operation()
        status_before = locked.status
        getattr(locked, kind)(failed)
        operation = write_operation(
            locked,
            user,
            kind,
            now,
            reason=reason,
            action=failed.action,
            undo=failed.undo or kind == OperationKind.ROLLBACK,
            failed_operation=failed,
            service=failed.service,
            status_before=status_before,
            return_status=failed.return_status,
            enqueue=kind != OperationKind.ABORT,
            via=via,
        )
        if kind == OperationKind.ABORT:
            # Abort acts on nothing: it is done as soon as it is written.
            operation.outcome = Outcome.ABORTED
            operation.finished_at = now
            operation.status_after = locked.status
            operation.save(update_fields=["outcome", "finished_at", "status_after"])
            events.operation_finished.send(Operation, operation=operation, environment=locked)
        return operation

    return start_operation(environment, user, kind, start)
