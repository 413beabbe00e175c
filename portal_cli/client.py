"""The API over HTTP: a bearer token, JSON in and out, problems as exceptions, and a
polite wait when the portal says 429. Anything that is not the API's JSON (a redirect
to a sign-in page, an HTML error page of a proxy) is NotAPortal, never read as data."""

import time
import uuid

import httpx

from portal_cli import __version__

API_PATH = "/api/v1/"
#: How often a 429 (too many requests) is waited out before giving up.
RATE_LIMIT_RETRIES = 5
REQUEST_ID_HEADER = "X-Request-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: How often a write whose answer was lost on the way (the connection dropped after it
#: was sent) is sent again: safe, as the portal answers its key's retry with the first
#: answer and starts nothing twice.
LOST_ANSWER_RETRIES = 2
#: The portal's problem type for a duplicate of a request still being answered.
IN_FLIGHT = "urn:lcs-portal:problem:idempotency_key_in_flight"


class ApiError(Exception):
    """The portal answered with a problem: ``status``, ``title``, ``detail`` and, when
    the portal sent one, the ``request_id`` its logs know the request by."""

    def __init__(self, status, problem, request_id=None):
        self.status = status
        self.problem = problem
        self.request_id = request_id
        self.title = problem.get("title") or f"HTTP {status}"
        self.detail = problem.get("detail") or ""
        super().__init__(f"{self.title}: {self.detail}" if self.detail else self.title)

    @property
    def refused(self):
        """The portal refused the request (4xx): nothing was done."""
        return 400 <= self.status < 500


class NotAPortal(Exception):
    """What answered is not the portal's API: nothing it said was understood."""

    def __init__(self, url, why, request_id=None):
        super().__init__(f"{url} does not look like a portal API: {why}.")
        self.request_id = request_id


class Api:
    """One invocation's client. Its POSTs and DELETEs carry one Idempotency-Key (a new
    UUID unless ``idempotency_key`` is given), the same on every retry of them."""

    def __init__(self, url, token, *, timeout=30.0, transport=None, idempotency_key=None):
        self.idempotency_key = idempotency_key or str(uuid.uuid4())
        self.http = httpx.Client(
            base_url=url.rstrip("/") + API_PATH,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"portal-cli/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )

    def get(self, path, **params):
        params = {key: value for key, value in params.items() if value not in (None, "")}
        return self.request("GET", path, params=params)

    def post(self, path, body):
        return self.request("POST", path, json=body)

    def delete(self, path):
        return self.request("DELETE", path)

    def request(self, method, path, **kwargs):
        if method in ("POST", "DELETE"):
            kwargs["headers"] = {IDEMPOTENCY_HEADER: self.idempotency_key}
        lost = 0
        for _ in range(RATE_LIMIT_RETRIES):
            try:
                response = self.http.request(method, path, **kwargs)
            except (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError):
                # Sent, but no answer came back: the same key gets the answer (or does
                # the work, if it never arrived).
                lost += 1
                if lost > LOST_ANSWER_RETRIES:
                    raise
                time.sleep(lost)
                continue
            if response.status_code == 429 or _in_flight(response):
                # Nothing was done, or the first send is still being answered: wait as
                # long as the portal asks, then ask again.
                time.sleep(retry_after(response))
                continue
            break
        return understood(response)

    def download(self, path, out, **params):
        """Write a CSV answer's bytes to the binary file ``out`` as they come (the
        portal made them safe to print); a problem, or anything but CSV, is raised as
        `request` raises it."""
        params = {key: value for key, value in params.items() if value not in (None, "")}
        headers = {"Accept": "text/csv, application/problem+json"}
        for _ in range(RATE_LIMIT_RETRIES):
            with self.http.stream("GET", path, params=params, headers=headers) as response:
                if response.status_code == 200 and _content_type(response) == "text/csv":
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                    return
                # Read now: the problem is what is said if this was the last try.
                response.read()
                if response.status_code != 429:
                    break
                time.sleep(retry_after(response))
        understood(response)  # a problem: raised
        raise NotAPortal(response.request.url, "it answered JSON where CSV was asked for")

    def pages(self, path, **params):
        """Every item of a cursor-paged list, page after page, as they come."""
        page = self.get(path, **params)
        while True:
            yield from page["items"]
            if not page["next"]:
                return
            page = self.request("GET", relative(page["next"]))


def understood(response):
    """The answer's JSON; its problem as ApiError; NotAPortal for anything else."""
    url = response.request.url
    request_id = response.headers.get(REQUEST_ID_HEADER)
    status = f"{response.status_code} {response.reason_phrase}".strip()
    if response.is_redirect:
        # The API never redirects: a sign-in front end, or http:// moved to https://.
        location = response.headers["Location"]
        raise NotAPortal(url, f"it answered {status}, redirecting to {location}", request_id)
    content_type = _content_type(response)
    if content_type != "application/json" and not content_type.endswith("+json"):
        what = "an HTML page" if "html" in content_type else content_type or "no content type"
        raise NotAPortal(url, f"it answered {status} with {what}", request_id)
    try:
        body = response.json()
    except ValueError:
        raise NotAPortal(url, f"it answered {status} with JSON that does not parse") from None
    if response.status_code >= 400:
        if not isinstance(body, dict):
            raise NotAPortal(url, f"it answered {status} with no problem document", request_id)
        raise ApiError(response.status_code, body, request_id)
    return body


def _content_type(response):
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _in_flight(response):
    if response.status_code != 409:
        return False
    try:
        return response.json().get("type") == IN_FLIGHT
    except ValueError:
        return False


def retry_after(response):
    """The seconds a 429 asks to wait (at most a minute; a second if it does not say)."""
    try:
        return min(max(float(response.headers.get("Retry-After", "1")), 0.0), 60.0)
    except ValueError:
        return 1.0


def relative(link):
    """A link of the API's, relative to the API's root, so that it is followed through
    the URL this command line was given (whatever host name the portal saw)."""
    path = httpx.URL(link).raw_path.decode()
    return path[len(API_PATH) :] if path.startswith(API_PATH) else path
