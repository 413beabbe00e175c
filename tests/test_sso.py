"""Single sign-on against a real OpenID provider (tests/oidc/provider.mjs): users matched
on issuer and sub, roles from the groups at every sign-in, and every check of the flow
(state, nonce, the ID token's signature and expiry) holding."""

import time
from urllib.parse import urlsplit

import pytest
from authlib.integrations.requests_client import OAuth2Session
from django.contrib.auth import get_user_model
from joserfc import jwt

from environments import operations
from environments.models import (
    AccessEnd,
    AccessLevel,
    DatabaseAccount,
    EnvironmentRole,
    EnvironmentRoleKind,
    ExternalIdentity,
    GroupRole,
    Operation,
    OperationKind,
    ProjectMembership,
    ProjectRole,
    RoleSource,
)
from tests.conftest import PASSWORD
from tests.oidc_provider import (
    BASE,
    free_port,
    oidc_accounts,  # noqa: F401 (a fixture)
    sign_in_with_provider,
    through_provider,
    use_provider,
)


@pytest.fixture
def provider(db, settings, oidc_server, oidc_accounts):  # noqa: F811
    oidc_server.set_accounts(oidc_accounts)
    use_provider(settings, oidc_server)
    return oidc_server


@pytest.fixture
def managers_group(project):
    return GroupRole.objects.create(
        group="portal-managers", project=project, project_role=ProjectRole.MANAGER
    )


def test_first_sign_in_makes_a_user_of_issuer_and_sub_never_matched_on_email(
    client, provider, owner, managers_group
):
    # The provider's alice has the e-mail and the user name of the portal's alice (owner).
    owner.email = "alice@example.com"
    owner.save()
    response = sign_in_with_provider(client)
    assert response.status_code == 302 and response["Location"] == "/environments/"
    identity = ExternalIdentity.objects.get(issuer=provider.issuer, subject="alice")
    assert identity.user != owner
    assert identity.user.username == "alice-2" and not identity.user.has_usable_password()
    assert client.get("/environments/").context["user"] == identity.user
    # The second sign-in finds the same user.
    client.logout()
    sign_in_with_provider(client)
    assert get_user_model().objects.filter(external_identities__isnull=False).count() == 1


def test_a_group_gives_its_project_role_and_losing_it_takes_the_role_away(
    client, provider, project, environment, managers_group
):
    sign_in_with_provider(client)
    user = ExternalIdentity.objects.get().user
    membership = ProjectMembership.objects.get(user=user, project=project)
    assert (membership.role, membership.source) == (ProjectRole.MANAGER, RoleSource.PROVIDER)
    requested = operations.request_access(environment, user, level=AccessLevel.READ, reason="x")
    operations.complete_operation(requested.pk)
    account = DatabaseAccount.objects.get(requested_by=user)
    provider.set_accounts({"alice": {"preferred_username": "alice", "groups": []}})
    client.logout()
    sign_in_with_provider(client)
    assert not ProjectMembership.objects.filter(user=user).exists()
    account.refresh_from_db()
    assert account.end_reason == AccessEnd.ROLE_REMOVED


def test_environment_roles_from_a_group_are_in_the_history_by_the_provider(
    client, provider, project, environment
):
    GroupRole.objects.create(
        group="portal-managers",
        project=project,
        environment_role=EnvironmentRoleKind.MAINTENANCE_MODE_USER,
    )
    sign_in_with_provider(client)
    role = EnvironmentRole.objects.get(environment=environment)
    assert (role.role, role.source) == (EnvironmentRoleKind.MAINTENANCE_MODE_USER, "provider")
    given = Operation.objects.get(kind=OperationKind.GRANT_ROLE)
    assert (given.requested_by, given.via) == (None, "Test IdP")
    provider.set_accounts({"alice": {"groups": ["elsewhere"]}})
    client.logout()
    sign_in_with_provider(client)
    assert not EnvironmentRole.objects.filter(environment=environment).exists()
    removed = Operation.objects.get(kind=OperationKind.REMOVE_ROLE)
    assert removed.via == "Test IdP" and removed.target.endswith("Maintenance mode user")


def test_the_provider_never_changes_or_removes_a_role_an_admin_gave(
    client, provider, project, managers_group
):
    user = get_user_model().objects.create_user("alice-sso")
    ExternalIdentity.objects.create(user=user, issuer=provider.issuer, subject="alice")
    ProjectMembership.objects.create(user=user, project=project, role=ProjectRole.OWNER)
    sign_in_with_provider(client)
    assert ProjectMembership.objects.get(user=user).role == ProjectRole.OWNER
    provider.set_accounts({"alice": {"groups": []}})
    client.logout()
    sign_in_with_provider(client)
    assert ProjectMembership.objects.get(user=user).source == RoleSource.ADMIN


def test_superuser_from_a_group_only_when_the_setting_names_it(client, provider, settings):
    provider.set_accounts({"alice": {"groups": ["portal-admins"]}})
    sign_in_with_provider(client)
    assert not ExternalIdentity.objects.get().user.is_superuser
    settings.OIDC_SUPERUSER_GROUP = "portal-admins"
    client.logout()
    sign_in_with_provider(client)
    assert ExternalIdentity.objects.get().user.is_superuser


def test_a_provider_that_is_down_says_so_and_break_glass_passwords_still_work(
    client, settings, superuser, member
):
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"
    settings.OIDC_CLIENT_ID = "portal"
    settings.OIDC_PROVIDER_NAME = "Contoso ID"
    settings.LOCAL_PASSWORDS_FOR_ALL = False
    page = client.get("/accounts/login/")
    assert b"Sign in with Contoso ID" in page.content
    response = client.get("/accounts/oidc/sign-in/")
    assert response.status_code == 503
    assert "Contoso ID did not answer" in response.context["sso_error"]
    refused = client.post("/accounts/login/", {"username": member.username, "password": PASSWORD})
    assert refused.status_code == 200 and not refused.context["user"].is_authenticated
    signed_in = client.post(
        "/accounts/login/", {"username": superuser.username, "password": PASSWORD}
    )
    assert signed_in.status_code == 302


def test_a_callback_with_a_state_this_session_did_not_send_is_refused(client, provider):
    response = client.get("/accounts/oidc/sign-in/")
    callback = through_provider(response["Location"], login="alice", redirect_base=BASE)
    parts = urlsplit(callback)
    forged = parts.query.replace("state=", "state=x")
    response = client.get(f"{parts.path}?{forged}")
    assert response.status_code == 400
    assert "did not start here" in response.context["sso_error"]
    assert not ExternalIdentity.objects.exists()


def _with_id_token(monkeypatch, change):
    """The provider's real token answer, its ID token changed on the way in."""
    fetch_token = OAuth2Session.fetch_token

    def changed(self, *args, **kwargs):
        token = fetch_token(self, *args, **kwargs)
        token["id_token"] = change(token["id_token"])
        return token

    monkeypatch.setattr(OAuth2Session, "fetch_token", changed)


def _resigned(provider, **claims):
    def change(id_token):
        original = jwt.decode(id_token, provider.key)
        return jwt.encode(original.header, {**original.claims, **claims}, provider.key)

    return change


@pytest.mark.parametrize(
    "name",
    ["tampered", "expired", "another nonce", "another audience"],
)
def test_an_id_token_that_is_not_valid_here_is_refused(client, provider, monkeypatch, name):
    changes = {
        # One character of the signature changed.
        "tampered": lambda token: token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"),
        "expired": _resigned(provider, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        "another nonce": _resigned(provider, nonce="not-this-sign-ins"),
        "another audience": _resigned(provider, aud="someone-else"),
    }
    _with_id_token(monkeypatch, changes[name])
    response = sign_in_with_provider(client)
    assert response.status_code == 400
    assert "ID token that is not valid" in response.context["sso_error"]
    assert not ExternalIdentity.objects.exists()
