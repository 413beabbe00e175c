"""Drivers act on environments for the background tasks; see ``base.Driver``."""

from django.conf import settings
from django.utils.module_loading import import_string

from environments.drivers.base import Driver, DriverError, OperationLog

DRIVERS = {
    "simulated": "environments.drivers.simulated.SimulatedDriver",
}

__all__ = ["Driver", "DriverError", "OperationLog", "get_driver"]


def get_driver(environment, log):
    name = settings.PORTAL_DRIVER
    try:
        driver_class = import_string(DRIVERS[name])
    except KeyError:
        raise DriverError(f"Unknown driver {name!r} (PORTAL_DRIVER).") from None
    return driver_class(environment, log)
