"""The refresh: the groups of single sign-on users who do not sign in again.

Sign-in applies a user's groups (roles.py); someone who stays signed in, or holds a grant
or an API token, may not sign in for days. The refresh (``manage.py sync_identity``,
once, or with ``--loop`` beside the watchdog, never inside it) covers every provider
user with a live portal session, an active grant or a usable API token:

- with the refresh token kept at sign-in (offline_access), it asks the provider's token
  endpoint for a new ID token and applies its groups exactly as a sign-in does;
- without one, it ends their sessions, grants and tokens once their groups were last
  read longer ago than OIDC_GROUPS_MAX_AGE_HOURS;
- a user the provider no longer knows (``invalid_grant``) is deactivated, which ends
  every grant and token (operations.receivers);
- a provider that refuses the refresh otherwise, sends an ID token that is not valid or
  leaves the groups out (Entra ID's overage) has not confirmed the groups: as without a
  refresh token, nothing changes until they were read longer ago than the maximum;
- a provider that does not answer changes nothing: the refresh says so, and tries again
  next time.

What it can and cannot see at Entra ID and Keycloak: docs/sso.md.
"""

import logging
from datetime import timedelta
from importlib import import_module

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import OAuthError
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.db import transaction
from django.utils import timezone
from joserfc.errors import JoseError

from environments import crypto
from environments.models import (
    AccessEnd,
    ApiToken,
    DatabaseAccount,
    ExternalIdentity,
    FirewallRule,
    SignInSession,
)
from environments.operations import end_grant
from environments.sso.client import oidc_client
from environments.sso.roles import apply_identity_groups, groups_from_claims

log = logging.getLogger(__name__)


class ProviderDown(Exception):
    """The provider did not answer (or answered with a server error)."""


def sync_identities(now=None):
    """Refresh every covered provider user; returns one line per user it acted on or
    could not, for the command's output (each also logged). Once the provider has not
    answered, the run asks it nothing more: every call may take OIDC_TIMEOUT_SECONDS."""
    now = now or timezone.now()
    report = []
    down = None
    holders = _holders()
    identities = ExternalIdentity.objects.select_related("user").filter(user__is_active=True)
    for identity in identities.order_by("pk"):
        sessions = _live_sessions(identity)
        if not sessions and identity.user_id not in holders:
            continue  # nothing of theirs outlives their groups
        refresh_token = crypto.unseal(identity.refresh_token_sealed, crypto.REFRESH_TOKEN)
        if not (refresh_token and identity.issuer == settings.OIDC_ISSUER):
            line = _end_if_unconfirmed(identity, now, "no refresh token")
        elif down is not None:
            line = _unanswered(identity, down)
        else:
            try:
                line = _refresh(identity, refresh_token, now)
            except ProviderDown as error:
                down = error
                line = _unanswered(identity, error)
        if line:
            log.warning("single sign-on refresh: %s", line)
            report.append(line)
    return report


def _unanswered(identity, error):
    return f"{identity.user}: unchanged, {settings.OIDC_PROVIDER_NAME} did not answer ({error})"


def _holders():
    """Ids of the users who hold an active grant or a usable API token."""
    users = set(ApiToken.objects.usable().values_list("user_id", flat=True))
    for model in (FirewallRule, DatabaseAccount):
        users.update(model.objects.filter(ended_at=None).values_list("requested_by_id", flat=True))
    return users


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


def _live_sessions(identity):
    """The identity's recorded sessions that are still signed in as its user; the records
    of the others (expired, signed out elsewhere) go."""
    store = _session_store()
    live, gone = [], []
    for record in identity.sign_in_sessions.all():
        data = store(session_key=record.session_key).load()
        (live if data.get(SESSION_KEY) == str(identity.user_id) else gone).append(record)
    SignInSession.objects.filter(pk__in=[record.pk for record in gone]).delete()
    return live


def _refresh(identity, refresh_token, now):
    name = settings.OIDC_PROVIDER_NAME
    client = oidc_client()
    try:
        token = client.fetch_access_token(grant_type="refresh_token", refresh_token=refresh_token)
        claims = client.parse_id_token(token, nonce=None)
    except OAuthError as error:
        if error.error == "invalid_grant":
            return _deactivate(identity, refresh_token, error.description or error.error)
        return _unconfirmed(identity, now, f"{name} refused the refresh: {error.error}")
    except (JoseError, AuthlibBaseError) as error:
        return _unconfirmed(identity, now, f"{name}'s refreshed ID token is not valid: {error!r}")
    except (requests.RequestException, ValueError) as error:
        raise ProviderDown(error) from error
    if token.get("refresh_token"):
        identity.refresh_token_sealed = crypto.seal(token["refresh_token"], crypto.REFRESH_TOKEN)
        identity.save(update_fields=["refresh_token_sealed"])
    if claims is None:
        return _unconfirmed(identity, now, f"{name} sent no ID token on refresh")
    if (claims.get("iss"), claims.get("sub")) != (identity.issuer, identity.subject):
        return _unconfirmed(identity, now, f"{name}'s refreshed ID token names someone else")
    groups = groups_from_claims(claims)
    if groups is None:
        # Not "no groups": the roles stay as they are until the groups can be read.
        return _unconfirmed(
            identity,
            now,
            f"{name} sent too many groups to list in the token (overage); send only the "
            "groups assigned to the application (docs/sso.md)",
        )
    before = sorted(identity.groups)
    apply_identity_groups(identity, groups, name, now)
    if sorted(groups) != before:
        return f"{identity.user}: groups now {', '.join(sorted(groups)) or 'none'}"
    return None


def _deactivate(identity, refresh_token, why):
    """The provider no longer knows them: deactivating ends every grant, API token and
    calendar address (operations.receivers), and here their sessions too. Unless they
    signed in meanwhile: the token refused was then an old one."""
    user = identity.user
    with transaction.atomic():
        kept = ExternalIdentity.objects.select_for_update().get(pk=identity.pk)
        if crypto.unseal(kept.refresh_token_sealed, crypto.REFRESH_TOKEN) != refresh_token:
            return f"{user}: unchanged, signed in again while the refresh ran"
        user.is_active = False
        user.save(update_fields=["is_active"])
        kept.refresh_token_sealed = ""
        kept.save(update_fields=["refresh_token_sealed"])
        _end_sessions(kept)
    return f"{user}: deactivated, {settings.OIDC_PROVIDER_NAME} no longer knows them ({why})"


def _unconfirmed(identity, now, why):
    """The provider answered but did not confirm the groups: as without a refresh token."""
    return _end_if_unconfirmed(identity, now, why) or f"{identity.user}: unchanged, {why}"


def _end_if_unconfirmed(identity, now, why):
    """Without groups confirmed, what rests on groups read too long ago ends: sessions,
    grants and API tokens. The user stays active: signing in again reads the groups and
    lets them work again (new grants and tokens are theirs to ask for)."""
    read_at = identity.groups_read_at or identity.last_sign_in_at or identity.created_at
    if read_at + timedelta(hours=settings.OIDC_GROUPS_MAX_AGE_HOURS) > now:
        return None
    user = identity.user
    _end_sessions(identity)
    # One environment's lock at a time (end_grant's own transaction), never several.
    for model in (FirewallRule, DatabaseAccount):
        for grant in model.objects.filter(requested_by=user, ended_at=None):
            end_grant(grant, None, AccessEnd.GROUPS_UNCONFIRMED, now=now)
    user.api_tokens.revoke()
    return (
        f"{user}: sessions, grants and API tokens ended ({why}; groups last read "
        f"{read_at:%Y-%m-%d %H:%M %Z})"
    )


def _end_sessions(identity):
    store = _session_store()
    for record in identity.sign_in_sessions.all():
        store().delete(record.session_key)
    identity.sign_in_sessions.all().delete()
