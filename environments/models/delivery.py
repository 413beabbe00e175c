"""Mail and webhook events: who wants what, and what went out (environments/notify/)."""

import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils import timezone

from environments.models.environments import Environment
from environments.models.grants import DatabaseAccount, FirewallRule
from environments.models.history import Operation
from environments.models.projects import Project
from environments.models.windows import MaintenanceWindow


class NotificationKind(models.TextChoices):
    """The mails a user can opt out of, on their settings page."""

    OPERATION_FINISHED = "operation_finished", "An operation I started finished"
    OPERATION_FAILED = "operation_failed", "An operation I started failed"
    ENVIRONMENT_FAILED = "environment_failed", "An operation failed on an environment I manage"
    WINDOW_REMINDER = "window_reminder", "A maintenance window is coming up"
    MAINTENANCE_ON = "maintenance_on", "Maintenance mode was turned on"
    MAINTENANCE_OFF = "maintenance_off", "Maintenance mode was turned off"
    WINDOW_CHANGED = "window_changed", "A maintenance window was cancelled or missed"
    ACCESS_EXPIRING = "access_expiring", "My database account or firewall rule expires soon"


class NotificationOptOut(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_opt_outs"
    )
    kind = models.CharField(max_length=30, choices=NotificationKind.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="one_opt_out_per_kind")
        ]

    def __str__(self):
        return f"{self.user}: no mail when {self.get_kind_display().lower()}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Gave up"


class Outbox(models.Model):
    """Something to send from the worker, written in the transaction of what caused it,
    so it goes out exactly when that commits. Tried again with back-off until it is
    delivered or gives up (environments/notify/delivery.py)."""

    created_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(
        max_length=20, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]


class NotificationEvent(models.TextChoices):
    OPERATION_FINISHED = "operation_finished", "Operation finished"
    WINDOW_REMINDER = "window_reminder", "Maintenance window reminder"
    WINDOW_CHANGED = "window_changed", "Maintenance window cancelled or missed"
    WINDOW_NOT_ENDED = "window_not_ended", "Maintenance mode not turned off"
    ACCESS_EXPIRING = "access_expiring", "Access expires soon"


class Notification(Outbox):
    """Mail about one event. ``key`` makes each event mail once, however many tasks and
    sweeps find it due. Who gets it is decided when it is sent."""

    key = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=30, choices=NotificationEvent.choices)
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="notifications"
    )
    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, null=True, blank=True)
    window = models.ForeignKey(MaintenanceWindow, on_delete=models.CASCADE, null=True, blank=True)
    firewall_rule = models.ForeignKey(FirewallRule, on_delete=models.CASCADE, null=True, blank=True)
    database_account = models.ForeignKey(
        DatabaseAccount, on_delete=models.CASCADE, null=True, blank=True
    )
    # Ids of the users it went to, so a retry sends only to the others.
    sent_to = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta(Outbox.Meta):
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="pending"),
                name="notification_pending",
            )
        ]

    def __str__(self):
        return f"{self.get_event_display()}: {self.key}"


class Webhook(models.Model):
    """A project's receiver of history events: every history row sends one when it
    starts and one when it ends, signed with the secret (environments/notify/webhooks.py)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100)
    url = models.URLField("URL", max_length=500)
    secret = models.CharField(
        max_length=200, help_text="Signs each event: X-Portal-Signature-256 (HMAC-SHA256)."
    )
    include_text = models.BooleanField(
        "add a text field",
        default=True,
        help_text="A one-line summary in the event's text field, which Slack and Teams "
        "incoming webhooks show.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["project", "name"]

    def __str__(self):
        return f"{self.name} ({self.project})"

    #: How much of the path (and query) a masked URL keeps.
    SHOWN_PATH = 8

    @property
    def masked_url(self):
        """The URL as logs and lists show it: a Slack or Teams incoming webhook's URL is
        its secret, so only the scheme, the host and the start of the path are shown:
        "https://hooks.slack.com/service…"."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        try:
            if parts.port:
                host = f"{host}:{parts.port}"
        except ValueError:
            pass  # not a port: leave it out
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        more = "…" if len(rest) > self.SHOWN_PATH else ""
        return f"{parts.scheme}://{host}{rest[: self.SHOWN_PATH]}{more}"


class WebhookDelivery(Outbox):
    """One event for one webhook. Its delivery id stays the same across retries and
    resends, so a receiver can tell a replay."""

    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    operation = models.ForeignKey(
        Operation, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    event = models.CharField(max_length=40)
    # The event as it happened; each attempt adds its delivery id and timestamp and signs it.
    payload = models.JSONField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta(Outbox.Meta):
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="pending"),
                name="delivery_pending",
            )
        ]

    def __str__(self):
        return f"{self.event} to {self.webhook.name} ({self.delivery_id})"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    seconds = models.FloatField(default=0)
    # The first kilobyte of the answer, or why there was none.
    response = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-attempted_at", "-id"]

    def __str__(self):
        return f"{self.status_code or self.error} at {self.attempted_at:%Y-%m-%d %H:%M:%S}"
