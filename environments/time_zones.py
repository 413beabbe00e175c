"""Times in the viewer's time zone: the one in their settings, else the one their
browser reports (static/js/time-zone.js sets the ``tz`` cookie), else the portal's
TIME_ZONE (Django's default zone, which the middleware leaves active).

The user's own setting is kept in their session from the moment they sign in, so that
no request pays a query for it: forward auth and the polls run on a budget of three.
"""

import functools
import zoneinfo
from urllib.parse import unquote

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

#: The cookie the browser's script sets to its time zone (an IANA name).
COOKIE = "tz"
#: Where the session keeps the user's chosen time zone ("" when they chose none).
SESSION_KEY = "portal_time_zone"


@functools.cache
def zone_names():
    """Every IANA time zone name this system knows (read from disk once)."""
    return frozenset(zoneinfo.available_timezones())


def valid_zone(name):
    """The time zone called ``name``, or None when there is no such zone."""
    if not name or name not in zone_names():
        return None
    return zoneinfo.ZoneInfo(name)  # ZoneInfo keeps each zone it made


def chosen_time_zone(user):
    """The time zone the user chose in their settings, "" for none."""
    from environments.models import UserSettings

    chosen = UserSettings.objects.filter(user=user).values_list("time_zone", flat=True).first()
    return chosen or ""


def remember_choice(request, name):
    """Keep the user's choice in their session (their settings page changed it)."""
    request.session[SESSION_KEY] = name or ""


@receiver(user_logged_in, dispatch_uid="portal-time-zone-on-sign-in")
def _remember_on_sign_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        remember_choice(request, chosen_time_zone(user))


def viewer_zone(request):
    """The time zone to show times in for this request, or None for the default."""
    # Only a request that brings a session may have a user's choice. Leaving the
    # session alone otherwise keeps "Vary: Cookie" off answers that do not depend on
    # it (/healthz, asked by load balancers).
    has_session = settings.SESSION_COOKIE_NAME in request.COOKIES
    session = getattr(request, "session", None) if has_session else None
    chosen = session.get(SESSION_KEY) if session is not None else None
    if chosen is None and session is not None and request.user.is_authenticated:
        # A session that began before this setting existed: look it up once.
        chosen = chosen_time_zone(request.user)
        remember_choice(request, chosen)
    return valid_zone(chosen) or valid_zone(browser_zone_name(request))


def browser_zone_name(request):
    """The time zone the browser reported (the tz cookie), "" when none or not a zone."""
    name = unquote(request.COOKIES.get(COOKIE, ""))
    return name if valid_zone(name) else ""


class ViewerTimeZoneMiddleware:
    """Activate the viewer's time zone for the request: forms read times in it, pages
    show them in it, and the cache keys of pages name it (environments/cache_keys.py)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = viewer_zone(request)
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            # gunicorn's threads serve one request after another.
            timezone.deactivate()
