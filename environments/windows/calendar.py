"""An environment's maintenance windows as an iCalendar feed (RFC 5545), for calendar
apps to subscribe to. Plain text: a dozen properties need no library.

Cancelled and missed windows stay in the feed as cancelled events, so that a calendar
which had them removes them; windows that ended more than FEED_DAYS ago leave it.
"""

from datetime import UTC, timedelta

from django.conf import settings
from django.utils import timezone

from environments.models import WindowState

#: How far back the feed reaches.
FEED_DAYS = 90
_CANCELLED = (WindowState.CANCELLED, WindowState.MISSED)


def feed_windows(environment, now=None):
    now = now or timezone.now()
    since = now - timedelta(days=FEED_DAYS)
    return environment.maintenance_windows.filter(ends_at__gte=since).select_related("scheduled_by")


def ics(environment, windows, now=None):
    """The feed's text: CRLF line ends, escaped text values, lines folded at 75 octets."""
    now = now or timezone.now()
    host = settings.PORTAL_BASE_URL.split("://", 1)[-1].split("/", 1)[0] or "lcs-portal"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//LCS portal//Maintenance windows//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape(f'Maintenance: {environment.name}')}",
        # Calendar apps ask again about this often.
        "REFRESH-INTERVAL;VALUE=DURATION:PT15M",
        "X-PUBLISHED-TTL:PT15M",
    ]
    details_url = f"{settings.PORTAL_BASE_URL}{environment.get_absolute_url()}"
    for window in windows:
        ends = window.ended_at if window.state == WindowState.COMPLETED else window.ends_at
        description = (
            f"{window.reason}\n\nMaintenance mode on {environment.name}: only System "
            "administrators and Maintenance mode users can sign in.\n"
            f"Scheduled by {window.scheduled_by.get_username()}. "
            f"{window.get_state_display()}."
        )
        if window.note:
            description += f" {window.note}"
        lines += [
            "BEGIN:VEVENT",
            f"UID:maintenance-window-{window.pk}@{host}",
            f"DTSTAMP:{stamp(now)}",
            f"DTSTART:{stamp(window.starts_at)}",
            f"DTEND:{stamp(max(ends or window.ends_at, window.starts_at + timedelta(minutes=1)))}",
            f"LAST-MODIFIED:{stamp(window.changed_at)}",
            f"SUMMARY:{escape(f'Maintenance mode: {environment.name}')}",
            f"DESCRIPTION:{escape(description)}",
            f"URL:{details_url}",
            "STATUS:" + ("CANCELLED" if window.state in _CANCELLED else "CONFIRMED"),
            "TRANSP:OPAQUE",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)


def stamp(moment):
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def escape(text):
    """A TEXT value (RFC 5545, 3.3.11): backslash, semicolon, comma and newline escaped."""
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def fold(line, limit=75):
    """Fold a content line into lines of at most ``limit`` octets (RFC 5545, 3.1), never
    inside a UTF-8 character; each continuation starts with a space."""
    parts = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        if size + width > limit:
            parts.append(current)
            current, size = " ", 1
        current += char
        size += width
    parts.append(current)
    return "\r\n".join(parts)
