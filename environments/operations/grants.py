"""Just-in-time access: firewall rules and database accounts, from the request to their
end (removed, revoked, expired, or ended with the role that allowed them)."""

import ipaddress
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from environments import crypto
from environments.models import (
    END_GRANT_KINDS,
    AccessEnd,
    AccessLevel,
    DatabaseAccount,
    FirewallRule,
    OperationKind,
    Outcome,
)
from environments.operations.core import end_grant, queue_removal, start_operation, write_operation
from environments.permissions import can_maintain
from environments.refusals import OperationRefused

#: A removal that failed is tried again after this long, doubling each time up to the cap.
REMOVAL_RETRY_FIRST = timedelta(minutes=1)


REMOVAL_RETRY_CAP = timedelta(hours=1)


def access_lifetime(hours=None):
    """The lifetime asked for, or the default; never longer than the maximum."""
    hours = settings.ACCESS_DEFAULT_HOURS if hours is None else hours
    if not 0 < hours <= settings.ACCESS_MAX_HOURS:
        raise OperationRefused(
            f"Access lasts at most {settings.ACCESS_MAX_HOURS:g} hours (and more than 0).",
            OperationRefused.INVALID,
        )
    return timedelta(hours=hours)


def enable_access(environment, user, *, name, cidr, reason, lifetime=None, via=""):
    """Add a firewall rule for an IP address or range (``cidr`` already validated)."""
    lifetime = lifetime or access_lifetime()

    def start(locked, now):
        active = list(FirewallRule.objects.filter(environment=locked, ended_at__isnull=True))
        covering = _covering_rule(cidr, active)
        if covering is not None:
            raise OperationRefused(
                f"An active rule already allows {cidr} on {locked.name}: "
                f"{covering.name} ({covering.cidr}).",
                OperationRefused.INVALID,
            )
        if len(active) >= settings.ACCESS_MAX_ACTIVE_RULES:
            raise OperationRefused(
                f"{locked.name} already has {settings.ACCESS_MAX_ACTIVE_RULES} active "
                "firewall rules, the most allowed. Remove one first.",
                OperationRefused.INVALID,
            )
        rule = FirewallRule.objects.create(
            environment=locked,
            requested_by=user,
            name=name,
            cidr=cidr,
            reason=reason,
            created_at=now,
            expires_at=now + lifetime,
        )
        return write_operation(
            locked,
            user,
            OperationKind.ENABLE_ACCESS,
            now,
            reason=reason,
            firewall_rule=rule,
            target=rule.history_target,
            via=via,
        )

    return start_operation(environment, user, OperationKind.ENABLE_ACCESS, start)


def _covering_rule(cidr, rules):
    """The active rule whose range already contains ``cidr``, or None."""
    network = ipaddress.ip_network(cidr)
    for rule in rules:
        other = ipaddress.ip_network(rule.cidr)
        if other.version == network.version and network.subnet_of(other):
            return rule
    return None


def request_access(environment, user, *, level, reason, lifetime=None, via=""):
    """Create a database account for the requester, approved at once."""
    if level not in AccessLevel.values:
        raise OperationRefused("Choose Read or Read-write access.", OperationRefused.INVALID)
    lifetime = lifetime or access_lifetime()

    def start(locked, now):
        if not locked.database_server or not locked.database_name:
            raise OperationRefused(
                f"{locked.name} has no database configured for access.",
                OperationRefused.INELIGIBLE,
            )
        account = DatabaseAccount.objects.create(
            environment=locked,
            requested_by=user,
            level=level,
            reason=reason,
            username=_account_username(user),
            password_encrypted=crypto.seal(secrets.token_urlsafe(32)),
            created_at=now,
            expires_at=now + lifetime,
        )
        return write_operation(
            locked,
            user,
            OperationKind.REQUEST_ACCESS,
            now,
            reason=reason,
            database_account=account,
            target=account.history_target,
            via=via,
        )

    return start_operation(environment, user, OperationKind.REQUEST_ACCESS, start)


def remove_access(rule, user, via=""):
    """End a firewall rule early (Remove). False if it had ended already."""
    return end_grant(rule, user, AccessEnd.REMOVED, via=via)


def revoke_access(account, user, via=""):
    """End a database account early (Revoke). False if it had ended already."""
    return end_grant(account, user, AccessEnd.REVOKED, via=via)


def end_access_of(user, end_reason):
    """End the grants ``user`` holds where they may no longer maintain (everywhere once
    they are inactive): by the portal itself, with ``end_reason`` in the history."""
    ended = []
    for model in (FirewallRule, DatabaseAccount):
        grants = model.objects.filter(requested_by=user, ended_at__isnull=True)
        for grant in grants.select_related("environment"):
            if not can_maintain(user, grant.environment) and end_grant(grant, None, end_reason):
                ended.append(grant)
    return ended


def expire_access(now=None):
    """The sweeper: end every grant past its expiry, and retry removals that failed
    (backing off: a server that stays down gets a history row an hour, not a minute).

    Returns the grants it ended or retried."""
    now = now or timezone.now()
    handled = []
    for model in (FirewallRule, DatabaseAccount):
        for grant in model.objects.filter(ended_at__isnull=True, expires_at__lte=now):
            if end_grant(grant, None, AccessEnd.EXPIRED, now=now):
                handled.append(grant)
        # The backstop of operations.receivers: a role taken away where no signal is
        # sent (QuerySet.update) still ends the grants it allowed.
        held = model.objects.filter(ended_at__isnull=True, expires_at__gt=now)
        for grant in held.select_related("requested_by", "environment"):
            holder = grant.requested_by
            if not can_maintain(holder, grant.environment):
                why = AccessEnd.ROLE_REMOVED if holder.is_active else AccessEnd.DEACTIVATED
                if end_grant(grant, None, why, now=now):
                    handled.append(grant)
        # Ended, but not confirmed gone, and nothing running on it.
        stuck = model.objects.filter(ended_at__isnull=False, removed_at__isnull=True).exclude(
            operations__outcome__in=[Outcome.QUEUED, Outcome.RUNNING]
        )
        for grant in stuck.select_related("environment"):
            if _removal_due(grant, now):
                with transaction.atomic():
                    queue_removal(grant, None, now, retry=True)
                handled.append(grant)
    return handled


def account_password(account, user):
    """The account's password, for its requester only, while it lives."""
    if account.requested_by_id != user.pk or account.ended_at is not None:
        return None
    return crypto.unseal(account.password_encrypted)


def _account_username(user):
    name = re.sub(r"[^a-z0-9]+", "_", user.get_username().lower()).strip("_")[:40] or "user"
    return f"jit_{name}_{secrets.token_hex(4)}"


def _removal_due(grant, now):
    failures = grant.operations.filter(kind__in=END_GRANT_KINDS, outcome=Outcome.FAILED).order_by(
        "-finished_at"
    )
    count = failures.count()
    if not count:
        return True
    wait = min(REMOVAL_RETRY_FIRST * 2 ** (count - 1), REMOVAL_RETRY_CAP)
    return failures.first().finished_at + wait <= now
