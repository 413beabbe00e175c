"""manage.py seed_scale: scale data that agrees with itself, written once."""

import pytest
from django.core.management import CommandError, call_command

from environments.demo.seed_scale import ADMIN_USERNAME
from environments.models import (
    Environment,
    EnvironmentRole,
    Operation,
    Outcome,
    Project,
    ProjectMembership,
    Service,
)


def seed(**options):
    call_command("seed_scale", environments=5, history=200, stdout=None, **options)


@pytest.mark.django_db
def test_seed_scale_writes_the_numbers_asked_for():
    seed()

    assert Environment.objects.count() == 5
    assert Service.objects.count() == 15
    assert Operation.objects.count() == 200
    assert Project.objects.filter(slug__startswith="scale-").count() == 1
    assert ProjectMembership.objects.filter(user__username=ADMIN_USERNAME).count() == 1
    assert EnvironmentRole.objects.filter(user__username=ADMIN_USERNAME).count() == 5


@pytest.mark.django_db
def test_every_environment_status_agrees_with_its_latest_operation():
    seed()

    for environment in Environment.objects.all():
        latest = environment.operations.first()
        assert latest.status_after == environment.status
        assert environment.status_changed_at >= latest.started_at
    assert not Operation.objects.filter(outcome__in=[Outcome.QUEUED, Outcome.RUNNING]).exists()
    # Follow-ups name the failed operation they act on.
    for follow_up in Operation.objects.filter(failed_operation__isnull=False):
        assert follow_up.failed_operation.outcome == Outcome.FAILED
        assert follow_up.failed_operation.started_at < follow_up.started_at


@pytest.mark.django_db
def test_seed_scale_refuses_to_run_twice():
    seed()

    with pytest.raises(CommandError, match="refusing to seed twice"):
        seed()

    assert Operation.objects.count() == 200
    assert Environment.objects.count() == 5


@pytest.mark.django_db
def test_new_operations_get_ids_after_the_seeded_ones(project, environment, manager, start):
    seed()

    operation = start("restart_service", environment, manager, service_kind="aos")

    assert operation.pk > Operation.objects.exclude(pk=operation.pk).order_by("-pk")[0].pk
