"""History: per environment and across environments, filtered, keyset-paginated, CSV."""

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from environments import history_csv
from environments.cache_keys import shared_key, viewer_key
from environments.forms import HistoryFilterForm
from environments.history_cursor import BadCursor, decode_cursor, keyset_page
from environments.permissions import environment_for, visible_operations, visible_version


@login_required
@never_cache
@require_GET
def environment_history(request, slug):
    environment = environment_for(request.user, slug)
    return _history_page(request, environment.operations.all(), environment=environment)


@login_required
@never_cache
@require_GET
def all_history(request):
    return _history_page(request, visible_operations(request.user), environment=None)


@login_required
@never_cache
@require_GET
def environment_history_csv(request, slug):
    environment = environment_for(request.user, slug)
    return _history_csv(request, environment.operations.all(), environment=environment)


@login_required
@never_cache
@require_GET
def all_history_csv(request):
    return _history_csv(request, visible_operations(request.user), environment=None)


@login_required
@never_cache
@require_GET
def operation_detail(request, slug, activity_id):
    environment = environment_for(request.user, slug)
    operation = get_object_or_404(
        environment.operations.select_related(
            "service",
            "requested_by__service_account",
            "failed_operation",
            "firewall_rule__requested_by",
            "firewall_rule__ended_by",
            "database_account__requested_by",
            "database_account__ended_by",
        ),
        activity_id=activity_id,
    )
    context = {
        "environment": environment,
        "operation": operation,
        "log_lines": list(operation.log_lines.all()),
        "time_zone": timezone.get_current_timezone_name(),
    }
    if not request.htmx:
        return render(request, "environments/operation_detail.html", context)
    # The page's poll: the operation as it stands, until it has ended (286 stops htmx
    # polling, after it swaps in this last answer).
    response = render(request, "environments/operation_detail.html#operation", context)
    if not operation.is_active:
        response.status_code = HttpResponseStopPolling.status_code
    return response


# --- helpers ------------------------------------------------------------------------


def _history_filters(request, environment):
    # An environment's own history shows everything; across environments, the Maintain
    # operations unless asked for more.
    return HistoryFilterForm(request.GET, default_type="all" if environment else "maintain")


def _history_page(request, queryset, *, environment):
    """The page is kept in the cache under the version of what it shows: the
    environment's revision, or across environments permissions.visible_version."""
    form = _history_filters(request, environment)
    history = History(request, queryset, form, environment)
    context = {"environment": environment, "form": form, "history": history}
    template = "environments/history.html"
    if not form.is_valid():
        return render(request, template, context, status=400)
    try:
        history.cursor = {
            key: decode_cursor(request.GET[key])
            for key in ("before", "after")
            if request.GET.get(key)
        }
    except BadCursor:
        context["cursor_error"] = "That page link is not valid; showing the newest entries."
        return render(request, template, context, status=400)
    query = sorted(request.GET.lists())
    if environment is None:
        key = viewer_key(request, "history", visible_version(request.user), query)
    else:
        key = shared_key("history", environment.pk, environment.revision, query)
    context["history_key"] = key
    return render(request, template, context)


class History:
    """One page of history, read only if the template shows it (not when the page
    comes from the cache)."""

    def __init__(self, request, queryset, form, environment):
        self.user = request.user
        self.queryset = queryset
        self.form = form
        self.environment = environment
        self.show_environment = environment is None
        self.cursor = {}
        filters = request.GET.copy()
        for key in ("before", "after", "bom"):
            filters.pop(key, None)
        self.query = filters.urlencode()
        #: The filters as (name, value) pairs, for the export's form to send on.
        self.filters = [(key, value) for key, values in filters.lists() for value in values]

    @cached_property
    def page(self):
        queryset = self.form.filter(self.queryset)
        # The columns a row shows: never the driver log or the error, which can be long.
        queryset = queryset.select_related(
            "environment", "service", "requested_by__service_account"
        )
        return keyset_page(queryset.only(*ROW_FIELDS), **self.cursor)

    @cached_property
    def requesters(self):
        """The names the Requested by filter offers: the people of the viewer's projects."""
        users = get_user_model().objects.filter(is_active=True)
        if self.environment is not None:
            users = users.filter(project_memberships__project_id=self.environment.project_id)
        elif not self.user.is_superuser:
            projects = self.user.project_memberships.values("project_id")
            users = users.filter(project_memberships__project_id__in=projects)
        return users.order_by("username").values_list("username", flat=True).distinct()[:200]


#: What a history row reads.
ROW_FIELDS = [
    "activity_id",
    "environment__slug",
    "environment__name",
    "kind",
    "action",
    "target",
    "service__kind",
    "requested_by__username",
    "requested_by__service_account__created_at",
    "via",
    "reason",
    "started_at",
    "finished_at",
    "outcome",
    "status_before",
    "status_after",
]


def _history_csv(request, queryset, *, environment):
    """The CSV of what the page shows, its times in the viewer's time zone."""
    form = _history_filters(request, environment)
    if not form.is_valid():
        history = History(request, queryset, form, environment)
        context = {"environment": environment, "form": form, "history": history}
        return render(request, "environments/history.html", context, status=400)
    name = f"history-{environment.slug}" if environment else "history"
    return history_csv.response(
        form.filter(queryset),
        timezone.get_current_timezone(),
        bom=bool(request.GET.get("bom")),
        name=name,
    )
