"""Hot pages run a fixed number of queries however much data there is."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from environments.models import OperationKind
from tests.conftest import make_environment
from tests.test_history import add_history

HTMX = {"HTTP_HX_REQUEST": "true"}


def grow(project, environment, manager, factor):
    """Add environments (with services) and history rows, `factor` times over."""
    for _ in range(5 * factor):
        make_environment(project)
    add_history(environment, manager, 30 * factor)


def queries(client, url, **extra):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **extra)
    assert response.status_code in (200, 286)
    return len(captured)


PAGES = {
    "list": (lambda env: reverse("environment-list"), {}, 5),
    "details": (lambda env: env.get_absolute_url(), {}, 6),
    "poll": (lambda env: reverse("environment-status", args=[env.slug]), HTMX, 5),
    "badge poll": (
        lambda env: reverse("environment-status", args=[env.slug]) + "?part=badge",
        HTMX,
        3,
    ),
    "history": (lambda env: reverse("environment-history", args=[env.slug]), {}, 5),
    "all history": (lambda env: reverse("history"), {}, 4),
}


@pytest.mark.parametrize("page", PAGES)
def test_hot_pages_run_a_fixed_number_of_queries_as_data_grows_tenfold(
    client, project, environment, manager, start, page, django_assert_max_num_queries
):
    url_for, extra, budget = PAGES[page]
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    client.force_login(manager)
    url = url_for(environment)

    grow(project, environment, manager, 1)
    small = queries(client, url, **extra)
    grow(project, environment, manager, 10)
    with django_assert_max_num_queries(budget):
        large = queries(client, url, **extra)

    assert large == small
