"""Ending access never waits behind a restart: expiry and removal run on a queue of their
own, with a worker of their own, as run_portal starts them."""

import subprocess
from datetime import timedelta

import pytest
from django.conf import settings

from environments import operations
from environments.demo.run_portal import Command as RunPortal
from environments.models import FirewallRule, Operation, OperationKind, Outcome
from tests.conftest import run_worker, subprocess_env
from tests.live import held_drivers, stop, wait_for

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


def test_a_grant_ends_at_its_expiry_while_a_restart_runs_on(
    environment, manager, tmp_path, settings
):
    """The restart's driver is held until the test lets it go; the grant is removed at
    its expiry all the same, while the restart is still running."""
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

    release, held = held_drivers(tmp_path, environment.slug)
    workers = [
        start_worker_as_run_portal_does(
            "default", tmp_path / "w.log", PORTAL_DRIVERS_FILE=held["PORTAL_DRIVERS_FILE"]
        ),
        start_worker_as_run_portal_does(settings.ACCESS_QUEUE, tmp_path / "a.log"),
    ]
    try:
        restart = operations.restart_service(environment, manager, "aos", reason="long")
        running = Operation.objects.filter(pk=restart.pk, outcome=Outcome.RUNNING)
        assert wait_for(running.exists, timeout=60), (tmp_path / "w.log").read_text()[-3000:]
        removed = wait_for(lambda: FirewallRule.objects.get().removed_at is not None, timeout=60)
        assert removed, (tmp_path / "a.log").read_text()[-3000:]
        restart.refresh_from_db()
        assert restart.outcome == Outcome.RUNNING  # held: still restarting all along
    finally:
        release.touch()
        workers[0].kill()  # mid-restart: no need to wait for it
        workers[0].wait()
        stop(workers[1])

    rule.refresh_from_db()
    assert rule.removed_at >= rule.expires_at
    removal = Operation.objects.get(kind=OperationKind.REMOVE_ACCESS)
    assert removal.outcome == Outcome.SUCCEEDED
    assert removal.reason.startswith("Expired at ")
