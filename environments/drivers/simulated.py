"""The demo driver: takes a few seconds and changes nothing outside the portal.

It can be told to fail, so failure paths can be tried by hand and tested: every line
of the file ``SIMULATED_DRIVER_FAIL_FILE`` that reads ``<environment slug> <action>``
(``*`` matches any) makes that action fail until the line is removed.
"""

import time

from django.conf import settings

from environments.drivers.base import Driver, DriverError


class SimulatedDriver(Driver):
    name = "simulated"

    def restart_service(self, service_kind):
        self._act("restart_service", f"restarting {service_kind.upper()}")

    def set_maintenance_mode(self, enabled):
        self._act("set_maintenance_mode", f"turning maintenance mode {'on' if enabled else 'off'}")

    def _act(self, action, description):
        self.log.write(f"simulated: {description} on {self.environment.slug}")
        delay = settings.SIMULATED_DRIVER_DELAY
        if delay:
            time.sleep(delay)
        if self._told_to_fail(action):
            self.log.write(f"simulated: {action} failed as configured")
            raise DriverError(
                f"Simulated failure of {action} on {self.environment.slug} "
                f"(configured in {settings.SIMULATED_DRIVER_FAIL_FILE})."
            )
        self.log.write(f"simulated: {description}: done")

    def _told_to_fail(self, action):
        try:
            lines = settings.SIMULATED_DRIVER_FAIL_FILE.read_text().splitlines()
        except FileNotFoundError:
            return False
        for line in lines:
            parts = line.split()
            if len(parts) != 2:
                continue
            slug, failing_action = parts
            if slug in ("*", self.environment.slug) and failing_action in ("*", action):
                return True
        return False
