"""PLIF (snnc/runtime/plif.py): the PyTorch path's explicit reverse loop against plain autograd in float64,
the learnable decay against the fixed-decay LIF, and the module's MSG, statistics and backend interface.
The fused kernels are tests/test_plif_kernels.py."""

import itertools
import math

import pytest
import torch

from snnc.ops.config import make_config
from snnc.ops.mask import keep_mask_torch
from snnc.ops.reference import lif_reference
from snnc.runtime.plif import PLIF, initial_w, plif_reference, run_plif

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
    cfg = make_config(decay=0.5, reset=reset, decay_input=decay_input, detach_reset=detach, surrogate=surrogate,
                      mask_p=0.3, rescale=True)
    params = [v for _, v in cfg.surrogate.params]
    spikes = run_plif(x, w, cfg, None, (77, 5), "torch", None)
    keep = keep_mask_torch(77, 5, x.shape[0], x[0].numel(), 0.3, "cpu").view(x.shape).double() / 0.7  # rescaled
    assert 0.5 < float((keep > 0).double().mean()) < 0.9
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
        fixed = lif_reference(x, decay=decay, vth=1.0, reset="hard", decay_input=decay_input, detach_reset=False,
                              surrogate="triangle(beta=1.0)")
        for backend in ("torch", "auto"):
            assert torch.equal(run_plif(x, w, cfg, None, (0, 0), backend, None), fixed)
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


def test_module_draws_the_lif_mask_key_and_advances_its_iteration():
    """The module's MSG mask is keyed as the LIF module's: mask_key_seed(seed, rank, layer) and the
    iteration counter, advanced once per training forward; gradients equal autograd's with that mask."""
    from snnc.ops.mask import mask_key_seed

    layer = PLIF(channels=3, decay=0.5, mask_p=0.5, rescale=True, layer=2, surrogate="arctan(beta=1.3)").double()
    layer.seed, layer.rank = 5, 1
    x = (torch.randn(4, 2, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 1.0)
    for iteration in (1, 2):
        xi = x.clone().requires_grad_()
        layer.w.grad = None
        layer(xi).sum().backward()
        assert int(layer.iteration) == iteration
        keep = keep_mask_torch(mask_key_seed(5, 1, 2), iteration, 4, 30, 0.5, "cpu").view(x.shape).double() * 2
        xr = x.clone().requires_grad_()
        ref = plif_reference(xr, layer.w, vth=1.0, reset="hard", decay_input=True, detach_reset=False,
                             surrogate="arctan", sg_params=[1.3], keep=keep)
        gx, gw = torch.autograd.grad(ref.sum(), (xr, layer.w))
        torch.testing.assert_close(xi.grad, gx, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(layer.w.grad, gw, rtol=1e-12, atol=1e-12)
    layer.eval()
    layer(x)
    assert int(layer.iteration) == 2


@pytest.mark.parametrize("backend", ["cpu", "torch", "reference"])
def test_module_backends_and_inference(backend):
    """Every backend of the module gives the PyTorch path's spikes and (float64) gradients; without
    gradients the forward gives the same spikes and records the statistics of h."""
    torch.manual_seed(0)
    ref_layer = PLIF(channels=3, decay=0.4, vth=0.7, reset="soft", surrogate="sigmoid(alpha=3.3)", mask_p=0.3).double()
    layer = PLIF(channels=3, decay=0.4, vth=0.7, reset="soft", surrogate="sigmoid(alpha=3.3)", mask_p=0.3,
                 backend=backend).double()
    layer.load_state_dict(ref_layer.state_dict())
    x = torch.randn(5, 2, 3, 4, dtype=torch.float64) + 0.5
    outs = []
    for mod in (ref_layer, layer):
        xi = x.clone().requires_grad_()
        s = mod(xi)
        s.backward(torch.arange(s.numel(), dtype=torch.float64).view(s.shape).cos())
        outs.append((s.detach(), xi.grad, mod.w.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    for a, b in zip(outs[0][1:], outs[1][1:]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    if backend != "reference":
        layer.record_stats = True
        with torch.no_grad():
            assert torch.equal(layer(x), outs[0][0])
        k = torch.sigmoid(layer.w.detach()).view(1, 3, 1)  # h of the docstring's recurrence, recomputed here
        v, hs = torch.zeros_like(x[0]), []
        for t in range(5):
            hh = v + (x[t] - v) * k
            hs.append(hh)
            v = hh - 0.7 * (hh >= 0.7).double()
        hs = torch.stack(hs)
        assert float(layer.h_mean) == pytest.approx(float(hs.mean()), rel=1e-6)
        assert float(layer.h_std) == pytest.approx(float(hs.std(correction=0)), rel=1e-6)
        assert float(layer.spike_rate) == pytest.approx(float((hs >= 0.7).double().mean()), rel=1e-6)
