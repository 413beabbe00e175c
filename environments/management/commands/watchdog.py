import time

from django.core.management.base import BaseCommand

from environments.operations import expire_access, fail_overdue_operations


class Command(BaseCommand):
    help = (
        "Fail every operation whose deadline has passed and end every access grant past "
        "its expiry (run from cron, or with --loop)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--loop",
            type=float,
            metavar="SECONDS",
            help="Keep running, checking every SECONDS.",
        )

    def handle(self, *args, loop=None, **options):
        while True:
            for operation in fail_overdue_operations():
                self.stdout.write(
                    f"Failed {operation.activity} on {operation.environment.slug} "
                    f"({operation.activity_id}): deadline passed."
                )
            for grant in expire_access():
                self.stdout.write(f"{grant} on {grant.environment.slug}: removal queued")
            if not loop:
                return
            time.sleep(loop)
