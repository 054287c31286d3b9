"""The event store's JSON: one codec, so events read back exactly as they were written.

Writing refuses what the reader could not give back faithfully (domain.inputs): integers
beyond 64 bits (orjson reads them as floats), non-finite floats, and text that PostgreSQL or
JSON cannot hold (NUL, unpaired surrogates). The boundaries refuse such input first; this
is the last line, so no such event is ever stored. Otherwise events are written exactly as
the library writes them (its `JSONTranscoder`, so any
eventsourcing tool reads our store). Reading is where the time goes (every projection batch,
every audit, every aggregate load), and there orjson parses the same bytes about three times
faster than `json`. The library's object hook (`{"_type_": …, "_data_": …}` back to a
datetime, UUID or Decimal) is then applied bottom-up, as `json` would apply it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder

from domain.errors import InvalidInput
from domain.inputs import UNSTORABLE_MESSAGE, find_unstorable

NUMBER_SHAPES = (
    bytes(0x30 if chr(b).isdigit() else b if chr(b) in ":,[-" else 0x78 for b in range(128))
    + b"x" * 128
)
"""A table for bytes.translate: each digit becomes "0", what may come before a number in
JSON stays, everything else becomes "x"."""
LONG_NUMBERS = tuple(
    start + sign + b"0" * 19 for start in (b":", b",", b"[") for sign in (b"", b"-")
)
"""How the shapes show a number of 19 digits or more, as every integer beyond 64 bits is
written (in a text, digits follow a quote or another character)."""


class OrjsonTranscoder(JSONTranscoder):
    """`JSONTranscoder` whose `decode` parses with orjson; `encode` writes the library's bytes,
    after a check that the value will read back the same.

    That check walked every value of every event written (domain.inputs.find_unstorable),
    though all but a hostile few pass: writing a checkout's three events took 87-95 µs with
    the walk first, 47 µs this way. The text the library writes shows each thing the walk
    refuses, so it is looked at first and the walk runs only when it shows a suspect (or the
    faster writer raises): a NUL is written `\\u0000`; a surrogate stays in the text, which
    then is not UTF-8; a number beyond 64 bits is written with 19 digits or more; a float
    that is not finite raises, as the writer below refuses them. A suspect that is not one
    (19 digits in a number within range, say) costs the walk, which then passes it, and the
    library's own writer writes it, as before.
    """

    def __init__(self) -> None:
        super().__init__()
        self._strict = json.JSONEncoder(
            default=self._encode_obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )

    def encode(self, obj: Any) -> bytes:
        try:
            data = self._strict.encode(obj).encode("utf8")
        except Exception:  # noqa: S110 - the walk and the library say what is wrong
            pass
        else:
            shapes = b"[" + data.translate(NUMBER_SHAPES)  # "[": a number alone
            if b"\\u0000" not in data and not any(n in shapes for n in LONG_NUMBERS):
                return data
        where = find_unstorable(obj)
        if where is not None:
            raise InvalidInput(f"{where or 'value'}: {UNSTORABLE_MESSAGE}", field=where or None)
        return super().encode(obj)

    def decode(self, data: bytes) -> Any:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:  # let the library raise its own error
            return super().decode(data)
        return self._revive(parsed) if type(parsed) is dict or type(parsed) is list else parsed

    def _revive(self, value: Any) -> Any:
        if type(value) is list:
            return [self._revive(v) if type(v) is dict or type(v) is list else v for v in value]
        names = self.names
        for key, item in value.items():
            kind = type(item)
            if kind is dict:
                # the usual typed value, {"_type_": name, "_data_": text} of a known name, at
                # once (as the library's _decode_obj would: an override of it must come here
                # too); anything else (nested data, an unknown name) by the walk below
                data, name = item.get("_data_"), item.get("_type_")
                if len(item) == 2 and type(data) is str and type(name) is str and name in names:
                    value[key] = names[name].decode(data)
                else:
                    value[key] = self._revive(item)
            elif kind is list:
                value[key] = self._revive(item)
        if len(value) == 2 and "_type_" in value:  # the library's hook checks the rest
            return self._decode_obj(value)
        return value
