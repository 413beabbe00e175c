"""Webhooks: every history row sends a signed JSON event to its project's webhooks when
it starts and when it ends.

The event is written to the outbox (WebhookDelivery) in the transaction of the history
row, and a task on the notify queue posts it after the commit; nothing here runs inside
an operation's request or holds its lock. A receiver that is slow, down or failing
never slows or fails the operation: it only gets its event later.

Each attempt posts the event with its delivery id and a timestamp inside the body and
signs the body with the webhook's secret (HMAC-SHA256), so a receiver can check where
it came from and reject a replay:

    X-Portal-Signature-256: sha256=<hex HMAC of the body>
    X-Portal-Delivery: <delivery id>        (the same across retries and resends)
    X-Portal-Timestamp: <Unix seconds of this attempt>
    X-Portal-Event: operation.started | operation.finished
"""

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_tasks import task

from environments.models import (
    MAINTAIN_KINDS,
    Status,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from environments.notify import delivery

logger = logging.getLogger(__name__)

STARTED = "operation.started"
FINISHED = "operation.finished"
#: The part of a receiver's answer kept with each attempt.
RESPONSE_BYTES = 1024


def absolute_url(path):
    """The portal's own address of ``path``, for mails and events read elsewhere."""
    return f"{settings.PORTAL_BASE_URL}{path}"


# --- Writing events (inside the history row's transaction) -------------------------------


def operation_event(operation, environment, event):
    """Write ``event`` of ``operation`` for each active webhook of its project, and post
    them once the transaction commits. ``environment`` is the locked row, in the status
    the operation has just left it."""
    hooks = list(
        Webhook.objects.filter(project_id=environment.project_id, active=True).select_related(
            "project"
        )
    )
    if not hooks:
        return []
    payload = event_payload(operation, environment, event, hooks[0].project)
    deliveries = []
    for hook in hooks:
        body = dict(payload)
        if not hook.include_text:
            body.pop("text")
        deliveries.append(
            WebhookDelivery.objects.create(
                webhook=hook, operation=operation, event=event, payload=body
            )
        )
    transaction.on_commit(lambda: [enqueue(d, None) for d in deliveries])
    return deliveries


def event_payload(operation, environment, event, project):
    status_after = environment.status if event == STARTED else operation.status_after
    window = operation.window if operation.window_id else None
    payload = {
        "event": event,
        "activity_id": str(operation.activity_id),
        "kind": operation.kind,
        "activity": operation.activity,
        "environment": {
            "slug": environment.slug,
            "name": environment.name,
            "url": absolute_url(environment.get_absolute_url()),
        },
        "project": {"slug": project.slug, "name": project.name},
        "status_before": operation.status_before,
        "status_after": status_after,
        "outcome": operation.outcome,
        "actor": operation.requested_by.get_username() if operation.requested_by_id else None,
        "via": operation.via,
        "reason": operation.reason,
        "error": operation.error,
        "started_at": operation.started_at.isoformat(),
        "finished_at": operation.finished_at.isoformat() if operation.finished_at else None,
        "url": absolute_url(
            reverse("operation-detail", args=[environment.slug, operation.activity_id])
        ),
        "window": None,
        "text": event_text(operation, environment, event, status_after),
    }
    if window is not None:
        payload["window"] = {
            "starts_at": window.starts_at.isoformat(),
            "ends_at": window.ends_at.isoformat(),
            "scheduled_by": window.scheduled_by.get_username(),
        }
    return payload


def event_text(operation, environment, event, status_after):
    """One line for people (Slack, Teams): who did what where, and how it stands."""
    who = operation.requested_by.get_username() if operation.requested_by_id else "The portal"
    if operation.window_id and operation.via:
        who = f"Scheduled maintenance (by {operation.window.scheduled_by.get_username()})"
    what = f"{operation.activity} on {environment.name}"
    if operation.kind in MAINTAIN_KINDS:
        move = f" ({Status(operation.status_before).label} → {Status(status_after).label})"
    else:
        move = ""
    if event == STARTED and operation.finished_at is None:
        return f"{who} started {what}{move}."
    text = f"{what}: {operation.get_outcome_display()}{move}."
    if operation.error:
        text += f" {operation.error.splitlines()[0]}"
    return text


# --- Posting (the worker of the notify queue) ----------------------------------------------


def enqueue(row, run_after):
    task = deliver_webhook.using(run_after=run_after) if run_after else deliver_webhook
    task.enqueue(row.pk)


def signed_body(delivery_row, timestamp):
    """The bytes to post and their headers, for one attempt."""
    event = dict(delivery_row.payload)
    event["delivery_id"] = str(delivery_row.delivery_id)
    event["timestamp"] = timestamp
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    signature = hmac.new(delivery_row.webhook.secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "lcs-portal-webhooks",
        "X-Portal-Event": delivery_row.event,
        "X-Portal-Delivery": str(delivery_row.delivery_id),
        "X-Portal-Timestamp": str(timestamp),
        "X-Portal-Signature-256": f"sha256={signature}",
    }
    return body, headers


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a place to post the event again."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(url, body, headers):
    """POST once: (status code or None, first kilobyte of the answer, error text)."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None, "", f"Not an http(s) URL: {url}"
    # Only http(s), checked above; the URL is set by an administrator in Django admin.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with _opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            return response.status, _text(response.read(RESPONSE_BYTES)), ""
    except urllib.error.HTTPError as answer:
        return answer.code, _text(answer.read(RESPONSE_BYTES)), ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, "", f"{type(exc).__name__}: {reason}"


def _text(data):
    return data.decode("utf-8", "replace")


def deliver(delivery_pk, now=None):
    """Post one delivery if it is due and nobody else is posting it; record the attempt."""
    row = delivery.claim(WebhookDelivery, delivery_pk, now)
    if row is None:
        return None
    row = WebhookDelivery.objects.select_related("webhook").get(pk=row.pk)
    body, headers = signed_body(row, int(time.time()))
    started = time.monotonic()
    status, response, error = post(row.webhook.url, body, headers)
    seconds = time.monotonic() - started
    now = now or timezone.now()
    WebhookAttempt.objects.create(
        delivery=row,
        attempted_at=now,
        status_code=status,
        seconds=round(seconds, 3),
        response=response,
        error=error,
    )
    row.status_code = status
    ok = status is not None and 200 <= status < 300
    if not ok:
        logger.info("Webhook %s: %s answered %s%s", row.delivery_id, row.webhook.url, status, error)
    delivery.settle(row, delivered=ok, now=now, enqueue=enqueue, fields=["status_code"])
    return row


def resend(delivery_pk):
    """The admin's Resend: one more attempt now, with the same delivery id."""
    return delivery.send_again(WebhookDelivery, delivery_pk, enqueue)


def hand_out_overdue(now=None):
    return delivery.hand_out_overdue(WebhookDelivery, enqueue, now)


@task(queue_name=settings.NOTIFY_QUEUE)
def deliver_webhook(delivery_id):
    deliver(delivery_id)
