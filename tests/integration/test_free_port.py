"""Loopback ports for the processes tests start (chaos/processes.py: free_port)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos import processes
from chaos.processes import TEST_PORTS, free_port


def ports_of(worker: str, monkeypatch: pytest.MonkeyPatch, count: int = 50) -> set[int]:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    monkeypatch.setattr(processes, "_cursor", [-1])
    return {free_port() for _ in range(count)}


def test_each_worker_takes_its_own_ports_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = ports_of("gw0", monkeypatch), ports_of("gw1", monkeypatch)
    assert len(first) == len(second) == 50  # a new one each time
    assert not first & second
    half = len(TEST_PORTS) // 2
    assert all(TEST_PORTS.start <= p < TEST_PORTS.start + half for p in first)
    assert all(TEST_PORTS.start + half <= p < TEST_PORTS.stop for p in second)
    assert max(first | second) < 32_768  # where the kernel takes outgoing ports from


def test_outside_a_worker_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert all(low <= free_port() <= high for _ in range(5))  # its ephemeral range
