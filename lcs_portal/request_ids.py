"""Every answer carries ``X-Request-Id``: the client's own when it sent a sane one, else
a new UUID. The log lines written while the request is answered carry it too
(``RequestIdFilter``), so a script's error message leads to the portal's log lines."""

import contextvars
import re
import uuid

from django.core.signals import request_finished
from django.dispatch import receiver

HEADER = "X-Request-Id"
#: What a client's id may be: short, and nothing a log line or a header could trip on.
SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")
#: The id of the request being answered in this thread ("-" outside a request).
current = contextvars.ContextVar("request_id", default="-")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        sent = request.headers.get(HEADER, "")
        request.request_id = sent if SANE.fullmatch(sent) else str(uuid.uuid4())
        # Not reset on the way out: Django logs a refusal ("Not Found: …") after the
        # middleware has answered. request_finished clears it.
        current.set(request.request_id)
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response


@receiver(request_finished)
def _forget(**kwargs):
    current.set("-")


def instance():
    """The request as a problem's ``instance`` (RFC 9457): a URI naming this occurrence."""
    request_id = current.get()
    try:
        if str(uuid.UUID(request_id)) == request_id:
            return f"urn:uuid:{request_id}"
    except ValueError:
        pass
    return f"urn:lcs-portal:request:{request_id}"
