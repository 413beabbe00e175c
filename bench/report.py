"""The benchmark's tables, and their place in docs/performance.md.

The doc's prose is written by people; each table sits between markers
(``<!-- bench:pages -->`` ... ``<!-- /bench:pages -->``) that a run replaces.
"""

import re

from bench.common import BASE_DIR

DOC = BASE_DIR / "docs" / "performance.md"

# (text, row, factor, of): the row's requests per second must be at least factor x of's.
RATIO_BUDGETS = [
    ("Status poll revalidated (304) ≥ 0.8 × B", "poll_304", 0.8, "B"),
    ("Forward auth ≥ 0.8 × B", "forward_auth", 0.8, "B"),
    ("Details page ≥ 0.4 × B", "details", 0.4, "B"),
    ("Environment list ≥ 0.4 × B", "list", 0.4, "B"),
    ("History page 1 ≥ 0.2 × B", "history_1", 0.2, "B"),
    ("B ≥ 0.4 × A (aim)", "B", 0.4, "A"),
]
CSV_RSS_BUDGET_MIB = 150


def _machine(results):
    m = results["machine"]
    return (
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux "
        f"{m['kernel']}; PostgreSQL {m['postgresql']}; Python {m['python']}, "
        f"Django {m['django']}. Run {results['date']} at commit {m.get('commit', '?')}: "
        f"`{results['command']}`."
    )


def _ratio(value, base):
    return f"{value / base:.2f}" if base else "–"


def pages_table(results, section="pages"):
    run = results[section]
    pages = run["pages"]
    server = run["server"]
    a = pages["A"]["rps"]
    b = pages["B"]["rps"]
    info = run["info"]
    lines = [
        _machine(results),
        "",
        f"Data: {info['environments']:,} environments, {info['history_rows']:,} history rows "
        f"visible to the signed-in user ({info['username']}). gunicorn {server['workers']} "
        f"{server['worker_class']} workers × {server['threads']} threads, DEBUG off; sessions: "
        f"`{run['session_engine']}`{' on ' + run['cache_url'] if run['cache_url'] else ''}. "
        f"wrk on 127.0.0.1, {run['connections']} connections, {run['warmup']} s warm-up then "
        f"{run['duration']} s per URL, best of {run['rounds']} rounds (figures of that round). "
        "CPU is the gunicorn workers' user + system time per request.",
        "",
        "| page | req/s | p50 ms | p99 ms | CPU ms/req | × A | × B |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in pages.values():
        lines.append(
            f"| {row['label']} | {row['rps']:,.0f} | {row['p50']:.2f} | {row['p99']:.2f} | "
            f"{row['cpu_ms']:.2f} | {_ratio(row['rps'], a)} | {_ratio(row['rps'], b)} |"
        )
    csv = run.get("csv")
    if csv:
        lines += [
            "",
            "CSV export, streamed by one fresh gunicorn worker (peak RSS is the worker's "
            f"VmHWM; {csv['rss_before_kib'] / 1024:.0f} MiB after warm-up, before any export):",
            "",
            "| export | rows | seconds | rows/s | MB | worker peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key, label in (("csv_100k", "history since a day"), ("csv_all", "all history")):
            row = csv[key]
            lines.append(
                f"| {label} | {row['rows']:,} | {row['seconds']:.1f} | "
                f"{row['rows'] / row['seconds']:,.0f} | {row['bytes'] / 1e6:.0f} | "
                f"{row['peak_rss_kib'] / 1024:.0f} |"
            )
    pairs = run.get("pairs") or {}
    lines += [
        "",
        "Budgets (ratios from this run). Each is judged by the median of its paired "
        "slices: the two URLs measured in turn, 2 s each, six times, so both meet the "
        "same drift of the machine's speed; the table's best rounds and the CPU per "
        "request are shown beside it.",
        "",
    ]
    for text, key, factor, of in RATIO_BUDGETS:
        if key not in pages:
            continue
        best = pages[key]["rps"] / pages[of]["rps"]
        cpu_ratio = pages[of]["cpu_ms"] / pages[key]["cpu_ms"]
        pair = pairs.get(key)
        ratio = pair["median"] if pair else best
        verdict = "pass" if ratio >= factor else "**fail**"
        slices = ", ".join(f"{r:.2f}" for r in pair["ratios"]) if pair else "not measured"
        lines.append(
            f"- {text}: {ratio:.3f} — {verdict} (paired slices: {slices}; best rounds "
            f"{best:.2f}; CPU per request {cpu_ratio:.2f})"
        )
    if "history_1" in pages and "history_10000" in pages:
        deep, first = pages["history_10000"]["p99"], pages["history_1"]["p99"]
        verdict = "pass" if deep <= 2 * first else "**fail**"
        lines.append(
            f"- History p99 at page 10,000 within 2 × page 1: {deep:.2f} ms vs "
            f"{first:.2f} ms ({deep / first:.2f} ×) — {verdict}"
        )
    if csv:
        peak = csv["csv_all"]["peak_rss_kib"] / 1024
        verdict = "pass" if peak < CSV_RSS_BUDGET_MIB else "**fail**"
        lines.append(
            f"- CSV export of {csv['csv_all']['rows']:,} rows under {CSV_RSS_BUDGET_MIB} MB "
            f"peak RSS: {peak:.0f} MiB — {verdict}"
        )
    return "\n".join(lines)


def sessions_table(results):
    run = results["sessions"]
    server = run["server"]
    lines = [
        _machine(results),
        "",
        f"gunicorn {server['workers']} {server['worker_class']} workers × {server['threads']} "
        f"threads; wrk {run['connections']} connections, {run['duration']} s per URL, best of "
        f"{run['rounds']} rounds.",
        "",
        "| sessions | A req/s | B req/s | B p99 ms | B CPU ms/req | B × A | details req/s "
        "| details × B |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in run["sessions"]:
        p = row["pages"]
        name = row["engine"] + (" (Redis)" if row["cache_url"] else "")
        lines.append(
            f"| `{name}` | {p['A']['rps']:,.0f} | {p['B']['rps']:,.0f} | {p['B']['p99']:.2f} | "
            f"{p['B']['cpu_ms']:.2f} | {_ratio(p['B']['rps'], p['A']['rps'])} | "
            f"{p['details']['rps']:,.0f} | "
            f"{_ratio(p['details']['rps'], p['B']['rps'])} |"
        )
    return "\n".join(lines)


def workers_table(results):
    run = results["workers"]
    lines = [
        _machine(results),
        "",
        f"{run['restarts']:,} Restart service operations queued across {run['restarts']:,} "
        f"environments (simulated driver, no delay), a fresh queue for each run; "
        f"`db_worker {' '.join(run['worker_args'])}`.",
        "",
        "| db_worker processes | completions/s | wall seconds (incl. start-up) | × one "
        "| worker CPU ms per task |",
        "|---:|---:|---:|---:|---:|",
    ]
    one = run["runs"][0]["rate"]
    for row in run["runs"]:
        cpu = row.get("worker_cpu_ms_per_task")
        lines.append(
            f"| {row['processes']} | {row['rate']:,.1f} | {row['wall']:.1f} | "
            f"{row['rate'] / one:.2f} | {f'{cpu:.1f}' if cpu else '–'} |"
        )
    if len(run["runs"]) > 1:
        ratio = run["runs"][1]["rate"] / one
        verdict = "pass" if ratio >= 1.7 else "**fail**"
        lines += ["", f"- Two workers ≥ 1.7 × one: {ratio:.2f} — {verdict}"]
    return "\n".join(lines)


def techniques_table(results):
    lines = [
        _machine(results),
        "",
        "One process, Django's test client (no HTTP), the median of ten slices of 30 "
        "requests; `without`: the cache emptied before each request.",
        "",
        "| technique | ms/request without | ms/request with | saves |",
        "|---|---:|---:|---:|",
    ]
    for row in results["techniques"]:
        saving = 1 - row["with_ms"] / row["without_ms"]
        lines.append(
            f"| {row['technique']} | {row['without_ms']:.2f} | {row['with_ms']:.2f} | "
            f"{saving:.0%} |"
        )
    return "\n".join(lines)


SECTIONS = {
    "pages": pages_table,
    "techniques": techniques_table,
    "sqlite": lambda results: pages_table(results, "sqlite"),
    "sessions": sessions_table,
    "workers": workers_table,
}


def render(results):
    return "\n\n".join(
        f"## {name}\n\n{table(results)}" for name, table in SECTIONS.items() if name in results
    )


def write(results):
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    for name, table in SECTIONS.items():
        if name not in results:
            continue
        block = f"<!-- bench:{name} -->\n{table(results)}\n<!-- /bench:{name} -->"
        pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _, block=block: block, text)
        else:
            text = text.rstrip("\n") + f"\n\n{block}\n"
    DOC.write_text(text)
