"""Idempotency-Key on the API's POSTs and DELETEs: a retry gets the first answer again
and starts nothing new; a duplicate in flight is 409, a key reused for another request
422; a database account's password is never stored nor replayed; keys older than a day
are pruned by the watchdog."""

import json
from datetime import timedelta

from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from environments.api.idempotency import _fingerprint
from environments.models import DatabaseAccount, IdempotencyKey, MaintenanceWindow, Operation
from tests.api_clients import API, api_client, token_for
from tests.conftest import committing


def post(client, path, body, key, **headers):
    with committing():
        return client.post(
            path,
            json.dumps(body),
            content_type="application/json",
            headers={"Idempotency-Key": key, **headers},
        )


def restart(client, environment, key, reason="nightly"):
    body = {"action": "restart_service", "service": "aos", "reason": reason}
    return post(client, f"{API}/environments/{environment.slug}/operations", body, key)


def test_the_same_key_again_gets_the_first_answer_and_starts_nothing(api_as_manager, environment):
    first = restart(api_as_manager, environment, "nightly-2026-12-07")
    again = restart(api_as_manager, environment, "nightly-2026-12-07")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Operation.objects.count() == 1


def test_without_a_key_a_second_restart_is_refused_as_busy(api_as_manager, environment):
    restart(api_as_manager, environment, "one")
    assert restart(api_as_manager, environment, "two").status_code == 409
    assert Operation.objects.count() == 1


def test_keys_are_the_users_not_the_tokens(manager, environment):
    first = restart(api_as_manager_with_new_token(manager), environment, "k1")
    again = restart(api_as_manager_with_new_token(manager), environment, "k1")
    assert again.json() == first.json() and Operation.objects.count() == 1


def api_as_manager_with_new_token(user):
    _, secret = token_for(user)
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_another_users_same_key_is_another_request(manager, owner, environment, other_environment):
    restart(api_client(manager), environment, "shared-name")
    answer = restart(api_client(owner), environment, "shared-name")
    assert answer.status_code == 409  # busy: owner's request ran, it got no replay
    assert answer.json()["type"] == "urn:lcs-portal:problem:busy"


def test_the_same_key_with_another_body_is_422_and_starts_nothing(api_as_manager, environment):
    restart(api_as_manager, environment, "k")
    other = restart(api_as_manager, environment, "k", reason="something else")
    assert other.status_code == 422
    assert other.json()["type"] == "urn:lcs-portal:problem:idempotency_key_reused"
    assert Operation.objects.count() == 1


def test_a_duplicate_while_the_first_is_in_flight_is_409(api_as_manager, manager, environment):
    body = {"action": "restart_service", "service": "aos", "reason": "nightly"}
    path = f"{API}/environments/{environment.slug}/operations"
    # The first request has claimed the key and not yet answered: its row has no status.
    request = Client().post(path, json.dumps(body), content_type="application/json").wsgi_request
    IdempotencyKey.objects.create(user=manager, key="k", fingerprint=_fingerprint(request))
    answer = post(api_as_manager, path, body, "k")
    assert answer.status_code == 409
    assert answer.json()["type"] == "urn:lcs-portal:problem:idempotency_key_in_flight"
    assert answer["Retry-After"] == "1"
    assert not Operation.objects.exists()


def test_a_claim_abandoned_by_a_dead_process_is_taken_over(api_as_manager, manager, environment):
    long_ago = timezone.now() - timedelta(minutes=10)
    IdempotencyKey.objects.create(user=manager, key="k", fingerprint="x", created_at=long_ago)
    assert restart(api_as_manager, environment, "k").status_code == 202
    assert IdempotencyKey.objects.get().status == 202


def test_a_refusal_releases_the_key_so_a_corrected_retry_runs(api_as_manager, environment):
    assert restart(api_as_manager, environment, "k", reason="").status_code == 400
    assert not IdempotencyKey.objects.exists()
    assert restart(api_as_manager, environment, "k", reason="nightly").status_code == 202


def test_a_malformed_key_is_400(api_as_manager, environment):
    answer = restart(api_as_manager, environment, "x" * 256)
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.json()["detail"]
    assert not Operation.objects.exists()


def test_a_replayed_database_account_does_not_repeat_its_password(api_as_manager, environment):
    path = f"{API}/environments/{environment.slug}/database-accounts"
    first = post(api_as_manager, path, {"level": "read", "reason": "support"}, "db-1")
    again = post(api_as_manager, path, {"level": "read", "reason": "support"}, "db-1")
    password = first.json()["database_account"]["password"]
    assert password and first.status_code == again.status_code == 202
    replayed = again.json()["database_account"]
    assert replayed["password"] is None
    assert "shown once" in replayed["password_note"].lower()
    assert replayed["username"] == first.json()["database_account"]["username"]
    assert password not in IdempotencyKey.objects.get().body
    assert DatabaseAccount.objects.count() == 1


def test_deletes_and_window_posts_are_idempotent_too(api_as_manager, environment):
    starts = timezone.now() + timedelta(days=1)
    body = {
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=1)).isoformat(),
        "reason": "patching",
    }
    path = f"{API}/environments/{environment.slug}/maintenance-windows"
    first = post(api_as_manager, path, body, "w")
    assert post(api_as_manager, path, body, "w").json() == first.json()
    assert MaintenanceWindow.objects.count() == 1
    rule = post(
        api_as_manager,
        f"{API}/environments/{environment.slug}/firewall-rules",
        {"name": "office", "address": "203.0.113.7", "reason": "support"},
        "r",
    ).json()["firewall_rule"]
    with committing():
        removals = [
            api_as_manager.delete(
                f"{API}/firewall-rules/{rule['id']}", headers={"Idempotency-Key": "rm"}
            )
            for _ in range(2)
        ]
    assert [r.status_code for r in removals] == [202, 202]
    assert removals[1].json() == removals[0].json()


def test_the_watchdog_forgets_keys_older_than_a_day(manager):
    old = timezone.now() - timedelta(hours=25)
    IdempotencyKey.objects.create(user=manager, key="old", fingerprint="x", created_at=old)
    IdempotencyKey.objects.create(user=manager, key="new", fingerprint="x", status=202)
    call_command("watchdog")
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
