import contextlib
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from environments.sso.client import enabled
from environments.sso.sync import sync_identities


class Command(BaseCommand):
    help = (
        "Read the groups of every single sign-on user with a live session, an active grant "
        "or a usable API token again at the identity provider (with the refresh token kept "
        "at sign-in), and apply them as a sign-in does; without a refresh token, end what "
        "rests on groups read longer ago than PORTAL_OIDC_GROUPS_MAX_AGE_HOURS; deactivate "
        "users the provider no longer knows (docs/sso.md). Run from cron, or with --loop."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--loop",
            type=float,
            nargs="?",
            const=settings.OIDC_SYNC_SECONDS,
            metavar="SECONDS",
            help="Keep running, refreshing every SECONDS (by default "
            "PORTAL_OIDC_SYNC_SECONDS, 900).",
        )

    def handle(self, *args, loop=None, **options):
        if not enabled():
            raise CommandError("Single sign-on is not configured (PORTAL_OIDC_ISSUER).")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                for line in sync_identities():
                    self.stdout.write(line)
                if not loop:
                    return
                time.sleep(loop)
