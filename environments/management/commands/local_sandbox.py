"""Write the local sandbox's supervisord configuration and its command-driver entry."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand

from environments.demo.local_sandbox.supervisord import SLUG, LocalSandbox


class Command(BaseCommand):
    help = (
        "Write var/local-sandbox/supervisord.conf and the local-sandbox entry of "
        "PORTAL_DRIVERS_FILE (run_portal and seed_demo do this too)."
    )

    def handle(self, *args, **options):
        sandbox = LocalSandbox.from_settings()
        entry = sandbox.install()
        self.stdout.write(f"supervisord configuration: {sandbox.conf_path}")
        if entry is None:
            self.stdout.write(f"Driver entry {SLUG!r} written to {settings.PORTAL_DRIVERS_FILE}.")
        else:
            self.stdout.write(
                f"{settings.PORTAL_DRIVERS_FILE} is TOML, which the portal does not edit; "
                f"add this entry as the table [{SLUG}]:\n{json.dumps(entry, indent=2)}"
            )
        self.stdout.write("Start it by hand with: " + " ".join(sandbox.supervisord_command()))
