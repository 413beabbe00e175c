"""Signing in with the identity provider, and signing out of both."""

import logging
from urllib.parse import urlencode

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET
from joserfc.errors import JoseError

from environments import crypto
from environments.models import ExternalIdentity, SignInSession, is_service_account
from environments.sso.client import enabled, oidc_client
from environments.sso.roles import apply_identity_groups, groups_from_claims

log = logging.getLogger(__name__)
User = get_user_model()

BACKEND = "environments.sso.backend.SingleSignOnBackend"
#: The ID token of this session, for the provider's sign-out (id_token_hint).
SESSION_ID_TOKEN = "sso_id_token"
SESSION_NEXT = "sso_next"


class SignInView(auth_views.LoginView):
    """The sign-in page: "Sign in with <provider>", and the local password form."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sso_provider_name"] = settings.OIDC_PROVIDER_NAME if enabled() else None
        context["local_passwords_for_all"] = settings.LOCAL_PASSWORDS_FOR_ALL
        return context


def _refuse(request, message, status):
    """The sign-in page again, saying why single sign-on did not sign them in."""
    form = auth_views.AuthenticationForm(request)
    context = {
        "form": form,
        "sso_error": message,
        "sso_provider_name": settings.OIDC_PROVIDER_NAME,
        "local_passwords_for_all": settings.LOCAL_PASSWORDS_FOR_ALL,
    }
    return render(request, "registration/login.html", context, status=status)


def _unreachable(request, error):
    log.warning("single sign-on: %s did not answer: %s", settings.OIDC_ISSUER, error)
    name = settings.OIDC_PROVIDER_NAME
    return _refuse(
        request,
        f"{name} did not answer, so single sign-on is not available right now. "
        "Try again in a few minutes; administrators can sign in with their password.",
        503,
    )


@require_GET
def sso_sign_in(request):
    """Off to the provider: state, nonce and the PKCE verifier stay in this session."""
    if not enabled():
        raise Http404("Single sign-on is not configured.")
    next_url = request.GET.get("next", "")
    if url_has_allowed_host_and_scheme(
        next_url, {request.get_host()}, require_https=request.is_secure()
    ):
        request.session[SESSION_NEXT] = next_url
    callback = request.build_absolute_uri(reverse("sso-callback"))
    try:
        return oidc_client().authorize_redirect(request, callback)
    except (requests.RequestException, ValueError, AuthlibBaseError) as error:
        return _unreachable(request, error)


@require_GET
def sso_callback(request):
    """Back from the provider: check state, trade the code (with the PKCE verifier) for
    tokens, check the ID token (signature, issuer, audience, expiry, nonce), then sign the
    user in and apply their groups."""
    if not enabled():
        raise Http404("Single sign-on is not configured.")
    name = settings.OIDC_PROVIDER_NAME
    try:
        token = oidc_client().authorize_access_token(request)
    except MismatchingStateError:
        return _refuse(
            request,
            "This sign-in did not start here, or it started too long ago. Sign in again.",
            400,
        )
    except OAuthError as error:
        return _refuse(
            request, f"{name} did not sign you in: {error.description or error.error}.", 400
        )
    except (JoseError, AuthlibBaseError) as error:
        # A bad signature, another issuer or audience, expired, or not this sign-in's nonce.
        log.warning("single sign-on: ID token refused: %r", error)
        return _refuse(request, f"{name} sent an ID token that is not valid here.", 400)
    except requests.RequestException as error:
        return _unreachable(request, error)
    claims = token.get("userinfo")
    if not claims or not claims.get("sub"):
        return _refuse(request, f"{name} sent no ID token.", 400)
    groups = groups_from_claims(claims)
    if groups is None:
        # Entra ID's overage: too many groups to list in the token (docs/sso.md).
        return _refuse(
            request,
            f"{name} sent too many groups to list in the sign-in token. Ask an administrator "
            "to send only the groups assigned to the portal's application.",
            403,
        )
    identity = identity_for(claims)
    user = identity.user
    if not user.is_active:
        return _refuse(request, "Your portal account is deactivated.", 403)
    if is_service_account(user):
        # An identity linked to one by hand: a service account is never a person's.
        return _refuse(
            request,
            f"{user.get_username()} is a service account: it uses the API with its tokens "
            "and never signs in to the pages.",
            403,
        )
    now = timezone.now()
    apply_identity_groups(identity, groups, name, now)
    next_url = request.session.pop(SESSION_NEXT, "") or settings.LOGIN_REDIRECT_URL
    login(request, user, backend=BACKEND)
    request.session[SESSION_ID_TOKEN] = token.get("id_token", "")
    remember_sign_in(request, identity, token, now)
    return redirect(next_url)


def remember_sign_in(request, identity, token, now):
    """Record the session for the refresh (sso/sync.py), and keep the refresh token where
    the portal asked for offline_access: a refresh token without it (Keycloak gives one
    to everyone) ends with the provider's session, so its refusal would not mean that
    the person left."""
    request.session.save()
    SignInSession.objects.create(
        identity=identity, session_key=request.session.session_key, created_at=now
    )
    identity.last_sign_in_at = now
    if "offline_access" in settings.OIDC_SCOPES.split() and token.get("refresh_token"):
        identity.refresh_token_sealed = crypto.seal(token["refresh_token"], crypto.REFRESH_TOKEN)
    identity.save(update_fields=["last_sign_in_at", "refresh_token_sealed"])


def identity_for(claims):
    """The identity (and user) of this issuer and `sub`, made at their first sign-in.
    Never found by e-mail or user name: those can change hands at the provider."""
    identity = (
        ExternalIdentity.objects.select_related("user")
        .filter(issuer=claims["iss"], subject=claims["sub"])
        .first()
    )
    email = str(claims.get(settings.OIDC_EMAIL_CLAIM) or "")[:254]
    full_name = str(claims.get(settings.OIDC_NAME_CLAIM) or "")[:150]
    if identity is not None:
        user = identity.user
        if (user.email, user.first_name) != (email, full_name):
            user.email, user.first_name = email, full_name
            user.save(update_fields=["email", "first_name"])
        return identity
    base = str(claims.get(settings.OIDC_USERNAME_CLAIM) or claims["sub"])[:140]
    username, number = base, 1
    with transaction.atomic():
        while User.objects.filter(username=username).exists():
            number += 1
            username = f"{base}-{number}"
        user = User(username=username, email=email, first_name=full_name)
        user.set_unusable_password()
        user.save()
        return ExternalIdentity.objects.create(
            user=user, issuer=claims["iss"], subject=claims["sub"]
        )


class SignOutView(auth_views.LogoutView):
    """Ends the portal session and, where the provider offers it, the provider's too
    (RP-initiated logout at its end_session_endpoint)."""

    def post(self, request, *args, **kwargs):
        id_token = request.session.get(SESSION_ID_TOKEN)
        if request.session.session_key:
            SignInSession.objects.filter(session_key=request.session.session_key).delete()
        response = super().post(request, *args, **kwargs)
        if not (id_token and enabled()):
            return response
        try:
            metadata = oidc_client().load_server_metadata()
        except (requests.RequestException, ValueError) as error:
            log.warning("single sign-on: no sign-out at the provider: %s", error)
            return response
        end_session = metadata.get("end_session_endpoint")
        if not end_session:
            return response
        query = urlencode(
            {
                "id_token_hint": id_token,
                "client_id": settings.OIDC_CLIENT_ID,
                "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
            }
        )
        return redirect(f"{end_session}?{query}")
