"""The demo driver: changes nothing outside the portal, and takes a while like a real one.

Its action is done SIMULATED_DRIVER_DELAY seconds after it began; until then each step
checks once, every SIMULATED_DRIVER_POLL seconds, as a health check would. It can be
told to fail, so failure paths can be tried by hand and tested: every line of the file
``SIMULATED_DRIVER_FAIL_FILE`` that reads ``<environment slug> <action>`` makes that
action fail until the line is removed. The action is the driver's name
(``restart_service``, ``set_maintenance_mode``) or the API's (``enable_maintenance``,
``disable_maintenance``), and ``*`` matches any environment or action; ``#`` starts a
comment. A line that matches nothing is logged as a warning when the file is read (and
``run_portal`` prints it at start).
"""

import logging
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from environments.drivers.base import Driver, DriverError, Later
from environments.models import Environment

logger = logging.getLogger(__name__)

#: The names a line may give an action: the driver's, then the API's.
ACTIONS = ("restart_service", "set_maintenance_mode", "enable_maintenance", "disable_maintenance")


class SimulatedDriver(Driver):
    name = "simulated"

    def restart_service(self, service_kind, step="act"):
        return self._act(step, ["restart_service"], f"restarting {service_kind.upper()}")

    def set_maintenance_mode(self, enabled, step="act"):
        state = "on" if enabled else "off"
        names = ["set_maintenance_mode", "enable_maintenance" if enabled else "disable_maintenance"]
        return self._act(step, names, f"turning maintenance mode {state}")

    def _act(self, step, names, description):
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
        action = names[0]
        if self._told_to_fail(names):
            self.log.write(f"simulated: {action} failed as configured")
            raise DriverError(
                f"Simulated failure of {action} on {self.environment.slug} "
                f"(configured in {settings.SIMULATED_DRIVER_FAIL_FILE})."
            )
        self.log.write(f"simulated: {description}: done")
        return None

    def _told_to_fail(self, names):
        failures, problems = read_failures()
        for problem in problems:
            logger.warning("%s", problem)
        return any(
            slug in ("*", self.environment.slug) and action in ("*", *names)
            for slug, action in failures
        )


def read_failures():
    """The failure file's lines as (slug, action) pairs, and a warning for each line that
    matches nothing (not two words, an unknown action, no such environment)."""
    path = settings.SIMULATED_DRIVER_FAIL_FILE
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return [], []
    entries = []
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if words:
            entries.append((number, line.strip(), words))
    named = {words[0] for _, _, words in entries if len(words) == 2}
    slugs = set(Environment.objects.filter(slug__in=named).values_list("slug", flat=True))
    failures, problems = [], []
    for number, text, words in entries:
        where = f"{path}, line {number} ({text!r})"
        if len(words) != 2:
            problems.append(f"{where} matches nothing: write '<environment slug> <action>'.")
        elif words[1] not in ("*", *ACTIONS):
            problems.append(
                f"{where} matches nothing: the action is one of {', '.join(ACTIONS)} or *."
            )
        elif words[0] != "*" and words[0] not in slugs:
            problems.append(f"{where} matches nothing: there is no environment {words[0]!r}.")
        else:
            failures.append((words[0], words[1]))
    return failures, problems
