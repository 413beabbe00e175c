"""python -m bench [pages|sessions|workers|techniques|operations|all] — see docs/performance.md."""

import argparse
import json
import shlex
import sys
import time

from bench import common, report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["pages", "sessions", "workers", "techniques", "operations", "all"],
        help="pages: the HTTP table; sessions: baseline B under each session set-up; "
        "workers: db_worker throughput; techniques: what each cache buys, in one process; "
        "operations: many operations at once, each a chain of steps (printed, not written "
        "to the docs); all: pages, techniques and workers (default)",
    )
    parser.add_argument("--environments", type=int, default=1000)
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per URL")
    parser.add_argument("--warmup", type=int, default=3, help="seconds per URL before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="each URL keeps its best round")
    parser.add_argument("--connections", type=int, default=None, help="8; 16 with --sqlite")
    parser.add_argument("--wrk-threads", type=int, default=None, help="1; 2 with --sqlite")
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="pages: the embedded default instead, `manage.py run_portal` on SQLite with "
        "the demo data, as the README's `make run` starts it",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    # The production set-up docs/performance.md recommends: sessions read from Redis.
    parser.add_argument("--session-engine", default="cached_db")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--only", nargs="*", help="measure only these rows (e.g. A B poll)")
    parser.add_argument("--skip-csv", action="store_true")
    parser.add_argument("--restarts", type=int, default=1000, help="workers: operations queued")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave docs/performance.md alone"
    )
    parser.add_argument("--operations", type=int, default=200, help="operations: N at once")
    parser.add_argument(
        "--large", type=int, default=1000, help="operations: the figure runs' N (0: skip them)"
    )
    parser.add_argument("--health-after", type=float, default=60, help="operations: T seconds")
    parser.add_argument("--poll", type=float, default=10, help="operations: P seconds")
    parser.add_argument(
        "--databases", nargs="+", default=["postgres", "sqlite"], choices=["postgres", "sqlite"]
    )
    args = parser.parse_args(argv)
    if args.what == "operations":
        from bench import operations

        figures = operations.run(args)
        common.VAR_DIR.mkdir(parents=True, exist_ok=True)
        dump = common.VAR_DIR / f"results-operations-{time.strftime('%Y%m%d-%H%M%S')}.json"
        dump.write_text(json.dumps(figures, indent=2, default=str))
        common.log(f"raw figures: {dump}")
        return
    args.connections = args.connections or (16 if args.sqlite else 8)
    args.wrk_threads = args.wrk_threads or (2 if args.sqlite else 1)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)

    results = {
        "command": command.strip(),
        "machine": common.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    if args.what in ("pages", "all"):
        from bench import http

        if args.sqlite:
            results["sqlite"] = http.run_sqlite(args)
        else:
            results["pages"] = http.run(args)
    if args.what == "sessions":
        from bench import http

        results["sessions"] = http.run_sessions(args)
    if args.what in ("techniques", "all"):
        from bench import http

        results["techniques"] = http.run_techniques(args)
    if args.what in ("workers", "all"):
        from bench import workers

        results["workers"] = workers.run(args)

    common.VAR_DIR.mkdir(parents=True, exist_ok=True)
    dump = common.VAR_DIR / f"results-{args.what}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    dump.write_text(json.dumps(results, indent=2, default=str))
    text = report.render(results)
    print(text)
    if not args.no_write and not args.only:
        report.write(results)
        common.log(f"wrote {report.DOC.relative_to(common.BASE_DIR)} (raw figures: {dump})")


if __name__ == "__main__":
    main()
