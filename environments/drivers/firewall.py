"""Firewall drivers for Enable access: a rule lets an IP range reach the database.

``simulated`` (the default) only logs; ``command`` runs the argument lists in
PORTAL_FIREWALL_APPLY and PORTAL_FIREWALL_REMOVE (JSON lists, run without a shell),
with ``{name}``, ``{cidr}``, ``{environment}`` and ``{rule}`` filled in.
"""

import json
import os

from django.conf import settings

from environments.drivers.base import DriverError
from environments.drivers.command import run_command

COMMAND_TIMEOUT = 60


class SimulatedFirewallDriver:
    name = "simulated"

    def __init__(self, environment, log):
        self.environment = environment
        self.log = log

    def apply_firewall_rule(self, rule):
        self.log.write(f"simulated firewall: allow {rule.cidr} to {self._target()} ({rule.name})")

    def remove_firewall_rule(self, rule):
        self.log.write(f"simulated firewall: remove the rule for {rule.cidr} ({rule.name})")

    def _target(self):
        return f"{self.environment.database_server}/{self.environment.database_name}"


class CommandFirewallDriver(SimulatedFirewallDriver):
    name = "command"

    def apply_firewall_rule(self, rule):
        self._run("PORTAL_FIREWALL_APPLY", rule)

    def remove_firewall_rule(self, rule):
        self._run("PORTAL_FIREWALL_REMOVE", rule)

    def _run(self, variable, rule):
        try:
            template = json.loads(os.environ.get(variable, ""))
        except ValueError:
            template = None
        if not (
            isinstance(template, list) and template and all(isinstance(a, str) for a in template)
        ):
            raise DriverError(f"{variable} must be a JSON list of arguments.")
        values = {
            "{name}": rule.name,
            "{cidr}": rule.cidr,
            "{environment}": self.environment.slug,
            "{rule}": str(rule.pk),
        }
        argv = [_fill(argument, values) for argument in template]
        result = run_command(argv, timeout=COMMAND_TIMEOUT)
        self.log.write(f"$ {result.command}: {result.outcome()}")
        for stream in (result.stdout, result.stderr):
            if stream.size:
                self.log.write(f"{stream.name}:\n{stream.text}")
        if not result.ok:
            raise DriverError(f"Firewall command {result.problem()}")


def _fill(argument, values):
    for placeholder, value in values.items():
        argument = argument.replace(placeholder, value)
    return argument


FIREWALL_DRIVERS = {"simulated": SimulatedFirewallDriver, "command": CommandFirewallDriver}


def get_firewall_driver(environment, log):
    try:
        driver_class = FIREWALL_DRIVERS[settings.PORTAL_FIREWALL_DRIVER]
    except KeyError:
        raise DriverError(
            f"Unknown firewall driver {settings.PORTAL_FIREWALL_DRIVER!r} (PORTAL_FIREWALL_DRIVER)."
        ) from None
    return driver_class(environment, log)
