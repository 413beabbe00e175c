"""/healthz answers load balancers and monitoring: 200 with the task queue's facts while
the database answers, 503 when it does not, without touching the session."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from environments import operations
from environments.operations.core import run_step


@pytest.mark.django_db
def test_healthz_answers_200_with_an_empty_queue(client, django_assert_num_queries):
    with django_assert_num_queries(2):
        answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "database": "ok",
        "tasks_ready": 0,
        "oldest_ready_task_age_seconds": 0.0,
        "operations_past_deadline": 0,
    }
    assert "no-cache" in answer["Cache-Control"]
    # No session read or written: no cookie, and nothing varies by one.
    assert not answer.cookies
    assert "Cookie" not in answer.get("Vary", "")


@pytest.mark.django_db
def test_healthz_reports_the_age_of_the_oldest_ready_task(client, environment, manager):
    operation = operations.restart_service(environment, manager, "aos")
    run_step.enqueue(operation.pk, 1)
    enqueued_at = timezone.now() - timedelta(seconds=90)
    DBTaskResult.objects.update(enqueued_at=enqueued_at)
    # Not due yet: a task for later counts only once its time has come.
    run_step.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(operation.pk, 2)
    answer = client.get("/healthz").json()
    asked_by = (timezone.now() - enqueued_at).total_seconds()
    assert answer["tasks_ready"] == 1
    # No older than the time since it was enqueued, give or take its rounding to 0.1 s.
    assert 90 <= answer["oldest_ready_task_age_seconds"] <= asked_by + 0.05


@pytest.mark.django_db
def test_healthz_counts_operations_past_their_deadline(client, environment, manager):
    operations.restart_service(environment, manager, "aos")
    assert client.get("/healthz").json()["operations_past_deadline"] == 0
    environment.operations.update(deadline=timezone.now() - timedelta(seconds=1))
    assert client.get("/healthz").json()["operations_past_deadline"] == 1


@pytest.mark.django_db
def test_healthz_answers_503_when_the_database_does_not(client):
    with mock.patch(
        "django.db.backends.utils.CursorWrapper.execute",
        side_effect=OperationalError("connection refused"),
    ):
        answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "database": "unreachable",
        "error": "OperationalError",
    }


@pytest.mark.django_db
def test_healthz_refuses_a_post(client):
    assert client.post("/healthz").status_code == 405
