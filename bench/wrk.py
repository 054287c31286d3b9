"""Driving load with wrk (C, epoll): it saturates the server without competing for much CPU,
which a Python load generator on the same two cores would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).parent / "lua"


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    """Each status of `non_2xx` (wrk's: 400 and up) and how often it came (checkout.lua
    counts them; wrk then hands every response to Lua, which cost it 1-2 µs per request
    against the bare app, under 0.1% of a checkout's CPU)."""

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("the bench needs wrk: apt-get install wrk (Debian) or your OS's package")
    return path


def run(url: str, script: str, connections: int, seconds: float, *args: str) -> Load:
    """wrk against `url` with lua/`script`; its report as a Load."""
    duration = f"{max(1, round(seconds))}s"
    options = ["-t", "2", "-c", str(connections), "-d", duration, "--latency"]
    command = [require_wrk(), *options, "-s", str(LUA / script), url, "--", *args]
    env = {**os.environ, "BENCH_LUA_DIR": str(LUA)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    out = done.stdout
    line = next(row for row in out.splitlines() if row.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return Load(
        data["requests"],
        data["duration_us"] / 1e6,
        data["non_2xx"],
        data["socket_errors"],
        data["p50_ms"],
        data["p99_ms"],
        data.get("statuses", {}),
    )
