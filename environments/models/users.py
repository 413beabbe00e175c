"""A user's own settings."""

import secrets

from django.conf import settings
from django.db import models


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
