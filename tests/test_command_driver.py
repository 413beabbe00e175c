"""The command driver: configured argument lists, run without a shell, with a timeout,
their output kept (bounded), and a health check before the environment settles."""

import json
import re
import sys

import pytest

from environments.models import OperationKind, Outcome, ServiceState, Status
from tests.conftest import make_environment, run_worker
from tests.live import is_running, wait_for

RESTART = OperationKind.RESTART_SERVICE
#: A command that waits for the test gives up after this long: far longer than any test
#: runs, so it ends a wait only when the test itself has failed.
HANG_GUARD_SECONDS = 120


def py(code):
    """An argument list running a line of Python: no shell anywhere."""
    return [sys.executable, "-c", code]


OK = py("print('restarted {service} on {environment}')")
HEALTHY = py("print('{service} is healthy')")


@pytest.fixture
def configure(settings, tmp_path):
    """Write the driver configuration: configure(environment, restart=[...], ...)."""
    settings.PORTAL_DRIVERS_FILE = tmp_path / "drivers.json"

    def _configure(environment, **entry):
        entry.setdefault("driver", "command")
        entry.setdefault("health_interval", 1)
        settings.PORTAL_DRIVERS_FILE.write_text(json.dumps({environment.slug: entry}))

    return _configure


def restart_aos(environment, user, start):
    operation = start(RESTART, environment, user, service_kind="aos")
    run_worker()
    environment.refresh_from_db()
    operation.refresh_from_db()
    return operation


def test_restart_runs_the_command_then_the_health_check_and_settles_deployed(
    environment, manager, start, configure
):
    configure(environment, restart=OK, health=HEALTHY)

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.DEPLOYED, operation.error
    assert operation.outcome == Outcome.SUCCEEDED
    assert "with the command driver" in operation.log_text
    assert "restarted aos on demo-sandbox" in operation.log_text
    assert "Health check of AOS passed (attempt 1" in operation.log_text
    assert "aos is healthy" in operation.log_text
    assert environment.services.get(kind="aos").state == ServiceState.RUNNING


def test_the_health_check_runs_until_it_passes(environment, manager, start, configure, tmp_path):
    attempts = tmp_path / "attempts"
    # Passes on the third attempt only, as a service does that takes a while to come up.
    health = py(
        f"import pathlib, sys; p = pathlib.Path({str(attempts)!r}); "
        "n = len(p.read_text()) + 1 if p.exists() else 1; p.write_text('x' * n); "
        "sys.exit(0 if n >= 3 else 'not listening yet')"
    )
    configure(environment, restart=OK, health=health)

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.DEPLOYED, operation.error
    assert attempts.read_text() == "xxx"
    assert (
        "Health check of AOS not passed yet (attempt 1): exited with status 1: not listening yet"
        in operation.log_text
    )
    assert "Health check of AOS passed (attempt 3" in operation.log_text
    # The same failure is logged once, not once per attempt.
    assert operation.log_text.count("not passed yet") == 1


def test_a_command_that_exits_non_zero_fails_with_the_tail_of_stderr(
    environment, manager, start, configure
):
    failing = py(
        "import sys; print('stopping aos'); sys.stderr.write('noise ' * 2000); "
        "sys.stderr.write('Failed to restart aos.service: Unit is masked.'); sys.exit(5)"
    )
    configure(environment, restart=failing, health=HEALTHY)

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.FAILED
    assert operation.outcome == Outcome.FAILED
    assert operation.error.startswith("Restarting AOS on Demo sandbox failed: ")
    assert "exited with status 5: ..." in operation.error
    assert operation.error.endswith("Failed to restart aos.service: Unit is masked.")
    assert len(operation.error) < 1200
    assert "stopping aos" in operation.log_text
    assert "Health check" not in operation.log_text
    assert environment.services.get(kind="aos").state == ServiceState.FAILED


def test_a_command_that_hangs_past_its_timeout_is_stopped_with_its_children_and_fails(
    environment, manager, start, configure, tmp_path
):
    """The command and its child wait for a file the test creates only afterwards: the
    operation fails at the command's timeout while they still wait (were it to wait for
    them, they would end by themselves, much later, and the restart would succeed)."""
    pids, release = tmp_path / "pids", tmp_path / "release"
    wait_for_release = (
        "import os, time\n"
        f"for _ in range({HANG_GUARD_SECONDS * 20}):\n"
        f"    if os.path.exists({str(release)!r}): break\n"
        "    time.sleep(0.05)\n"
    )
    hanging = py(
        "import os, subprocess, sys; "
        f"child = subprocess.Popen([sys.executable, '-c', {wait_for_release!r}]); "
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); "
        "print('waiting for the service to stop', flush=True); "
        "sys.stderr.write('still waiting for aos\\n'); sys.stderr.flush(); "
        f"exec({wait_for_release!r})"
    )
    configure(environment, restart=hanging, health=HEALTHY, timeout=1)

    try:
        operation = restart_aos(environment, manager, start)

        assert environment.status == Status.FAILED
        assert "did not finish within 1 s and was stopped: still waiting for aos" in (
            operation.error
        )
        assert "waiting for the service to stop" in operation.log_text
        command_pid, child_pid = map(int, pids.read_text().split())
        gone = wait_for(lambda: not is_running(command_pid) and not is_running(child_pid), 30)
        assert not is_running(command_pid)
        assert gone, "the command's child outlived the timeout"
    finally:
        release.touch()


def test_a_health_check_that_never_passes_fails_at_the_deadline(
    environment, manager, start, configure, settings
):
    settings.OPERATION_DEADLINE_SECONDS = 3
    # sh, not Python: a check that starts in a millisecond leaves room for several tries
    # before the deadline, however loaded the machine.
    configure(
        environment,
        restart=OK,
        health=["sh", "-c", "echo 'AOS answers HTTP 503' >&2; exit 1"],
        health_interval=0.25,
    )

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.FAILED
    assert operation.error.startswith(
        "AOS on Demo sandbox did not pass its health check before the operation's deadline ("
    )
    # Retried, not given up after one failure: it ran until the deadline had passed.
    attempts = int(re.search(r"\((\d+) attempts in", operation.error).group(1))
    assert attempts >= 2
    assert operation.finished_at >= operation.deadline
    assert "exited with status 1: AOS answers HTTP 503" in operation.error
    assert "restarted aos" in operation.log_text
    assert environment.services.get(kind="aos").state == ServiceState.FAILED


def test_a_check_the_deadline_cuts_short_leaves_the_error_to_the_last_whole_check(
    environment, manager, start, configure, settings, tmp_path
):
    """The first check fails at once; the second hangs and is cut short by the deadline
    after a fraction of its timeout: the error says what the first one found."""
    settings.OPERATION_DEADLINE_SECONDS = 3
    attempts = tmp_path / "attempts"
    health = py(
        f"import pathlib, sys, time; p = pathlib.Path({str(attempts)!r}); "
        "first = not p.exists(); p.touch(); "
        "sys.exit('AOS answers HTTP 503') if first else time.sleep(30)"
    )
    configure(environment, restart=OK, health=health, health_interval=2.5)

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.FAILED
    assert "did not pass its health check before the operation's deadline" in operation.error
    assert operation.error.endswith("exited with status 1: AOS answers HTTP 503")


def test_a_hanging_health_check_counts_as_a_failed_attempt(
    environment, manager, start, configure, settings
):
    settings.OPERATION_DEADLINE_SECONDS = 2
    configure(environment, restart=OK, health=py("import time; time.sleep(30)"), timeout=0.5)

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.FAILED
    assert "did not pass its health check before the operation's deadline" in operation.error
    assert "and was stopped" in operation.error


def test_resume_after_fixing_the_command_succeeds(environment, manager, start, configure, tmp_path):
    configure(
        environment,
        restart=py("import sys; sys.exit('unit aos.service not found')"),
        health=HEALTHY,
    )
    failed = restart_aos(environment, manager, start)
    assert environment.status == Status.FAILED
    assert "unit aos.service not found" in failed.error

    configure(environment, restart=py("print('restarted aos.service')"), health=HEALTHY)
    resumed = start(OperationKind.RESUME, environment, manager)
    run_worker()

    environment.refresh_from_db()
    resumed.refresh_from_db()
    assert environment.status == Status.DEPLOYED, resumed.error
    assert resumed.outcome == Outcome.SUCCEEDED
    assert resumed.failed_operation == failed
    assert "restarted aos.service" in resumed.log_text
    assert environment.services.get(kind="aos").state == ServiceState.RUNNING


def test_output_larger_than_the_bound_is_cut_and_the_log_says_so(
    environment, manager, start, configure
):
    chatty = py("import sys; sys.stdout.write('BEGIN' + 'x' * 100000 + 'END')")
    configure(environment, restart=chatty, health=HEALTHY, output_limit=1000)

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.DEPLOYED, operation.error
    assert (
        "[cut 99008 bytes of stdout here: 100008 bytes in all, kept the first 500 and the last 500]"
        in operation.log_text
    )
    assert "BEGIN" in operation.log_text
    assert "END" in operation.log_text
    assert len(operation.log_text) < 4000


def test_maintenance_mode_runs_its_commands_and_waits_for_the_flag(
    environment, manager, start, configure, tmp_path
):
    flag = tmp_path / "maintenance"
    configure(
        environment,
        maintenance_on=py(f"import pathlib; pathlib.Path({str(flag)!r}).touch()"),
        maintenance_off=py(f"import pathlib; pathlib.Path({str(flag)!r}).unlink()"),
        maintenance_health=py(
            f"import os, sys; on = os.path.exists({str(flag)!r}); "
            "sys.exit(0 if on == ('{maintenance}' == 'on') else 'maintenance is not {maintenance}')"
        ),
    )

    enabling = start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    run_worker()
    environment.refresh_from_db()
    enabling.refresh_from_db()
    assert environment.status == Status.IN_MAINTENANCE, enabling.error
    assert flag.exists()
    assert "Health check of maintenance mode on passed" in enabling.log_text

    disabling = start(OperationKind.DISABLE_MAINTENANCE, environment, manager)
    run_worker()
    environment.refresh_from_db()
    disabling.refresh_from_db()
    assert environment.status == Status.DEPLOYED, disabling.error
    assert not flag.exists()


def test_maintenance_mode_fails_when_the_service_never_reports_it(
    environment, manager, start, configure, settings
):
    settings.OPERATION_DEADLINE_SECONDS = 1
    configure(
        environment,
        maintenance_on=py("pass"),
        maintenance_off=py("pass"),
        maintenance_health=py("import sys; sys.exit('AOS reports maintenance mode off, not on.')"),
    )

    operation = start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    run_worker()

    environment.refresh_from_db()
    operation.refresh_from_db()
    assert environment.status == Status.FAILED
    assert "Demo sandbox (maintenance mode on) did not pass its health check" in operation.error
    assert "AOS reports maintenance mode off, not on." in operation.error


def test_arguments_reach_the_command_as_they_are_without_a_shell(
    environment, manager, start, configure, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # where "touch pwned" would land
    configure(
        environment,
        restart=[sys.executable, "-c", "import sys; print(sys.argv[1:])", "; touch pwned", "$HOME"],
        health=HEALTHY,
    )

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.DEPLOYED, operation.error
    assert "['; touch pwned', '$HOME']" in operation.log_text
    assert not (tmp_path / "pwned").exists()


def test_a_service_without_a_health_check_fails_before_anything_runs(
    environment, manager, start, configure, tmp_path
):
    marker = tmp_path / "restarted"
    configure(
        environment,
        restart=py(f"import pathlib; pathlib.Path({str(marker)!r}).touch()"),
        health={"dixf": HEALTHY},
    )

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.FAILED
    assert "No AOS health check is configured for Demo sandbox" in operation.error
    assert '"health" → "aos"' in operation.error
    assert not marker.exists()


def test_a_command_that_cannot_be_started_fails_with_the_reason(
    environment, manager, start, configure
):
    configure(environment, restart=["/nonexistent/bin/systemctl", "restart", "aos"], health=OK)

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.FAILED
    assert "`/nonexistent/bin/systemctl restart aos` could not be started" in operation.error
    assert "No such file or directory" in operation.error


def test_a_misspelt_setting_is_refused(environment, manager, start, configure):
    configure(environment, restart=OK, health=OK, maintenance_heath=OK)

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.FAILED
    assert "Unknown setting 'maintenance_heath'" in operation.error


def test_an_unknown_driver_in_the_file_fails_with_what_is_known(
    environment, manager, start, configure
):
    configure(environment, driver="ansible")

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.FAILED
    assert "Unknown driver 'ansible'" in operation.error
    assert "known: simulated, command" in operation.error


def test_environments_the_file_does_not_name_use_portal_driver(
    project, environment, manager, start, configure
):
    configure(environment, restart=OK, health=HEALTHY)
    other = make_environment(project)

    operation = restart_aos(other, manager, start)

    assert other.status == Status.DEPLOYED
    assert "with the simulated driver" in operation.log_text


def test_a_toml_configuration_file_works_too(environment, manager, start, settings, tmp_path):
    settings.PORTAL_DRIVERS_FILE = tmp_path / "drivers.toml"
    settings.PORTAL_DRIVERS_FILE.write_text(
        f"""
[{environment.slug}]
driver = "command"
health_interval = 0.05
restart = ["{sys.executable}", "-c", "print('toml restart of {{service}}')"]
health = ["{sys.executable}", "-c", "pass"]
"""
    )

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.DEPLOYED, operation.error
    assert "toml restart of aos" in operation.log_text


def test_an_unreadable_configuration_file_fails_the_operation_with_its_path(
    environment, manager, start, settings, tmp_path
):
    settings.PORTAL_DRIVERS_FILE = tmp_path / "drivers.json"
    settings.PORTAL_DRIVERS_FILE.write_text("{not json")

    operation = restart_aos(environment, manager, start)

    assert environment.status == Status.FAILED
    assert f"The driver configuration {settings.PORTAL_DRIVERS_FILE} is not valid" in (
        operation.error
    )
