"""What the command driver runs against the local sandbox.

    python -m environments.demo.local_sandbox.ctl maintenance on --state-dir DIR
    python -m environments.demo.local_sandbox.ctl health --url URL [--started-after ISO]
                                                              [--maintenance on|off]

``health`` passes (exit 0, printing what the process reported) only when the process
answers at its URL and, if asked, was started after the given time (so an old
process still answering does not count as restarted) and reports the given
maintenance mode. Otherwise it says why on stderr and exits 1.
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from environments.demo.local_sandbox.service import maintenance_flag


def set_maintenance(state_dir, state):
    flag = maintenance_flag(state_dir)
    if state == "on":
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        flag.touch()
    else:
        flag.unlink(missing_ok=True)
    print(f"Maintenance flag {flag} is {state}.")
    return 0


def check_health(url, *, started_after=None, maintenance=None, timeout=2.0):
    """(what the process at ``url`` reported or None, its problem or None if healthy)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            status = json.load(response)
    except urllib.error.HTTPError as exc:
        return None, f"{url} answered HTTP {exc.code}."
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{url} does not answer: {reason}."
    except ValueError as exc:
        return None, f"{url} did not answer JSON: {exc}."
    if not isinstance(status, dict) or not {"service", "pid", "started_at"} <= status.keys():
        return None, f"{url} did not answer as a local sandbox service: {status!r}."
    name = str(status["service"]).upper()
    if started_after is not None:
        started_at = datetime.fromisoformat(status["started_at"])
        if started_at <= started_after:
            return status, (
                f"{name} still answers from a process started before the restart "
                f"(pid {status['pid']}, started {status['started_at']})."
            )
    if maintenance is not None:
        reported = "on" if status.get("maintenance") else "off"
        if reported != maintenance:
            return status, f"{name} reports maintenance mode {reported}, not {maintenance}."
    return status, None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    flag = commands.add_parser("maintenance", help="turn the maintenance flag on or off")
    flag.add_argument("state", choices=["on", "off"])
    flag.add_argument("--state-dir", required=True, type=Path)
    health = commands.add_parser("health", help="check a process's health URL")
    health.add_argument("--url", required=True)
    health.add_argument("--started-after", type=datetime.fromisoformat, metavar="ISO_TIME")
    health.add_argument("--maintenance", choices=["on", "off"])
    health.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)

    if args.command == "maintenance":
        return set_maintenance(args.state_dir, args.state)
    status, problem = check_health(
        args.url,
        started_after=args.started_after,
        maintenance=args.maintenance,
        timeout=args.timeout,
    )
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(json.dumps(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
