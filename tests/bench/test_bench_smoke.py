"""A few-second run of the bench, so it cannot rot. Figures are printed, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_URL

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("many_connections")]
ROOT = Path(__file__).parents[2]


def test_the_bench_runs_end_to_end_and_writes_every_figure(postgres_database: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own bench
        [sys.executable, "-m", "bench", "--smoke", "--admin-url", ADMIN_URL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((ROOT / "bench" / "results" / "latest.json").read_text())
    assert results["context"]["smoke"] is True
    assert results["checkouts"][0]["requests"] > 0
    assert results["stripe_checkouts"]["requests"] > 0
    slow = [p for p in results["side_by_side"] if p["slow_psp"]]
    fast = [p for p in results["side_by_side"] if not p["slow_psp"]]
    assert len(slow) == len(fast) == 1 and slow[0]["requests"] > 0 and fast[0]["requests"] > 0
    assert results["ratios"]["checkouts_300ms_psp_vs_fast_psp"] > 0
    assert results["webhooks"]["delivered"] > 0 and results["webhooks"]["unverified"] == 0
    for figure in (
        "reads",
        "bare_fastapi_reads",
        "catch_up",
        "library_runner",
        "audit",
        "raw_decode",
    ):
        assert results[figure]["per_second"] > 0, figure
    assert results["audit"]["ok"] is True
    (write,) = results["write_rounds"]
    assert all(write[s] == results["pgbench"][s] for s in ("insert_ours", "insert_locked"))
    (only,) = results["store_rounds"]  # a smoke run measures one round: the figures are its own
    for name in ("catch_up", "library_runner", "audit", "raw_decode"):
        assert (only[name]["events"], only[name]["seconds"]) == (
            results[name]["events"],
            results[name]["seconds"],
        ), name
    for run in (results["checkouts"][0], *results["side_by_side"]):
        assert run["cpu_us_per_checkout"]["api"] > 0
        assert run["cpu_us_per_checkout"]["postgres"] > 0
        assert run["cpu_us_per_checkout"]["simulator"] > 0  # it sends every webhook
    assert all(p["per_second"] > 0 for p in results["pgbench"].values())
    # raw pgbench runs beside the side-by-side phases, with their first phase's connections
    (raw,) = results["raw_rounds"]
    assert raw == {"round": 1} | results["pgbench"]["checkout_raw"]
    assert raw["clients"] == fast[0]["connections"]
    assert results["ratios"]["checkouts_vs_pgbench"] == round(
        fast[0]["per_second"] * (1 - fast[0]["non_2xx"] / fast[0]["requests"]) / raw["per_second"],
        3,
    )
    assert set(results["ratios"]) == {
        "checkouts_vs_pgbench",
        "write_ceiling_vs_locked_insert",
        "reads_vs_bare_fastapi",
        "catch_up_vs_library_runner",
        "audit_vs_raw_decode",
        "checkouts_300ms_psp_vs_fast_psp",
    }  # (the smoke run has no 256-connection row)
    assert "ratios (target):" in done.stdout
