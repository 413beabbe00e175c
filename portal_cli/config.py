"""Where the portal is and which token to send: PORTAL_URL and PORTAL_TOKEN, or the file
`portal login` writes (PORTAL_CONFIG, else ~/.config/lcs-portal/config.json), readable
by its owner only."""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

NO_TOKEN = "No token: pipe it to `portal login --token-stdin`, or set PORTAL_TOKEN."


class Misused(Exception):
    """The command line was used wrongly (no portal configured, a URL without its
    scheme, no token given): nothing was sent."""


@dataclass
class Config:
    url: str
    token: str


def config_path():
    if os.environ.get("PORTAL_CONFIG"):
        return Path(os.environ["PORTAL_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "lcs-portal" / "config.json"


def portal_url(url):
    """The portal's URL without its trailing slash; refused without http:// or https://
    (the command line never guesses which one the portal speaks)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Misused(
            f"{url!r} is not a portal URL: give it with its scheme, e.g. https://portal.example.com"
        )
    return url.strip().rstrip("/")


def api_token(token):
    """The token as given, if it can be one the portal makes (lcsp_ and letters and
    digits): a prefix copied with its "…" from the tokens page cannot be sent at all."""
    token = token.strip()
    if not token:
        raise Misused(NO_TOKEN)
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise Misused(
            "That is not a whole API token (lcsp_ and 40 letters and digits): copy it again "
            "from the page that made it, or make a new one."
        )
    return token


def load():
    saved = {}
    path = config_path()
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except ValueError:
            raise Misused(f"{path} is not what `portal login` writes: run it again.") from None
    url = os.environ.get("PORTAL_URL") or saved.get("url")
    token = os.environ.get("PORTAL_TOKEN") or saved.get("token")
    if not url or not token:
        raise Misused(
            "No portal to talk to: run `portal login`, or set PORTAL_URL and PORTAL_TOKEN."
        )
    return Config(url=portal_url(url), token=api_token(token))


def save(url, token):
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Made readable by its owner only before the token is written into it.
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps({"url": url.rstrip("/"), "token": token}, indent=2) + "\n")
    return path
