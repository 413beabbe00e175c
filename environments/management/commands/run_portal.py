"""The command lives in environments/demo/run_portal.py; Django finds commands only here."""

from environments.demo.run_portal import Command  # noqa: F401
