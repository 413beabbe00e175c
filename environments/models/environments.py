"""Environments, their services, and the rows their pages show."""

import threading

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django_fsm import RETURN_VALUE, FSMField, FSMModelMixin, transition

from environments.models.choices import (
    ACTION_RUNNING_STATUS,
    END_GRANT_KINDS,
    MAINTAIN_ROLES,
    MAINTENANCE_SIGN_IN_ROLES,
    RUNNING_STATUSES,
    SERVICE_BADGE,
    STATUS_BADGE,
    Deployment,
    EnvironmentType,
    ServiceKind,
    ServiceState,
    Status,
    Subscription,
)


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


#: Serialises Environment.refresh_from_db across a process's threads (see there).
_RELOAD_LOCK = threading.RLock()

#: A viewer's role not yet read (see Environment.viewer_role).
NOT_LOADED = object()


def _may_maintain(environment, user):
    return environment.may_be_maintained_by(user)


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
    project = models.ForeignKey("Project", on_delete=models.PROTECT, related_name="environments")
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

    # The roles of the user who fetched this environment, in its project and on it (a
    # ProjectRole and an EnvironmentRoleKind value, or None): carried by the statement of
    # permissions.environment_with_roles, else read on first use.
    viewer_role = NOT_LOADED
    sign_in_role = NOT_LOADED

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

    def project_role_of(self, user):
        """The user's role in this environment's project, or None."""
        if not user.is_authenticated:
            return None
        if self.viewer_role is NOT_LOADED:
            memberships = user.project_memberships.filter(project_id=self.project_id)
            self.viewer_role = memberships.values_list("role", flat=True).first()
        return self.viewer_role

    def environment_role_of(self, user):
        """The user's role on this environment (who may sign in), or None."""
        if not user.is_authenticated:
            return None
        if self.sign_in_role is NOT_LOADED:
            roles = user.environment_roles.filter(environment_id=self.pk)
            self.sign_in_role = roles.values_list("role", flat=True).first()
        return self.sign_in_role

    def may_be_maintained_by(self, user):
        """The maintain rule: project owners, environment managers and superusers, while
        their account is active, may run Maintain actions."""
        if not user.is_authenticated or not user.is_active:
            return False
        return user.is_superuser or self.project_role_of(user) in MAINTAIN_ROLES

    @property
    def is_busy(self):
        return self.status in RUNNING_STATUSES

    def running_operation(self):
        """The operation in progress here (ending access aside), or None."""
        running = self.operations.active().exclude(kind__in=END_GRANT_KINDS)
        return running.select_related("requested_by__service_account", "service").first()

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

    def listed_database_accounts(self):
        """The Database Accounts section: the active accounts, and the ended ones whose
        removal is blocked (their login may still work)."""
        blocked = models.Q(removed_at=None) & ~models.Q(removal_blocked="")
        accounts = self.databaseaccounts.filter(models.Q(ended_at=None) | blocked)
        return accounts.select_related("requested_by")

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
    # The last answer of its periodic health check (environments.operations.health):
    # when it came, and what the check said (why it did not pass). Empty where the
    # driver has no health check: the state is then what the last restart left.
    checked_at = models.DateTimeField(null=True, blank=True)
    check_detail = models.CharField(max_length=300, blank=True)
    # When the next check is due; the one task that moves it on runs the check.
    next_check_at = models.DateTimeField(null=True, blank=True)

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
