"""Single sign-on users who do not sign in again (environments/sso/sync.py), and an OIDC
session used as a password session is: all against the real OpenID provider of
tests/oidc (the session's one, tests/conftest.py oidc_server)."""

import socket
from datetime import timedelta
from io import StringIO

import httpx
import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from environments import crypto, operations
from environments.models import (
    AccessEnd,
    AccessLevel,
    DatabaseAccount,
    EnvironmentRoleKind,
    ExternalIdentity,
    GroupRole,
    Operation,
    OperationKind,
    ProjectMembership,
    ProjectRole,
    RoleSource,
    SignInSession,
    TokenScope,
)
from environments.sso.sync import sync_identities
from tests.api_clients import token_for
from tests.oidc_provider import (
    BASE,
    oidc_accounts,  # noqa: F401 (a fixture)
    sign_in_with_provider,
    through_provider,
    use_provider,
)


@pytest.fixture
def provider(db, settings, oidc_server, oidc_accounts):  # noqa: F811
    """The provider, asked for offline_access: the portal keeps a refresh token."""
    oidc_server.set_accounts(oidc_accounts)
    use_provider(settings, oidc_server, offline_access=True)
    return oidc_server


@pytest.fixture
def managers_group(project):
    return GroupRole.objects.create(
        group="portal-managers", project=project, project_role=ProjectRole.MANAGER
    )


def signed_in_with_a_grant(client, environment):
    """alice signs in through the provider and gets a database account; her user and it."""
    assert sign_in_with_provider(client).status_code == 302
    user = ExternalIdentity.objects.get().user
    requested = operations.request_access(environment, user, level=AccessLevel.READ, reason="x")
    operations.complete_operation(requested.pk)
    return user, DatabaseAccount.objects.get(requested_by=user)


def sync_identity():
    out = StringIO()
    call_command("sync_identity", stdout=out)
    return out.getvalue()


def signed_in(client):
    return client.get("/environments/").status_code == 200


def test_the_refresh_takes_away_a_role_whose_group_was_removed_and_ends_its_grant(
    client, provider, project, environment, managers_group
):
    user, account = signed_in_with_a_grant(client, environment)
    identity = ExternalIdentity.objects.get()
    assert crypto.unseal(identity.refresh_token_sealed, crypto.REFRESH_TOKEN)
    assert SignInSession.objects.filter(identity=identity).count() == 1
    assert sync_identity() == ""  # the same groups: nothing to say, nothing changed
    assert ProjectMembership.objects.filter(user=user).exists()

    provider.set_accounts({"alice": {"preferred_username": "alice", "groups": ["elsewhere"]}})
    assert "groups now elsewhere" in sync_identity()
    assert not ProjectMembership.objects.filter(user=user).exists()
    removed = Operation.objects.get(kind=OperationKind.REMOVE_PROJECT_ROLE)
    assert (removed.requested_by, removed.via) == (None, "Test IdP")
    account.refresh_from_db()
    assert account.end_reason == AccessEnd.ROLE_REMOVED
    revoke = Operation.objects.get(kind=OperationKind.REVOKE_ACCESS)
    assert "role no longer allows maintaining" in revoke.reason
    identity.refresh_from_db()
    assert identity.groups == ["elsewhere"]
    user.refresh_from_db()
    assert signed_in(client) and user.is_active


def test_a_user_the_provider_no_longer_knows_is_deactivated_with_grants_and_tokens_ended(
    client, provider, environment, managers_group
):
    user, account = signed_in_with_a_grant(client, environment)
    token, _ = token_for(user)
    provider.set_accounts({})  # alice left: the refresh gets invalid_grant
    assert "deactivated" in sync_identity()
    user.refresh_from_db()
    assert not user.is_active
    account.refresh_from_db()
    assert account.end_reason == AccessEnd.DEACTIVATED
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert not SignInSession.objects.exists() and not signed_in(client)


def test_a_refresh_the_provider_refuses_ends_everything_once_the_groups_are_too_old(
    client, provider, settings, environment, managers_group
):
    """invalid_client (an expired client secret, say): the groups are not confirmed, so
    having a refresh token keeps nothing longer than not having one."""
    user, account = signed_in_with_a_grant(client, environment)
    token, _ = token_for(user)
    read_at = ExternalIdentity.objects.get().groups_read_at
    settings.OIDC_CLIENT_SECRET = "expired"

    assert "unchanged, Test IdP refused the refresh: invalid_client" in sync_identity()
    assert signed_in(client) and token.is_usable

    too_old = read_at + timedelta(hours=settings.OIDC_GROUPS_MAX_AGE_HOURS, seconds=1)
    (line,) = sync_identities(now=too_old)
    assert "sessions, grants and API tokens ended (Test IdP refused the refresh" in line
    assert not signed_in(client)
    account.refresh_from_db()
    assert account.end_reason == AccessEnd.GROUPS_UNCONFIRMED
    token.refresh_from_db()
    assert token.revoked_at is not None
    user.refresh_from_db()
    assert user.is_active


def test_an_old_refresh_token_refused_after_a_new_sign_in_deactivates_no_one(
    client, provider, environment, managers_group
):
    from environments.sso import sync

    user, _ = signed_in_with_a_grant(client, environment)
    identity = ExternalIdentity.objects.get()
    # The refresh read this token; a sign-in then kept a newer one before it was refused.
    identity.refresh_token_sealed = crypto.seal("newer", crypto.REFRESH_TOKEN)
    identity.save()

    line = sync._deactivate(identity, "older", "invalid_grant")

    assert line == "alice: unchanged, signed in again while the refresh ran"
    user.refresh_from_db()
    assert user.is_active and signed_in(client)


def test_a_provider_that_does_not_answer_changes_nothing_and_is_reported(
    client, settings, project, environment
):
    """Down the slow way: it takes the connection and never answers, so the refresh
    gives up after OIDC_TIMEOUT_SECONDS (a refused connection is the quick way)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings.OIDC_ISSUER = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.OIDC_CLIENT_ID = "portal"
        settings.OIDC_PROVIDER_NAME = "Test IdP"
        settings.OIDC_TIMEOUT_SECONDS = 0.2
        user = get_user_model().objects.create_user("alice-sso")
        identity = ExternalIdentity.objects.create(
            user=user,
            issuer=settings.OIDC_ISSUER,
            subject="alice",
            groups=["portal-managers"],
            # Read long ago: without the refresh token, everything would end.
            groups_read_at=timezone.now() - timedelta(days=30),
            refresh_token_sealed=crypto.seal("a refresh token", crypto.REFRESH_TOKEN),
        )
        ProjectMembership.objects.create(
            user=user, project=project, role=ProjectRole.MANAGER, source=RoleSource.PROVIDER
        )
        client.force_login(user)
        SignInSession.objects.create(identity=identity, session_key=client.session.session_key)
        requested = operations.request_access(environment, user, level=AccessLevel.READ, reason="x")
        operations.complete_operation(requested.pk)

        assert "unchanged, Test IdP did not answer" in sync_identity()
    assert ProjectMembership.objects.filter(user=user, role=ProjectRole.MANAGER).exists()
    assert DatabaseAccount.objects.get(requested_by=user).ended_at is None
    user.refresh_from_db()
    assert user.is_active and signed_in(client) and SignInSession.objects.exists()


def test_without_a_refresh_token_sessions_grants_and_tokens_end_once_the_groups_are_too_old(
    client, provider, settings, environment, managers_group
):
    use_provider(settings, provider)  # no offline_access: no refresh token
    user, account = signed_in_with_a_grant(client, environment)
    token, _ = token_for(user)
    identity = ExternalIdentity.objects.get()
    assert identity.refresh_token_sealed == ""
    read_at = identity.groups_read_at
    assert sync_identity() == ""  # just read: nothing ends
    assert signed_in(client)

    too_old = read_at + timedelta(hours=settings.OIDC_GROUPS_MAX_AGE_HOURS, seconds=1)
    (line,) = sync_identities(now=too_old)
    assert "sessions, grants and API tokens ended (no refresh token" in line
    assert not signed_in(client) and not SignInSession.objects.exists()
    account.refresh_from_db()
    assert account.end_reason == AccessEnd.GROUPS_UNCONFIRMED
    revoke = Operation.objects.get(kind=OperationKind.REVOKE_ACCESS)
    assert "has not confirmed the requester's groups" in revoke.reason
    token.refresh_from_db()
    assert token.revoked_at is not None
    user.refresh_from_db()
    assert user.is_active and ProjectMembership.objects.filter(user=user).exists()
    # Signing in again reads the groups: back in.
    sign_in_with_provider(client)
    assert signed_in(client)


def test_signing_out_ends_the_portal_session_and_the_providers(client, provider):
    with httpx.Client(timeout=10) as browser:
        sign_in_with_provider(client, browser=browser)
        session_key = client.session.session_key
        assert SignInSession.objects.filter(session_key=session_key).exists()
        response = client.post("/accounts/logout/")
        end_session = response["Location"]
        assert end_session.startswith(f"{provider.issuer}/session/end?id_token_hint=")
        assert not SignInSession.objects.exists() and not signed_in(client)
        # At the provider: "Yes, sign me out", and back to the portal's sign-in page.
        back = through_provider(end_session, login="alice", redirect_base=BASE, browser=browser)
        assert back.startswith(f"{BASE}/accounts/login/")
        # The provider's session has ended too: signing in again asks for the password.
        start = client.get("/accounts/oidc/sign-in/")["Location"]
        page = browser.get(start, follow_redirects=True)
        assert 'name="login"' in page.text


def test_forward_auth_and_the_api_tokens_page_work_with_a_single_sign_on_session(
    client, provider, project, environment
):
    GroupRole.objects.create(
        group="portal-managers",
        project=project,
        environment_role=EnvironmentRoleKind.SYSTEM_ADMINISTRATOR,
    )
    sign_in_with_provider(client)
    auth = client.get(f"/environments/{environment.slug}/auth/")
    assert auth.status_code == 204
    assert auth["X-Portal-User"] == ExternalIdentity.objects.get().user.username
    assert "system_administrator" in auth["X-Portal-Roles"].lower().replace(" ", "_")
    made = client.post("/tokens/", {"name": "nightly", "scope": TokenScope.READ, "days": "30"})
    assert made.status_code == 200 and made.context["new_secret"]
    api = Client(headers={"Authorization": f"Bearer {made.context['new_secret']}"})
    me = api.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["user"]["username"] == auth["X-Portal-User"]
    assert me.json()["token"]["name"] == "nightly"


def test_provider_errors_never_count_as_failed_sign_ins_for_axes(client, provider, settings):
    """Cancelled at the provider (error=access_denied) and a state that does not match,
    more often than AXES_FAILURE_LIMIT: no failed attempt recorded, and signing in works."""
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        cancelled = sign_in_with_provider(client, cancel=True)
        assert cancelled.status_code == 400
        assert (
            "did not sign you in: End-User aborted interaction" in (cancelled.context["sso_error"])
        )
        forged = client.get("/accounts/oidc/callback/?code=x&state=not-this-sessions")
        assert forged.status_code == 400
    assert not AccessAttempt.objects.exists() and not ExternalIdentity.objects.exists()
    assert sign_in_with_provider(client).status_code == 302 and signed_in(client)


def test_groups_left_out_of_the_refreshed_token_overage_keep_the_roles_and_say_so(
    client, provider, environment, managers_group
):
    """Entra ID's overage: too many groups, so a pointer to Microsoft Graph instead of
    the groups claim. Not "no groups": nothing is taken away."""
    user, account = signed_in_with_a_grant(client, environment)
    graph = "https://graph.microsoft.com/v1.0/users/alice/getMemberObjects"
    provider.set_accounts(
        {
            "alice": {
                "_claim_names": {"groups": "src1"},
                "_claim_sources": {"src1": {"endpoint": graph}},
            }
        }
    )
    assert "too many groups" in sync_identity()
    assert ProjectMembership.objects.filter(user=user).exists()
    account.refresh_from_db()
    assert account.ended_at is None


def test_the_loop_runs_every_portal_oidc_sync_seconds_unless_told(settings):
    from environments.management.commands.sync_identity import Command

    settings.OIDC_SYNC_SECONDS = 120.0
    parser = Command().create_parser("manage.py", "sync_identity")
    assert parser.parse_args(["--loop"]).loop == 120.0
    assert parser.parse_args(["--loop", "30"]).loop == 30.0
    assert parser.parse_args([]).loop is None
