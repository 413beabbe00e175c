"""Who may see an environment, and who may act on it.

Every view fetches its environment through :func:`get_environment_for_user`, which
answers 404 to users outside the environment's project (they never learn that it
exists) and 403 to members who may see but not act.
"""

import functools
from dataclasses import dataclass

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import F, OuterRef, Subquery
from django.http import Http404

from environments.models import (
    MAINTAIN_ROLES,
    Environment,
    EnvironmentRole,
    EnvironmentRoleKind,
    Operation,
    OperationKind,
    ProjectMembership,
    Status,
)
from environments.precompiled import SENTINEL_ID, SENTINEL_SLUG, PrecompiledQuery

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
    """The environments the user may see: those of their projects; superusers all.

    Each has its ``project_name`` and the user's role in the project beside it."""
    queryset = Environment.objects.select_related("project")
    queryset = queryset.annotate(project_name=F("project__name"))
    if not user.is_authenticated:
        return queryset.none()
    return visible_to(with_viewer_role(queryset, user), user)


def visible_to(queryset, user):
    """``queryset`` (of environments) narrowed to those the user may see; for a count,
    without visible_environments' columns and their joins."""
    if not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(
        project__in=ProjectMembership.objects.filter(user=user).values("project")
    )


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


class SignInRequired(Exception):
    """Raised by an access helper that loads the signed-in user itself, in the statement
    that fetches the environment, when the request is not signed in."""


def sign_in_required(view):
    """``login_required`` for views whose access helper loads the user together with the
    environment (``PrecompiledQuery.first_for_signed_in``), so that the user is not
    loaded first on their own. The helper raises SignInRequired; and whatever the view
    did, its answer goes to a signed-in user only."""

    @functools.wraps(view)
    def signed_in_view(request, *args, **kwargs):
        try:
            response = view(request, *args, **kwargs)
        except SignInRequired:
            response = None
        if response is None or not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return response

    return signed_in_view


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
    queryset = Operation.objects.all()
    if user.is_superuser:
        return queryset
    return queryset.filter(environment__project__memberships__user=user)


# --- Signing in to an environment -------------------------------------------------------
# One decision, used by the sign-in page and by the reverse proxy's forward-auth call:
# may this user sign in to this environment now?

#: Statuses in which maintenance mode keeps users out; so does Failed when the latest
#: operation was a maintenance action (see maintenance_mode_on).
MAINTENANCE_STATUSES = (Status.SERVICING, Status.IN_MAINTENANCE)
MAINTENANCE_ACTIONS = (OperationKind.ENABLE_MAINTENANCE, OperationKind.DISABLE_MAINTENANCE)

#: How a portal superuser appears among a user's roles (X-Portal-Roles).
SUPERUSER_ROLE = "superuser"

# The facts the decision needs, annotated by with_sign_in_facts so that the forward-auth
# call reads them in the query that fetches the environment.
_SIGN_IN_ROLE_ATTR = "sign_in_role"
_LATEST_ACTION_ATTR = "latest_operation_action"


@dataclass(frozen=True)
class SignInDecision:
    """May a user sign in to an environment now, and why (``reason`` is for people).

    ``roles`` are the user's own: their environment role's value, and "superuser" for a
    portal superuser. ``maintenance`` tells whether maintenance mode keeps users out.
    """

    allowed: bool
    reason: str
    roles: tuple = ()
    maintenance: bool = False


SIGN_IN_FIRST = SignInDecision(False, "Sign in to the portal first.")


def with_sign_in_facts(queryset, user):
    """Annotate each environment with the user's environment role and the action of its
    latest operation, so that sign_in_decision needs no further query."""
    # One role per user and environment: no ordering, or the model's default ordering
    # would join the environment and its project into the subquery.
    role = (
        EnvironmentRole.objects.filter(environment=OuterRef("pk"), user=user)
        .order_by()
        .values("role")[:1]
    )
    latest_action = (
        Operation.objects.maintain()
        .filter(environment=OuterRef("pk"))
        .order_by("-started_at", "-id")
        .values("action")[:1]
    )
    return queryset.annotate(
        **{_SIGN_IN_ROLE_ATTR: Subquery(role), _LATEST_ACTION_ATTR: Subquery(latest_action)}
    )


def environment_role(user, environment):
    """The user's role on the environment (an EnvironmentRoleKind value), or None."""
    if not user.is_authenticated:
        return None
    if hasattr(environment, _SIGN_IN_ROLE_ATTR):
        return getattr(environment, _SIGN_IN_ROLE_ATTR)
    return (
        EnvironmentRole.objects.filter(environment=environment, user=user)
        .values_list("role", flat=True)
        .first()
    )


def maintenance_mode_on(environment, latest_operation=None):
    """Whether only System administrators and Maintenance mode users may sign in now:
    the environment is Servicing, In Maintenance, or Failed out of a maintenance action
    (one the operation that failed was turning maintenance mode on or off).

    Pass the environment's latest Maintain operation (Operation.objects.maintain())
    when it is at hand, to save a query."""
    if environment.status in MAINTENANCE_STATUSES:
        return True
    if environment.status != Status.FAILED:
        return False
    if latest_operation is not None:
        action = latest_operation.action
    elif hasattr(environment, _LATEST_ACTION_ATTR):
        action = getattr(environment, _LATEST_ACTION_ATTR)
    else:
        action = environment.operations.maintain().values_list("action", flat=True).first()
    return action in MAINTENANCE_ACTIONS


def maintenance_state(environment):
    """Why maintenance mode is on, for people: "Demo sandbox is in maintenance mode"."""
    if environment.status == Status.IN_MAINTENANCE:
        return f"{environment.name} is in maintenance mode"
    if environment.status == Status.SERVICING:
        return f"{environment.name} is Servicing: maintenance mode is being turned on or off"
    return f"{environment.name} is Failed while turning maintenance mode on or off"


def sign_in_decision(user, environment):
    """May ``user`` sign in to ``environment`` now?

    Anyone with an environment role may, and so may superusers, unless maintenance mode
    is on: then only System administrators and Maintenance mode users may, superusers
    without such a role included (the refusal page lists exactly who may enter, and a
    superuser can give themselves a role in Django admin). A project membership alone
    grants no sign-in.
    """
    if not user.is_authenticated:
        return SIGN_IN_FIRST
    maintenance = maintenance_mode_on(environment)
    if not user.is_active:
        return SignInDecision(False, "Your account is inactive.", maintenance=maintenance)
    role = environment_role(user, environment)
    roles = tuple(filter(None, [role, SUPERUSER_ROLE if user.is_superuser else None]))
    if not roles:
        return SignInDecision(
            False,
            f"You have no role on {environment.name}; a project owner can give you one.",
            maintenance=maintenance,
        )
    if maintenance and role not in MAINTENANCE_SIGN_IN_ROLES:
        return SignInDecision(
            False,
            f"{maintenance_state(environment)}: only System administrators and "
            "Maintenance mode users may sign in.",
            roles,
            maintenance=True,
        )
    if role:
        grounds = f"You are a {EnvironmentRoleKind(role).label} on {environment.name}."
    else:
        grounds = "Superusers may sign in to every environment outside maintenance mode."
    if maintenance:
        grounds = f"{maintenance_state(environment)}, and {grounds[0].lower()}{grounds[1:]}"
    return SignInDecision(True, grounds, roles, maintenance=maintenance)


def get_environment_for_sign_in(request, slug):
    """The environment named by ``slug`` and the user's sign-in decision for it.

    Raises Http404 when the user may neither see the environment in the portal nor has
    a role on it: outsiders never learn that it exists. Users with an environment role
    but no project membership get their answer.
    """
    user = request.user
    queryset = Environment.objects.select_related("project")
    if user.is_authenticated:
        queryset = with_sign_in_facts(with_viewer_role(queryset, user), user)
    try:
        environment = queryset.get(slug=slug)
    except Environment.DoesNotExist:
        raise Http404("No such environment.") from None
    decision = sign_in_decision(user, environment)
    if not decision.roles and not can_view(user, environment):
        raise Http404("No such environment.")
    return environment, decision


def forward_auth_decision(request, slug):
    """The sign-in decision for a reverse proxy, in one query beyond the session's.

    An unknown environment is refused like a known one, so the answer tells nothing
    about what exists.
    """
    # The user comes in the environment's statement: one query beyond the session.
    environment = _FORWARD_AUTH_QUERY.first_for_signed_in(request, slug=slug)
    user = request.user
    if not user.is_authenticated:
        return SIGN_IN_FIRST
    if environment is None:
        return SignInDecision(False, "No such environment.")
    return sign_in_decision(user, environment)


# Compiled once: compiling this queryset took longer than running it (precompiled.py).
_FORWARD_AUTH_QUERY = PrecompiledQuery(
    lambda user, slug: with_sign_in_facts(
        Environment.objects.only("pk", "name", "status"), user
    ).filter(slug=slug),
    user=SENTINEL_ID,
    slug=SENTINEL_SLUG,
)
