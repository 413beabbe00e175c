"""The Local sandbox: AOS, DIXF and MR are real processes under a real supervisord, and
the portal restarts them through the command driver and supervisorctl."""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from environments.demo.local_sandbox.supervisord import SERVICES, SLUG, LocalSandbox
from environments.models import OperationKind, Outcome, ServiceState, Status
from tests.conftest import make_environment, run_worker, subprocess_env
from tests.live import free_ports, is_running, wait_for


@contextlib.contextmanager
def sandbox_directory():
    # Short, so the unix socket's path fits in sun_path wherever pytest keeps tmp_path.
    with tempfile.TemporaryDirectory(prefix="lcs-sandbox-") as directory:
        yield Path(directory)


@contextlib.contextmanager
def running(sandbox):
    process = sandbox.start(quiet=True)
    try:
        assert sandbox.wait_until_up(process), "supervisord did not bring the services up"
        yield process
    finally:
        sandbox.stop(process)


@pytest.fixture
def sandbox(settings):
    """A supervisord in a temp directory with the three services on free ports, and the
    driver configuration pointing the local-sandbox environment at it."""
    with sandbox_directory() as directory:
        settings.PORTAL_DRIVERS_FILE = directory / "drivers.json"
        # AOS takes two seconds to listen, while supervisord calls a start successful
        # after one: supervisorctl returns before the new process answers.
        sandbox = LocalSandbox(
            directory=directory,
            ports=dict(zip(SERVICES, free_ports(3), strict=True)),
            startup_delay=2.0,
            startsecs=1,
            health_interval=0.5,
        )
        assert sandbox.install() is None
        with running(sandbox):
            yield sandbox


@pytest.fixture
def local(project):
    return make_environment(project, name="Local sandbox", slug=SLUG)


def act(kind, environment, user, start, **kwargs):
    operation = start(kind, environment, user, **kwargs)
    run_worker()
    environment.refresh_from_db()
    operation.refresh_from_db()
    return operation


def test_restarting_aos_runs_a_new_process_and_settles_only_once_it_answers(
    local, manager, start, sandbox
):
    before = {service: sandbox.status(service) for service in SERVICES}

    operation = act(OperationKind.RESTART_SERVICE, local, manager, start, service_kind="aos")
    after = sandbox.status("aos")

    assert local.status == Status.DEPLOYED, operation.error
    assert operation.outcome == Outcome.SUCCEEDED
    assert local.services.get(kind="aos").state == ServiceState.RUNNING
    assert after["pid"] != before["aos"]["pid"]
    assert after["started_at"] > before["aos"]["started_at"]
    # Only AOS was restarted.
    assert sandbox.status("dixf")["pid"] == before["dixf"]["pid"]
    assert sandbox.status("mr")["pid"] == before["mr"]["pid"]
    # supervisorctl returned while the new AOS was still starting; the portal waited
    # for it to answer, and the answer that passed came from the new process.
    log = operation.log_text
    assert "aos: started" in log
    assert "Health check of AOS not passed yet (attempt 1)" in log
    passed = log.index("Health check of AOS passed")
    assert log.index("aos: started") < log.index("not passed yet") < passed
    assert f'"pid": {after["pid"]}' in log[passed:]
    new_process_listens = datetime.fromisoformat(after["started_at"]) + timedelta(
        seconds=sandbox.startup_delay
    )
    assert operation.finished_at >= new_process_listens


def test_a_restart_whose_service_does_not_come_back_fails_and_resume_brings_it_back(
    local, manager, start, sandbox, settings
):
    from environments.drivers import config

    # A restart command that stops the service and never starts it again.
    settings.OPERATION_DEADLINE_SECONDS = 3
    broken = dict(sandbox.driver_config(), restart=sandbox.supervisorctl("stop", "{service}"))
    config.write_environment(SLUG, broken)
    pid = sandbox.status("mr")["pid"]

    failed = act(OperationKind.RESTART_SERVICE, local, manager, start, service_kind="mr")

    assert local.status == Status.FAILED
    assert "MR on Local sandbox did not pass its health check" in failed.error
    assert "does not answer" in failed.error
    assert sandbox.status("mr") is None
    assert not is_running(pid)

    config.write_environment(SLUG, sandbox.driver_config())
    settings.OPERATION_DEADLINE_SECONDS = 60
    resumed = act(OperationKind.RESUME, local, manager, start)

    assert local.status == Status.DEPLOYED, resumed.error
    assert sandbox.status("mr")["pid"] != pid


def test_maintenance_mode_flips_the_flag_the_aos_reports(local, manager, start, sandbox):
    assert sandbox.status("aos")["maintenance"] is False

    enabling = act(OperationKind.ENABLE_MAINTENANCE, local, manager, start)

    assert local.status == Status.IN_MAINTENANCE, enabling.error
    assert sandbox.status("aos")["maintenance"] is True
    assert '"maintenance": true' in enabling.log_text

    disabling = act(OperationKind.DISABLE_MAINTENANCE, local, manager, start)

    assert local.status == Status.DEPLOYED, disabling.error
    assert sandbox.status("aos")["maintenance"] is False
    assert '"maintenance": false' in disabling.log_text


def test_the_periodic_health_check_finds_an_aos_stopped_behind_the_portals_back(local, sandbox):
    from environments.operations.health import check_service

    subprocess.run(sandbox.supervisorctl("stop", "aos"), check=True, capture_output=True)
    assert sandbox.status("aos") is None
    aos = local.services.get(kind="aos")
    assert aos.state == ServiceState.RUNNING  # what the page said

    aos = check_service(aos.pk)

    assert aos.state == ServiceState.STOPPED
    assert "does not answer" in aos.check_detail


def test_stopping_supervisord_stops_every_service():
    with sandbox_directory() as directory:
        ports = dict(zip(SERVICES, free_ports(3), strict=True))
        sandbox = LocalSandbox(directory=directory, ports=ports)
        sandbox.write_supervisord_conf()
        with running(sandbox) as process:
            pids = [sandbox.status(service)["pid"] for service in SERVICES]
            sandbox.stop(process)
            assert process.returncode == 0
        assert wait_for(lambda: not any(map(is_running, pids)), timeout=5), pids


@pytest.mark.django_db(transaction=True)
def test_run_portal_runs_the_local_sandbox_and_ctrl_c_leaves_no_process_behind(project):
    make_environment(project, name="Local sandbox", slug=SLUG)
    with sandbox_directory() as directory:
        ports = free_ports(4)
        sandbox = LocalSandbox(
            directory=directory, ports=dict(zip(SERVICES, ports[:3], strict=True))
        )
        env = subprocess_env(
            PORTAL_LOCAL_SANDBOX_DIR=directory,
            PORTAL_LOCAL_SANDBOX_PORTS=",".join(map(str, ports[:3])),
            PORTAL_DRIVERS_FILE=directory / "drivers.json",
        )
        portal = subprocess.Popen(
            [
                sys.executable,
                str(django_settings.BASE_DIR / "manage.py"),
                "run_portal",
                "--bind",
                f"127.0.0.1:{ports[3]}",
                "--workers",
                "1",
            ],
            env=env,
            cwd=django_settings.BASE_DIR,
            # A terminal's Ctrl-C goes to the whole foreground process group.
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert sandbox.wait_until_up(portal, timeout=30), "the sandbox did not come up"
            assert (directory / "drivers.json").exists()
            pids = [sandbox.status(service)["pid"] for service in SERVICES]
            pids.append(int((directory / "supervisord.pid").read_text()))

            os.killpg(portal.pid, signal.SIGINT)

            assert portal.wait(timeout=20) == 0
            assert wait_for(lambda: not any(map(is_running, pids)), timeout=5), pids
            assert all(sandbox.status(service) is None for service in SERVICES)
        finally:
            if portal.poll() is None:
                os.killpg(portal.pid, signal.SIGKILL)
                portal.wait()
