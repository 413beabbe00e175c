"""Just-in-time access: firewall rules (Enable access) and database accounts (Request
access), made and ended through environments.operations with the pages' forms.

A database account's password is in the answer that creates it, and nowhere else in
the API."""

import ninja
from django.http import HttpResponse
from ninja import Router

from environments import operations
from environments.api.auth import maintainer, of_an_environment, via
from environments.api.problems import FormInvalid
from environments.api.schemas import (
    DatabaseAccountEndedOut,
    DatabaseAccountIn,
    DatabaseAccountStartedOut,
    FirewallRuleIn,
    FirewallRuleStartedOut,
    answers,
    api_url,
    latest_operation,
)
from environments.models import DatabaseAccount, FirewallRule, OperationKind
from environments.permissions import MAINTAIN, environment_for
from environments.refusals import OperationRefused

router = Router(tags=["Database access"])


@router.post(
    "/environments/{slug}/firewall-rules",
    response=answers(202, FirewallRuleStartedOut, 400, 403, 404, 409),
    url_name="firewall_rules",
)
def enable_access(request, slug: str, payload: FirewallRuleIn, response: HttpResponse):
    """Enable access: a firewall rule for an IP address or a small range, applied in the
    background (poll the operation), removed when it expires."""
    user = maintainer(request)
    environment = environment_for(user, slug, MAINTAIN)
    operation, form = operations.start_from_input(
        OperationKind.ENABLE_ACCESS, environment, user, _form_data(payload), via=via(request)
    )
    if operation is None:
        raise FormInvalid(form)
    response["Location"] = api_url("operation", operation.activity_id)
    return ninja.Status(202, {"operation": operation, "firewall_rule": operation.grant})


@router.delete(
    "/firewall-rules/{rule_id}",
    response=answers(202, FirewallRuleStartedOut, 403, 404, 409),
    url_name="firewall_rule",
)
def remove_access(request, rule_id: int, response: HttpResponse):
    """Remove a firewall rule before it expires."""
    user = maintainer(request)
    rule = of_an_environment(
        user,
        FirewallRule.objects.select_related("requested_by"),
        rule_id,
        "firewall rule",
        MAINTAIN,
    )
    _end(operations.remove_access, rule, user, request, "firewall rule")
    operation = _removal(rule, OperationKind.REMOVE_ACCESS, response)
    return ninja.Status(202, {"operation": operation, "firewall_rule": rule})


@router.post(
    "/environments/{slug}/database-accounts",
    response=answers(202, DatabaseAccountStartedOut, 400, 403, 404, 409),
    url_name="database_accounts",
)
def request_access(request, slug: str, payload: DatabaseAccountIn, response: HttpResponse):
    """Request access: a database account for the token's user, Read or Read-write.
    The password is in this answer only: keep it now. The account works once its
    operation has succeeded."""
    user = maintainer(request)
    environment = environment_for(user, slug, MAINTAIN)
    operation, form = operations.start_from_input(
        OperationKind.REQUEST_ACCESS, environment, user, _form_data(payload), via=via(request)
    )
    if operation is None:
        raise FormInvalid(form)
    account = operation.grant
    # Shown in this answer only, never again.
    account.password = operations.account_password(account, user)
    response["Location"] = api_url("operation", operation.activity_id)
    return ninja.Status(202, {"operation": operation, "database_account": account})


@router.delete(
    "/database-accounts/{account_id}",
    response=answers(202, DatabaseAccountEndedOut, 403, 404, 409),
    url_name="database_account",
)
def revoke_access(request, account_id: int, response: HttpResponse):
    """Revoke a database account before it expires: its sessions end and it is dropped."""
    user = maintainer(request)
    account = of_an_environment(
        user,
        DatabaseAccount.objects.select_related("requested_by"),
        account_id,
        "database account",
        MAINTAIN,
    )
    _end(operations.revoke_access, account, user, request, "database account")
    operation = _removal(account, OperationKind.REVOKE_ACCESS, response)
    return ninja.Status(202, {"operation": operation, "database_account": account})


def _form_data(payload):
    data = payload.model_dump(exclude_none=True)
    return {key: str(value) for key, value in data.items()}


def _end(end, grant, user, request, what):
    if not end(grant, user, via=via(request)):
        raise OperationRefused(f"This {what} has already ended.", OperationRefused.NOT_ALLOWED)
    grant.refresh_from_db()


def _removal(grant, kind, response):
    """The operation that removes the grant, when one was queued (a grant still being
    applied is removed once its apply settles)."""
    operation = latest_operation(grant)
    if operation is None or operation.kind != kind:
        return None
    response["Location"] = api_url("operation", operation.activity_id)
    return operation
