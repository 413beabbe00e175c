"""PostgreSQL stopped for 10 s, then started again, under steady load through nginx:
pages, status polls, forward auth and Confirms of restarts on four environments.

Both hosts recover by themselves (no process is restarted by hand): /healthz answers
503 during the cut and 200 after it, pages are served again, Confirms start restarts
again and the workers run them. No operation is lost or doubled: every Confirm answered
200 has exactly one history row, no Confirm has two, and every operation settles
(Succeeded, or Failed at its deadline when the cut took its worker's connection in the
middle of it). The errors during the cut are counted and reported.
"""

import threading
import time
from collections import Counter
from urllib.parse import urlencode

from tests.cluster.conftest import (
    AFTER_CUT,
    CUT,
    DEADLINE,
    GATE,
    MEMBER,
    OWNER,
    query,
    scalar,
    sign_in,
)
from tests.live import request, wait_for

CUT_SECONDS = 10
FINE = {200, 204, 286, 302, 304, 409}


def steady_load(port, owner, member, stop, results):
    """Requests through nginx until ``stop`` is set (120 s at most); each is recorded
    as (kind, started, ended, status, reason)."""

    def loop(kind, send, pause):
        end = time.monotonic() + 120
        n = 0
        while not stop.is_set() and time.monotonic() < end:
            n += 1
            started = time.monotonic()
            reason = ""
            try:
                code, reason = send(n)
            except OSError as exc:
                code = type(exc).__name__
            results.append((kind, started, time.monotonic(), code, reason))
            time.sleep(pause)

    def page(path, session):
        return lambda n: (request(port, path, headers=session.headers()).status, "")

    def confirm(slug):
        def send(n):
            reason = f"{slug} confirm {n}"
            body = urlencode({"service": "aos", "reason": reason})
            headers = owner.headers(**{"Content-Type": "application/x-www-form-urlencoded"})
            path = f"/environments/{slug}/maintain/restart_service/"
            return request(port, path, method="POST", body=body, headers=headers).status, reason

        return send

    jobs = [
        ("list", page("/environments/", owner), 0.05),
        ("poll", page(f"/environments/{CUT[0]}/status/", owner), 0.05),
        ("forward auth", page(f"/environments/{GATE}/auth/", member), 0.05),
        *((f"confirm {slug}", confirm(slug), 0.1) for slug in CUT),
    ]
    threads = [threading.Thread(target=loop, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    return threads


def outcome_after_the_cut(cluster):
    return scalar(
        cluster,
        "SELECT o.outcome FROM environments_operation o JOIN environments_environment e "
        "ON e.id = o.environment_id WHERE e.slug = %s",
        AFTER_CUT,
    )


def operations(cluster):
    """(reason, outcome, error) of the operations the load started."""
    return query(
        cluster,
        "SELECT o.reason, o.outcome, o.error FROM environments_operation o "
        "JOIN environments_environment e ON e.id = o.environment_id WHERE e.slug = ANY(%s)",
        CUT,
    )


def test_both_hosts_recover_from_a_ten_second_database_cut_without_losing_an_operation(
    running, capsys
):
    running.write_drivers(
        {
            slug: {"driver": "command", "restart": ["sleep", "0.2"], "health": ["true"]}
            for slug in [*CUT, AFTER_CUT]
        }
    )
    owner = sign_in(running.nginx_port, OWNER)
    member = sign_in(running.nginx_port, MEMBER)
    stop, results, threads = threading.Event(), [], []
    health_during_cut = {}
    back_after = {}
    try:
        threads = steady_load(running.nginx_port, owner, member, stop, results)
        time.sleep(3)
        down = time.monotonic()
        running.postgres.stop()
        time.sleep(2)
        for host in running.hosts:
            health_during_cut[host.number] = request(host.port, "/healthz").status
        time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - down)))
        running.postgres.start()
        up = time.monotonic()

        # Each host comes back by itself: healthy, and a Confirm through nginx after the
        # cut started a restart that a worker then ran.
        for host in running.hosts:
            assert wait_for(lambda h=host: request(h.port, "/healthz").status == 200, timeout=60), (
                host.log()[-3000:]
            )
            back_after[host.number] = time.monotonic() - up
        # A Confirm through nginx starts a restart again, and a worker runs it: on an
        # environment the cut did not touch, since the cut may have left each of CUT
        # Failed (an operation cut in its middle, or queued past its deadline while the
        # workers came back), which is the owner's to Resume or Abort.
        path = f"/environments/{AFTER_CUT}/maintain/restart_service/"
        body = urlencode({"service": "aos", "reason": "after the cut"})
        headers = owner.headers(**{"Content-Type": "application/x-www-form-urlencoded"})
        confirm = request(running.nginx_port, path, method="POST", body=body, headers=headers)
        assert confirm.status == 200, confirm.body[:500]
        recovered = time.monotonic()
        assert wait_for(lambda: outcome_after_the_cut(running) == "succeeded", timeout=90)
        confirmed_after = sum(
            1 for r in results if r[0].startswith("confirm") and r[3] == 200 and r[1] > up
        )
        time.sleep(3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=150)
        # Whatever failed, the hosts need their database back.
        if not (running.postgres.data / "postmaster.pid").exists():
            running.postgres.start()

    assert health_during_cut == {1: 503, 2: 503}
    assert all(host.running for host in running.hosts), "a run_portal stopped"

    # Errors only while the database was away (and the moment it took to come back).
    errors = [r for r in results if r[3] not in FINE]
    assert all(down <= r[2] and r[1] <= recovered for r in errors), [
        (r[0], r[3], round(r[1] - down, 2)) for r in errors if not down <= r[2]
    ]
    before_and_after = [r for r in results if r[2] < down or r[1] > recovered]
    assert all(r[3] in FINE for r in before_and_after)

    # Every operation settles: the deadline fails one whose worker lost the database in
    # its middle, the watchdog one whose tasks were never queued (the cut fell between
    # the commit and the queueing).
    def settled():
        return (
            scalar(
                running,
                "SELECT count(*) FROM environments_operation o JOIN environments_environment e "
                "ON e.id = o.environment_id WHERE e.slug = ANY(%s) "
                "AND o.outcome IN ('queued', 'running')",
                CUT,
            )
            == 0
        )

    assert wait_for(settled, timeout=DEADLINE + 90, interval=0.5)
    rows = operations(running)
    by_reason = Counter(reason for reason, _, _ in rows)
    assert max(by_reason.values()) == 1, "a Confirm started two operations"
    started = {r[4] for r in results if r[0].startswith("confirm") and r[3] == 200}
    assert started <= set(by_reason), f"lost: {started - set(by_reason)}"
    # Answered with an error, yet started: the commit came before the cut.
    errored = {r[4] for r in results if r[0].startswith("confirm") and r[3] not in FINE}
    started_anyway = errored & set(by_reason)
    assert set(by_reason) <= started | started_anyway
    outcomes = Counter(outcome for _, outcome, _ in rows)
    assert set(outcomes) <= {"succeeded", "failed"}, outcomes
    for _, outcome, error in rows:
        if outcome == "failed":
            assert "deadline" in error, error

    during = [r for r in results if r[2] >= down and r[1] <= recovered]
    with capsys.disabled():
        print(
            f"\ncluster database cut: PostgreSQL down {up - down:.1f} s under load; "
            f"{len(results)} requests through nginx, {len(during)} during the cut and "
            f"recovery, {len(errors)} errors {dict(Counter(r[3] for r in errors))} "
            f"(by kind {dict(Counter(r[0].split()[0] for r in errors))}); /healthz 503 "
            f"on both hosts during it, 200 again after "
            f"{', '.join(f'host {n} {s:.1f} s' for n, s in back_after.items())}; "
            f"{len(rows)} restarts started: {dict(outcomes)}, "
            f"{len(started_anyway)} of them answered with an error (then "
            f"{dict(Counter(o for r, o, _ in rows if r in started_anyway))}), "
            f"none lost or doubled; {confirmed_after} of them confirmed after the cut, and a "
            f"restart on an environment the cut did not touch started and Succeeded"
        )
