"""PLIF (snnc/runtime/plif.py): the explicit reverse loop against plain autograd in float64, the learnable
decay against the fixed-decay LIF, and the module's MSG and CPNG interface."""

import itertools
import math

import pytest
import torch

from snnc.ops.config import make_config
from snnc.ops.reference import lif_reference
from snnc.runtime.plif import PLIF, PLIFFunction, initial_w, plif_reference

torch.set_num_threads(1)
CASES = list(itertools.product(["hard", "soft"], [True, False], [False, True], ["layer", "channel"],
                               ["triangle(beta=1.0)", "arctan(beta=2.0)", "sigmoid(alpha=4.0)"]))


def inputs(learn: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(6, 3, 4, 2, 2, generator=g, dtype=torch.float64) * 1.5 + 0.6).requires_grad_()
    w = torch.randn(4 if learn == "channel" else (), generator=g, dtype=torch.float64).requires_grad_()
    return x, w, g


@pytest.mark.parametrize("reset, decay_input, detach, learn, surrogate", CASES)
def test_reverse_loop_equals_autograd_in_float64(reset, decay_input, detach, learn, surrogate):
    x, w, g = inputs(learn)
    cfg = make_config(decay=0.5, reset=reset, decay_input=decay_input, detach_reset=detach, surrogate=surrogate)
    params = [v for _, v in cfg.surrogate.params]
    keep = (torch.rand(x.shape, generator=g, dtype=torch.float64) > 0.3).double() / 0.7  # an MSG mask, rescaled
    spikes = PLIFFunction.apply(x, w, cfg, params, keep, None)
    ref = plif_reference(x, w, vth=1.0, reset=reset, decay_input=decay_input, detach_reset=detach,
                         surrogate=cfg.surrogate.name, sg_params=params, keep=keep)
    assert torch.equal(spikes, ref) and 0 < float(spikes.detach().mean()) < 1
    grad = torch.randn(spikes.shape, generator=g, dtype=torch.float64)
    gx, gw = torch.autograd.grad(spikes, (x, w), grad)
    rx, rw = torch.autograd.grad(ref, (x, w), grad)
    assert torch.allclose(gx, rx, rtol=1e-12, atol=1e-12)
    assert torch.allclose(gw, rw, rtol=1e-12, atol=1e-12) and float(rw.abs().max()) > 1e-3


def test_the_learned_decay_is_the_lif_decay():
    """With w = initial_w(decay), PLIF fires the spikes of the fixed LIF of docs/methods.md §1."""
    x = torch.randn(8, 5, 30, dtype=torch.float64) + 0.8
    for decay, decay_input in ((0.5, True), (0.75, False), (0.25, True)):
        w = torch.tensor(initial_w(decay), dtype=torch.float64)
        assert 1 - torch.sigmoid(w).item() == pytest.approx(decay, abs=1e-15)
        cfg = make_config(decay=decay, decay_input=decay_input)
        mine = PLIFFunction.apply(x, w, cfg, [1.0], None, None)
        fixed = lif_reference(x, decay=decay, vth=1.0, reset="hard", decay_input=decay_input, detach_reset=False,
                              surrogate="triangle(beta=1.0)")
        assert torch.equal(mine, fixed)
    assert initial_w(0.5) == 0.0 and initial_w(1 - 1 / 3) == pytest.approx(-math.log(2))  # the paper's -log(tau - 1)


def test_module_trains_its_decay_per_channel():
    torch.manual_seed(0)
    layer = PLIF(channels=3, decay=0.5, surrogate="arctan(beta=1.0)")
    assert layer.w.shape == (3,) and torch.equal(layer.w.detach(), torch.zeros(3))
    x = torch.randn(4, 2, 3, 5) + 1.0
    layer(x).sum().backward()
    assert layer.w.grad.shape == (3,) and bool((layer.w.grad != 0).all())
    torch.optim.SGD(layer.parameters(), lr=0.5).step()
    assert not torch.equal(layer.w.detach(), torch.zeros(3))


def test_module_masks_like_msg_and_records_statistics():
    torch.manual_seed(0)
    x = torch.randn(4, 2, 3, 5) + 1.0

    def grads(mask_p, seed):
        layer = PLIF(decay=0.5, mask_p=mask_p)
        layer.seed = seed
        layer.record_stats = True
        (xi := x.clone().requires_grad_()).grad = None
        layer(xi).sum().backward()
        return xi.grad, layer

    plain, layer = grads(0.0, 0)
    masked, _ = grads(0.5, 0)
    again, _ = grads(0.5, 0)
    other, _ = grads(0.5, 1)
    assert torch.equal(masked, again) and not torch.equal(masked, other) and not torch.equal(masked, plain)
    assert float((masked == 0).float().mean()) > float((plain == 0).float().mean())
    assert layer.h_mean is not None and 0 < float(layer.spike_rate) < 1


def test_a_decay_of_one_cannot_be_learned():
    from snnc.diagnostics import SnncError

    with pytest.raises(SnncError, match="inside"):
        PLIF(decay=1.0)
