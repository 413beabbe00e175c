"""Signed webhook events over real HTTP: a receiver on 127.0.0.1 checks each signature,
answers as the test tells it, and the retries, the attempts and the resends are seen."""

# ruff: noqa: F811 (the receivers' fixtures are imported from tests.receivers)

import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from environments import operations
from environments.models import (
    DeliveryState,
    EnvironmentRoleKind,
    Operation,
    OperationKind,
    Outcome,
    Status,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from environments.notify import delivery, webhooks
from tests.conftest import committing, run_worker, subprocess_env
from tests.live import held_drivers, start_worker, stop, wait_for
from tests.receivers import webhook_receiver  # noqa: F401


def hook_for(project, receiver, **fields):
    return Webhook.objects.create(
        project=project, name="Ops channel", url=receiver.url, secret=receiver.secret, **fields
    )


@pytest.mark.django_db
def test_every_history_row_sends_a_signed_event_when_it_starts_and_when_it_ends(
    webhook_receiver, project, environment, manager, start
):
    receiver = webhook_receiver("s3cret")
    hook_for(project, receiver)

    operation = start(OperationKind.RESTART_SERVICE, environment, manager, service_kind="aos")
    run_worker()

    assert [d.signature_ok for d in receiver.received] == [True, True]
    started, finished = (d.event for d in receiver.received)
    assert (started["event"], finished["event"]) == ("operation.started", "operation.finished")
    for event in (started, finished):
        assert event["kind"] == "restart_service"
        assert event["activity_id"] == str(operation.activity_id)
        assert event["environment"]["slug"] == "demo-sandbox"
        assert event["project"] == {"slug": "contoso", "name": "Contoso"}
        assert event["actor"] == "mona"
        assert event["url"] == (
            f"http://127.0.0.1:8000/environments/demo-sandbox/history/{operation.activity_id}/"
        )
    assert (started["status_before"], started["status_after"], started["outcome"]) == (
        "deployed",
        "restarting_service",
        "queued",
    )
    assert (finished["status_before"], finished["status_after"], finished["outcome"]) == (
        "deployed",
        "deployed",
        "succeeded",
    )
    assert started["text"] == (
        "mona started Restart service: AOS on Demo sandbox (Deployed → Restarting service)."
    )
    assert finished["text"] == (
        "Restart service: AOS on Demo sandbox: Succeeded (Deployed → Deployed)."
    )


@pytest.mark.django_db
def test_each_event_carries_its_delivery_id_and_timestamp_inside_what_is_signed(
    webhook_receiver, project, environment, manager, start
):
    receiver = webhook_receiver("s3cret")
    hook_for(project, receiver)
    before = int(time.time())

    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    run_worker()

    for received in receiver.received:
        headers, event = received.headers, received.event
        assert headers["X-Portal-Delivery"] == event["delivery_id"]
        assert headers["X-Portal-Timestamp"] == str(event["timestamp"])
        assert before <= event["timestamp"] <= int(time.time())
        assert headers["X-Portal-Event"] == event["event"]
        assert headers["Content-Type"] == "application/json"
        expected = hmac.new(b"s3cret", received.body, hashlib.sha256).hexdigest()
        assert headers["X-Portal-Signature-256"] == f"sha256={expected}"
    ids = {d.event["delivery_id"] for d in receiver.received}
    assert ids == {str(d) for d in WebhookDelivery.objects.values_list("delivery_id", flat=True)}


@pytest.mark.django_db
def test_a_role_change_sends_its_start_and_its_end_at_once(
    webhook_receiver, project, environment, owner, member
):
    from environments.operations import record_role_change

    receiver = webhook_receiver()
    hook_for(project, receiver)
    with committing():
        record_role_change(environment, owner, member, EnvironmentRoleKind.USER, granted=True)
    run_worker()
    assert [d.event["event"] for d in receiver.received] == [
        "operation.started",
        "operation.finished",
    ]
    assert receiver.received[1].event["kind"] == "grant_role"


@pytest.mark.django_db
def test_windows_scheduled_and_cancelled_and_project_roles_changed_reach_the_webhooks(
    webhook_receiver, project, environment, manager, member
):
    from environments import windows
    from environments.operations import save_project_membership

    receiver = webhook_receiver()
    hook_for(project, receiver)
    starts = timezone.now() + timedelta(days=1)
    with committing():
        window = windows.schedule(
            environment,
            manager,
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            reason="Upgrade",
        )
        windows.cancel(window, manager, reason="Moved to Friday")
        membership = member.project_memberships.get()
        membership.role = "manager"
        save_project_membership(membership, manager)

    kinds = ["schedule_window", "cancel_window", "change_project_role"]
    rows = Operation.objects.filter(kind__in=kinds)
    assert rows.count() == 3
    for row in rows:
        events = WebhookDelivery.objects.filter(operation=row).values_list("event", flat=True)
        assert sorted(events) == ["operation.finished", "operation.started"]
    run_worker()
    finished = [d.event for d in receiver.received if d.event["event"] == "operation.finished"]
    assert [(e["kind"], e["outcome"]) for e in finished] == [(k, "succeeded") for k in kinds]
    assert finished[1]["reason"] == "Moved to Friday" and finished[1]["actor"] == "mona"
    assert finished[1]["text"].startswith("Maintenance window cancelled: ")


@pytest.mark.django_db
def test_only_the_projects_active_webhooks_get_its_events(
    webhook_receiver, project, other_project, environment, manager, start
):
    ours, theirs, off = webhook_receiver(), webhook_receiver(), webhook_receiver()
    hook_for(project, ours)
    hook_for(other_project, theirs)
    hook_for(project, off, active=False)

    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    run_worker()

    assert len(ours.received) == 2
    assert theirs.received == [] and off.received == []


@pytest.mark.django_db
def test_the_text_field_is_there_for_slack_and_teams_and_can_be_left_out(
    webhook_receiver, project, environment, manager, start
):
    chat, plain = webhook_receiver(), webhook_receiver()
    hook_for(project, chat)
    hook_for(project, plain, include_text=False)

    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    run_worker()

    assert all("text" in d.event for d in chat.received)
    assert all("text" not in d.event for d in plain.received)


def test_the_back_off_doubles_from_one_minute_up_to_six_hours(settings):
    settings.DELIVERY_RETRY_FIRST_SECONDS = 60
    settings.DELIVERY_RETRY_MAX_SECONDS = 6 * 3600
    delays = [delivery.retry_delay(n).total_seconds() / 60 for n in range(1, 12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 360, 360]


@pytest.mark.django_db
def test_a_failed_delivery_waits_its_back_off_and_gives_up_after_the_last_attempt(
    webhook_receiver, settings, project, environment, manager, start
):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    receiver = webhook_receiver(statuses=[500, 503, 502])
    hook_for(project, receiver)
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    row = WebhookDelivery.objects.get()
    now = timezone.now()

    webhooks.deliver(row.pk, now=now)
    row.refresh_from_db()
    assert (row.state, row.attempts, row.status_code) == (DeliveryState.PENDING, 1, 500)
    assert row.next_attempt_at == now + timedelta(minutes=1)
    assert webhooks.deliver(row.pk, now=now + timedelta(seconds=59)) is None  # not due
    webhooks.deliver(row.pk, now=now + timedelta(minutes=1))
    row.refresh_from_db()
    assert row.next_attempt_at == now + timedelta(minutes=3)
    webhooks.deliver(row.pk, now=now + timedelta(minutes=3))

    row.refresh_from_db()
    assert (row.state, row.attempts, row.status_code) == (DeliveryState.FAILED, 3, 502)
    assert [a.status_code for a in row.attempt_log.order_by("attempted_at")] == [500, 503, 502]
    assert row.attempt_log.first().response == "answer 502"


@pytest.mark.django_db
def test_a_receiver_that_is_down_never_fails_the_operation(project, environment, manager, start):
    from tests.live import free_port

    Webhook.objects.create(
        project=project, name="Down", url=f"http://127.0.0.1:{free_port()}/", secret="x"
    )
    operation = start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    run_worker()

    operation.refresh_from_db()
    assert operation.outcome == Outcome.SUCCEEDED
    attempts = WebhookAttempt.objects.all()
    assert attempts.count() == 2
    assert all(a.status_code is None and "Connection refused" in a.error for a in attempts)
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"pending"}


@pytest.mark.django_db
def test_a_redirect_is_an_answer_not_a_place_to_post_again(
    webhook_receiver, project, environment, manager, start
):
    receiver = webhook_receiver(statuses=[302])
    hook_for(project, receiver)
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    webhooks.deliver(WebhookDelivery.objects.get().pk)
    assert WebhookAttempt.objects.get().status_code == 302
    assert WebhookDelivery.objects.get().state == DeliveryState.PENDING


@pytest.mark.django_db
def test_the_admin_shows_each_attempt_and_resends_a_delivery(
    webhook_receiver, admin_client, project, environment, manager, start
):
    receiver = webhook_receiver(statuses=[500])
    hook_for(project, receiver)
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)
    row = WebhookDelivery.objects.get()
    webhooks.deliver(row.pk)

    page = admin_client.get(reverse("admin:environments_webhookdelivery_change", args=[row.pk]))
    assert page.status_code == 200
    assert "answer 500" in page.content.decode()
    with committing():
        answer = admin_client.post(
            reverse("admin:environments_webhookdelivery_resend", args=[row.pk])
        )
    assert answer.status_code == 302
    run_worker()

    row.refresh_from_db()
    assert row.state == DeliveryState.DELIVERED
    assert [a.status_code for a in row.attempt_log.order_by("attempted_at")] == [500, 200]
    # The same delivery id both times: a receiver can tell it already has it.
    started = [d for d in receiver.received if d.event["event"] == "operation.started"]
    assert len(started) == 2
    assert {d.headers["X-Portal-Delivery"] for d in started} == {str(row.delivery_id)}


@pytest.mark.django_db
def test_the_watchdog_hands_out_a_delivery_whose_task_was_lost(
    webhook_receiver, project, environment, manager
):
    receiver = webhook_receiver()
    hook_for(project, receiver)
    operations.enable_maintenance(environment, manager)  # its on-commit never runs
    row = WebhookDelivery.objects.get()

    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=1))
    assert webhooks.hand_out_overdue() == []
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=3))
    with committing():
        assert webhooks.hand_out_overdue() == [row.pk]
        assert webhooks.hand_out_overdue() == []
    run_worker()

    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_a_delivery_claimed_by_a_worker_that_died_is_handed_out_after_claim_and_overdue(
    webhook_receiver, project, environment, manager, settings
):
    settings.DELIVERY_CLAIM_SECONDS, settings.DELIVERY_OVERDUE_SECONDS = 20, 10
    receiver = webhook_receiver()
    hook_for(project, receiver)
    operations.enable_maintenance(environment, manager)  # its on-commit never runs
    row = WebhookDelivery.objects.get()
    claimed_at = timezone.now() - timedelta(seconds=31)
    WebhookDelivery.objects.update(next_attempt_at=claimed_at)
    assert delivery.claim(WebhookDelivery, row.pk, claimed_at) is not None  # then it died

    assert webhooks.hand_out_overdue(claimed_at + timedelta(seconds=29)) == []
    with committing():
        assert webhooks.hand_out_overdue() == [row.pk]
    run_worker()

    row.refresh_from_db()
    assert row.state == DeliveryState.DELIVERED
    assert len(receiver.received) == 1


# --- With real worker processes ----------------------------------------------------------------


def queue_worker(log_path, env, queues):
    """A db_worker for some queues only, as run_portal starts them."""
    import subprocess
    import sys

    from django.conf import settings

    with open(log_path, "a") as log:
        return subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "db_worker", "--no-reload"]
            + ["--no-startup-delay", "--interval", "0.1", "--queue-name", queues],
            env=env,
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_try(
    webhook_receiver, project, environment, manager, tmp_path
):
    receiver = webhook_receiver(statuses={"operation.started": [500, 500]})
    hook_for(project, receiver)
    worker = start_worker(
        tmp_path / "worker.log",
        env=subprocess_env(DELIVERY_RETRY_FIRST_SECONDS=0.3, SIMULATED_DRIVER_DELAY=0.2),
    )
    try:
        operations.enable_maintenance(environment, manager)
        # The started event three times (500, 500, 200), then the finished one.
        assert receiver.wait_for(4, timeout=30), (tmp_path / "worker.log").read_text()
    finally:
        stop(worker)

    first = WebhookDelivery.objects.get(event="operation.started")
    assert first.state == DeliveryState.DELIVERED
    attempts = list(first.attempt_log.order_by("attempted_at"))
    assert [a.status_code for a in attempts] == [500, 500, 200]
    times = [attempt.attempted_at for attempt in attempts]
    assert (times[1] - times[0]).total_seconds() >= 0.3
    assert (times[2] - times[1]).total_seconds() >= 0.6
    started = [d for d in receiver.received if d.event["event"] == "operation.started"]
    assert [d.signature_ok for d in started] == [True, True, True]
    assert len({d.event["delivery_id"] for d in started}) == 1


@pytest.mark.django_db(transaction=True)
def test_a_slow_receiver_does_not_delay_the_operation(
    webhook_receiver, project, environment, manager, settings, tmp_path
):
    """Maintenance mode goes on from start to finish while the receiver still holds its
    answer to the started event, as the workers run mail and webhooks on a queue of
    their own (as run_portal does). Shown by order, not by a stopwatch: the receiver
    answers only when the test lets it, after the operation has settled, and the portal
    would wait for it as long as that takes."""
    answer = threading.Event()
    receiver = webhook_receiver(hold=answer)
    hook_for(project, receiver)
    release_driver, held = held_drivers(tmp_path, environment.slug)
    settings.WEBHOOK_TIMEOUT_SECONDS = 600  # should a post happen in this process
    env = subprocess_env(WEBHOOK_TIMEOUT_SECONDS=600, **held)
    log = tmp_path / "worker.log"
    operations_worker = queue_worker(log, env, "default,access")
    notify_worker = queue_worker(log, env, "notify")

    def settled():
        return Operation.objects.get(pk=operation.pk).outcome == Outcome.SUCCEEDED

    try:
        operation = operations.enable_maintenance(environment, manager)
        assert receiver.answered == []  # starting it waited for no receiver
        assert receiver.wait_for(1, timeout=60), log.read_text()  # held, unanswered
        assert not settled()  # the driver is held too: it settles only from here on
        release_driver.touch()
        assert wait_for(settled, timeout=60), log.read_text()
        assert receiver.answered == []  # settled while the receiver still held its answer
        answer.set()
        assert receiver_answered_and_was_recorded(timeout=60), log.read_text()
    finally:
        answer.set()
        release_driver.touch()
        notify_worker.kill()
        operations_worker.kill()
        notify_worker.wait()
        operations_worker.wait()

    environment.refresh_from_db()
    assert environment.status == Status.IN_MAINTENANCE
    assert json.loads(receiver.received[0].body)["event"] == "operation.started"
    assert receiver.answered[0] == "operation.started"
    attempt = WebhookAttempt.objects.get(delivery__event="operation.started")
    operation.refresh_from_db()
    assert attempt.status_code == 200
    assert attempt.attempted_at > operation.finished_at


def receiver_answered_and_was_recorded(timeout):
    started = WebhookDelivery.objects.filter(event="operation.started")
    return wait_for(lambda: started.filter(state=DeliveryState.DELIVERED).exists(), timeout)


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            "https://hooks.slack.com/services/T0001/B0002/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/service…",
        ),
        (
            "https://prod-01.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/"
            "invoke?api-version=2016-06-01&sig=SIGNATURE",
            "https://prod-01.westus.logic.azure.com:443/workflo…",
        ),
        ("https://user:password@example.com/a", "https://example.com/a"),
        ("http://[2001:db8::1]:8080/hooks/secret", "http://[2001:db8::1]:8080/hooks/s…"),
    ],
)
def test_a_webhook_url_is_shown_as_its_host_and_the_start_of_its_path(url, shown):
    assert Webhook(url=url).masked_url == shown


@pytest.mark.django_db
def test_a_failed_delivery_is_logged_and_listed_without_the_urls_secret(
    webhook_receiver, admin_client, project, environment, manager, start, caplog
):
    receiver = webhook_receiver(statuses=[500])
    Webhook.objects.create(
        project=project,
        name="Ops channel",
        url=f"{receiver.url}/T0001/B0002/s3cretpart",
        secret=receiver.secret,
    )
    start(OperationKind.ENABLE_MAINTENANCE, environment, manager)

    with caplog.at_level(logging.INFO, logger="environments.notify.webhooks"):
        webhooks.deliver(WebhookDelivery.objects.get().pk)
    page = admin_client.get(reverse("admin:environments_webhook_changelist")).content.decode()

    assert WebhookAttempt.objects.get().status_code == 500
    masked = f"{receiver.url[:-5]}/hook/T0…"
    assert f"{masked} answered 500" in caplog.text
    assert masked in page
    assert "s3cretpart" not in caplog.text
    assert "s3cretpart" not in page


@pytest.mark.django_db
def test_send_test_event_posts_a_signed_test_event_and_says_how_it_was_answered(
    webhook_receiver, admin_client, project
):
    good, bad = webhook_receiver("s3cret"), webhook_receiver("s3cret", statuses=[500])
    broken = Webhook.objects.create(project=project, name="Broken", url=bad.url, secret="s3cret")
    hooks = [hook_for(project, good), broken]

    with committing():
        answer = admin_client.post(
            reverse("admin:environments_webhook_changelist"),
            {"action": "send_test_event", "_selected_action": [h.pk for h in hooks]},
            follow=True,
        )

    said = [str(message) for message in answer.context["messages"]]
    assert any(m.startswith("Test event to Ops channel: delivered, HTTP 200 in ") for m in said)
    assert "Test event to Broken failed: HTTP 500: answer 500" in said
    received = good.received[0]
    assert received.signature_ok
    assert received.headers["X-Portal-Event"] == "test"
    assert received.event["event"] == "test"
    assert received.event["actor"] == "admin"
    assert received.event["project"]["slug"] == project.slug
    # The normal delivery: an outbox row with its attempt; a failed test is not retried.
    failed = WebhookDelivery.objects.get(webhook=broken)
    assert failed.state == DeliveryState.FAILED
    assert failed.attempt_log.get().status_code == 500
    run_worker()
    assert len(bad.received) == 1


@pytest.mark.django_db
def test_a_test_event_a_worker_claimed_first_is_left_to_it_and_said_so(
    webhook_receiver, admin_client, project, monkeypatch
):
    from environments.notify import delivery

    hook = hook_for(project, webhook_receiver())
    monkeypatch.setattr(delivery, "claim", lambda *args: None)  # a worker's sweep has it

    with committing():
        answer = admin_client.post(
            reverse("admin:environments_webhook_changelist"),
            {"action": "send_test_event", "_selected_action": [hook.pk]},
            follow=True,
        )

    assert answer.status_code == 200
    said = [str(message) for message in answer.context["messages"]]
    assert said == [
        "Test event to Ops channel: handed to a worker; its answer will be in Webhook deliveries."
    ]
    assert WebhookDelivery.objects.get(webhook=hook).state == DeliveryState.PENDING


@pytest.mark.django_db
def test_only_who_may_change_webhooks_may_send_a_test_event(
    webhook_receiver, client, project, manager
):
    from django.contrib.auth.models import Permission

    receiver = webhook_receiver()
    hook = hook_for(project, receiver)
    manager.is_staff = True
    manager.save()
    manager.user_permissions.add(Permission.objects.get(codename="view_webhook"))
    client.force_login(manager)

    page = client.get(reverse("admin:environments_webhook_changelist")).content.decode()
    answer = client.post(
        reverse("admin:environments_webhook_changelist"),
        {"action": "send_test_event", "_selected_action": [hook.pk]},
    )

    assert "send_test_event" not in page
    assert answer.status_code in (200, 302)
    assert receiver.received == []
