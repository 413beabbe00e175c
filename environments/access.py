"""Who may see an environment, and who may act on it.

Every view fetches its environment through :func:`get_environment_for_user`, which
answers 404 to users outside the environment's project (they never learn that it
exists) and 403 to members who may see but not act.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404

from environments.models import (
    MAINTAIN_ROLES,
    Environment,
    EnvironmentRole,
    EnvironmentRoleKind,
    ProjectMembership,
)

VIEW = "view"
MAINTAIN = "maintain"

# The viewer's project role is looked up once per request and kept on the object,
# so the menu's permission checks cost no further queries.
_ROLE_ATTR = "viewer_project_role"


def with_viewer_role(queryset, user):
    """Annotate each environment with the user's role in its project."""
    role = ProjectMembership.objects.filter(project=OuterRef("project_id"), user=user).values(
        "role"
    )[:1]
    return queryset.annotate(**{_ROLE_ATTR: Subquery(role)})


def visible_environments(user):
    """The environments the user may see: those of their projects; superusers all."""
    queryset = Environment.objects.select_related("project")
    if not user.is_authenticated:
        return queryset.none()
    queryset = with_viewer_role(queryset, user)
    if user.is_superuser:
        return queryset
    return queryset.filter(project__memberships__user=user)


def project_role(user, environment):
    """The user's role in the environment's project, or None."""
    if not user.is_authenticated:
        return None
    if hasattr(environment, _ROLE_ATTR):
        return getattr(environment, _ROLE_ATTR)
    role = (
        ProjectMembership.objects.filter(project_id=environment.project_id, user=user)
        .values_list("role", flat=True)
        .first()
    )
    setattr(environment, _ROLE_ATTR, role)
    return role


def can_view(user, environment):
    return user.is_authenticated and (user.is_superuser or project_role(user, environment))


def can_maintain(user, environment):
    """Project owners, environment managers and superusers may run Maintain actions."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or project_role(user, environment) in MAINTAIN_ROLES


def get_environment_for_user(request, slug, action=VIEW, *, for_update=False):
    """The environment named by ``slug`` if the user may ``action`` it.

    Raises Http404 when the user may not see it, PermissionDenied when they may see
    it but not act on it.
    """
    queryset = visible_environments(request.user)
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    environment = queryset.filter(slug=slug).first()
    if environment is None:
        raise Http404("No such environment.")
    if action == MAINTAIN and not can_maintain(request.user, environment):
        raise PermissionDenied("Only project owners and environment managers may do this.")
    return environment


#: Environment roles that may still sign in while maintenance mode is on.
MAINTENANCE_SIGN_IN_ROLES = (
    EnvironmentRoleKind.SYSTEM_ADMINISTRATOR,
    EnvironmentRoleKind.MAINTENANCE_MODE_USER,
)


def maintenance_sign_in_roles(environment):
    """The environment roles whose users may sign in while maintenance mode is on."""
    return (
        EnvironmentRole.objects.filter(environment=environment, role__in=MAINTENANCE_SIGN_IN_ROLES)
        .select_related("user")
        .order_by("role", "user__username")
    )


def visible_operations(user):
    """History rows of the environments the user may see."""
    from environments.models import Operation

    queryset = Operation.objects.all()
    if user.is_superuser:
        return queryset
    return queryset.filter(environment__project__memberships__user=user)
