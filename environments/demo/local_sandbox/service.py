"""One service of the local sandbox: a small HTTP process that says who it is.

    python -m environments.demo.local_sandbox.service --name aos --port 8101 --state-dir DIR

``GET /health`` answers JSON ``{"service", "pid", "started_at", "maintenance"}``.
Maintenance mode is the file ``DIR/maintenance``, read on every request (``ctl
maintenance on|off`` creates and removes it). ``--startup-delay`` makes the process
take that long before it listens, as a real service takes time to come up.

Standard library only, so it starts fast and needs no Django settings.
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAINTENANCE_FLAG = "maintenance"


def maintenance_flag(state_dir):
    return Path(state_dir) / MAINTENANCE_FLAG


def make_handler(name, started_at, flag):
    class Handler(BaseHTTPRequestHandler):
        server_version = f"local-sandbox-{name}"

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            maintenance = flag.exists()
            if path == "/health":
                status = {
                    "service": name,
                    "pid": os.getpid(),
                    "started_at": started_at,
                    "maintenance": maintenance,
                }
                self._answer(200, "application/json", json.dumps(status))
            elif path == "/":
                mode = "on" if maintenance else "off"
                text = (
                    f"{name.upper()} of the local sandbox: pid {os.getpid()}, started "
                    f"{started_at}, maintenance mode {mode}.\n"
                )
                self._answer(200, "text/plain; charset=utf-8", text)
            else:
                self._answer(404, "text/plain; charset=utf-8", "Not found.\n")

        def _answer(self, code, content_type, body):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            # Health checks come every second or so; they would drown the rest.
            if not self.path.startswith("/health"):
                super().log_message(format, *args)

    return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="aos, dixf or mr")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--startup-delay", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args(argv)

    started_at = datetime.now(UTC).isoformat()
    if args.startup_delay:
        time.sleep(args.startup_delay)
    handler = make_handler(args.name, started_at, maintenance_flag(args.state_dir))
    server = ThreadingHTTPServer((args.host, args.port), handler)
    print(
        f"{args.name.upper()} (pid {os.getpid()}) answers on http://{args.host}:{args.port}/health",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
