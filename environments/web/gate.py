"""The environment sign-in gate: the page people reach, and the same decision for a
reverse proxy (nginx ``auth_request``, Traefik ForwardAuth) in front of the environment."""

from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from environments.models import OperationKind
from environments.permissions import (
    forward_auth_decision,
    get_environment_for_sign_in,
    viewer_role,
)
from environments.windows import planned_end

#: Domains reserved for examples and documentation (RFC 2606, RFC 6761).
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org", ".example", ".test", ".invalid")


@never_cache
@login_required
@require_GET
def environment_sign_in(request, slug):
    """Send whoever may enter to the environment; tell everyone else why not (403)."""
    environment, decision = get_environment_for_sign_in(request, slug)
    context = {
        "environment": environment,
        "decision": decision,
        "may_view": bool(viewer_role(request.user, environment)),
    }
    if decision.allowed:
        if not environment.url:
            raise Http404(f"{environment.name} has no URL to sign in to.")
        if urlsplit(environment.url).hostname.endswith(EXAMPLE_DOMAINS):
            # The demo's environments live at example addresses that lead nowhere: say
            # where the gate would send them instead of sending them there.
            return render(request, "environments/sign_in_allowed.html", context)
        return redirect(environment.url)
    if decision.maintenance:
        # Who turned maintenance on, when and why, and when it is planned to end (a
        # scheduled window's end): what people ask the first time they are refused.
        turned_on = environment.operations.filter(kind=OperationKind.ENABLE_MAINTENANCE)
        context["turned_on"] = turned_on.select_related("requested_by__service_account").first()
        context["planned_end"] = planned_end(environment)
    return render(request, "environments/sign_in_refused.html", context, status=403)


@never_cache
@require_GET
def environment_auth(request, slug):
    """Forward auth: 204 with the user and their roles, 401 when not signed in to the
    portal, 403 when refused. Never a redirect or a body: the proxy decides what the
    browser sees. It runs before every request to the environment, so it stays at three
    statements: the session, the user, and the environment with the user's role on it
    (access.forward_auth_decision)."""
    decision = forward_auth_decision(request, slug)
    if not decision.allowed:
        response = HttpResponse(status=401 if not request.user.is_authenticated else 403)
    else:
        response = HttpResponse(status=204)
        response["X-Portal-User"] = request.user.get_username()
        response["X-Portal-Roles"] = ",".join(decision.roles)
    if decision.window:
        # The next or current maintenance window, before and during it: the environment
        # can show its own banner.
        response["X-Portal-Maintenance-Window"] = decision.window
    return response
