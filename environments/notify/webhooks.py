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
    X-Portal-Event: operation.started | operation.finished | test

A ``test`` event (admin's **Send test event**) goes the same way, posted at once and
tried once.
"""

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_tasks import task

from environments.models import (
    MAINTAIN_KINDS,
    DeliveryState,
    Status,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from environments.notify import delivery

logger = logging.getLogger(__name__)

STARTED = "operation.started"
FINISHED = "operation.finished"
TEST = "test"
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


class TargetRefused(Exception):
    """A webhook URL the portal will not post to; the message says why."""


#: IPv6 prefixes that carry an IPv4 address a gateway would connect to (NAT64).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _refusal(address):
    """Why the portal may not connect to ``address``, or "" when it may: only public
    unicast addresses, so a webhook cannot reach the portal's own host, its network or
    the cloud metadata service (169.254.169.254)."""
    ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 scope (fe80::1%eth0) aside
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.ip_address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _refusal(str(embedded))
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (such as the cloud metadata service)"
    if ip.is_multicast:
        return "a multicast address"
    if not ip.is_global:
        return "a private or reserved address"
    return ""


def checked_target(url):
    """Resolve the URL's host once and check every address it has: the address to
    connect to, so a name that answers differently later (DNS rebinding) is not asked
    again. Raises TargetRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("Not an http(s) URL.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        answers = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:  # gaierror is an OSError; a bad port a ValueError
        raise TargetRefused(f"Cannot resolve {parts.hostname}: {exc}") from None
    addresses = [answer[4][0] for answer in answers]
    if not settings.PORTAL_WEBHOOKS_ALLOW_PRIVATE:
        for address in addresses:
            if why := _refusal(address):
                what = "is" if address == parts.hostname else f"resolves to {address},"
                raise TargetRefused(
                    f"{parts.hostname} {what} {why}: webhooks go to public addresses only "
                    "(PORTAL_WEBHOOKS_ALLOW_PRIVATE=1 allows local and private networks)."
                )
    return addresses[0]


class PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, and sends the URL's host as Host."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class PinnedHTTPSConnection(PinnedHTTPConnection):
    """The same over TLS: the certificate is checked against the URL's host name,
    which is also the name sent in SNI."""

    default_port = 443
    tls = ssl.create_default_context()

    def connect(self):
        super().connect()
        self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.host)


def post(url, body, headers):
    """POST once: (status code or None, first kilobyte of the answer, error text).
    A redirect is an answer, not a place to post the event again."""
    try:
        address = checked_target(url)
    except TargetRefused as refused:
        return None, "", f"Refused: {refused}"
    parts = urlsplit(url)
    pinned = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
    port = parts.port or pinned.default_port
    connection = pinned(parts.hostname, port, address, settings.WEBHOOK_TIMEOUT_SECONDS)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, _text(response.read(RESPONSE_BYTES)), ""
    except (OSError, http.client.HTTPException) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()


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
        outcome = f"answered {status}" if status is not None else "failed"
        logger.info("Webhook %s: %s %s %s", row.delivery_id, row.webhook.masked_url, outcome, error)
    delivery.settle(row, delivered=ok, now=now, enqueue=enqueue, fields=["status_code"])
    return row


def send_test_event(webhook, user, now=None):
    """The admin's Send test event: a signed ``test`` event through the normal delivery
    (an outbox row, its claim, signature and recorded attempt), posted now and tried
    once: the admin reads the answer at once and no retry follows. Returns the row."""
    now = now or timezone.now()
    project = webhook.project
    payload = {
        "event": TEST,
        "webhook": webhook.name,
        "project": {"slug": project.slug, "name": project.name},
        "actor": user.get_username(),
        "url": absolute_url(reverse("environment-list")),
        "text": f"Test event from the maintenance portal for {project.name}: "
        f"webhook {webhook.name} works (sent by {user.get_username()}).",
    }
    if not webhook.include_text:
        payload.pop("text")
    row = WebhookDelivery.objects.create(
        webhook=webhook, event=TEST, payload=payload, next_attempt_at=now
    )
    if deliver(row.pk, now) is not None:
        # A failed test is not tried again: the admin has its answer.
        WebhookDelivery.objects.filter(pk=row.pk, state=DeliveryState.PENDING).update(
            state=DeliveryState.FAILED, finished_at=now
        )
    # Else a worker's sweep claimed it first, and delivers it as any other.
    row.refresh_from_db()
    return row


def resend(delivery_pk):
    """The admin's Resend: one more attempt now, with the same delivery id."""
    return delivery.send_again(WebhookDelivery, delivery_pk, enqueue)


def hand_out_overdue(now=None):
    return delivery.hand_out_overdue(WebhookDelivery, enqueue, now)


@task(queue_name=settings.NOTIFY_QUEUE)
def deliver_webhook(delivery_id):
    deliver(delivery_id)
