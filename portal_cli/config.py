"""Where the portal is and which token to send: PORTAL_URL and PORTAL_TOKEN, or the file
`portal login` writes (PORTAL_CONFIG, else ~/.config/lcs-portal/config.json), readable
by its owner only."""

import json
import os
from dataclasses import dataclass
from pathlib import Path


class NotConfigured(Exception):
    pass


@dataclass
class Config:
    url: str
    token: str


def config_path():
    if os.environ.get("PORTAL_CONFIG"):
        return Path(os.environ["PORTAL_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "lcs-portal" / "config.json"


def load():
    saved = {}
    path = config_path()
    if path.exists():
        saved = json.loads(path.read_text())
    url = os.environ.get("PORTAL_URL") or saved.get("url")
    token = os.environ.get("PORTAL_TOKEN") or saved.get("token")
    if not url or not token:
        raise NotConfigured(
            "No portal to talk to: run `portal login`, or set PORTAL_URL and PORTAL_TOKEN."
        )
    return Config(url=url.rstrip("/"), token=token)


def save(url, token):
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Made readable by its owner only before the token is written into it.
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps({"url": url.rstrip("/"), "token": token}, indent=2) + "\n")
    return path
