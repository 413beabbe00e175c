"""The command lives in environments/demo/seed_scale.py; Django finds commands only here."""

from environments.demo.seed_scale import Command  # noqa: F401
