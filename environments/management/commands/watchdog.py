import time

from django.core.management.base import BaseCommand

from environments.operations import fail_overdue_operations


class Command(BaseCommand):
    help = "Fail every Maintain operation whose deadline has passed (run from cron or --loop)."

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
            if not loop:
                return
            time.sleep(loop)
