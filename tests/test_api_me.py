"""GET /api/v1/me: whom a token signs in as (a service account says so), and the token's
own id, name, scope and expiry; through the same token check and problems as every other
endpoint."""

from datetime import timedelta

from django.utils import timezone

from environments import tokens
from environments.models import TokenScope
from tests.api_clients import API, api_client, token_for
from tests.test_api_tokens import bearer


def test_me_names_the_user_and_the_token(manager):
    manager.first_name, manager.last_name = "Mona", "Lisa"
    manager.save()
    expires_at = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    token, secret = token_for(manager, name="laptop", expires_at=expires_at)

    response = bearer(secret).get(f"{API}/me")

    assert response.status_code == 200
    assert response.json() == {
        "user": {"username": "mona", "full_name": "Mona Lisa", "service_account": False},
        "token": {
            "id": token.pk,
            "name": "laptop",
            "prefix": token.prefix,
            "scope": "maintain",
            "scope_label": "Maintain (includes read)",
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
        },
    }


def test_a_read_token_may_ask_who_it_is(member):
    response = api_client(member, TokenScope.READ, name="dashboard").get(f"{API}/me")
    assert response.status_code == 200
    assert response.json()["token"]["scope"] == "read"


def test_another_users_token_shows_that_user_only(manager, member):
    token_for(manager, name="mona's")
    response = api_client(member, name="tom's").get(f"{API}/me")
    assert response.json()["user"] == {
        "username": "tom",
        "full_name": "",
        "service_account": False,
    }
    assert response.json()["token"]["name"] == "tom's"
    assert "mona" not in response.content.decode()


def test_a_service_accounts_token_says_it_is_one(service_account):
    response = api_client(service_account, name="ci").get(f"{API}/me")
    assert response.json()["user"]["service_account"] is True


def test_no_token_or_a_revoked_one_is_a_401_problem(manager):
    token, secret = token_for(manager)
    tokens.revoke(token)
    for client in (api_client(), bearer(secret)):
        response = client.get(f"{API}/me")
        assert response.status_code == 401
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["type"] == "urn:lcs-portal:problem:unauthorized"


def test_me_is_read_only(manager):
    response = api_client(manager).post(f"{API}/me")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
