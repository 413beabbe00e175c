"""Conditional GETs: an environment's, an operation's and a window's answer carry an
ETag made of what they are built from: the environment's revision (which goes up in the
transaction of every change its pages show), the token's scope (the actions it may
start) and the viewer's role. ``If-None-Match`` with it answers 304 Not Modified."""

from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag

from environments.permissions import viewer_role


def not_modified(request, response, environment, what):
    """Set the ETag of ``what`` (e.g. "operation-<id>") on ``response``, the answer being
    built; the 304 to send instead when the client has it already, else None."""
    token = request.auth
    role = viewer_role(token.user, environment) or "none"
    etag = quote_etag(f"{what}.r{environment.revision}.{token.scope}.{role}")
    response["ETag"] = etag
    unchanged = get_conditional_response(request, etag=etag)
    if unchanged is not None:
        unchanged["ETag"] = etag
    return unchanged
