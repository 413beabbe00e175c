"""Every failure under /api/ is a JSON problem (RFC 9457): type, title, status, detail.

The API's own refusals become problems through the exception handlers below;
ApiProblemMiddleware turns whatever else fails under /api/ (an unknown URL, a wrong
method, a server error, Django's own 400) into one too, so a script never gets an HTML
page. docs/api.md lists the types.
"""

import json
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpResponse
from django.utils.cache import patch_cache_control
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.parser import Parser

from environments.forms import REASON_REQUIRED
from environments.refusals import OperationRefused
from lcs_portal import request_ids

API_PREFIX = "/api/"
CONTENT_TYPE = "application/problem+json"

#: code: (HTTP status, title). The problem's type is "urn:lcs-portal:problem:<code>".
PROBLEMS = {
    OperationRefused.BUSY: (409, "Another operation is in progress"),
    OperationRefused.NOT_ALLOWED: (409, "Not possible in the environment's status"),
    OperationRefused.INELIGIBLE: (409, "Not available on this environment"),
    OperationRefused.FORBIDDEN: (403, "Forbidden"),
    OperationRefused.INVALID: (400, "Invalid request"),
    "insufficient_scope": (403, "The token's scope does not allow this"),
    "unauthorized": (401, "Unauthorized"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "idempotency_key_in_flight": (409, "A request with this Idempotency-Key is in flight"),
    "idempotency_key_reused": (422, "This Idempotency-Key was sent with another request"),
    "content_too_large": (413, "Content too large"),
    "unsupported_media_type": (415, "Unsupported media type"),
    "rate_limited": (429, "Too many requests"),
    "server_error": (500, "Server error"),
}
#: What a plain error status of Django's or ninja's becomes.
STATUS_CODES = {
    400: OperationRefused.INVALID,
    401: "unauthorized",
    403: OperationRefused.FORBIDDEN,
    404: "not_found",
    405: "method_not_allowed",
    429: "rate_limited",
}


def problem_type(code):
    return f"urn:lcs-portal:problem:{code}"


def problem(code, detail, *, status=None, **extra):
    """A problem response: ``code`` names its type, ``detail`` is for people."""
    if code in PROBLEMS:
        default_status, title = PROBLEMS[code]
    else:
        default_status, title = status, HTTPStatus(status).phrase
    body = {
        "type": problem_type(code),
        "title": title,
        "status": status or default_status,
        "detail": detail,
        # Its X-Request-Id, by which the portal's log lines of it are found.
        "instance": request_ids.instance(),
        **extra,
    }
    return HttpResponse(json.dumps(body), status=body["status"], content_type=CONTENT_TYPE)


class ScopeRefused(PermissionDenied):
    """The token may read but not act."""


class NotJson(Exception):
    """A body sent as something other than JSON."""


class JsonParser(Parser):
    """ninja reads any body as JSON whatever its Content-Type; a body that says it is
    something else (text/plain, a form) is refused rather than acted on."""

    def parse_body(self, request):
        media_type = request.content_type or ""
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise NotJson(f"Send the body as application/json, not {media_type or 'untyped'}.")
        return super().parse_body(request)


class FormInvalid(Exception):
    """The request's values failed the form the page uses for the same action."""

    def __init__(self, form):
        super().__init__(form.errors.as_text())
        self.errors = [
            {"field": "" if field == "__all__" else field, "message": message}
            for field, messages in form.errors.items()
            for message in messages
        ]


def install_handlers(api):
    """Make every refusal the API raises a problem response."""

    @api.exception_handler(OperationRefused)
    def refused(request, exc):
        return problem(exc.code, exc.message)

    @api.exception_handler(ScopeRefused)
    def scope_refused(request, exc):
        return problem("insufficient_scope", str(exc))

    @api.exception_handler(PermissionDenied)
    def forbidden(request, exc):
        return problem(OperationRefused.FORBIDDEN, str(exc) or "You may not do this.")

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return problem("not_found", str(exc) or "Not found.")

    @api.exception_handler(AuthenticationError)
    def unauthorized(request, exc):
        response = problem(
            "unauthorized",
            "Send a valid API token: 'Authorization: Bearer lcsp_…'. It may have expired, "
            "been revoked, or its user deactivated.",
        )
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response

    @api.exception_handler(Throttled)
    def throttled(request, exc):
        # ninja adds Retry-After.
        return problem("rate_limited", "This token made too many requests; retry later.")

    @api.exception_handler(FormInvalid)
    def form_invalid(request, exc):
        detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in exc.errors)
        return problem(OperationRefused.INVALID, detail, errors=exc.errors)

    @api.exception_handler(ValidationError)
    def invalid(request, exc):
        # A malformed id in the path (/maintenance-windows/abc) names nothing that
        # exists: the same answer as an id that names nothing.
        for error in exc.errors:
            if error["loc"][0] == "path":
                name = _field(error["loc"])
                return problem("not_found", f"Nothing is at {request.path}: no such {name}.")
        errors = [{"field": _field(e["loc"]), "message": _message(e)} for e in exc.errors]
        detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
        return problem(OperationRefused.INVALID, detail, errors=errors)

    @api.exception_handler(RequestDataTooBig)
    def too_large(request, exc):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return problem(
            "content_too_large",
            f"The body is larger than this server accepts: at most {limit} bytes.",
            limit=limit,
        )

    @api.exception_handler(HttpError)
    def http_error(request, exc):
        # ninja turns whatever its parser raises into a 400; its cause says what it was.
        if isinstance(exc.__cause__, NotJson):
            return problem("unsupported_media_type", str(exc.__cause__))
        code = STATUS_CODES.get(exc.status_code, "server_error")
        return problem(code, str(exc), status=exc.status_code)


def _message(error):
    """ninja's message, but a missing reason gets the page's words."""
    if error["type"] == "missing" and _field(error["loc"]) == "reason":
        return REASON_REQUIRED
    return error["msg"]


def _field(location):
    """A value's name from ninja's location of it: ("body", "payload", "service") and
    ("query", "since") name "service" and "since"."""
    parts = [str(part) for part in location[1:]]
    if parts[:1] == ["payload"]:
        parts = parts[1:]
    return ".".join(parts)


class ApiProblemMiddleware:
    """Under /api/: HEAD is answered as GET without the body (RFC 9110), nothing is
    stored by a cache (a response may carry a password), and an error that is not
    already a problem becomes one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        if request.method == "HEAD":
            # As Django's own class-based views do: the GET view answers, the body goes.
            request.method = "GET"
            response = self._answer(request)
            request.method = "HEAD"
            if not response.streaming:
                response["Content-Length"] = len(response.content)
                response.content = b""
            return response
        return self._answer(request)

    def _answer(self, request):
        response = self.get_response(request)
        patch_cache_control(response, private=True, no_store=True)
        if response.status_code < 400 or response.get("Content-Type") == CONTENT_TYPE:
            return response
        status = response.status_code
        code = STATUS_CODES.get(status, "server_error" if status >= 500 else None)
        if code is None:
            replacement = problem(f"http-{status}", HTTPStatus(status).phrase, status=status)
        elif code == "method_not_allowed":
            allowed = ", ".join(_with_head(response.get("Allow", "")))
            response["Allow"] = allowed
            method = request.META.get("REQUEST_METHOD", request.method)
            replacement = problem(code, f"{method} is not allowed here; use {allowed}.")
        elif code == "not_found":
            replacement = problem(code, f"There is no API endpoint at {request.path}.")
        else:
            replacement = problem(code, PROBLEMS[code][1] + ".", status=status)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if response.has_header(header):
                replacement[header] = response[header]
        patch_cache_control(replacement, private=True, no_store=True)
        return replacement


def _with_head(allow):
    methods = [method.strip() for method in allow.split(",") if method.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.append("HEAD")
    return methods
