"""Role changes made in Django admin, by the demo's seed and by single sign-on: the
history row of each, written in the transaction that saves or deletes the role. A project
role is recorded on each of the project's environments, which it lets its holder see or
maintain. ``via`` names what made the change when it was not a person in the admin (the
identity provider at sign-in)."""

from django.db import transaction

from environments.models import EnvironmentRoleKind, OperationKind, ProjectRole
from environments.operations.core import write_record

#: (given, changed, removed) for each kind of role.
_ENVIRONMENT_KINDS = (
    OperationKind.GRANT_ROLE,
    OperationKind.CHANGE_ROLE,
    OperationKind.REMOVE_ROLE,
)
_PROJECT_KINDS = (
    OperationKind.GRANT_PROJECT_ROLE,
    OperationKind.CHANGE_PROJECT_ROLE,
    OperationKind.REMOVE_PROJECT_ROLE,
)


def _record(environment, actor, user, role, previous_role, granted, kinds, labels, via=""):
    given, changed, removed = kinds
    label = labels(role).label
    if granted and previous_role and previous_role != role:
        # "Environment role changed: tom, User → Maintenance mode user"
        target = f"{user.get_username()}, {labels(previous_role).label} → {label}"
        kind = changed
    else:
        target = f"{user.get_username()}, {label}"
        kind = given if granted else removed
    return write_record(environment, actor, kind, target=target, via=via)


def record_role_change(environment, actor, user, role, *, granted, previous_role=None, via=""):
    """Write the history row of an environment role granted or removed.

    Called by the admin (and seed_demo) in the transaction that saves or deletes the
    role, so the history and the change cannot disagree. ``actor`` None: the portal.
    """
    return _record(
        environment,
        actor,
        user,
        role,
        previous_role,
        granted,
        _ENVIRONMENT_KINDS,
        EnvironmentRoleKind,
        via,
    )


def record_membership_change(project, actor, user, role, *, granted, previous_role=None, via=""):
    """Write the history rows of a project role given, changed or removed: one on each
    of the project's environments."""
    return [
        _record(
            environment, actor, user, role, previous_role, granted, _PROJECT_KINDS, ProjectRole, via
        )
        for environment in project.environments.order_by("pk")
    ]


def save_environment_role(role, actor, via=""):
    """Save an environment role and write its history row, in one transaction."""
    _save(role, actor, "environment", record_role_change, via)


def delete_environment_role(role, actor, via=""):
    with transaction.atomic():
        record_role_change(role.environment, actor, role.user, role.role, granted=False, via=via)
        role.delete()


def save_project_membership(membership, actor, via=""):
    """Save a project membership and write its history rows, in one transaction."""
    _save(membership, actor, "project", record_membership_change, via)


def delete_project_membership(membership, actor, via=""):
    with transaction.atomic():
        record_membership_change(
            membership.project, actor, membership.user, membership.role, granted=False, via=via
        )
        membership.delete()


def _save(role, actor, scope, record, via=""):
    """Save ``role`` (held on its ``scope``, the environment or the project) and record
    what changed: a role moved to another user or scope is removed there and given here."""
    with transaction.atomic():
        previous = (
            type(role).objects.select_related("user", scope).filter(pk=role.pk).first()
            if role.pk
            else None
        )
        role.save()
        scope_id = f"{scope}_id"
        if previous and (previous.user_id, getattr(previous, scope_id)) != (
            role.user_id,
            getattr(role, scope_id),
        ):
            record(
                getattr(previous, scope),
                actor,
                previous.user,
                previous.role,
                granted=False,
                via=via,
            )
            previous = None
        if previous is None or previous.role != role.role:
            record(
                getattr(role, scope),
                actor,
                role.user,
                role.role,
                granted=True,
                previous_role=previous.role if previous else None,
                via=via,
            )
