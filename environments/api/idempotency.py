"""``Idempotency-Key`` on every POST and DELETE of the API: a script that did not hear
the answer (a dropped connection, a timeout) sends the request again with the same key
and gets the first answer again, status and body, and nothing is started twice.

The key is claimed first, in a transaction of its own, so that a duplicate arriving
while the first is in flight sees it (409); the action then runs in one transaction
with the writing of its answer. A refusal (4xx) did nothing and releases the key, so a
retry may succeed; a server error rolls back with its action. A database account's
password and a new API token's secret are never stored: their replay says they were
shown once."""

import contextlib
import hashlib
import json
import math
import re
from datetime import timedelta
from functools import wraps

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from ninja.decorators import decorate_view

from environments import tokens
from environments.api.auth import TokenAuth, count_request
from environments.api.problems import problem
from environments.models import IdempotencyKey
from environments.models.idempotency import KEEP_KEYS

HEADER = "Idempotency-Key"
#: Printable ASCII, as the IETF draft's keys (a UUID suits).
SANE_KEY = re.compile(r"[\x21-\x7e]{1,255}")
#: A claim without an answer this old is of a process that died mid-request: its
#: transaction, and the action, rolled back, so the key is free again.
ABANDONED_AFTER = timedelta(minutes=5)
REPLAYED = "Idempotent-Replayed"
PASSWORD_NOT_REPEATED = (
    "Shown once, in the first answer to this Idempotency-Key; never repeated. "
    "Revoke the account and request another if it was lost."
)
SECRET_NOT_REPEATED = (
    "Shown once, in the first answer to this Idempotency-Key; never repeated. "
    "Rotate the token if it was lost."
)


def install(*routers):
    """Make every POST and DELETE of these routers honour Idempotency-Key (before they
    are added to the API, which copies their operations with their decorators)."""
    for router in routers:
        for path_view in router.path_operations.values():
            for operation in path_view.operations:
                if {"POST", "DELETE"} & set(operation.methods):
                    decorate_view(idempotent)(operation.view_func)


def idempotent(run):
    @wraps(run)
    def wrapper(request, *args, **kwargs):
        key = request.headers.get(HEADER)
        token = TokenAuth()(request) if key is not None else None
        if token is None:  # no key; or no valid token, which run answers with 401
            return run(request, *args, **kwargs)
        if not SANE_KEY.fullmatch(key):
            return problem(
                "invalid", f"{HEADER} must be 1 to 255 printable ASCII characters (a UUID suits)."
            )
        fingerprint = _fingerprint(request)
        claim, earlier = _claim(token.user, key, fingerprint)
        if earlier is not None:
            return _answer_to_duplicate(request, token, earlier, fingerprint)
        try:
            with transaction.atomic():
                response = run(request, *args, **kwargs)
                if response.status_code < 400:
                    _keep(claim, response)
                    return response
        except BaseException:
            claim.delete()
            raise
        claim.delete()  # refused: nothing was done, a retry may do it
        return response

    return wrapper


def _fingerprint(request):
    body = request.body
    with contextlib.suppress(ValueError):  # the same JSON however spaced is the same request
        body = json.dumps(json.loads(body), sort_keys=True).encode()
    what = f"{request.method} {request.path}\n".encode() + body
    return hashlib.sha256(what).hexdigest()


def _claim(user, key, fingerprint):
    """(the new claim, None), or (None, the earlier key of the same name)."""
    IdempotencyKey.objects.filter(user=user, key=key).stale().delete()
    IdempotencyKey.objects.filter(
        user=user, key=key, status=None, created_at__lt=timezone.now() - ABANDONED_AFTER
    ).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(user=user, key=key, fingerprint=fingerprint), None
    except IntegrityError:
        earlier = IdempotencyKey.objects.filter(user=user, key=key).first()
        if earlier is None:  # released or pruned in between: try once more
            return _claim(user, key, fingerprint)
        return None, earlier


def _keep(claim, response):
    body = json.loads(response.content)
    account = body.get("database_account") if isinstance(body, dict) else None
    if account and "password" in account:
        account["password"] = None
        account["password_note"] = PASSWORD_NOT_REPEATED
    if isinstance(body, dict) and body.get("secret"):  # a new API token's
        body["secret"] = None
        body["secret_note"] = SECRET_NOT_REPEATED
    claim.status = response.status_code
    claim.body = json.dumps(body)
    claim.location = response.get("Location", "")
    claim.save(update_fields=["status", "body", "location"])


def _answer_to_duplicate(request, token, earlier, fingerprint):
    if not count_request(request, token):
        response = problem("rate_limited", "This token made too many requests; retry later.")
        response["Retry-After"] = str(math.ceil(tokens.seconds_to_next_window()))
        return response
    if earlier.fingerprint != fingerprint:
        return problem(
            "idempotency_key_reused",
            f"This {HEADER} was sent with another request (method, path or body) in the "
            f"last {KEEP_KEYS.total_seconds() / 3600:g} hours: use a new key for a new request.",
        )
    if earlier.status is None:
        response = problem(
            "idempotency_key_in_flight",
            f"A request with this {HEADER} is still being answered: retry in a moment "
            "to get its answer.",
        )
        response["Retry-After"] = "1"
        return response
    response = HttpResponse(earlier.body, status=earlier.status, content_type="application/json")
    if earlier.location:
        response["Location"] = earlier.location
    response[REPLAYED] = "true"
    return response
