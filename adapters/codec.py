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

from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder

from domain.errors import InvalidInput
from domain.inputs import UNSTORABLE_MESSAGE, find_unstorable


class OrjsonTranscoder(JSONTranscoder):
    """`JSONTranscoder` whose `decode` parses with orjson; `encode` is the library's, after a
    check that the value will read back the same."""

    def encode(self, obj: Any) -> bytes:
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
