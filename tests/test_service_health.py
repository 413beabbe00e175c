"""The services table says the last known state and when it was known: a periodic task
runs each service's health check (never a request) and stores its answer."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from environments.demo.local_sandbox.supervisord import SERVICES, SLUG, LocalSandbox
from environments.models import Service, ServiceState
from environments.operations.health import check_service, start_health_checks
from tests.conftest import make_environment, run_worker
from tests.live import free_ports

TASK = "environments.operations.health.check_service_health"
PASSES, FAILS = ["true"], ["false"]


@pytest.fixture
def configure(settings, tmp_path):
    """Give the environment the command driver with these health commands."""
    settings.PORTAL_DRIVERS_FILE = tmp_path / "drivers.json"

    def _configure(environment, health):
        entry = {"driver": "command", "health": health, "health_interval": 5}
        settings.PORTAL_DRIVERS_FILE.write_text(json.dumps({environment.slug: entry}))

    return _configure


def aos(environment):
    return environment.services.get(kind="aos")


def test_a_stopped_local_sandbox_service_becomes_stopped_after_the_periodic_check(
    settings, tmp_path, project, as_manager
):
    # The Local sandbox's own driver entry, with nothing listening on its ports: every
    # service is down, as it was when the page said "Running".
    settings.PORTAL_DRIVERS_FILE = tmp_path / "drivers.json"
    sandbox = LocalSandbox(
        directory=tmp_path / "sandbox", ports=dict(zip(SERVICES, free_ports(3), strict=True))
    )
    sandbox.install()
    local = make_environment(project, name="Local sandbox", slug=SLUG)
    page = reverse("environment-detail", args=[SLUG])
    assert "never checked" in as_manager.get(page).content.decode()

    assert len(start_health_checks()) == 3
    run_worker()

    for service in local.services.all():
        assert service.state == ServiceState.STOPPED
        assert service.checked_at is not None
        assert "does not answer" in service.check_detail
    body = as_manager.get(page).content.decode()
    assert "Last known state" in body
    assert ">Stopped</span>" in body
    assert "· checked <time" in body


def test_a_passing_check_is_running_and_the_time_it_answered_is_kept(environment, configure):
    configure(environment, PASSES)
    service = aos(environment)
    service.state = ServiceState.STOPPED
    service.save()
    now = timezone.now()

    checked = check_service(service.pk, now=now)

    assert checked.state == ServiceState.RUNNING
    assert checked.checked_at == now


def test_each_check_enqueues_the_next_one_interval_later_and_runs_once_per_interval(
    environment, configure, settings
):
    configure(environment, FAILS)
    service = aos(environment)
    now = timezone.now()
    interval = timedelta(seconds=settings.SERVICE_HEALTH_CHECK_SECONDS)

    assert check_service(service.pk, now=now).state == ServiceState.STOPPED
    queued = DBTaskResult.objects.get(task_path=TASK, args_kwargs__args=[service.pk])
    assert queued.run_after == now + interval
    # A second copy of the task (the watchdog's, say) finds the check not due.
    assert check_service(service.pk, now=now + interval / 2) is None
    assert check_service(service.pk, now=now + interval).checked_at == now + interval


def test_the_watchdog_starts_a_chain_only_where_there_is_none(environment, configure, settings):
    configure(environment, {"aos": PASSES})  # DIXF and MR have no health check
    now = timezone.now()
    interval = timedelta(seconds=settings.SERVICE_HEALTH_CHECK_SECONDS)

    assert [s.kind for s in start_health_checks(now)] == ["aos"]
    assert start_health_checks(now + interval) == []  # its task is pending
    # The task was lost (the worker died holding it): the next sweep starts it again.
    assert [s.kind for s in start_health_checks(now + interval * 2.5)] == ["aos"]


def test_without_a_health_check_nothing_is_checked_and_the_page_says_so(environment, as_manager):
    assert start_health_checks() == []
    assert check_service(aos(environment).pk) is None

    body = as_manager.get(reverse("environment-detail", args=[environment.slug])).content
    assert "never checked: no health check has answered" in body.decode()


def test_a_service_being_restarted_is_left_to_its_restart(environment, configure):
    configure(environment, FAILS)
    Service.objects.filter(pk=aos(environment).pk).update(state=ServiceState.RESTARTING)

    check_service(aos(environment).pk)

    assert aos(environment).state == ServiceState.RESTARTING
    assert aos(environment).checked_at is None


def test_a_stored_answer_moves_the_pages_revision_on(environment, configure):
    configure(environment, FAILS)
    before = environment.revision

    check_service(aos(environment).pk)

    environment.refresh_from_db()
    assert environment.revision > before


def test_the_api_says_when_each_services_state_was_last_known(
    environment, configure, api_as_manager
):
    configure(environment, PASSES)
    check_service(aos(environment).pk)

    body = api_as_manager.get(f"/api/v1/environments/{environment.slug}").json()

    checked = {service["kind"]: service["checked_at"] for service in body["services"]}
    assert checked["aos"] is not None and checked["mr"] is None
