"""CPU time by process, read from /proc: what a phase cost the API (the `payments serve`
process and its children), PostgreSQL (every server process) and the simulator, per
checkout, next to each throughput."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds so far, command name)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = _fields(stat)
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, name)
    return found


def reaped(pid: int) -> float:
    """CPU seconds of the ended children `pid` has waited for (0 if it is gone)."""
    try:
        fields = _fields((Path("/proc") / str(pid) / "stat").read_text())
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / TICK


def _fields(stat: str) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (which may hold spaces): the state
    first, then the parent pid, ..., utime at 11, stime, cutime, cstime."""
    return stat[stat.rindex(")") + 2 :].split()


def snapshot(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds of each group: its root processes with all their descendants, and
    "postgres" for the server's processes."""
    table = processes()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _, _) in table.items():
        children[parent].append(pid)
    server = {pid for pid, (_, _, name) in table.items() if name == "postgres"}
    postmasters = [pid for pid in server if table[pid][0] not in server]
    totals = {
        # A backend that ends (a closed connection: another test's, in the suite) takes its
        # CPU out of the living processes' sum; its parent, the postmaster, adds it to its
        # reaped children's. Both together only grow.
        "postgres": sum(table[pid][1] for pid in server) + sum(map(reaped, postmasters))
    }
    for group, pids in roots.items():
        todo, total = list(pids), 0.0
        while todo:
            pid = todo.pop()
            total += table.get(pid, (0, 0.0, ""))[1]
            todo += children.get(pid, [])
        totals[group] = total
    return totals


class CpuMeter:
    """CPU spent by each group between `start` and `per`."""

    def __init__(self, roots: dict[str, list[int]]) -> None:
        self.roots = roots
        self.before: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self.before = snapshot(self.roots)
        return self

    def per(self, count: int) -> dict[str, int]:
        """Microseconds of CPU per unit of work (a checkout) by group since `start`."""
        after = snapshot(self.roots)
        return {
            group: round((after[group] - self.before.get(group, 0.0)) * 1e6 / max(1, count))
            for group in after
        }
