"""Rendered fragments are kept under what they show: a page served from the cache is the
page that would have been rendered, with its own CSRF token and never a password."""

import re

import pytest
from django.core.cache import caches
from django.middleware.csrf import _unmask_cipher_token
from django.urls import reverse

from environments import fragments, operations
from environments.models import (
    AccessLevel,
    EnvironmentRole,
    EnvironmentRoleKind,
    OperationKind,
    ProjectMembership,
    ProjectRole,
    Status,
)
from tests.conftest import committing, make_environment, run_worker

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def as_manager(client, manager):
    client.force_login(manager)
    return client


def details(client, environment):
    response = client.get(environment.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode()


def without_tokens(html):
    return TOKEN.sub("", re.sub(r'"X-CSRFToken": "[^"]+"', "", html))


def kept_pages():
    """What the fragments cache holds, as text."""
    return "".join(text for _, text in caches["fragments"]._data.values())


def test_an_unchanged_details_page_is_served_from_the_cache_in_two_queries(
    as_manager, environment, manager, start, django_assert_max_num_queries
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    first = details(as_manager, environment)

    # The session; the user with their projects, the environment with its facts.
    with django_assert_max_num_queries(2):
        again = details(as_manager, environment)

    assert without_tokens(again) == without_tokens(first)
    assert "Restarting service" in again


def test_every_step_of_an_operation_shows_on_the_details_page(
    as_manager, environment, manager, start
):
    assert 'data-status="deployed"' in details(as_manager, environment)

    restart = start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    assert 'data-status="restarting_service"' in details(as_manager, environment)
    assert "An operation is in progress" in details(as_manager, environment)

    operations.mark_running(restart.pk)
    assert ">Running<" in details(as_manager, environment)

    operations.complete_operation(restart.pk)
    page = details(as_manager, environment)
    assert 'data-status="deployed"' in page
    assert "An operation is in progress" not in page


def test_a_role_change_shows_on_the_details_page(as_manager, environment, manager, start):
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    assert "no one has such a role" in details(as_manager, environment)

    with committing():
        role = EnvironmentRole.objects.create(
            user=manager, environment=environment, role=EnvironmentRoleKind.SYSTEM_ADMINISTRATOR
        )
        operations.record_role_change(environment, manager, manager, role.role, granted=True)

    assert "mona (System administrator)" in details(as_manager, environment)


def test_the_cached_page_is_the_viewers_own(client, environment, manager, member):
    client.force_login(manager)
    assert 'data-testid="maintain"' in details(client, environment)

    client.force_login(member)
    page = details(client, environment)

    assert 'data-testid="maintain"' not in page
    assert 'data-testid="user-name">tom<' in page


def test_each_response_carries_its_own_valid_csrf_token(as_manager, environment, manager):
    with committing():
        operations.enable_access(
            environment, manager, name="office", cidr="203.0.113.7/32", reason="deploy"
        )
    run_worker()
    first, again = details(as_manager, environment), details(as_manager, environment)
    tokens = TOKEN.findall(first) + TOKEN.findall(again)
    secret = as_manager.cookies["csrftoken"].value

    assert len(tokens) == 4  # the sign-out and Remove forms of each page
    assert len(set(tokens)) == 4
    assert {_unmask_cipher_token(token) for token in tokens} == {secret}
    assert "csrf-placeholder" not in first + again
    assert not any(token in kept_pages() for token in tokens)  # the cache holds no token


def test_a_removal_posted_from_a_cached_page_is_accepted(environment, manager, start):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    with committing():
        operations.enable_access(
            environment, manager, name="office", cidr="203.0.113.7/32", reason="deploy"
        )
    run_worker()
    details(client, environment)
    page = details(client, environment)  # from the cache
    rule = environment.firewallrules.get()
    token = TOKEN.findall(page)[-1]

    response = client.post(
        reverse("firewall-rule-remove", args=[environment.slug, rule.pk]),
        {"csrfmiddlewaretoken": token},
    )

    assert response.status_code == 302


def test_a_page_that_shows_a_password_is_never_kept(as_manager, environment, manager):
    with committing():
        operations.request_access(
            environment, manager, level=AccessLevel.READ, reason="investigate"
        )
    run_worker()
    account = environment.databaseaccounts.get()
    password = operations.account_password(account, manager)

    assert password in details(as_manager, environment)
    assert password in details(as_manager, environment)
    assert password not in kept_pages()
    assert account.username not in kept_pages()


def test_list_rows_follow_the_environments_they_show(
    client, project, environment, manager, member, start, django_assert_max_num_queries
):
    client.force_login(manager)
    first = client.get(reverse("environment-list")).content.decode()
    client.force_login(member)
    # The rows rendered for mona are tom's too: the same environments, the same values.
    with django_assert_max_num_queries(3):
        shared = client.get(reverse("environment-list")).content.decode()
    assert shared.count('data-testid="status-badge"') == first.count('data-testid="status-badge"')

    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    environment.refresh_from_db()
    assert environment.status == Status.RESTARTING_SERVICE
    renamed = make_environment(project, name="Zeta sandbox")

    page = client.get(reverse("environment-list")).content.decode()

    assert 'data-status="restarting_service"' in page
    assert "Zeta sandbox" in page
    assert f'href="{renamed.get_absolute_url()}"' in page


def test_a_fragment_key_changes_with_the_url_prefix(rf):
    from django.urls import set_script_prefix

    try:
        plain = fragments.key("rows", [1])
        set_script_prefix("/portal/")
        assert fragments.key("rows", [1]) != plain
    finally:
        set_script_prefix("/")


def test_a_rule_removed_while_being_applied_leaves_the_details_page(
    as_manager, environment, manager
):
    with committing():
        operations.enable_access(
            environment, manager, name="office", cidr="203.0.113.7/32", reason="deploy"
        )
    # No worker ran: the rule is still being applied.
    assert "Being applied" in details(as_manager, environment)

    with committing():
        operations.remove_access(environment.firewallrules.get(), manager)

    assert 'data-testid="firewall-rule"' not in details(as_manager, environment)


def test_a_service_added_in_the_admin_shows_on_the_details_page(as_manager, environment):
    from environments.models import Service, ServiceKind

    environment.services.filter(kind=ServiceKind.MR).delete()
    assert 'data-testid="service-MR"' not in details(as_manager, environment)

    Service.objects.create(environment=environment, kind=ServiceKind.MR)

    assert 'data-testid="service-MR"' in details(as_manager, environment)


def test_a_page_number_past_any_database_offset_shows_the_last_page(client, environment, member):
    client.force_login(member)

    response = client.get(reverse("environment-list"), {"page": "1" + "0" * 30})

    assert response.status_code == 200
    assert 'data-testid="status-badge"' in response.content.decode()


def test_history_rows_follow_the_operations_progress(as_manager, environment, manager, start):
    restart = start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    assert 'data-outcome="queued"' in as_manager.get(reverse("history")).content.decode()

    operations.mark_running(restart.pk)
    operations.complete_operation(restart.pk)
    page = as_manager.get(reverse("history")).content.decode()

    assert 'data-outcome="succeeded"' in page
    assert 'data-outcome="queued"' not in page
    assert page.count('data-testid="history-row"') == 1


def test_the_text_cache_forgets_the_least_recently_used_and_the_expired(monkeypatch):
    from environments import cache

    texts = cache.TextCache("", {"TIMEOUT": 60, "OPTIONS": {"MAX_ENTRIES": 2}})
    texts.set("a", "A")
    texts.set("b", "B")
    assert texts.get("a") == "A"  # now "b" is the least recently used
    texts.set("c", "C")

    assert (texts.get("a"), texts.get("b"), texts.get("c")) == ("A", None, "C")
    now = cache.time.monotonic()
    monkeypatch.setattr(cache.time, "monotonic", lambda: now + 61)
    assert texts.get("a") is None
    with pytest.raises(TypeError):
        texts.set("d", b"bytes")


def test_the_kept_header_follows_the_viewers_name_and_projects(client, member, other_project):
    client.force_login(member)
    before = client.get(reverse("environment-list")).content.decode()
    ProjectMembership.objects.create(user=member, project=other_project, role=ProjectRole.MEMBER)
    member.username = "thomas"
    member.save()
    after = client.get(reverse("environment-list")).content.decode()

    assert 'data-testid="user-name">tom<' in before
    assert 'title="Contoso"' in before
    assert 'data-testid="user-name">thomas<' in after
    assert 'title="Contoso, Fabrikam"' in after
