"""The services table's last known state: a periodic health check of every service whose
driver has one (the command driver's ``health`` commands), never inside a request.

Each service's check is a task of its own: it claims the check (moves ``next_check_at``
on by one conditional UPDATE, so of several copies exactly one runs), enqueues its next
run SERVICE_HEALTH_CHECK_SECONDS later, runs the check once (one short step, bounded by
the driver's health timeout) and stores the answer and its time. The watchdog starts the
chain of a service that has none: a new one, or one whose task was lost.

A restart owns its service's state: a check is not run while it restarts, and an answer
that a restart overtook (begun or finished while the check ran) is dropped.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import task

from environments.drivers import DriverError, OperationLog, config, get_driver
from environments.models import Environment, Service, ServiceState

logger = logging.getLogger(__name__)


def _interval():
    return timedelta(seconds=settings.SERVICE_HEALTH_CHECK_SECONDS)


def _enqueue(service_id, due):
    check_service_health.using(run_after=due).enqueue(service_id)


def check_service(service_id, now=None):
    """Run the service's health check if it is due, and store its answer as the service's
    state (Running or Stopped). Returns the service, or None when the check was not due
    (another task has it) or the driver has no health check for the service."""
    now = now or timezone.now()
    due = now + _interval()
    claimed = (
        Service.objects.filter(pk=service_id)
        .filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=now))
        .update(next_check_at=due)
    )
    if not claimed:
        return None
    service = Service.objects.select_related("environment").get(pk=service_id)
    try:
        driver = get_driver(service.environment, OperationLog())
        checked = driver.has_health_check(service.kind)
    except DriverError as exc:
        logger.warning("No health check of %s: %s", service, exc)
        checked = False
    if not checked:
        # No check (any more): the chain ends here; the watchdog starts it again once
        # the driver configuration has one.
        Service.objects.filter(pk=service_id).update(next_check_at=None)
        return None
    _enqueue(service_id, due)
    if service.state == ServiceState.RESTARTING:
        return service
    try:
        health = driver.check_service(service.kind)
    except DriverError as exc:
        logger.warning("The health check of %s could not run: %s", service, exc)
        return service
    state = ServiceState.RUNNING if health.ok else ServiceState.STOPPED
    with transaction.atomic():
        stored = Service.objects.filter(
            pk=service_id, state=service.state, last_restarted_at=service.last_restarted_at
        ).update(state=state, checked_at=now, check_detail=health.detail)
        if stored:
            # The services table shows the answer and its time.
            Environment.objects.filter(pk=service.environment_id).bump_revision()
    if stored and state != service.state:
        logger.info("%s is %s: %s", service, state.label, health.detail)
    service.refresh_from_db()
    return service


def start_health_checks(now=None):
    """The watchdog: enqueue the check of every service that has a health check but no
    live chain (never checked, or due longer than an interval ago: its task was lost).
    Returns the services it started."""
    now = now or timezone.now()
    try:
        slugs = list(config.load())
    except DriverError as exc:
        logger.warning("No health checks: %s", exc)
        return []
    started = []
    environments = Environment.objects.filter(slug__in=slugs).prefetch_related("services")
    for environment in environments:
        try:
            driver = get_driver(environment, OperationLog())
        except DriverError as exc:
            logger.warning("No health checks on %s: %s", environment.slug, exc)
            continue
        for service in environment.services.all():
            if not driver.has_health_check(service.kind):
                continue
            lost = Q(next_check_at__isnull=True) | Q(next_check_at__lt=now - _interval())
            if Service.objects.filter(lost, pk=service.pk).update(next_check_at=now):
                _enqueue(service.pk, now)
                started.append(service)
    return started


@task()
def check_service_health(service_id):
    """One periodic health check of a service (see the module's docstring)."""
    check_service(service_id)
