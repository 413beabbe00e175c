"""A 3-minute chaos soak (scripts/soak.py) in the PostgreSQL run of `make test`: two hosts
behind nginx on a PostgreSQL and a Redis of the soak's own, simulated users acting
through nginx, and every kind of fault once. It checks the invariants only: how many
requests failed while a fault lasted depends on the machine's load, so those counts
are in the report, not asserted. The seed fixes the plan of faults, not its timing.
"""

import json
import subprocess
import sys

from scripts.cluster import ROOT


def test_a_three_minute_soak_with_every_fault_keeps_every_invariant(tmp_path):
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "scripts.soak", "--minutes", "3", "--seed", "1", "--ci"]
        + ["--report", str(report), "--state-dir", str(tmp_path / "state")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert report.exists(), result.stdout[-5000:] + result.stderr[-5000:]
    invariants = json.loads(report.read_text())["invariants"]
    failed = {name: found for name, found in invariants.items() if not found["pass"]}
    assert not failed, json.dumps(failed, indent=2)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    faults = {fault["kind"] for fault in json.loads(report.read_text())["faults"]}
    assert faults == {
        "kill_host",
        "kill_worker",
        "freeze_host",
        "restart_postgres",
        "stop_redis",
        "webhook",
    }
