"""The simulator's webhook poster (psp/poster.py) against real servers: uvicorn, and raw
sockets that frame their answers every way HTTP/1.1 allows."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.threaded_server import ThreadedServer
from psp.poster import FAILURES, Poster
from psp.simulator import create_simulator

T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a loop of its own thread (Playwright may hold this thread's)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))  # type: ignore[arg-type]
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


class Receiver:
    """A webhook receiver: records each request's client port, body and headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, bytes, dict[str, str]]] = []

    async def hook(self, request: Request) -> JSONResponse:
        client = request.client
        self.seen.append(
            (client.port if client else 0, await request.body(), dict(request.headers))
        )
        status = 500 if request.query_params.get("fail") else 200
        return JSONResponse({"status": "applied"}, status_code=status)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    app = Starlette(routes=[Route("/hook", hooks.hook, methods=["POST"])])
    server = ThreadedServer(app, timeout_keep_alive=1).start()
    yield hooks, f"{server.url}/hook"
    server.stop()


def test_posts_share_one_connection_and_arrive_whole(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver

    async def three() -> list[int]:
        poster = Poster(url)
        try:
            return [
                await poster.post(b'{"n": %d}' % n, {"PSP-Signature": "t=1,v1=ab"})
                for n in range(3)
            ]
        finally:
            poster.close()

    assert run(three) == [200, 200, 200]
    assert [body for _, body, _ in hooks.seen] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert len({port for port, _, _ in hooks.seen}) == 1
    headers = hooks.seen[0][2]
    assert headers["content-type"] == "application/json"
    assert headers["psp-signature"] == "t=1,v1=ab"
    assert headers["host"] == url.split("/")[2]


def test_a_connection_the_server_closed_is_opened_again(receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver

    async def apart() -> list[int]:
        poster = Poster(url)
        first = await poster.post(b"{}", {})
        await asyncio.sleep(1.6)  # past the server's keep-alive: it hangs up
        try:
            return [first, await poster.post(b"{}", {}), await poster.post(b"[]", {})]
        finally:
            poster.close()

    assert run(apart) == [200, 200, 200]
    assert len({port for port, _, _ in hooks.seen}) == 2


def test_a_server_error_is_its_status(receiver: tuple[Receiver, str]) -> None:
    _, url = receiver

    async def failing() -> int:
        poster = Poster(f"{url}?fail=1")
        try:
            return await poster.post(b"{}", {})
        finally:
            poster.close()

    assert run(failing) == 500


ANSWERS = {
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrailer: z\r\n\r\n",
    "length": b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
    "close": b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    "eof": b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
    "empty": b"HTTP/1.1 204 No Content\r\n\r\n",
    "interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "no body": b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
    "tokens": b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize(
    ("framing", "status", "connections"),
    [
        ("chunked", 200, 1),
        ("length", 202, 1),
        ("close", 201, 2),
        ("eof", 200, 2),
        ("empty", 204, 1),
        ("interim", 200, 1),
        ("no body", 204, 1),
        ("tokens", 200, 2),
    ],
)
def test_every_framing_of_the_answer_is_read(framing: str, status: int, connections: int) -> None:
    async def twice() -> tuple[list[int], int]:
        accepted: list[Any] = []

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(ANSWERS[framing])
                await writer.drain()
                if framing in ("close", "eof", "tokens"):
                    writer.close()
                    return

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        poster = Poster(f"http://127.0.0.1:{port}/hook")
        try:
            statuses = [await poster.post(b"{}", {}), await poster.post(b"{}", {})]
        finally:
            poster.close()
            server.close()
        return statuses, len(accepted)

    assert run(twice) == ([status, status], connections)


@pytest.mark.parametrize(
    "answer", [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"]
)
def test_a_garbled_or_cut_answer_fails(answer: bytes) -> None:
    async def once() -> None:
        async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(reply, "127.0.0.1", 0)
        poster = Poster(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
        try:
            await poster.post(b"", {})
        finally:
            poster.close()
            server.close()

    with pytest.raises(FAILURES):
        run(once)


def test_nobody_listening_fails() -> None:
    async def refused() -> int:
        return await Poster("http://127.0.0.1:9/hook").post(b"{}", {})

    with pytest.raises(ConnectionRefusedError):
        run(refused)


@pytest.mark.parametrize("url", ["ftp://example.com/", "http:///nohost", "example.com/hook"])
def test_only_http_urls_are_taken(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        Poster(url)
    with pytest.raises(ValueError, match="not an http"):
        create_simulator(webhook_url=url)


def test_the_host_header_names_the_host_and_port_only() -> None:
    assert Poster("http://user:pw@psp.example:8443/hook?a=1").head == (
        b"POST /hook?a=1 HTTP/1.1\r\nHost: psp.example:8443\r\n"
    )
    assert Poster("https://[::1]/").head == b"POST / HTTP/1.1\r\nHost: [::1]\r\n"
