from django.core.management.base import BaseCommand

from environments.operations import expire_access


class Command(BaseCommand):
    help = "End every firewall rule and database account past its expiry (run from cron)."

    def handle(self, *args, **options):
        for grant in expire_access():
            self.stdout.write(f"{grant} on {grant.environment.slug}: removal queued")
