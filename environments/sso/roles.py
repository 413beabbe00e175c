"""Roles from the identity provider's groups, applied at every sign-in.

The provider makes, changes and removes only rows it made (source "provider"); an admin's
row stands whatever the groups say. Each change goes the way an admin's does: environment
roles through operations (history row "via <provider>"), project memberships by save and
delete, whose receivers end the grants a lost role allowed."""

from django.conf import settings
from django.db import transaction

from environments.models import (
    Environment,
    EnvironmentRole,
    EnvironmentRoleKind,
    GroupRole,
    ProjectMembership,
    ProjectRole,
    RoleSource,
)
from environments.operations import (
    delete_environment_role,
    delete_project_membership,
    save_environment_role,
    save_project_membership,
)

#: Weakest first: where two groups give roles on one project or environment, the
#: stronger one wins.
PROJECT_RANK = [ProjectRole.MEMBER, ProjectRole.MANAGER, ProjectRole.OWNER]
ENVIRONMENT_RANK = [
    EnvironmentRoleKind.USER,
    EnvironmentRoleKind.MAINTENANCE_MODE_USER,
    EnvironmentRoleKind.SYSTEM_ADMINISTRATOR,
]


def _stronger(rank, a, b):
    return b if a is None or rank.index(b) > rank.index(a) else a


def roles_from_groups(groups):
    """{project id: role} and {environment id: role} that these groups give."""
    project_roles, environment_roles = {}, {}
    for mapping in GroupRole.objects.filter(group__in=groups):
        if mapping.project_role:
            project_roles[mapping.project_id] = _stronger(
                PROJECT_RANK, project_roles.get(mapping.project_id), mapping.project_role
            )
            continue
        environments = Environment.objects.filter(project_id=mapping.project_id)
        for environment_id in environments.values_list("pk", flat=True):
            environment_roles[environment_id] = _stronger(
                ENVIRONMENT_RANK, environment_roles.get(environment_id), mapping.environment_role
            )
    return project_roles, environment_roles


def groups_from_claims(claims):
    """The groups an ID token's claims list, or None when the provider left them out
    because there were too many (Entra ID's overage: a ``_claim_names`` pointer to
    Microsoft Graph, or ``hasgroups``): never read as "no groups" (docs/sso.md)."""
    claim = settings.OIDC_GROUPS_CLAIM
    if claim not in claims and (claim in claims.get("_claim_names", {}) or claims.get("hasgroups")):
        return None
    groups = claims.get(claim) or []
    if isinstance(groups, str):
        groups = [groups]
    return [str(group) for group in groups]


def apply_identity_groups(identity, groups, provider_name, now):
    """Apply the groups the provider just told for ``identity`` (at a sign-in or a
    refresh) and remember them, in one transaction."""
    with transaction.atomic():
        apply_groups(identity.user, groups, provider_name)
        identity.groups = groups
        identity.groups_read_at = now
        identity.save(update_fields=["groups", "groups_read_at"])


def apply_groups(user, groups, provider_name):
    """Give ``user`` the roles ``groups`` map to and take away the provider's others."""
    with transaction.atomic():
        wanted_projects, wanted_environments = roles_from_groups(groups)
        memberships = {m.project_id: m for m in user.project_memberships.all()}
        for project_id, role in wanted_projects.items():
            membership = memberships.get(project_id)
            if membership is None:
                membership = ProjectMembership(
                    user=user, project_id=project_id, role=role, source=RoleSource.PROVIDER
                )
                save_project_membership(membership, None, via=provider_name)
            elif membership.source == RoleSource.PROVIDER and membership.role != role:
                membership.role = role
                save_project_membership(membership, None, via=provider_name)
        for membership in memberships.values():
            if membership.source == RoleSource.PROVIDER and membership.project_id not in (
                wanted_projects
            ):
                delete_project_membership(membership, None, via=provider_name)

        roles = {r.environment_id: r for r in user.environment_roles.select_related("environment")}
        for environment_id, kind in wanted_environments.items():
            role = roles.get(environment_id) or EnvironmentRole(
                user=user, environment_id=environment_id, source=RoleSource.PROVIDER
            )
            if role.source == RoleSource.PROVIDER and role.role != kind:
                role.role = kind
                save_environment_role(role, None, via=provider_name)
        for role in roles.values():
            if role.source == RoleSource.PROVIDER and role.environment_id not in (
                wanted_environments
            ):
                delete_environment_role(role, None, via=provider_name)

        if settings.OIDC_SUPERUSER_GROUP:
            superuser = settings.OIDC_SUPERUSER_GROUP in groups
            if user.is_superuser != superuser:
                user.is_superuser = user.is_staff = superuser
                user.save()
