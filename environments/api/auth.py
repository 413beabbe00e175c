"""Who is calling: a personal access token in the Authorization header, and nothing
else. Session cookies are ignored (so no CSRF token is needed or checked), and every
user is held to PORTAL_API_RATE_LIMIT requests a minute, however many tokens they use."""

import math

from django.conf import settings
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
        # Asked twice for a request with an Idempotency-Key (environments.api.idempotency
        # needs its user before ninja runs): the token is looked up once.
        if not hasattr(request, "api_token"):
            request.api_token = tokens.authenticate(token, client_address(request))
        found = request.api_token
        if found is not None and request.method not in READ_METHODS:
            refuse_read_scope(found)
        return found


class UserRateLimit(BaseThrottle):
    """A fixed window a minute long per user (all their tokens together), counted in
    Django's cache. Stateless, so one instance serves every thread: the wait is the rest
    of the current window."""

    def allow_request(self, request):
        return count_request(request, request.auth)

    def wait(self):
        return tokens.seconds_to_next_window()


def count_request(request, token):
    """Count the request against its user's limit; False past it. What is left is kept
    on the request for RateLimitHeadersMiddleware."""
    count = tokens.take_request(token.user)
    request.rate_limit = (settings.API_RATE_LIMIT, count)
    return count <= settings.API_RATE_LIMIT


class RateLimitHeadersMiddleware:
    """``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (the IETF
    httpapi rate-limit headers draft) on every answer to a request that was counted:
    a script can slow down before it meets a 429."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if getattr(request, "rate_limit", None) is not None:
            limit, count = request.rate_limit
            response["RateLimit-Limit"] = str(limit)
            response["RateLimit-Remaining"] = str(max(limit - count, 0))
            response["RateLimit-Reset"] = str(math.ceil(tokens.seconds_to_next_window()))
        return response


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
