"""The status read's fast lane: `GET /v1/payment-orders/{id}` answered before FastAPI.

Status pages and marketplaces poll this one route far more than all others together, and
most of its cost was FastAPI's routing and parameter handling, not the one query. This
layer answers only the plain case: a canonical order id, no query string, a caller who may
read orders and see this one, found in the read model. It answers with the stored document
exactly as the route would. Everything else (another route or method, a query string, no
or a bad key, an order not found or not the caller's, a database error) goes on to FastAPI,
which gives the same answer and error it always has: the lane changes no behaviour, it only
skips work on the path that needs none.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.db import Database
from api.auth import READERS, caller_for
from bootstrap.settings import Role
from projections import queries

log = logging.getLogger("payments.api")
PREFIX = "/v1/payment-orders/"
ID_LENGTH = 36


class OrderReads:
    """ASGI middleware: the fast lane in front of the app (see the module's docstring)."""

    def __init__(self, app: ASGIApp, db: Database, keys: dict[str, Role]) -> None:
        self.app = app
        self.keys = keys
        self.documents = Documents(db)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        order_id = _plain_read(scope)
        body = await self._document(scope, order_id) if order_id is not None else None
        if body is None:
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _document(self, scope: Scope, order_id: str) -> bytes | None:
        """The stored document, if this request is one the lane answers; None otherwise."""
        caller = caller_for(self.keys, _authorization(scope))
        if caller is None or not caller.roles.intersection(READERS):
            return None  # FastAPI answers 401 or 403
        try:
            found = await self.documents.get(order_id)
        except Exception as error:  # FastAPI's route meets it again and answers as it does
            log.debug("fast status read failed: %s", type(error).__name__)
            return None
        if found is None or not caller.may_see(found[0]):
            return None  # FastAPI answers 404, the same for another client's order
        return found[1].encode()


def _plain_read(scope: Scope) -> str | None:
    """The order id of a plain status read (as the read model stores it), else None."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX) or len(path) != len(PREFIX) + ID_LENGTH:
        return None
    text = path[len(PREFIX) :]
    try:
        canonical = str(UUID(text))
    except ValueError:
        return None
    return text if canonical == text else None  # any other spelling: FastAPI's to judge


def _authorization(scope: Scope) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    values = [v for k, v in headers if k == b"authorization"]
    return values[0].decode("latin-1") if len(values) == 1 else None


BATCH = 64
"""At most this many orders per read-model query."""
Read = asyncio.Future[tuple[str, str] | None]
"""One waiting read: (client id, stored document), or None for an order not found."""


class Documents:
    """Reads of order documents, the ones asked for at once answered by one query.

    While a query is out, the orders asked for meanwhile wait for the next; so under load
    one round trip serves many reads, and alone a read waits for nobody. Each answer is what
    one `queries.order` would have read: a row committed before the query began.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.waiting: dict[str, list[Read]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queries = 0
        """Queries sent so far (each answers every read that waited for it)."""

    async def get(self, order_id: str) -> tuple[str, str] | None:
        """(client id, stored document) of one order, None if the read model lacks it."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # a server's loop lives as long as it; a test's may not
            self.loop, self.waiting, self.reader = loop, {}, None
        future: Read = loop.create_future()
        self.waiting.setdefault(order_id, []).append(future)
        if self.reader is None or self.reader.done():
            self.reader = loop.create_task(self._read_all())
        return await future

    async def _read_all(self) -> None:
        while self.waiting:
            ids = list(self.waiting)[:BATCH]
            batch = {order_id: self.waiting.pop(order_id) for order_id in ids}
            self.queries += 1
            try:
                found = await queries.orders_async(self.db, ids)
            except Exception as error:  # each read waiting for it goes on to FastAPI
                for futures in batch.values():
                    for future in _pending(futures):
                        future.set_exception(error)
                continue
            for order_id, futures in batch.items():
                for future in _pending(futures):
                    future.set_result(found.get(order_id))


def _pending(futures: list[Read]) -> list[Read]:
    """The reads still waiting (a read whose request was dropped is done already)."""
    return [future for future in futures if not future.done()]
