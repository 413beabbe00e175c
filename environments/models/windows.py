"""Scheduled maintenance windows (environments/windows/)."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from environments.models.environments import Environment
from environments.refusals import OperationRefused


class WindowState(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    MISSED = "missed", "Missed"


WINDOW_BADGE = {
    WindowState.SCHEDULED: "blue",
    WindowState.ACTIVE: "amber",
    WindowState.COMPLETED: "green",
    WindowState.CANCELLED: "grey",
    WindowState.MISSED: "red",
}

#: Windows that still hold their time: no other window of the environment may overlap them.
OPEN_WINDOW_STATES = (WindowState.SCHEDULED, WindowState.ACTIVE)


class MaintenanceWindowQuerySet(models.QuerySet):
    def open(self):
        return self.filter(state__in=OPEN_WINDOW_STATES)

    def overlapping(self, starts_at, ends_at):
        """Open windows that share a moment with [starts_at, ends_at)."""
        return self.open().filter(starts_at__lt=ends_at, ends_at__gt=starts_at)


class MaintenanceWindow(models.Model):
    """Maintenance mode planned for a time: it turns on at ``starts_at`` and off at
    ``ends_at`` through the same operations as Enable and Disable Maintenance mode.

    Scheduled -> Active -> Completed, or Cancelled before it starts, or Missed when it
    could not start. Only environments.windows changes it, under the environment's lock.
    """

    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="maintenance_windows"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.TextField()
    # The environment's users (their environment roles) are told; the project's owners
    # and environment managers always are.
    notify_users = models.BooleanField(default=True)
    scheduled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="scheduled_windows"
    )
    created_at = models.DateTimeField(default=timezone.now)
    changed_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(
        max_length=20, choices=WindowState.choices, default=WindowState.SCHEDULED
    )
    # When maintenance mode was turned on, and when the window ended (completed,
    # cancelled or missed).
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Who cancelled it or ended it early; empty when it ended by itself.
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    # Why it waits, was missed or ended early, for people.
    note = models.TextField(blank=True)
    # The shortest lead time (seconds before the start) whose reminder went out.
    reminded_lead = models.PositiveIntegerField(null=True, blank=True)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [
            models.Index(fields=["environment", "state", "starts_at"], name="window_env_state"),
            # The watchdog's sweep of windows that are due.
            models.Index(
                fields=["state", "starts_at"],
                condition=models.Q(state__in=["scheduled", "active"]),
                name="window_open",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="window_ends_after_start",
            )
        ]

    def __str__(self):
        return f"Maintenance window {self.period_text} ({self.reason})"

    @property
    def period_text(self):
        """ "2026-12-01 22:00 to 23:00 UTC", in the current time zone."""
        starts = timezone.localtime(self.starts_at)
        ends = timezone.localtime(self.ends_at)
        end_format = "%H:%M %Z" if ends.date() == starts.date() else "%Y-%m-%d %H:%M %Z"
        return f"{starts:%Y-%m-%d %H:%M} to {ends.strftime(end_format)}"

    @property
    def badge(self):
        return WINDOW_BADGE[self.state]


def check_period(starts_at, ends_at, now):
    """Refuse a period the rules do not allow (OperationRefused, INVALID)."""
    if starts_at <= now:
        raise OperationRefused("The start must be in the future.", OperationRefused.INVALID)
    if starts_at > now + timedelta(days=settings.WINDOW_MAX_DAYS_AHEAD):
        raise OperationRefused(
            f"The start may be at most {settings.WINDOW_MAX_DAYS_AHEAD:g} days ahead.",
            OperationRefused.INVALID,
        )
    if ends_at <= starts_at:
        raise OperationRefused("The end must come after the start.", OperationRefused.INVALID)
    if ends_at - starts_at > timedelta(hours=settings.WINDOW_MAX_HOURS):
        raise OperationRefused(
            f"A window lasts at most {settings.WINDOW_MAX_HOURS:g} hours.",
            OperationRefused.INVALID,
        )
