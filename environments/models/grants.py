"""Just-in-time access grants: firewall rules and database accounts."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from environments.models.choices import AccessEnd, AccessLevel
from environments.models.environments import Environment


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
    # Why its removal keeps failing: set when the driver says retrying cannot help (a
    # login that still owns objects) or after a few failed removals, so that admins see
    # a grant that is ended but not gone. The sweeper goes on retrying; a removal that
    # succeeds clears it.
    removal_blocked = models.TextField(blank=True)

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
        if self.removal_blocked and self.removed_at is None:
            return f"Removal blocked: {self.removal_blocked}"
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

    @property
    def history_target(self):
        """What the rule is, for the history: "203.0.113.0/24 (office)"."""
        return f"{self.cidr} ({self.name})"


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

    @property
    def history_target(self):
        """What the account is, for the history: "Read account jit_x"."""
        return f"{self.get_level_display()} account {self.username}"
