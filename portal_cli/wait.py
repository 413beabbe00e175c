"""--wait: follow an operation until it settles, showing the environment's status as it
changes ("Restarting service" → "Deployed"), and say how it ended in the exit code."""

import time

#: Exit codes of every command that acts (docs/api.md).
EXIT_OK = 0
EXIT_FAILED = 1  # the operation failed (or the portal could not be reached)
EXIT_REFUSED = 2  # the portal refused the request: nothing was done
EXIT_TIMEOUT = 3  # still running when --timeout passed; it goes on

SUCCESS_OUTCOMES = {"succeeded", "rolled_back", "aborted"}
POLL_SECONDS = 0.5


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
            return operation, EXIT_OK if ok else EXIT_FAILED
        if time.monotonic() >= give_up:
            return operation, EXIT_TIMEOUT
        time.sleep(POLL_SECONDS)
        operation = api.get(f"operations/{operation['activity_id']}")
