"""The environment history: one Operation row per action."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Length
from django.urls import reverse
from django.utils import timezone

from environments.models.choices import (
    ACTION_DONE_STATUS,
    ACTIONS,
    ACTIVE_OUTCOMES,
    END_GRANT_KINDS,
    KIND_TYPE,
    MAINTAIN_KINDS,
    MAINTENANCE_ACTIONS,
    OUTCOME_BADGE,
    RECORD_KINDS,
    OperationKind,
    Outcome,
    Status,
)
from environments.models.environments import Environment, Service
from environments.models.users import user_label

#: The steps' names, for people (drivers name their steps; see drivers/base.py).
STEP_LABELS = {"act": "Acting", "health": "Health check", "check": "Health check"}


class OperationQuerySet(models.QuerySet):
    def maintain(self):
        """Operations that move the environment's status (see MAINTAIN_KINDS)."""
        return self.filter(kind__in=MAINTAIN_KINDS)

    def active(self):
        return self.filter(outcome__in=ACTIVE_OUTCOMES)


class Operation(models.Model):
    """One Maintain action: the environment's history.

    Rows are written by ``environments.operations`` in the transaction that changes the
    environment's status. After that only the operation's own progress changes
    (outcome, finish time, status after, error, log); nothing deletes a row.
    """

    activity_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="operations"
    )
    kind = models.CharField(max_length=30, choices=OperationKind.choices)
    # The action performed; for Resume, Rollback and Abort, the failed one's.
    action = models.CharField(max_length=30, choices=OperationKind.choices)
    # What a just-in-time access operation acted on: "203.0.113.0/24", "Read account jit_x".
    target = models.CharField(max_length=200, blank=True)
    # Rollback undoes the action instead of performing it (and so does a Resume of it).
    undo = models.BooleanField(default=False)
    failed_operation = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="follow_ups"
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, null=True, blank=True)
    # Empty when the portal itself acted (access that expired).
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="operations",
    )
    firewall_rule = models.ForeignKey(
        "FirewallRule", on_delete=models.PROTECT, null=True, blank=True, related_name="operations"
    )
    database_account = models.ForeignKey(
        "DatabaseAccount",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="operations",
    )
    reason = models.TextField(blank=True)
    # How the request came, when not through the pages: "API (deploy-bot)", the name of
    # the API token it came with.
    via = models.CharField(max_length=120, blank=True)
    # The maintenance window this operation started or ended, or the row of its scheduling
    # or cancelling (environments.windows).
    window = models.ForeignKey(
        "MaintenanceWindow",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="operations",
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.QUEUED)
    status_before = models.CharField(max_length=30, choices=Status.choices)
    status_after = models.CharField(max_length=30, choices=Status.choices, blank=True)
    # The settled status before the original action: where Rollback and Abort return.
    return_status = models.CharField(max_length=30, choices=Status.choices)
    error = models.TextField(blank=True)
    # The driver log of operations from before log lines (OperationLogLine) existed;
    # newer operations leave it empty and write their lines as they happen.
    log = models.TextField(blank=True)
    # The pending step (environments.operations.core): its name, its number (a step's
    # task carries it, so a stale or repeated task changes nothing), when it is due, and
    # until when the worker that claimed it holds it (a lease: past it, the watchdog
    # hands the step out again).
    step = models.CharField(max_length=40, blank=True)
    step_number = models.PositiveIntegerField(default=0)
    step_due_at = models.DateTimeField(null=True, blank=True)
    step_lease_until = models.DateTimeField(null=True, blank=True)
    # What the driver fixed at the start ({since}) and how far it got, across steps.
    memo = models.JSONField(default=dict, blank=True)
    # Stop: asked for by whom and why; the step in flight ends first.
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    stop_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    stop_reason = models.TextField(blank=True)

    objects = OperationQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["environment", "-started_at", "-id"], name="op_env_started"),
            models.Index(fields=["-started_at", "-id"], name="op_started"),
            # The queued and running operations of an environment, found without reading
            # its history: the status poll's ETag counts them.
            # The watchdog's look for steps whose task was lost.
            models.Index(
                fields=["step_due_at"],
                condition=models.Q(outcome__in=["queued", "running"]),
                name="op_step_due",
            ),
            models.Index(
                fields=["environment", "outcome"],
                condition=models.Q(outcome__in=["queued", "running"]),
                name="op_env_active",
            ),
        ]
        constraints = [
            # The database's own guard: one running operation per environment, whatever
            # path a request took. Ending access is never held up by it.
            models.UniqueConstraint(
                fields=["environment"],
                condition=models.Q(outcome__in=["queued", "running"])
                & ~models.Q(kind__in=["remove_access", "revoke_access"]),
                name="one_active_operation_per_environment",
            )
        ]

    def __str__(self):
        return f"{self.activity} ({self.get_outcome_display()})"

    def get_absolute_url(self):
        return reverse("operation-detail", args=[self.environment.slug, self.activity_id])

    @property
    def action_text(self):
        """The action in the menu's words: "Restart service: AOS"."""
        text = OperationKind(self.action).label
        if self.service_id:
            text += f": {self.service.code}"
        if self.target:
            text += f": {self.target}"
        return text

    @property
    def changes_status(self):
        return self.action in ACTIONS

    @property
    def ends_grant(self):
        return self.kind in END_GRANT_KINDS

    @property
    def grant(self):
        """The firewall rule or database account this operation granted or ended."""
        return self.firewall_rule or self.database_account

    @property
    def requester_name(self):
        """Who asked, as the history names them: "mona", "nightly-restarts (service
        account)", or "system" when the portal itself acted. Load rows with
        select_related("requested_by__service_account"), or each costs a query."""
        return user_label(self.requested_by) if self.requested_by_id else "system"

    @property
    def activity(self):
        """What happened: "Restart service: AOS", "Rollback: Enable Maintenance mode"."""
        if self.kind == self.action:
            return self.action_text
        return f"{self.get_kind_display()}: {self.action_text}"

    @property
    def is_active(self):
        return self.outcome in ACTIVE_OUTCOMES

    @property
    def is_record(self):
        """Written already finished: a change recorded (a role, a window), not one run."""
        return self.kind in RECORD_KINDS

    def log_size(self):
        """Characters of driver log written so far (OperationLog's bound)."""
        return self.log_lines.aggregate(size=models.Sum(Length("text")))["size"] or 0

    @property
    def is_stopping(self):
        """Stop was asked for and the step in flight has not ended yet."""
        return self.is_active and self.stop_requested_at is not None

    @property
    def step_text(self):
        """The current step, for people: "Health check 3", "Waiting to start"."""
        if not self.is_active:
            return ""
        if self.outcome == Outcome.QUEUED:
            return "Waiting for a worker"
        label = STEP_LABELS.get(self.step, self.step.replace("_", " ").capitalize())
        return f"{label} (step {self.step_number})"

    @property
    def badge(self):
        return OUTCOME_BADGE[self.outcome]

    @property
    def type(self):
        return KIND_TYPE[self.kind]

    @property
    def turns_maintenance_mode(self):
        """ "on" or "off" for an operation that turns maintenance mode on or off (a
        rollback undoes its action), None for any other."""
        if self.action not in MAINTENANCE_ACTIONS:
            return None
        return "on" if (self.action == OperationKind.ENABLE_MAINTENANCE) != self.undo else "off"

    @property
    def short_id(self):
        """The activity id's first group, enough to tell rows apart on a page."""
        return str(self.activity_id).split("-")[0]

    @property
    def success_status(self):
        """The status the environment reaches when this operation succeeds."""
        if self.undo or self.kind == OperationKind.ABORT:
            return self.return_status
        return ACTION_DONE_STATUS.get(self.action, self.status_before)

    @property
    def success_outcome(self):
        if self.kind == OperationKind.ABORT:
            return Outcome.ABORTED
        if self.undo:
            return Outcome.ROLLED_BACK
        return Outcome.SUCCEEDED

    @property
    def log_text(self):
        """The driver log as one text, a line per entry with its time in the current
        time zone, labelled: the lines written as it ran, or the text of an operation
        from before them."""
        lines = self.log_lines.all()
        if not lines:
            return self.log
        return "".join(line.as_text() for line in lines)

    @property
    def duration(self):
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def duration_text(self):
        """The duration for people: "4 s", "2 min 5 s", "3 h 12 min"."""
        if self.duration is None:
            return ""
        seconds = max(0, round(self.duration.total_seconds()))
        hours, rest = divmod(seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        if hours:
            return f"{hours} h {minutes} min"
        if minutes:
            return f"{minutes} min {seconds} s"
        return f"{seconds} s"


class OperationLogLine(models.Model):
    """One line a driver wrote while the operation ran, written as it happened so the
    operation's page, the API and ``portal --wait`` show progress."""

    operation = models.ForeignKey(Operation, on_delete=models.PROTECT, related_name="log_lines")
    at = models.DateTimeField(default=timezone.now)
    text = models.TextField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["operation", "at", "id"], name="op_log_line_order")]

    def __str__(self):
        return self.as_text().rstrip("\n")

    def as_text(self, zone=None):
        """The line with its time in ``zone`` (the current time zone by default), and
        the zone's name: "2026-12-01 10:02:03 CET restarting AOS"."""
        return f"{timezone.localtime(self.at, zone):%Y-%m-%d %H:%M:%S %Z} {self.text}\n"
