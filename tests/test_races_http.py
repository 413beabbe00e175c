"""Races over HTTP: 50 conflicting Maintain POSTs at once, 20 rounds, against gunicorn
(3 workers x 8 threads) with a real db_worker, on whichever database the suite runs on.

Every round exactly one operation starts, the other 49 get 409 with the reason, none
gets a 500, and the history gains exactly one row. The environment's drivers are
command drivers whose work ends when the test releases it (a file appears) once the
last answer is in: the winner is still running when the last request arrives, however
slow the machine, since a request arriving after it finished could rightly start the
next operation.
"""

import random
import statistics
import threading
import time
from collections import Counter
from urllib.parse import urlencode

import pytest
from django.db import connection

from environments.models import Environment, Operation, Outcome, Status
from tests.conftest import subprocess_env
from tests.live import (
    Gunicorn,
    held_drivers,
    post_form,
    signed_in,
    start_worker,
    stop,
    wait_for,
)

ROUNDS = 20
REQUESTS = 50

# Every request of a burst conflicts with every other: each would start an operation.
ACTIONS = [
    ("restart_service", {"service": "aos"}),
    ("restart_service", {"service": "dixf"}),
    ("restart_service", {"service": "mr"}),
    ("enable_maintenance", {}),
    ("enable_access", {"name": "race", "hours": "1"}),
]


def burst(port, slug, sessions, round_number):
    """REQUESTS POSTs, sent at once from as many threads; their answers in order."""
    rng = random.Random(round_number)
    plan = []
    for i in range(REQUESTS):
        action, data = ACTIONS[i % len(ACTIONS)]
        data = dict(data, reason=f"race round {round_number} request {i}")
        if action == "enable_access":
            # One address per round: the winning rule stays active, and a second rule
            # for the same address would be refused for that, not for the race.
            data["address"] = f"198.51.100.{round_number + 1}"
        plan.append((action, data, sessions[i % len(sessions)]))
    rng.shuffle(plan)

    import http.client

    barrier = threading.Barrier(REQUESTS)
    answers = [None] * REQUESTS

    def send(i):
        action, data, session = plan[i]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.connect()
            barrier.wait(timeout=30)
            started = time.monotonic()
            conn.request(
                "POST",
                f"/environments/{slug}/maintain/{action}/",
                body=urlencode(data),
                headers=session.headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
            )
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            answers[i] = (action, data, response.status, body, time.monotonic() - started)
        except Exception as exc:  # recorded, so the assertion shows it
            answers[i] = (action, data, None, repr(exc), 0.0)
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
    return (
        not environment.is_busy
        and not environment.operations.filter(
            outcome__in=[Outcome.QUEUED, Outcome.RUNNING]
        ).exists()
    )


@pytest.mark.django_db(transaction=True)
def test_fifty_simultaneous_maintain_posts_start_exactly_one_operation_per_round(
    environment, owner, manager, superuser, tmp_path, capsys
):
    release, held = held_drivers(tmp_path, environment.slug)
    env = subprocess_env(ACCESS_MAX_ACTIVE_RULES=ROUNDS + 1, **held)
    server = Gunicorn(tmp_path / "gunicorn.log", workers=3, threads=8, env=env)
    worker = None
    try:
        server.start()
        worker = start_worker(tmp_path / "worker.log", env=env)
        port, slug = server.port, environment.slug
        sessions = [signed_in(port, user) for user in (owner, manager, superuser)]
        latencies, bursts, winners = [], [], Counter()
        for round_number in range(ROUNDS):
            assert settled(environment) and environment.status == Status.DEPLOYED
            before = set(Operation.objects.values_list("pk", flat=True))
            release.unlink(missing_ok=True)
            t0 = time.monotonic()
            answers = burst(port, slug, sessions, round_number)
            bursts.append(time.monotonic() - t0)
            latencies += [seconds for *_, seconds in answers]

            # First what matters: one operation started, whatever the answers say.
            new = Operation.objects.exclude(pk__in=before)
            assert new.count() == 1, f"round {round_number}: {list(new.values('kind'))}"
            statuses = Counter(status for _, _, status, _, _ in answers)
            assert statuses == {200: 1, 409: REQUESTS - 1}, (
                f"round {round_number}: {dict(statuses)}; "
                + "; ".join(f"{a} {s}: {b[:300]}" for a, _, s, b, _ in answers if s != 409)
            )
            for _action, _, status, body, _ in answers:
                if status == 409:
                    assert "Another operation is in progress" in body, body[:500]
            operation = new.get()
            ((action, data, *_),) = [a for a in answers if a[2] == 200]
            assert operation.kind == action
            assert operation.reason == data["reason"]
            winners[action if action != "restart_service" else f"restart {data['service']}"] += 1
            operation.refresh_from_db()
            assert operation.is_active, "the winner finished before the test released it"

            release.touch()
            assert wait_for(lambda: settled(environment), timeout=60), environment.status
            operation.refresh_from_db()
            assert operation.outcome == Outcome.SUCCEEDED, operation.error
            assert Operation.objects.exclude(pk__in=before).count() == 1
            if environment.status == Status.IN_MAINTENANCE:
                answer = post_form(
                    sessions[0],
                    port,
                    f"/environments/{slug}/maintain/disable_maintenance/",
                    {"reason": "next round"},
                )
                assert answer.status == 200, answer.body[:500]
                assert wait_for(lambda: settled(environment), timeout=60)
            assert environment.status == Status.DEPLOYED

        # The guard's own invariant, over the whole run: no operation started before
        # the one before it had finished.
        history = list(Operation.objects.order_by("started_at", "id"))
        for earlier, later in zip(history, history[1:], strict=False):
            assert later.started_at >= earlier.finished_at, (earlier.activity, later.activity)

        log = server.log()
        assert "Traceback" not in log and "Internal Server Error" not in log, log[-3000:]
        latencies.sort()
        with capsys.disabled():
            print(
                f"\nraces over HTTP ({connection.vendor}): {ROUNDS} rounds x {REQUESTS} POSTs, "
                f"{ROUNDS} started, {ROUNDS * (REQUESTS - 1)} refused with 409, 0 errors; "
                f"burst {statistics.median(bursts):.2f} s median, {max(bursts):.2f} s max; "
                f"latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
                f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms, "
                f"max {latencies[-1] * 1000:.0f} ms; winners {dict(winners)}"
            )
    finally:
        release.touch()  # ends any driver still waiting
        stop(worker)
        server.stop()
    assert Environment.objects.get(pk=environment.pk).status == Status.DEPLOYED
