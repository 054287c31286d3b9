"""`payments serve --workers`: 'auto' is one process per core on PostgreSQL, one on SQLite."""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import httpx
import pytest
import typer
import uvicorn

from bootstrap import runtime
from bootstrap.composition import Container
from bootstrap.settings import Settings
from cli.common import run_until_signal
from cli.main import MAX_SERVER_PROCESSES, _with_psp, psp_proxy, psp_sim, server_processes

POSTGRES = Settings(database_url="postgresql://postgres@127.0.0.1:5432/payments")
SQLITE = Settings(database_url="sqlite:///payments.db")


def test_auto_is_one_process_per_core_on_postgres() -> None:
    cores = len(os.sched_getaffinity(0))
    assert server_processes("auto", POSTGRES) == min(cores, MAX_SERVER_PROCESSES)


def test_auto_is_one_process_on_sqlite() -> None:
    assert server_processes("auto", SQLITE) == 1


@pytest.mark.parametrize("workers", ["1", "3", "64"])
def test_a_number_is_taken_as_it_is(workers: str) -> None:
    assert server_processes(workers, SQLITE) == int(workers)


@pytest.mark.parametrize("workers", ["0", "65", "-1", "two", "", "٣", "1e3"])
def test_anything_else_is_refused(workers: str) -> None:
    with pytest.raises(typer.BadParameter, match="'auto' or a number from 1 to 64"):
        server_processes(workers, POSTGRES)


@pytest.fixture
def settled() -> Iterator[None]:
    """The heap settled as a server's is; the collector as it was afterwards."""
    before = gc.get_threshold()
    try:
        runtime.settle_heap()
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.usefixtures("settled")
def test_settling_the_heap_freezes_what_exists_and_spaces_young_collections() -> None:
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == runtime.YOUNG_THRESHOLD


def test_a_batch_job_settles_the_heap_and_leaves_it_as_it_was() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with runtime.batch_heap():
        assert gc.get_threshold()[0] == runtime.YOUNG_THRESHOLD
        assert gc.get_freeze_count() > frozen + 10_000
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


@pytest.mark.usefixtures("settled")
def test_a_batch_job_in_a_settled_process_leaves_its_heap_frozen() -> None:
    frozen = gc.get_freeze_count()
    with runtime.batch_heap():
        pass
    assert gc.get_freeze_count() >= frozen > 0
    assert gc.get_threshold()[0] == runtime.YOUNG_THRESHOLD


def test_a_batch_job_that_fails_leaves_the_heap_as_it_was() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(RuntimeError), runtime.batch_heap():
        raise RuntimeError("the audit failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_the_in_process_simulator_stops_with_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Left running, its uvicorn thread now and then crashed the interpreter's exit after a
    clean stop (SIGSEGV, 1 in 15-25 stops of `serve` on a busy machine)."""
    monkeypatch.delenv("PAYMENTS_PSP_URL", raising=False)
    monkeypatch.delenv("PAYMENTS_WEBHOOK_SECRET", raising=False)
    before = set(threading.enumerate())
    with _with_psp(Settings(), "127.0.0.1", 9123) as settings:
        assert settings.psp_url is not None
        assert httpx.get(f"{settings.psp_url}/healthz").status_code == 200
        started = set(threading.enumerate()) - before
        assert [thread.name for thread in started] == ["uvicorn"]
    assert not any(thread.is_alive() for thread in started)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{settings.psp_url}/healthz")


@pytest.mark.parametrize(
    ("command", "arguments"),
    [
        (psp_sim, {"webhook_url": None, "webhooks": "all"}),
        (psp_proxy, {"upstream": "http://127.0.0.1:9"}),
    ],
)
def test_the_psp_stand_ins_serve_with_the_heap_settled(
    monkeypatch: pytest.MonkeyPatch, command: Callable[..., None], arguments: dict[str, Any]
) -> None:
    """The simulator holds every payment it has seen; with Python's default collector a full
    collection of them all came every few seconds under load (docs/performance.md)."""
    seen: list[tuple[int, int]] = []

    def run(app: object, **options: object) -> None:  # uvicorn's, as the command calls it
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))

    monkeypatch.setenv("PAYMENTS_WEBHOOK_SECRET", "whsec-heap")
    monkeypatch.setattr(uvicorn, "run", run)
    before = gc.get_threshold()
    try:
        command(port=9124, host="127.0.0.1", **arguments)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert len(seen) == 1
    threshold, frozen = seen[0]
    assert threshold == runtime.YOUNG_THRESHOLD and frozen > 10_000


class FakeContainer:
    """A container's face to `run_until_signal`: notes the collector's state when a role
    starts, then asks the process to stop (as an operator's SIGTERM would)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int]] = []
        self.closed = False

    def _started(self, role: str) -> None:
        self.seen.append((role, gc.get_threshold()[0], gc.get_freeze_count()))
        os.kill(os.getpid(), signal.SIGTERM)

    def start_worker(self) -> None:
        self._started("worker")

    def start_projections(self, listen_to_database: bool) -> None:
        self._started("projections")

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("role", ["worker", "projections"])
def test_the_background_roles_run_with_the_heap_settled(role: str) -> None:
    container = FakeContainer()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    before = gc.get_threshold()
    try:
        run_until_signal(cast(Container, container), role)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        gc.unfreeze()
        gc.set_threshold(*before)
    assert container.closed
    [(started, threshold, frozen)] = container.seen
    assert started == role and threshold == runtime.YOUNG_THRESHOLD and frozen > 10_000
