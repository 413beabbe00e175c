"""A user's own settings, and the mark of a service account."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


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


class ServiceAccount(models.Model):
    """Marks a user as a service account: a user for scripts and pipelines, not people
    (Lifecycle Services' Azure AD applications). It never signs in to the pages (neither
    with a password nor with single sign-on; lcs_portal.auth), holds project and
    environment roles like anyone, and acts through its API tokens, which a project
    owner of all its projects may make and rotate (environments.tokens)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="service_account",
    )
    description = models.CharField(
        max_length=200, blank=True, help_text="What uses it, e.g. “the nightly restart pipeline”."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["user__username"]

    def __str__(self):
        return f"{self.user} (service account)"


def is_service_account(user):
    """Whether ``user`` is a service account. Reads ``user.service_account``, so a user
    loaded with select_related("service_account") costs no query."""
    return user.is_authenticated and hasattr(user, "service_account")


def user_label(user):
    """A user as the history names them: "nightly-restarts (service account)", or the
    user name of a person."""
    if is_service_account(user):
        return f"{user.get_username()} (service account)"
    return user.get_username()
