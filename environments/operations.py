"""The only way to start or finish a Maintain action.

Starting one locks the environment row, performs the transition, writes the Operation
row in the same transaction and enqueues the background task when it commits. The
worker and the watchdog finish operations through the same functions, under the same
lock, so a late worker and the watchdog can never both settle one operation.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import can_proceed

from environments.access import can_maintain
from environments.models import (
    ACTIVE_OUTCOMES,
    Environment,
    Operation,
    OperationKind,
    Outcome,
    ServiceKind,
    ServiceState,
    Status,
)

logger = logging.getLogger(__name__)


class OperationRefused(Exception):
    """A Maintain action that may not start; ``message`` is for the user."""

    BUSY = "busy"  # another operation is in progress (HTTP 409)
    FORBIDDEN = "forbidden"  # the user may not act here (HTTP 403)
    NOT_ALLOWED = "not_allowed"  # not possible in the current status (HTTP 409)
    INELIGIBLE = "ineligible"  # never possible on this environment (HTTP 409)
    INVALID = "invalid"  # the request itself is wrong (HTTP 400)

    def __init__(self, message, code):
        super().__init__(message)
        self.message = message
        self.code = code


def busy_message(environment):
    return (
        f"Another operation is in progress on {environment.name} "
        f"({environment.get_status_display()}). Wait for it to finish, then try again."
    )


# --- Starting ---------------------------------------------------------------------


def restart_service(environment, user, service_kind, reason=""):
    if service_kind not in ServiceKind.values:
        raise OperationRefused(
            "Choose a service to restart: AOS, DIXF or MR.", OperationRefused.INVALID
        )
    return _start(
        environment,
        user,
        "restart_service",
        kind=OperationKind.RESTART_SERVICE,
        reason=reason,
        service_kind=service_kind,
    )


def enable_maintenance(environment, user, reason=""):
    return _start(
        environment,
        user,
        "enable_maintenance",
        kind=OperationKind.ENABLE_MAINTENANCE,
        reason=reason,
    )


def disable_maintenance(environment, user, reason=""):
    return _start(
        environment,
        user,
        "disable_maintenance",
        kind=OperationKind.DISABLE_MAINTENANCE,
        reason=reason,
    )


def resume(environment, user, reason=""):
    """Run the failed operation again."""
    return _start(environment, user, "resume", kind=OperationKind.RESUME, reason=reason)


def rollback(environment, user, reason=""):
    """Undo the failed operation and return to the status before it."""
    return _start(environment, user, "rollback", kind=OperationKind.ROLLBACK, reason=reason)


def abort(environment, user, reason=""):
    """Return to the status before the failed operation without acting."""
    return _start(environment, user, "abort", kind=OperationKind.ABORT, reason=reason)


START_FUNCTIONS = {
    OperationKind.RESTART_SERVICE: restart_service,
    OperationKind.ENABLE_MAINTENANCE: enable_maintenance,
    OperationKind.DISABLE_MAINTENANCE: disable_maintenance,
    OperationKind.RESUME: resume,
    OperationKind.ROLLBACK: rollback,
    OperationKind.ABORT: abort,
}


def _start(environment, user, transition_name, *, kind, reason, service_kind=None):
    try:
        with transaction.atomic():
            operation = _start_locked(
                environment,
                user,
                transition_name,
                kind=kind,
                reason=reason,
                service_kind=service_kind,
            )
    except IntegrityError:
        # The partial unique index on running operations caught what the row lock
        # should already have: treat it as the conflict it is.
        logger.warning("Second operation refused by the database on %s", environment.slug)
        raise OperationRefused(busy_message(environment), OperationRefused.BUSY) from None
    return operation


def _start_locked(environment, user, transition_name, *, kind, reason, service_kind):
    locked = Environment.objects.select_for_update().get(pk=environment.pk)
    transition = getattr(locked, transition_name)
    label = OperationKind(kind).label

    if locked.is_busy:
        raise OperationRefused(busy_message(locked), OperationRefused.BUSY)
    if not can_maintain(user, locked):
        raise OperationRefused(
            "Only project owners and environment managers may run Maintain actions.",
            OperationRefused.FORBIDDEN,
        )
    if not can_proceed(transition, check_conditions=False):
        raise OperationRefused(
            f"{label} is not possible while {locked.name} is {locked.get_status_display()}.",
            OperationRefused.NOT_ALLOWED,
        )
    if not can_proceed(transition):
        raise OperationRefused(locked.restart_refusal_reason(), OperationRefused.INELIGIBLE)

    now = timezone.now()
    status_before = locked.status
    failed = None
    service = None
    if kind in (OperationKind.RESUME, OperationKind.ROLLBACK, OperationKind.ABORT):
        failed = locked.operations.select_related("service").first()
        transition(failed)
        action, service, undo = failed.action, failed.service, failed.undo
        if kind == OperationKind.ROLLBACK:
            undo = True
        return_status = failed.return_status
    else:
        if service_kind is not None:
            service = locked.services.filter(kind=service_kind).first()
            if service is None:
                raise OperationRefused(
                    f"{locked.name} has no {ServiceKind(service_kind).label}.",
                    OperationRefused.INVALID,
                )
        transition()
        action, undo, return_status = kind, False, status_before

    locked.save(update_fields=["status", "status_changed_at"])
    operation = Operation.objects.create(
        environment=locked,
        kind=kind,
        action=action,
        undo=undo,
        failed_operation=failed,
        service=service,
        requested_by=user,
        reason=reason,
        started_at=now,
        deadline=now + timedelta(seconds=settings.OPERATION_DEADLINE_SECONDS),
        status_before=status_before,
        return_status=return_status,
    )
    if kind == OperationKind.ABORT:
        # Abort acts on nothing: it is done as soon as it is written.
        operation.outcome = Outcome.ABORTED
        operation.finished_at = now
        operation.status_after = locked.status
        operation.save(update_fields=["outcome", "finished_at", "status_after"])
        return operation

    if service is not None and action == OperationKind.RESTART_SERVICE:
        service.state = ServiceState.RESTARTING
        service.save(update_fields=["state"])
    transaction.on_commit(lambda: _enqueue(operation))
    return operation


def _enqueue(operation):
    from environments.tasks import enforce_deadline, run_operation

    run_operation.enqueue(operation.pk)
    # A second task wakes at the deadline, so a worker that died mid-operation never
    # leaves the environment stuck.
    enforce_deadline.using(run_after=operation.deadline + timedelta(seconds=1)).enqueue(
        operation.pk
    )


# --- Progress and finishing (the worker and the watchdog) ------------------------


def mark_running(operation_id):
    """Claim a queued operation for the worker; None when it is no longer queued."""
    claimed = Operation.objects.filter(pk=operation_id, outcome=Outcome.QUEUED).update(
        outcome=Outcome.RUNNING
    )
    if not claimed:
        return None
    return Operation.objects.select_related("environment", "service").get(pk=operation_id)


def complete_operation(operation_id, log=""):
    """The driver succeeded: the environment reaches the operation's target status."""
    return _finish(operation_id, error="", log=log)


def fail_operation(operation_id, error, log=""):
    """The driver failed or the deadline passed: the environment becomes Failed."""
    return _finish(operation_id, error=error or "The operation failed.", log=log)


def _finish(operation_id, *, error, log):
    with transaction.atomic():
        environment_id = Operation.objects.values_list("environment_id", flat=True).get(
            pk=operation_id
        )
        environment = Environment.objects.select_for_update().get(pk=environment_id)
        operation = Operation.objects.select_related("service").get(pk=operation_id)
        if not operation.is_active:
            logger.warning(
                "Operation %s already ended %s; ignoring a late %s.",
                operation.activity_id,
                operation.outcome,
                "failure" if error else "completion",
            )
            return operation

        now = timezone.now()
        if error:
            environment.fail()
            operation.outcome = Outcome.FAILED
            operation.error = error
        else:
            environment.complete(operation)
            operation.outcome = operation.success_outcome
        environment.save(update_fields=["status", "status_changed_at"])

        operation.finished_at = now
        operation.status_after = environment.status
        if log:
            operation.log = (operation.log + log) if operation.log else log
        operation.save(update_fields=["outcome", "error", "finished_at", "status_after", "log"])

        service = operation.service
        if service is not None and operation.action == OperationKind.RESTART_SERVICE:
            service.state = ServiceState.FAILED if error else ServiceState.RUNNING
            if not error:
                service.last_restarted_at = now
            service.save(update_fields=["state", "last_restarted_at"])
    return operation


def fail_overdue_operations(now=None):
    """The watchdog: fail every running operation whose deadline has passed."""
    now = now or timezone.now()
    overdue = Operation.objects.filter(outcome__in=ACTIVE_OUTCOMES, deadline__lt=now)
    failed = (fail_overdue_operation(pk, now=now) for pk in overdue.values_list("pk", flat=True))
    return [operation for operation in failed if operation is not None]


def fail_overdue_operation(operation_id, now=None):
    now = now or timezone.now()
    operation = Operation.objects.filter(
        pk=operation_id, outcome__in=ACTIVE_OUTCOMES, deadline__lt=now
    ).first()
    if operation is None:
        return None
    seconds = int((operation.deadline - operation.started_at).total_seconds())
    return fail_operation(
        operation_id,
        f"The operation did not finish within its deadline of {seconds} seconds "
        f"(the worker may have stopped). The watchdog marked it Failed at "
        f"{now:%Y-%m-%d %H:%M:%S %Z}.",
    )


def failed_operation(environment):
    """The operation that left the environment Failed, or None."""
    if environment.status != Status.FAILED:
        return None
    return environment.operations.select_related("service").first()
