"""Personal access tokens for the API."""

from django.conf import settings
from django.db import models
from django.utils import timezone


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
