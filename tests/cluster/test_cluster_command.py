"""`make cluster` (python -m scripts.cluster) survives its hosts: a host whose whole
process group is killed is started again after a back-off, with a line that says so,
while nginx and the other host go on answering; Ctrl-C still stops everything.

The command runs here as a developer runs it, in a process of its own, on a database of
its own on the cluster fixture's PostgreSQL server and on a Redis database it claims.
"""

import os
import signal
import subprocess
import sys

from scripts.cluster import ROOT, group_alive, http_status, processes, signal_group
from tests.cluster.conftest import REDIS
from tests.live import free_ports, wait_for


def groups_of(pid):
    """The process groups of ``pid``'s descendants: one per host, and nginx's."""
    family, found = {pid}, set()
    changed = True
    while changed:
        changed = False
        for child, parent, group, _ in processes():
            if parent in family and child not in family:
                family.add(child)
                found.add(group)
                changed = True
    return found


def host_pid(output, number):
    """The pid of host ``number``'s run_portal as the command printed it last."""
    for line in reversed(output.read_text().splitlines()):
        if line.startswith(f"host {number} started again (pid "):
            return int(line.rsplit("pid ", 1)[1].rstrip(")."))
    return None


def test_a_killed_host_is_started_again_and_ctrl_c_stops_everything(cluster, tmp_path):
    nginx_port, environment_port, host_port, _ = free_ports(4)
    database_url = cluster.database_url.rsplit("/", 1)[0] + "/cluster_command"
    output = tmp_path / "output"
    env = dict(os.environ, SECRET_KEY="a key for this test only, long enough for Django")
    env.pop("DATABASE_URL", None)
    with output.open("w") as out:
        command = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scripts.cluster",
                "--port",
                str(nginx_port),
                # The two hosts take host_port and the next one; free_ports' fourth port
                # keeps the next one from being handed to anyone else meanwhile.
                "--host-port",
                str(host_port),
                "--environment-port",
                str(environment_port),
                "--database-url",
                database_url,
                "--redis",
                REDIS,
                "--state-dir",
                str(tmp_path / "state"),
                "--no-seed",
                "--restart-after",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    groups = set()
    try:
        assert wait_for(lambda: "Ctrl-C stops everything." in output.read_text(), 240), (
            output.read_text()
        )
        groups = groups_of(command.pid)
        assert len(groups) == 3, groups  # two hosts and nginx
        host_1 = next(
            pid
            for pid, _, group, cmdline in processes()
            if pid == group and "run_portal" in cmdline and f"127.0.0.1:{host_port} " in cmdline
        )

        signal_group(host_1, signal.SIGKILL)
        answers = []

        def back():
            # A generous timeout: a host that starts again has bound its port before its
            # workers serve, and this machine is shared.
            answers.append(http_status(f"http://127.0.0.1:{nginx_port}/healthz", timeout=60))
            pid = host_pid(output, 1)
            return pid is not None and http_status(f"http://127.0.0.1:{host_port}/healthz") == 200

        assert wait_for(back, 120, interval=0.2), output.read_text()
        text = output.read_text()
        assert "host 1 died (signal 9); starting it again in 1 s." in text
        # While host 1 was down and starting, nginx answered through host 2.
        assert answers and set(answers) == {200}, answers
        assert command.poll() is None, "the command stopped with its host"

        groups = groups_of(command.pid)
        assert len(groups) == 3, groups
        os.killpg(command.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's group
        assert command.wait(timeout=60) == 0, output.read_text()
        assert "Stopped the hosts and nginx." in output.read_text()
        assert wait_for(lambda: not any(group_alive(group) for group in groups), 10)
    finally:
        # Whatever a failed run left behind goes too.
        for group in groups | groups_of(command.pid):
            signal_group(group, signal.SIGKILL)
        signal_group(command.pid, signal.SIGKILL)
        command.wait(timeout=10)
