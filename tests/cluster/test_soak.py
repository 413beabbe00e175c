"""A 3-minute chaos soak (scripts/soak.py) in the PostgreSQL run of `make test`: two hosts
behind nginx on a PostgreSQL and a Redis of the soak's own, simulated users acting
through nginx, and every kind of fault once. It checks the invariants only: how many
requests failed while a fault lasted depends on the machine's load, so those counts
are in the report, not asserted. The seed fixes the plan of faults, not its timing.
"""

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from scripts.cluster import ROOT
from scripts.soak import processes_carrying, stop_driver_commands


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


def test_ctrl_c_in_the_middle_of_a_fault_stops_everything_the_soak_started(tmp_path):
    state = tmp_path / "state"
    # A one-minute plan: its first fault comes some 10 s after the cluster is up.
    soak = subprocess.Popen(
        [sys.executable, "-m", "scripts.soak", "--minutes", "1", "--seed", "1", "--ci"]
        + ["--report", str(tmp_path / "report.json"), "--state-dir", str(state)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    said = ""
    try:
        for line in soak.stdout:
            said += line
            if "injecting" in line:
                break
        soak.send_signal(signal.SIGINT)
        said += soak.communicate(timeout=300)[0]
        postgres_dir, postgres_port, redis_port = re.search(
            r"PostgreSQL in (\S+) on port (\d+), Redis on port (\d+)", said
        ).groups()
        cluster_ports = re.findall(r"http://127\.0\.0\.1:(\d+)", said.split("Cluster up")[1])
        ports = [int(port) for port in (postgres_port, redis_port, *cluster_ports)]
        answering = [port for port in ports if answers(port)]
        postgres_left = Path(postgres_dir).exists()
        # The hosts' processes (run_portal, gunicorn, the workers) carry the state folder
        # in their environment.
        processes_left = processes_carrying(state)
    finally:
        # What a failed clean-up left would load every test after this one.
        soak.kill()
        stop_driver_commands(state)
        subprocess.run(["pkill", "-KILL", "-f", str(state)], check=False)  # nginx, Redis
        if found := re.search(r"PostgreSQL in (\S+)", said):
            subprocess.run(["pkill", "-QUIT", "-f", found.group(1)], check=False)

    assert soak.returncode == 130, said[-5000:]
    assert "Interrupted: stopping the cluster, Redis and PostgreSQL" in said
    assert not postgres_left
    assert not answering, f"ports {answering} still answer"
    assert not processes_left, said[-5000:]


def answers(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
