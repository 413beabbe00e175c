"""Run the portal: gunicorn and the task worker together, stopped together."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the portal with gunicorn and run the db_worker beside it; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--threads", type=int, default=4)

    def handle(self, *args, bind, workers, threads, **options):
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        commands = {
            "gunicorn": [
                python,
                "-m",
                "gunicorn",
                "lcs_portal.wsgi",
                "--bind",
                bind,
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--access-logfile",
                "-",
                "--graceful-timeout",
                "5",
            ],
            "db_worker": [
                python,
                manage,
                "db_worker",
                "--no-reload",
                "--interval",
                "0.5",
                "--queue-name",
                "*",
            ],
        }
        children = {}
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, command in commands.items():
            children[name] = subprocess.Popen(command, cwd=settings.BASE_DIR, env=os.environ)
        self.stdout.write(f"Portal running on http://{bind}/ (Ctrl-C stops it).")
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with {child.returncode}; stopping.")
                        stopping = True
                time.sleep(0.3)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            deadline = time.monotonic() + 10
            for child in children.values():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
        self.stdout.write("Stopped gunicorn and db_worker.")
