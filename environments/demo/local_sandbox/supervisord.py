"""The local sandbox's supervisord: its configuration, the command-driver entry that acts
on it, and starting and stopping it.

Everything lives in one directory (``var/local-sandbox/`` by default): the
configuration, the unix socket supervisorctl talks to, the logs and the services'
state (the maintenance flag). Nothing is written to /etc.
"""

import json
import shlex
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

SLUG = "local-sandbox"
SERVICES = ("aos", "dixf", "mr")
PROJECT_DIR = Path(__file__).resolve().parents[3]
# A unix socket's path must fit in 108 bytes (sun_path).
MAX_SOCKET_PATH = 100


def _ini(value):
    """A value for supervisord's configuration, where % starts an expansion."""
    return str(value).replace("%", "%%")


@dataclass(frozen=True)
class LocalSandbox:
    directory: Path
    ports: dict = field(default_factory=lambda: {"aos": 8101, "dixf": 8102, "mr": 8103})
    python: str = sys.executable
    # How long a service takes to listen after it starts, and how long supervisord
    # waits before it calls a start successful: a service that listens after
    # supervisorctl returns is what the health check is there for.
    startup_delay: float = 2.0
    startsecs: int = 1
    # Seconds the command driver gives each command, and between health checks.
    timeout: float = 20.0
    # A check a second, each for at most that long (health_timeout): the check is a
    # Python process of its own, which a loaded machine starts slowly.
    health_interval: float = 1.0

    @classmethod
    def from_settings(cls):
        ports = settings.PORTAL_LOCAL_SANDBOX_PORTS
        if len(ports) != len(SERVICES):
            raise ValueError(
                "PORTAL_LOCAL_SANDBOX_PORTS must name three ports: AOS, DIXF and MR, "
                f"in that order (it names {len(ports)})."
            )
        return cls(
            directory=Path(settings.PORTAL_LOCAL_SANDBOX_DIR).resolve(),
            ports=dict(zip(SERVICES, ports, strict=True)),
        )

    # --- Where things are ------------------------------------------------------------

    @property
    def conf_path(self):
        return self.directory / "supervisord.conf"

    @property
    def socket_path(self):
        return self.directory / "supervisor.sock"

    @property
    def state_dir(self):
        return self.directory / "state"

    @property
    def log_dir(self):
        return self.directory / "logs"

    def url(self, service):
        return f"http://127.0.0.1:{self.ports[service]}/"

    def health_url(self, service):
        return f"{self.url(service)}health"

    # --- Commands -----------------------------------------------------------------------

    def supervisord_command(self):
        return [self.python, "-m", "supervisor.supervisord", "-c", str(self.conf_path)]

    def supervisorctl(self, *args):
        return [self.python, "-m", "supervisor.supervisorctl", "-c", str(self.conf_path), *args]

    def _ctl(self, *args):
        return [self.python, "-m", "environments.demo.local_sandbox.ctl", *args]

    def service_command(self, service):
        return [
            self.python,
            "-m",
            "environments.demo.local_sandbox.service",
            "--name",
            service,
            "--port",
            str(self.ports[service]),
            "--state-dir",
            str(self.state_dir),
            "--startup-delay",
            f"{self.startup_delay:g}",
        ]

    def driver_config(self):
        """The environment's entry in the driver configuration file."""
        return {
            "driver": "command",
            "cwd": str(PROJECT_DIR),
            "timeout": self.timeout,
            "health_interval": self.health_interval,
            "restart": self.supervisorctl("restart", "{service}"),
            # Healthy means the process answers, and is a new one: started after the
            # restart began.
            "health": {
                service: self._ctl(
                    "health", "--url", self.health_url(service), "--started-after", "{since}"
                )
                for service in SERVICES
            },
            "maintenance_on": self._ctl("maintenance", "on", "--state-dir", str(self.state_dir)),
            "maintenance_off": self._ctl("maintenance", "off", "--state-dir", str(self.state_dir)),
            # Maintenance mode is the AOS's: done when the AOS reports it.
            "maintenance_health": self._ctl(
                "health", "--url", self.health_url("aos"), "--maintenance", "{maintenance}"
            ),
        }

    # --- Files ---------------------------------------------------------------------------

    def render_supervisord_conf(self):
        socket = _ini(self.socket_path)
        lines = [
            "; Written by the portal (environments/demo/local_sandbox/supervisord.py);",
            "; changes are overwritten when it starts.",
            "[unix_http_server]",
            f"file={socket}",
            "chmod=0700",
            "",
            "[supervisord]",
            "nodaemon=true",
            f"logfile={_ini(self.log_dir / 'supervisord.log')}",
            "logfile_maxbytes=1MB",
            "logfile_backups=1",
            f"pidfile={_ini(self.directory / 'supervisord.pid')}",
            f"childlogdir={_ini(self.log_dir)}",
            f"directory={_ini(PROJECT_DIR)}",
            "minfds=256",
            "minprocs=32",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{socket}",
        ]
        for service in SERVICES:
            lines += [
                "",
                f"[program:{service}]",
                f"command={_ini(shlex.join(self.service_command(service)))}",
                f"directory={_ini(PROJECT_DIR)}",
                "autostart=true",
                "autorestart=true",
                f"startsecs={self.startsecs}",
                "stopsignal=TERM",
                "stopwaitsecs=5",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={_ini(self.log_dir / f'{service}.log')}",
                "stdout_logfile_maxbytes=1MB",
                "stdout_logfile_backups=1",
                'environment=PYTHONUNBUFFERED="1"',
            ]
        return "\n".join(lines) + "\n"

    def write_supervisord_conf(self):
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise ValueError(
                f"The local sandbox directory {self.directory} is too deep for a unix "
                f"socket; set PORTAL_LOCAL_SANDBOX_DIR to a shorter path."
            )
        for directory in (self.directory, self.state_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.render_supervisord_conf())
        return self.conf_path

    def install(self):
        """Write the supervisord configuration and the environment's driver entry.

        Returns the driver entry when the configuration file is TOML (which the
        portal leaves to its owner), else None.
        """
        from environments.drivers import config

        self.write_supervisord_conf()
        entry = self.driver_config()
        if config.write_environment(SLUG, entry):
            return None
        return entry

    # --- The process ---------------------------------------------------------------------

    def start(self, *, quiet=False):
        output = subprocess.DEVNULL if quiet else None
        return subprocess.Popen(
            self.supervisord_command(), cwd=PROJECT_DIR, stdout=output, stderr=output
        )

    def status(self, service, timeout=1.0):
        """What the service reports at its health URL, or None when it does not answer."""
        url = self.health_url(service)  # http://127.0.0.1 only
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
                return json.load(response)
        except (OSError, ValueError):
            return None

    def wait_until_up(self, process=None, timeout=30.0):
        """True once every service answers; False at the timeout or if supervisord exits."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if process is not None and process.poll() is not None:
                return False
            if all(self.status(service) is not None for service in SERVICES):
                return True
            time.sleep(0.1)
        return False

    @staticmethod
    def stop(process, timeout=15.0):
        """Stop supervisord, which stops its services first (SIGTERM)."""
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
