"""A real OpenID provider for the single sign-on tests: node runs tests/oidc/provider.mjs
(the OpenID-certified `oidc-provider`, installed by `make oidc-provider` into
tests/oidc/node_modules) on a free port of 127.0.0.1."""

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings
from joserfc.jwk import RSAKey

HERE = Path(settings.BASE_DIR) / "tests" / "oidc"
#: The test client's address, to which the provider sends the browser back.
BASE = "http://testserver"
CLIENT_ID = "portal"
CLIENT_SECRET = "portal-test-secret-that-is-long-enough-for-hs256"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class OidcProvider:
    issuer: str
    key: RSAKey
    accounts_file: Path

    def set_accounts(self, accounts):
        """{sub: claims}: who may sign in at the provider, read at every sign-in."""
        self.accounts_file.write_text(json.dumps(accounts))


def start_provider(tmp_path, redirect_bases, accounts):
    assert (HERE / "node_modules" / "oidc-provider").is_dir(), (
        "tests/oidc/node_modules is missing: run `make oidc-provider` (npm install)"
    )
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    key = RSAKey.generate_key(2048, {"kid": "tests", "use": "sig", "alg": "RS256"})
    provider = OidcProvider(issuer, key, tmp_path / "oidc-accounts.json")
    provider.set_accounts(accounts)
    config = {
        "issuer": issuer,
        "port": port,
        "accounts_file": str(provider.accounts_file),
        "jwks": {"keys": [key.as_dict(private=True)]},
        "client": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [f"{base}/accounts/oidc/callback/" for base in redirect_bases],
            "post_logout_redirect_uris": [f"{base}/accounts/login/" for base in redirect_bases],
        },
    }
    config_file = tmp_path / "oidc-provider.json"
    config_file.write_text(json.dumps(config))
    log = (tmp_path / "oidc-provider.log").open("w")
    process = subprocess.Popen(
        [shutil.which("node") or "node", str(HERE / "provider.mjs"), str(config_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=HERE,
    )
    discovery = f"{issuer}/.well-known/openid-configuration"
    for _ in range(200):  # a generous bound that only catches a provider that never starts
        assert process.poll() is None, (tmp_path / "oidc-provider.log").read_text()
        try:
            if httpx.get(discovery, timeout=1).status_code == 200:
                return provider, process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the OpenID provider did not start")


def stop_provider(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def use_provider(settings, provider, name="Test IdP", offline_access=False):
    """Point the portal at ``provider``; with ``offline_access`` it asks for (and keeps)
    a refresh token."""
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_PROVIDER_NAME = name
    settings.OIDC_SCOPES = "openid profile email groups" + (
        " offline_access" if offline_access else ""
    )


@pytest.fixture
def oidc_accounts():
    return {
        "alice": {
            "preferred_username": "alice",
            "email": "alice@example.com",
            "name": "Alice Example",
            "groups": ["portal-managers"],
        }
    }


def sign_in_with_provider(client, login="alice", **options):
    """Sign the test client in through the provider's own pages; the callback's answer.
    ``options``: through_provider's (browser, cancel)."""
    response = client.get("/accounts/oidc/sign-in/")
    assert response.status_code == 302, response.content
    callback = through_provider(response["Location"], login=login, redirect_base=BASE, **options)
    parts = urlsplit(callback)
    return client.get(f"{parts.path}?{parts.query}")


def through_provider(location, *, login, redirect_base, browser=None, cancel=False):
    """Follow the provider's own pages from its authorization URL (or its sign-out URL)
    as a person would (its login form, then its consent form), until it sends the
    browser back to the portal; returns that URL (the callback with the code and state).
    ``cancel``: the person cancels at the login page. ``browser``: an httpx client that
    keeps the provider's cookies (its session) from one call to the next."""
    with contextlib.ExitStack() as stack:
        if browser is None:
            browser = stack.enter_context(httpx.Client(timeout=10))
        response = browser.get(location)
        for _ in range(12):
            if response.is_redirect:
                location = str(response.next_request.url)
                if location.startswith(redirect_base):
                    return location
                response = browser.get(location)
                continue
            assert response.status_code == 200, response.text
            abort = re.search(r'href="([^"]*/abort)"', response.text)
            if cancel and abort:
                response = browser.get(str(response.url.join(abort.group(1))))
                continue
            action = re.search(r'<form[^>]*action="([^"]+)"', response.text).group(1)
            fields = dict(
                re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text)
            )
            if 'name="login"' in response.text:
                fields.update(login=login, password="any password")
            if 'name="logout"' in response.text:
                fields.update(logout="yes")  # "Yes, sign me out"
            response = browser.post(str(response.url.join(action)), data=fields)
    raise AssertionError("the provider never sent the browser back")
