"""History: one operation (polled while it runs), and the history of an environment or
of every environment the token's user may see, with the pages' filters and a cursor.

The cursor is the (started_at, id) of the last row sent, as on the pages: each page is
entered through the index at the cursor, so the last page of a million rows costs what
the first does, and rows written meanwhile (always newer) never shift a page."""

import datetime
import re
from urllib.parse import urlencode
from uuid import UUID

from django.http import Http404, HttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from pydantic import field_validator

from environments import history_csv
from environments.api.auth import user_of
from environments.api.conditional import not_modified
from environments.api.problems import FormInvalid
from environments.api.schemas import (
    HistoryPageOut,
    OperationOut,
    answers,
    choice,
)
from environments.forms import HISTORY_TYPES, HistoryFilterForm
from environments.history_cursor import BadCursor, decode_cursor, keyset_page
from environments.models import OperationKind, Outcome
from environments.permissions import environment_for, visible_operations
from environments.refusals import OperationRefused
from environments.time_zones import chosen_time_zone, valid_zone

router = Router(tags=["History"])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class HistoryFilterFields(Schema):
    type: choice(HISTORY_TYPES) = Field(
        "all",
        description=(
            "all (the default, here and across environments), maintain, access, roles or windows"
        ),
    )
    kind: choice(OperationKind.values) | None = Field(
        None, description="An operation kind, e.g. restart_service"
    )
    outcome: choice(Outcome.values) | None = Field(
        None, description="queued, running, succeeded, failed, …"
    )
    user: str | None = Field(None, description="Part of the requester's user name")
    environment: str | None = Field(None, description="Part of an environment's name or slug")
    since: datetime.date | None = Field(None, description="From this day (in TIME_ZONE)")
    until: datetime.date | None = Field(None, description="To this day, included")

    @field_validator("since", "until", mode="before")
    @classmethod
    def iso_day(cls, value):
        # pydantic reads a number as seconds since 1970 (?until=0 is 1970-01-01): a
        # day is written as one, or refused.
        if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError("Give the day as YYYY-MM-DD.")
        return value


class HistoryFilters(HistoryFilterFields):
    cursor: str | None = Field(None, description="From the previous page's next link")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class HistoryCsvQuery(HistoryFilterFields):
    tz: str | None = Field(
        None,
        description="The time zone of the times, and of since and until (an IANA name such "
        "as Europe/Berlin). Default: the user's own (their Settings), else TIME_ZONE.",
    )
    bom: bool = Field(False, description="Start with a UTF-8 byte order mark, for Excel.")

    @field_validator("tz")
    @classmethod
    def known_zone(cls, value):
        if value is not None and valid_zone(value) is None:
            raise ValueError("Give an IANA time zone name, such as Europe/Berlin.")
        return value


#: The CSV's answer in the OpenAPI document (ninja documents JSON only).
CSV_ANSWER = {
    "responses": {
        200: {
            "description": "The history as CSV (the pages' export: same columns and values)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }
}


@router.get(
    "/operations/{activity_id}", response=answers(200, OperationOut, 404), url_name="operation"
)
def operation_detail(request, activity_id: UUID, response: HttpResponse):
    """One operation: outcome, statuses, times, error and driver log, and its
    environment's status now. With an ETag: poll with ``If-None-Match`` for a 304 while
    nothing changed."""
    queryset = visible_operations(user_of(request)).select_related(
        "environment", "service", "requested_by__service_account"
    )
    operation = queryset.filter(activity_id=activity_id).first()
    if operation is None:
        raise Http404("No such operation.")
    what = f"operation-{activity_id}"
    if unchanged := not_modified(request, response, operation.environment, what):
        return unchanged
    return operation


@router.get("/history", response=answers(200, HistoryPageOut, 400), url_name="history")
def all_history(request, filters: Query[HistoryFilters], response: HttpResponse):
    """The history of every environment the token's user may see, newest first."""
    return _page(request, response, visible_operations(user_of(request)), filters)


@router.get(
    "/environments/{slug}/history",
    response=answers(200, HistoryPageOut, 400, 404),
    url_name="environment_history",
)
def environment_history(request, slug: str, filters: Query[HistoryFilters], response: HttpResponse):
    """One environment's history, newest first."""
    environment = environment_for(user_of(request), slug)
    return _page(request, response, environment.operations.all(), filters)


@router.get(
    "/history.csv",
    response=answers(200, None, 400),
    url_name="history_csv",
    openapi_extra=CSV_ANSWER,
)
def all_history_csv(request, filters: Query[HistoryCsvQuery]):
    """The history of every environment the token's user may see, as CSV, newest first:
    every row that matches, in one answer (`portal history --csv`)."""
    return _csv(request, visible_operations(user_of(request)), filters, "history")


@router.get(
    "/environments/{slug}/history.csv",
    response=answers(200, None, 400, 404),
    url_name="environment_history_csv",
    openapi_extra=CSV_ANSWER,
)
def environment_history_csv(request, slug: str, filters: Query[HistoryCsvQuery]):
    """One environment's history as CSV, newest first."""
    environment = environment_for(user_of(request), slug)
    return _csv(request, environment.operations.all(), filters, f"history-{environment.slug}")


def _csv(request, queryset, filters, name):
    user = user_of(request)
    zone = valid_zone(filters.tz or chosen_time_zone(user)) or timezone.get_default_timezone()
    with timezone.override(zone):  # since and until are days in the CSV's zone
        form = _filter_form(filters.model_dump(exclude={"tz", "bom"}, exclude_none=True))
        rows = form.filter(queryset)
    return history_csv.response(rows, zone, bom=filters.bom, name=name)


def _filter_form(values):
    form = HistoryFilterForm({key: str(value) for key, value in values.items()})
    if not form.is_valid():
        raise FormInvalid(form)
    return form


def _page(request, response, queryset, filters):
    values = filters.model_dump(exclude={"cursor", "limit"}, exclude_none=True)
    form = _filter_form(values)
    try:
        before = decode_cursor(filters.cursor) if filters.cursor else None
    except BadCursor:
        raise OperationRefused(
            "That cursor is not valid: use the next link of the page before.",
            OperationRefused.INVALID,
        ) from None
    rows = form.filter(queryset).select_related(
        "environment", "service", "requested_by__service_account"
    )
    page = keyset_page(rows.defer("log"), before=before, size=filters.limit)
    next_url = None
    if page["older"]:
        query = dict(values, cursor=page["older"], limit=filters.limit)
        next_url = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
        response["Link"] = f'<{next_url}>; rel="next"'
    return {"items": page["operations"], "next": next_url}
