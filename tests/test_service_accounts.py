"""Service accounts: made in Django admin, never signed in to the pages, holding roles
like anyone, and acting through tokens that a project owner of all their projects (or a
superuser) makes and rotates through the API; the history names them as such."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from environments import tokens
from environments.models import (
    ApiToken,
    EnvironmentRole,
    EnvironmentRoleKind,
    Operation,
    OperationKind,
    Outcome,
    ProjectMembership,
    ProjectRole,
    ServiceAccount,
)
from lcs_portal.auth import LocalPasswordBackend
from tests.api_clients import API, api_client, token_for
from tests.cli_live import idle, live_portal, portal_env, run_portal
from tests.conftest import PASSWORD, make_environment
from tests.live import request, wait_for

SA = "nightly-restarts"


def make_token(client, **body):
    return client.post(
        f"{API}/tokens",
        {"name": "ci", "scope": "maintain", **body},
        content_type="application/json",
    )


# --- Made in the admin; never signed in to the pages -------------------------------------


def test_an_admin_makes_a_service_account_without_a_password(client, superuser):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:environments_serviceaccount_add"),
        {"username": SA, "description": "The nightly restart pipeline"},
    )
    account = ServiceAccount.objects.get()
    # On to its user page, where its roles are given.
    assert response["Location"] == reverse("admin:auth_user_change", args=[account.pk])
    assert account.user.username == SA and not account.user.has_usable_password()
    assert str(account) == f"{SA} (service account)"
    page = client.get(reverse("admin:environments_serviceaccount_change", args=[account.pk]))
    assert "Assign roles on its user page" in page.content.decode()


def test_a_service_account_cannot_sign_in_with_a_password(client, service_account):
    service_account.set_password(PASSWORD)  # even when someone gave it one
    service_account.save()
    response = client.post(reverse("login"), {"username": SA, "password": PASSWORD})
    assert response.status_code == 200  # the form again
    assert "_auth_user_id" not in client.session
    assert client.get("/environments/").status_code == 302


def test_a_session_of_a_service_account_lets_nothing_through(client, service_account, environment):
    """However a session was made (here by force), it is ended on its next request: the
    pages, the environment's sign-in gate and forward auth see nobody."""
    EnvironmentRole.objects.create(
        user=service_account, environment=environment, role=EnvironmentRoleKind.SYSTEM_ADMINISTRATOR
    )
    client.force_login(service_account, backend="lcs_portal.auth.LocalPasswordBackend")

    assert client.get("/environments/")["Location"].startswith(reverse("login"))
    assert client.get(reverse("environment-auth", args=[environment.slug])).status_code == 401
    gate = client.get(reverse("environment-sign-in", args=[environment.slug]))
    assert gate.status_code == 302 and gate["Location"].startswith(reverse("login"))


def test_single_sign_on_sessions_never_load_a_service_account(service_account, manager):
    from environments.sso.backend import SingleSignOnBackend

    for backend in (SingleSignOnBackend(), LocalPasswordBackend()):
        assert backend.get_user(service_account.pk) is None
        assert backend.get_user(manager.pk) == manager


# --- Tokens through the API: who may make them for it ----------------------------------


@pytest.mark.parametrize("who", ["member", "manager", "outsider", "maint"])
def test_no_one_but_an_owner_of_its_projects_may_make_its_tokens(service_account, request, who):
    client = api_client(request.getfixturevalue(who))
    response = make_token(client, user=SA)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert (
        "You may make tokens for yourself only, not for nightly-restarts"
        in response.json()["detail"]
    )
    assert not ApiToken.objects.filter(user=service_account).exists()


def test_an_owner_of_its_projects_makes_its_token_shown_once(service_account, owner):
    response = make_token(api_client(owner), user=SA, scope="read")
    assert response.status_code == 201, response.content
    answer = response.json()
    token = ApiToken.objects.get(user=service_account)
    assert answer["user"] == SA and answer["id"] == token.pk and answer["scope"] == "read"
    assert tokens.authenticate(answer["secret"]) == token
    assert answer["secret"] not in json.dumps(list(ApiToken.objects.values()), default=str)


def test_a_superuser_makes_tokens_for_anyone(superuser, manager):
    response = make_token(api_client(superuser), user=manager.username)
    assert response.status_code == 201
    assert ApiToken.objects.get(pk=response.json()["id"]).user == manager


def test_an_owner_makes_no_token_for_a_person_and_learns_nothing_of_who_exists(owner, manager):
    person = make_token(api_client(owner), user=manager.username)
    nobody = make_token(api_client(owner), user="no-such-user")
    assert person.status_code == nobody.status_code == 403
    assert person.json()["detail"].replace(manager.username, "X") == nobody.json()[
        "detail"
    ].replace("no-such-user", "X")


def test_an_owner_makes_no_token_for_a_service_account_with_a_role_elsewhere(
    service_account, owner, other_project
):
    ProjectMembership.objects.create(
        user=service_account, project=other_project, role=ProjectRole.MEMBER
    )
    assert make_token(api_client(owner), user=SA).status_code == 403


def test_an_owner_makes_no_token_for_an_environment_role_elsewhere(
    service_account, owner, other_project
):
    elsewhere = make_environment(other_project)
    EnvironmentRole.objects.create(
        user=service_account, environment=elsewhere, role=EnvironmentRoleKind.USER
    )
    assert make_token(api_client(owner), user=SA).status_code == 403


def test_an_owner_makes_no_token_for_a_service_account_without_roles(service_account, owner):
    ProjectMembership.objects.filter(user=service_account).delete()
    assert make_token(api_client(owner), user=SA).status_code == 403


@pytest.mark.parametrize("who", ["superuser", "owner", "service_account"])
def test_a_token_makes_no_token_for_its_own_user(request, who):
    """A leaked token that made itself a sibling would outlive its revocation."""
    user = request.getfixturevalue(who)
    response = make_token(api_client(user), user=user.username)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("A token makes no token for its own user")
    assert ApiToken.objects.filter(user=user).count() == 1  # the one it was sent with


def test_a_read_token_makes_no_token(owner, service_account):
    from environments.models import TokenScope

    response = make_token(api_client(owner, TokenScope.READ), user=SA)
    assert response.json()["type"] == "urn:lcs-portal:problem:insufficient_scope"


def test_a_bad_expiry_is_400_and_makes_nothing(owner, service_account):
    response = make_token(api_client(owner), user=SA, expires_at="2001-01-01T00:00:00Z")
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["expires_at"]
    assert not ApiToken.objects.filter(user=service_account).exists()


def test_a_replayed_key_never_repeats_the_secret(owner, service_account):
    client = api_client(owner)
    client.defaults["HTTP_IDEMPOTENCY_KEY"] = "rotate-2026-12-07"
    first = make_token(client, user=SA)
    again = make_token(client, user=SA)

    assert first.status_code == again.status_code == 201
    assert first.json()["secret"].startswith("lcsp_")
    assert again.json()["secret"] is None and "Shown once" in again.json()["secret_note"]
    assert again["Idempotent-Replayed"] == "true"
    assert first.json()["secret"] not in again.content.decode()
    assert ApiToken.objects.filter(user=service_account).count() == 1


# --- Rotation -----------------------------------------------------------------------------


def bearer(secret):
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_a_pipeline_rotates_its_own_token(service_account):
    old, secret = token_for(service_account, name="ci")
    client = bearer(secret)
    token_id = client.get(f"{API}/me").json()["token"]["id"]

    response = client.post(f"{API}/tokens/{token_id}/rotate")

    assert response.status_code == 201, response.content
    new = response.json()
    assert (new["name"], new["scope"], new["user"]) == ("ci", "maintain", SA)
    assert client.get(f"{API}/me").status_code == 401  # the old one stopped
    assert bearer(new["secret"]).get(f"{API}/me").json()["token"]["id"] == new["id"] != old.pk
    # Once revoked, it is never rotated again: one successor only.
    again = bearer(new["secret"]).post(f"{API}/tokens/{old.pk}/rotate")
    assert again.status_code == 409


def test_an_owner_rotates_its_token_and_others_cannot_tell_it_exists(
    service_account, owner, manager
):
    token, _ = token_for(service_account, name="ci")
    refused = api_client(manager).post(f"{API}/tokens/{token.pk}/rotate")
    missing = api_client(manager).post(f"{API}/tokens/999999/rotate")
    assert refused.status_code == missing.status_code == 404
    assert api_client(owner).post(f"{API}/tokens/{token.pk}/rotate").status_code == 201


# --- History --------------------------------------------------------------------------------


def test_history_names_the_service_account_and_its_token(
    service_account, owner, environment, django_assert_max_num_queries
):
    secret = make_token(api_client(owner), user=SA).json()["secret"]
    started = bearer(secret).post(
        f"{API}/environments/{environment.slug}/operations",
        {"action": "restart_service", "service": "aos", "reason": "nightly"},
        content_type="application/json",
    )
    assert started.status_code == 202
    assert started.json()["requested_by"] == f"{SA} (service account)"
    assert started.json()["via"] == "API (ci)"
    client = Client()
    client.force_login(owner)
    page = client.get(reverse("environment-history", args=[environment.slug])).content.decode()
    assert f'{SA} (service account) <span class="hint">via API (ci)</span>' in page


# --- From the admin to a `portal` run -------------------------------------------------------


@pytest.fixture
def live(transactional_db, tmp_path):
    from tests.conftest import subprocess_env

    env = subprocess_env(SIMULATED_DRIVER_DELAY=0.5, PORTAL_DRIVERS_FILE=tmp_path / "none.json")
    with live_portal(tmp_path, env) as url:
        yield url
        assert wait_for(idle, timeout=30)


def test_from_the_admin_to_a_cli_restart(live, tmp_path, superuser, owner, project, environment):
    # An admin makes the service account and makes it an Environment manager.
    admin = Client()
    admin.force_login(superuser)
    admin.post(reverse("admin:environments_serviceaccount_add"), {"username": SA})
    account = get_user_model().objects.get(username=SA)
    response = admin.post(
        reverse("admin:environments_projectmembership_add"),
        {"user": account.pk, "project": project.pk, "role": ProjectRole.MANAGER},
    )
    assert response.status_code == 302, response.content.decode()[:3000]

    # The project owner makes its token through the API, over HTTP.
    _, owners = token_for(owner, name="owner's laptop")
    port = int(live.rsplit(":", 1)[1])
    made = request(
        port,
        f"{API}/tokens",
        method="POST",
        headers={"Authorization": f"Bearer {owners}", "Content-Type": "application/json"},
        body=json.dumps({"user": SA, "name": "ci", "scope": "maintain"}),
    )
    assert made.status == 201, made.body
    secret = json.loads(made.body)["secret"]

    # The pipeline runs `portal` with it.
    env = portal_env(PORTAL_URL=live, PORTAL_TOKEN=secret, PORTAL_CONFIG=tmp_path / "c.json")
    code, out, err = run_portal("whoami", env=env)
    assert code == 0 and f"{SA} (service account)" in out, out + err
    code, out, err = run_portal(
        "restart", environment.slug, "aos", "--reason", "nightly", "--wait", env=env
    )
    assert code == 0, out + err

    operation = Operation.objects.get(kind=OperationKind.RESTART_SERVICE)
    assert operation.outcome == Outcome.SUCCEEDED and operation.requested_by == account
    row = f"{operation.requester_name} via {operation.via}"
    assert row == "nightly-restarts (service account) via API (ci)"
    code, out, err = run_portal("history", environment.slug, "--json", env=env)
    assert json.loads(out)[0]["requested_by"] == "nightly-restarts (service account)"
