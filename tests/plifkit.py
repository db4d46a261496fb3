"""Shared PLIF test inputs and runs (tests/test_plif_kernels.py, test_plif_model.py).

Inputs are random with a learned k = sigmoid(w) around 0.5, scaled so that many neurons fire and
many h fall inside every surrogate's support; `check` asserts it, so no comparison can pass on
silent inputs. No constant is a float32 number (vth 1.1, beta 1.3, ...): a float64 path that
rounds any of them to float32 misses the 1e-12 tolerance by orders of magnitude.
"""

from __future__ import annotations

import itertools

import torch

from snnc.ops.config import make_config
from snnc.ops.mask import keep_mask_torch, mask_key_seed
from snnc.runtime.plif import plif_reference, run_plif
from test_ops_cases import SURROGATES

VTH = 1.1
KEY = mask_key_seed(11, 0, 3)
ITERATION = 9
MASKS = {"nomask": {}, "mask": dict(mask_p=0.4), "rescale": dict(mask_p=0.4, rescale=True)}


def cases():
    """(reset, decay_input, detach_reset, learn, surrogate, mask) over every combination of the first
    four; surrogates and mask settings take turns, so each meets both resets, charges and learns."""
    out = []
    for i, (reset, di, detach, learn) in enumerate(itertools.product(["hard", "soft"], [True, False], [False, True],
                                                                     ["layer", "channel"])):
        out.append((reset, di, detach, learn, SURROGATES[i % len(SURROGATES)], list(MASKS)[i % len(MASKS)]))
    return out


def case_id(case) -> str:
    reset, di, detach, learn, surrogate, mask = case
    return f"{reset}-{'decayinput' if di else 'decay'}-{'detach' if detach else 'grad'}-{learn}-" \
           f"{surrogate.split('(')[0]}-{mask}"


def config(case):
    reset, di, detach, _, surrogate, mask = case
    return make_config(decay=0.5, vth=VTH, reset=reset, decay_input=di, detach_reset=detach, surrogate=surrogate,
                       **MASKS[mask])


def inputs(case, T: int, shape=(2, 3, 4, 5), dtype=torch.float64, seed=0):
    """(x [T, *shape] with channels at dim 2, w: a scalar or [channels]) requiring gradients."""
    _, di, _, learn, _, _ = case
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn((T, *shape), generator=g, dtype=torch.float64) * 0.7 + 0.55) * VTH * (2.0 if di else 1.0)
    w = torch.randn(shape[1] if learn == "channel" else (), generator=g, dtype=torch.float64) * 0.5
    return x.to(dtype).requires_grad_(), w.to(dtype).requires_grad_()


def run(backend: str, x, w, cfg, seed=1):
    """(spikes, dL/dx, dL/dw) for a random upstream gradient, with the MSG key KEY, ITERATION."""
    spikes = run_plif(x, w, cfg, None, (KEY, ITERATION), backend, None)
    g = torch.Generator().manual_seed(seed)
    grad = torch.randn(spikes.shape, generator=g, dtype=torch.float64).to(spikes.dtype)
    gx, gw = torch.autograd.grad(spikes, (x, w), grad)
    return spikes.detach(), gx, gw


def reference(x, w, cfg, keep=None, seed=1):
    """run() of plif_reference (plain autograd) with the given keep mask (bool, x's shape)."""
    factor = None if keep is None else keep.to(x.dtype) * cfg.keep_scale
    spikes = plif_reference(x, w, vth=cfg.vth, reset=cfg.reset, decay_input=cfg.decay_input,
                            detach_reset=cfg.detach_reset, surrogate=cfg.surrogate.name,
                            sg_params=cfg.default_params(), keep=factor)
    g = torch.Generator().manual_seed(seed)
    grad = torch.randn(spikes.shape, generator=g, dtype=torch.float64).to(spikes.dtype)
    gx, gw = torch.autograd.grad(spikes, (x, w), grad)
    return spikes.detach(), gx, gw


def torch_keep(x, cfg):
    """The PyTorch path's MSG mask (the C kernel's too) for KEY, ITERATION, or None unmasked."""
    if not cfg.masked:
        return None
    return keep_mask_torch(KEY, ITERATION, x.shape[0], x[0].numel(), cfg.mask_p, "cpu").view(x.shape)


def check(got, want, rtol=1e-12):
    """Spikes equal; dL/dx and dL/dw within rtol of the largest reference value; inputs that test something.
    (One step without decay_input has dL/dw = 0 exactly: dh/dk = -v[-1] = 0.)"""
    spikes, gx, gw = got
    ref_spikes, ref_gx, ref_gw = want
    assert spikes.dtype == ref_spikes.dtype and torch.equal(spikes, ref_spikes), \
        f"{(spikes != ref_spikes).sum().item()} spikes differ"
    assert 0.1 < ref_spikes.double().mean().item() < 0.9
    pairs = [(gx, ref_gx), (gw, ref_gw)]
    if not ref_gw.any():
        assert spikes.shape[0] == 1 and not gw.any()
        pairs = pairs[:1]
    for a, b in pairs:
        scale = b.abs().max().item()
        assert scale > 1e-3, "a reference gradient is (nearly) zero: the case tests nothing"
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale)
