"""History pages: columns, filters, keyset pagination, CSV export, the entry page."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from environments.history_cursor import PAGE_SIZE, decode_cursor, encode_cursor
from environments.models import Operation, OperationKind, Outcome
from environments.web.history import csv_safe
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
        "started",
        "finished",
        "duration_seconds",
        "requested_by",
        "reason",
        "error",
        "access_expires",
        "access_ended",
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
    from environments.web import history

    total = 2 * history.CSV_CHUNK_ROWS + 1
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
    from environments.web import history

    monkeypatch.setattr(history, "CSV_CHUNK_ROWS", 3)
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
def test_csv_safe_prefixes_formula_starts(value):
    assert csv_safe(value) == "'" + value


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
