"""The status poll revalidates: 304 while nothing changed, a new ETag when anything did,
and never a stored copy of a database password."""

import pytest
from django.urls import reverse

from environments import operations
from environments.models import AccessLevel, OperationKind
from tests.conftest import committing, run_worker

HTMX = {"HTTP_HX_REQUEST": "true"}


def status_url(environment, badge=False):
    return reverse("environment-status", args=[environment.slug]) + ("?part=badge" if badge else "")


@pytest.fixture
def running(environment, manager, start):
    return start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")


@pytest.fixture
def as_manager(client, manager):
    client.force_login(manager)
    return client


@pytest.mark.parametrize("badge", [False, True])
def test_an_unchanged_poll_gets_304_without_rendering_in_two_queries(
    as_manager, environment, running, badge, django_assert_max_num_queries
):
    first = as_manager.get(status_url(environment, badge), **HTMX)
    assert first.status_code == 200
    assert first["ETag"]
    assert "no-cache" in first["Cache-Control"] and "private" in first["Cache-Control"]
    assert "no-store" not in first["Cache-Control"]

    with django_assert_max_num_queries(2):
        again = as_manager.get(
            status_url(environment, badge), HTTP_IF_NONE_MATCH=first["ETag"], **HTMX
        )

    assert again.status_code == 304
    assert again["ETag"] == first["ETag"]
    assert not again.content


def test_every_step_of_the_operation_changes_the_etag(as_manager, environment, running):
    queued = as_manager.get(status_url(environment), **HTMX)["ETag"]

    operations.mark_running(running.pk)
    progressed = as_manager.get(status_url(environment), HTTP_IF_NONE_MATCH=queued, **HTMX)
    assert progressed.status_code == 200
    assert progressed["ETag"] != queued

    operations.complete_operation(running.pk)
    settled = as_manager.get(status_url(environment), HTTP_IF_NONE_MATCH=progressed["ETag"], **HTMX)
    # Settled: htmx is told to stop polling, with the final content.
    assert settled.status_code == 286
    assert b"Deployed" in settled.content
    assert not settled.has_header("ETag")


def test_the_etag_is_private_to_the_session(client, environment, manager, running):
    client.force_login(manager)
    mine = client.get(status_url(environment), **HTMX)["ETag"]
    client.logout()
    client.force_login(manager)

    other_session = client.get(status_url(environment), HTTP_IF_NONE_MATCH=mine, **HTMX)

    assert other_session.status_code == 200
    assert other_session["ETag"] != mine
    assert "Cookie" in other_session["Vary"]


def test_a_poll_that_shows_a_database_password_is_never_stored(
    as_manager, environment, manager, start
):
    with committing():
        operations.request_access(
            environment, manager, level=AccessLevel.READ, reason="investigate"
        )
    run_worker()
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")

    response = as_manager.get(status_url(environment), **HTMX)

    assert response.status_code == 200
    assert b'data-testid="credential-password"' in response.content
    assert not response.has_header("ETag")
    assert "no-store" in response["Cache-Control"]
