"""Races through the API over HTTP: 50 simultaneous POSTs of one restart, several
rounds, against gunicorn (3 workers x 8 threads) with a real db_worker. Each round
exactly one is 202, the other 49 are 409 problems that say why, none is a 500, and the
history gains exactly one row.

The restart's driver waits for the test to release it once every answer is in (as in
tests/test_races_http.py), so the winner is still running when the last POST arrives.
"""

import http.client
import json
import statistics
import threading
import time
from collections import Counter

import pytest
from django.db import connection

from environments.models import Operation, Outcome, Status
from tests.api_clients import token_for
from tests.conftest import subprocess_env
from tests.live import Gunicorn, held_drivers, start_worker, stop, wait_for

ROUNDS = 5
REQUESTS = 50


def burst(port, slug, secrets, round_number, headers=None):
    barrier = threading.Barrier(REQUESTS)
    answers = [None] * REQUESTS
    body = json.dumps({"action": "restart_service", "service": "aos", "reason": "race"})
    headers = headers or {}

    def send(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.connect()
            barrier.wait(timeout=30)
            started = time.monotonic()
            conn.request(
                "POST",
                f"/api/v1/environments/{slug}/operations",
                body=body,
                headers={
                    "Authorization": f"Bearer {secrets[i % len(secrets)]}",
                    "Content-Type": "application/json",
                    **headers,
                },
            )
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            answers[i] = (response.status, text, time.monotonic() - started)
        except Exception as exc:  # recorded, so the assertion shows it
            answers[i] = (None, repr(exc), 0.0)
        finally:
            conn.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def settled(environment):
    environment.refresh_from_db()
    return not environment.is_busy and not environment.operations.active().exists()


@pytest.mark.django_db(transaction=True)
def test_fifty_simultaneous_restarts_through_the_api_start_exactly_one(
    environment, owner, manager, superuser, tmp_path, capsys
):
    release, held = held_drivers(tmp_path, environment.slug)
    env = subprocess_env(**held)
    server = Gunicorn(tmp_path / "gunicorn.log", workers=3, threads=8, env=env)
    worker = None
    try:
        server.start()
        worker = start_worker(tmp_path / "worker.log", env=env)
        secrets = [token_for(user)[1] for user in (owner, manager, superuser)]
        latencies = []
        for round_number in range(ROUNDS):
            assert settled(environment) and environment.status == Status.DEPLOYED
            release.unlink(missing_ok=True)
            before = Operation.objects.count()
            answers = burst(server.port, environment.slug, secrets, round_number)
            latencies += [seconds for *_, seconds in answers]

            assert Operation.objects.count() == before + 1
            statuses = Counter(status for status, _, _ in answers)
            assert statuses == {202: 1, 409: REQUESTS - 1}, [a[:2] for a in answers if a[0] != 409]
            for status, text, _ in answers:
                problem = json.loads(text)
                if status == 409:
                    assert problem["type"] == "urn:lcs-portal:problem:busy"
                    assert "Another operation is in progress" in problem["detail"]
                else:
                    assert problem["via"] == "API (script)"
            operation = Operation.objects.latest("started_at")
            assert operation.is_active, "the winner finished before the test released it"

            release.touch()
            assert wait_for(lambda: settled(environment), timeout=60), environment.status
            operation.refresh_from_db()
            assert operation.outcome == Outcome.SUCCEEDED, operation.error

        log = server.log()
        assert "Traceback" not in log and "Internal Server Error" not in log, log[-3000:]
        latencies.sort()
        with capsys.disabled():
            print(
                f"\nAPI races over HTTP ({connection.vendor}): {ROUNDS} rounds x {REQUESTS} "
                f"POSTs of one restart: {ROUNDS} x 202, {ROUNDS * (REQUESTS - 1)} x 409, "
                f"0 errors; latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
                f"max {latencies[-1] * 1000:.0f} ms"
            )
    finally:
        release.touch()
        stop(worker)
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_fifty_simultaneous_posts_with_one_idempotency_key_start_one_restart(
    environment, manager, tmp_path
):
    """The same key from one user, 50 times at once: one restart starts; every other
    answer is that restart again (a replay) or 409 while the first is still in flight,
    never a second operation, never a busy refusal and never a 500."""
    release, held = held_drivers(tmp_path, environment.slug)
    env = subprocess_env(**held)
    server = Gunicorn(tmp_path / "gunicorn.log", workers=3, threads=8, env=env)
    try:
        server.start()
        # Two tokens of one user: keys are the user's, not the token's.
        secrets = [token_for(manager, name=name)[1] for name in ("ci", "laptop")]
        answers = burst(server.port, environment.slug, secrets, 0, {"Idempotency-Key": "r-1"})

        assert Operation.objects.count() == 1
        started = str(Operation.objects.get().activity_id)
        for status, text, _ in answers:
            body = json.loads(text)
            if status == 409:
                assert body["type"] == "urn:lcs-portal:problem:idempotency_key_in_flight", body
            else:
                assert status == 202 and body["activity_id"] == started, (status, body)
        assert Counter(status for status, *_ in answers)[202] >= 1
        log = server.log()
        assert "Traceback" not in log and "Internal Server Error" not in log, log[-3000:]
    finally:
        release.touch()
        server.stop()
