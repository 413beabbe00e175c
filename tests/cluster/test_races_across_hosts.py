"""50 simultaneous Confirms of one restart, sent through nginx and so spread over both
hosts, in each of 10 rounds: exactly one starts, the other 49 are refused with 409, none
gets a 5xx. Only the database stands between the two hosts: the environment row's lock
and the partial unique index on running operations.

The environment's driver holds the restart until the test releases it once every
answer is in, so the winner is still running when the last Confirm arrives.
"""

import http.client
import statistics
import threading
import time
from collections import Counter
from urllib.parse import urlencode

from tests.cluster.conftest import (
    OWNER,
    RACE,
    active_operations,
    scalar,
    sign_in,
    status,
)
from tests.live import wait_for

ROUNDS = 10
REQUESTS = 50
CONFIRM = f"/environments/{RACE}/maintain/restart_service/"


def burst(port, sessions, round_number):
    """REQUESTS Confirms released at once from as many threads: (status, body, seconds)."""
    barrier = threading.Barrier(REQUESTS)
    answers = [None] * REQUESTS

    def send(i):
        session = sessions[i % len(sessions)]
        body = urlencode({"service": "aos", "reason": f"round {round_number} confirm {i}"})
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.connect()
            barrier.wait(timeout=30)
            started = time.monotonic()
            connection.request(
                "POST",
                CONFIRM,
                body=body,
                headers=session.headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
            )
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
            answers[i] = (response.status, text, time.monotonic() - started)
        except Exception as exc:  # recorded, so the assertion shows it
            answers[i] = (None, repr(exc), 0.0)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def confirms_since(cluster, before):
    """How many Confirms nginx has passed to each host since it had passed ``before``."""
    served = cluster.routed("POST", CONFIRM)
    return [served[host.number] - count for host, count in zip(cluster.hosts, before, strict=True)]


def test_fifty_confirms_through_nginx_start_exactly_one_restart_in_each_round(running, capsys):
    release = running.state_dir / "race-release"
    release.touch()
    running.write_drivers(
        {
            RACE: {
                "driver": "command",
                "restart": ["true"],
                "health": ["test", "-e", str(release)],
                "health_interval": 0.05,
            }
        }
    )
    # Signed in on each host, sent through nginx: a session works wherever it lands.
    sessions = [sign_in(host.port, OWNER) for host in running.hosts]
    logged_before = [len(host.log()) for host in running.hosts]
    served = Counter()
    latencies, bursts = [], []
    try:
        for round_number in range(ROUNDS):
            assert active_operations(running, RACE) == 0
            assert status(running, RACE) == "deployed"
            release.unlink()
            before = confirms_since(running, [0] * len(running.hosts))
            started = time.monotonic()
            answers = burst(running.nginx_port, sessions, round_number)
            bursts.append(time.monotonic() - started)
            latencies += [seconds for *_, seconds in answers]

            statuses = Counter(code for code, _, _ in answers)
            assert statuses == {200: 1, 409: REQUESTS - 1}, (
                f"round {round_number}: {dict(statuses)}; "
                + "; ".join(f"{code}: {body[:300]}" for code, body, _ in answers if code != 409)
            )
            for code, body, _ in answers:
                if code == 409:
                    assert "Another operation is in progress" in body, body[:500]
            # nginx logs a request once it has answered it: the last lines may lag.
            wait_for(lambda b=before: sum(confirms_since(running, b)) == REQUESTS, timeout=10)
            share = confirms_since(running, before)
            assert sum(share) == REQUESTS, f"round {round_number}: {share}"
            assert all(share), f"round {round_number}: one host served none: {share}"
            for host, count in zip(running.hosts, share, strict=True):
                served[host.number] += count
            assert active_operations(running, RACE) == 1, "the winner finished before release"

            release.touch()
            assert wait_for(lambda: active_operations(running, RACE) == 0, timeout=60)
            assert status(running, RACE) == "deployed"
    finally:
        release.touch()

    history = scalar(
        running,
        "SELECT count(*) FROM environments_operation o JOIN environments_environment e "
        "ON e.id = o.environment_id WHERE e.slug = %s AND o.outcome = 'succeeded'",
        RACE,
    )
    assert history == ROUNDS
    overlaps = scalar(
        running,
        "SELECT count(*) FROM environments_operation a JOIN environments_operation b "
        "ON a.environment_id = b.environment_id AND a.id < b.id "
        "JOIN environments_environment e ON e.id = a.environment_id "
        "WHERE e.slug = %s AND b.started_at < a.finished_at",
        RACE,
    )
    assert overlaps == 0, "an operation started before the one before it had finished"
    for host, offset in zip(running.hosts, logged_before, strict=True):
        log = host.log()[offset:]
        assert "Traceback" not in log and "Internal Server Error" not in log, log[-3000:]
    latencies.sort()
    with capsys.disabled():
        print(
            f"\ncluster races: {ROUNDS} rounds x {REQUESTS} Confirms through nginx, "
            f"served by host 1 / host 2: {served[1]} / {served[2]}; {ROUNDS} started, "
            f"{ROUNDS * (REQUESTS - 1)} refused with 409, 0 errors; burst "
            f"{statistics.median(bursts):.2f} s median; latency p50 "
            f"{latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
        )
