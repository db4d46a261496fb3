"""float64 is exact: parameters that are not float32 numbers (0.3) against a float64 reference
written here from docs/methods.md §1-§3, sharing no code with snnc.

The reference is a plain autograd loop. The spike uses the straight-through form
s = H(z) + (z*g - detach(z*g)) with g = detach(g(z)): its value is exactly H(z) and
its derivative is exactly g(z), so autograd alone gives the backward of docs/methods.md.
The inputs include exact ties h = vth, which fire (docs/methods.md §1: fire on h >= vth);
a vth rounded to float32 on the way (0.3 -> 0.30000001) would not fire there.
"""

import itertools
import math

import pytest
import torch

from snnc.ops import LIF, lif
from snnc.ops.mask import keep_mask_torch, mask_key_seed
from test_ops_cases import backend_device

DECAY = VTH = 0.3
# Every parameter 0.3 or 0.7, neither of them a float32 number.
SURROGATES = {"triangle": [0.3], "rectangle": [0.7], "arctan": [0.3], "dspike": [0.7, 0.3], "sigmoid": [0.3]}


def g_methods(name, z, params):
    """The surrogate table of docs/methods.md §2, z = h - vth."""
    if name == "triangle":
        (beta,) = params
        return beta * torch.clamp(1 - beta * z.abs(), min=0)
    if name == "rectangle":
        (beta,) = params
        return beta * (z.abs() < 1 / (2 * beta)).to(z.dtype)
    if name == "arctan":
        (beta,) = params
        return beta / (1 + (math.pi * beta * z) ** 2)
    if name == "dspike":
        b, region = params
        return torch.where(z.abs() <= region, b * (1 - torch.tanh(b * z) ** 2) / (2 * math.tanh(b * region)), 0.0)
    (alpha,) = params
    sig = 1 / (1 + torch.exp(-alpha * z))
    return alpha * sig * (1 - sig)


def lif_methods(x, *, decay, vth, reset, decay_input, detach_reset, surrogate, params, keep=None, keep_scale=1.0):
    """docs/methods.md §1-§3 as an autograd loop; `keep` [T, ...] bool is the MSG mask (kept gradients times keep_scale)."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = decay * v + (1 - decay) * x[t] if decay_input else decay * v + x[t]  # (1 - decay) = 1/tau
        z = h - vth
        g = g_methods(surrogate, z, params).detach()
        if keep is not None:
            g = g * keep[t] * keep_scale
        s = (z >= 0).to(x.dtype) + (z * g - (z * g).detach())
        r = s.detach() if detach_reset else s
        v = h * (1 - r) if reset == "hard" else h - vth * r
        out.append(s)
    return torch.stack(out)


def tie_input(decay_input: bool) -> float:
    """An x with h[0] = x-charge == vth exactly in float64 (v[0] = 0)."""
    scale = 1 - DECAY if decay_input else 1.0
    x = VTH / scale
    for _ in range(64):
        if scale * x == VTH:
            return x
        x = math.nextafter(x, math.inf if scale * x < VTH else -math.inf)
    raise AssertionError("no float64 tie found")


def make_input(T, N, decay_input, seed=0):
    gen = torch.Generator().manual_seed(seed)
    scale = 1 - DECAY if decay_input else 1.0
    x = (torch.randn(T, N, generator=gen, dtype=torch.float64) * 0.25 + 0.2) / scale
    x[0, : N // 4] = tie_input(decay_input)  # exact ties at t = 0
    return x


CASES = list(itertools.product(SURROGATES, ["hard", "soft"], [False, True], [False, True]))


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("surrogate, reset, decay_input, detach_reset", CASES,
                         ids=[f"{s}-{r}-{'tau' if d else 'decay'}-{'detach' if a else 'grad'}" for s, r, d, a in CASES])
def test_float64_is_exact_with_parameters_that_float32_cannot_hold(backend, surrogate, reset, decay_input,
                                                                   detach_reset):
    device = backend_device(backend)
    T, N = 5, 64
    x = make_input(T, N, decay_input)
    params = SURROGATES[surrogate]
    spelling = f"{surrogate}({', '.join(f'{k}={v}' for k, v in zip(param_names(surrogate), params))})"
    neuron = dict(decay=DECAY, vth=VTH, reset=reset, decay_input=decay_input, detach_reset=detach_reset)
    gen = torch.Generator().manual_seed(1)
    grad_out = torch.randn(T, N, generator=gen, dtype=torch.float64)

    xd = x.clone().to(device).requires_grad_()
    spikes = lif(xd, surrogate=spelling, backend=backend, **neuron)
    (grad,) = torch.autograd.grad(spikes, xd, grad_out.to(device))

    xr = x.clone().requires_grad_()
    ref = lif_methods(xr, surrogate=surrogate, params=params, **neuron)
    (ref_grad,) = torch.autograd.grad(ref, xr, grad_out)

    assert ref[0, : N // 4].eq(1).all()  # the ties fire
    assert 0.1 < ref.mean().item() < 0.9
    assert torch.equal(spikes.cpu(), ref.detach())
    scale = ref_grad.abs().max().item()
    assert (ref_grad != 0).double().mean().item() > 0.3
    torch.testing.assert_close(grad.cpu(), ref_grad, rtol=1e-12, atol=1e-12 * scale)


def param_names(surrogate):
    from snnc.catalog import SURROGATE_PARAMS

    return [param.name for param in SURROGATE_PARAMS[surrogate]]


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("rescale", [False, True])
def test_float64_msg_with_mask_p_that_float32_cannot_hold(backend, rescale):
    """mask_p = 0.3: kept gradients are scaled by exactly 1/(1 - 0.3) in float64."""
    device = backend_device(backend)
    T, N, p = 4, 96, 0.3
    x = make_input(T, N, False)
    neuron = dict(decay=DECAY, vth=VTH, reset="hard", decay_input=False, detach_reset=False)
    layer = LIF(surrogate="triangle(beta=0.3)", mask_p=p, rescale=rescale, layer=4, backend=backend, **neuron)
    layer = layer.to(device)
    layer.seed = 9
    xd = x.clone().to(device).requires_grad_()
    spikes = layer(xd)  # iteration 1
    gen = torch.Generator().manual_seed(2)
    grad_out = torch.randn(T, N, generator=gen, dtype=torch.float64)
    (grad,) = torch.autograd.grad(spikes, xd, grad_out.to(device))

    key = mask_key_seed(9, 0, 4)
    if backend == "triton":
        from snnc.backends.triton import launch

        keep = launch.keep_mask(key, 1, T, N, p, device).cpu()
    else:
        keep = keep_mask_torch(key, 1, T, N, p, "cpu")
    xr = x.clone().requires_grad_()
    ref = lif_methods(xr, surrogate="triangle", params=[0.3], keep=keep, keep_scale=1 / (1 - p) if rescale else 1.0,
                      **neuron)
    (ref_grad,) = torch.autograd.grad(ref, xr, grad_out)
    assert torch.equal(spikes.cpu(), ref.detach())
    torch.testing.assert_close(grad.cpu(), ref_grad, rtol=1e-12, atol=1e-12 * ref_grad.abs().max().item())


def test_module_buffer_holds_the_spelled_parameters_exactly():
    layer = LIF(surrogate="dspike(b=0.7, region=0.3)")
    assert layer.sg_params.tolist() == [0.7, 0.3]
