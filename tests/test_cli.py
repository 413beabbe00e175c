"""The `portal` command line, run as the installed script against a live gunicorn and a
db_worker: the Maintain actions with --wait's progress, --json, database access,
windows, history streaming, login and whoami. It never imports Django.
(tests/test_cli_exit_codes.py has every exit code, tests/test_cli_output.py what the
output keeps whole and what it strips.)"""

import csv
import io
import json
import os
import queue
import stat
import subprocess
import sys
import threading
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
    OperationKind,
    Outcome,
    Status,
    TokenScope,
    WindowState,
)
from tests.api_clients import token_for
from tests.cli_live import PORTAL, idle, live_portal, portal_env, run_portal
from tests.conftest import subprocess_env
from tests.helpers import add_history
from tests.live import held_drivers, wait_for

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
            SIMULATED_DRIVER_DELAY=DRIVER_DELAY,
            SIMULATED_DRIVER_FAIL_FILE=failures,
            # Absent (every environment simulated) unless a test holds its drivers.
            PORTAL_DRIVERS_FILE=folder / "drivers.json",
        )
    with live_portal(folder, env) as url:
        yield {"url": url, "failures": failures, "dir": folder}


@pytest.fixture
def portal(live, transactional_db, manager, tmp_path):
    """Run `portal ...` as the manager's Maintain token; returns (exit code, stdout,
    stderr). ``stdin`` is text piped in."""
    _, secret = token_for(manager, name="cli")
    live["failures"].write_text("")

    def environ(token, extra_env):
        settings = {"PORTAL_URL": live["url"], "PORTAL_TOKEN": token}
        return portal_env(**{**settings, "PORTAL_CONFIG": tmp_path / "config.json", **extra_env})

    def run(*args, token=secret, timeout=60, stdin=None, **extra_env):
        return run_portal(*args, env=environ(token, extra_env), stdin=stdin, timeout=timeout)

    def popen(*args, token=secret, **extra_env):
        """`portal ...` running on: read its output as it comes."""
        return subprocess.Popen(
            [str(PORTAL), *args],
            env=environ(token, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    run.popen = popen
    yield run
    # The worker finishes what the test started (an operation's task, its notification)
    # before the tables are emptied for the next test: a task row emptied from under it
    # would stop the worker the whole module shares.
    assert wait_for(idle, timeout=30), list(DBTaskResult.objects.values("task_path", "status"))


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


def test_wait_prints_the_drivers_log_lines_and_quiet_leaves_them_out(portal, environment):
    code, out, err = portal("restart", environment.slug, "aos", "--reason", "cli", "--wait")
    assert code == 0, out + err
    # Each answer's new lines, then the status they led to.
    assert f"simulated: restarting AOS on {environment.slug}" in err
    assert err.index("simulated: restarting AOS: done") < err.index("  Deployed")

    code, out, err = portal(
        "restart", environment.slug, "mr", "--reason", "cli", "--wait", "--quiet"
    )
    assert code == 0, out + err
    assert "Deployed" in err and "simulated:" not in err
    assert "Succeeded" in out


def test_wait_prints_a_line_while_the_operation_is_still_running(portal, live, environment):
    release, _ = held_drivers(live["dir"], environment.slug)  # the health check waits
    process = portal.popen("restart", environment.slug, "aos", "--reason", "cli", "--wait")
    lines = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr])
    reader.start()
    try:
        seen = []
        while not any(line.rstrip().endswith(" $ true") for line in seen):
            seen.append(lines.get(timeout=60))
        # Printed while the driver still waits for the release.
        assert Operation.objects.get().outcome == Outcome.RUNNING
    finally:
        release.touch()
        # stdout only: the reader thread alone reads stderr (communicate would race it).
        out = process.stdout.read()
        process.wait(timeout=60)
        reader.join(timeout=60)
        (live["dir"] / "drivers.json").unlink()
    rest = "".join(lines.get() for _ in range(lines.qsize()))
    assert process.returncode == 0, "".join(seen) + rest + out
    assert "Health check of AOS passed" in rest and "  Deployed" in rest
    assert "Succeeded" in out


def test_stop_ends_a_running_restart_with_the_reason_and_nothing_to_stop_exits_2(
    portal, live, environment
):
    release, _ = held_drivers(live["dir"], environment.slug)  # the health check waits
    try:
        code, out, err = portal("restart", environment.slug, "aos", "--reason", "cli")
        assert code == 0, out + err
        assert wait_for(lambda: Operation.objects.get().outcome == Outcome.RUNNING, timeout=30)

        code, out, err = portal("stop", environment.slug, "--reason", "wrong sandbox")

        assert code == 0, out + err
        assert "Stop" in out
        stopped = lambda: Operation.objects.get().outcome == Outcome.FAILED  # noqa: E731
        assert wait_for(stopped, timeout=30)
        assert Operation.objects.get().error == "Stopped by mona: wrong sandbox"
        code, out, err = portal("stop", environment.slug, "--reason", "again")
        assert code == 2 and "Nothing is running" in err, out + err
    finally:
        release.touch()
        (live["dir"] / "drivers.json").unlink()


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
    assert f"portal resume {environment.slug} --reason …" in out

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
    assert f"Scheduled window {window.pk}" in out and f"05:00:00 {five_am:%Z}" in out

    code, out, err = portal("window", "list", environment.slug, **pacific)
    assert code == 0 and "Upgrade to 10.0.40" in out and f"06:00:00 {five_am:%Z}" in out
    code, out, err = portal("status", environment.slug, **pacific)
    assert code == 0 and f"Maintenance window: {day} 05:00:00 {five_am:%Z}" in out

    overlap = (five_am + timedelta(minutes=30)).astimezone(UTC)  # an offset wins over TZ
    later = overlap + timedelta(hours=1)
    code, out, err = portal(*schedule, "--start", overlap.isoformat(), "--end", later.isoformat())
    assert code == 2 and "overlaps another window" in err, out + err

    code, out, err = portal("window", "cancel", str(window.pk))
    assert code == 2 and "Give a reason" in err, out + err
    code, out, err = portal("window", "cancel", str(window.pk), "--reason", "Moved to Friday")
    assert code == 0 and "Cancelled" in out
    window.refresh_from_db()
    assert window.state == WindowState.CANCELLED
    assert MaintenanceWindow.objects.count() == 1
    assert window.operations.get(kind=OperationKind.CANCEL_WINDOW).reason == "Moved to Friday"


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


def test_window_start_turns_maintenance_on_now_for_its_hours_and_waits_for_it(portal, environment):
    code, out, err = portal(
        *("window", "start", environment.slug, "--hours", "2", "--reason", "Hotfix"),
        "--no-notify",
        "--wait",
    )

    assert code == 0, out + err
    assert "In Maintenance" in out
    window = MaintenanceWindow.objects.get()
    assert window.state == WindowState.ACTIVE and not window.notify_users
    assert window.ends_at - window.starts_at == timedelta(hours=2)
    operation = window.operations.get(kind=OperationKind.ENABLE_MAINTENANCE)
    assert operation.via == "API (cli)" and operation.outcome == Outcome.SUCCEEDED


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


def test_login_reads_the_token_from_stdin_says_whom_it_signs_in_as_and_keeps_it(
    portal, live, manager, environment
):
    manager.first_name, manager.last_name = "Mona", "Lisa"
    manager.save()
    expires_at = timezone.now() + timedelta(days=30, hours=1)
    token, secret = token_for(manager, name="laptop", expires_at=expires_at)
    code, out, err = portal(
        "login",
        "--url",
        live["url"],
        "--token-stdin",
        stdin=secret + "\n",
        PORTAL_TOKEN="",
        TZ="UTC",
    )
    assert code == 0, out + err
    assert f"Signed in to {live['url']} as mona (Mona Lisa)." in out
    assert f"Token: laptop ({token.prefix}…), scope Maintain (includes read), expires " in out
    assert f"expires {expires_at:%Y-%m-%d %H:%M:%S} UTC (in 30 days)." in out
    config = Path(out.split("Saved in ")[1].strip().rstrip("."))
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": live["url"], "token": secret}
    code, out, _ = portal("envs", PORTAL_URL="", PORTAL_TOKEN="")
    assert code == 0 and environment.slug in out


def test_login_takes_portal_token_without_asking(portal, live, manager):
    _, secret = token_for(manager, name="ci")
    code, out, err = portal("login", "--url", live["url"], PORTAL_TOKEN=secret)
    assert code == 0, out + err
    assert "as mona" in out and "Token: ci (" in out
    assert json.loads(Path(out.split("Saved in ")[1].strip().rstrip(".")).read_text())["token"]


def test_login_without_a_token_or_with_a_wrong_one_exits_2_and_saves_nothing(
    portal, live, tmp_path
):
    code, out, err = portal("login", "--url", live["url"], PORTAL_TOKEN="")
    assert code == 2 and "--token-stdin" in err, out + err
    code, out, err = portal(
        "login", "--url", live["url"], "--token-stdin", stdin="lcsp_wrong\n", PORTAL_TOKEN=""
    )
    assert code == 2 and "401" in err and "portal login --token-stdin" in err, out + err
    assert not (tmp_path / "config.json").exists()


def test_whoami_shows_the_tokens_own_user_and_scope(portal, manager, member):
    token_for(manager, name="mona's")
    _, secret = token_for(member, TokenScope.READ, name="dashboard")
    code, out, err = portal("whoami", token=secret)
    assert code == 0, out + err
    assert "as tom." in out and "Token: dashboard (" in out and "scope Read, expires" in out
    assert "mona" not in out
    code, out, _ = portal("whoami", "--json", token=secret)
    assert json.loads(out)["user"] == {"username": "tom", "full_name": "", "service_account": False}


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


def test_a_csv_download_still_refused_after_its_tries_says_so_as_a_problem():
    import httpx

    from portal_cli.client import Api, ApiError

    def portal_(request):
        # A body that comes as the network gives it, not read before it is asked for.
        body = json.dumps({"title": "Too many requests", "detail": "Slow down.", "status": 429})
        headers = {"Retry-After": "0", "Content-Type": "application/problem+json"}
        return httpx.Response(429, headers=headers, stream=httpx.ByteStream(body.encode()))

    api = Api("http://127.0.0.1:9", "lcsp_x", transport=httpx.MockTransport(portal_))
    with pytest.raises(ApiError, match="Slow down"):
        api.download("history.csv", io.BytesIO())


def test_the_csv_download_waits_out_a_429_and_takes_only_csv():
    import httpx

    from portal_cli.client import Api, ApiError, NotAPortal

    answers = [
        httpx.Response(429, headers={"Retry-After": "0"}, json={"status": 429}),
        httpx.Response(200, headers={"Content-Type": "text/csv; charset=utf-8"}, text="a,b\r\n"),
        httpx.Response(200, json={"items": []}),
        httpx.Response(
            400,
            headers={"Content-Type": "application/problem+json"},
            json={"title": "Invalid request", "detail": "Not a time zone.", "status": 400},
        ),
    ]
    api = Api(
        "http://127.0.0.1:9", "lcsp_x", transport=httpx.MockTransport(lambda _: answers.pop(0))
    )
    out = io.BytesIO()
    api.download("history.csv", out, tz="Europe/Berlin")
    assert out.getvalue() == b"a,b\r\n"
    with pytest.raises(NotAPortal, match="JSON where CSV was asked for"):
        api.download("history.csv", io.BytesIO())
    with pytest.raises(ApiError, match="Not a time zone"):
        api.download("history.csv", io.BytesIO())
