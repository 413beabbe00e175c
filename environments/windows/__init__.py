"""Scheduled maintenance windows: they turn maintenance mode on and off through the same
operations as the menu (lifecycle.py), and their calendar feeds (calendar.py)."""

from environments.models import check_period
from environments.windows.lifecycle import (
    VIA,
    cancel,
    end_now,
    end_window,
    planned_end,
    remind,
    schedule,
    start_now,
    start_window,
    sweep,
)
