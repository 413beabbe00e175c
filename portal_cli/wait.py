"""--wait: follow an operation until it settles, showing the environment's status as it
changes ("Restarting service" → "Deployed"), and say how it ended in the exit code."""

import time

from portal_cli import exits

SUCCESS_OUTCOMES = {"succeeded", "rolled_back", "aborted"}
POLL_SECONDS = 0.5


class StoppedWaiting(Exception):
    """Ctrl-C while following ``operation``: the portal goes on with it."""

    def __init__(self, operation):
        super().__init__(operation["activity_id"])
        self.operation = operation


def follow(api, operation, *, timeout, progress):
    """Ask for the operation until it is no longer active or ``timeout`` seconds pass.

    ``progress(operation, changed)`` is told of every answer, ``changed`` when the
    environment's status differs from the one before. Returns the last answer and the
    exit code."""
    give_up = time.monotonic() + timeout
    shown = None
    while True:
        status = operation["environment_status_label"]
        progress(operation, status != shown)
        shown = status
        if not operation["active"]:
            ok = operation["outcome"] in SUCCESS_OUTCOMES
            return operation, exits.OK if ok else exits.FAILED
        if time.monotonic() >= give_up:
            return operation, exits.TIMEOUT
        time.sleep(POLL_SECONDS)
        operation = api.get(f"operations/{operation['activity_id']}")
