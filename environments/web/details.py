"""The details page and its status poll.

The page's live region (status, Maintain menu, database access, services, latest
history) is one template partial, rendered on the page, by the poll and after every
Maintain step. It is kept in the cache, and a poll is answered 304 Not Modified, under
one key: the environment's revision, who is looking, their time zone and the templates'
version (environments/cache_keys.py).
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.functional import SimpleLazyObject
from django.utils.http import quote_etag
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import condition, require_GET

from environments.cache_keys import live_region_key
from environments.models import EnvironmentRoleKind, OperationKind, ProjectRole
from environments.permissions import (
    can_maintain,
    environment_for,
    environment_role,
    maintain_refusal,
    project_role,
)

#: How many history rows the details page shows.
LATEST_HISTORY = 5
#: The Maintain menu's order, as Lifecycle Services shows it.
MENU_ORDER = [
    OperationKind.RESTART_SERVICE,
    OperationKind.ENABLE_MAINTENANCE,
    OperationKind.DISABLE_MAINTENANCE,
    OperationKind.ENABLE_ACCESS,
    OperationKind.RESUME,
    OperationKind.ROLLBACK,
    OperationKind.ABORT,
]
#: What the failure box offers itself, as Lifecycle Services does.
RECOVERY = [OperationKind.RESUME, OperationKind.ROLLBACK, OperationKind.ABORT]


@login_required
@never_cache
@require_GET
def environment_detail(request, slug):
    environment = environment_for(request.user, slug)
    return render(request, "environments/detail.html", live_context(request, environment))


class Viewer:
    """The viewer's own roles of each kind, in their names: the project role decides who
    may maintain, the environment role who may sign in. Read only when the page's head is
    not in the cache."""

    def __init__(self, user, environment):
        self.user = user
        self.environment = environment

    @property
    def project_role(self):
        role = project_role(self.user, self.environment)
        label = ProjectRole(role).label if role else None
        if self.user.is_superuser:
            return f"{label}, and superuser" if label else "Superuser"
        return label

    @property
    def environment_role(self):
        role = environment_role(self.user, self.environment)
        return EnvironmentRoleKind(role).label if role else None


def _environment(request, slug):
    """The request's environment, looked up once for both the ETag and the view."""
    if getattr(request, "environment", None) is None:
        request.environment = environment_for(request.user, slug)
    return request.environment


def _live_etag(request, slug):
    return quote_etag(live_region_key(request, _environment(request, slug)))


@login_required
@require_GET
@cache_control(private=True, no_cache=True)  # kept by this browser only, asked again each poll
@condition(etag_func=_live_etag)
def environment_status(request, slug):
    """The live region, polled by the details page."""
    environment = _environment(request, slug)
    return render(request, "environments/detail.html#live", live_context(request, environment))


def live_context(request, environment, **extra):
    """What the live region shows this viewer. Everything that costs a query is read
    by the template, inside its cached part, so a cached render runs none."""
    user = request.user
    # The state machine decides the menu: the transitions it allows this user now.
    allowed = {t.name for t in environment.get_available_user_status_transitions(user)}
    history = environment.operations.select_related("service", "requested_by__service_account")
    context = {
        "environment": environment,
        "live_key": live_region_key(request, environment),
        "may_maintain": can_maintain(user, environment),
        "maintain_refusal": maintain_refusal(user, environment),
        "actions": [OperationKind(name) for name in MENU_ORDER if name in allowed],
        "may_request_access": OperationKind.REQUEST_ACCESS in allowed,
        "recovery": [OperationKind(name) for name in RECOVERY if name in allowed],
        "viewer": Viewer(user, environment),
        # Read only if the live region is not in the cache, once for all its uses.
        "history": SimpleLazyObject(lambda: list(history[:LATEST_HISTORY])),
        "services": environment.services.all(),
    }
    context.update(extra)
    return context
