"""The Maintain steps: the confirm step of an action, starting it, and why not."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_htmx.http import reswap, retarget

from environments import operations
from environments.forms import MaintainForm, parse_access_range
from environments.models import AccessLevel, OperationKind
from environments.permissions import MAINTAIN, environment_for
from environments.refusals import OperationRefused
from environments.web.details import RECOVERY, live_context
from lcs_portal.auth import client_address

# What each confirm step says will happen.
CONFIRM_TEXT = {
    OperationKind.RESTART_SERVICE: (
        "The environment's status becomes Restarting service and no other maintenance "
        "operation can start until the service has restarted; then it returns to Deployed."
    ),
    OperationKind.ENABLE_MAINTENANCE: (
        "The status changes from Deployed to Servicing, then to In Maintenance. While "
        "maintenance mode is on, only System administrators and Maintenance mode users "
        "can sign in to the environment."
    ),
    OperationKind.DISABLE_MAINTENANCE: (
        "The status changes from In Maintenance to Servicing, then back to Deployed, and "
        "every user with a role on the environment can sign in again."
    ),
    OperationKind.RESUME: "Runs the failed operation again.",
    OperationKind.ROLLBACK: (
        "Undoes the failed operation and returns the environment to the status it had before it."
    ),
    OperationKind.ABORT: (
        "Returns the environment to the status it had before the failed operation, "
        "without acting on the environment."
    ),
    OperationKind.ENABLE_ACCESS: (
        "Adds a firewall rule that lets this IP address or range reach the environment's "
        "database. The rule is never persistent: it is removed when it expires."
    ),
    OperationKind.REQUEST_ACCESS: (
        "Creates a database account for you, approved at once. Only you see its password, "
        "and it stops working when it expires or is revoked; then you request again."
    ),
}


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def maintain(request, slug, action):
    """GET: the confirm step of a Maintain action. POST: start it."""
    environment = environment_for(request.user, slug, MAINTAIN)
    if action not in operations.START_FUNCTIONS:
        refused = OperationRefused("There is no such Maintain action.", OperationRefused.INVALID)
        return refused_response(request, environment, refused)
    kind = OperationKind(action)
    try:
        if request.method == "GET":
            # Why it may not start now matters more than what the form lacks.
            operations.check_allowed(environment, request.user, kind)
            return _render_confirm(
                request, environment, kind, _confirm_form(kind, request, environment)
            )
        operation, form = operations.start_from_input(kind, environment, request.user, request.POST)
    except OperationRefused as refused:
        return refused_response(request, environment, refused)
    if operation is None:
        return _render_confirm(request, environment, kind, form, partial="live", status=400)
    return show_live(request, environment)


def _confirm_form(kind, request, environment):
    if kind == OperationKind.ENABLE_ACCESS:
        # "Your IP address" is the natural first rule, when the portal knows it.
        address, _ = your_address(request)
        return operations.form_for(kind, environment, initial={"address": address})
    if kind == OperationKind.REQUEST_ACCESS:
        # The least access that answers most questions.
        return operations.form_for(kind, environment, initial={"level": AccessLevel.READ})
    return operations.form_for(kind, environment)


def your_address(request):
    """The client's address, to offer as the first firewall rule, or "" and why not.

    Never an address the form would refuse: behind a reverse proxy that the portal is not
    told of, it sees the proxy's address (often loopback), not the person's."""
    address = client_address(request)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR") and not settings.PORTAL_PROXY_COUNT
    try:
        parse_access_range(address or "")
    except ValidationError:
        refused = True
    else:
        refused = False
    if not (refused or forwarded):
        return address, ""
    what = "a reverse proxy's address" if forwarded else "an address that cannot be given access"
    return "", (
        f"The portal sees your address as {address}, {what}: it is probably behind a reverse "
        "proxy it has not been told of, so enter your own address (an administrator sets "
        "PORTAL_PROXY_COUNT to the number of proxies in front of the portal)."
    )


def _render_confirm(request, environment, kind, form, partial="confirm", status=200):
    confirm = {"kind": kind, "form": form, "text": CONFIRM_TEXT[kind]}
    if kind in RECOVERY:
        # Named in full, so that no one resumes or rolls back the wrong thing.
        confirm["acts_on"] = environment.failed_operation()
    if kind == OperationKind.ENABLE_ACCESS:
        confirm["address_note"] = your_address(request)[1]
    context = live_context(request, environment, confirm=confirm)
    template = f"environments/detail.html#{partial}" if request.htmx else "environments/detail.html"
    return render(request, template, context, status=status)


def show_live(request, environment):
    """After a change: the live region for htmx, the details page otherwise."""
    if request.htmx:
        environment.refresh_from_db()
        return render(request, "environments/detail.html#live", live_context(request, environment))
    return redirect(environment)


def refused_response(request, environment, refused):
    """Show why an action was refused, in place of the live region: never a raw error
    page, and never inside the panel the request came from."""
    environment.refresh_from_db()
    context = live_context(request, environment, refusal=refused.message)
    if not request.htmx:
        return render(request, "environments/detail.html", context, status=refused.status)
    response = render(request, "environments/detail.html#live", context, status=refused.status)
    return reswap(retarget(response, "#live"), "outerHTML")


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def stop(request, slug):
    """GET: the confirm step of Stop, with its reason. POST: stop the running operation."""
    environment = environment_for(request.user, slug, MAINTAIN)
    try:
        running = operations.stoppable(environment)
        form = MaintainForm(request.POST or None, environment=environment)
        if request.method == "POST" and form.is_valid():
            operations.stop(environment, request.user, form.cleaned_data["reason"])
            return show_live(request, environment)
    except OperationRefused as refused:
        return refused_response(request, environment, refused)
    status = 400 if request.method == "POST" else 200
    context = live_context(request, environment, stop={"form": form, "operation": running})
    template = "environments/detail.html#live" if request.htmx else "environments/detail.html"
    return render(request, template, context, status=status)
