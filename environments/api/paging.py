"""Lists that page without changing their answer: a JSON array as before, and the next
page's URL in a ``Link: <…>; rel="next"`` header (RFC 8288). The cursor is the last row's
place in the list's order, so each page is read from the index at it and rows added
meanwhile shift nothing."""

import base64
import binascii
import json

from django.db.models import Q

from environments.refusals import OperationRefused


def page(request, response, rows, order, place, *, limit, cursor):
    """Up to ``limit`` of ``rows`` (a queryset) in ``order`` (field names, "-" for
    descending) after ``cursor``; sets the Link header when more follow. ``place`` gives
    a row's values of the ``order`` fields, as JSON can carry them."""
    rows = rows.order_by(*order)
    if cursor:
        rows = rows.filter(_after(order, _decode(cursor, len(order))))
    found = list(rows[: limit + 1])
    if len(found) > limit:
        found = found[:limit]
        next_link(request, response, _encode(place(found[-1])), limit)
    return found


def next_link(request, response, cursor, limit):
    """Set ``Link: <this list with cursor and limit>; rel="next"``; return the URL."""
    query = request.GET.copy()
    query["cursor"], query["limit"] = cursor, str(limit)
    url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    response["Link"] = f'<{url}>; rel="next"'
    return url


def _after(order, values):
    """The rows past ``values`` in ``order``: (a > x) or (a = x and b > y) or …"""
    after = Q()
    for i, field in enumerate(order):
        equal = {name.lstrip("-"): value for name, value in zip(order[:i], values[:i], strict=True)}
        lookup = "lt" if field.startswith("-") else "gt"
        after |= Q(**equal, **{f"{field.lstrip('-')}__{lookup}": values[i]})
    return after


def _encode(values):
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode(cursor, length):
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        values = None
    if not isinstance(values, list) or len(values) != length:
        raise OperationRefused(
            'That cursor is not valid: use the Link rel="next" of the page before.',
            OperationRefused.INVALID,
        )
    return values
