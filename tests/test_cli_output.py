"""What `portal` prints: identifiers whole at 80 columns, on a terminal or piped; the
commands to type rather than the API's action names; values other users wrote (token
names, reasons, errors) without control characters or rich markup taking effect; and
history CSV whose cells a spreadsheet never reads as formulas."""

import csv
import io
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from environments import windows
from environments.models import DatabaseAccount, FirewallRule, Operation, Outcome, UserSettings
from tests.api_clients import token_for
from tests.cli_live import idle, live_portal, portal_env, run_in_terminal, run_portal
from tests.conftest import subprocess_env
from tests.live import wait_for
from tests.test_history import add_history

#: What a terminal would act on: C0 but tab and newline, DEL, C1.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: The colours and styles rich writes itself when it prints to a terminal.
RICH_STYLES = re.compile(r"\x1b\[[0-9;]*m")
#: Erase the screen, retitle the window, overwrite the line, recolour (8-bit CSI), rich
#: markup and an emoji code; no NUL, which PostgreSQL refuses to store.
HOSTILE = "fine\x1b[2J\x1b]0;owned\x07\r\x9b31mFAKE [bold]x[/bold]\x08\x7f :warning:"
SHOWN = "fine 31mFAKE [bold]x[/bold] :warning:"  # on one line
SHOWN_LINES = "fine\n31mFAKE [bold]x[/bold] :warning:"  # where lines are kept


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-output")
    with django_db_blocker.unblock():
        env = subprocess_env(SIMULATED_DRIVER_DELAY=0)
    with live_portal(folder, env) as url:
        yield url


@pytest.fixture
def portal_settings(live, transactional_db, manager, tmp_path):
    _, secret = token_for(manager, name="cli")
    yield portal_env(PORTAL_URL=live, PORTAL_TOKEN=secret, PORTAL_CONFIG=tmp_path / "c.json")
    assert wait_for(idle, timeout=30)


@pytest.fixture
def portal(portal_settings):
    def run(*args, **extra_env):
        return run_portal(*args, env={**portal_settings, **extra_env})

    return run


@pytest.fixture
def grants(environment, owner):
    """A rule for a long IPv6 address and an account whose user name is as long as
    PostgreSQL allows (63 characters)."""
    expires_at = timezone.now() + timedelta(hours=4)
    rule = FirewallRule.objects.create(
        environment=environment,
        requested_by=owner,
        reason="vpn",
        expires_at=expires_at,
        name="office",
        cidr="2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff/128",
    )
    account = DatabaseAccount.objects.create(
        environment=environment,
        requested_by=owner,
        reason="debug",
        expires_at=expires_at,
        level="read",
        username="lcs_demo_sandbox_read_" + "a1b2c3d4e5" * 4 + "x",
    )
    assert len(account.username) == 63
    return rule, account


def test_status_piped_at_80_columns_keeps_every_identifier_whole(portal, environment, grants):
    rule, account = grants
    code, out, err = portal("status", environment.slug, COLUMNS="80")
    assert code == 0, out + err
    assert account.username in out and rule.cidr in out


def test_status_on_an_80_column_terminal_keeps_every_identifier_whole(
    portal_settings, environment, grants
):
    rule, account = grants
    code, shown = run_in_terminal("status", environment.slug, env=portal_settings, columns=80)
    assert code == 0, shown
    text = RICH_STYLES.sub("", shown)
    assert account.username in text and rule.cidr in text


def test_status_lists_the_commands_to_type(portal, environment):
    code, out, err = portal("status", environment.slug)
    assert code == 0, out + err
    assert "portal restart demo-sandbox aos|dixf|mr --reason …" in out
    assert "portal maintenance demo-sandbox on --reason …" in out
    assert "portal access rule demo-sandbox ADDRESS --reason …" in out
    assert "portal access db demo-sandbox [--read-write] --reason …" in out
    assert not re.search(r"\b(restart_service|enable_maintenance|enable_access)\b", out), out


def test_values_other_users_wrote_are_printed_without_control_characters_or_markup(
    portal, environment, manager
):
    _, secret = token_for(manager, name=HOSTILE)
    code, out, err = portal("whoami", PORTAL_TOKEN=secret)
    assert code == 0, out + err
    assert f"Token: {SHOWN} (" in out

    [operation] = add_history(environment, manager, 1, reason=HOSTILE, outcome=Outcome.FAILED)
    Operation.objects.filter(pk=operation.pk).update(
        via=f"API ({HOSTILE})", error=HOSTILE, log=f"step one\n{HOSTILE}"
    )
    starts_at = timezone.now() + timedelta(days=3)
    windows.schedule(
        environment,
        manager,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1),
        reason=HOSTILE,
        notify_users=False,
    )
    outputs = []
    for args in (
        ["operation", str(operation.activity_id)],
        ["history", environment.slug],
        ["history", environment.slug, "--csv"],
        ["window", "list", environment.slug],
    ):
        code, out, err = portal(*args)
        assert code == 0, out + err
        assert not CONTROL.search(out + err), (args, out + err)
        outputs.append(out)
    operation_out, history_out, csv_out, windows_out = outputs
    assert f"Error: {SHOWN_LINES}" in operation_out
    assert "Driver log (last 3 lines):\n  step one\n  fine\n  31mFAKE [bold]x" in operation_out
    assert f"via API ({SHOWN})" in history_out
    # The window's scheduling is a history row too: read the operation's.
    rows = csv.DictReader(io.StringIO(csv_out))
    row = next(r for r in rows if r["activity_id"] == str(operation.activity_id))
    assert row["reason"] == row["error"] == SHOWN_LINES
    assert "[bold]x" in windows_out


@pytest.mark.parametrize(
    "reason", ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
)
def test_history_csv_cells_are_never_formulas(portal, environment, manager, reason):
    add_history(environment, manager, 1, reason=reason)
    code, out, err = portal("history", environment.slug, "--csv")
    assert code == 0, out + err
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["reason"].startswith("'") and row["reason"][1:].strip() == reason.strip()


def test_history_csv_keeps_plain_cells_as_they_are(portal, environment, manager):
    add_history(environment, manager, 1, reason="Monthly patch, see CHG-1234")
    code, out, _ = portal("history", environment.slug, "--csv")
    assert next(csv.DictReader(io.StringIO(out)))["reason"] == "Monthly patch, see CHG-1234"


# --- Times: this machine's zone (TZ), labelled, everywhere -----------------------------

KOLKATA = ZoneInfo("Asia/Kolkata")  # IST, UTC+5:30 all year


def ist(moment):
    return f"{moment.astimezone(KOLKATA):%Y-%m-%d %H:%M:%S} IST"


def test_status_history_and_access_print_times_in_the_machines_zone_labelled(
    portal, environment, manager, grants
):
    rule, account = grants
    [operation] = add_history(environment, manager, 1)
    service = environment.services.get(kind="aos")
    service.last_restarted_at = operation.finished_at
    service.save()

    code, out, err = portal("status", environment.slug, TZ="Asia/Kolkata")
    assert code == 0, out + err
    assert f"until {ist(rule.expires_at)}" in out
    assert f"until {ist(account.expires_at)}" in out
    assert ist(operation.finished_at) in out

    code, out, err = portal("history", environment.slug, TZ="Asia/Kolkata")
    assert code == 0 and out.startswith(ist(operation.started_at)), out + err

    code, out, err = portal(
        *("access", "rule", environment.slug, "203.0.113.9", "--reason", "vpn"),
        TZ="Asia/Kolkata",
    )
    assert code == 0, out + err
    new_rule = FirewallRule.objects.get(cidr="203.0.113.9/32")
    assert f"until {ist(new_rule.expires_at)}." in out


def test_history_csv_is_the_pages_export_in_the_machines_zone(
    portal, environment, manager, member, client
):
    """One schema: `portal history --csv` and the page's Export CSV give the same header
    and rows for the same history, a viewer in Europe/Berlin and a machine there."""
    add_history(environment, manager, 3, reason="Monthly patch, see CHG-1234")
    UserSettings.objects.create(user=member, time_zone="Europe/Berlin")
    client.force_login(member)
    page = client.get(reverse("environment-history-csv", args=[environment.slug]))
    page_csv = b"".join(page.streaming_content).decode()

    code, out, err = portal("history", environment.slug, "--csv", TZ="Europe/Berlin")

    assert code == 0, out + err
    header, *rows = csv.reader(io.StringIO(out))
    assert header[6] == "started (Europe/Berlin)" and len(rows) == 3
    assert [header, *rows] == list(csv.reader(io.StringIO(page_csv)))
    code, with_bom, _ = portal("history", environment.slug, "--csv", "--bom", TZ="Europe/Berlin")
    assert code == 0 and with_bom == "\ufeff" + out
    code, _, err = portal("history", environment.slug, "--bom")
    assert code == 2 and "--bom goes with --csv" in err
