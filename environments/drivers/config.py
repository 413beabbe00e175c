"""Per-environment driver configuration: a file named by ``PORTAL_DRIVERS_FILE``.

The file maps environment slugs to their driver and its settings, in JSON or (when its
name ends in ``.toml``) TOML::

    {"local-sandbox": {"driver": "command", "restart": {...}, "health": {...}, ...}}

Environments not in it use ``PORTAL_DRIVER``. It is read for every operation, so a
fixed command takes effect at the next Resume without restarting the worker. It is
configuration, like a systemd unit: the web UI never writes it.
"""

import json
import os
import tomllib

from django.conf import settings

from environments.drivers.base import DriverError


def load():
    """The whole file as a dict; empty when there is no file."""
    path = settings.PORTAL_DRIVERS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise DriverError(f"Cannot read the driver configuration {path}: {exc}.") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DriverError(f"The driver configuration {path} is not valid: {exc}.") from None
    if not isinstance(data, dict):
        raise DriverError(
            f"The driver configuration {path} must map environment slugs to settings."
        )
    return data


def for_environment(slug):
    """The settings of one environment: {} when the file does not name it."""
    entry = load().get(slug, {})
    if not isinstance(entry, dict):
        raise DriverError(
            f"The entry for {slug!r} in {settings.PORTAL_DRIVERS_FILE} must be a table of settings."
        )
    return entry


def write_environment(slug, entry):
    """Set one environment's entry in the (JSON) file, keeping every other entry.

    Returns False, writing nothing, when the file is TOML: its comments and layout are
    its owner's, so the entry is for them to add.
    """
    path = settings.PORTAL_DRIVERS_FILE
    if path.suffix == ".toml":
        return False
    data = load()
    if data.get(slug) == entry:
        return True
    data[slug] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(path)
    return True
