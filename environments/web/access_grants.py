"""Just-in-time access after it is granted: a database account's credentials, for its
requester only, and ending access early (Remove a firewall rule, Revoke an account)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from environments import operations
from environments.drivers.database import server_address
from environments.models import DatabaseAccount, FirewallRule
from environments.permissions import MAINTAIN, environment_for
from environments.refusals import OperationRefused
from environments.web.details import live_context
from environments.web.maintain import refused_response, show_live


@login_required
@never_cache
@require_GET
def account_credentials(request, slug, pk):
    """The account's connection details and password: never kept by a browser or cache."""
    environment = environment_for(request.user, slug)
    account = get_object_or_404(DatabaseAccount, environment=environment, pk=pk)
    password = operations.account_password(account, request.user)
    if password is None or account.applied_at is None:
        raise Http404("No credentials to show.")
    context = {
        "environment": environment,
        "account": account,
        "password": password,
        "address": server_address(environment),
    }
    template = "environments/detail.html#credentials"
    if not request.htmx:
        template = "environments/credentials.html"
    return render(request, template, context)


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def remove_rule(request, slug, pk):
    environment = environment_for(request.user, slug, MAINTAIN)
    rule = get_object_or_404(FirewallRule, environment=environment, pk=pk)
    return _end(request, environment, operations.remove_access, rule, "firewall rule")


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def revoke_account(request, slug, pk):
    environment = environment_for(request.user, slug, MAINTAIN)
    account = get_object_or_404(DatabaseAccount, environment=environment, pk=pk)
    return _end(request, environment, operations.revoke_access, account, "database account")


def _end(request, environment, end, grant, what):
    """GET: the confirm step. POST: end the grant."""
    ended_already = OperationRefused(
        f"This {what} has already ended.", OperationRefused.NOT_ALLOWED
    )
    if request.method == "GET":
        if not grant.is_active:
            return refused_response(request, environment, ended_already)
        context = live_context(request, environment, end={"grant": grant, "what": what})
        template = "environments/detail.html#end" if request.htmx else "environments/detail.html"
        return render(request, template, context)
    try:
        ended = end(grant, request.user)
    except OperationRefused as refused:
        return refused_response(request, environment, refused)
    if not ended:
        return refused_response(request, environment, ended_already)
    return show_live(request, environment)
