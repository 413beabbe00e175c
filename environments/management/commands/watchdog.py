import contextlib
import time

from django.core.management.base import BaseCommand

from environments import windows
from environments.notify import notifications, webhooks
from environments.operations import expire_access, fail_overdue_operations


class Command(BaseCommand):
    help = (
        "Fail every operation whose deadline has passed, end every access grant past "
        "its expiry, start and end maintenance windows that are due and hand out mails "
        "and webhook events whose task was lost (run from cron, or with --loop)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--loop",
            type=float,
            metavar="SECONDS",
            help="Keep running, checking every SECONDS.",
        )

    def handle(self, *args, loop=None, **options):
        # Ctrl-C in run_portal's terminal reaches every process: stop quietly.
        with contextlib.suppress(KeyboardInterrupt):
            self.watch(loop)

    def watch(self, loop):
        while True:
            for operation in fail_overdue_operations():
                self.stdout.write(
                    f"Failed {operation.activity} on {operation.environment.slug} "
                    f"({operation.activity_id}): deadline passed."
                )
            for grant in expire_access():
                self.stdout.write(f"{grant} on {grant.environment.slug}: removal queued")
            self.sweep_windows_and_notifications()
            if not loop:
                return
            time.sleep(loop)

    def sweep_windows_and_notifications(self):
        """Maintenance windows that are due start or end (their tasks may be lost), and
        mails and webhook events whose task was lost are handed out again."""
        for window in windows.sweep():
            self.stdout.write(
                f"{window} on {window.environment.slug}: {window.get_state_display()}"
            )
        notifications.warn_expiring_access()
        notifications.hand_out_overdue()
        webhooks.hand_out_overdue()
