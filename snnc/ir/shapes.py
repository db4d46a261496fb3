"""Shape inference, one function per op. Shapes are tuples whose leading dims
may be symbolic ("T", "B"); ops act on the trailing feature dims."""

from __future__ import annotations

from snnc.ir.graph import Shape


class ShapeError(ValueError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def fmt(shape: Shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def split(shape: Shape) -> tuple[Shape, tuple[int, ...]]:
    """(symbolic prefix, integer feature dims)."""
    i = 0
    while i < len(shape) and isinstance(shape[i], str):
        i += 1
    return tuple(shape[:i]), tuple(shape[i:])


def _spatial(shape: Shape, op: str) -> tuple[Shape, int, int, int]:
    lead, feat = split(shape)
    if len(feat) != 3:
        hint = "flatten comes after the last conv or pool" if len(feat) == 1 else None
        raise ShapeError(f"{op} needs a [C,H,W] input, got {fmt(shape)}", hint)
    return (lead, *feat)


def _window(size: int, k: int, stride: int, pad: int, op: str, what: str) -> int:
    out = (size + 2 * pad - k) // stride + 1
    if out < 1:
        raise ShapeError(
            f"{op} output would be empty: {what} {size} with k={k}, stride={stride}, pad={pad}",
            "use a smaller kernel or stride, or more padding",
        )
    return out


def conv(shapes, a) -> Shape:
    lead, c, h, w = _spatial(shapes[0], "conv")
    if c % a["groups"] or a["out"] % a["groups"]:
        raise ShapeError(f"conv groups={a['groups']} must divide both in channels ({c}) and out ({a['out']})")
    ho = _window(h, a["k"], a["stride"], a["pad"], "conv", "height")
    wo = _window(w, a["k"], a["stride"], a["pad"], "conv", "width")
    return (*lead, a["out"], ho, wo)


def pool(shapes, a, op="pool") -> Shape:
    lead, c, h, w = _spatial(shapes[0], op)
    if a["pad"] * 2 > a["k"]:
        raise ShapeError(f"{op} pad={a['pad']} must be at most half of k={a['k']}")
    return (*lead, c, _window(h, a["k"], a["stride"], a["pad"], op, "height"),
            _window(w, a["k"], a["stride"], a["pad"], op, "width"))


def adaptive_pool(shapes, a) -> Shape:
    lead, c, _, _ = _spatial(shapes[0], "adaptive_avgpool")
    return (*lead, c, a["size"], a["size"])


def flatten(shapes, a) -> Shape:
    lead, feat = split(shapes[0])
    if not feat:
        raise ShapeError(f"flatten needs feature dims, got {fmt(shapes[0])}")
    n = 1
    for d in feat:
        n *= d
    return (*lead, n)


def fc(shapes, a) -> Shape:
    lead, feat = split(shapes[0])
    if len(feat) != 1:
        raise ShapeError(f"fc needs a flat [F] input, got {fmt(shapes[0])}", "insert flatten before fc")
    return (*lead, a["out"])


def norm(shapes, a) -> Shape:
    _, feat = split(shapes[0])
    if len(feat) not in (1, 3):
        raise ShapeError(f"bn needs a [C] or [C,H,W] input, got {fmt(shapes[0])}")
    return shapes[0]


def same(shapes, a) -> Shape:
    return shapes[0]


def add(shapes, a) -> Shape:
    first = shapes[0]
    for other in shapes[1:]:
        if other != first:
            raise ShapeError(f"add inputs differ: {fmt(first)} and {fmt(other)}")
    return first


def mean_t(shapes, a) -> Shape:
    if not shapes[0] or shapes[0][0] != "T":
        raise ShapeError(f"mean_t needs a [T,...] input, got {fmt(shapes[0])}")
    return shapes[0][1:]


def input_shape(shapes, a) -> Shape:
    return ("T", "B", *a["dims"])


def none(shapes, a) -> Shape:
    return ()
