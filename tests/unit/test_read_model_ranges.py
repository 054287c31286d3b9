"""How the audit reads a chunk's read-model rows (projections/checks.ReadModels.load): as
one range of order ids when every order's `order_view` row shows the range holds its id,
otherwise by the list of ids, so that no collation can hide a row from the audit.

The store here is a fake (a port): a few rows per table, and a collation of its own."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from projections.checks import TABLES, ReadModels

IDS = ["0a", "3f", "a1", "e9"]  # as `str(UUID)` sorts them: digits first


def bytewise(key: str) -> Any:
    return key


def letters_first(key: str) -> Any:
    return [(not c.isalpha(), c) for c in key]


class FakeStore:
    """Each read-model table with one row per id (none in `missing`), read as a server with
    `collation` would read it; remembers the statements' tables and how they were bounded."""

    def __init__(self, collation: Callable[[str], Any], missing: Sequence[str] = ()) -> None:
        self.collation = collation
        self.missing = set(missing)
        self.statements: list[tuple[str, str]] = []

    def in_list(self, values: Sequence[Any]) -> tuple[str, list[Any]]:  # the Database port's
        return "= ANY(%s)", [list(values)]

    def execute(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:  # the Tx port's
        table = re.search(r"FROM (\w+)", sql).group(1)  # type: ignore[union-attr]
        ranged = "BETWEEN" in sql
        self.statements.append((table, "range" if ranged else "list"))
        if ranged:
            low, high = map(self.collation, params)
            wanted: Callable[[str], bool] = lambda key: low <= self.collation(key) <= high  # noqa: E731
        else:
            wanted = params[0].__contains__
        keys = [k for k in IDS if wanted(k) and not (table == "order_view" and k in self.missing)]
        if table == "dispute_view":  # selects its dispute id first, then the order id
            return [(f"dispute-{key}", key, "open") for key in keys]
        return [(key, 1.0, "row") for key in keys]


def load(store: FakeStore, ids: list[str]) -> ReadModels:
    return ReadModels.load(store, store, ids)  # type: ignore[arg-type]


def test_ids_the_range_holds_are_read_as_one_range() -> None:
    store = FakeStore(bytewise)
    models = load(store, IDS)
    assert sorted(models.orders) == sorted(models.ledger) == sorted(models.disputes) == IDS
    assert [how for _, how in store.statements] == ["range"] * len(TABLES)


def test_ids_a_collation_orders_apart_are_read_by_their_list() -> None:
    store = FakeStore(letters_first)  # "a1" < "e9" < "0a" < "3f": from "0a" to "e9" is empty
    models = load(store, IDS)
    assert sorted(models.orders) == sorted(models.attempts) == sorted(models.work) == IDS
    assert sorted(models.ledger) == sorted(models.failures) == sorted(models.challenges) == IDS
    assert sorted(models.disputes) == IDS
    assert store.statements == [("order_view", "range")] + [(t, "list") for t in TABLES]


def test_an_order_without_its_row_yet_has_the_others_read_by_the_list() -> None:
    store = FakeStore(bytewise, missing=["3f"])  # the orders read model lags behind
    models = load(store, IDS)
    assert sorted(models.orders) == ["0a", "a1", "e9"]
    assert sorted(models.ledger) == IDS
    assert [how for _, how in store.statements] == ["range"] + ["list"] * len(TABLES)


def test_a_chunk_of_no_orders_reads_no_rows() -> None:
    store = FakeStore(bytewise)  # every order of a chunk undecodable leaves it empty
    models = load(store, [])
    assert not (models.orders or models.attempts or models.ledger or models.disputes)
