"""The Maintain steps: the confirm step of an action, starting it, and why not."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_htmx.http import reswap, retarget

from environments import operations
from environments.forms import EnableAccessForm, MaintainForm, RequestAccessForm, RestartServiceForm
from environments.models import OperationKind
from environments.permissions import MAINTAIN, get_environment_for_user
from environments.refusals import OperationRefused
from environments.web.details import live_context

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

FORMS = {
    OperationKind.RESTART_SERVICE: RestartServiceForm,
    OperationKind.ENABLE_ACCESS: EnableAccessForm,
    OperationKind.REQUEST_ACCESS: RequestAccessForm,
}


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def maintain(request, slug, action):
    """GET: the confirm step of a Maintain action. POST: start it."""
    environment = get_environment_for_user(request, slug, MAINTAIN)
    if action not in operations.START_FUNCTIONS:
        refused = OperationRefused("There is no such Maintain action.", OperationRefused.INVALID)
        return refused_response(request, environment, refused)
    kind = OperationKind(action)
    form = _maintain_form(kind, request, environment)

    # Why it may not start now matters more than what the form lacks.
    try:
        operations.check_allowed(environment, request.user, kind)
    except OperationRefused as refused:
        return refused_response(request, environment, refused)
    if request.method == "GET":
        return _render_confirm(request, environment, kind, form)
    if not form.is_valid():
        return _render_confirm(request, environment, kind, form, partial="live", status=400)
    try:
        operations.START_FUNCTIONS[kind](
            environment, request.user, **_start_arguments(kind, form.cleaned_data)
        )
    except OperationRefused as refused:
        return refused_response(request, environment, refused)
    return show_live(request, environment)


def _maintain_form(kind, request, environment):
    data = request.POST if request.method == "POST" else None
    form_class = FORMS.get(kind, MaintainForm)
    if kind == OperationKind.RESTART_SERVICE:
        return form_class(data, environment=environment, services=environment.services.all())
    if kind == OperationKind.ENABLE_ACCESS and data is None:
        # "Your IP address" is the natural first rule.
        address = request.META.get("REMOTE_ADDR", "")
        return form_class(environment=environment, initial={"address": address})
    return form_class(data, environment=environment)


def _start_arguments(kind, cleaned_data):
    arguments = {"reason": cleaned_data["reason"]}
    if kind == OperationKind.RESTART_SERVICE:
        arguments["service_kind"] = cleaned_data["service"]
    if kind in (OperationKind.ENABLE_ACCESS, OperationKind.REQUEST_ACCESS):
        arguments["lifetime"] = operations.access_lifetime(cleaned_data["hours"])
    if kind == OperationKind.ENABLE_ACCESS:
        arguments.update(name=cleaned_data["name"], cidr=cleaned_data["address"])
    if kind == OperationKind.REQUEST_ACCESS:
        arguments["level"] = cleaned_data["level"]
    return arguments


def _render_confirm(request, environment, kind, form, partial="confirm", status=200):
    confirm = {"kind": kind, "form": form, "text": CONFIRM_TEXT[kind]}
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
