"""Personal access tokens: shown once, stored as a hash, scoped, expiring, revocable,
dead with their user, counted per user per minute; the "API tokens" page and the admin."""

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from environments import tokens
from environments.models import ApiToken, Operation, TokenScope
from tests.api_clients import API, send, token_for
from tests.conftest import make_user


def bearer(secret):
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_a_token_is_shown_once_and_stored_as_a_hash(manager):
    token, secret = token_for(manager)
    assert re.fullmatch(r"lcsp_[A-Za-z0-9]{40}", secret)
    assert token.prefix == secret[:11]
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert secret not in str(stored)
    assert stored["digest"] == tokens.digest(secret)


def test_a_read_token_reads_but_acts_on_nothing(environment, manager):
    _, secret = token_for(manager, TokenScope.READ)
    client = bearer(secret)
    details = client.get(f"{API}/environments/{environment.slug}")
    assert details.status_code == 200
    assert details.json()["available_actions"] == []
    body = {"action": "enable_maintenance", "reason": "x"}
    response = send(client, "POST", f"{API}/environments/{environment.slug}/operations", body)
    assert response.status_code == 403
    assert response.json()["type"] == "urn:lcs-portal:problem:insufficient_scope"
    assert not Operation.objects.exists()


def test_an_expired_token_is_refused(environment, manager):
    token, secret = token_for(manager)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert bearer(secret).get(f"{API}/environments").status_code == 401


def test_a_revoked_token_stops_at_once(environment, manager):
    token, secret = token_for(manager)
    client = bearer(secret)
    assert client.get(f"{API}/environments").status_code == 200
    assert tokens.revoke(token)
    assert client.get(f"{API}/environments").status_code == 401
    assert not tokens.revoke(token)


def test_a_deactivated_users_tokens_stop_at_once(environment, manager):
    _, secret = token_for(manager)
    client = bearer(secret)
    assert client.get(f"{API}/environments").status_code == 200
    manager.is_active = False
    manager.save()
    response = client.get(f"{API}/environments")
    assert response.status_code == 401
    assert response.json()["status"] == 401


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer lcsp_", "Bearer lcsp_" + "a" * 40, "Token lcsp_x", "Basic dXNlcjpwYXNz"],
)
def test_anything_but_a_valid_bearer_token_is_401(environment, manager, header):
    token_for(manager)
    response = Client(headers={"Authorization": header}).get(f"{API}/environments")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_last_use_time_and_address_are_kept(environment, manager):
    token, secret = token_for(manager)
    before = timezone.now()
    bearer(secret).get(f"{API}/environments", REMOTE_ADDR="198.51.100.20")
    after = timezone.now()
    token.refresh_from_db()
    assert token.last_used_from == "198.51.100.20"
    assert before <= token.last_used_at <= after


def test_the_rate_limit_answers_429_with_retry_after(environment, manager, settings, monkeypatch):
    settings.API_RATE_LIMIT = 3
    # 42.8 s into a minute's window: 17.2 s left, which Retry-After rounds up.
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: 1_800_000_042.8))
    _, secret = token_for(manager)
    client = bearer(secret)
    answers = [client.get(f"{API}/environments") for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[-1]
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:lcs-portal:problem:rate_limited"
    assert refused["Retry-After"] == "18"


def test_a_users_tokens_share_one_rate_limit_and_another_users_is_their_own(
    environment, manager, owner, settings, monkeypatch
):
    settings.API_RATE_LIMIT = 3
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: 1_800_000_042.8))
    first, second = (bearer(token_for(manager, name=name)[1]) for name in ("one", "two"))
    answers = [client.get(f"{API}/environments") for client in (first, second, first, second)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    # A third token made now buys no more requests in this minute.
    assert bearer(token_for(manager, name="three")[1]).get(f"{API}/environments").status_code == 429
    assert bearer(token_for(owner)[1]).get(f"{API}/environments").status_code == 200


# --- The "API tokens" page ------------------------------------------------------------


@pytest.fixture
def signed_in(client, manager):
    client.force_login(manager)
    return client


def test_the_page_makes_a_token_and_shows_it_this_once(signed_in, manager, environment):
    response = signed_in.post(
        reverse("api-tokens"), {"name": "nightly", "scope": "maintain", "days": "30"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r"lcsp_[A-Za-z0-9]{40}", response.content.decode()).group()
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.scope) == (manager, "nightly", TokenScope.MAINTAIN)
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert bearer(secret).get(f"{API}/environments").status_code == 200
    again = signed_in.get(reverse("api-tokens")).content.decode()
    assert secret not in again
    assert token.prefix in again and "nightly" in again


def test_the_page_offers_at_most_a_year(signed_in, settings):
    response = signed_in.post(reverse("api-tokens"), {"name": "x", "scope": "read", "days": "400"})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_new_token_lasts_90_days_unless_chosen_otherwise(signed_in):
    page = signed_in.get(reverse("api-tokens")).content.decode()
    assert re.search(r'<option value="90" selected>', page)


def test_the_page_revokes_the_users_own_tokens_only(signed_in, manager, owner):
    mine, _ = token_for(manager, name="mine")
    theirs, _ = token_for(owner, name="theirs")
    assert signed_in.post(reverse("api-token-revoke", args=[mine.pk])).status_code == 302
    assert signed_in.post(reverse("api-token-revoke", args=[theirs.pk])).status_code == 404
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None and theirs.revoked_at is None
    page = signed_in.get(reverse("api-tokens")).content.decode()
    assert "Revoked" in page and "mine" in page and "theirs" not in page


def test_the_page_shows_last_use(signed_in, manager, environment):
    _, secret = token_for(manager, name="cron")
    bearer(secret).get(f"{API}/environments", REMOTE_ADDR="198.51.100.21")
    assert "from 198.51.100.21" in signed_in.get(reverse("api-tokens")).content.decode()


@pytest.mark.parametrize("role", ["owner", "manager", "member", "outsider", "superuser"])
def test_every_signed_in_user_has_the_page(client, users, role):
    client.force_login(users[role])
    assert client.get(reverse("api-tokens")).status_code == 200


def test_the_page_needs_a_sign_in(client):
    response = client.get(reverse("api-tokens"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_nav_links_to_the_page(signed_in):
    page = signed_in.get(reverse("environment-list")).content.decode()
    assert f'href="{reverse("api-tokens")}"' in page


# --- Django admin -------------------------------------------------------------------


def test_an_admin_makes_a_token_for_a_user_and_sees_it_once(client, superuser, manager):
    client.force_login(superuser)
    expires = timezone.localtime() + timedelta(days=10)
    response = client.post(
        reverse("admin:environments_apitoken_add"),
        {
            "user": manager.pk,
            "name": "deploy bot",
            "scope": "read",
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    secret = re.search(r"lcsp_[A-Za-z0-9]{40}", response.content.decode()).group()
    token = ApiToken.objects.get()
    assert token.user == manager and token.digest == tokens.digest(secret)
    change = client.get(reverse("admin:environments_apitoken_change", args=[token.pk]))
    assert secret not in change.content.decode()


def admin_token_form(user, scope="read", days=10):
    expires = timezone.localtime() + timedelta(days=days)
    return {
        "user": user.pk,
        "name": "deploy bot",
        "scope": scope,
        "expires_at_0": expires.strftime("%Y-%m-%d"),
        "expires_at_1": expires.strftime("%H:%M:%S"),
    }


@pytest.fixture
def token_clerk(db):
    """Staff, not a superuser, allowed exactly to add and view tokens and to view users."""
    clerk = make_user("clerk", is_staff=True)
    clerk.user_permissions.set(
        Permission.objects.filter(
            codename__in=["add_apitoken", "view_apitoken", "view_user"],
            content_type__app_label__in=["environments", "auth"],
        )
    )
    return clerk


@pytest.mark.parametrize("holder", ["superuser", "manager"])
def test_staff_who_may_add_tokens_may_not_make_one_for_someone_else(
    client, token_clerk, holder, request
):
    holder = request.getfixturevalue(holder)
    client.force_login(token_clerk)
    response = client.post(
        reverse("admin:environments_apitoken_add"), admin_token_form(holder, "maintain")
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "You may make tokens for yourself only" in page
    assert "only a superuser may make one for someone else" in page
    assert not re.search(r"lcsp_[A-Za-z0-9]{40}", page)
    assert not ApiToken.objects.exists()


def test_staff_who_may_add_tokens_may_make_their_own(client, token_clerk):
    client.force_login(token_clerk)
    add = reverse("admin:environments_apitoken_add")
    assert client.get(add).context["adminform"].form.initial["user"] == token_clerk.pk
    response = client.post(add, admin_token_form(token_clerk))
    secret = re.search(r"lcsp_[A-Za-z0-9]{40}", response.content.decode()).group()
    assert ApiToken.objects.get().user == token_clerk
    assert tokens.authenticate(secret).user == token_clerk


def test_staff_who_may_only_view_tokens_may_not_revoke_anyones(client, token_clerk, manager):
    token, _ = token_for(manager, name="ci")
    client.force_login(token_clerk)
    client.post(
        reverse("admin:environments_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_at is None


def test_a_superuser_may_make_a_token_for_another_superuser(client, superuser):
    other = get_user_model().objects.create_superuser(username="root2", password="x")
    client.force_login(superuser)
    response = client.post(
        reverse("admin:environments_apitoken_add"), admin_token_form(other, "maintain")
    )
    assert response.status_code == 200
    assert re.search(r"lcsp_[A-Za-z0-9]{40}", response.content.decode())
    assert ApiToken.objects.get().user == other


def test_a_token_form_that_does_not_know_its_maker_makes_nothing(manager):
    form = tokens.AdminTokenForm(admin_token_form(manager))
    assert not form.is_valid()
    assert "nothing was made" in str(form.errors["user"])


def test_the_admin_refuses_a_token_for_longer_than_a_year(client, superuser, manager):
    client.force_login(superuser)
    expires = timezone.localtime() + timedelta(days=400)
    response = client.post(
        reverse("admin:environments_apitoken_add"),
        {
            "user": manager.pk,
            "name": "forever",
            "scope": "read",
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 200
    assert "at most 365 days" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_admin_revokes_tokens(client, superuser, manager):
    token, secret = token_for(manager)
    client.force_login(superuser)
    client.post(
        reverse("admin:environments_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert bearer(secret).get(f"{API}/environments").status_code == 401


def test_a_forwarded_address_that_is_not_one_is_not_kept(environment, manager, settings):
    settings.PORTAL_PROXY_COUNT = 1
    token, secret = token_for(manager)
    response = bearer(secret).get(f"{API}/environments", HTTP_X_FORWARDED_FOR="nonsense")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_from is None
