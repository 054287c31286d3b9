"""localstripe (a fake Stripe server by others, from PyPI) as a real process for tests.

`python -m chaos.localstripe --port N` serves it on 127.0.0.1 only, with its state in
memory: localstripe's own command listens on every interface and saves its whole state to
a fixed file (/tmp/localstripe.pickle) that concurrent instances would share. `start()`
runs that process and waits until it answers; `LocalStripe.stop()` ends it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

READY_PATH = "/js.stripe.com/v3/"
"""A page localstripe serves without a key and without side effects."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    from aiohttp import web  # noqa: PLC0415 - test-only dependencies, imported when run
    from localstripe import resources, server  # noqa: PLC0415

    resources.Store.dump_to_disk = lambda self: None  # memory only: no shared pickle
    resources.Store.try_load_from_disk = lambda self: None
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


@dataclass
class LocalStripe:
    """A running localstripe process."""

    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def reset(self) -> None:
        """Forget every object (webhook endpoints stay registered)."""
        httpx.delete(f"{self.url}/_config/data", timeout=10).raise_for_status()

    def add_webhook(self, url: str, secret: str, name: str = "payments") -> None:
        """Send every event to `url`, signed with `secret` (Stripe-Signature)."""
        body = {"url": url, "secret": secret}
        httpx.post(f"{self.url}/_config/webhooks/{name}", json=body, timeout=10).raise_for_status()


def start(port: int, timeout_s: float = 30.0) -> LocalStripe:
    """Run localstripe on 127.0.0.1:`port`, and wait until it answers."""
    command = [sys.executable, "-m", "chaos.localstripe", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited with {process.returncode}")
        try:
            if httpx.get(url + READY_PATH, timeout=0.5).status_code == 200:
                return LocalStripe(url, process)
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("localstripe did not start in time")


if __name__ == "__main__":
    main()
