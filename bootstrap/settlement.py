"""The configured PSP: its connector (for the composition root) and where its settlement
report comes from (for `payments reconcile` and the worker's schedule alike)."""

from __future__ import annotations

from datetime import datetime

from adapters.psp.simulator import HttpPSP
from adapters.psp.stripe import StripePSP
from adapters.psp.stripe_report import stripe_report
from adapters.settlement_report import DEFAULT_SPAN, pull
from bootstrap.settings import Settings
from domain.psp import PSPOutage, PSPPort


def fetch_report(settings: Settings, start: datetime | None, end: datetime) -> bytes:
    """The report for [start, end) (start: three days before end) as CSV in our columns:
    the simulator serves it; Stripe's is its balance transactions. Raises ValueError when
    the PSP cannot give it."""
    start = start or end - DEFAULT_SPAN
    if settings.psp != "stripe":
        return pull(settings.psp_url or "", start, end)
    psp = stripe_connector(settings)
    try:
        return stripe_report(psp, start, end)
    except PSPOutage as error:
        raise ValueError(f"Stripe did not answer: {error.message}") from None
    finally:
        psp.close()


def connector(settings: Settings, psp_url: str | None) -> PSPPort:
    """The PSP connector PAYMENTS_PSP names. `psp_url` overrides PAYMENTS_PSP_URL (the
    in-process simulator)."""
    if settings.psp == "stripe":
        return stripe_connector(settings)
    url = psp_url or settings.psp_url
    if not url:
        raise ValueError("no PSP URL: set PAYMENTS_PSP_URL, or run `payments serve` without it")
    return HttpPSP(url, settings.psp_timeout_s)


def stripe_connector(settings: Settings) -> StripePSP:
    key = settings.stripe_secret_key.get_secret_value()
    if not key:
        raise ValueError("PAYMENTS_STRIPE_SECRET_KEY is required with PAYMENTS_PSP=stripe")
    return StripePSP(key, settings.stripe_api_base, settings.psp_timeout_s)
