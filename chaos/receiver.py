"""A marketplace's webhook receiver, as a process of its own, for e2e tests and chaos runs.

`python -m chaos.receiver --port N` verifies every delivery with the `standardwebhooks`
package and keeps the verified events in memory. `PUT /_control` sets the endpoint secret
and a script of misbehaviours for the next deliveries ("fail": 500, "hang": answer after
`hang_s`, "slow": after 0.2 s, "down": drop the connection); `GET /_control` reports what it
received (in arrival order) and how many deliveries did not verify. Until it has a secret it
answers 503 (a receiver being set up), so a delivery that arrives between the endpoint's
creation and the secret reaching it is retried, not counted as failing verification.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class Receiver:
    def __init__(self) -> None:
        self.secret = ""
        self.script: list[str] = []
        self.hang_s = 3.0
        self.received: list[dict[str, Any]] = []
        self.unverified = 0

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        if not self.secret:  # not configured yet (its endpoint is being created): try later
            return Response(status_code=503)
        mode = self.script.pop(0) if self.script else "ok"
        if mode in ("hang", "slow"):
            await asyncio.sleep(self.hang_s if mode == "hang" else 0.2)
        if mode == "fail":
            return Response(status_code=500)
        try:
            event = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:  # counted: a test asserts there are none
            self.unverified += 1
            return Response(status_code=400)
        self.received.append(event)
        return Response(status_code=204)

    async def control(self, request: Request) -> Response:
        if request.method == "PUT":
            settings = await request.json()
            self.secret = settings.get("secret", self.secret)
            self.script = list(settings.get("script", []))
            self.hang_s = float(settings.get("hang_s", self.hang_s))
            return Response(status_code=204)
        return JSONResponse({"received": self.received, "unverified": self.unverified})


def app() -> Starlette:
    receiver = Receiver()
    return Starlette(
        routes=[
            Route("/hooks", receiver.hook, methods=["POST"]),
            Route("/_control", receiver.control, methods=["GET", "PUT"]),
            Route("/healthz", lambda request: JSONResponse({"status": "ok"})),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app(), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
