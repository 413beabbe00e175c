"""Hot pages run a fixed number of queries however much data there is."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from environments.crypto import seal
from environments.models import (
    AccessLevel,
    DatabaseAccount,
    EnvironmentRole,
    EnvironmentRoleKind,
    FirewallRule,
    OperationKind,
)
from tests.conftest import make_environment
from tests.helpers import add_history

HTMX = {"HTTP_HX_REQUEST": "true"}


def grow(project, environment, manager, factor):
    """Add environments (with services), history rows and access grants, `factor` times over."""
    for _ in range(5 * factor):
        make_environment(project)
    add_history(environment, manager, 30 * factor)
    now = timezone.now()
    for i in range(factor):
        FirewallRule.objects.create(
            environment=environment,
            requested_by=manager,
            name=f"rule {i}",
            cidr=f"203.0.113.{i}/32",
            reason="test",
            applied_at=now,
            expires_at=now + timedelta(hours=1),
        )
        DatabaseAccount.objects.create(
            environment=environment,
            requested_by=manager,
            level=AccessLevel.READ,
            username=f"jit_mona_{i}_{factor}",
            reason="test",
            applied_at=now,
            password_encrypted=seal("secret"),
            expires_at=now + timedelta(hours=1),
        )


def queries(client, url, **extra):
    """The queries of a render from scratch: nothing from the cache."""
    cache.clear()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **extra)
    assert response.status_code in (200, 204, 304)
    return len(captured)


PAGES = {
    # The session, the user, the version of what they may see, the page of
    # environments, their count.
    "list": (lambda env: reverse("environment-list"), {}, 5),
    # The session, the user, the environment with the viewer's roles (one statement),
    # then what the page shows: all kept in the cache for the next request.
    "details": (lambda env: env.get_absolute_url(), {}, 10),
    "poll": (lambda env: reverse("environment-status", args=[env.slug]), HTMX, 9),
    # The session, the user, the environment with the viewer's roles, the rows, the
    # names the filter offers.
    "history": (lambda env: reverse("environment-history", args=[env.slug]), {}, 5),
    "all history": (lambda env: reverse("history"), {}, 5),
    # The reverse proxy's question before every request to the environment: the
    # session, the user, the environment with the user's role on it (one statement).
    "forward auth": (lambda env: reverse("environment-auth", args=[env.slug]), {}, 3),
}


@pytest.mark.parametrize("page", PAGES)
def test_hot_pages_run_a_fixed_number_of_queries_as_data_grows_tenfold(
    client, project, environment, manager, start, page, django_assert_max_num_queries
):
    url_for, extra, budget = PAGES[page]
    EnvironmentRole.objects.create(
        user=manager, environment=environment, role=EnvironmentRoleKind.SYSTEM_ADMINISTRATOR
    )
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    client.force_login(manager)
    url = url_for(environment)

    grow(project, environment, manager, 1)
    small = queries(client, url, **extra)
    grow(project, environment, manager, 10)
    with django_assert_max_num_queries(budget):
        large = queries(client, url, **extra)

    assert large == small


@pytest.mark.parametrize(
    "page",
    # The session, the user, and the environment or the version of what the user may
    # see: the rest comes from the cache.
    ["details", "poll", "list", "history", "all history", "forward auth"],
)
def test_a_page_whose_environment_has_not_changed_comes_from_the_cache(
    client, project, environment, manager, owner, start, page, django_assert_num_queries
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    url_for, extra, _ = PAGES[page]
    url = url_for(environment)
    client.force_login(owner)
    grow(project, environment, manager, 11)
    client.get(url, **extra)

    with django_assert_num_queries(3):
        assert client.get(url, **extra).status_code in (200, 204, 403)


def test_a_poll_that_finds_nothing_changed_stays_at_three_queries_as_data_grows(
    client, project, environment, manager, owner, start, django_assert_num_queries
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    client.force_login(owner)
    url = reverse("environment-status", args=[environment.slug])
    grow(project, environment, manager, 11)
    etag = client.get(url, **HTMX)["ETag"]

    # The session; the user; the environment with the viewer's roles.
    with django_assert_num_queries(3):
        response = client.get(url, HTTP_IF_NONE_MATCH=etag, **HTMX)

    assert response.status_code == 304
