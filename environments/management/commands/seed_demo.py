"""The command lives in environments/demo/seed_demo.py; Django finds commands only here."""

from environments.demo.seed_demo import Command  # noqa: F401
