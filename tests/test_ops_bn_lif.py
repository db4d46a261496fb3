"""bn_lif (BatchNorm folded into the LIF loops) against torch BatchNorm followed by the reference LIF."""

import pytest
import torch

from snnc.diagnostics import SnncError
from snnc.ops import bn_lif, lif, mask, torch_engine
from test_ops_cases import reference


def make_case(shape=(4, 3, 5, 6, 7), seed=0):
    gen = torch.Generator().manual_seed(seed)
    C = shape[2]
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2.0 + 0.3).requires_grad_()
    weight = (torch.rand(C, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    bias = (torch.randn(C, generator=gen, dtype=torch.float64) * 0.3 + 0.6).requires_grad_()
    running = [torch.randn(C, generator=gen, dtype=torch.float64), torch.rand(C, generator=gen, dtype=torch.float64)
               + 0.5]
    grad_out = torch.randn(shape, generator=gen, dtype=torch.float64)
    return x, weight, bias, running, grad_out


def bn_then_reference(x, weight, bias, running, training, momentum, eps, scale, lif_kwargs):
    """torch.nn.BatchNorm (its own module, on the merged T*B batch), then the eager reference LIF."""
    T, B, C = x.shape[:3]
    bn = {3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm1d, 5: torch.nn.BatchNorm2d}[x.dim()](
        C, eps=eps, momentum=momentum, dtype=torch.float64)
    bn.train(training)
    with torch.no_grad():
        bn.running_mean.copy_(running[0])
        bn.running_var.copy_(running[1])
    # BN's own affine is off: weight and bias are applied after the tdBN factor, as docs/methods.md §9 writes.
    bn.weight, bn.bias = None, None
    bn.affine = False
    xhat = bn(x.reshape(T * B, *x.shape[2:])).view(x.shape)
    shape = (1, 1, C) + (1,) * (x.dim() - 3)
    y = weight.view(shape) * (scale * xhat) + bias.view(shape)
    return reference(y, lif_kwargs), (bn.running_mean, bn.running_var)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6, 7), (3, 2, 9), (1, 4, 3, 37)], ids=["conv", "fc", "T1-1d"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("lif_kwargs", [dict(surrogate="sigmoid(alpha=4.0)", reset="soft"),
                                        dict(surrogate="triangle(beta=2.0)", tau=2.0, decay_input=True, vth=0.5)],
                         ids=["soft-sigmoid", "tau-triangle"])
def test_bn_lif_matches_batchnorm_then_lif(shape, training, lif_kwargs, monkeypatch):
    monkeypatch.setattr(mask, "CHUNK", 128)  # several neuron blocks, cutting through channels
    monkeypatch.setattr(torch_engine, "CHUNK", 128)
    x, weight, bias, running, grad_out = make_case(shape)
    bn_args = dict(training=training, momentum=0.1, eps=1e-5, scale=0.7)
    mine = [r.clone() for r in running]
    spikes = bn_lif(x, weight, bias, *mine, backend="torch", **bn_args, **lif_kwargs)
    ref_spikes, ref_running = bn_then_reference(x, weight, bias, running, **bn_args, lif_kwargs=lif_kwargs)
    assert 0.1 < ref_spikes.mean().item() < 0.9
    assert torch.equal(spikes, ref_spikes)
    got = torch.autograd.grad(spikes, (x, weight, bias), grad_out)
    want = torch.autograd.grad(ref_spikes, (x, weight, bias), grad_out)
    for name, a, b in zip(("x", "weight", "bias"), got, want):
        assert b.abs().max() > 0, name
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item(), msg=name)
    for a, b in zip(mine, ref_running):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_bn_lif_reference_backend_is_the_unfused_composition():
    x, weight, bias, running, grad_out = make_case()
    a = [r.clone() for r in running]
    b = [r.clone() for r in running]
    fused = bn_lif(x, weight, bias, *a, training=True, momentum=0.2, eps=1e-5, backend="torch")
    plain = bn_lif(x, weight, bias, *b, training=True, momentum=0.2, eps=1e-5, backend="reference")
    assert torch.equal(fused, plain)
    for ra, rb in zip(a, b):
        torch.testing.assert_close(ra, rb)


def test_bn_lif_without_affine_or_running_stats():
    x, _, _, _, grad_out = make_case()
    spikes = bn_lif(x, None, None, None, None, training=False, momentum=0.1, eps=1e-5)
    ref, _ = bn_then_reference(x, torch.ones(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64),
                               [torch.zeros(5), torch.ones(5)], True, 0.0, 1e-5, 1.0, {})
    assert torch.equal(spikes, ref)
    torch.testing.assert_close(torch.autograd.grad(spikes, x, grad_out)[0], torch.autograd.grad(ref, x, grad_out)[0])


def test_bn_lif_saves_one_tensor_for_backward():
    x, weight, bias, running, _ = make_case()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        bn_lif(x, weight, bias, *running, training=True, momentum=0.1, eps=1e-5)
    big = [t for t in saved if t.numel() == x.numel()]
    assert len(big) == 1 and sum(t.numel() for t in saved) < x.numel() + 100


@pytest.mark.parametrize("args, message", [
    (dict(x=torch.ones(4, 3)), "T, B, C"),
    (dict(weight=torch.ones(4)), "weight must have shape"),
    (dict(running_var=None), "both running_mean and running_var"),
])
def test_bn_lif_bad_arguments(args, message):
    call = dict(x=torch.ones(2, 3, 5), weight=torch.ones(5), bias=torch.zeros(5), running_mean=torch.zeros(5),
                running_var=torch.ones(5))
    call.update(args)
    with pytest.raises(SnncError, match=message):
        bn_lif(call.pop("x"), *call.values(), training=True, momentum=0.1, eps=1e-5)


@pytest.mark.parametrize("c_statistics", [True, False], ids=["with-cc", "no-cc"])
def test_torch_path_runs_batchnorm_then_lif_without_the_c_statistics(c_statistics, monkeypatch):
    """Without the C statistics kernel the fused loop loses to torch's BatchNorm then lif on the
    PyTorch path (bench/bn_lif.py, "torch, no cc"), so the layer runs as exactly that."""
    from snnc.backends.cpu import bn as cpu_bn

    if not c_statistics:
        monkeypatch.setattr(cpu_bn, "library", lambda dtype: None)
    elif cpu_bn.library(torch.float32) is None:
        pytest.skip("no C compiler here")
    prologues = []
    forward = torch_engine.forward
    monkeypatch.setattr(torch_engine, "forward", lambda x2d, cfg, bn=None, store_h=True:
                        prologues.append(bn) or forward(x2d, cfg, bn, store_h))
    x, weight, bias, running, grad_out = (t.float() if isinstance(t, torch.Tensor) else [r.float() for r in t]
                                          for t in make_case((4, 3, 6, 5, 5)))
    x, weight, bias = (t.detach().requires_grad_() for t in (x, weight, bias))
    mine = [r.clone() for r in running]
    spikes = bn_lif(x, weight, bias, *mine, training=True, momentum=0.1, eps=1e-5, scale=0.7, backend="torch")
    assert len(prologues) == 1 and (prologues[0] is not None) == c_statistics
    bn = torch.nn.BatchNorm2d(6, momentum=0.1, eps=1e-5)
    with torch.no_grad():
        bn.weight.copy_(weight * 0.7)
        bn.bias.copy_(bias)
        bn.running_mean.copy_(running[0])
        bn.running_var.copy_(running[1])
    want = lif(bn(x.flatten(0, 1)).view(x.shape), backend="torch")
    if not c_statistics:
        assert torch.equal(spikes, want)
        torch.testing.assert_close(mine, [bn.running_mean, bn.running_var], rtol=0, atol=0)
    assert 0.1 < spikes.mean().item() < 0.9
    gx, gw, gb = torch.autograd.grad(spikes, (x, weight, bias), grad_out)
    wx, wbn, wb = torch.autograd.grad(want, (x, bn.weight, bn.bias), grad_out)
    torch.testing.assert_close(gx, wx, rtol=1e-4, atol=1e-4 * wx.abs().max().item())
    torch.testing.assert_close(gw, wbn * 0.7, rtol=1e-4, atol=1e-4 * wbn.abs().max().item())
    torch.testing.assert_close(gb, wb, rtol=1e-4, atol=1e-4 * wb.abs().max().item())


@pytest.mark.parametrize("training", [False, True], ids=["running", "batch"])
def test_folded_factors_are_the_float64_fold_rounded_once(training):
    """The per-channel a and b of y = x*a + b are those snnc.export folds into the deployed weights
    (float64, rounded once): in eval mode bit for bit; with batch statistics from the C kernel's
    double sums, to the last bit of float32."""
    from snnc.ops.function import bn_stats

    gen = torch.Generator().manual_seed(3)
    C = 64
    x = torch.randn(4, 5, C, 3, 3, generator=gen) * 3 + 1
    weight, bias = torch.rand(C, generator=gen) + 0.5, torch.randn(C, generator=gen)
    running = [torch.randn(C, generator=gen), torch.rand(C, generator=gen) + 1e-3]
    st = bn_stats(x, weight, bias, *[r.clone() for r in running], training, 0.1, 1e-5, 0.7)
    if training:
        x64 = x.double().transpose(0, 2).reshape(C, -1)
        mean, var = x64.mean(1), x64.var(1, unbiased=False)
    else:
        mean, var = running[0].double(), running[1].double()
    k = weight.double() * 0.7 / torch.sqrt(var + 1e-5)  # snnc.export.deploy_weights' formula
    b = bias.double() - mean * k
    if training:
        torch.testing.assert_close(st.bn.scale, k.float(), rtol=1.2e-7, atol=0)
        torch.testing.assert_close(st.bn.shift, b.float(), rtol=1.2e-7, atol=1.2e-7)
    else:
        assert torch.equal(st.bn.scale, k.float()) and torch.equal(st.bn.shift, b.float())
