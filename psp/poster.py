"""One keep-alive HTTP/1.1 connection that POSTs JSON: how the simulator delivers webhooks.

Under checkout load the simulator sends a webhook for every payment, and aiohttp's client
machinery (sessions, connectors, request and response objects) cost about a fifth of the
simulator's CPU around a few hundred bytes each way. Each of the sender's tasks keeps one
connection of its own and writes the request in one go; the answer is read by its
`Content-Length`, by chunks, or to the end of the connection, as the server frames it. A
connection the server closed while it sat idle is opened again once, and the POST sent
again on it: a webhook is delivered at least once, and the receiver settles copies.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

FAILURES = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)
"""What a failed exchange raises (a refused or reset connection, an early end, a garbled
answer); the caller retries the delivery later."""


class Poster:
    """POSTs to one URL over a connection it keeps open between requests."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        self.head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        """Send `body` as JSON with `headers`; the answer's status. Raises one of FAILURES."""
        reused = self._writer is not None
        try:
            return await self._exchange(body, headers)
        except FAILURES:
            self.close()
            if not reused:
                raise
        return await self._exchange(body, headers)  # the idle connection had been closed

    def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()

    async def _exchange(self, body: bytes, headers: dict[str, str]) -> int:
        reader, writer = await self._connection()
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(
            self.head
            + (
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{lines}\r\n"
            ).encode("latin-1")
            + body
        )
        await writer.drain()
        status, keep = await _read_answer(reader)
        if not keep:
            self.close()
        return status

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            context = ssl.create_default_context() if self.tls else None
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, ssl=context
            )
        return self._reader, self._writer


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The final answer's status (interim 1xx answers skipped) and whether the connection
    may carry another request; its body is read and dropped."""
    while True:
        version, status, headers = await _read_head(reader)
        if not 100 <= status < 200:
            break
        if status == 101:
            raise ValueError("the server switched protocols")
    tokens = {t.strip() for t in headers.get(b"connection", b"").split(b",")}
    keep = version == b"HTTP/1.1" and b"close" not in tokens
    if status in (204, 304):
        pass  # no body, whatever the headers say
    elif b"chunked" in headers.get(b"transfer-encoding", b""):
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailers
    elif b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    else:
        await reader.read()  # framed by the end of the connection
        keep = False
    return status, keep


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, int, dict[bytes, bytes]]:
    """An answer's version, status and headers (names and values lower-cased)."""
    version, status, *_ = (await reader.readuntil(b"\r\n")).split(b" ", 2)
    if not version.startswith(b"HTTP/1."):
        raise ValueError("not an HTTP/1.x answer")
    headers: dict[bytes, bytes] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    return version, int(status), headers
