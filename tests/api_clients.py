"""Clients of the API for tests: a Django test client that sends a user's token."""

from django.test import Client

from environments import tokens
from environments.models import TokenScope

API = "/api/v1"


def token_for(user, scope=TokenScope.MAINTAIN, name="script", **fields):
    """A new token of ``user``'s and its secret."""
    return tokens.issue(user, name=name, scope=scope, **fields)


def api_client(user=None, scope=TokenScope.MAINTAIN, name="script", **client_options):
    """A test client sending ``user``'s new token (none for ``user`` None)."""
    headers = {}
    if user is not None:
        _, secret = token_for(user, scope, name)
        headers["Authorization"] = f"Bearer {secret}"
    return Client(headers=headers, **client_options)


def send(client, method, path, body=None):
    """One API request; JSON bodies."""
    if method == "GET":
        return client.get(path)
    if method == "DELETE":
        return client.delete(path)
    return client.generic(method, path, data=_json(body or {}), content_type="application/json")


def _json(body):
    import json

    return json.dumps(body)
