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
from typing import Any

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
    add_three_d_secure(web, resources, server, f"http://127.0.0.1:{port}")
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


CHALLENGE_CARDS = {
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_threeDSecureOptional": "4000000000003055",
}
"""Stripe's 3-D Secure test tokens, which localstripe does not know, as the cards they are."""


def add_three_d_secure(web: Any, resources: Any, server: Any, base: str) -> None:
    """Make localstripe's 3-D Secure behave as Stripe's does for a server-side integration:
    Stripe's test tokens; `return_url` on confirm, answered with a `redirect_to_url`
    next_action; and the bank's page (`/_config/3ds/{id}`: localstripe asks no key under
    /_config/; "Complete" / "Fail", like Stripe's hosted test page) that authenticates
    through localstripe's own `_authenticate` and sends the buyer to the return_url.
    localstripe alone refuses return_url and only offers `use_stripe_sdk` (docs/stripe.md)."""
    _alias_test_tokens(resources.PaymentMethod)
    _redirect_on_confirm(server, resources.PaymentIntent, base)
    _bank_page(web, server.app, resources)


def _alias_test_tokens(method: Any) -> None:
    canonical = method._try_get_canonical_test_article.__func__

    def test_article(cls: Any, /, id: str) -> Any:
        if id in CHALLENGE_CARDS:
            card = {"number": CHALLENGE_CARDS[id], "exp_month": "12", "exp_year": "2030"}
            return cls(type="card", card=card | {"cvc": "123"})
        return canonical(cls, id)

    method._try_get_canonical_test_article = classmethod(test_article)


def _redirect_on_confirm(server: Any, intent_class: Any, base: str) -> None:
    confirm = intent_class._api_confirm.__func__

    def confirm_with_return_url(
        cls: Any, /, id: str, payment_method: Any = None, return_url: Any = None, **kwargs: Any
    ) -> Any:
        intent = confirm(cls, id, payment_method, **kwargs)
        if return_url is not None and intent.next_action:
            intent.next_action = {
                "type": "redirect_to_url",
                "redirect_to_url": {"url": f"{base}/_config/3ds/{id}", "return_url": return_url},
            }
        return intent

    route = "/v1/payment_intents/{id}/confirm"
    bound = classmethod(confirm_with_return_url).__get__(None, intent_class)
    handler = server.api_extra(bound, route)
    for registered in server.app.router.routes():  # it holds the original: swap its handler
        if registered.method == "POST" and registered.resource.canonical == route:
            registered._handler = handler


def _bank_page(web: Any, app: Any, resources: Any) -> None:
    async def page(request: Any) -> Any:
        intent_id = request.match_info["id"]
        if _challenged(resources, intent_id) is None:
            return web.Response(status=404, text="no challenge for this payment")
        body = (
            "<!doctype html><title>3D Secure test page</title>"
            f'<form method="post" action="/_config/3ds/{intent_id}/complete">'
            '<button type="submit">Complete</button></form>'
            f'<form method="post" action="/_config/3ds/{intent_id}/fail">'
            '<button type="submit">Fail</button></form>'
        )
        return web.Response(text=body, content_type="text/html")

    async def answer(request: Any) -> Any:
        intent_id, choice = request.match_info["id"], request.match_info["answer"]
        intent = _challenged(resources, intent_id)
        if intent is None or choice not in ("complete", "fail"):
            return web.Response(status=409, text="this payment awaits no answer")
        back = intent.next_action["redirect_to_url"]["return_url"]
        resources.PaymentIntent._api_authenticate(
            intent_id, client_secret=intent.client_secret, success=choice == "complete"
        )
        raise web.HTTPSeeOther(back)

    app.router.add_get("/_config/3ds/{id}", page)
    app.router.add_post("/_config/3ds/{id}/{answer}", answer)


def _challenged(resources: Any, intent_id: str) -> Any:
    """The PaymentIntent if it waits for its buyer behind a redirect, else None."""
    try:
        intent = resources.PaymentIntent._api_retrieve(intent_id)
    except Exception:  # localstripe raises its own errors for unknown ids
        return None
    action = intent.next_action or {}
    return intent if action.get("type") == "redirect_to_url" else None


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
