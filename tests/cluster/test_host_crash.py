"""kill -9 of host 1 (gunicorn, its task worker, the watchdog, all at once) in the middle
of a restart that host 1's worker is running.

The restart still settles, through host 2: the deadline task that was queued with it
is run by host 2's worker and fails the operation at its deadline (the driver was cut,
so nobody can say the service came back). Meanwhile nginx routes around the dead host:
of the requests sent during the outage, only those in flight on host 1 when it died
may fail, and they are counted and reported. Host 2 then resumes the operation, and
host 1, started again, takes its share of requests again.
"""

import threading
import time
from collections import Counter
from urllib.parse import urlencode

from tests.cluster.conftest import (
    CRASH,
    DEADLINE,
    OWNER,
    active_operations,
    query,
    sign_in,
    status,
)
from tests.live import post_form, request, wait_for

CONFIRM = f"/environments/{CRASH}/maintain/restart_service/"
#: Answers that are not failures: pages, the refused Confirm (409: one is running, or
#: the environment is Failed), forward auth.
FINE = {200, 204, 302, 409}


def load(port, session, stop, results):
    """Pages, the status poll and Confirms through nginx until ``stop`` is set (60 s at
    most): (kind, started, ended, status) for each request."""

    def run(kind, method, path, body=None):
        headers = session.headers(**{"Content-Type": "application/x-www-form-urlencoded"})
        end = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < end:
            started = time.monotonic()
            try:
                code = request(port, path, method=method, body=body, headers=headers).status
            except OSError as exc:
                code = type(exc).__name__
            results.append((kind, started, time.monotonic(), code))
            time.sleep(0.02)

    body = urlencode({"service": "aos", "reason": "during the outage"})
    threads = [
        threading.Thread(target=run, args=("list", "GET", "/environments/")),
        threading.Thread(target=run, args=("poll", "GET", f"/environments/{CRASH}/status/")),
        threading.Thread(target=run, args=("healthz", "GET", "/healthz")),
        threading.Thread(target=run, args=("confirm", "POST", CONFIRM, body)),
    ]
    for thread in threads:
        thread.start()
    return threads


def operation(cluster):
    ((outcome, error, pk),) = query(
        cluster,
        "SELECT o.outcome, o.error, o.id FROM environments_operation o "
        "JOIN environments_environment e ON e.id = o.environment_id "
        "WHERE e.slug = %s AND o.kind = 'restart_service'",
        CRASH,
    )
    return outcome, error, pk


def task_workers(cluster, operation_id, task):
    """The worker ids that ran ``task`` for the operation, and the task's status."""
    rows = query(
        cluster,
        "SELECT worker_ids, status FROM django_tasks_database_dbtaskresult "
        "WHERE task_path = %s AND args_kwargs -> 'args' ->> 0 = %s",
        f"environments.operations.core.{task}",
        str(operation_id),
    )
    assert len(rows) == 1, rows
    return rows[0]


def test_a_host_killed_mid_restart_leaves_nothing_stuck_and_nginx_routes_around_it(running, capsys):
    host1, host2 = running.hosts
    release = running.state_dir / "crash-release"
    # The restart goes on until released, as a slow service would; the release also
    # ends the command that host 1's death leaves behind (it runs in a group of its
    # own), and so does its bound (two minutes) if the test itself dies.
    wait = (
        f"i=0; until [ -e '{release}' ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 1; sleep 0.1; done"
    )
    running.write_drivers(
        {CRASH: {"driver": "command", "restart": ["sh", "-c", wait], "health": ["true"]}}
    )
    session = sign_in(running.nginx_port, OWNER)
    stop, results, threads = threading.Event(), [], []
    try:
        # Host 1's worker, and only it, can take the restart.
        host2.pause_workers()
        answer = post_form(
            session, running.nginx_port, CONFIRM, {"service": "aos", "reason": "crash"}
        )
        assert answer.status == 200, answer.body[:500]
        assert wait_for(lambda: operation(running)[0] == "running", timeout=30)
        _, _, operation_id = operation(running)
        (host1_worker,), task_status = task_workers(running, operation_id, "run_step")
        assert task_status == "RUNNING"
        host2.resume_workers()
        started_at = time.monotonic()

        threads = load(running.nginx_port, session, stop, results)
        time.sleep(1.5)
        killed_at = time.monotonic()
        host1.kill()
        dead_at = time.monotonic()
        time.sleep(4)
        stop.set()
        for thread in threads:
            thread.join(timeout=90)

        # Nobody touches anything now: host 2 settles the operation by itself.
        assert wait_for(lambda: operation(running)[0] != "running", timeout=DEADLINE + 30)
        settled_after = time.monotonic() - started_at
        outcome, error, _ = operation(running)
        assert outcome == "failed", (outcome, error)
        assert "did not finish within its deadline" in error, error
        assert status(running, CRASH) == "failed"
        (deadline_worker,), task_status = task_workers(running, operation_id, "enforce_deadline")
        assert task_status == "SUCCESSFUL"
        assert deadline_worker != host1_worker, "host 1's worker is dead: host 2's must run it"
        # The dead worker's task stays RUNNING in the task table: nothing reclaims it,
        # and nothing needs to (docs/deploy.md, what to monitor).
        assert task_workers(running, operation_id, "run_step")[1] == "RUNNING"

        # In flight: sent before host 1 was gone, answered after it was killed. A host
        # dies over a few milliseconds, and until then its socket may take a request.
        failures = [r for r in results if r[3] not in FINE]
        in_flight = [r for r in results if r[1] < dead_at and r[2] > killed_at]
        after_death = [r for r in results if r[1] >= dead_at]
        assert all(r in in_flight for r in failures), (killed_at, dead_at, failures)
        assert after_death and all(r[3] in FINE for r in after_death)
        assert {r[0] for r in after_death} == {"list", "poll", "healthz", "confirm"}
        confirmed = Counter(r[3] for r in results if r[0] == "confirm")
        assert 200 not in confirmed, "a Confirm started a second restart"

        # Back to work, through host 2 alone: Resume, with a driver that now finishes.
        release.touch()
        running.write_drivers(
            {CRASH: {"driver": "command", "restart": ["true"], "health": ["true"]}}
        )
        resume = f"/environments/{CRASH}/maintain/resume/"
        answer = post_form(session, running.nginx_port, resume, {"reason": "resume"})
        assert answer.status == 200, answer.body[:500]
        assert wait_for(lambda: active_operations(running, CRASH) == 0, timeout=30)
        assert status(running, CRASH) == "deployed", query(
            running, "SELECT kind, outcome, error FROM environments_operation ORDER BY id"
        )
    finally:
        stop.set()
        release.touch()
        host2.resume_workers()
        for thread in threads:
            thread.join(timeout=90)

    # Host 1 comes back and nginx sends it requests again.
    running.start_host(1)
    before = running.routed("GET", "/healthz")[1]

    def host1_serves():
        # nginx tries a failed host again once its fail_timeout has passed.
        assert request(running.nginx_port, "/healthz").status == 200
        return running.routed("GET", "/healthz")[1] > before

    assert wait_for(host1_serves, timeout=15, interval=0.1)

    with capsys.disabled():
        print(
            f"\ncluster host crash: host 1 killed -9 mid-restart; the restart settled Failed "
            f"(deadline {DEADLINE} s) by host 2's worker {settled_after:.1f} s after it began; "
            f"{len(results)} requests through nginx during the outage "
            f"({dict(Counter(r[0] for r in results))}), {len(in_flight)} in flight while it "
            f"died ({(dead_at - killed_at) * 1000:.0f} ms), {len(failures)} failed "
            f"{dict(Counter((r[0], r[3]) for r in failures))}; {len(after_death)} sent after, "
            f"all answered"
        )
