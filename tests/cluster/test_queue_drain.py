"""1,000 restarts queued across 1,000 environments, drained by the task workers of one
host, then 1,000 more by the workers of both: every operation runs exactly once (one
task, one worker, one driver call, one history row), and the throughput of one host and
of two is reported. SKIP LOCKED in the claim hands each task to one worker.

The restarts are queued through environments.operations, as the views do, by a
process of their own whose deadline is far off; the simulated driver takes no time.
"""

import os
from collections import Counter

from tests.cluster.conftest import DRAIN_ENVIRONMENTS, DRAIN_PROJECT, OWNER, query, scalar
from tests.live import wait_for

TASKS = "django_tasks_database_dbtaskresult"


def queue_restarts(cluster, phase):
    code = (
        "from django.contrib.auth import get_user_model\n"
        "from environments import operations\n"
        "from environments.models import Environment\n"
        f"owner = get_user_model().objects.get(username={OWNER!r})\n"
        f"for environment in Environment.objects.filter(project__slug={DRAIN_PROJECT!r}):\n"
        f"    operations.restart_service(environment, owner, 'aos', reason={phase!r})\n"
    )
    cluster.manage("shell", "-c", code, env={"OPERATION_DEADLINE_SECONDS": "3600"})


def unsettled(cluster, phase):
    return scalar(
        cluster,
        "SELECT count(*) FROM environments_operation WHERE reason = %s "
        "AND outcome IN ('queued', 'running')",
        phase,
    )


def drain(cluster, phase):
    """Wait until the phase's operations have all settled; the rate, from the first
    task's start to the last task's end as the task table records them, and the tasks
    each worker ran."""
    assert wait_for(lambda: unsettled(cluster, phase) == 0, timeout=300, interval=0.2)
    rows = query(
        cluster,
        f"SELECT t.started_at, t.finished_at, t.worker_ids, t.status FROM {TASKS} t "
        "JOIN environments_operation o ON (t.args_kwargs -> 'args' ->> 0)::bigint = o.id "
        "WHERE t.task_path = 'environments.operations.core.run_step' AND o.reason = %s",
        phase,
    )
    assert len(rows) == DRAIN_ENVIRONMENTS, f"{len(rows)} run tasks for {phase}"
    assert {status for *_, status in rows} == {"SUCCESSFUL"}
    assert all(len(workers) == 1 for _, _, workers, _ in rows), "a task was claimed twice"
    seconds = (max(r[1] for r in rows) - min(r[0] for r in rows)).total_seconds()
    return DRAIN_ENVIRONMENTS / seconds, seconds, Counter(r[2][0] for r in rows)


def worker_cpu_seconds(cluster):
    """User and system CPU time the hosts' task workers have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for host in cluster.hosts:
        for pid in host.workers():
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def test_a_thousand_queued_restarts_run_exactly_once_on_the_workers_of_both_hosts(running, capsys):
    host1, host2 = running.hosts
    try:
        # Queued while no worker runs, so that each phase drains a full queue.
        host1.pause_workers()
        host2.pause_workers()
        queue_restarts(running, "drain one host")
        cpu = worker_cpu_seconds(running)
        host1.resume_workers()
        one_rate, one_seconds, one_workers = drain(running, "drain one host")
        one_cpu = worker_cpu_seconds(running) - cpu

        host1.pause_workers()
        queue_restarts(running, "drain two hosts")
        cpu = worker_cpu_seconds(running)
        host1.resume_workers()
        host2.resume_workers()
        two_rate, two_seconds, two_workers = drain(running, "drain two hosts")
        two_cpu = worker_cpu_seconds(running) - cpu
    finally:
        host1.resume_workers()
        host2.resume_workers()

    # One host: its worker(s) ran them all. Two: host 2's took their share.
    assert one_workers
    host2_workers = set(two_workers) - set(one_workers)
    assert host2_workers and set(one_workers) & set(two_workers), two_workers

    # Exactly once: two restarts per environment, each succeeded, each driven once.
    per_environment = query(
        running,
        "SELECT count(*), count(*) FILTER (WHERE o.outcome = 'succeeded') "
        "FROM environments_operation o JOIN environments_environment e "
        "ON e.id = o.environment_id JOIN environments_project p ON p.id = e.project_id "
        "WHERE p.slug = %s GROUP BY e.id",
        DRAIN_PROJECT,
    )
    assert len(per_environment) == DRAIN_ENVIRONMENTS
    assert set(per_environment) == {(2, 2)}, Counter(per_environment)
    driven_twice = scalar(
        running,
        "SELECT count(*) FROM environments_operation WHERE reason LIKE 'drain%%' "
        "AND log LIKE '%%Performing%%Performing%%'",
    )
    assert driven_twice == 0
    statuses = query(
        running,
        "SELECT DISTINCT e.status FROM environments_environment e "
        "JOIN environments_project p ON p.id = e.project_id WHERE p.slug = %s",
        DRAIN_PROJECT,
    )
    assert statuses == [("deployed",)]

    share = sum(two_workers[worker] for worker in host2_workers) / DRAIN_ENVIRONMENTS
    with capsys.disabled():
        print(
            f"\ncluster queue drain: {DRAIN_ENVIRONMENTS} restarts across "
            f"{DRAIN_ENVIRONMENTS} environments, each run once; one host's worker "
            f"{one_rate:.0f}/s ({one_seconds:.1f} s), both hosts' workers {two_rate:.0f}/s "
            f"({two_seconds:.1f} s, host 2 ran {share:.0%}): x{two_rate / one_rate:.2f}; "
            f"worker CPU per task {one_cpu / DRAIN_ENVIRONMENTS * 1000:.1f} and "
            f"{two_cpu / DRAIN_ENVIRONMENTS * 1000:.1f} ms; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
