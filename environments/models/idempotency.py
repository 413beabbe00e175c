"""Idempotency keys of the API: a script's retry of a POST or DELETE gets the first
answer again instead of starting the work twice (environments/api/idempotency.py)."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

#: How long a key is remembered (the watchdog prunes older ones).
KEEP_KEYS = timedelta(hours=24)


class IdempotencyKeyQuerySet(models.QuerySet):
    def stale(self):
        """Keys past KEEP_KEYS: forgotten, as if never sent."""
        return self.filter(created_at__lt=timezone.now() - KEEP_KEYS)


class IdempotencyKey(models.Model):
    """One ``Idempotency-Key`` of one user's. Claimed (committed, without an answer) before
    the action runs, so that a duplicate sent meanwhile sees it in flight; its answer is
    written in the action's own transaction, so it is there if and only if the action
    happened. Keyed by user, not token: tokens rotate, a script's retries keep the key."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    #: SHA-256 of the method, the path and the body: the same key with another request
    #: is a mistake of the script's, refused rather than answered with another's answer.
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    #: The first answer's status; None while the request is in flight.
    status = models.PositiveSmallIntegerField(null=True)
    body = models.TextField(blank=True)
    location = models.CharField(max_length=500, blank=True)

    objects = IdempotencyKeyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once_per_user")
        ]

    def __str__(self):
        return f"{self.key} ({self.status or 'in flight'})"
