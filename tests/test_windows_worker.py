"""Maintenance windows with the real task worker, on short real delays: a window opens
and closes by itself, and one that fell due while the worker was down starts once."""

# ruff: noqa: F811 (the receivers' fixtures are imported from tests.receivers)

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from environments import windows
from environments.models import (
    MaintenanceWindow,
    Notification,
    NotificationEvent,
    Operation,
    OperationKind,
    Outcome,
    Status,
    Webhook,
    WindowState,
)
from tests.conftest import subprocess_env
from tests.live import start_worker, stop, wait_for
from tests.receivers import smtp_server, webhook_receiver  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def state_of(window):
    return MaintenanceWindow.objects.values_list("state", flat=True).get(pk=window.pk)


def test_a_window_warns_opens_and_closes_by_itself_and_the_webhook_sees_four_signed_events(
    smtp_server, webhook_receiver, project, environment, manager, owner, maint, tmp_path
):
    """Issue #17's "done when": the environment's users get the 1-hour warning by mail,
    the window opens and closes by itself, and the project's webhook receiver sees four
    signed events (started and ended, for on and for off), after the two of its
    scheduling."""
    for user in (manager, owner, maint):
        user.email = f"{user.username}@example.com"
        user.save()
    receiver = webhook_receiver("hook-secret")
    Webhook.objects.create(project=project, name="Ops", url=receiver.url, secret="hook-secret")
    log = tmp_path / "worker.log"
    worker = start_worker(log, env=subprocess_env(SIMULATED_DRIVER_DELAY=0.3, **smtp_server.env))
    try:
        # The worker's start-up is not part of the window's three seconds.
        assert wait_for(lambda: "Starting worker" in log.read_text(), timeout=60), log.read_text()
        starts_at = timezone.now() + timedelta(seconds=3)
        window = windows.schedule(
            environment,
            manager,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(seconds=3),
            reason="Tonight's upgrade",
        )
        assert smtp_server.wait_for(lambda mails: len(mails) >= 3), log.read_text()
        assert wait_for(lambda: state_of(window) == WindowState.COMPLETED, timeout=30), (
            log.read_text()
        )
        assert receiver.wait_for(6), log.read_text()
        assert smtp_server.wait_for(
            lambda mails: any("is off" in mail.subject for mail in mails)
        ), log.read_text()
    finally:
        stop(worker)

    window.refresh_from_db()
    # The warning was written before the window opened (its mails may arrive later, on a
    # loaded machine after it opened; the order they arrive in is checked below).
    reminder = Notification.objects.get(window=window, event=NotificationEvent.WINDOW_REMINDER)
    assert reminder.created_at < window.started_at
    on, off = Operation.objects.maintain().filter(window=window).order_by("started_at")
    # Opened no earlier than its start and before its end, closed at its end or after.
    assert window.starts_at <= window.started_at < window.ends_at <= off.started_at
    assert window.started_at <= on.started_at
    assert (on.kind, off.kind) == (
        OperationKind.ENABLE_MAINTENANCE,
        OperationKind.DISABLE_MAINTENANCE,
    )
    assert on.outcome == off.outcome == Outcome.SUCCEEDED
    environment.refresh_from_db()
    assert environment.status == Status.DEPLOYED

    maya = [mail.subject for mail in smtp_server.to("maya@example.com")]
    assert maya[0].startswith("Maintenance of Demo sandbox in ")
    assert maya[1:] == [
        "Maintenance mode is on: Demo sandbox",
        "Maintenance mode is off: Demo sandbox",
    ]
    assert "Tonight's upgrade" in smtp_server.to("maya@example.com")[0].text

    events = [(d.event["event"], d.event["kind"]) for d in receiver.received]
    assert sorted(events) == sorted(
        [
            ("operation.started", "schedule_window"),
            ("operation.finished", "schedule_window"),
            ("operation.started", "enable_maintenance"),
            ("operation.finished", "enable_maintenance"),
            ("operation.started", "disable_maintenance"),
            ("operation.finished", "disable_maintenance"),
        ]
    )
    assert all(d.signature_ok for d in receiver.received)
    assert all(d.event["window"]["scheduled_by"] == "mona" for d in receiver.received)


def test_a_window_due_while_the_worker_was_down_starts_once_when_it_comes_back(
    environment, manager, tmp_path
):
    starts_at = timezone.now() + timedelta(seconds=1)
    window = windows.schedule(
        environment,
        manager,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=10),
        reason="Patch",
    )
    time.sleep(max(0, (starts_at - timezone.now()).total_seconds()) + 1.5)
    assert state_of(window) == WindowState.SCHEDULED  # nothing ran at its start

    log = tmp_path / "worker.log"
    env = subprocess_env(SIMULATED_DRIVER_DELAY=0.3)
    # Two workers and the watchdog's sweep, all at once, all finding it due.
    workers = [start_worker(log, env=env), start_worker(log, env=env)]

    def sweep():
        try:
            windows.sweep()
        finally:
            connection.close()

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        assert wait_for(lambda: state_of(window) == WindowState.ACTIVE, timeout=60), log.read_text()
        enable = Operation.objects.maintain().filter(window=window)
        assert wait_for(lambda: enable.filter(outcome=Outcome.SUCCEEDED).exists(), timeout=30), (
            log.read_text()
        )
        time.sleep(1)  # time for a second start, were there one
    finally:
        sweeper.join()
        for worker in workers:
            stop(worker)

    assert Operation.objects.filter(kind=OperationKind.ENABLE_MAINTENANCE).count() == 1
    environment.refresh_from_db()
    assert environment.status == Status.IN_MAINTENANCE
