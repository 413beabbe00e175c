"""Inside Django, with the benchmark's settings: sign in scale-admin and find the URLs.

Run as ``python -m bench.prepare`` by the benchmark (in the environment of the gunicorn
it is about to measure, so the session lands in the same session store); prints JSON.
"""

import json
import os
import sys
from types import SimpleNamespace
from urllib.parse import urlencode


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lcs_portal.settings")
    import django

    django.setup()

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.middleware.csrf import get_token
    from django.test import Client, RequestFactory
    from django.urls import reverse
    from django.utils import timezone

    from environments import operations
    from environments.demo.seed_scale import ADMIN_USERNAME, PREFIX
    from environments.history_cursor import PAGE_SIZE, encode_cursor
    from environments.models import Deployment, Environment, EnvironmentType, Status, Subscription
    from environments.permissions import visible_operations

    user = get_user_model().objects.get(username=ADMIN_USERNAME)
    client = Client()
    # As a password sign-in does: the throttling backend never signs anyone in.
    client.force_login(user, backend=settings.AUTHENTICATION_BACKENDS[-1])
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    # A signed-in browser also sends the CSRF cookie it got with the sign-in page, so
    # pages with forms mask that secret rather than make and set a new one each time.
    csrf_request = RequestFactory().get("/")
    get_token(csrf_request)
    csrf_cookie = csrf_request.META["CSRF_COOKIE"]

    scale = Environment.objects.filter(slug__startswith=PREFIX)
    eligible = scale.filter(
        tier__gte=2,
        type=EnvironmentType.SANDBOX,
        subscription=Subscription.MICROSOFT,
        deployment=Deployment.SELF_SERVICE,
    )
    details = eligible.filter(status=Status.DEPLOYED).order_by("slug").first()
    # The poll runs while an operation runs: keep one restart queued (no worker runs here).
    busy = scale.filter(status=Status.RESTARTING_SERVICE).order_by("slug").first()
    if busy is None:
        busy = eligible.filter(status=Status.DEPLOYED).order_by("-slug").first()
        with transaction.atomic():
            operations.restart_service(busy, user, "aos", reason="benchmark: a running operation")
        busy.refresh_from_db()

    history = visible_operations(user).order_by("-started_at", "-id")
    total = history.count()
    # Page 10,000, or the last whole page of a smaller history (--history 100000).
    deep_page = max(2, min(10_000, total // PAGE_SIZE))
    edge = history.values("started_at", "id")[PAGE_SIZE * (deep_page - 1) - 1]
    deep_cursor = encode_cursor(SimpleNamespace(started_at=edge["started_at"], pk=edge["id"]))

    # A CSV filter that selects about 100,000 rows: from the day of the 100,000th newest.
    hundred_thousandth = history.values_list("started_at", flat=True)[min(99_999, total - 1)]
    since = timezone.localtime(hundred_thousandth).date()
    # All activity, as a script exporting everything would ask (the page's default is
    # the Maintain operations alone).
    csv_query = urlencode({"since": since.isoformat(), "type": "all"})
    csv_rows = history.filter(
        started_at__gte=timezone.make_aware(
            timezone.datetime.combine(since, timezone.datetime.min.time())
        )
    ).count()

    json.dump(
        {
            "cookie_name": settings.SESSION_COOKIE_NAME,
            "cookie": cookie,
            "csrf_cookie_name": settings.CSRF_COOKIE_NAME,
            "csrf_cookie": csrf_cookie,
            "username": user.get_username(),
            "history_rows": total,
            "deep_page": deep_page,
            "environments": scale.count(),
            "urls": {
                "list": reverse("environment-list"),
                "details": reverse("environment-detail", args=[details.slug]),
                "poll": reverse("environment-status", args=[busy.slug]),
                "history_1": reverse("history"),
                "history_10000": reverse("history") + "?" + urlencode({"before": deep_cursor}),
                "forward_auth": reverse("environment-auth", args=[details.slug]),
                "csv_100k": reverse("history-csv") + "?" + csv_query,
                "csv_all": reverse("history-csv") + "?type=all",
            },
            "csv_100k_rows": csv_rows,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
