"""The status poll revalidates: 304 while nothing changed, a new ETag when anything did,
and never a database password in a poll, a cache or a browser's store."""

import pytest
from django.core.cache import cache
from django.core.cache.utils import make_template_fragment_key
from django.urls import reverse

from environments import operations
from environments.models import (
    AccessLevel,
    DatabaseAccount,
    Environment,
    OperationKind,
    ProjectMembership,
    ProjectRole,
)
from tests.conftest import committing, run_worker

HTMX = {"HTTP_HX_REQUEST": "true"}


def status_url(environment):
    return reverse("environment-status", args=[environment.slug])


@pytest.fixture
def running(environment, manager, start):
    return start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")


def test_an_unchanged_poll_gets_304_in_three_queries(
    as_manager, environment, running, django_assert_num_queries
):
    first = as_manager.get(status_url(environment), **HTMX)
    assert first.status_code == 200
    assert first["ETag"]
    assert "no-cache" in first["Cache-Control"] and "private" in first["Cache-Control"]
    assert "Cookie" in first["Vary"]

    # The session, the user, the environment with the viewer's roles.
    with django_assert_num_queries(3):
        again = as_manager.get(status_url(environment), HTTP_IF_NONE_MATCH=first["ETag"], **HTMX)

    assert again.status_code == 304
    assert not again.content


def test_every_step_of_the_operation_changes_the_etag(as_manager, environment, running):
    queued = as_manager.get(status_url(environment), **HTMX)["ETag"]

    operations.claim_step(running.pk, 1)
    progressed = as_manager.get(status_url(environment), HTTP_IF_NONE_MATCH=queued, **HTMX)
    assert progressed.status_code == 200
    assert progressed["ETag"] != queued
    assert 'data-outcome="running"' in progressed.content.decode()

    operations.complete_operation(running.pk)
    settled = as_manager.get(status_url(environment), HTTP_IF_NONE_MATCH=progressed["ETag"], **HTMX)
    assert settled.status_code == 200
    assert b"Deployed" in settled.content


def test_viewers_with_other_roles_get_other_etags(client, environment, manager, member, running):
    client.force_login(manager)
    managers = client.get(status_url(environment), **HTMX)
    client.force_login(member)

    members = client.get(status_url(environment), HTTP_IF_NONE_MATCH=managers["ETag"], **HTMX)

    assert members.status_code == 200
    assert members["ETag"] != managers["ETag"]
    assert b">Maintain</summary>" in managers.content
    assert b">Maintain</summary>" not in members.content


def test_a_role_changed_without_moving_the_revision_still_changes_the_etag(
    client, environment, member
):
    """A bulk update (the shell, a sync from single sign-on) saves no membership, so the
    revision stays; the ETag names the viewer's role all the same."""
    client.force_login(member)
    as_member = client.get(status_url(environment), **HTMX)
    assert b">Maintain</summary>" not in as_member.content
    revision = Environment.objects.values_list("revision", flat=True).get(pk=environment.pk)

    ProjectMembership.objects.filter(user=member).update(role=ProjectRole.MANAGER)

    assert Environment.objects.get(pk=environment.pk).revision == revision
    as_manager = client.get(status_url(environment), HTTP_IF_NONE_MATCH=as_member["ETag"], **HTMX)
    assert as_manager.status_code == 200
    assert as_manager["ETag"] != as_member["ETag"]
    assert b">Maintain</summary>" in as_manager.content


def test_the_page_the_poll_and_the_cache_never_hold_a_password(
    as_manager, environment, manager, start
):
    with committing():
        operations.request_access(
            environment, manager, level=AccessLevel.READ, reason="investigate"
        )
    run_worker()
    account = DatabaseAccount.objects.get()
    password = operations.account_password(account, manager)

    page = as_manager.get(environment.get_absolute_url())
    poll = as_manager.get(status_url(environment), **HTMX)
    credentials = as_manager.get(
        reverse("database-account-credentials", args=[environment.slug, account.pk]), **HTMX
    )

    assert password not in page.content.decode() and password not in poll.content.decode()
    assert b'data-testid="show-credentials"' in poll.content
    assert password in credentials.content.decode()
    assert "no-store" in credentials["Cache-Control"]
    kept = cache.get(make_template_fragment_key("live-region", [poll["ETag"].strip('"')]))
    assert kept is not None and password not in kept


def test_a_revalidated_poll_says_private_no_cache_too(as_manager, environment, running):
    etag = as_manager.get(status_url(environment), **HTMX)["ETag"]
    again = as_manager.get(status_url(environment), HTTP_IF_NONE_MATCH=etag, **HTMX)
    assert again.status_code == 304
    assert "private" in again["Cache-Control"] and "no-cache" in again["Cache-Control"]


def test_the_list_page_and_its_tables_poll_never_answer_for_each_other(as_manager, environment):
    url = reverse("environment-list")
    poll = as_manager.get(url, **HTMX)
    page = as_manager.get(url, HTTP_IF_NONE_MATCH=poll["ETag"])

    assert page.status_code == 200 and b"<h1>Environments</h1>" in page.content
    assert poll["ETag"] != page["ETag"]
    assert "HX-Request" in poll["Vary"]


def test_the_pages_head_names_the_viewers_roles_whichever_view_rendered_it_first(
    client, environment, manager
):
    client.force_login(manager)
    client.get(reverse("environment-maintain", args=[environment.slug, "enable_maintenance"]))
    body = client.get(environment.get_absolute_url()).content.decode()
    assert 'data-testid="your-project-role">Environment manager' in body
