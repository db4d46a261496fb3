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
    if len(feat) not in (1, 2, 3):
        raise ShapeError(f"bn needs a [C], [C,N] or [C,H,W] input, got {fmt(shapes[0])}")
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


# ---- ops beyond conv nets (snnc/ir/schema_ops.py). Channels come first: an image is
# [C,H,W], a token map [D,N] (D channels per token, N tokens), a vector [F].
def _channels(shape: Shape, op: str, ranks=(1, 2, 3)) -> tuple[Shape, tuple[int, ...]]:
    lead, feat = split(shape)
    if len(feat) not in ranks:
        want = " or ".join({1: "[C]", 2: "[D,N]", 3: "[C,H,W]"}[r] for r in ranks)
        raise ShapeError(f"{op} needs a {want} input, got {fmt(shape)}")
    return lead, feat


def cat(shapes, a) -> Shape:
    lead, first = split(shapes[0])
    for other in shapes[1:]:
        _, feat = split(other)
        if len(feat) != len(first) or feat[1:] != first[1:]:
            raise ShapeError(f"cat joins along channels, so the other dims must agree: {fmt(shapes[0])} and "
                             f"{fmt(other)}", "pool or reshape the inputs to the same size first")
    return (*lead, sum(split(s)[1][0] for s in shapes), *first[1:])


def broadcast(shapes, a) -> Shape:
    """mul: equal dims, or a dim of size 1 on either side (a [C,1,1] gate scales a [C,H,W] map)."""
    lead, left = split(shapes[0])
    _, right = split(shapes[1])
    if len(left) != len(right):
        raise ShapeError(f"mul needs inputs of the same rank, got {fmt(shapes[0])} and {fmt(shapes[1])}")
    out = []
    for x, y in zip(left, right):
        if x != y and 1 not in (x, y):
            raise ShapeError(f"mul inputs do not broadcast: {fmt(shapes[0])} and {fmt(shapes[1])}",
                             "each dim must be equal, or 1 on one side (e.g. a [C,1,1] gate)")
        out.append(max(x, y))
    return (*lead, *out)


def same_all(shapes, a) -> Shape:
    for other in shapes[1:]:
        if other != shapes[0]:
            raise ShapeError(f"inputs differ: {fmt(shapes[0])} and {fmt(other)}")
    return shapes[0]


def tokens(shapes, a) -> Shape:
    lead, feat = split(shapes[0])
    if len(feat) != 3:
        raise ShapeError(f"tokens needs a [C,H,W] input, got {fmt(shapes[0])}",
                         "tokens follows the convolutions of a patch embedding, before any flatten or fc")
    lead, (c, h, w) = _channels(shapes[0], "tokens", (3,))
    return (*lead, c, h * w)


def linear(shapes, a) -> Shape:
    lead, feat = split(shapes[0])
    if len(feat) != 2:
        hint = "use fc on a flat [F] input" if len(feat) == 1 else "turn the map into tokens first: ... -> tokens"
        raise ShapeError(f"linear acts on each token of a [D,N] token map, got {fmt(shapes[0])}", hint)
    return (*lead, a["out"], feat[1])


def ssa(shapes, a) -> Shape:
    out = same_all(shapes, a)
    _, feat = _channels(out, "ssa", (2, 3))
    if feat[0] % a["heads"]:
        raise ShapeError(f"ssa: {a['heads']} heads must divide the {feat[0]} channels",
                         "each head takes an equal share of the channels: pick heads dividing them")
    return out


def sum_tokens(shapes, a) -> Shape:
    lead, feat = _channels(shapes[0], "sum_tokens", (2, 3))
    return (*lead, feat[0], *(1 for _ in feat[1:]))


def mean_tokens(shapes, a) -> Shape:
    lead, feat = _channels(shapes[0], "mean_tokens", (2,))
    return (*lead, feat[0])


def slice_channels(shapes, a) -> Shape:
    lead, feat = split(shapes[0])
    if not feat:
        raise ShapeError(f"slice needs feature dims, got {fmt(shapes[0])}")
    if not a["start"] < a["stop"] <= feat[0]:
        raise ShapeError(f"slice({a['start']}, {a['stop']}) is not a range of the {feat[0]} channels",
                         f"0 <= start < stop <= {feat[0]}")
    return (*lead, a["stop"] - a["start"], *feat[1:])


def vote(shapes, a) -> Shape:
    lead, (f,) = _channels(shapes[0], "vote", (1,))
    if f % a["k"]:
        raise ShapeError(f"vote({a['k']}) needs a multiple of {a['k']} features, got {f}",
                         f"end the layer before it with {a['k']} outputs per class, e.g. fc({a['k']} * classes)")
    return (*lead, f // a["k"])


def layernorm(shapes, a) -> Shape:
    _channels(shapes[0], "layernorm")
    return shapes[0]


def token_map(shapes, a) -> Shape:
    lead, (d, n) = _channels(shapes[0], "token_map", (2,))
    if n != a["size"] ** 2:
        raise ShapeError(f"token_map({a['size']}) needs {a['size'] ** 2} tokens, got {n}")
    return (*lead, d, a["size"], a["size"])
