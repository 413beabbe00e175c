"""The demo driver: changes nothing outside the portal, and takes a while like a real one.

Its action is done SIMULATED_DRIVER_DELAY seconds after it began; until then each step
checks once, every SIMULATED_DRIVER_POLL seconds, as a health check would. It can be
told to fail, so failure paths can be tried by hand and tested: every line of the file
``SIMULATED_DRIVER_FAIL_FILE`` that reads ``<environment slug> <action>`` (``*`` matches
any) makes that action fail until the line is removed.
"""

from datetime import datetime

from django.conf import settings
from django.utils import timezone

from environments.drivers.base import Driver, DriverError, Later


class SimulatedDriver(Driver):
    name = "simulated"

    def restart_service(self, service_kind, step="act"):
        return self._act(step, "restart_service", f"restarting {service_kind.upper()}")

    def set_maintenance_mode(self, enabled, step="act"):
        state = "on" if enabled else "off"
        return self._act(step, "set_maintenance_mode", f"turning maintenance mode {state}")

    def _act(self, step, action, description):
        now = timezone.now()
        if step == "act":
            self.log.write(f"simulated: {description} on {self.environment.slug}")
            self.memo["began"] = now.isoformat()
        waited = (now - datetime.fromisoformat(self.memo["began"])).total_seconds()
        delay = settings.SIMULATED_DRIVER_DELAY
        if waited < delay:
            if step != "act":
                self.log.write(f"simulated: not done yet ({waited:.0f} of {delay:g} s)")
            return Later("check", min(settings.SIMULATED_DRIVER_POLL, delay - waited))
        if self._told_to_fail(action):
            self.log.write(f"simulated: {action} failed as configured")
            raise DriverError(
                f"Simulated failure of {action} on {self.environment.slug} "
                f"(configured in {settings.SIMULATED_DRIVER_FAIL_FILE})."
            )
        self.log.write(f"simulated: {description}: done")
        return None

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
