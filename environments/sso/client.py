"""The OpenID Connect client (Authlib): discovery from the issuer, PKCE on, and a timeout
on every call to the provider."""

from authlib.integrations.django_client import OAuth
from django.conf import settings

_clients = {}


def enabled():
    return bool(settings.OIDC_ISSUER)


def oidc_client():
    """The client for the configured provider; made again when the settings change (the
    tests point the portal at a provider of their own)."""
    key = (
        settings.OIDC_ISSUER,
        settings.OIDC_CLIENT_ID,
        settings.OIDC_CLIENT_SECRET,
        settings.OIDC_SCOPES,
        settings.OIDC_TIMEOUT_SECONDS,
    )
    client = _clients.get(key)
    if client is None:
        client = OAuth().register(
            "portal",
            client_id=settings.OIDC_CLIENT_ID,
            client_secret=settings.OIDC_CLIENT_SECRET,
            server_metadata_url=f"{settings.OIDC_ISSUER}/.well-known/openid-configuration",
            client_kwargs={
                "scope": settings.OIDC_SCOPES,
                "code_challenge_method": "S256",
                # Discovery, the provider's keys and the token call alike: a provider
                # that hangs must not hold a web worker.
                "default_timeout": settings.OIDC_TIMEOUT_SECONDS,
            },
        )
        _clients.clear()
        _clients[key] = client
    return client
