"""An immutable, hashable, sorted attribute mapping for IR nodes and graphs."""

from __future__ import annotations

from collections.abc import Mapping


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_freeze(v) for v in value)
    return value


class Attrs(Mapping):
    """Sorted (name, value) pairs; equality and hashing ignore insertion order.

    Floats compare by value with ints of the same value only if their types
    match, so `1` and `1.0` stay distinct (the printer spells them differently).
    """

    __slots__ = ("_items",)

    def __init__(self, items=(), **kw):
        merged = dict(items.items() if isinstance(items, Mapping) else items)
        merged.update(kw)
        self._items = tuple(sorted((k, _freeze(v)) for k, v in merged.items()))

    def __getitem__(self, key):
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self):
        return (k for k, _ in self._items)

    def __len__(self):
        return len(self._items)

    def _typed(self):
        return tuple((k, type(v).__name__, v) for k, v in self._items)

    def __eq__(self, other):
        if isinstance(other, Attrs):
            return self._typed() == other._typed()
        return NotImplemented

    def __hash__(self):
        return hash(self._typed())

    def __repr__(self):
        return "Attrs(" + ", ".join(f"{k}={v!r}" for k, v in self._items) + ")"

    def set(self, **changes) -> "Attrs":
        """A copy with `changes` applied (a value of None removes the key); self if unchanged."""
        merged = dict(self._items)
        for k, v in changes.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        new = Attrs(merged)
        return self if new == self else new
