"""The checkouts' gate (app/pacing.py): room for `size`, answers before new orders, and no
place lost to a cancelled waiter; and the application recording an answer in hand before
a new checkout that waited longer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.application import PaymentsApp, PaymentsConfig, Written
from app.pacing import Gate
from domain.cart import Checkout, LineItem
from domain.psp import AuthorizeRequest, PSPResult
from tests.unit.fakes import FakeClock, FakePSP
from tests.unit.orders import NOW


def run(test: Callable[[], Awaitable[None]]) -> None:
    """On a fresh thread: it has no running loop, even when a session fixture (Playwright's
    sync API, in the browser tests) keeps one running in the main thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, asyncio.wait_for(test(), 5)).result()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for work on a worker thread (the in-memory store's saves)."""
    while not condition():
        await asyncio.sleep(0.005)


def holder(gate: Gate, log: list[str], name: str, *, answering: bool) -> asyncio.Task[None]:
    """A task that takes a place, notes it, and keeps it until cancelled or `release`d."""
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.held(answering=answering):
            log.append(name)
            await release.wait()

    task = asyncio.create_task(hold())
    task.release = release  # type: ignore[attr-defined]
    return task


def release(task: asyncio.Task[None]) -> None:
    task.release.set()  # type: ignore[attr-defined]


def test_a_gate_admits_its_size_and_the_next_when_one_leaves() -> None:
    async def test() -> None:
        gate, log = Gate(2), list[str]()
        tasks = [holder(gate, log, str(n), answering=False) for n in range(4)]
        await settle()
        assert log == ["0", "1"] and gate.waiting == 2 and gate.free == 0
        release(tasks[1])
        await settle()
        assert log == ["0", "1", "2"] and gate.waiting == 1
        for task in tasks:
            release(task)
        await asyncio.gather(*tasks)
        assert gate.free == 2 and gate.waiting == 0

    run(test)


def test_an_answer_goes_before_new_orders_that_waited_longer() -> None:
    async def test() -> None:
        gate, log = Gate(1), list[str]()
        first = holder(gate, log, "first", answering=False)
        await settle()
        starting = [holder(gate, log, f"new {n}", answering=False) for n in range(2)]
        await settle()
        answers = [holder(gate, log, f"answer {n}", answering=True) for n in range(2)]
        await settle()
        for task in [first, *answers, *starting]:
            release(task)
            await settle()
        await asyncio.gather(first, *answers, *starting)
        assert log == ["first", "answer 0", "answer 1", "new 0", "new 1"]

    run(test)


def test_a_cancelled_waiter_leaves_no_place_taken_and_none_lost() -> None:
    async def test() -> None:
        gate, log = Gate(1), list[str]()
        first = holder(gate, log, "first", answering=False)
        await settle()
        gone = holder(gate, log, "gone", answering=False)
        later = holder(gate, log, "later", answering=False)
        await settle()
        gone.cancel()
        await settle()
        release(first)  # the place skips the cancelled waiter
        await settle()
        assert log == ["first", "later"]
        release(later)
        await asyncio.gather(first, later)
        assert gate.free == 1 and gate.waiting == 0

    run(test)


def test_a_waiter_cancelled_after_its_turn_came_passes_the_place_on() -> None:
    async def test() -> None:
        gate, log = Gate(1), list[str]()
        place = gate.held(answering=False)
        await place.__aenter__()
        handed = holder(gate, log, "handed", answering=False)
        later = holder(gate, log, "later", answering=False)
        await settle()
        await place.__aexit__(None, None, None)  # hands the place on without yielding
        handed.cancel()  # its turn came, but it has not run yet
        await settle()
        assert log == ["later"] and handed.cancelled()
        release(later)
        await later
        assert gate.free == 1 and gate.waiting == 0

    run(test)


def test_a_gate_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Gate(0)


class HeldPSP(FakePSP):
    """An async PSP whose answers wait until the test lets them through."""

    asynchronous = True

    def __init__(self) -> None:
        super().__init__()
        self.go: dict[str, asyncio.Event] = {}

    async def authorize_async(self, request: AuthorizeRequest) -> PSPResult:
        await self.go.setdefault(request.reference, asyncio.Event()).wait()
        return self.authorize(request)


CART = Checkout("buyer-1", "EUR", (LineItem("s1", "mug", 1, 1000),), "pm_card_visa")


@pytest.fixture
def psp() -> HeldPSP:
    return HeldPSP()


@pytest.fixture
def app(psp: HeldPSP) -> PaymentsApp:
    """The application on the in-memory store, with a gate of one place."""
    app = PaymentsApp(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        psp=psp,
        config=PaymentsConfig(),
        clock=FakeClock(NOW),
    )
    app.gate = Gate(1)
    return app


def placing(app: PaymentsApp, key: str) -> asyncio.Task[Written]:
    """A checkout of CART under `key`, started on the running loop."""
    return asyncio.create_task(app.place_checkout_async(CART, client_id="c1", idempotency_key=key))


def test_a_checkout_records_its_answer_before_a_new_checkout_that_waited_longer(
    app: PaymentsApp, psp: HeldPSP
) -> None:
    """The gate full, a new checkout waits; then a checkout's PSP answers. When a place
    frees, the answer is recorded first (first come, first served would start the new
    order first and leave the answer waiting)."""

    async def test() -> None:
        answered = placing(app, "answered")
        await until(lambda: len(psp.go) == 1)  # placed; waiting for its answer, outside the gate
        (order_id,) = psp.go
        blocker = holder(app.gate, [], "blocker", answering=False)
        await settle()
        newer = placing(app, "newer")  # waits to start
        await settle()
        psp.go[order_id].set()  # the answer is in hand: waits to be recorded
        await settle()
        assert app.gate.waiting == 2
        release(blocker)
        await answered
        await until(lambda: len(psp.go) == 2)
        (newer_id,) = set(psp.go) - {order_id}
        psp.go[newer_id].set()
        await newer
        topics = [
            (n.originator_id, n.topic.rsplit(".", 1)[-1])
            for n in app.recorder.select_notifications(1, 10)
        ]
        order_ids = {str(order_id): "answered", str(newer_id): "newer"}
        assert [(order_ids[str(o)], t) for o, t in topics] == [
            ("answered", "Placed"),
            ("answered", "AuthorizationRequested"),
            ("answered", "Captured"),
            ("newer", "Placed"),
            ("newer", "AuthorizationRequested"),
            ("newer", "Captured"),
        ]

    run(test)


def test_a_replay_waits_for_the_first_answer_outside_the_gate(
    app: PaymentsApp, psp: HeldPSP
) -> None:
    """A retried key waits (on a worker thread) for the first request's answer; inside the
    gate it would hold the place that answer needs to be recorded, for up to the PSP
    timeout, and with enough retries stop the process starting checkouts."""

    async def test() -> None:
        first = placing(app, "k1")
        await until(lambda: len(psp.go) == 1)
        replay = placing(app, "k1")
        await asyncio.sleep(0.2)  # the replay is waiting for the first answer by now
        assert not replay.done() and app.gate.free == 1
        (order_id,) = psp.go
        psp.go[order_id].set()
        placed, replayed = await first, await replay
        assert replayed.replayed and replayed.order.status == placed.order.status
        assert replayed.order.version == placed.order.version

    run(test)
