"""The `portal` command line, run as the installed script against a live gunicorn and a
db_worker: every exit code (done, failed, refused, timed out), --wait's progress,
--json, database access, history streaming and login. It never imports Django."""

import csv
import io
import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from environments import windows
from environments.models import (
    DatabaseAccount,
    MaintenanceWindow,
    Operation,
    Outcome,
    Status,
    WindowState,
)
from tests.api_clients import token_for
from tests.conftest import subprocess_env
from tests.helpers import add_history
from tests.live import Gunicorn, start_worker, stop, wait_for

PORTAL = Path(sys.executable).parent / "portal"
DRIVER_DELAY = 1.0


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker, tmp_path_factory):
    """gunicorn and a db_worker on the test database for the whole module (each test's
    data is its own: the tables are emptied between tests, the processes stay)."""
    folder = tmp_path_factory.mktemp("cli")
    failures = folder / "simulated-failures"
    failures.write_text("")
    with django_db_blocker.unblock():
        env = subprocess_env(
            SIMULATED_DRIVER_DELAY=DRIVER_DELAY, SIMULATED_DRIVER_FAIL_FILE=failures
        )
    server = Gunicorn(folder / "gunicorn.log", workers=2, threads=4, env=env)
    worker = None
    try:
        server.start()
        worker = start_worker(folder / "worker.log", env=env)
        yield {"url": f"http://127.0.0.1:{server.port}", "failures": failures, "dir": folder}
    finally:
        stop(worker)
        server.stop()
        log = server.log()
        assert "Traceback" not in log, log[-3000:]


@pytest.fixture
def portal(live, transactional_db, manager, tmp_path):
    """Run `portal ...` as the manager's Maintain token; returns (exit code, stdout,
    stderr)."""
    _, secret = token_for(manager, name="cli")
    live["failures"].write_text("")

    def run(*args, token=secret, timeout=60, **extra_env):
        env = dict(
            os.environ,
            PORTAL_URL=live["url"],
            PORTAL_TOKEN=token,
            PORTAL_CONFIG=str(tmp_path / "config.json"),
            COLUMNS="200",
        )
        env.update(extra_env)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        result = subprocess.run(
            [str(PORTAL), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return result.returncode, result.stdout, result.stderr

    yield run
    # The worker finishes what the test started (an operation's task, its notification)
    # before the tables are emptied for the next test: a task row emptied from under it
    # would stop the worker the whole module shares.
    assert wait_for(idle, timeout=30), list(DBTaskResult.objects.values("task_path", "status"))


def idle():
    return not (DBTaskResult.objects.ready().exists() or DBTaskResult.objects.running().exists())


def settled(environment):
    environment.refresh_from_db()
    return not environment.operations.active().exists()


def test_restart_with_wait_shows_the_status_change_and_exits_0(portal, environment):
    code, out, err = portal("restart", environment.slug, "aos", "--reason", "cli", "--wait")
    assert code == 0, out + err
    assert err.index("Restarting service") < err.index("Deployed")
    assert "Succeeded" in out and "Restart service: AOS" in out
    operation = Operation.objects.get()
    assert operation.via == "API (cli)" and operation.outcome == Outcome.SUCCEEDED


def test_maintenance_on_and_off_with_wait(portal, environment):
    code, out, err = portal("maintenance", environment.slug, "on", "--reason", "patch", "--wait")
    assert code == 0, out + err
    assert "Servicing" in err and "In Maintenance" in out
    environment.refresh_from_db()
    assert environment.status == Status.IN_MAINTENANCE
    code, out, err = portal("maintenance", environment.slug, "off", "--reason", "done", "--wait")
    assert code == 0, out + err
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED


def test_a_failure_exits_1_with_the_error_and_the_log_then_resume_exits_0(
    portal, live, environment
):
    live["failures"].write_text(f"{environment.slug} restart_service\n")
    code, out, err = portal("restart", environment.slug, "mr", "--reason", "cli", "--wait")
    assert code == 1, out + err
    assert "Failed" in out and "Simulated failure" in out
    assert "Driver log" in out and "simulated: restarting MR" in out

    code, out, err = portal("restart", environment.slug, "aos", "--reason", "again", "--wait")
    assert code == 2, out + err  # refused while Failed: nothing was done
    assert "not possible while" in err

    live["failures"].write_text("")
    code, out, err = portal("resume", environment.slug, "--reason", "fixed", "--wait")
    assert code == 0, out + err
    assert "Resume: Restart service: MR" in out
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED


def test_a_refusal_exits_2_with_the_reason(portal, environment, member):
    code, out, err = portal("maintenance", environment.slug, "off", "--reason", "x", "--wait")
    assert code == 2
    assert "Disable Maintenance mode is not possible" in err
    _, secret = token_for(member)
    code, out, err = portal("abort", environment.slug, "--reason", "x", token=secret)
    assert code == 2 and "403" in err
    code, out, err = portal("maintenance", environment.slug, "on", "--wait", "--json")
    assert code == 2  # the portal wants a reason, and a script gave none
    assert json.loads(out)["errors"][0]["field"] == "reason"
    assert not Operation.objects.exists()


def test_a_timeout_exits_3_and_the_operation_goes_on(portal, environment):
    code, out, err = portal(
        "restart", environment.slug, "dixf", "--reason", "cli", "--wait", "--timeout", "0.2"
    )
    assert code == 3, out + err
    operation = Operation.objects.get()
    assert f"portal operation {operation.activity_id} --wait" in out
    code, out, err = portal("operation", str(operation.activity_id), "--wait")
    assert code == 0 and "Succeeded" in out


def test_json_output_for_scripts(portal, environment):
    code, out, _ = portal("envs", "--json")
    assert code == 0 and json.loads(out)[0]["slug"] == environment.slug
    code, out, _ = portal("status", environment.slug, "--json")
    assert json.loads(out)["status"] == "deployed"
    code, out, _ = portal("restart", environment.slug, "aos", "--reason", "cli", "--wait", "--json")
    assert code == 0
    operation = json.loads(out)
    assert operation["outcome"] == "succeeded" and operation["log"]


def test_database_access_prints_the_credentials_once(portal, environment):
    code, out, err = portal("access", "db", environment.slug, "--read-write", "--reason", "debug")
    assert code == 0, out + err
    account = DatabaseAccount.objects.get()
    assert account.level == "read_write" and account.applied_at is not None
    assert account.username in out and environment.database_name in out
    assert "password" in out and "shown this once" in out
    code, out, _ = portal("status", environment.slug)
    assert account.username in out
    code, out, _ = portal("access", "revoke", str(account.pk))
    assert code == 0 and "Revoked" in out


def test_a_firewall_rule_from_the_command_line(portal, environment):
    code, out, err = portal(
        "access", "rule", environment.slug, "203.0.113.7", "--reason", "vpn", "--wait", "--json"
    )
    assert code == 0, out + err
    answer = json.loads(out)
    assert answer["firewall_rule"]["cidr"] == "203.0.113.7/32"
    assert answer["operation"]["outcome"] == "succeeded"


def test_a_window_scheduled_in_local_time_is_listed_cancelled_and_an_overlap_exits_2(
    portal, environment
):
    day = (timezone.now() + timedelta(days=3)).date()
    pacific = {"TZ": "America/Los_Angeles"}
    five_am = datetime(day.year, day.month, day.day, 5, tzinfo=ZoneInfo(pacific["TZ"]))
    schedule = ("window", "schedule", environment.slug, "--reason", "Upgrade to 10.0.40")
    start, end = f"{day} 05:00", f"{day} 06:00"
    code, out, err = portal(*schedule, "--start", start, "--end", end, **pacific)
    assert code == 0, out + err
    window = MaintenanceWindow.objects.get()
    assert window.starts_at == five_am and window.starts_at.tzinfo == UTC
    assert f"Scheduled window {window.pk}" in out and f"05:00 {five_am:%Z}" in out

    code, out, err = portal("window", "list", environment.slug, **pacific)
    assert code == 0 and "Upgrade to 10.0.40" in out and f"06:00 {five_am:%Z}" in out
    code, out, err = portal("status", environment.slug, **pacific)
    assert code == 0 and f"Maintenance window: {day} 05:00 {five_am:%Z}" in out

    overlap = (five_am + timedelta(minutes=30)).astimezone(UTC)  # an offset wins over TZ
    later = overlap + timedelta(hours=1)
    code, out, err = portal(*schedule, "--start", overlap.isoformat(), "--end", later.isoformat())
    assert code == 2 and "overlaps another window" in err, out + err

    code, out, err = portal("window", "cancel", str(window.pk))
    assert code == 0 and "Cancelled" in out
    window.refresh_from_db()
    assert window.state == WindowState.CANCELLED
    assert MaintenanceWindow.objects.count() == 1


@pytest.mark.parametrize(
    "start, why",
    [
        ("tonight", "is not a time like"),
        ("2026-03-08 02:30", "skipped or repeated here by a clock change"),
        ("2026-11-01 01:30", "skipped or repeated here by a clock change"),
    ],
)
def test_a_time_that_is_not_one_moment_here_exits_2_and_nothing_is_scheduled(
    portal, environment, start, why
):
    code, out, err = portal(
        *("window", "schedule", environment.slug, "--reason", "x"),
        *("--start", start, "--end", "2026-12-24 23:00"),
        TZ="America/Los_Angeles",
    )
    assert code == 2 and why in err, out + err
    assert not MaintenanceWindow.objects.exists()


def test_an_active_window_ended_from_the_command_line_waits_for_maintenance_mode_off(
    portal, environment, manager
):
    starts_at = timezone.now() + timedelta(days=2)
    window = windows.schedule(
        environment,
        manager,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        reason="Upgrade",
    )
    windows.start_window(window.pk, now=starts_at)
    assert wait_for(lambda: refreshed(environment).status == Status.IN_MAINTENANCE, timeout=30)
    code, out, err = portal("window", "list", environment.slug, "--state", "active", "--json")
    assert code == 0 and [w["id"] for w in json.loads(out)] == [window.pk]

    code, out, err = portal("window", "end", str(window.pk), "--wait")

    assert code == 0, out + err
    assert "Deployed" in out
    window.refresh_from_db()
    assert window.state == WindowState.COMPLETED
    code, out, err = portal("window", "end", str(window.pk))
    assert code == 2 and "Only an active window" in err


def refreshed(environment):
    environment.refresh_from_db()
    return environment


def test_history_streams_every_page(portal, environment, manager):
    add_history(environment, manager, 2100)
    code, out, _ = portal("history", environment.slug, "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2100 == len({row["activity_id"] for row in rows})
    code, out, _ = portal("history", "--json", "--kind", "restart_service", "--since", "2000-01-01")
    assert len(json.loads(out)) == 2100
    code, out, _ = portal("history", environment.slug, "--outcome", "failed")
    assert code == 0 and out == ""


def test_login_keeps_the_url_and_token_for_the_owner_only(portal, live, manager, environment):
    _, secret = token_for(manager, name="laptop")
    code, out, err = portal("login", "--url", live["url"], "--token", secret, PORTAL_TOKEN="")
    assert code == 0, out + err
    config = Path(out.split("Saved in ")[1].strip().rstrip("."))
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": live["url"], "token": secret}
    code, out, _ = portal("envs", PORTAL_URL="", PORTAL_TOKEN="")
    assert code == 0 and environment.slug in out
    code, out, err = portal("login", "--url", live["url"], "--token", "lcsp_wrong")
    assert code == 2 and "401" in err


def test_the_command_line_never_imports_django(live, portal):
    script = (
        "import sys\n"
        "sys.argv = ['portal', 'envs', '--json']\n"
        "import portal_cli.main\n"
        "try:\n"
        "    portal_cli.main.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django imported'\n"
    )
    env = dict(os.environ, PORTAL_URL=live["url"], PORTAL_TOKEN="lcsp_x")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


def test_the_command_line_waits_out_a_429_and_follows_next_links_through_its_own_url():
    import httpx

    from portal_cli.client import Api

    seen = []

    def portal_(request):
        seen.append(str(request.url))
        if len(seen) == 1:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"status": 429})
        if "cursor" not in request.url.params:
            # The portal names itself by another host name than the one we were given.
            next_ = "http://portal.internal/api/v1/history?type=all&cursor=c1&limit=2"
            return httpx.Response(200, json={"items": [1, 2], "next": next_})
        return httpx.Response(200, json={"items": [3], "next": None})

    api = Api("http://127.0.0.1:9", "lcsp_x", transport=httpx.MockTransport(portal_))
    assert list(api.pages("history", limit=2)) == [1, 2, 3]
    assert seen[0] == seen[1] == "http://127.0.0.1:9/api/v1/history?limit=2"
    assert seen[2] == "http://127.0.0.1:9/api/v1/history?type=all&cursor=c1&limit=2"


def test_no_portal_to_talk_to_exits_2_and_an_unreachable_one_1(tmp_path):
    from tests.live import free_port

    env = dict(os.environ, PORTAL_CONFIG=str(tmp_path / "none.json"))
    for name in ("PORTAL_URL", "PORTAL_TOKEN", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    result = subprocess.run([str(PORTAL), "envs"], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "portal login" in result.stderr
    env.update(PORTAL_URL=f"http://127.0.0.1:{free_port()}", PORTAL_TOKEN="lcsp_x")
    result = subprocess.run([str(PORTAL), "envs"], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "Could not reach the portal" in result.stderr
