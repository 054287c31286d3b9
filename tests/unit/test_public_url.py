"""`payments serve` without PAYMENTS_PUBLIC_URL sends buyers back to its own address."""

from __future__ import annotations

import pytest

from bootstrap.settings import Settings
from cli.main import _with_public_url


def test_the_default_return_address_is_the_servers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYMENTS_PUBLIC_URL", raising=False)
    served = _with_public_url(Settings(), "127.0.0.1", 9123)
    assert served.public_url == "http://127.0.0.1:9123"


def test_a_configured_public_url_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENTS_PUBLIC_URL", "https://pay.example")
    settings = Settings()
    assert _with_public_url(settings, "127.0.0.1", 9123).public_url == "https://pay.example"
