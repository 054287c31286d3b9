"""A request body read ahead of an ASGI app, and handed on to it intact.

The fast lanes (the API's checkout, the simulator's payment) read a body to decide whether
they answer the request themselves; when they do not, the app behind them must receive
the very messages it would have received."""

from __future__ import annotations

from starlette.types import Message, Receive


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The request's body, and any message that was not part of it (a disconnect)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), []


def replay(body: bytes, more: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then what came after it: a body cut
    short by a disconnect stays unfinished, as the route would have seen it."""
    cut = bool(more)
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": cut}, *more]

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
