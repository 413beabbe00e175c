"""Many operations at once: N restarts on N environments, started together, drained by
one db_worker process per queue (default, access, notify), on PostgreSQL and on SQLite.

The simulated driver's restart is done T seconds after it began and is checked every P
seconds, one step a check, as a real health check is (SIMULATED_DRIVER_DELAY=T,
SIMULATED_DRIVER_POLL=P). The budget: the last of N = 200 finishes within T + 2P of the
moment they were started. Also printed, as figures: N = 1,000, and one worker's ceiling
in steps per second (restarts that take one step each, T = 0). Worker CPU is read from
/proc at the end of each run.
"""

import os
import subprocess
import time

from bench import common
from bench.common import log

TEMPLATE = "lcs_bench_operations_template"
DATABASE = "lcs_bench_operations"
QUEUES = ("default", "access", "notify")


def fresh_database(kind, count):
    """A database with ``count`` environments, each eligible for Restart service."""
    if kind == "postgres":
        url = common.create_database(DATABASE, fresh=True)
    else:
        path = common.VAR_DIR / "operations.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        common.VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    env = common.portal_env(url)
    common.manage(env, "migrate", "--no-input", "-v0")
    common.manage(env, "seed_scale", "--environments", str(count), "--history", "0")
    eligible = (
        "from environments.models import Environment\n"
        "Environment.objects.update(tier=2, type='sandbox', subscription='microsoft', "
        "deployment='self_service')\n"
    )
    common.manage(env, "shell", "--no-imports", "-c", eligible)
    return url


def start_restarts(env, count):
    code = (
        "from django.contrib.auth import get_user_model\n"
        "from environments import operations\n"
        "from environments.demo.seed_scale import ADMIN_USERNAME, PREFIX\n"
        "from environments.models import Environment\n"
        "admin = get_user_model().objects.get(username=ADMIN_USERNAME)\n"
        "environments = Environment.objects.filter(slug__startswith=PREFIX).order_by('slug')\n"
        f"for environment in environments[:{count}]:\n"
        "    operations.restart_service(environment, admin, 'aos', reason='bench')\n"
    )
    common.manage(env, "shell", "--no-imports", "-c", code)


def figures(env):
    """Settled operations, when the first started and the last finished, steps run."""
    code = (
        "from django.db.models import Max, Min\n"
        "from django_tasks_db.models import DBTaskResult\n"
        "from environments.models import Operation\n"
        "ops = Operation.objects.filter(reason='bench')\n"
        "a = ops.aggregate(first=Min('started_at'), last=Max('finished_at'))\n"
        "steps = DBTaskResult.objects.filter(task_path__endswith='run_step', status='SUCCESSFUL')\n"
        "print(ops.filter(outcome='succeeded').count(), ops.exclude(outcome='succeeded')"
        ".exclude(outcome__in=['queued', 'running']).count(), "
        "(a['last'] - a['first']).total_seconds() if a['last'] else -1, steps.count())\n"
    )
    succeeded, failed, seconds, steps = common.manage(
        env, "shell", "--no-imports", "-c", code, capture=True
    ).split()
    return int(succeeded), int(failed), float(seconds), int(steps)


def cpu_seconds(pid):
    ticks = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def run_one(kind, count, after, poll):
    url = fresh_database(kind, count)
    env = common.portal_env(
        url,
        SIMULATED_DRIVER_DELAY=after,
        SIMULATED_DRIVER_POLL=poll,
        OPERATION_DEADLINE_SECONDS=max(600, 10 * after),
    )
    output = open(common.VAR_DIR / f"operations-{kind}-{count}.log", "w")  # noqa: SIM115
    workers = [
        subprocess.Popen(
            [common.PYTHON, "manage.py", "db_worker", "--queue-name", queue, "--interval", "0.1"]
            + ["--no-startup-delay", "--no-reload", "--worker-id", f"bench-{queue}"],
            cwd=common.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        for queue in QUEUES
    ]
    try:
        time.sleep(5)  # the workers' start-up (Django, the first poll) is not the runs' cost
        idle_cpu = cpu_seconds(workers[0].pid)
        started = time.monotonic()
        start_restarts(env, count)
        queued = time.monotonic() - started
        while True:
            succeeded, failed, seconds, steps = figures(env)
            if succeeded + failed == count:
                break
            time.sleep(2)
        cpu = cpu_seconds(workers[0].pid) - idle_cpu
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait()
        output.close()
    return {
        "database": kind,
        "operations": count,
        "health_after_s": after,
        "poll_s": poll,
        "succeeded": succeeded,
        "failed": failed,
        "first_start_to_last_finish_s": seconds,
        "budget_s": after + 2 * poll,
        "queueing_s": queued,
        "steps": steps,
        "steps_per_s": steps / seconds if seconds > 0 else None,
        "worker_cpu_s": cpu,
        "worker_cpu_ms_per_operation": 1000 * cpu / count,
    }


def run(args):
    runs = []
    for kind in args.databases:
        plan = [(args.operations, args.health_after, args.poll)]
        if args.large:
            plan += [
                (args.large, args.health_after, args.poll),
                (args.large, 0, 0),  # one step each: the worker's ceiling in steps per second
            ]
        for count, after, poll in plan:
            log(f"operations ({kind}): {count} restarts, healthy after {after} s, every {poll} s")
            result = run_one(kind, count, after, poll)
            verdict = (
                "within" if result["first_start_to_last_finish_s"] <= result["budget_s"] else "OVER"
            )
            log(
                f"  {result['succeeded']} succeeded, {result['failed']} failed; the last finished "
                f"{result['first_start_to_last_finish_s']:.1f} s after the first started "
                f"({verdict} T + 2P = {result['budget_s']:g} s); {result['steps']} steps, "
                f"{result['steps_per_s'] or 0:.1f} steps/s; default worker CPU "
                f"{result['worker_cpu_ms_per_operation']:.1f} ms per operation"
            )
            runs.append(result)
    return {"runs": runs}
