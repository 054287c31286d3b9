"""What input from outside may hold: one rule, applied at every boundary.

Text is stored in JSON events and in PostgreSQL `TEXT` columns. PostgreSQL cannot hold a NUL
character, and neither JSON (as UTF-8) nor PostgreSQL can hold an unpaired surrogate, so such
text is refused where it enters (API bodies, query values, headers, cookies, forms, PSP
answers and webhooks), never stored. Integers from outside are bounded to what our columns
(`BIGINT`) and money (`domain.money.MAX_AMOUNT`) hold; numbers in text are ASCII digits only
(`"²".isdigit()` is true in Python, and `int("²")` raises).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from domain.errors import InvalidInput

MAX_BIGINT = 2**63 - 1
"""The largest integer a PostgreSQL BIGINT column (and the event store's JSON reader) holds."""
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = (
    "holds a NUL character, an unpaired surrogate or a number out of range, which cannot be stored"
)


def unstorable(text: str) -> bool:
    """True for text that PostgreSQL or JSON cannot hold faithfully."""
    return UNSTORABLE.search(text) is not None


def check_text(value: str, field: str) -> str:
    """`value`, or InvalidInput naming `field`."""
    if unstorable(value):
        raise InvalidInput(UNSTORABLE_MESSAGE, field=field)
    return value


def find_unstorable(value: Any, path: str = "") -> str | None:
    """The dotted path of the first unstorable text or out-of-range number in a JSON-like
    value (keys included), or None when all of it can be stored."""
    if isinstance(value, dict):
        return _first((f"{path}.{k}" if path else str(k), k, v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return _first((f"{path}.{i}" if path else str(i), None, v) for i, v in enumerate(value))
    return None if storable_scalar(value) else path


def storable_scalar(value: Any) -> bool:
    """False for text, integers and floats that cannot be stored faithfully."""
    if isinstance(value, str):
        return not unstorable(value)
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_BIGINT - 1 <= value <= MAX_BIGINT
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def _first(items: Iterable[tuple[str, object, Any]]) -> str | None:
    for where, key, item in items:
        if isinstance(key, str) and unstorable(key):
            return where
        found = find_unstorable(item, where)
        if found is not None:
            return found
    return None


def ascii_int(text: str, *, low: int = 0, high: int = MAX_BIGINT) -> int | None:
    """The integer `text` spells in ASCII digits, if it is within [low, high]; else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):
        return None
    number = int(text)
    return number if low <= number <= high else None


def require_storable(value: Any) -> Any:
    """`value` unchanged, or ValueError saying where it holds something we cannot store (for
    the validators of every model that reads outside input)."""
    where = find_unstorable(value)
    if where is not None:
        raise ValueError(f"{where + ': ' if where else ''}{UNSTORABLE_MESSAGE}")
    return value
