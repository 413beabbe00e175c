"""Ending access never waits behind a restart: expiry and removal run on a queue of their
own, with a worker of their own, as run_portal starts them."""

import subprocess
import time
from datetime import timedelta

import pytest
from django.conf import settings

from environments import operations
from environments.demo.run_portal import Command as RunPortal
from environments.models import FirewallRule, Operation, OperationKind, Outcome
from tests.conftest import run_worker, subprocess_env
from tests.live import stop

pytestmark = pytest.mark.django_db(transaction=True)


def start_worker_as_run_portal_does(queue, log_path, **env):
    command = RunPortal()._worker(str(settings.BASE_DIR / "manage.py"), queue)
    with open(log_path, "a") as log:
        return subprocess.Popen(
            [*command, "--no-startup-delay"],
            cwd=settings.BASE_DIR,
            env=subprocess_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_a_grant_ends_on_time_while_a_long_restart_runs(environment, manager, tmp_path, settings):
    settings.SIMULATED_DRIVER_DELAY = 0
    operations.enable_access(
        environment,
        manager,
        name="office",
        cidr="203.0.113.7/32",
        reason="support",
        lifetime=timedelta(seconds=4),
    )
    run_worker()  # applied; its expiry task waits on the access queue
    rule = FirewallRule.objects.get()
    assert rule.applied_at is not None

    workers = [
        start_worker_as_run_portal_does("default", tmp_path / "w.log", SIMULATED_DRIVER_DELAY=60),
        start_worker_as_run_portal_does(settings.ACCESS_QUEUE, tmp_path / "a.log"),
    ]
    try:
        restart = operations.restart_service(environment, manager, "aos", reason="long")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rule.refresh_from_db()
            if rule.removed_at is not None:
                break
            time.sleep(0.2)
    finally:
        workers[0].kill()  # mid-restart: no need to wait for it
        workers[0].wait()
        stop(workers[1])

    assert rule.removed_at is not None, (tmp_path / "a.log").read_text()[-3000:]
    late = (rule.removed_at - rule.expires_at).total_seconds()
    assert late < 5, f"removed {late:.1f} s after its expiry"
    restart.refresh_from_db()
    assert restart.outcome == Outcome.RUNNING  # still restarting all along
    removal = Operation.objects.get(kind=OperationKind.REMOVE_ACCESS)
    assert removal.outcome == Outcome.SUCCEEDED
