"""Personal access tokens for the API: made, recognised, counted, revoked.

A token is ``lcsp_`` and 40 random letters and digits (about 238 bits). Only its SHA-256
digest is stored: a secret that cannot be guessed needs no slow hash, and the digest
finds its row in one indexed query. Its first characters stay visible (``prefix``), so
people, logs and secret scanners can tell a portal token and which one it is.
"""

import hashlib
import ipaddress
import secrets
import string
import time
from datetime import timedelta

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from environments.models import (
    ApiToken,
    EnvironmentRole,
    ProjectMembership,
    ProjectRole,
    TokenScope,
    is_service_account,
)

PREFIX = "lcsp_"
ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 40
#: How much of a token stays visible: "lcsp_" and six characters.
SHOWN_LENGTH = len(PREFIX) + 6
#: Last use (time and address) is written at most this often per token, not on every call.
LAST_USE_EVERY = timedelta(minutes=1)
#: The rate limit's window: PORTAL_API_RATE_LIMIT requests per user per minute.
RATE_WINDOW_SECONDS = 60


def digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def default_expiry():
    return timezone.now() + timedelta(days=settings.API_TOKEN_DEFAULT_DAYS)


def latest_expiry():
    return timezone.now() + timedelta(days=settings.API_TOKEN_MAX_DAYS)


def issue(user, *, name, scope, expires_at=None):
    """Make a token for ``user``: returns the token and its secret, which is shown once
    and kept nowhere."""
    token = ApiToken(user=user, name=name, scope=scope, expires_at=expires_at or default_expiry())
    secret = set_secret(token)
    token.save()
    return token, secret


def may_make_token(maker, holder):
    """Whether ``maker`` may make (or rotate) a token for ``holder``.

    A token acts as its holder, so making one for someone is acting as them. Superusers
    may (they may do everything anyway); people make tokens for themselves only,
    whatever their admin permissions: being allowed to add tokens is not being allowed
    to become the people they are for. The one exception is a service account whose
    roles all lie in projects the maker owns: it can do nothing the maker cannot, so a
    project owner may make its tokens (and a pipeline rotate its own credential)."""
    return maker.is_superuser or maker.pk == holder.pk or owns_service_account(maker, holder)


#: Why a token makes no token for its own user (through the API).
NO_TOKEN_FOR_ITSELF = (
    "A token makes no token for its own user: a leaked one could then outlive its "
    "revocation. Make yours on the API tokens page, or replace this one with "
    "POST /tokens/{token_id}/rotate (GET /me gives its id)."
)


def refusal_to_make_token(holder_name):
    """Why a token for ``holder_name`` is refused: the same words whether that user does
    not exist, is a person, or is a service account of someone else's projects."""
    return (
        f"You may make tokens for yourself only, not for {holder_name}: a token acts as its "
        "user, and only a superuser may make one for someone else (a project owner may "
        "also make one for a service account whose roles all lie in projects they own)."
    )


def owns_service_account(person, holder):
    """Whether ``holder`` is a service account (not a superuser) with at least one role,
    every one of them in a project ``person`` owns."""
    if not is_service_account(holder) or holder.is_superuser:
        return False
    owned = ProjectMembership.objects.filter(user=person, role=ProjectRole.OWNER)
    owned = owned.values("project_id")
    memberships = ProjectMembership.objects.filter(user=holder)
    roles = EnvironmentRole.objects.filter(user=holder)
    if not (memberships.exists() or roles.exists()):
        return False  # none yet: its first roles could be anyone's
    return not (
        memberships.exclude(project_id__in=owned).exists()
        or roles.exclude(environment__project_id__in=owned).exists()
    )


def set_secret(token):
    """Give an unsaved token its secret: sets its prefix and digest, returns the secret."""
    secret = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    token.prefix = secret[:SHOWN_LENGTH]
    token.digest = digest(secret)
    return secret


def authenticate(secret, address=None):
    """The usable token whose secret this is, or None: unknown, revoked and expired
    tokens, and every token of a deactivated user, are refused on their next request."""
    if not secret.startswith(PREFIX) or len(secret) != len(PREFIX) + SECRET_LENGTH:
        return None
    token = ApiToken.objects.select_related("user").filter(digest=digest(secret)).first()
    if token is None or not token.is_usable:
        return None
    _note_use(token, address)
    return token


def _note_use(token, address):
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        address = None  # not an address: nothing worth keeping
    now = timezone.now()
    recent = token.last_used_at and now - token.last_used_at < LAST_USE_EVERY
    if recent and token.last_used_from == address:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_from=address)
    token.last_used_at, token.last_used_from = now, address


def revoke(token):
    """Revoke a token (it stops at its next request). False if it was revoked already."""
    return bool(ApiToken.objects.filter(pk=token.pk).revoke())


def rotate(token):
    """Revoke ``token`` and make its successor: the same user, name and scope, the
    default lifetime. Returns the new token and its secret (shown once), or None when
    ``token`` was revoked already (by another rotation, say): never two successors."""
    with transaction.atomic():
        if not revoke(token):
            return None
        return issue(token.user, name=token.name, scope=token.scope)


def take_request(user):
    """Count one request of ``user`` in the current minute: how many they have made in
    it (past PORTAL_API_RATE_LIMIT of them it is refused). Counted per user, not per
    token: anyone may make more tokens, and more tokens must not buy more requests.
    Django's cache counts (add, then
    incr, both atomic in Redis and in the per-process memory cache)."""
    window = int(time.time() // RATE_WINDOW_SECONDS)
    key = f"api-rate:user:{user.pk}:{window}"
    cache.add(key, 0, RATE_WINDOW_SECONDS + 5)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.add(key, 1, RATE_WINDOW_SECONDS + 5)
        return 1


def seconds_to_next_window():
    return RATE_WINDOW_SECONDS - time.time() % RATE_WINDOW_SECONDS


# --- Forms: the "API tokens" page and Django admin ------------------------------------


def check_expiry(expires_at):
    if expires_at <= timezone.now():
        raise forms.ValidationError("The expiry must be in the future.")
    if expires_at > latest_expiry() + timedelta(minutes=1):
        raise forms.ValidationError(f"A token lasts at most {settings.API_TOKEN_MAX_DAYS} days.")


def lifetime_choices():
    days = sorted({7, 30, settings.API_TOKEN_DEFAULT_DAYS, 180, settings.API_TOKEN_MAX_DAYS})
    return [(str(n), f"{n} days") for n in days if n <= settings.API_TOKEN_MAX_DAYS]


class NewTokenForm(forms.Form):
    """A user makes a token of their own."""

    name = forms.CharField(
        max_length=100,
        help_text="What it is for, e.g. “nightly restart script”. It appears in the history.",
    )
    scope = forms.ChoiceField(
        choices=TokenScope.choices,
        initial=TokenScope.READ,
        widget=forms.RadioSelect,
        help_text="Read sees what you see; Maintain also acts as you may on the Maintain menu.",
    )
    days = forms.TypedChoiceField(label="Expires in", coerce=int, choices=lifetime_choices)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["days"].initial = str(settings.API_TOKEN_DEFAULT_DAYS)

    def clean_days(self):
        days = self.cleaned_data["days"]
        if not 0 < days <= settings.API_TOKEN_MAX_DAYS:
            raise forms.ValidationError(
                f"A token lasts at most {settings.API_TOKEN_MAX_DAYS} days."
            )
        return days

    @property
    def expires_at(self):
        return timezone.now() + timedelta(days=self.cleaned_data["days"])


class AdminTokenForm(forms.ModelForm):
    """An admin makes a token for a user (its secret is shown once, on the page that
    answers the form: ApiTokenAdmin.response_add). ``maker``, the user filling it in, is
    set by ApiTokenAdmin.get_form; without one the form makes no token at all."""

    maker = None

    class Meta:
        model = ApiToken
        fields = ["user", "name", "scope", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        expires_at = self.fields.get("expires_at")  # read-only once the token exists
        if expires_at is not None:
            expires_at.initial = default_expiry
            expires_at.help_text = f"At most {settings.API_TOKEN_MAX_DAYS} days from now."

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        check_expiry(expires_at)
        return expires_at

    def clean(self):
        cleaned = super().clean()
        holder = cleaned.get("user")
        if holder is not None:  # only while adding: a made token's user is read-only
            if self.maker is None:
                self.add_error("user", "Who is making this token is not known: nothing was made.")
            elif not may_make_token(self.maker, holder):
                self.add_error("user", refusal_to_make_token(holder))
        return cleaned
