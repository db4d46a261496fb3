"""Saving less for the backward pass: spikes kept as bits, segments recomputed (docs/memory.md).

Generated models compiled with a memory policy (`snnc compile --memory pack|recompute`)
use two things from here; the plan comes from the `plan-memory` pass:

- `packed_spikes()`: a context around the model's forward. While it is active every LIF
  layer (`snnc.ops.LIF`) notes the storage of its spikes, and any tensor that autograd
  saves for backward from such a storage (a conv's, pool's or linear's input, a
  segment's input) is kept as 1 bit per value (`snnc.ops.bits`), shared by all savers,
  and unpacked to the same bits when the backward pass reads it. Packing checks every
  value: a tensor holding anything but 1.0 and +0.0 is kept as it is, so a plan can
  never change a gradient. Hooks already active outside (say, a tool counting saved
  tensors) see the packed bytes: they are composed, not replaced.
- `recompute(fn, modules, T, *inputs)`: runs `fn(T, *inputs)` (a few layers ending in a
  LIF layer) without keeping anything but `inputs`, and runs it again in backward to
  get its gradients. The replay sees the modules' buffers (BN running statistics, the
  MSG iteration) as the forward saw them and leaves them as it found them, so the
  replay computes what the forward did, bit for bit, and changes no state.

Under torch.compile both are no-ops (the model runs as with policy `store`).
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager

import torch

from snnc.ops import bits

_LOCAL = threading.local()


class _Packing:
    """The state of one `packed_spikes()` context: noted spike storages and their packed bits."""

    def __init__(self, outer):
        self.outer = outer                      # (pack, unpack) hooks active around this context, or None
        self.spikes: set[int] = set()           # data_ptr of the storages LIF layers wrote spikes into
        self.cache: dict[int, tuple] = {}       # storage -> (weakref of a saver's tensor, version, (bits, numel))


class _Bits:
    """A saved tensor kept as bits of its whole storage: the payload (the bits, or what an outer hook
    made of them) and the view of the storage that the saver kept."""

    __slots__ = ("payload", "numel", "shape", "stride", "offset", "dtype", "device")

    def __init__(self, payload, numel: int, x: torch.Tensor):
        self.payload, self.numel = payload, numel
        self.shape, self.stride, self.offset = x.shape, x.stride(), x.storage_offset()
        self.dtype, self.device = x.dtype, x.device


class _Kept:
    """A saved tensor kept as autograd would keep it (the payload of an outer hook, or the tensor)."""

    __slots__ = ("payload",)

    def __init__(self, payload):
        self.payload = payload


def saved_storages(fn, *args, exclude=()) -> dict[int, int]:
    """{storage address: bytes} of every storage autograd saves for backward while fn(*args) runs,
    each counted once, the storages of the tensors in `exclude` (parameters, buffers) left out: saved
    activations as docs/memory.md counts them (tests/test_memory_predict.py, bench/memory.py)."""
    own = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in own:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outputs = fn(*args)
    del outputs
    return seen


def _active() -> _Packing | None:
    return getattr(_LOCAL, "packing", None)


def replaying() -> bool:
    """Whether a recomputed segment is running again in backward: layers then leave what they
    record (LIF statistics, which CPNG reads) as the forward left it."""
    return getattr(_LOCAL, "replaying", False)


def note_spikes(spikes: torch.Tensor) -> None:
    """Marks `spikes` (a LIF layer's output) for packing wherever autograd saves it in this forward."""
    packing = _active()
    if packing is not None and not torch.compiler.is_compiling():
        packing.spikes.add(spikes.untyped_storage().data_ptr())


def _whole_storage(x: torch.Tensor) -> torch.Tensor:
    """x's storage as one flat tensor of x's dtype."""
    n = x.untyped_storage().nbytes() // x.element_size()
    return x.new_empty(0).set_(x.untyped_storage(), 0, (n,), (1,))


def _bits_of(packing: _Packing, x: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """(bits of x's whole storage, its length), packed once per storage and shared by every saver
    and every view; None unless the storage holds spikes noted in this forward."""
    storage = x.untyped_storage().data_ptr()
    if storage not in packing.spikes:
        return None
    hit = packing.cache.get(storage)
    # A live tensor of the earlier saver keeps the storage alive, so the storage is still the one
    # packed then; the version counter (shared by views) says whether it changed in place since.
    if hit is not None and hit[0]() is not None and hit[1] == x._version:
        return hit[2]
    whole = _whole_storage(x)
    packed = bits.pack(whole)
    if packed is None:
        return None
    packing.cache[storage] = (weakref.ref(x), x._version, (packed, whole.numel()))
    return packed, whole.numel()


def _pack_hook(packing: _Packing):
    outer_pack = packing.outer[0] if packing.outer else None

    def pack(x: torch.Tensor):
        found = _bits_of(packing, x)
        if found is None:
            return _Kept(outer_pack(x) if outer_pack else x)
        packed, numel = found
        return _Bits(outer_pack(packed) if outer_pack else packed, numel, x)

    return pack


def _unpack_hook(packing: _Packing):
    outer_unpack = packing.outer[1] if packing.outer else None

    def unpack(saved):
        payload = outer_unpack(saved.payload) if outer_unpack else saved.payload
        if isinstance(saved, _Kept):
            return payload
        whole = bits.unpack(payload.to(saved.device), saved.numel, saved.dtype)
        return whole.as_strided(saved.shape, saved.stride, saved.offset)

    return unpack


def _outer_hooks():
    """The saved-tensor hooks active now, which ours pass their results to (None if none, or if this
    torch has no way to ask: then an outer hook sees nothing saved inside the model's forward)."""
    top = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks", None)
    return top(False) if top is not None else None


@contextmanager
def packed_spikes():
    """Spikes saved for backward inside this block are kept as bits (see the module docstring)."""
    if torch.compiler.is_compiling() or _active() is not None:
        yield
        return
    packing = _Packing(_outer_hooks())
    _LOCAL.packing = packing
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack_hook(packing), _unpack_hook(packing)):
            yield
    finally:
        _LOCAL.packing = None


# ------------------------------------------------------------------------------- recompute
def _buffers(modules) -> list[torch.Tensor]:
    return [b for m in modules for b in m.buffers()]


def _parameters(modules) -> list[torch.nn.Parameter]:
    seen, out = set(), []
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


class _Replay:
    """What backward needs to run a segment again: the function, its modules, T and the buffers before it ran."""

    def __init__(self, fn, modules, T: int):
        self.fn, self.modules, self.T = fn, modules, T
        self.buffers = _buffers(modules)
        self.before = [b.clone() for b in self.buffers]

    @contextmanager
    def rewound(self):
        """The modules' buffers as the forward found them, and afterwards as they were before: the
        replay and its backward (which may read saved buffers, as BN's running statistics) run inside."""
        now = [b.clone() for b in self.buffers]
        outer = replaying()
        try:
            _assign(self.buffers, self.before)
            _LOCAL.replaying = True
            yield
        finally:
            _LOCAL.replaying = outer
            _assign(self.buffers, now)


def _assign(buffers, values) -> None:
    """buffers[i] = values[i] in place, touching only those that differ: a buffer saved for a backward
    (the surrogate parameters) must keep its version."""
    with torch.no_grad():
        for b, v in zip(buffers, values):
            if not torch.equal(b, v):
                b.copy_(v)


class RecomputeFunction(torch.autograd.Function):
    """out = fn(T, *inputs), keeping only `inputs` (as any saved tensor: spikes as bits) for backward."""

    @staticmethod
    def forward(ctx, replay: _Replay, n_inputs: int, *tensors):
        inputs = tensors[:n_inputs]
        ctx.replay, ctx.n_inputs = replay, n_inputs
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            return replay.fn(replay.T, *inputs)

    @staticmethod
    def backward(ctx, grad):
        n = ctx.n_inputs
        needs = ctx.needs_input_grad[2:]
        saved = ctx.saved_tensors
        inputs = [x.detach().requires_grad_(need) for x, need in zip(saved, needs[:n])]
        params = [p for p, need in zip(_parameters(ctx.replay.modules), needs[n:]) if need]
        wanted = [x for x in inputs if x.requires_grad] + params
        replay = ctx.replay
        with replay.rewound():
            with torch.enable_grad():
                out = replay.fn(replay.T, *inputs)
            grads = iter(torch.autograd.grad(out, wanted, grad, allow_unused=True) if wanted else ())
        result = [next(grads) if x.requires_grad else None for x in inputs]
        result += [next(grads) if need else None for need in needs[n:]]
        del ctx.replay
        return (None, None, *result)


def recompute(fn, modules, T: int, *inputs):
    """fn(T, *inputs), recomputed in backward instead of keeping what it saves (see the module docstring).

    `modules` are those `fn` calls: their parameters get gradients, their buffers are restored
    around the replay. `fn` must return one tensor and must not draw random numbers.
    """
    if torch.compiler.is_compiling() or not torch.is_grad_enabled():
        return fn(T, *inputs)
    params = _parameters(modules)
    if not any(x.requires_grad for x in inputs) and not any(p.requires_grad for p in params):
        return fn(T, *inputs)
    return RecomputeFunction.apply(_Replay(fn, modules, T), len(inputs), *inputs, *params)
