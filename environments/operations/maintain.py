"""The Maintain menu: restart a service, maintenance mode on and off, and recovery from
Failed (Resume, Rollback, Abort)."""

from django.db import transaction
from django.utils import timezone

from environments.models import (
    Environment,
    Operation,
    OperationKind,
    Outcome,
    ServiceKind,
    ServiceState,
)
from environments.operations import events
from environments.operations.core import start_operation, stopped, write_operation
from environments.permissions import can_maintain
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


def stoppable(environment):
    """The running Maintain operation that Stop would stop; refused when there is none,
    or it is stopping already."""
    operation = environment.operations.active().maintain().first()
    if operation is None:
        raise OperationRefused(
            f"Nothing is running on {environment.name} to stop.", OperationRefused.NOT_ALLOWED
        )
    if operation.stop_requested_at is not None:
        raise OperationRefused(
            f"{operation.activity} is already stopping.", OperationRefused.NOT_ALLOWED
        )
    return operation


def stop(environment, user, reason, via=""):
    """Stop the running Maintain operation: no further step runs. The step in flight
    is allowed to end (a command is never killed half-way); only then does the operation
    fail with "Stopped by <user>: <reason>", so that Resume, Rollback and Abort never
    start beside a command that still runs. Ending access is not stopped: Remove and
    Revoke end it."""
    now = timezone.now()
    with transaction.atomic():
        locked = Environment.objects.select_for_update().get(pk=environment.pk)
        if not can_maintain(user, locked):
            raise OperationRefused(
                "Only project owners and environment managers may stop an operation.",
                OperationRefused.FORBIDDEN,
            )
        operation = stoppable(locked)
        who = f" via {via}" if via else ""
        Operation.objects.filter(pk=operation.pk).update(
            stop_requested_at=now, stop_requested_by=user, stop_reason=reason
        )
        operation.log_lines.create(at=now, text=f"Stop asked for by {user}{who}: {reason}")
        Environment.objects.filter(pk=locked.pk).bump_revision()
        in_flight = operation.step_lease_until is not None and operation.step_lease_until > now
        if not in_flight:
            # Between two steps: nothing runs, so it stops at once.
            return stopped(operation.pk)
    operation.refresh_from_db()
    return operation
