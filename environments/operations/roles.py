"""Role changes made in Django admin, by the demo's seed and by single sign-on: the
history row of each, written in the transaction that saves or deletes the role."""

from django.db import transaction
from django.utils import timezone

from environments.models import EnvironmentRole, EnvironmentRoleKind, OperationKind, Outcome
from environments.operations.core import write_operation


def record_role_change(environment, actor, user, role, *, granted, previous_role=None, via=""):
    """Write the history row of an environment role granted or removed.

    Called by the admin (and seed_demo) in the transaction that saves or deletes the
    role, so the history and the change cannot disagree. ``actor`` None: the portal;
    ``via`` names what made the change (the identity provider at sign-in).
    """
    now = timezone.now()
    label = EnvironmentRoleKind(role).label
    if granted and previous_role and previous_role != role:
        # "Environment role changed: tom, User → Maintenance mode user"
        target = f"{user.get_username()}, {EnvironmentRoleKind(previous_role).label} → {label}"
        kind = OperationKind.CHANGE_ROLE
    else:
        target = f"{user.get_username()}, {label}"
        kind = OperationKind.GRANT_ROLE if granted else OperationKind.REMOVE_ROLE
    return write_operation(
        environment,
        actor,
        kind,
        now,
        enqueue=False,
        target=target,
        deadline=now,
        finished_at=now,
        outcome=Outcome.SUCCEEDED,
        status_after=environment.status,
        via=via,
    )


def save_environment_role(role, actor, via=""):
    """Save an environment role and write its history row, in one transaction."""
    with transaction.atomic():
        previous = (
            EnvironmentRole.objects.select_related("user", "environment").filter(pk=role.pk).first()
            if role.pk
            else None
        )
        role.save()
        if previous and (previous.user_id, previous.environment_id) != (
            role.user_id,
            role.environment_id,
        ):
            record_role_change(
                previous.environment, actor, previous.user, previous.role, granted=False, via=via
            )
            previous = None
        if previous is None or previous.role != role.role:
            record_role_change(
                role.environment,
                actor,
                role.user,
                role.role,
                granted=True,
                previous_role=previous.role if previous else None,
                via=via,
            )


def delete_environment_role(role, actor, via=""):
    with transaction.atomic():
        record_role_change(role.environment, actor, role.user, role.role, granted=False, via=via)
        role.delete()
