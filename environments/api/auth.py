"""Who is calling: a personal access token in the Authorization header, and nothing
else. Session cookies are ignored (so no CSRF token is needed or checked), and every
token is held to PORTAL_API_RATE_LIMIT requests a minute."""

from django.http import Http404
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle

from environments import tokens
from environments.api.problems import ScopeRefused
from environments.permissions import VIEW, environment_for
from lcs_portal.auth import client_address

#: What a Read token may send; anything else changes something.
READ_METHODS = ("GET", "HEAD", "OPTIONS")


class TokenAuth(HttpBearer):
    """``Authorization: Bearer lcsp_…``: the request's ``auth`` is the ApiToken. A Read
    token asking to change anything is refused here, before its path or body is read,
    so that it learns nothing from them (docs/api.md)."""

    def authenticate(self, request, token):
        found = tokens.authenticate(token, client_address(request))
        if found is not None and request.method not in READ_METHODS:
            refuse_read_scope(found)
        return found


class TokenRateLimit(BaseThrottle):
    """A fixed window a minute long per token, counted in Django's cache. Stateless,
    so one instance serves every thread: the wait is the rest of the current window."""

    def allow_request(self, request):
        return tokens.take_request(request.auth)

    def wait(self):
        return tokens.seconds_to_next_window()


def user_of(request):
    return request.auth.user


def maintainer(request):
    """The token's user, for a request that changes something: its token must have the
    Maintain scope (the user's own rights are checked next, as the pages check them)."""
    refuse_read_scope(request.auth)
    return request.auth.user


def refuse_read_scope(token):
    if not token.may_maintain:
        raise ScopeRefused(
            f"The token “{token.name}” has the Read scope; make a token with the "
            "Maintain scope to change anything."
        )


def via(request):
    """How the history names the request's path: "API (token name)"."""
    return f"API ({request.auth.name})"


def of_an_environment(user, queryset, pk, what, action=VIEW):
    """The object ``pk`` of ``queryset`` (a grant, a window), if the user may see (or, with
    MAINTAIN, maintain) its environment: 404 for whoever may not see it, the same answer
    as for one that does not exist; 403 for members who may not maintain it."""
    found = queryset.select_related("environment").filter(pk=pk).first()
    if found is None:
        raise Http404(f"No such {what}.")
    try:
        environment_for(user, found.environment.slug, action)
    except Http404:
        raise Http404(f"No such {what}.") from None
    return found
