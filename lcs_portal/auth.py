"""Sign-in to the pages: django-axes' throttling, the password check, and who may sign
in at all (people: never a service account)."""

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from environments.models import is_service_account


class SignInThrottleBackend(AxesStandaloneBackend):
    """Refuses a sign-in to a locked-out account (django-axes), and lets the next
    backend check the password otherwise.

    Password guessing comes through the sign-in pages (the portal's and the admin's),
    which always pass the request. Code that checks a password without one (a
    management command, a shell, a test) has no client to throttle, so it is not
    refused here: axes' own backend would raise instead.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class PeopleOnlyBackend(ModelBackend):
    """Sessions are for people. A service account (environments.ServiceAccount) acts
    through its API tokens only: it never signs in, and a session of its, however it
    was made, is ended on its next request (get_user finds no user for it), so neither
    the pages nor the environment sign-in gate and forward auth ever see it."""

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and not is_service_account(user)

    def get_user(self, user_id):
        # As ModelBackend's, with the service account mark in the same query.
        users = get_user_model().objects.select_related("service_account")
        user = users.filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None


class LocalPasswordBackend(PeopleOnlyBackend):
    """Django's own password check, for superusers only when PORTAL_LOCAL_PASSWORDS_FOR_ALL
    is off: they keep a way in (break-glass) while the identity provider is down."""

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and (
            settings.LOCAL_PASSWORDS_FOR_ALL or user.is_superuser
        )


def locked_out(request, original_response=None, credentials=None):
    """The sign-in page again, saying why signing in is refused and until when (429)."""
    from django.conf import settings
    from django.contrib.auth.forms import AuthenticationForm
    from django.shortcuts import render

    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    message = (
        f"Too many failed sign-ins to this account ({settings.AXES_FAILURE_LIMIT} in a row). "
        f"Signing in to it is locked for {minutes} minutes; try again then, or ask an "
        "administrator to unlock it."
    )
    context = {"form": form, "lockout": message, "next": request.POST.get("next", "")}
    return render(request, "registration/login.html", context, status=429)


def client_address(request):
    """The client's address: REMOTE_ADDR, or behind PORTAL_PROXY_COUNT reverse proxies
    the address the outermost of them saw (X-Forwarded-For, counted from the right,
    where a client cannot write)."""
    from django.conf import settings

    count = settings.PORTAL_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if count and len(forwarded) >= count and forwarded[-count]:
        return forwarded[-count]
    return request.META.get("REMOTE_ADDR")
