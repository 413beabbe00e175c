"""The API over HTTP: a bearer token, JSON in and out, problems as exceptions, and a
polite wait when the portal says 429."""

import time

import httpx

from portal_cli import __version__

API_PATH = "/api/v1/"
#: How often a 429 (too many requests) is waited out before giving up.
RATE_LIMIT_RETRIES = 5


class ApiError(Exception):
    """The portal answered with a problem: ``status``, ``title`` and ``detail``."""

    def __init__(self, status, problem):
        self.status = status
        self.problem = problem
        self.title = problem.get("title") or f"HTTP {status}"
        self.detail = problem.get("detail") or ""
        super().__init__(f"{self.title}: {self.detail}" if self.detail else self.title)

    @property
    def refused(self):
        """The portal refused the request (4xx): nothing was done."""
        return 400 <= self.status < 500


class Api:
    def __init__(self, url, token, *, timeout=30.0, transport=None):
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
        for _ in range(RATE_LIMIT_RETRIES):
            response = self.http.request(method, path, **kwargs)
            if response.status_code != 429:
                break
            # Nothing was done: wait as long as the portal asks, then ask again.
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 60.0))
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            raise ApiError(response.status_code, problem)
        return response.json()

    def pages(self, path, **params):
        """Every item of a cursor-paged list, page after page, as they come."""
        page = self.get(path, **params)
        while True:
            yield from page["items"]
            if not page["next"]:
                return
            page = self.request("GET", relative(page["next"]))


def relative(link):
    """A link of the API's, relative to the API's root, so that it is followed through
    the URL this command line was given (whatever host name the portal saw)."""
    path = httpx.URL(link).raw_path.decode()
    return path[len(API_PATH) :] if path.startswith(API_PATH) else path
