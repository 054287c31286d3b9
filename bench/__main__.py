"""`python3 dev.py bench` (or `python -m bench`): the whole table in one command.

Starts a PostgreSQL-backed stack, drives it with wrk, measures the baselines beside it,
prints a table and writes bench/results/latest.json. `--smoke` is a few-second run that
only proves the bench still works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from adapters.db import open_database
from bench import baselines, library, ours, webhooks, wrk
from bench.cpu import CpuMeter
from bench.stack import ADMIN_URL, BenchStack
from bootstrap import audit_pool
from bootstrap.settings import Settings
from cli.main import server_processes

RESULTS = Path(__file__).parent / "results"
Item = TypeVar("Item")
WRITE_CLIENTS = 32
"""pgbench clients for the write ceiling's two inserts."""
WRITE_CLIENTS_SMOKE = 4
"""The same in a smoke run, which shares the server with the rest of the test suite: 32
clients beside the stack's 37 connections, and another worker's chaos storm (49 at its
peak), went past PostgreSQL's default 100 and failed that storm's connections."""


def main() -> None:
    options = _options()
    smoke = options.smoke
    seconds = 2.0 if smoke else options.seconds
    concurrencies = [8] if smoke else options.concurrency
    # as `payments audit` and `rebuild` do at their start: its imports overlap the stack's
    audit_pool.warm(Settings(database_url=options.admin_url))
    stack = BenchStack.start(options.admin_url, options.workers, options.psp_latency_ms, {})
    try:
        results = _measure(stack, options, seconds, concurrencies)
    finally:
        stack.stop()
    results["stripe_checkouts"] = _stripe_checkouts(options, seconds)
    results["context"] = _context(options, seconds)
    results["ratios"] |= _load_ratios(results)
    _write(results)
    print(table(results))


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, just to prove it runs")
    parser.add_argument(
        "--workers", default="auto", help="API server processes (serve's default: auto)"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each load phase")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 64, 256])
    parser.add_argument(
        "--psp-latency-ms", type=int, default=2, help="the simulator's fixed latency"
    )
    parser.add_argument(
        "--admin-url", default=os.environ.get("PAYMENTS_TEST_POSTGRES_URL", ADMIN_URL)
    )
    return parser.parse_args()


def _measure(
    stack: BenchStack, options: argparse.Namespace, seconds: float, concurrencies: list[int]
) -> dict[str, Any]:
    results: dict[str, Any] = {"checkouts": []}
    db = open_database(stack.app_settings().event_store_env(), pool_size=2)
    for n, connections in enumerate(concurrencies):
        with ours.LagSampler(db) as lag:
            meter = CpuMeter(stack.cpu_roots()).start()
            load = wrk.run(
                stack.api_url, "checkout.lua", connections, seconds, f"run{n}-{time.time_ns()}"
            )
            cpu = meter.per(load.requests)
        results["checkouts"].append(
            _load(load)
            | {
                "connections": connections,
                "cpu_us_per_checkout": cpu,
                "projection_lag_max_events": max(lag.samples, default=0),
                "projection_lag_mean_events": round(statistics.fmean(lag.samples), 1)
                if lag.samples
                else 0,
            }
        )
    baselines.prepare_pgbench(stack.database_url)
    results["side_by_side"], results["raw_rounds"] = _side_by_side(stack, options, seconds)
    hooks = webhooks.Subscriber(stack.api_url)  # a phase of its own: the rows above stay comparable
    load = wrk.run(stack.api_url, "checkout.lua", 8, seconds, f"hooks-{time.time_ns()}")
    results["webhooks"] = hooks.finish(db) | {"checkouts_per_second": round(load.per_second, 1)}
    raw = results["raw_rounds"]
    ours_rate, ours_clients = baselines.pgbench(
        stack.database_url, "checkout_ours", raw[0]["clients"], seconds
    )
    results["pgbench"] = {
        "checkout_raw": {
            "per_second": round(statistics.fmean(r["per_second"] for r in raw), 1),
            "clients": min(r["clients"] for r in raw),
        },
        "checkout_ours": {"per_second": ours_rate, "clients": ours_clients},
    }
    ceiling, results["write_rounds"] = _write_ceiling(stack.database_url, options.smoke, seconds)
    results["pgbench"] |= ceiling
    ids = _order_ids(db)
    with tempfile.NamedTemporaryFile("w", suffix=".ids") as ids_file:
        ids_file.write("\n".join(ids))
        ids_file.flush()
        results["reads"] = _load(wrk.run(stack.api_url, "read.lua", 32, seconds, ids_file.name))
        results["bare_fastapi_reads"] = _load(
            baselines.bare_fastapi_reads(
                server_processes(options.workers, stack.app_settings()), 32, seconds, ids_file.name
            )
        )
    db.close()
    with ours.prefix_store(stack.app_settings(), stack.admin_url, ours.PREFIX_EVENTS) as settings:
        results |= _store_rates(settings, options.smoke)
    results["ratios"] = _ratios(results)
    return results


WRITE_ROUNDS = 2
WRITE_SCRIPTS = ("insert_ours", "insert_locked")


def _write_ceiling(
    url: str, smoke: bool, seconds: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The write ceiling's two inserts in WRITE_ROUNDS rounds of half a phase each (one
    round of a whole phase in a smoke run), ours first in odd rounds and the locking one in
    even ones: each figure is the mean of its rounds' rates (equal lengths: all the rounds'
    transactions over their time). Also the rounds."""
    clients = WRITE_CLIENTS_SMOKE if smoke else WRITE_CLIENTS
    length = seconds if smoke else max(1.0, seconds / WRITE_ROUNDS)
    rounds: list[dict[str, Any]] = []
    for n in range(1 if smoke else WRITE_ROUNDS):
        found: dict[str, Any] = {"round": n + 1}
        for script in _alternating(WRITE_SCRIPTS, n):
            rate, used = baselines.pgbench(url, script, clients, length)
            found[script] = {"per_second": round(rate, 1), "clients": used}
        rounds.append(found)
    figures = {
        script: {
            "per_second": round(statistics.fmean(r[script]["per_second"] for r in rounds), 1),
            "clients": min(r[script]["clients"] for r in rounds),
        }
        for script in WRITE_SCRIPTS
    }
    return figures, rounds


STORE_ROUNDS = 4
"""An even number: each side goes first in half the rounds."""
RUNNER_S = 7.5
"""How long the library's runner runs in each round (from the log's start each time)."""


def _store_rates(settings: Settings, smoke: bool) -> dict[str, Any]:
    """Catch-up beside the library's runner and the audit beside the library's decode, in
    STORE_ROUNDS rounds (one in a smoke run), ours first in odd rounds and the library's in
    even ones; each figure is the sum over the rounds (events over seconds). Measured once
    each, a ratio moved with the machine's drift between its two halves: the catch-up's
    went 25.5, 12.2 and 14.3 in three runs of one evening (docs/performance.md)."""
    env = settings.event_store_env()
    built = 0  # the store's events, from the first catch-up (which the first round runs first)

    def catch_up() -> dict[str, Any]:
        nonlocal built
        rate = _rate(*ours.catch_up_rate(settings))
        built = rate["events"]
        return rate

    def audit() -> dict[str, Any]:
        events, seconds, ok = ours.audit_rate(settings)
        return _rate(events, seconds) | {"ok": ok}

    pairs: list[list[tuple[str, Callable[[], dict[str, Any]]]]] = [
        [
            ("catch_up", catch_up),
            (
                "library_runner",
                lambda: _rate(*library.runner_rate(env, built, 5 if smoke else RUNNER_S)),
            ),
        ],
        [("audit", audit), ("raw_decode", lambda: _rate(*library.read_and_decode_rate(env)))],
    ]
    rounds: list[dict[str, Any]] = []
    for n in range(1 if smoke else STORE_ROUNDS):
        found: dict[str, Any] = {"round": n + 1}
        for pair in pairs:
            for name, measure in _alternating(pair, n):
                found[name] = measure()
        rounds.append(found)
    return summed_rounds(rounds) | {"store_rounds": rounds}


def _alternating(pair: Sequence[Item], n: int) -> Sequence[Item]:
    """Ours, then the baseline, in odd rounds (n even); the other way round in even ones."""
    return pair if n % 2 == 0 else pair[::-1]


STORE_FIGURES = ("catch_up", "library_runner", "audit", "raw_decode")


def summed_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each store figure over all the rounds: their events over their seconds (not a mean
    of rates, which would weigh a short round like a long one); the audit is ok only if
    every round's was."""
    summed = {
        name: _rate(sum(r[name]["events"] for r in rounds), sum(r[name]["seconds"] for r in rounds))
        for name in STORE_FIGURES
    }
    summed["audit"]["ok"] = all(r["audit"]["ok"] for r in rounds)
    return summed


def _stripe_checkouts(options: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """Checkouts through the Stripe connector against localstripe, 8 connections (beside the
    simulator's row at 8): what the connector costs, bounded by localstripe's own speed."""
    stack = BenchStack.start(options.admin_url, options.workers, 0, {"psp": "stripe"})
    try:
        meter = CpuMeter(stack.cpu_roots()).start()
        load = wrk.run(stack.api_url, "checkout.lua", 8, seconds, f"stripe-{time.time_ns()}")
        cpu = meter.per(load.requests)
    finally:
        stack.stop()
    return _load(load) | {"connections": 8, "cpu_us_per_checkout": cpu}


SLOW_PSP_MS = 300
ROUNDS = 2
SETTLE_S = 3.0
"""A pause before each side-by-side phase: the requests still in flight when wrk stops (at
256 connections, up to 256 of them, which the server finishes) would otherwise fill the
next phase's first second and be billed to it. In one run a 300 ms phase right after a
256-connection one had 1,759 fast non-2xx answers (wrk did not say which; most likely 503s,
the in-flight limit met by that backlog)."""


def _side_by_side(
    stack: BenchStack, options: argparse.Namespace, seconds: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The phases the load ratios come from, back to back on one stack, in ROUNDS rounds:
    32 connections with the fast PSP, 256 with it, and 256 with a PSP that takes 300 ms (the
    simulator's latency set between phases); and pgbench doing a checkout's writes as raw
    inserts with as many clients as the first phase has connections, before the phases in
    odd rounds and after them in even ones. This machine's speed drifts by a quarter within
    minutes, so phases far apart, or on another stack, compare the drift as much as the
    server (docs/performance.md). The smoke run: one round at 8, without the 256 phase.
    Returns the phases and the raw pgbench rounds."""
    fast = options.psp_latency_ms
    few, many = (8, 8) if options.smoke else (32, 256)
    phases = (
        [(False, few), (True, many)]
        if options.smoke
        else [
            (False, few),
            (False, many),
            (True, many),
        ]
    )
    found: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []

    def raw_inserts(round_: int) -> None:
        time.sleep(SETTLE_S)
        rate, clients = baselines.pgbench(stack.database_url, "checkout_raw", few, seconds)
        raw.append({"round": round_ + 1, "per_second": round(rate, 1), "clients": clients})

    for round_ in range(1 if options.smoke else ROUNDS):
        if round_ % 2:
            raw_inserts(round_)
        for slow, connections in phases:
            time.sleep(SETTLE_S)
            latency = SLOW_PSP_MS if slow else fast
            stack.set_psp_latency(latency)
            meter = CpuMeter(stack.cpu_roots()).start()
            load = wrk.run(
                stack.api_url, "checkout.lua", connections, seconds, f"side-{time.time_ns()}"
            )
            found.append(
                _load(load)
                | {
                    "round": round_ + 1,
                    "slow_psp": slow,
                    "connections": connections,
                    "psp_latency_ms": latency,
                    "cpu_us_per_checkout": meter.per(load.requests),
                }
            )
        if not round_ % 2:
            raw_inserts(round_)
    stack.set_psp_latency(fast)
    return found, raw


def _load_ratios(r: dict[str, Any]) -> dict[str, float]:
    """Goodput (2xx per second) under overload and with a slow PSP, against 32 connections
    with the fast PSP; and that goodput against raw pgbench in the same rounds: the sums
    over the side-by-side rounds."""

    def good(slow: bool, connections: int) -> float:
        return float(
            sum(
                p["per_second"] * (1 - p["non_2xx"] / max(1, p["requests"]))
                for p in r["side_by_side"]
                if p["slow_psp"] == slow and p["connections"] == connections
            )
        )

    few = min(p["connections"] for p in r["side_by_side"])
    base = max(1.0, good(False, few))
    raw = sum(p["per_second"] for p in r["raw_rounds"])
    ratios = {"checkouts_vs_pgbench": round(base / max(1.0, raw), 3)}
    if any(p["connections"] == 256 for p in r["side_by_side"]):
        ratios["checkouts_256_vs_32_connections"] = round(good(False, 256) / base, 3)
    many = max(p["connections"] for p in r["side_by_side"])
    ratios["checkouts_300ms_psp_vs_fast_psp"] = round(good(True, many) / base, 3)
    return ratios


def _order_ids(db: Any) -> list[str]:
    with db.read() as tx:
        return [r[0] for r in tx.execute("SELECT order_id FROM order_view LIMIT 5000")]


def _load(load: wrk.Load) -> dict[str, Any]:
    return {
        "per_second": round(load.per_second, 1),
        "requests": load.requests,
        "p50_ms": round(load.p50_ms, 2),
        "p99_ms": round(load.p99_ms, 2),
        "non_2xx": load.non_2xx,
        "statuses": load.statuses,
        "socket_errors": load.socket_errors,
    }


def _rate(events: int, seconds: float) -> dict[str, Any]:
    return {
        "events": events,
        "seconds": round(seconds, 3),
        "per_second": round(events / seconds) if seconds else 0,
    }


def _ratios(r: dict[str, Any]) -> dict[str, float]:
    pgbench = r["pgbench"]
    return {
        "write_ceiling_vs_locked_insert": round(  # three places: 2.998 printed as 3.0
            pgbench["insert_ours"]["per_second"] / pgbench["insert_locked"]["per_second"], 3
        ),
        "reads_vs_bare_fastapi": round(
            r["reads"]["per_second"] / r["bare_fastapi_reads"]["per_second"], 3
        ),
        "catch_up_vs_library_runner": round(
            r["catch_up"]["per_second"] / max(1, r["library_runner"]["per_second"]), 1
        ),
        "audit_vs_raw_decode": round(
            r["audit"]["per_second"] / max(1, r["raw_decode"]["per_second"]), 3
        ),
    }


def _context(options: argparse.Namespace, seconds: float) -> dict[str, Any]:
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "workers": options.workers,
        "seconds_per_phase": seconds,
        "psp_latency_ms": options.psp_latency_ms,
        "smoke": options.smoke,
    }


def _write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(results, indent=2)
    (RESULTS / "latest.json").write_text(text)
    (RESULTS / f"{results['context']['when'].replace(':', '')}.json").write_text(text)


def table(r: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    header = ("conns", "per s", "p50 ms", "p99 ms", "non-2xx", "lag max", "CPU µs per checkout")
    lines = [
        f"checkouts over HTTP: `payments serve --workers {r['context']['workers']}` on "
        "PostgreSQL, the simulator sending every webhook",
        _cells(header),
    ]
    for c in r["checkouts"]:
        lines.append(
            _cells((c["connections"], *_figures(c), c["projection_lag_max_events"], _cpu(c)))
        )
        lines += _statuses(c)
    hooks = r.get("webhooks")
    if hooks:
        lines.append(
            f"webhooks to a healthy receiver, 8-connection load ({hooks['checkouts_per_second']} "
            f"checkouts/s): {hooks['delivered']} delivered, {hooks['per_second']} per s; lag "
            f"from the event p50 {hooks['lag_p50_ms']} ms, p99 {hooks['lag_p99_ms']} ms"
        )
    stripe = r.get("stripe_checkouts")
    if stripe:
        lines.append("checkouts through the Stripe connector on localstripe")
        lines.append(_cells((8, *_figures(stripe), "", _cpu(stripe))))
    side = r.get("side_by_side")
    if side:
        lines.append(
            "side by side, the load ratios' phases back to back (PSP latency set between them)"
        )
        lines.append(_cells(("round", "PSP ms", *header[:5], header[6])))
        for c in side:
            row = (c["round"], c["psp_latency_ms"], c["connections"], *_figures(c), _cpu(c))
            lines.append(_cells(row))
            lines += _statuses(c)
        lines += [
            f"  round {p['round']}: pgbench, a checkout's writes, raw ({p['clients']} clients):"
            f" {p['per_second']} per s"
            for p in r.get("raw_rounds", [])
        ]
    pgbench = r["pgbench"]
    rates = [
        (
            f"pgbench, a checkout's writes, raw ({pgbench['checkout_raw']['clients']} clients;"
            " rounds above)",
            round(pgbench["checkout_raw"]["per_second"], 1),
            "per s",
        ),
        (
            "pgbench, the same through our insert",
            round(pgbench["checkout_ours"]["per_second"], 1),
            "per s",
        ),
        (
            f"pgbench, one insert each, ours ({pgbench['insert_ours']['clients']} clients)",
            round(pgbench["insert_ours"]["per_second"], 1),
            "per s",
        ),
        (
            "pgbench, one insert each, locking (before)",
            round(pgbench["insert_locked"]["per_second"], 1),
            "per s",
        ),
        ("status reads", r["reads"]["per_second"], _latency(r["reads"])),
        (
            "bare FastAPI GET",
            r["bare_fastapi_reads"]["per_second"],
            _latency(r["bare_fastapi_reads"]),
        ),
        (
            "projection catch-up (ours)",
            r["catch_up"]["per_second"],
            f"events/s, {r['catch_up']['events']} in all",
        ),
        ("library ProjectionRunner", r["library_runner"]["per_second"], "events/s"),
        ("audit replay", r["audit"]["per_second"], f"events/s (ok={r['audit']['ok']})"),
        ("library read-and-decode", r["raw_decode"]["per_second"], "events/s"),
    ]
    lines += [f"{label + ':':<44} {value:>9} {unit}" for label, value, unit in rates]
    lines += _round_lines("insert/s", r.get("write_rounds", []), WRITE_SCRIPTS, ("ours", "locking"))
    lines += _round_lines(
        "events/s",
        r.get("store_rounds", []),
        STORE_FIGURES,
        ("catch-up", "runner", "audit", "decode"),
    )
    targets = {
        "checkouts_vs_pgbench": 0.2,
        "write_ceiling_vs_locked_insert": 3,
        "reads_vs_bare_fastapi": 0.6,
        "catch_up_vs_library_runner": 20,
        "audit_vs_raw_decode": 0.8,
        "checkouts_256_vs_32_connections": 0.8,
        "checkouts_300ms_psp_vs_fast_psp": 0.8,
    }
    lines.append("ratios (target):")
    lines += [
        f"  {name:<32} {value:>8}  (>= {targets.get(name, '-')})"
        for name, value in r["ratios"].items()
    ]
    return "\n".join(lines)


def _round_lines(
    unit: str, rounds: list[dict[str, Any]], figures: Sequence[str], labels: Sequence[str]
) -> list[str]:
    """Each round of figures measured in rounds (the lines above give them over all rounds)."""
    if len(rounds) < 2:
        return []
    lines = [f"  {unit} by round (the figures above: all the rounds together)"]
    lines.append(_cells(("round", *labels)))
    for r in rounds:
        lines.append(_cells((r["round"], *(r[name]["per_second"] for name in figures))))
    return lines


def _cells(cells: Sequence[object]) -> str:
    """One line of the table: each cell right-aligned in 8 columns."""
    return "  " + " ".join(f"{cell:>8}" for cell in cells)


def _figures(load: dict[str, Any]) -> tuple[object, ...]:
    """A load row's middle cells: per s, p50 ms, p99 ms, non-2xx."""
    return load["per_second"], load["p50_ms"], load["p99_ms"], load["non_2xx"]


def _cpu(load: dict[str, Any]) -> str:
    """API / PostgreSQL / simulator CPU µs per checkout."""
    cpu = load.get("cpu_us_per_checkout") or {}
    return f"api {cpu.get('api', 0)} pg {cpu.get('postgres', 0)} sim {cpu.get('simulator', 0)}"


def _statuses(load: dict[str, Any]) -> list[str]:
    """A line under a row with non-2xx answers: how many of each status."""
    counted = load.get("statuses") or {}
    if not counted:
        return []
    return ["           non-2xx: " + ", ".join(f"{s}: {n}" for s, n in sorted(counted.items()))]


def _latency(load: dict[str, Any]) -> str:
    return f"per s  p50 {load['p50_ms']} ms  p99 {load['p99_ms']} ms"


if __name__ == "__main__":
    main()
