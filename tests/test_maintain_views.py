"""The Maintain menu over HTTP: confirm steps, starting, refusals, and the status poll."""

import re

import pytest
from django.urls import reverse

from environments.models import Operation, OperationKind, Outcome, Status
from tests.conftest import run_worker

HTMX = {"HTTP_HX_REQUEST": "true"}


def maintain_url(environment, action):
    return reverse("environment-maintain", args=[environment.slug, action])


def status_url(environment):
    return reverse("environment-status", args=[environment.slug])


def test_restart_confirm_step_offers_the_services(as_manager, environment):
    response = as_manager.get(maintain_url(environment, "restart_service"), **HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="confirm"' in body
    for label in ["AOS service", "DIXF (Data import export framework service)"]:
        assert label in body
    assert ">Confirm</button>" in body and ">Cancel</a>" in body
    assert "<html" not in body  # an htmx partial, not a page


def test_enable_maintenance_confirm_says_who_can_still_sign_in(as_manager, environment, maint):
    body = as_manager.get(maintain_url(environment, "enable_maintenance")).content.decode()
    assert "only System administrators and Maintenance mode users" in body
    assert "maya (Maintenance mode user)" in body


def test_confirm_restart_starts_it_and_the_badge_shows_restarting_at_once(
    as_manager, environment, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_manager.post(
            maintain_url(environment, "restart_service"),
            {"service": "aos", "reason": "stuck batch"},
            **HTMX,
        )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Restarting service" in body
    assert 'hx-trigger="every 1s, poll-now"' in body
    operation = Operation.objects.get()
    assert operation.activity == "Restart service: AOS"
    assert operation.reason == "stuck batch"


def test_confirm_without_htmx_redirects_to_the_details_page(as_manager, environment):
    response = as_manager.post(maintain_url(environment, "enable_maintenance"), {"reason": "x"})
    assert response.status_code == 302
    assert response.url == environment.get_absolute_url()


def test_poll_asks_every_second_while_running_and_every_two_once_settled(
    as_manager, environment, manager, start
):
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    running = as_manager.get(status_url(environment), **HTMX)
    assert running.status_code == 200
    assert "Restarting service" in running.content.decode()
    assert 'hx-trigger="every 1s, poll-now"' in running.content.decode()

    run_worker()

    settled = as_manager.get(status_url(environment), **HTMX)
    body = settled.content.decode()
    assert settled.status_code == 200
    assert "Deployed" in body and 'hx-trigger="every 2s, poll-now"' in body
    assert ">Restart service</a>" in body  # the menu is back
    assert 'data-outcome="succeeded"' in body  # and the history shows the result


def test_the_list_and_the_details_page_render_one_badge_partial(
    as_manager, environment, manager, start
):
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    badge = (
        '<span class="badge badge-blue" data-testid="status-badge" data-status="servicing">'
        "Servicing</span>"
    )
    assert badge in as_manager.get(reverse("environment-list")).content.decode()
    assert badge in as_manager.get(environment.get_absolute_url()).content.decode()
    assert badge in as_manager.get(status_url(environment), **HTMX).content.decode()


def test_second_restart_gets_409_and_a_clear_message(as_manager, environment, owner, start):
    start(OperationKind.RESTART_SERVICE, environment, owner, service_kind="dixf")

    response = as_manager.post(
        maintain_url(environment, "restart_service"), {"service": "aos"}, **HTMX
    )

    assert response.status_code == 409
    assert "Another operation is in progress" in response.content.decode()
    assert Operation.objects.count() == 1


def test_refusal_without_htmx_is_a_page_not_a_raw_error(as_manager, environment, owner, start):
    start(OperationKind.ENABLE_MAINTENANCE, environment, owner)
    response = as_manager.post(maintain_url(environment, "enable_maintenance"))
    body = response.content.decode()
    assert response.status_code == 409
    assert "<html" in body and 'data-testid="refusal"' in body


def test_team_member_may_not_open_or_post_maintain_actions(client, member, environment):
    client.force_login(member)
    assert client.get(maintain_url(environment, "restart_service")).status_code == 403
    response = client.post(maintain_url(environment, "restart_service"), {"service": "aos"})
    assert response.status_code == 403
    assert not Operation.objects.exists()


def test_outsider_gets_404_for_maintain_actions(client, outsider, environment):
    client.force_login(outsider)
    response = client.post(maintain_url(environment, "enable_maintenance"))
    assert response.status_code == 404
    assert not Operation.objects.exists()


def test_unknown_service_is_refused_with_400_and_nothing_written(as_manager, environment):
    response = as_manager.post(
        maintain_url(environment, "restart_service"), {"service": "sql"}, **HTMX
    )
    assert response.status_code == 400
    assert "Choose one of this environment&#x27;s services" in response.content.decode()
    assert not Operation.objects.exists()
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED


def test_missing_service_is_refused_with_400(as_manager, environment):
    response = as_manager.post(maintain_url(environment, "restart_service"), {}, **HTMX)
    assert response.status_code == 400
    assert "Choose the service to restart." in response.content.decode()


def test_oversize_reason_is_refused_with_400(as_manager, environment):
    response = as_manager.post(
        maintain_url(environment, "enable_maintenance"), {"reason": "x" * 501}, **HTMX
    )
    assert response.status_code == 400
    assert not Operation.objects.exists()


def test_unknown_action_is_refused_with_400(as_manager, environment):
    response = as_manager.post(maintain_url(environment, "delete_everything"), **HTMX)
    assert response.status_code == 400
    assert "no such Maintain action" in response.content.decode()


def test_disable_maintenance_while_deployed_is_refused_with_409(as_manager, environment):
    response = as_manager.post(maintain_url(environment, "disable_maintenance"), **HTMX)
    assert response.status_code == 409
    assert "not possible while Demo sandbox is Deployed" in response.content.decode()


def test_restart_on_ineligible_environment_is_refused_with_the_reason(as_manager, project):
    from tests.conftest import make_environment

    environment = make_environment(project, tier=1)
    response = as_manager.get(maintain_url(environment, "restart_service"), **HTMX)
    assert response.status_code == 409
    assert "it is Tier 1, not Tier 2 to 5" in response.content.decode()


def test_get_of_maintain_url_never_starts_anything(as_manager, environment):
    as_manager.get(maintain_url(environment, "enable_maintenance"))
    assert not Operation.objects.exists()


def test_maintain_refuses_other_methods(as_manager, environment):
    assert as_manager.put(maintain_url(environment, "enable_maintenance")).status_code == 405


def test_post_without_csrf_token_is_refused(environment, manager):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    response = client.post(maintain_url(environment, "enable_maintenance"))
    assert response.status_code == 403
    assert not Operation.objects.exists()


def test_failed_environment_shows_the_error_and_recovery_actions(
    as_manager, environment, manager, start, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()

    body = as_manager.get(environment.get_absolute_url()).content.decode()
    assert "Restart service: AOS failed." in body
    assert "Simulated failure of restart_service" in body
    for label in ["Resume", "Rollback", "Abort"]:
        assert f">{label}</a>" in body
    confirm = as_manager.get(maintain_url(environment, "abort"), **HTMX).content.decode()
    assert "without acting" in confirm and ">Confirm</button>" in confirm


def test_abort_over_http_returns_to_deployed_and_records_it(
    as_manager, environment, manager, start, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()

    response = as_manager.post(maintain_url(environment, "abort"), {"reason": "gave up"}, **HTMX)

    assert response.status_code == 200
    assert "Deployed" in response.content.decode()
    abort = Operation.objects.get(kind=OperationKind.ABORT)
    assert abort.outcome == Outcome.ABORTED and abort.reason == "gave up"


def test_a_poll_after_the_session_ended_sends_the_whole_page_to_sign_in(client, environment):
    response = client.get(status_url(environment), **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("login"))
    assert "<html" not in response.content.decode()


def test_a_plain_request_after_the_session_ended_is_redirected_as_usual(client, environment):
    response = client.get(environment.get_absolute_url())
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.parametrize(
    "fields",
    [{"tier": 1}, {"type": "production", "tier": 5}, {"deployment": "legacy"}],
    ids=["Tier 1", "production", "legacy"],
)
@pytest.mark.parametrize("action", ["enable_access", "request_access"])
def test_database_access_asked_for_directly_on_an_ineligible_environment_gets_409(
    client, project, manager, fields, action
):
    from environments.models import DatabaseAccount, FirewallRule
    from tests.conftest import make_environment

    environment = make_environment(project, **fields)
    client.force_login(manager)
    data = {"name": "office", "address": "203.0.113.7", "reason": "x", "level": "read"}

    response = client.post(maintain_url(environment, action), data, **HTMX)

    assert response.status_code == 409
    assert "available only for Tier 2 to 5 sandbox environments" in response.content.decode()
    assert not FirewallRule.objects.exists() and not DatabaseAccount.objects.exists()
    assert not Operation.objects.exists()


def test_an_ineligible_environment_says_why_access_is_not_offered(client, project, manager):
    from tests.conftest import make_environment

    environment = make_environment(project, tier=1)
    client.force_login(manager)
    body = client.get(environment.get_absolute_url()).content.decode()
    assert 'data-testid="access-refusal"' in body and "it is Tier 1, not Tier 2 to 5" in body
    assert ">Request access</a>" not in body and ">Enable access</a>" not in body


def test_request_access_preselects_read(as_manager, environment):
    body = as_manager.get(maintain_url(environment, "request_access"), **HTMX).content.decode()
    assert re.search(r'<input type="radio" name="level" value="read"[^>]*checked', body)
    assert not re.search(r'value="read_write"[^>]*checked', body)


def test_failure_box_offers_resume_rollback_and_abort_itself(
    as_manager, environment, manager, member, start, fail_driver, client
):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()

    body = as_manager.get(environment.get_absolute_url()).content.decode()
    box = body[body.index('data-testid="failure"') : body.index('id="failure-panel"')]
    for kind, label in [("resume", "Resume"), ("rollback", "Rollback"), ("abort", "Abort")]:
        assert re.search(
            rf'id="failure-{kind}" href="{maintain_url(environment, kind)}"'
            rf'[^>]*hx-target="#failure-panel"[^>]*>{label}</a>',
            box,
        )
    # A team member sees the failure but is offered nothing to do about it.
    client.force_login(member)
    assert (
        'data-testid="failure-actions"'
        not in client.get(environment.get_absolute_url()).content.decode()
    )


@pytest.mark.parametrize("kind", ["resume", "rollback", "abort"])
def test_each_recovery_form_names_the_failed_operation_with_its_time_and_error(
    as_manager, environment, manager, start, fail_driver, kind
):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()
    failed = Operation.objects.get()

    confirm = as_manager.get(maintain_url(environment, kind), **HTMX).content.decode()

    label = OperationKind(kind).label
    heading = re.search(r"<h3>(.*?)</h3>", confirm).group(1)
    assert heading.startswith(f"{label}: Restart service: AOS (failed {failed.finished_at:%H:%M}")
    assert "Simulated failure of restart_service" in heading


def test_recovery_confirm_without_htmx_opens_in_the_failure_box(
    as_manager, environment, manager, start, fail_driver
):
    fail_driver(f"{environment.slug} restart_service")
    start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()

    body = as_manager.get(maintain_url(environment, "resume")).content.decode()

    panel = body[body.index('id="failure-panel"') : body.index('id="maintain-card"')]
    assert 'data-testid="confirm"' in panel and "<h3>Resume: Restart service: AOS" in panel
    assert body.count('data-testid="confirm"') == 1
