"""The details page and its status poll.

The page's live region (status, Maintain menu, database access, services, latest
history) is one template partial, rendered on the page, by the poll and after every
Maintain step. It is kept in the cache, and a poll is answered 304 Not Modified, under
one key: the environment's revision, who is looking, their time zone and the templates'
version (environments/cache_keys.py).
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.cache import patch_cache_control
from django.utils.http import quote_etag
from django.views.decorators.cache import never_cache
from django.views.decorators.http import condition, require_GET

from environments.access import can_maintain, get_environment_for_user, maintain_refusal
from environments.cache_keys import live_region_key
from environments.models import OperationKind

#: How many history rows the details page shows.
LATEST_HISTORY = 5
#: How often the live region asks for news: while an operation runs, and otherwise.
POLL_BUSY_SECONDS = 1
POLL_IDLE_SECONDS = 10

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


@login_required
@never_cache
@require_GET
def environment_detail(request, slug):
    environment = get_environment_for_user(request, slug)
    return render(request, "environments/detail.html", live_context(request, environment))


def _environment(request, slug):
    """The request's environment, looked up once for both the ETag and the view."""
    if getattr(request, "environment", None) is None:
        request.environment = get_environment_for_user(request, slug)
    return request.environment


def _live_etag(request, slug):
    return quote_etag(live_region_key(request, _environment(request, slug)))


@login_required
@require_GET
@condition(etag_func=_live_etag)
def environment_status(request, slug):
    """The live region, polled by the details page."""
    environment = _environment(request, slug)
    response = render(request, "environments/detail.html#live", live_context(request, environment))
    # Private to this browser, which asks again (If-None-Match) on every poll.
    patch_cache_control(response, private=True, no_cache=True)
    return response


def live_context(request, environment, **extra):
    """What the live region shows this viewer. Everything that costs a query is read
    by the template, inside its cached part, so a cached render runs none."""
    user = request.user
    # The state machine decides the menu: the transitions it allows this user now.
    allowed = {t.name for t in environment.get_available_user_status_transitions(user)}
    context = {
        "environment": environment,
        "live_key": live_region_key(request, environment),
        "may_maintain": can_maintain(user, environment),
        "maintain_refusal": maintain_refusal(user, environment),
        "actions": [OperationKind(name) for name in MENU_ORDER if name in allowed],
        "may_request_access": OperationKind.REQUEST_ACCESS in allowed,
        "history": environment.operations.select_related("service", "requested_by")[
            :LATEST_HISTORY
        ],
        "poll_seconds": POLL_BUSY_SECONDS if environment.is_busy else POLL_IDLE_SECONDS,
    }
    context.update(extra)
    return context
