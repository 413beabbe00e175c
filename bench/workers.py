"""db_worker throughput: restarts queued across environments, run by one and two workers.

Each run starts from the same fresh database (a copy of a template with the environments
and no history), queues one Restart service per environment through
``environments.operations`` (as the portal's views do), then starts the db_worker
processes with ``--batch``: they run every task that is due and exit. The rate is the
number of operations divided by the time from the first task's start to the last
task's end, as the task table records them (process start-up is not counted; the wall
time with it is shown beside it).
"""

import os
import subprocess
import time

from bench import common
from bench.common import log

TEMPLATE = "lcs_bench_workers_template"
DATABASE = "lcs_bench_workers"
WORKER_ARGS = ["--batch", "--no-startup-delay", "--no-reload", "--queue-name", "*"]


def make_template(environments):
    url = common.create_database(TEMPLATE, fresh=True)
    env = common.portal_env(url)
    common.manage(env, "migrate", "--no-input", "-v0")
    common.manage(env, "seed_scale", "--environments", str(environments), "--history", "0")
    # Every environment eligible for Restart service.
    common.query(
        url,
        "UPDATE environments_environment SET tier = 2, type = 'sandbox', "
        "subscription = 'microsoft', deployment = 'self_service'",
    )


def queue_restarts(env, count):
    code = (
        "import random\n"
        "from django.contrib.auth import get_user_model\n"
        "from environments import operations\n"
        "from environments.demo.seed_scale import ADMIN_USERNAME, PREFIX\n"
        "from environments.models import Environment\n"
        "admin = get_user_model().objects.get(username=ADMIN_USERNAME)\n"
        "environments = Environment.objects.filter(slug__startswith=PREFIX).order_by('slug')\n"
        f"for environment in environments[:{count}]:\n"
        "    operations.restart_service(environment, admin, random.choice(['aos', 'dixf', 'mr']))\n"
    )
    common.manage(env, "shell", "--no-imports", "-c", code)


def run_workers(env, url, processes, count):
    common.VAR_DIR.mkdir(parents=True, exist_ok=True)
    output = open(common.VAR_DIR / f"db_worker-{processes}.log", "w")  # noqa: SIM115
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [common.PYTHON, "manage.py", "db_worker", *WORKER_ARGS, "--worker-id", f"bench-{n}"],
            cwd=common.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        for n in range(processes)
    ]
    cpu = 0.0
    try:
        for worker in workers:
            # wait4 reaps the worker and tells its CPU time (user + system).
            _, status, usage = os.wait4(worker.pid, 0)
            worker.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait()
        output.close()
    wall = time.monotonic() - started
    (done, first, last) = common.query(
        url,
        "SELECT count(*), min(started_at), max(finished_at) "
        "FROM django_tasks_database_dbtaskresult "
        "WHERE task_path = 'environments.operations.core.run_step' AND status = 'SUCCESSFUL'",
    )[0]
    succeeded = common.query(
        url,
        "SELECT count(*) FROM environments_operation WHERE kind = 'restart_service' "
        "AND outcome = 'succeeded'",
    )[0][0]
    if done != count or succeeded != count:
        raise RuntimeError(f"{processes} workers: {done} tasks, {succeeded} restarts of {count}")
    seconds = (last - first).total_seconds()
    return {
        "processes": processes,
        "rate": done / seconds,
        "seconds": seconds,
        "wall": wall,
        "worker_cpu_ms_per_task": 1000 * cpu / done,
    }


def run(args):
    count = args.restarts
    log(f"workers: a template database with {count} environments")
    make_template(count)
    runs = []
    for processes in (1, 2):
        url = common.create_database(DATABASE, fresh=True, template=TEMPLATE)
        env = common.portal_env(url, SIMULATED_DRIVER_DELAY="0")
        queue_restarts(env, count)
        result = run_workers(env, url, processes, count)
        log(
            f"{processes} db_worker: {result['rate']:.1f} completions/s "
            f"({result['seconds']:.1f} s; wall {result['wall']:.1f} s; worker CPU "
            f"{result['worker_cpu_ms_per_task']:.1f} ms per task)"
        )
        runs.append(result)
    return {"restarts": count, "worker_args": WORKER_ARGS, "runs": runs}
