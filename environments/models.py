"""Data and transitions of the Maintain menu.

The environment's ``status`` is a protected django-fsm field: it changes only through
the transitions below, and only ``environments.operations`` calls them, inside the
transaction that locks the environment row and writes the Operation (history) row.
"""

import secrets
import threading
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from django_fsm import RETURN_VALUE, FSMField, FSMModelMixin, transition

# --- Choices, each with its badge colour beside it ------------------------------


class ProjectRole(models.TextChoices):
    OWNER = "owner", "Project owner"
    MANAGER = "manager", "Environment manager"
    MEMBER = "member", "Project team member"


#: Project roles that may run Maintain actions (superusers may too).
MAINTAIN_ROLES = frozenset({ProjectRole.OWNER, ProjectRole.MANAGER})


class EnvironmentType(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    PRODUCTION = "production", "Production"


class Subscription(models.TextChoices):
    MICROSOFT = "microsoft", "Microsoft"
    CUSTOMER = "customer", "Customer"


class Deployment(models.TextChoices):
    SELF_SERVICE = "self_service", "Self-service"
    LEGACY = "legacy", "Legacy"


class Status(models.TextChoices):
    DEPLOYED = "deployed", "Deployed"
    RESTARTING_SERVICE = "restarting_service", "Restarting service"
    SERVICING = "servicing", "Servicing"
    IN_MAINTENANCE = "in_maintenance", "In Maintenance"
    FAILED = "failed", "Failed"


STATUS_BADGE = {
    Status.DEPLOYED: "green",
    Status.RESTARTING_SERVICE: "blue",
    Status.SERVICING: "blue",
    Status.IN_MAINTENANCE: "amber",
    Status.FAILED: "red",
}

#: Statuses in which an operation is running: nothing else may start.
RUNNING_STATUSES = (Status.RESTARTING_SERVICE, Status.SERVICING)
#: Statuses in which maintenance mode keeps users out; so does Failed out of a
#: maintenance action (see Environment.maintenance_mode).
MAINTENANCE_STATUSES = (Status.SERVICING, Status.IN_MAINTENANCE)


class ServiceKind(models.TextChoices):
    AOS = "aos", "AOS service"
    DIXF = "dixf", "DIXF (Data import export framework service)"
    MR = "mr", "MR (Management Reporter service)"


class ServiceState(models.TextChoices):
    RUNNING = "running", "Running"
    RESTARTING = "restarting", "Restarting"
    FAILED = "failed", "Failed"


SERVICE_BADGE = {
    ServiceState.RUNNING: "green",
    ServiceState.RESTARTING: "blue",
    ServiceState.FAILED: "red",
}


class EnvironmentRoleKind(models.TextChoices):
    SYSTEM_ADMINISTRATOR = "system_administrator", "System administrator"
    MAINTENANCE_MODE_USER = "maintenance_mode_user", "Maintenance mode user"
    USER = "user", "User"


#: Environment roles that may still sign in while maintenance mode is on.
MAINTENANCE_SIGN_IN_ROLES = (
    EnvironmentRoleKind.SYSTEM_ADMINISTRATOR,
    EnvironmentRoleKind.MAINTENANCE_MODE_USER,
)


class OperationKind(models.TextChoices):
    RESTART_SERVICE = "restart_service", "Restart service"
    ENABLE_MAINTENANCE = "enable_maintenance", "Enable Maintenance mode"
    DISABLE_MAINTENANCE = "disable_maintenance", "Disable Maintenance mode"
    RESUME = "resume", "Resume"
    ROLLBACK = "rollback", "Rollback"
    ABORT = "abort", "Abort"
    ENABLE_ACCESS = "enable_access", "Enable access"
    REMOVE_ACCESS = "remove_access", "Remove access"
    REQUEST_ACCESS = "request_access", "Request access"
    REVOKE_ACCESS = "revoke_access", "Revoke access"
    GRANT_ROLE = "grant_role", "Environment role given"
    CHANGE_ROLE = "change_role", "Environment role changed"
    REMOVE_ROLE = "remove_role", "Environment role removed"


#: The Maintain actions that move the environment's status; Resume, Rollback and Abort
#: act on one of these.
ACTIONS = (
    OperationKind.RESTART_SERVICE,
    OperationKind.ENABLE_MAINTENANCE,
    OperationKind.DISABLE_MAINTENANCE,
)
RECOVERY_KINDS = (OperationKind.RESUME, OperationKind.ROLLBACK, OperationKind.ABORT)
#: The operations that move the environment's status: the actions and their recovery.
#: The latest of these is the one a Failed environment failed in; access grants and role
#: changes, which leave the status alone, never stand in for it.
MAINTAIN_KINDS = (*ACTIONS, *RECOVERY_KINDS)
#: Just-in-time access and environment roles: operations that leave the status alone.
ACCESS_KINDS = (
    OperationKind.ENABLE_ACCESS,
    OperationKind.REMOVE_ACCESS,
    OperationKind.REQUEST_ACCESS,
    OperationKind.REVOKE_ACCESS,
)
ROLE_KINDS = (OperationKind.GRANT_ROLE, OperationKind.CHANGE_ROLE, OperationKind.REMOVE_ROLE)
#: The History pages' Type column, as Lifecycle Services' History has one.
KIND_TYPE = {
    **dict.fromkeys(ACTIONS, "Maintenance"),
    **dict.fromkeys(
        (OperationKind.RESUME, OperationKind.ROLLBACK, OperationKind.ABORT), "Recovery"
    ),
    **dict.fromkeys(ACCESS_KINDS, "Access"),
    **dict.fromkeys(ROLE_KINDS, "Role"),
}
#: Ending just-in-time access is never held up by a running operation.
END_GRANT_KINDS = (OperationKind.REMOVE_ACCESS, OperationKind.REVOKE_ACCESS)
#: The status an environment shows while an action runs, and the one it reaches when done.
ACTION_RUNNING_STATUS = {
    OperationKind.RESTART_SERVICE: Status.RESTARTING_SERVICE,
    OperationKind.ENABLE_MAINTENANCE: Status.SERVICING,
    OperationKind.DISABLE_MAINTENANCE: Status.SERVICING,
}
ACTION_DONE_STATUS = {
    OperationKind.RESTART_SERVICE: Status.DEPLOYED,
    OperationKind.ENABLE_MAINTENANCE: Status.IN_MAINTENANCE,
    OperationKind.DISABLE_MAINTENANCE: Status.DEPLOYED,
}
MAINTENANCE_ACTIONS = (OperationKind.ENABLE_MAINTENANCE, OperationKind.DISABLE_MAINTENANCE)


def keeps_users_out(status, action):
    """Whether maintenance mode is on in ``status`` reached by ``action``: Servicing, In
    Maintenance, or Failed while turning maintenance mode on or off."""
    return status in MAINTENANCE_STATUSES or (
        status == Status.FAILED and action in MAINTENANCE_ACTIONS
    )


class Outcome(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTED = "aborted", "Aborted"


OUTCOME_BADGE = {
    Outcome.QUEUED: "blue",
    Outcome.RUNNING: "blue",
    Outcome.SUCCEEDED: "green",
    Outcome.FAILED: "red",
    Outcome.ROLLED_BACK: "amber",
    Outcome.ABORTED: "grey",
}

ACTIVE_OUTCOMES = (Outcome.QUEUED, Outcome.RUNNING)


class AccessLevel(models.TextChoices):
    READ = "read", "Read"
    READ_WRITE = "read_write", "Read-write"


class AccessEnd(models.TextChoices):
    EXPIRED = "expired", "Expired"
    REMOVED = "removed", "Removed"
    REVOKED = "revoked", "Revoked"
    FAILED = "failed", "Could not be applied"
    ROLE_REMOVED = "role_removed", "Role removed"
    DEACTIVATED = "deactivated", "User deactivated"


# --- Projects and roles ------------------------------------------------------------


class ShownOnEnvironmentPages(models.Model):
    """A row that its environment's pages show: saving or deleting it moves their
    revision on (Environment.revision), in the same transaction."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        self.shown_on().bump_revision()

    def delete(self, *args, **kwargs):
        self.shown_on().bump_revision()
        return super().delete(*args, **kwargs)

    def shown_on(self):
        return Environment.objects.filter(pk=self.environment_id)


class Project(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        self.environments.bump_revision()  # their pages name the project


class ProjectMembership(ShownOnEnvironmentPages):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=ProjectRole.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="one_membership_per_project")
        ]
        ordering = ["project", "user"]

    def __str__(self):
        return f"{self.user} - {self.get_role_display()} of {self.project}"

    def save(self, *args, **kwargs):
        with transaction.atomic():
            super().save(*args, **kwargs)
            self._end_access_it_no_longer_allows()

    def delete(self, *args, **kwargs):
        with transaction.atomic():
            deleted = super().delete(*args, **kwargs)
            self._end_access_it_no_longer_allows()
            return deleted

    def shown_on(self):
        # Who may maintain is on every page of the project's environments.
        return Environment.objects.filter(project_id=self.project_id)

    def _end_access_it_no_longer_allows(self):
        """Access lasts no longer than the role that allowed it: a membership removed or
        demoted below owner or manager ends the user's grants in the project."""
        from environments.operations import end_access_of

        end_access_of(self.user, AccessEnd.ROLE_REMOVED)


# --- Environments --------------------------------------------------------------------


#: Serialises Environment.refresh_from_db across a process's threads (see there).
_RELOAD_LOCK = threading.RLock()


def _may_maintain(environment, user):
    from environments.access import can_maintain

    return can_maintain(user, environment)


def _worker_only(environment, user):
    """Progress of a running operation is the worker's to report, never a user's."""
    return False


class EnvironmentQuerySet(models.QuerySet):
    def bump_revision(self):
        """Something these environments' pages show changed: their revision, the key of
        every cache and ETag of those pages, goes up. Call it in the transaction that
        makes the change."""
        return self.update(revision=models.F("revision") + 1)


class Environment(FSMModelMixin, models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="environments")
    tier = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        choices=[(n, f"Tier {n}") for n in range(1, 6)],
    )
    type = models.CharField(max_length=20, choices=EnvironmentType.choices)
    subscription = models.CharField(max_length=20, choices=Subscription.choices)
    deployment = models.CharField(max_length=20, choices=Deployment.choices)
    url = models.URLField("URL", blank=True)
    database_server = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the database server in the portal's configuration (for access grants).",
    )
    database_name = models.CharField(max_length=100, blank=True)
    status = FSMField(
        max_length=30, choices=Status.choices, default=Status.DEPLOYED, protected=True
    )
    status_changed_at = models.DateTimeField(default=timezone.now)
    # Kept by environments.operations beside the status (keeps_users_out): the sign-in
    # gate asks it before every request to the environment.
    maintenance_mode = models.BooleanField(default=False, editable=False)
    # Goes up in the transaction of every change its pages show (bump_revision).
    revision = models.PositiveBigIntegerField(default=1, editable=False)
    # The next maintenance window, scheduled or active, kept by environments.windows in
    # the transaction that changes any window here: the forward-auth answer and the list
    # read it from this row instead of asking the windows.
    window_starts_at = models.DateTimeField(null=True, blank=True, editable=False)
    window_ends_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["project__name", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(tier__gte=1, tier__lte=5), name="tier_between_1_and_5"
            )
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("environment-detail", args=[self.slug])

    def refresh_from_db(self, *args, **kwargs):
        """Reload from the database, one thread of the process at a time.

        django-fsm-2's FSMModelMixin lifts the status field's protection for the whole
        class while it reloads, so under gunicorn's threads one reload could meet the
        protection another had just put back: a 500 on a refused Maintain request
        (tests/test_refresh_under_threads.py). A reload is one primary-key query.
        """
        with _RELOAD_LOCK:
            super().refresh_from_db(*args, **kwargs)

    @property
    def badge(self):
        return STATUS_BADGE[self.status]

    @property
    def is_busy(self):
        return self.status in RUNNING_STATUSES

    def running_operation(self):
        """The operation in progress here (ending access aside), or None."""
        running = self.operations.active().exclude(kind__in=END_GRANT_KINDS)
        return running.select_related("requested_by", "service").first()

    def failed_operation(self):
        """The Maintain operation that left the environment Failed, or None."""
        if self.status != Status.FAILED:
            return None
        return self.operations.maintain().select_related("service").first()

    def active_firewall_rules(self):
        return self.firewallrules.filter(ended_at=None).select_related("requested_by")

    def open_maintenance_windows(self):
        """Scheduled and active maintenance windows, soonest first."""
        return self.maintenance_windows.open().select_related("scheduled_by")

    def active_database_accounts(self):
        return self.databaseaccounts.filter(ended_at=None).select_related("requested_by")

    def maintenance_sign_in_roles(self):
        """The roles whose users may sign in while maintenance mode is on."""
        return (
            self.roles.filter(role__in=MAINTENANCE_SIGN_IN_ROLES)
            .select_related("user")
            .order_by("role", "user__username")
        )

    def sandbox_refusal_reason(self):
        """Why Restart service and database access are not offered here (the source
        document allows them on Tier 2 to 5 sandboxes deployed through self-service in
        a Microsoft subscription), or None when they are."""
        reasons = []
        if not 2 <= self.tier <= 5:
            reasons.append(f"it is Tier {self.tier}, not Tier 2 to 5")
        if self.type != EnvironmentType.SANDBOX:
            reasons.append(f"it is a {self.get_type_display().lower()} environment, not a sandbox")
        if self.deployment != Deployment.SELF_SERVICE:
            reasons.append("it was not deployed through self-service")
        if self.subscription != Subscription.MICROSOFT:
            reasons.append("it is in a customer subscription, not a Microsoft one")
        if not reasons:
            return None
        return (
            "Restart service and database access (Enable access, Request access) are "
            "available only for Tier 2 to 5 sandbox environments deployed through "
            "self-service in a Microsoft subscription: " + "; ".join(reasons) + "."
        )

    def is_sandbox_eligible(self):
        return self.sandbox_refusal_reason() is None

    def _mark_status_change(self):
        self.status_changed_at = timezone.now()

    # --- Maintain actions a user starts -----------------------------------------

    @transition(
        field=status,
        source=Status.DEPLOYED,
        target=Status.RESTARTING_SERVICE,
        conditions=[is_sandbox_eligible],
        permission=_may_maintain,
        custom={"label": "Restart service"},
    )
    def restart_service(self):
        self._mark_status_change()

    @transition(
        field=status,
        source=Status.DEPLOYED,
        target=Status.SERVICING,
        permission=_may_maintain,
        custom={"label": "Enable Maintenance mode"},
    )
    def enable_maintenance(self):
        self._mark_status_change()

    @transition(
        field=status,
        source=Status.IN_MAINTENANCE,
        target=Status.SERVICING,
        permission=_may_maintain,
        custom={"label": "Disable Maintenance mode"},
    )
    def disable_maintenance(self):
        self._mark_status_change()

    # --- Recovery from Failed -------------------------------------------------------

    @transition(
        field=status,
        source=Status.FAILED,
        target=RETURN_VALUE(Status.RESTARTING_SERVICE, Status.SERVICING),
        permission=_may_maintain,
        custom={"label": "Resume"},
    )
    def resume(self, failed_operation):
        self._mark_status_change()
        return ACTION_RUNNING_STATUS[failed_operation.action]

    @transition(
        field=status,
        source=Status.FAILED,
        target=RETURN_VALUE(Status.RESTARTING_SERVICE, Status.SERVICING),
        permission=_may_maintain,
        custom={"label": "Rollback"},
    )
    def rollback(self, failed_operation):
        self._mark_status_change()
        return ACTION_RUNNING_STATUS[failed_operation.action]

    @transition(
        field=status,
        source=Status.FAILED,
        target=RETURN_VALUE(Status.DEPLOYED, Status.IN_MAINTENANCE),
        permission=_may_maintain,
        custom={"label": "Abort"},
    )
    def abort(self, failed_operation):
        self._mark_status_change()
        return failed_operation.return_status

    # --- Just-in-time access: allowed while nothing runs; the status does not change --

    @transition(
        field=status,
        source=[Status.DEPLOYED, Status.IN_MAINTENANCE, Status.FAILED],
        target=None,
        conditions=[is_sandbox_eligible],
        permission=_may_maintain,
        custom={"label": "Enable access"},
    )
    def enable_access(self):
        pass

    @transition(
        field=status,
        source=[Status.DEPLOYED, Status.IN_MAINTENANCE, Status.FAILED],
        target=None,
        conditions=[is_sandbox_eligible],
        permission=_may_maintain,
        custom={"label": "Request access", "menu": False},
    )
    def request_access(self):
        pass

    # --- Progress of a running operation (the worker and the watchdog) --------------

    @transition(
        field=status,
        source=list(RUNNING_STATUSES),
        target=RETURN_VALUE(Status.DEPLOYED, Status.IN_MAINTENANCE),
        permission=_worker_only,
    )
    def complete(self, operation):
        self._mark_status_change()
        return operation.success_status

    @transition(
        field=status,
        source=list(RUNNING_STATUSES),
        target=Status.FAILED,
        permission=_worker_only,
    )
    def fail(self):
        self._mark_status_change()


class Service(ShownOnEnvironmentPages):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="services")
    kind = models.CharField(max_length=10, choices=ServiceKind.choices)
    state = models.CharField(
        max_length=20, choices=ServiceState.choices, default=ServiceState.RUNNING
    )
    last_restarted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["environment", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "kind"], name="one_service_per_kind")
        ]

    def __str__(self):
        return f"{self.environment}: {self.code}"

    @property
    def code(self):
        """The short code: AOS, DIXF or MR."""
        return self.kind.upper()

    @property
    def badge(self):
        return SERVICE_BADGE[self.state]


class EnvironmentRole(ShownOnEnvironmentPages):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="environment_roles"
    )
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="roles")
    role = models.CharField(max_length=30, choices=EnvironmentRoleKind.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "environment"], name="one_role_per_environment")
        ]
        ordering = ["environment", "user"]

    def __str__(self):
        return f"{self.user} - {self.get_role_display()} on {self.environment}"


# --- History -------------------------------------------------------------------------


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
    # The maintenance window this operation started or ended (environments.windows).
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
    log = models.TextField(blank=True)

    objects = OperationQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["environment", "-started_at", "-id"], name="op_env_started"),
            models.Index(fields=["-started_at", "-id"], name="op_started"),
            # The queued and running operations of an environment, found without reading
            # its history: the status poll's ETag counts them.
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
        return self.requested_by.get_username() if self.requested_by_id else "system"

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


# --- Just-in-time access grants -------------------------------------------------------


class AccessGrant(models.Model):
    """What every grant has: who asked and why, when it ends, and how it ended.

    A grant is active from the moment its driver applied it until it ends. It never
    outlives ``expires_at``: a task wakes then, and ``manage.py expire_access`` sweeps
    whatever is past due.
    """

    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="%(class)ss"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="%(class)s_requests"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=AccessEnd.choices, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    # How it was ended ("API (token name)"), for the removal's history row when the
    # removal waits for the grant's apply to settle.
    ended_via = models.CharField(max_length=120, blank=True)
    # Set once the driver confirmed the grant is gone (rule removed, role dropped).
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_active(self):
        return self.ended_at is None

    @property
    def state_text(self):
        if self.ended_at is None:
            return "Active" if self.applied_at else "Being applied"
        return self.get_end_reason_display()

    @property
    def ending_text(self):
        """How the grant ended, or when it will: "Revoked by mona at 2026-11-26 10:02"."""
        # In the viewer's time zone, as the pages show every time.
        if self.ended_at is None:
            return f"Active until {timezone.localtime(self.expires_at):%Y-%m-%d %H:%M:%S %Z}"
        by = f" by {self.ended_by.get_username()}" if self.ended_by_id else ""
        ended = timezone.localtime(self.ended_at)
        return f"{self.get_end_reason_display()}{by} at {ended:%Y-%m-%d %H:%M:%S %Z}"


class FirewallRule(AccessGrant):
    """Enable access: the environment's database accepts connections from this range."""

    name = models.CharField(max_length=64)
    cidr = models.CharField("IP address or CIDR", max_length=49)

    class Meta(AccessGrant.Meta):
        indexes = [models.Index(fields=["environment", "ended_at"], name="rule_env_active")]

    def __str__(self):
        return f"{self.name} ({self.cidr})"


class DatabaseAccount(AccessGrant):
    """Request access: a database login valid until it expires or is revoked.

    The password is kept encrypted only while the account lives, so its requester can
    see it again; it is wiped when the account ends.
    """

    level = models.CharField(max_length=20, choices=AccessLevel.choices)
    username = models.CharField(max_length=63, unique=True)
    password_encrypted = models.TextField(blank=True, editable=False)

    class Meta(AccessGrant.Meta):
        indexes = [models.Index(fields=["environment", "ended_at"], name="account_env_active")]

    def __str__(self):
        return f"{self.username} ({self.get_level_display()})"


# --- API tokens ------------------------------------------------------------------------


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    MAINTAIN = "maintain", "Maintain (includes read)"


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        """Tokens that authenticate now: not revoked, not expired, of an active user."""
        return self.filter(revoked_at=None, expires_at__gt=timezone.now(), user__is_active=True)

    def revoke(self):
        """Revoke these tokens (each stops at its next request); how many were not yet."""
        return self.filter(revoked_at=None).update(revoked_at=timezone.now())


class ApiToken(models.Model):
    """A personal access token for the API (environments/tokens.py, environments/api/).

    Only the SHA-256 digest of the secret is kept; the secret is shown once, when the
    token is made. ``prefix`` (``lcsp_`` and the first characters) is how people, logs and
    secret scanners recognise it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=20, choices=TokenScope.choices, default=TokenScope.READ)
    prefix = models.CharField(max_length=16, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_from = models.GenericIPAddressField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_usable(self):
        return self.revoked_at is None and self.expires_at > timezone.now() and self.user.is_active

    @property
    def state_text(self):
        if self.revoked_at is not None:
            return "Revoked"
        if self.expires_at <= timezone.now():
            return "Expired"
        return "Active"

    @property
    def may_maintain(self):
        return self.scope == TokenScope.MAINTAIN


# --- Scheduled maintenance windows (environments/windows.py) -------------------------


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


# --- Notifications: who wants what, and what went out (environments/notifications.py) --


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


def new_calendar_token():
    return secrets.token_urlsafe(24)


class UserSettings(models.Model):
    """A user's own settings: their time zone and the secret address of their calendar
    feeds. Made the first time it is needed."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_settings"
    )
    # Empty: the time zone the browser reports.
    time_zone = models.CharField(max_length=64, blank=True)
    calendar_token = models.CharField(max_length=64, unique=True, default=new_calendar_token)

    class Meta:
        verbose_name = "user settings"
        verbose_name_plural = "user settings"

    def __str__(self):
        return f"Settings of {self.user}"


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
    delivered or gives up (environments/delivery.py)."""

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
    starts and one when it ends, signed with the secret (environments/webhooks.py)."""

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
