"""What each technique buys: the same request with the technique and without it, timed
in one process (Django's test client, no HTTP, no wrk), on the benchmark's database.

Run by ``python -m bench techniques`` after ``python -m bench pages`` has seeded
lcs_bench; prints one row a technique: ms per request with and without, and the saving.
"""

import json
import os
import statistics
import sys
import time


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lcs_portal.settings")
    import django

    django.setup()

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    from environments.demo.seed_scale import ADMIN_USERNAME
    from environments.models import Environment, Status

    user = get_user_model().objects.get(username=ADMIN_USERNAME)
    client = Client(HTTP_HOST="localhost")  # an allowed host
    client.force_login(user, backend=settings.AUTHENTICATION_BACKENDS[-1])
    busy = Environment.objects.filter(status=Status.RESTARTING_SERVICE).order_by("slug").first()
    slug = busy.slug if busy else Environment.objects.order_by("slug").first().slug
    htmx = {"HTTP_HX_REQUEST": "true"}
    poll = f"/environments/{slug}/status/"
    etag = client.get(poll, **htmx)["ETag"]

    def timed(path, *, clear=False, repeat=300, **extra):
        """Median ms per request over ``repeat`` requests, in slices of 30."""
        client.get(path, **extra)
        slices = []
        for _ in range(repeat // 30):
            started = time.perf_counter()
            for _ in range(30):
                if clear:
                    cache.clear()
                response = client.get(path, **extra)
            slices.append((time.perf_counter() - started) / 30 * 1000)
            assert response.status_code in (200, 204, 304), (path, response.status_code)
        return statistics.median(slices)

    clear_cost = timed("/bench/bare/", clear=True) - timed("/bench/bare/")
    rows = []

    def compare(name, path, *, without, with_, **extra):
        plain = timed(path, **without, **extra) - (clear_cost if without.get("clear") else 0)
        better = timed(path, **with_, **extra)
        rows.append({"technique": name, "without_ms": plain, "with_ms": better})

    compare(
        "Status poll: answered 304 (condition(), ETag = live-region key) instead of rendered",
        poll,
        without={},
        with_={"HTTP_IF_NONE_MATCH": etag},
        **htmx,
    )
    compare(
        "Status poll: live region from the cache under its revision",
        poll,
        without={"clear": True},
        with_={},
        **htmx,
    )
    compare(
        "Details page: head and live region from the cache under the revision",
        f"/environments/{slug}/",
        without={"clear": True},
        with_={},
    )
    compare(
        "Environment list: the table from the cache under visible_version",
        "/environments/",
        without={"clear": True},
        with_={},
    )
    compare(
        "History page 1: the page from the cache under visible_version",
        "/history/",
        without={"clear": True},
        with_={},
    )
    rows.append(roles_in_one_statement(user, slug))
    json.dump(rows, sys.stdout)


def roles_in_one_statement(user, slug, repeat=300):
    """Every environment page and forward auth fetch the environment with the viewer's
    roles: the one hand-written statement (permissions.environment_with_roles) against
    the ORM's three queries (the environment, the project role, the environment role)."""
    from environments.models import Environment
    from environments.permissions import environment_with_roles

    def orm():
        environment = Environment.objects.get(slug=slug)
        environment.project_role_of(user)
        environment.environment_role_of(user)

    def timed(fetch):
        fetch()
        slices = []
        for _ in range(repeat // 30):
            started = time.perf_counter()
            for _ in range(30):
                fetch()
            slices.append((time.perf_counter() - started) / 30 * 1000)
        return statistics.median(slices)

    return {
        "technique": "Environment with the viewer's roles: one hand-written statement "
        "(ENVIRONMENT_SQL) instead of three ORM queries",
        "without_ms": timed(orm),
        "with_ms": timed(lambda: environment_with_roles(user, slug)),
    }


if __name__ == "__main__":
    main()
