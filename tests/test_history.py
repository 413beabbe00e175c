"""History pages: columns, filters, keyset pagination, CSV export, the entry page."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from environments import history_csv
from environments.history_csv import cell
from environments.history_cursor import PAGE_SIZE, decode_cursor, encode_cursor
from environments.models import (
    AccessEnd,
    FirewallRule,
    Operation,
    OperationKind,
    Outcome,
    UserSettings,
)
from tests.api_clients import API, api_client, send
from tests.conftest import committing, make_environment, run_worker
from tests.helpers import add_history


@pytest.fixture
def as_member(client, member):
    client.force_login(member)
    return client


def history_url(environment=None):
    if environment:
        return reverse("environment-history", args=[environment.slug])
    return reverse("history")


def test_history_row_shows_every_column(as_member, environment, manager, start):
    operation = start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()
    body = as_member.get(history_url(environment)).content.decode()
    for text in [
        "Restart service: AOS",
        "Deployed &rarr; Deployed",
        "Succeeded",
        "mona",
        str(operation.activity_id),
        " s</td>",
    ]:
        assert text in body


def test_history_filters_by_kind_outcome_user_and_dates(as_member, environment, manager, owner):
    add_history(environment, manager, 3)
    add_history(environment, owner, 2, kind=OperationKind.ENABLE_MAINTENANCE)
    add_history(environment, owner, 1, outcome=Outcome.FAILED)
    old = add_history(environment, owner, 1, start=timezone.now() - timedelta(days=30))

    def rows(**params):
        response = as_member.get(history_url(environment), params)
        assert response.status_code == 200
        return response.content.decode().count('data-testid="history-row"')

    assert rows() == 7
    assert rows(kind="enable_maintenance") == 2
    assert rows(outcome="failed") == 1
    assert rows(user="mona") == 3
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert rows(since=since) == 6
    old_day = old[0].started_at.date().isoformat()
    assert rows(since=old_day, until=old_day) == 1


@pytest.mark.parametrize(
    "params, message",
    [
        ({"kind": "drop_table"}, "Select a valid choice"),
        ({"since": "yesterday"}, "Enter a valid date"),
        ({"since": "2026-02-02", "until": "2026-01-01"}, "must not be after"),
        ({"until": "9999-12-31"}, "between 1970 and 9998"),
        ({"before": "not-a-cursor"}, "page link is not valid"),
        ({"before": "99999999999999999999999.1"}, "page link is not valid"),
    ],
)
def test_bad_filters_get_400_and_a_clear_message(as_member, environment, params, message):
    response = as_member.get(history_url(environment), params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_keyset_pagination_walks_every_row_once_both_ways(as_member, environment, manager):
    add_history(environment, manager, PAGE_SIZE * 2 + 7)
    seen, url, pages = [], history_url(environment), 0
    params = {}
    while True:
        response = as_member.get(url, params)
        history = response.context["history"].page
        page = history["operations"]
        seen += [op.pk for op in page]
        pages += 1
        if not history["older"]:
            break
        params = {"before": history["older"]}
    assert pages == 3
    assert len(seen) == len(set(seen)) == PAGE_SIZE * 2 + 7
    assert seen == sorted(seen, reverse=True)

    # and back: "Newer" from the last page returns the page before it
    newer = history["newer"]
    back = as_member.get(url, {"after": newer}).context["history"].page["operations"]
    assert [op.pk for op in back] == seen[PAGE_SIZE : PAGE_SIZE * 2]


def test_keyset_cursor_round_trips(environment, manager):
    (operation,) = add_history(environment, manager, 1)
    assert decode_cursor(encode_cursor(operation)) == (operation.started_at, operation.pk)


def test_all_history_shows_only_the_users_projects(
    as_member, environment, other_environment, manager, outsider
):
    add_history(environment, manager, 2)
    add_history(other_environment, outsider, 3)
    body = as_member.get(history_url()).content.decode()
    assert body.count('data-testid="history-row"') == 2
    assert "Fabrikam sandbox" not in body


def test_csv_export_streams_the_filtered_rows(as_member, environment, manager, owner):
    add_history(environment, manager, 3, reason="routine")
    add_history(environment, owner, 2, kind=OperationKind.ENABLE_MAINTENANCE)
    response = as_member.get(
        reverse("environment-history-csv", args=[environment.slug]), {"user": "mona"}
    )
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["activity_id", "environment", "activity"]
    assert len(rows) == 4
    assert {row[9] for row in rows[1:]} == {"mona"}
    assert rows[1][2] == "Restart service: AOS" and rows[1][10] == "routine"


def test_csv_export_has_every_column_and_says_which_token_made_a_change(
    as_member, environment, manager
):
    with committing():
        response = send(
            api_client(manager, name="nightly"),
            "POST",
            f"{API}/environments/{environment.slug}/operations",
            {"action": "enable_maintenance", "reason": "patching"},
        )
    assert response.status_code == 202

    export = as_member.get(reverse("environment-history-csv", args=[environment.slug]))

    header, *rows = csv.reader(io.StringIO(b"".join(export.streaming_content).decode()))
    assert header == [
        "activity_id",
        "environment",
        "activity",
        "status_before",
        "status_after",
        "outcome",
        "started (UTC)",
        "finished (UTC)",
        "duration_seconds",
        "requested_by",
        "reason",
        "error",
        "access_expires (UTC)",
        "access_ended (UTC)",
        "access_end",
        "via",
    ]
    (row,) = [dict(zip(header, row, strict=True)) for row in rows]
    assert (row["activity"], row["requested_by"], row["reason"]) == (
        "Enable Maintenance mode",
        "mona",
        "patching",
    )
    assert row["via"] == "API (nightly)"


def test_csv_export_walks_every_row_once_page_by_page_while_history_grows(
    as_member, environment, manager, django_assert_max_num_queries
):
    total = 2 * history_csv.CHUNK_ROWS + 1
    added = add_history(environment, manager, total)
    response = as_member.get(reverse("environment-history-csv", args=[environment.slug]))
    chunks = iter(response.streaming_content)
    body = [next(chunks), next(chunks)]  # the header and the first page
    add_history(environment, manager, 5, start=timezone.now())  # newer: not in this export
    # A page is one query, whatever its depth (and up to four more for its access grants
    # and who ended them; these rows have none).
    with django_assert_max_num_queries(1):
        body.append(next(chunks))
    body.extend(chunks)

    rows = list(csv.reader(io.StringIO(b"".join(body).decode())))[1:]
    assert [row[0] for row in rows] == [str(op.activity_id) for op in reversed(added)]


def test_csv_export_walks_rows_that_share_one_time_each_once(
    as_member, environment, manager, monkeypatch
):
    monkeypatch.setattr(history_csv, "CHUNK_ROWS", 3)
    added = add_history(environment, manager, 10)
    Operation.objects.update(started_at=timezone.now() - timedelta(hours=1))
    response = as_member.get(reverse("environment-history-csv", args=[environment.slug]))

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1:]
    assert sorted(row[0] for row in rows) == sorted(str(op.activity_id) for op in added)


def test_csv_export_neutralises_spreadsheet_formulas(as_member, environment, manager):
    add_history(environment, manager, 1, reason='=HYPERLINK("http://evil","x")')
    response = as_member.get(reverse("history-csv"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1][10] == '\'=HYPERLINK("http://evil","x")'


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_a_csv_cell_that_starts_like_a_formula_is_text(value):
    assert cell(value) == "'" + value.replace("\r", "\n")


def test_operation_page_shows_error_and_driver_log(
    as_member, environment, manager, start, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    operation = start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="mr")
    run_worker()
    body = as_member.get(
        reverse("operation-detail", args=[environment.slug, operation.activity_id])
    ).content.decode()
    assert "Simulated failure of restart_service" in body
    assert "simulated: restarting MR" in body
    assert str(operation.activity_id) in body


def test_operation_page_of_another_environment_is_404(as_member, environment, project, manager):
    other = make_environment(project)
    (operation,) = add_history(other, manager, 1)
    url = reverse("operation-detail", args=[environment.slug, operation.activity_id])
    assert as_member.get(url).status_code == 404


def test_free_text_is_escaped_in_history(as_member, environment, manager):
    add_history(environment, manager, 1, reason="<script>alert(1)</script>")
    (operation,) = Operation.objects.all()
    url = reverse("operation-detail", args=[environment.slug, operation.activity_id])
    body = as_member.get(url).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_an_environments_own_history_has_no_environment_column(as_member, environment, manager):
    add_history(environment, manager, 1)
    own = as_member.get(history_url(environment)).content.decode()
    everywhere = as_member.get(history_url()).content.decode()
    assert "<th>Environment</th>" not in own
    assert "<th>Environment</th>" in everywhere


def test_rows_show_type_times_with_their_zone_and_a_short_activity_id_to_copy(
    as_member, environment, manager
):
    (operation,) = add_history(environment, manager, 1)
    body = as_member.get(history_url(environment)).content.decode()
    assert '<td data-label="Type" class="nowrap">Maintenance</td>' in body
    assert operation.started_at.strftime("%Y-%m-%d %H:%M:%S UTC") in body
    short = str(operation.activity_id).split("-")[0]
    assert f">{short}</a>" in body
    assert f'data-copy="{operation.activity_id}"' in body


def test_requested_by_matches_part_of_a_name_in_any_case(as_member, environment, manager, owner):
    add_history(environment, manager, 2)  # mona
    add_history(environment, owner, 1)  # alice
    body = as_member.get(history_url(environment), {"user": "ON"}).content.decode()
    assert body.count('data-testid="history-row"') == 2
    assert '<option value="mona">' in body  # the names are offered


def test_an_empty_filtered_page_says_so_and_offers_to_clear(as_member, environment, manager):
    add_history(environment, manager, 1)
    body = as_member.get(history_url(environment), {"user": "nobody"}).content.decode()
    assert "No history matches these filters" in body and 'href="?">Clear the filters' in body
    assert "No history yet" not in body


def test_filter_errors_stand_above_the_filters(as_member, environment):
    body = as_member.get(history_url(environment), {"since": "yesterday"}).content.decode()
    assert body.index('data-testid="filter-errors"') < body.index('data-testid="history-filters"')
    assert "From: Enter a valid date." in body


def test_all_history_shows_maintain_operations_unless_asked_for_more(
    as_member, environment, manager
):
    add_history(environment, manager, 2)
    add_history(environment, manager, 3, kind=OperationKind.GRANT_ROLE)

    def rows(**params):
        body = as_member.get(history_url(), params).content.decode()
        return body.count('data-testid="history-row"')

    assert rows() == 2
    assert rows(type="all") == 5
    assert rows(type="roles") == 3
    assert as_member.get(history_url(environment)).content.decode().count("history-row") == 5


def test_all_history_filters_by_environment(as_member, project, environment, manager):
    other = make_environment(project, name="UAT sandbox", slug="uat")
    add_history(environment, manager, 2)
    add_history(other, manager, 1)
    body = as_member.get(history_url(), {"environment": "uat"}).content.decode()
    assert body.count('data-testid="history-row"') == 1


# --- The CSV's time zone, byte order mark, and one schema for the page and the API ---


def csv_of(response):
    return b"".join(response.streaming_content).decode("utf-8")


@pytest.fixture
def revoked_rule_history(environment, manager, owner):
    """A restart and a firewall rule revoked by its owner, at known times (UTC)."""
    [restart] = add_history(environment, manager, 1, reason="routine")
    restart.started_at = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    restart.finished_at = restart.started_at + timedelta(seconds=42)
    restart.save()
    rule = FirewallRule.objects.create(
        environment=environment,
        requested_by=manager,
        reason="vpn",
        name="office",
        cidr="203.0.113.7/32",
        applied_at=datetime(2026, 12, 1, 11, 0, tzinfo=UTC),
        expires_at=datetime(2026, 12, 1, 19, 0, tzinfo=UTC),
        ended_at=datetime(2026, 12, 1, 12, 30, tzinfo=UTC),
        ended_by=owner,
        end_reason=AccessEnd.REVOKED,
    )
    [access] = add_history(environment, manager, 1, kind=OperationKind.ENABLE_ACCESS)
    Operation.objects.filter(pk=access.pk).update(
        firewall_rule=rule, started_at=datetime(2026, 12, 1, 11, 0, tzinfo=UTC), service=None
    )
    return restart


def test_csv_times_are_in_the_viewers_zone_which_the_header_names(
    as_member, member, environment, revoked_rule_history
):
    UserSettings.objects.create(user=member, time_zone="Europe/Berlin")
    as_member.force_login(member)  # the session learns the zone at sign-in

    response = as_member.get(reverse("environment-history-csv", args=[environment.slug]))

    header, *rows = csv.reader(io.StringIO(csv_of(response)))
    assert header[6:8] == ["started (Europe/Berlin)", "finished (Europe/Berlin)"]
    assert header[12:15] == [
        "access_expires (Europe/Berlin)",
        "access_ended (Europe/Berlin)",
        "access_end",
    ]
    access, restart = (dict(zip(header, row, strict=True)) for row in rows)
    assert restart["started (Europe/Berlin)"] == "2026-12-01 11:00:00"  # UTC+1 in winter
    assert restart["finished (Europe/Berlin)"] == "2026-12-01 11:00:42"
    assert restart["duration_seconds"] == "42.0"
    assert access["access_expires (Europe/Berlin)"] == "2026-12-01 20:00:00"
    assert access["access_ended (Europe/Berlin)"] == "2026-12-01 13:30:00"
    assert access["access_end"] == "Revoked by alice"


def test_csv_without_a_chosen_or_browser_zone_is_in_the_portals_time_zone(
    as_member, environment, revoked_rule_history, settings
):
    settings.TIME_ZONE = "America/New_York"
    response = as_member.get(reverse("environment-history-csv", args=[environment.slug]))
    header, _, restart = csv.reader(io.StringIO(csv_of(response)))
    assert header[6] == "started (America/New_York)"
    assert restart[6] == "2026-12-01 05:00:00"
    page = as_member.get(history_url(environment)).content.decode()
    assert 'data-testid="time-zone">Times in America/New_York.<' in page
    assert "2026-12-01 05:00:00 EST" in page


def test_csv_starts_with_a_byte_order_mark_only_when_asked(as_member, environment, manager):
    add_history(environment, manager, 1, reason="Größe")
    url = reverse("environment-history-csv", args=[environment.slug])
    plain = b"".join(as_member.get(url).streaming_content)
    excel = b"".join(as_member.get(url, {"bom": "1"}).streaming_content)
    assert plain.startswith(b"activity_id,")
    assert excel == b"\xef\xbb\xbf" + plain
    assert "Größe" in excel.decode("utf-8-sig")


def test_the_export_form_sends_the_filters_and_offers_the_byte_order_mark(as_member, environment):
    page = as_member.get(history_url(environment), {"user": "mona", "before": "x"})
    body = page.content.decode()
    assert '<input type="hidden" name="user" value="mona">' in body
    assert 'name="before"' not in body.split('data-testid="csv-export-form"')[1]
    assert 'name="bom" value="1"' in body


def test_the_apis_csv_is_the_pages_csv(as_member, member, environment, revoked_rule_history):
    """One schema: the same header and rows from the page's export and from the API's
    (which `portal history --csv` prints), for the same history in the same zone."""
    UserSettings.objects.create(user=member, time_zone="Asia/Kolkata")
    as_member.force_login(member)
    page = as_member.get(reverse("environment-history-csv", args=[environment.slug]))
    api = api_client(member).get(
        f"{API}/environments/{environment.slug}/history.csv", {"tz": "Asia/Kolkata"}
    )
    assert api.status_code == 200
    assert api["Content-Type"] == page["Content-Type"] == "text/csv; charset=utf-8"
    page_rows = list(csv.reader(io.StringIO(csv_of(page))))
    assert page_rows[0][6] == "started (Asia/Kolkata)" and len(page_rows) == 3
    assert list(csv.reader(io.StringIO(csv_of(api)))) == page_rows
    everything = api_client(member).get(f"{API}/history.csv", {"tz": "Asia/Kolkata"})
    assert list(csv.reader(io.StringIO(csv_of(everything)))) == page_rows


def test_the_apis_csv_uses_the_users_own_zone_by_default_and_refuses_an_unknown_one(
    member, environment, revoked_rule_history
):
    client = api_client(member)
    url = f"{API}/environments/{environment.slug}/history.csv"
    assert csv_of(client.get(url)).startswith("activity_id,") and "started (UTC)" in csv_of(
        client.get(url)
    )
    UserSettings.objects.create(user=member, time_zone="Europe/Paris")
    assert "started (Europe/Paris)" in csv_of(client.get(url))
    refused = client.get(url, {"tz": "Mars/Olympus_Mons"})
    assert refused.status_code == 400
    assert "IANA time zone" in refused.json()["detail"]
    assert b"".join(client.get(url, {"bom": "true"}).streaming_content)[:3] == b"\xef\xbb\xbf"


def test_history_rows_show_the_reason_without_a_query_per_row(
    as_member, environment, manager, django_assert_max_num_queries
):
    add_history(environment, manager, 30, reason="Patch Tuesday")
    with django_assert_max_num_queries(5):
        body = as_member.get(history_url(environment)).content.decode()
    assert body.count('<td data-label="Reason" class="reason">Patch Tuesday</td>') == 30
