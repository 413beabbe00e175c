"""The history as CSV: one definition for the pages' export and the API's, which
`portal history --csv` prints as it comes, so that both have the same columns, names and
values.

Times are written as "YYYY-MM-DD HH:MM:SS" (what spreadsheets read as a time) in one
time zone, which the columns' names say: "started (Europe/Berlin)". A byte order mark
at the start, if asked for, makes Excel read the file as UTF-8."""

import csv
import re

from django.http import StreamingHttpResponse
from django.utils import timezone

from environments.history_cursor import keyset_page

#: The columns; those named in TIME_COLUMNS carry the zone in their name.
COLUMNS = [
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
    "access_end",
    "via",
]
TIME_COLUMNS = {"started", "finished", "access_expires", "access_ended"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BOM = "\ufeff"

#: Rows read a page at a time. Each page is one query and PostgreSQL plans each:
#: 2,000-row pages read 1M rows in about as long as one cursor did (500 took twice as
#: long), and one page's instances are a few MB.
CHUNK_ROWS = 2000
# What a row shows besides the operation: joined, and the access grants (few rows have
# one) fetched apart, which keeps the page's query cheap to plan.
RELATED = ["environment", "service", "requested_by__service_account"]
PREFETCH = ["firewall_rule__ended_by", "database_account__ended_by"]

#: The beginnings a spreadsheet reads as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\n")
# A cell is text for a spreadsheet and for a terminal (`portal history --csv` prints it):
# no escape sequence (a recolouring, a retitled window, a reset) and no control
# character but tab and line feed; a lone CR becomes a line feed.
_ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"  # CSI: colours, cursor moves, erasing
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS…: titles, links
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"  # the others ("ESC c" resets the terminal)
)
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def cell(value):
    """A CSV cell: plain text, and never read by a spreadsheet as a formula."""
    text = "" if value is None else str(value)
    text = _ESCAPE_SEQUENCES.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL_CHARACTERS.sub("", text)
    return "'" + text if text.startswith(FORMULA_START) else text


def header(zone):
    name = str(zone)
    return [f"{column} ({name})" if column in TIME_COLUMNS else column for column in COLUMNS]


def row(operation, zone):
    def at(moment):
        return timezone.localtime(moment, zone).strftime(TIME_FORMAT) if moment else ""

    grant = operation.grant
    ended = grant.ended_at if grant else None
    by = f" by {grant.ended_by.get_username()}" if ended and grant.ended_by_id else ""
    duration = operation.duration
    return [
        operation.activity_id,
        operation.environment.name,
        operation.activity,
        operation.get_status_before_display(),
        operation.get_status_after_display() if operation.status_after else "",
        operation.get_outcome_display(),
        at(operation.started_at),
        at(operation.finished_at),
        round(duration.total_seconds(), 3) if duration is not None else "",
        operation.requester_name,
        operation.reason,
        operation.error,
        at(grant.expires_at) if grant else "",
        at(ended),
        f"{grant.get_end_reason_display()}{by}" if ended else "",
        operation.via,
    ]


class _Echo:
    def write(self, value):
        return value


def lines(operations, zone, *, bom=False):
    """The CSV's text, a page of CHUNK_ROWS at a time, found through the pages' own
    keyset: memory stays flat over a million rows, each write carries many rows, and no
    cursor outlives its query (a transaction-pooling PgBouncer keeps none,
    docs/deploy.md). Rows written meanwhile are newer, so they shift nothing."""
    writer = csv.writer(_Echo())
    operations = operations.select_related(*RELATED).prefetch_related(*PREFETCH)
    yield (BOM if bom else "") + writer.writerow(header(zone))
    before = None
    while True:
        page = keyset_page(operations, before=before, size=CHUNK_ROWS)
        rows = page["operations"]
        yield "".join(writer.writerow(map(cell, row(op, zone))) for op in rows)
        if page["older"] is None:
            return
        before = (rows[-1].started_at, rows[-1].pk)


def response(operations, zone, *, bom, name):
    """The download: ``name``-YYYYmmdd-HHMMSS.csv."""
    stamp = timezone.localtime(timezone.now(), zone).strftime("%Y%m%d-%H%M%S")
    answer = StreamingHttpResponse(
        lines(operations, zone, bom=bom), content_type="text/csv; charset=utf-8"
    )
    answer["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return answer
