"""Drivers act on environments for the background tasks; see ``base.Driver``.

Each environment's driver is the one its entry in ``PORTAL_DRIVERS_FILE`` names, or
``PORTAL_DRIVER`` when it has none. A new driver is one file here and one line in
``DRIVERS``.
"""

from django.conf import settings
from django.utils.module_loading import import_string

from environments.drivers import config
from environments.drivers.base import (
    Driver,
    DriverError,
    Health,
    Later,
    OperationLog,
    TryAgain,
)

DRIVERS = {
    "simulated": "environments.drivers.simulated.SimulatedDriver",
    "command": "environments.drivers.command.CommandDriver",
}

__all__ = ["Driver", "DriverError", "Health", "Later", "OperationLog", "TryAgain", "get_driver"]


def get_driver(environment, log, *, deadline=None, memo=None):
    entry = config.for_environment(environment.slug)
    if "driver" in entry:
        name = entry["driver"]
        source = f"the entry for {environment.slug} in {settings.PORTAL_DRIVERS_FILE}"
    else:
        name = settings.PORTAL_DRIVER
        source = "PORTAL_DRIVER"
    try:
        driver_class = import_string(DRIVERS[name])
    except (KeyError, TypeError):
        known = ", ".join(DRIVERS)
        raise DriverError(f"Unknown driver {name!r} in {source} (known: {known}).") from None
    return driver_class(environment, log, deadline=deadline, config=entry, memo=memo)
