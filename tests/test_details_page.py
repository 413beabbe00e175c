"""The details page in an admin's hands: what each viewer is told, in the
portal's own words; the browser tests (tests/browser/) drive the same in Chromium."""

import logging

import pytest
from django.urls import reverse

from environments import operations
from environments.models import EnvironmentRole, EnvironmentRoleKind, OperationKind
from tests.conftest import run_worker
from tests.helpers import add_history

HTMX = {"HTTP_HX_REQUEST": "true"}


def page(client, user, environment):
    client.force_login(user)
    return client.get(environment.get_absolute_url()).content.decode()


def live(client, environment):
    url = reverse("environment-status", args=[environment.slug])
    return client.get(url, **HTMX).content.decode()


def test_a_team_member_is_told_who_may_maintain_in_the_roles_own_names(client, environment, member):
    body = page(client, member, environment)
    assert ">Maintain</summary>" not in body
    assert (
        "You are a Project team member: only Project owners and Environment managers can "
        "maintain this environment."
    ) in body


def test_the_page_names_the_viewers_role_of_each_kind(client, environment, maint):
    body = page(client, maint, environment)
    assert 'data-testid="your-project-role">Project team member' in body
    assert 'data-testid="your-environment-role">Maintenance mode user' in body
    assert "decides who may maintain" in body and "decides who may sign in" in body


def test_the_page_links_to_the_environments_sign_in_gate(client, environment, member):
    body = page(client, member, environment)
    assert f'href="{reverse("environment-sign-in", args=[environment.slug])}"' in body
    assert "Sign in to this environment" in body


def test_servicing_says_whether_maintenance_mode_is_turned_on_or_off(
    client, environment, manager, start
):
    operation = start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    client.force_login(manager)
    assert "Maintenance mode is being turned on" in live(client, environment)
    operations.complete_operation(operation.pk)
    start(OperationKind.DISABLE_MAINTENANCE, environment, manager)
    assert "Maintenance mode is being turned off" in live(client, environment)


def test_a_rollback_shows_as_rolling_back_beside_the_badge(
    client, environment, manager, start, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="mr")
    run_worker()
    start(OperationKind.ROLLBACK, environment, manager)
    client.force_login(manager)
    body = live(client, environment)
    assert 'data-testid="rolling-back">Rolling back</span>' in body


def test_an_aborted_restart_leaves_the_service_marked_as_needing_attention(
    client, environment, manager, start, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="mr")
    run_worker()
    start(OperationKind.ABORT, environment, manager)
    client.force_login(manager)
    body = live(client, environment)
    assert 'data-status="deployed"' in body
    assert "restart aborted: needs attention" in body
    assert "MR (Management Reporter service) failed to restart and the restart was aborted" in body


def test_a_finished_operation_says_it_succeeded_where_the_status_is(
    client, environment, manager, start
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()
    client.force_login(manager)
    assert 'data-testid="last-success">Restart service: AOS succeeded at' in live(
        client, environment
    )


def test_confirm_fields_say_they_are_required_and_describe_themselves(client, environment, manager):
    client.force_login(manager)
    url = reverse("environment-maintain", args=[environment.slug, "enable_access"])
    body = client.get(url, **HTMX).content.decode()
    assert 'aria-describedby="id_hours_helptext"' in body
    assert 'id="id_hours_helptext"' in body  # the id it points at exists
    assert body.count('class="required-mark"') >= 4  # name, address, reason + the note
    posted = client.post(url, {"name": "", "address": "", "reason": ""}, **HTMX)
    body = posted.content.decode()
    assert 'aria-describedby="id_reason_helptext id_reason_error"' in body
    assert 'id="id_reason_error"' in body and "Give a reason" in body


def test_history_says_role_changes_without_status_noise(client, environment, superuser, member):
    role = EnvironmentRole.objects.create(
        environment=environment, user=member, role=EnvironmentRoleKind.USER
    )
    operations.record_role_change(
        environment,
        superuser,
        member,
        EnvironmentRoleKind.MAINTENANCE_MODE_USER,
        granted=True,
        previous_role=role.role,
    )
    client.force_login(superuser)
    body = client.get(reverse("environment-history", args=[environment.slug])).content.decode()
    assert "Environment role changed: tom, User → Maintenance mode user" in body
    assert "Deployed &rarr; Deployed" not in body


def test_a_refused_request_is_logged_on_one_line(client, environment, member, caplog):
    client.force_login(member)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(
            reverse("environment-maintain", args=[environment.slug, "restart_service"])
        )
    assert response.status_code == 403
    from lcs_portal.logs import RefusalsOnOneLine

    (record,) = [r for r in caplog.records if r.name == "django.request"]
    RefusalsOnOneLine().filter(record)
    assert record.exc_info is None
    assert "Traceback" not in logging.Formatter().format(record)


def test_signing_out_says_so(client, member):
    client.force_login(member)
    response = client.post(reverse("logout"))
    assert response.status_code == 200
    assert "You have signed out" in response.content.decode()


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert client.get(response["Location"]).status_code == 200


def test_the_watchdog_stops_quietly_on_ctrl_c(monkeypatch, capsys, db):
    from django.core.management import call_command

    from environments.management.commands import watchdog

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(watchdog.time, "sleep", interrupted)
    call_command("watchdog", loop=60)  # returns: no traceback
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("url", ["https://sandbox.operations.example.com/", "https://x.test/"])
def test_the_gate_says_where_it_would_send_a_demo_user(client, environment, maint, url):
    environment.url = url
    environment.save(update_fields=["url"])
    client.force_login(maint)
    response = client.get(reverse("environment-sign-in", args=[environment.slug]))
    assert response.status_code == 200
    assert "You may sign in to Demo sandbox" in response.content.decode()
    assert url in response.content.decode()


def test_the_admin_links_to_the_role_a_user_already_has(client, superuser, environment, maint):
    existing = EnvironmentRole.objects.get(user=maint)
    client.force_login(superuser)
    response = client.post(
        reverse("admin:environments_environmentrole_add"),
        {"user": maint.pk, "environment": environment.pk, "role": "user"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "maya already has a role on Demo sandbox: Maintenance mode user." in body
    change = reverse("admin:environments_environmentrole_change", args=[existing.pk])
    assert f'<a href="{change}">Change that role</a>' in body


def test_the_sign_in_refusal_states_its_fact_once(client, environment, manager, member, start):
    EnvironmentRole.objects.create(
        environment=environment, user=member, role=EnvironmentRoleKind.USER
    )
    operation = start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    operations.complete_operation(operation.pk)
    client.force_login(member)
    body = client.get(reverse("environment-sign-in", args=[environment.slug])).content.decode()
    assert body.count("in maintenance mode") == 1
    assert "Who can still sign in" in body


FORM_PAGES = [
    ("get", "environment-maintain", ["restart_service"], {}),
    ("post", "environment-maintain", ["enable_access"], {"name": "", "address": "x"}),
    ("post", "environment-maintain", ["request_access"], {}),
    ("get", "window-schedule", [], {}),
    ("post", "window-schedule", [], {"starts_at": "yesterday"}),
    ("get", "api-tokens", None, {}),
    ("post", "api-tokens", None, {"name": ""}),
    ("get", "user-settings", None, {}),
]


@pytest.mark.parametrize("method, name, args, data", FORM_PAGES)
def test_every_id_a_field_is_described_by_exists(
    client, environment, manager, method, name, args, data
):
    import re

    client.force_login(manager)
    url = reverse(name, args=None if args is None else [environment.slug, *args])
    response = getattr(client, method)(url, data)
    body = response.content.decode()
    described = {i for ids in re.findall(r'aria-describedby="([^"]+)"', body) for i in ids.split()}
    assert described, "no field describes itself"
    missing = [i for i in described if f'id="{i}"' not in body]
    assert missing == []


def test_details_page_facts_are_collapsible_and_history_shows_the_latest_five_with_a_link(
    as_manager, environment, manager
):
    add_history(environment, manager, 12)
    body = as_manager.get(environment.get_absolute_url()).content.decode()

    facts = body[body.index('id="facts"') : body.index("</section>", body.index('id="facts"'))]
    assert "<details open data-close-narrow><summary><h2>Details</h2></summary>" in facts
    assert body.count('data-testid="history-row"') == 5
    assert f'href="{environment.get_absolute_url()}history/" id="full-history"' in body
