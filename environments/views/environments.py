"""The environment list, the details page with its Maintain menu, and the status poll."""

import hashlib
import operator

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import CharField, Count, F, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Coalesce, Concat
from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.http import parse_etags, quote_etag
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseStopPolling

from environments import fragments, operations
from environments.access import (
    MAINTAIN,
    SignInRequired,
    can_maintain,
    get_environment_for_user,
    maintenance_mode_on,
    maintenance_sign_in_roles,
    sign_in_required,
    visible_environments,
    visible_to,
    with_viewer_role,
)
from environments.context_processors import USER_WITH_PROJECTS, load_user_and_projects
from environments.drivers.database import server_address
from environments.forms import (
    EnableAccessForm,
    MaintainForm,
    RequestAccessForm,
    RestartServiceForm,
)
from environments.models import (
    ACTIVE_OUTCOMES,
    MAINTAIN_KINDS,
    DatabaseAccount,
    Environment,
    FirewallRule,
    Operation,
    OperationKind,
    Outcome,
    Service,
    ServiceState,
    Status,
)
from environments.operations import OperationRefused
from environments.precompiled import SENTINEL_ID, SENTINEL_SLUG, Paginated, PrecompiledQuery

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


@sign_in_required
@require_GET
def environment_list(request):
    load_user_and_projects(request)
    user = request.user
    if not user.is_authenticated:
        raise SignInRequired
    number = request.GET.get("page")
    rows = Paginated(_LIST_QUERIES[user.is_superuser], ENVIRONMENTS_PER_PAGE, number, user=user.pk)
    page = Paginator(rows, ENVIRONMENTS_PER_PAGE).get_page(number)
    # The rows show nothing but their own values: users who see the same page share them.
    table = fragments.cached(
        "environment-rows",
        [_row_facts(row) for row in page.object_list],
        "environments/list.html#rows",
        lambda: {"environments": [_list_row(row) for row in page.object_list]},
        request,
    )
    return render(request, "environments/list.html", {"page": page, "rows": table})


#: What a row of the list shows.
LIST_FIELDS = ("id", "slug", "name", "tier", "type", "status")
ROW_FACTS = (*LIST_FIELDS, "project_name")
_row_facts = operator.itemgetter(*ROW_FACTS)


def _stand_in(superuser, user):
    """A user with the same powers, for the precompiled queries' access rules (their
    user is a sentinel, or 0 when unused)."""
    return get_user_model()(pk=user, is_superuser=superuser)


def _list_query(superuser):
    def build(user=0):
        # The id last: environments of one project may share a name, and a page must
        # not show one of them twice or never.
        rows = visible_environments(_stand_in(superuser, user)).values(*ROW_FACTS)
        return rows.order_by("project__name", "name", "pk")

    def counted(user=0):  # the same rows, counted without joining their projects
        return visible_to(Environment.objects.all(), _stand_in(superuser, user))

    # A superuser's list does not depend on who they are: no user among its parameters.
    if superuser:
        return PrecompiledQuery(build, counted=counted)
    # How best to sort a user's environments depends on how many projects they are in:
    # PostgreSQL plans the list for each user (a generic plan sorted every row).
    return PrecompiledQuery(build, counted=counted, written_in=["user"], user=SENTINEL_ID)


_LIST_QUERIES = {superuser: _list_query(superuser) for superuser in (True, False)}


def _list_row(row):
    environment = Environment(**{name: row[name] for name in LIST_FIELDS})
    environment.project_name = row["project_name"]
    return environment


@sign_in_required
@never_cache
@require_GET
def environment_detail(request, slug):
    environment = _environment_with_facts(request, slug, part="details", users=USER_WITH_PROJECTS)
    # The page below the header shows the live region's facts and the project's name:
    # kept in the fragments cache under them, unless it shows a password.
    key = fragments.key("details", [*live_facts(request, environment), environment.project_name])
    content = fragments.get(key)
    if content is None:
        context = live_context(request, environment)
        content = fragments.render("environments/detail.html#content", context, request)
        if not shows_password(context):
            fragments.keep(key, content)
    content = fragments.with_csrf_token(content, request)
    return render(
        request, "environments/detail.html", {"environment": environment, "content": content}
    )


@sign_in_required
@require_GET
def environment_status(request, slug):
    """The live region of the details page (or one badge, with ?part=badge), polled
    while an operation runs; 286 tells htmx to stop once the status has settled.

    A poll that finds nothing changed since the response it already has gets 304 Not
    Modified, without rendering (see status_etag)."""
    badge = request.GET.get("part") == "badge"
    environment = _environment_with_facts(request, slug, part="badge" if badge else "live")
    etag = status_etag(request, environment, badge=badge)
    if etag in parse_etags(request.headers.get("If-None-Match", "")):
        # Only 200 responses that show no password carry an ETag: this is one of them.
        return _revalidatable(HttpResponseNotModified(), etag)
    secret_shown = False
    if badge:
        polling = environment.is_busy
        html = fragments.cached(
            "status-badge",
            [environment.slug, environment.status],
            "environments/partials/status_badge.html",
            lambda: {"environment": environment, "poll": True},
            request,
        )
        response = HttpResponse(html)
    else:
        context = live_context(request, environment)
        polling = context["polling"]
        secret_shown = shows_password(context)
        response = render(request, "environments/detail.html#live", context)
    if not polling:
        response = HttpResponseStopPolling(response.content)
    if polling and not secret_shown:
        return _revalidatable(response, etag)
    # A database password is for its requester's eyes only: never stored by a browser.
    add_never_cache_headers(response)
    return response


# --- The status poll's validator -------------------------------------------------------
# The ETag is made of everything the live region shows: the environment's row (with the
# viewer's project role), the viewer and their session, its services, and the state of
# its operations: the newest one, and how many are queued and how many are running.
# An operation only moves forward (Queued, Running, ended), so with the newest one
# unchanged every step changes one of the two counts. Access grants and environment
# roles change only together with an operation (their history row), so they change it
# too. Reading the facts costs no query of its own: they are annotations on the query
# that fetches the environment and checks the user's right to it, and that query is
# compiled once (environments/precompiled.py): compiling it cost more than running it.


def _count(queryset):
    counted = queryset.order_by().values("environment").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted), 0)


def _summary(queryset, *aggregates):
    """Several aggregates of the environment's rows in one subquery, as one text
    ("3|1|2026-11-26 ..."; NULL with no rows): one scan where each would make its own."""
    parts = []
    for aggregate in aggregates:
        parts += [Coalesce(Cast(aggregate, CharField()), Value("")), Value("|")]
    summary = Concat(*parts[:-1], output_field=CharField())
    return Subquery(queryset.order_by().values("environment").annotate(s=summary).values("s"))


_operations = Operation.objects.filter(environment=OuterRef("pk"))
_services = Service.objects.filter(environment=OuterRef("pk"))
_OPEN_GRANTS = {"environment": OuterRef("pk"), "ended_at": None}
POLL_FACTS = {
    "poll_latest_operation": Subquery(_operations.order_by("-started_at", "-id").values("pk")[:1]),
    # How many operations are queued, and how many queued or running.
    "poll_active": _summary(
        _operations.filter(outcome__in=ACTIVE_OUTCOMES),
        Count("pk", filter=Q(outcome=Outcome.QUEUED)),
        Count("pk"),
    ),
    # A service added or deleted in the admin writes no history row: how many there
    # are, how many are not running, and the latest restart.
    "poll_services": _summary(
        _services,
        Count("pk"),
        Count("pk", filter=~Q(state=ServiceState.RUNNING)),
        Max("last_restarted_at"),
    ),
    # A grant removed while it is still being applied writes no history row either.
    "poll_open_rules": _count(FirewallRule.objects.filter(**_OPEN_GRANTS)),
    "poll_open_accounts": _count(DatabaseAccount.objects.filter(**_OPEN_GRANTS)),
}


def _poll_query(superuser, part):
    def build(slug, user=0):
        viewer = _stand_in(superuser, user)
        if part == "badge":  # the badge shows the status alone: no project, no role
            return visible_to(Environment.objects.only(*BADGE_FIELDS), viewer).filter(slug=slug)
        queryset = visible_to(with_viewer_role(Environment.objects.all(), viewer), viewer)
        if part == "details":  # the details page names the project; the poll does not
            queryset = queryset.annotate(project_name=F("project__name"))
        return queryset.filter(slug=slug).annotate(**POLL_FACTS)

    if part == "badge" and superuser:  # who they are does not matter: not a parameter
        return PrecompiledQuery(build, slug=SENTINEL_SLUG)
    return PrecompiledQuery(build, user=SENTINEL_ID, slug=SENTINEL_SLUG)


#: What the status badge shows.
BADGE_FIELDS = ("id", "slug", "status")


_POLL_QUERIES = {
    (superuser, part): _poll_query(superuser, part)
    for superuser in (True, False)
    for part in ("badge", "live", "details")
}


def _environment_with_facts(request, slug, *, part, users=None):
    """get_environment_for_user(request, slug) with the poll's facts (``part``: "badge",
    "live" or "details"), compiled once and run in the statement that loads the
    signed-in user (views under sign_in_required; ``users``: see first_for_signed_in)."""
    found = _POLL_QUERIES[False, part].first_for_signed_in(request, slug=slug, users=users)
    user = request.user
    if not user.is_authenticated:
        raise SignInRequired
    if found is None and user.is_superuser:  # outside their projects: a second look
        # A query without the user among its parameters (a superuser's badge) ignores it.
        found = _POLL_QUERIES[True, part].first(user=user.pk, slug=slug)
    if found is None:
        raise Http404("No such environment.")
    return found


def status_etag(request, environment, *, badge):
    facts = [fragments.templates_version(), request.session.session_key]
    if badge:
        facts += ["badge", request.user.pk, environment.pk, environment.slug, environment.status]
    else:
        facts += ["live", *live_facts(request, environment)]
    return quote_etag(hashlib.sha256(repr(facts).encode()).hexdigest()[:32])


def live_facts(request, environment):
    """Everything the live region shows, for a viewer (see the validator's note above)."""
    user = request.user
    return [
        user.pk,
        user.is_active,
        user.is_superuser,
        environment.pk,
        environment.slug,
        environment.status,
        environment.name,
        environment.status_changed_at.isoformat(),
        environment.tier,
        environment.type,
        environment.subscription,
        environment.deployment,
        environment.url,
        environment.database_server,
        environment.database_name,
        environment.viewer_project_role,
        server_address(environment),
        environment.poll_latest_operation,
        environment.poll_active,
        environment.poll_services,
        environment.poll_open_rules,
        environment.poll_open_accounts,
    ]


def shows_password(context):
    """Whether a live context shows a database account's password (to its requester)."""
    return any(account.password and account.applied_at for account in context["database_accounts"])


def _revalidatable(response, etag):
    """Private to this browser and session, and checked with the server on every poll."""
    response["ETag"] = etag
    # A new response has neither header yet: set, rather than merged (patch_*).
    response["Cache-Control"] = "private, no-cache"
    response["Vary"] = "Cookie"
    return response


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
        try:
            operations.check_allowed(environment, request.user, kind)
        except OperationRefused as refused:
            return refused_response(request, environment, refused)
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


def menu_actions(allowed):
    """The Maintain menu: the allowed transitions that belong in it, in menu order."""
    return [
        name for name in MENU_ORDER if name in allowed and allowed[name].custom.get("menu", True)
    ]


def live_context(request, environment, **extra):
    """Everything the details page's live region shows: status, menu, services, history."""
    history = list(
        environment.operations.select_related("service", "requested_by")[:LATEST_HISTORY]
    )
    # The latest rows usually hold the running or failed operation; ask the database
    # only when they do not (access grants and role changes can push it further down).
    current = next((op for op in history if op.is_active and not op.ends_grant), None)
    if current is None and environment.is_busy:
        current = operations.running_operation(environment)
    failed = None
    if environment.status == Status.FAILED:
        failed = next((op for op in history if op.kind in MAINTAIN_KINDS), None)
        failed = failed or operations.failed_operation(environment)
    # The state machine is asked once per render: the menu and Request access use it.
    allowed = allowed_actions(environment, request.user)
    actions = menu_actions(allowed)
    accounts = list(
        DatabaseAccount.objects.filter(environment=environment, ended_at__isnull=True)
        .select_related("requested_by")
        .order_by("-created_at")
    )
    for account in accounts:
        account.password = operations.account_password(account, request.user)
    maintenance = maintenance_mode_on(environment, failed)
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
        "may_request_access": OperationKind.REQUEST_ACCESS in allowed,
        "database_address": server_address(environment),
        "maintenance_mode": maintenance,
        "sign_in_allowed": maintenance_sign_in_roles(environment) if maintenance else (),
        "failed_operation": failed,
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
