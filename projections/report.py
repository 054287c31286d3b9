"""What the audit found: counts, the replayed ledger and every violation (shared by the audit
and its checks)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    """What the audit found: counts, the replayed ledger, and every violation."""

    events: int = 0
    orders: int = 0
    seconds: float = 0.0
    positions: dict[str, int] = field(default_factory=dict)
    ledger: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    """Balances replayed from every event."""
    projected_ledger: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    """Balances replayed from the events the ledger projection has seen."""
    expected_rows: int = 0
    checked: Counter[str] = field(default_factory=Counter)
    violations: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def violate(self, check: str, order_id: object, detail: str) -> None:
        self.violations.append({"check": check, "order_id": str(order_id), "detail": detail})

    def merge(self, other: Report) -> None:
        """Add what another process found in its share of the same snapshot."""
        self.events += other.events
        self.orders += other.orders
        self.expected_rows += other.expected_rows
        for mine, theirs in (
            (self.ledger, other.ledger),
            (self.projected_ledger, other.projected_ledger),
        ):
            for key, amount in theirs.items():
                mine[key] += amount
        self.checked.update(other.checked)
        self.violations.extend(other.violations)

    def as_dict(self) -> dict[str, Any]:
        rate = self.events / self.seconds if self.seconds else 0.0
        return {
            "ok": self.ok,
            "events": self.events,
            "orders": self.orders,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(rate),
            "positions": self.positions,
            "checks": dict(sorted(self.checked.items())),
            "ledger": [
                {"account": a, "currency": c, "balance": b}
                for (a, c), b in sorted(self.ledger.items())
            ],
            "violations": self.violations,
        }
