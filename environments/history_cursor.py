"""Paging through the history, for the pages and the API alike: a cursor names the
(started_at, id) of a page's edge, and a keyset page starts there."""

import datetime

PAGE_SIZE = 50
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class BadCursor(ValueError):
    pass


def encode_cursor(operation):
    micros = (operation.started_at - EPOCH) // datetime.timedelta(microseconds=1)
    return f"{micros}.{operation.pk}"


def decode_cursor(value):
    try:
        micros, pk = (int(part) for part in value.split("."))
        return EPOCH + datetime.timedelta(microseconds=micros), pk
    except (ValueError, OverflowError):
        raise BadCursor(value) from None


def keyset_page(queryset, *, before=None, after=None, size=PAGE_SIZE):
    """One page of history, newest first, found by the (started_at, id) of its edge
    (``before`` or ``after``, decoded cursors).

    Keyset pagination costs the same on page 1 and page 10,000: the index on
    (started_at, id) is entered at the cursor instead of counting past OFFSET rows.
    """
    if after:
        started, pk = after
        rows = list(
            queryset.filter(started_at__gte=started)
            .exclude(started_at=started, id__lte=pk)
            .order_by("started_at", "id")[: size + 1]
        )
        has_newer = len(rows) > size
        rows = rows[:size][::-1]
        has_older = True
    else:
        if before:
            started, pk = before
            queryset = queryset.filter(started_at__lte=started).exclude(
                started_at=started, id__gte=pk
            )
        rows = list(queryset.order_by("-started_at", "-id")[: size + 1])
        has_older = len(rows) > size
        rows = rows[:size]
        has_newer = bool(before)
    return {
        "operations": rows,
        "older": encode_cursor(rows[-1]) if rows and has_older else None,
        "newer": encode_cursor(rows[0]) if rows and has_newer else None,
    }
