"""The environment list, the details page with its Maintain menu, and the status poll."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseStopPolling

from environments import operations
from environments.access import (
    MAINTAIN,
    can_maintain,
    get_environment_for_user,
    maintenance_mode_on,
    maintenance_sign_in_roles,
    visible_environments,
)
from environments.drivers.database import server_address
from environments.forms import (
    EnableAccessForm,
    MaintainForm,
    RequestAccessForm,
    RestartServiceForm,
)
from environments.models import DatabaseAccount, FirewallRule, OperationKind, Status
from environments.operations import OperationRefused

LATEST_HISTORY = 5
ENVIRONMENTS_PER_PAGE = 50

REFUSAL_STATUS = {
    OperationRefused.BUSY: 409,
    OperationRefused.NOT_ALLOWED: 409,
    OperationRefused.INELIGIBLE: 409,
    OperationRefused.FORBIDDEN: 403,
    OperationRefused.INVALID: 400,
}

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
@require_GET
def environment_list(request):
    environments = visible_environments(request.user)
    page = Paginator(environments, ENVIRONMENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "environments/list.html", {"page": page})


@login_required
@never_cache
@require_GET
def environment_detail(request, slug):
    environment = get_environment_for_user(request, slug)
    return render(request, "environments/detail.html", live_context(request, environment))


@login_required
@never_cache
@require_GET
def environment_status(request, slug):
    """The live region of the details page (or one badge, with ?part=badge), polled
    while an operation runs; 286 tells htmx to stop once the status has settled."""
    environment = get_environment_for_user(request, slug)
    if request.GET.get("part") == "badge":
        polling = environment.is_busy
        response = render(
            request,
            "environments/partials/status_badge.html",
            {"environment": environment, "poll": True},
        )
    else:
        context = live_context(request, environment)
        polling = context["polling"]
        response = render(request, "environments/detail.html#live", context)
    if polling:
        return response
    return HttpResponseStopPolling(response.content)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def maintain(request, slug, action):
    """GET: the confirm step of a Maintain action. POST: start it."""
    environment = get_environment_for_user(request, slug, MAINTAIN)
    if action not in operations.START_FUNCTIONS:
        return refused_response(
            request,
            environment,
            OperationRefused("There is no such Maintain action.", OperationRefused.INVALID),
        )
    kind = OperationKind(action)
    form = _maintain_form(kind, request, environment)

    if request.method == "GET":
        if action not in allowed_actions(environment, request.user):
            return refused_response(request, environment, _why_not(environment, kind))
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


# --- helpers ------------------------------------------------------------------------


def allowed_actions(environment, user):
    """The transitions the state machine allows this user now."""
    return {t.name: t for t in environment.get_available_user_status_transitions(user)}


def available_actions(environment, user):
    """The Maintain menu: the allowed transitions that belong in it."""
    return [
        name
        for name, transition in allowed_actions(environment, user).items()
        if transition.custom.get("menu", True)
    ]


def live_context(request, environment, **extra):
    """Everything the details page's live region shows: status, menu, services, history."""
    history = list(
        environment.operations.select_related("service", "requested_by")[:LATEST_HISTORY]
    )
    latest = history[0] if history else None
    actions = available_actions(environment, request.user)
    current = latest if latest and latest.is_active else None
    accounts = list(
        DatabaseAccount.objects.filter(environment=environment, ended_at__isnull=True)
        .select_related("requested_by")
        .order_by("-created_at")
    )
    for account in accounts:
        account.password = operations.account_password(account, request.user)
    maintenance = maintenance_mode_on(environment, latest)
    context = {
        "environment": environment,
        "services": environment.services.all(),
        "history": history,
        "current_operation": current,
        "polling": environment.is_busy or current is not None,
        "firewall_rules": FirewallRule.objects.filter(
            environment=environment, ended_at__isnull=True
        ).select_related("requested_by"),
        "database_accounts": accounts,
        "may_request_access": "request_access" in allowed_actions(environment, request.user),
        "database_address": server_address(environment),
        "maintenance_mode": maintenance,
        "sign_in_allowed": maintenance_sign_in_roles(environment) if maintenance else (),
        "failed_operation": latest if environment.status == Status.FAILED else None,
        "actions": [(name, OperationKind(name).label) for name in actions],
        "may_maintain": can_maintain(request.user, environment),
        "restart_refusal": environment.restart_refusal_reason(),
    }
    context.update(extra)
    return context


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


def _why_not(environment, kind):
    if environment.is_busy:
        return OperationRefused(operations.busy_message(environment), OperationRefused.BUSY)
    if kind == OperationKind.RESTART_SERVICE and environment.restart_refusal_reason():
        return OperationRefused(environment.restart_refusal_reason(), OperationRefused.INELIGIBLE)
    return OperationRefused(
        f"{kind.label} is not possible while {environment.name} is "
        f"{environment.get_status_display()}.",
        OperationRefused.NOT_ALLOWED,
    )


def _render_confirm(request, environment, kind, form, partial="confirm", status=200):
    context = live_context(
        request,
        environment,
        confirm={
            "kind": kind,
            "form": form,
            "text": CONFIRM_TEXT[kind],
            "sign_in_allowed": (
                maintenance_sign_in_roles(environment)
                if kind == OperationKind.ENABLE_MAINTENANCE
                else ()
            ),
        },
    )
    template = f"environments/detail.html#{partial}" if request.htmx else "environments/detail.html"
    return render(request, template, context, status=status)


def show_live(request, environment):
    """After a change: the live region for htmx, the details page otherwise."""
    if request.htmx:
        environment.refresh_from_db()
        return render(request, "environments/detail.html#live", live_context(request, environment))
    return redirect(environment)


def refused_response(request, environment, refused):
    """Show why an action was refused, in the page: never a raw error page."""
    environment.refresh_from_db()
    context = live_context(request, environment, refusal=refused.message)
    template = "environments/detail.html#live" if request.htmx else "environments/detail.html"
    return render(request, template, context, status=REFUSAL_STATUS[refused.code])
