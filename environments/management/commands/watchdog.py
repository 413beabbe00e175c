import contextlib
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from environments import windows
from environments.models import IdempotencyKey
from environments.notify import notifications, webhooks
from environments.operations import (
    expire_access,
    fail_overdue_operations,
    requeue_lost_steps,
    start_health_checks,
)

#: Seconds between two prunings of finished task rows.
PRUNE_EVERY = 3600


class Command(BaseCommand):
    help = (
        "Fail every operation whose deadline has passed, hand out again the steps whose "
        "task was lost, prune finished task rows and API idempotency keys older than a day, "
        "end every access grant past its expiry, start and end maintenance windows that "
        "are due, hand out mails and webhook events whose task was lost, and start the "
        "periodic health check of each service that has one but no task for it (run "
        "from cron, or with --loop)."
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
            for pk, number, kind in requeue_lost_steps():
                self.stdout.write(f"Step {number} of operation {pk} ({kind}) handed out again.")
            self.prune_task_results()
            IdempotencyKey.objects.stale().delete()
            for grant in expire_access():
                self.stdout.write(f"{grant} on {grant.environment.slug}: removal queued")
            self.sweep_windows_and_notifications()
            for service in start_health_checks():
                self.stdout.write(f"Health checks of {service} started.")
            if not loop:
                return
            time.sleep(loop)

    def prune_task_results(self):
        """Each step of an operation leaves a task row: keep the finished ones a while."""
        now = time.monotonic()
        if now - getattr(self, "pruned_at", -PRUNE_EVERY) < PRUNE_EVERY:
            return
        self.pruned_at = now
        days = str(settings.TASK_RESULTS_KEEP_DAYS)
        call_command("prune_db_task_results", "--min-age-days", days, verbosity=0)

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
