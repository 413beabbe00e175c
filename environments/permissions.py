"""Who may see an environment, who may act on it, and who may sign in to it.

Every view fetches its environment through :func:`environment_for`, which
answers 404 to users outside the environment's project (they never learn that it
exists) and 403 to members who may see but not act.
"""

from dataclasses import dataclass, replace
from datetime import UTC

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Sum
from django.http import Http404

from environments.models import (
    MAINTENANCE_SIGN_IN_ROLES,
    Environment,
    EnvironmentRoleKind,
    Operation,
    ProjectRole,
    Status,
)

VIEW = "view"
MAINTAIN = "maintain"

#: How a portal superuser appears among a user's roles (X-Portal-Roles, cache keys).
SUPERUSER_ROLE = "superuser"


def visible_environments(user):
    """The environments the user may see: those of their projects; superusers see all."""
    if not user.is_authenticated:
        return Environment.objects.none()
    if user.is_superuser:
        return Environment.objects.all()
    return Environment.objects.filter(project__memberships__user=user)


def visible_version(user):
    """The version of everything the user may see across environments: how many there
    are, the newest, and the sum of their revisions, which only go up. Any change to
    any of them, or to which they are, changes it (one aggregate query)."""
    version = visible_environments(user).aggregate(
        count=Count("pk"), newest=Max("pk"), revisions=Sum("revision")
    )
    return "{count}.{newest}.{revisions}".format(**version)


def project_role(user, environment):
    """The user's role in the environment's project (a ProjectRole value), or None."""
    return environment.project_role_of(user)


def viewer_role(user, environment):
    """What decides what the environment's pages show this user: "superuser" or their
    project role. Part of every cache key and ETag of those pages."""
    return SUPERUSER_ROLE if user.is_superuser else project_role(user, environment)


def can_maintain(user, environment):
    """Project owners, environment managers and superusers may run Maintain actions (the
    rule is the environment's, so that its state machine asks the same)."""
    return environment.may_be_maintained_by(user)


def maintain_refusal(user, environment):
    """Why the user may not maintain the environment, in the roles' own names; None
    when they may."""
    if can_maintain(user, environment):
        return None
    role = project_role(user, environment)
    held = f"You are a {ProjectRole(role).label}: only" if role else "Only"
    return f"{held} Project owners and Environment managers can maintain this environment."


def environment_for(user, slug, action=VIEW):
    """The environment named by ``slug`` if the user may ``action`` it: every view and
    every API endpoint fetches its environment here first.

    Raises Http404 when the user may not see it, PermissionDenied when they may see it
    but not act on it.
    """
    environment = environment_with_roles(user, slug)
    if environment is None or not viewer_role(user, environment):
        raise Http404("No such environment.")
    if action == MAINTAIN and not can_maintain(user, environment):
        raise PermissionDenied(maintain_refusal(user, environment))
    return environment


def environment_with_roles(user, slug):
    """The environment named by ``slug`` with the user's role in its project
    (``viewer_role``) and on it (``sign_in_role``), or None.

    Every page of an environment starts here, and forward auth, asked before every
    request to an environment, too: one hand-written statement. Compiling the ORM's
    query and asking for the two roles apart cost 0.69 ms a call in one process on this
    machine's PostgreSQL; this statement costs 0.18 ms (docs/performance.md)."""
    found = Environment.objects.raw(ENVIRONMENT_SQL, [user.pk, user.pk, slug])
    return next(iter(found), None)


ENVIRONMENT_SQL = """
SELECT e.*, m.role AS viewer_role, r.role AS sign_in_role
  FROM environments_environment e
  LEFT JOIN environments_projectmembership m
         ON m.project_id = e.project_id AND m.user_id = %s
  LEFT JOIN environments_environmentrole r ON r.environment_id = e.id AND r.user_id = %s
 WHERE e.slug = %s
"""


def environment_role(user, environment):
    """The user's role on the environment (an EnvironmentRoleKind value), or None."""
    return environment.environment_role_of(user)


def visible_operations(user):
    """History rows of the environments the user may see."""
    queryset = Operation.objects.all()
    if user.is_superuser:
        return queryset
    return queryset.filter(environment__project__memberships__user=user)


# --- Signing in to an environment -------------------------------------------------------
# One decision, used by the sign-in page and by the reverse proxy's forward-auth call:
# may this user sign in to this environment now?


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
    # "<start>/<end>" of the environment's next or current maintenance window (forward
    # auth's X-Portal-Maintenance-Window), or None.
    window: str | None = None


SIGN_IN_FIRST = SignInDecision(False, "Sign in to the portal first.")


def maintenance_state(environment):
    """Why maintenance mode is on, for people: "Demo sandbox is in maintenance mode"."""
    if environment.status == Status.IN_MAINTENANCE:
        return f"{environment.name} is in maintenance mode"
    if environment.status == Status.SERVICING:
        return f"{environment.name} is Servicing: maintenance mode is being turned on or off"
    return f"{environment.name} is Failed while turning maintenance mode on or off"


def sign_in_decision(user, environment, role):
    """May ``user``, whose role on ``environment`` is ``role``, sign in to it now?

    Anyone with an environment role may, and so may superusers, unless maintenance mode
    is on: then only System administrators and Maintenance mode users may, superusers
    without such a role included (the refusal page lists exactly who may enter, and a
    superuser can give themselves a role in Django admin). A project membership alone
    grants no sign-in.
    """
    if not user.is_authenticated:
        return SIGN_IN_FIRST
    maintenance = environment.maintenance_mode
    if not user.is_active:
        return SignInDecision(False, "Your account is inactive.", maintenance=maintenance)
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
    environment = environment_with_roles(user, slug)
    if environment is None:
        raise Http404("No such environment.")
    decision = sign_in_decision(user, environment, environment_role(user, environment))
    if not decision.roles and not viewer_role(user, environment):
        raise Http404("No such environment.")
    return environment, decision


def forward_auth_decision(request, slug):
    """The sign-in decision for a reverse proxy, asked before every request to an
    environment: one statement beyond the session's and the user's.

    An unknown environment is refused like a known one, so the answer tells nothing
    about what exists.
    """
    user = request.user
    if not user.is_authenticated:
        return SIGN_IN_FIRST
    environment = environment_with_roles(user, slug)
    if environment is None:
        return SignInDecision(False, "No such environment.")
    decision = sign_in_decision(user, environment, environment.sign_in_role)
    if not decision.roles and not viewer_role(user, environment):
        return SignInDecision(False, "No such environment.")  # an outsider learns nothing
    # The next maintenance window is kept on the environment's row (windows._changed).
    return replace(decision, window=window_header(environment))


def window_header(environment):
    """ "<start>/<end>" (ISO 8601, UTC) of the environment's next or current maintenance
    window, for the environment to show its own banner; None when there is none."""
    if environment.window_starts_at is None:
        return None
    starts, ends = (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for moment in (environment.window_starts_at, environment.window_ends_at)
    )
    return f"{starts}/{ends}"
