"""Queries whose cost must not grow with the store: each reads an index in the order it
returns, never every row of its table nor a sort of them. On PostgreSQL the planner is told
to avoid both where it can (a small table would otherwise be scanned whatever its indexes),
so a scan or a sort left in the plan is one no index could spare."""

from __future__ import annotations

import re
from typing import Any

import pytest

from adapters.db import Database
from projections import dashboard

ACCOUNT_PAGE = ["psp_receivable", 50]
QUERIES = {
    "the manual-review queue": (dashboard.REVIEW_SQL, []),
    "the orders in review (a metrics gauge)": (dashboard.IN_REVIEW_SQL, []),
    "an account's first page of postings": (dashboard.entries_sql(after=False), ACCOUNT_PAGE),
    "an account's next page of postings": (
        dashboard.entries_sql(after=True),
        [ACCOUNT_PAGE[0], 1.0, "order", 1, 0, ACCOUNT_PAGE[1]],
    ),
}


def plan(db: Database, sql: str, params: list[Any]) -> str:
    with db.transaction() as tx:
        if db.dialect == "sqlite":
            return "\n".join(
                str(row[-1]) for row in tx.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            )
        tx.execute("SET LOCAL enable_seqscan = off")
        tx.execute("SET LOCAL enable_sort = off")
        return "\n".join(row[0] for row in tx.execute(f"EXPLAIN {sql}", params))


@pytest.mark.parametrize("query", QUERIES)
def test_a_query_reads_an_index_in_its_order(db: Database, query: str) -> None:
    try:
        text = plan(db, *QUERIES[query])
    finally:
        db.close()
    if db.dialect == "sqlite":
        assert "TEMP B-TREE" not in text, text  # a sort
        assert not re.search(r"SCAN \w+$", text, re.MULTILINE), text  # every row, no index
    else:
        assert "Seq Scan" not in text, text
        assert "Sort" not in text, text
