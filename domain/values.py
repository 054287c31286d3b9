"""Small immutable values made by the thousand: a cheaper constructor, the same guarantees.

A replay rebuilds every seller's share, line item and ledger posting of an order from its
events, so the runner, the audit and every checkout make a great many of them. The
`__init__` that `dataclasses` writes for a frozen class assigns each field through
`object.__setattr__` (its own `__setattr__` refuses), which made those constructors the
largest single item of a runner's or an audit's own CPU. `quick_init` gives a frozen,
slotted dataclass an `__init__` that sets each slot through its descriptor instead: half
the cost, and the instance is exactly what the generated one makes. Assignment afterwards
is still refused (`FrozenInstanceError`); equality, hashing, `asdict` and pickling are the
dataclass's own.
"""

from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Replace the `__init__` of `cls`, a `@dataclass(frozen=True, slots=True)` without a
    `__post_init__` whose fields are all plain (each a positional-or-keyword argument, without
    a default), with one that sets its slots directly.
    Anything else is refused (TypeError) rather than half supported."""
    params = getattr(cls, "__dataclass_params__", None)
    if not is_dataclass(cls) or params is None or not params.frozen:
        raise TypeError(f"{cls.__name__} must be a frozen dataclass")
    if "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} must have slots and no __post_init__")
    found = fields(cls)
    names = [f.name for f in found]
    if len(found) != len(cls.__dataclass_fields__) or any(
        f.default is not MISSING or f.default_factory is not MISSING or not f.init or f.kw_only
        for f in found
    ):
        raise TypeError(
            f"{cls.__name__}'s fields must be plain: no default, keyword-only, init=False, "
            "InitVar or ClassVar"
        )
    namespace: dict[str, Any] = {f"set_{n}": getattr(cls, n).__set__ for n in names}
    body = "".join(f"    set_{n}(self, {n})\n" for n in names)
    # Generated from the class's own field names, as `dataclasses` itself generates __init__.
    exec(f"def __init__(self, {', '.join(names)}):\n{body}", namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
