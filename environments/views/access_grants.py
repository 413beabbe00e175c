"""Ending just-in-time access early: Remove a firewall rule, Revoke a database account."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from environments import operations
from environments.access import MAINTAIN, get_environment_for_user
from environments.models import DatabaseAccount, FirewallRule
from environments.operations import OperationRefused
from environments.views.environments import refused_response, show_live


@login_required
@never_cache
@require_POST
def remove_rule(request, slug, pk):
    environment = get_environment_for_user(request, slug, MAINTAIN)
    rule = get_object_or_404(FirewallRule, environment=environment, pk=pk)
    return _end(request, environment, operations.remove_access, rule, "firewall rule")


@login_required
@never_cache
@require_POST
def revoke_account(request, slug, pk):
    environment = get_environment_for_user(request, slug, MAINTAIN)
    account = get_object_or_404(DatabaseAccount, environment=environment, pk=pk)
    return _end(request, environment, operations.revoke_access, account, "database account")


def _end(request, environment, end, grant, what):
    try:
        ended = end(grant, request.user)
    except OperationRefused as refused:
        return refused_response(request, environment, refused)
    if not ended:
        refused = OperationRefused(f"This {what} has already ended.", OperationRefused.NOT_ALLOWED)
        return refused_response(request, environment, refused)
    return show_live(request, environment)
