"""Shared LIF test cases and comparisons (imported by the other test_ops_* and test_triton_* files).

Inputs are random, scaled so that a good fraction of neurons fire and many h
values fall inside every surrogate's support; the tests at the bottom check
that property, so a grid of comparisons can never pass on all-silent inputs.
"""

import itertools
import os

import pytest
import torch

from snnc.frontend.spelling import parse_surrogate
from snnc.ops.reference import lif_reference, surrogate_reference

# No constant here is a float32 number (0.3, 1.3, 2/3, ...), so a float64 path that rounds any of
# them to float32 on the way (surrogate parameters, decay, vth, input_scale) misses the 1e-12
# float64 tolerance of assert_matches by orders of magnitude.
SURROGATES = ["triangle(beta=1.3)", "rectangle(beta=0.7)", "arctan(beta=1.1)", "dspike(b=2.3, region=0.9)",
              "sigmoid(alpha=3.3)"]
# The tau form is MSG's charge (decay_input, here tau = 3: decay = 2/3, input_scale = 1/3).
DECAY_FORMS = {"decay": dict(decay=0.7, vth=1.1), "tau": dict(tau=3.0, decay_input=True, vth=0.3)}
RESETS = ["hard", "soft"]


def backend_device(backend: str) -> str:
    """Where a backend's kernels run in this session: the Triton kernels on CUDA when there is
    one (compiled), on the CPU under TRITON_INTERPRET=1 (tests/conftest.py sets it without CUDA)."""
    if backend != "triton":
        return "cpu"
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "cpu"
    if not torch.cuda.is_available():
        pytest.skip("the Triton kernels need CUDA or TRITON_INTERPRET=1")
    return "cuda"


def grid():
    """(surrogate, reset, decay form, detach_reset, mask_p) for every combination."""
    return list(itertools.product(SURROGATES, RESETS, DECAY_FORMS, [False, True], [0.0, 0.5]))


def grid_id(case) -> str:
    sur, reset, form, detach, p = case
    return f"{sur.split('(')[0]}-{reset}-{form}-{'detach' if detach else 'grad'}-p{p}"


def lif_kwargs(case) -> dict:
    sur, reset, form, detach, p = case
    return dict(surrogate=sur, reset=reset, detach_reset=detach, mask_p=p, **DECAY_FORMS[form])


def make_input(T, shape, dtype=torch.float64, seed=0, vth=1.0, gain=1.0):
    """x [T, *shape]: mean 0.55*vth, std 0.7*vth (times `gain`), so neurons fire often but not always."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn((T, *shape), generator=gen, dtype=torch.float64) * 0.7 + 0.55) * vth * gain
    return x.to(dtype).requires_grad_()


def gain(kwargs: dict) -> float:
    """Input gain for vth and the (1 - decay) = 1/tau factor of decay_input, keeping firing rates alike."""
    return kwargs.get("tau", 1.0) * kwargs.get("vth", 1.0)


def reference_kwargs(kwargs: dict) -> dict:
    """lif kwargs as `lif_reference` takes them (tau resolved to decay, no backend/mask key)."""
    out = {k: v for k, v in kwargs.items() if k not in ("tau", "mask_p", "seed", "mask_key", "backend")}
    if "tau" in kwargs:
        out["decay"] = 1.0 - 1.0 / kwargs["tau"]
    out.setdefault("decay", 0.5)
    out.setdefault("vth", 1.0)
    out.setdefault("reset", "hard")
    out.setdefault("decay_input", False)
    out.setdefault("detach_reset", False)
    out.setdefault("surrogate", "triangle(beta=1.0)")
    out["mask_p"] = kwargs.get("mask_p", 0.0)
    return out


def run(fn, x, seed=1):
    """(spikes, dL/dx) for a random upstream gradient."""
    spikes = fn(x)
    gen = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(spikes.shape, generator=gen, dtype=torch.float64).to(spikes.device, spikes.dtype)
    (grad_x,) = torch.autograd.grad(spikes, x, grad_out)
    return spikes.detach(), grad_x


def assert_matches(spikes, grad, ref_spikes, ref_grad, rtol=None):
    rtol = rtol if rtol is not None else (1e-12 if grad.dtype == torch.float64 else 1e-5)
    """Spikes exactly equal; gradients equal to rtol relative to the largest reference gradient."""
    assert spikes.dtype == ref_spikes.dtype
    assert torch.equal(spikes, ref_spikes), f"{(spikes != ref_spikes).sum().item()} spikes differ"
    scale = ref_grad.abs().max().item()
    assert scale > 0, "the reference gradient is zero everywhere: the case tests nothing"
    torch.testing.assert_close(grad, ref_grad, rtol=rtol, atol=rtol * scale)


def reference(x, kwargs, keep=None, record=None):
    return lif_reference(x, keep=keep, record=record, **reference_kwargs(kwargs))


# Gradient tolerance of the exact-grid checks: about two roundings of the storage dtype.
GRID_TOLERANCE = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def check_exact_grid(backend: str, kwargs: dict, dtype=torch.float16, device="cpu") -> None:
    """With decay = 1 and x on a 1/8 grid every h is exact in float16 and bfloat16 (at most 8
    significant bits here), so spikes must equal the float64 reference exactly; gradients agree
    to the storage dtype's rounding."""
    from snnc.ops import lif

    gen = torch.Generator().manual_seed(0)
    x64 = torch.randint(-12, 20, (7, 3, 37), generator=gen).double() / 8
    x16 = x64.to(device, dtype).requires_grad_()
    kwargs = dict(kwargs, decay=1.0)
    spikes, grad = run(lambda x: lif(x, backend=backend, **kwargs), x16)
    ref_spikes, ref_grad = run(lambda x: reference(x, kwargs), x64.requires_grad_())
    assert spikes.dtype == dtype and grad.dtype == dtype
    assert 0.1 < ref_spikes.mean().item() < 0.9
    assert torch.equal(spikes.cpu().double(), ref_spikes)
    tol = GRID_TOLERANCE[dtype]
    torch.testing.assert_close(grad.cpu().double(), ref_grad, rtol=tol, atol=tol * ref_grad.abs().max().item())


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("form", list(DECAY_FORMS))
def test_inputs_fire_often_and_reach_every_support(surrogate, form):
    kwargs = dict(surrogate=surrogate, **DECAY_FORMS[form])
    x = make_input(7, (3, 37), gain=gain(kwargs))
    record = {}
    spikes = reference(x, kwargs, record=record).detach()
    assert 0.15 < spikes.mean().item() < 0.85
    spec = parse_surrogate(surrogate)
    g = surrogate_reference(spec.name, record["h"] - kwargs.get("vth", 1.0), [value for _, value in spec.params])
    assert (g > 1e-3).double().mean().item() > 0.2  # many h inside the support


# --- MSG masks seen through the backward (docs/methods.md §3) -----------------------------------

# With a soft, detached reset and decay_input off, the backward is
#   dL/dx[t] = g[t] * keep[t] * dL/ds[t] + decay * dL/dx[t+1],
# so with dL/ds = 1 and a surrogate that is positive everywhere (arctan), the mask
# of every step is where dL/dx[t] - decay * dL/dx[t+1] is non-zero. A dropped
# gradient adds exactly 0 to decay * dL/dx[t+1], so the difference is exactly 0.
MSG_PROBE = dict(reset="soft", detach_reset=True, decay=0.75, surrogate="arctan(beta=1.0)")


def inferred_keep(grad_x: torch.Tensor, decay: float = MSG_PROBE["decay"]) -> torch.Tensor:
    """Bool [T, ...]: where the backward kept the surrogate gradient, read from dL/dx (float64, dL/ds = 1)."""
    g = grad_x.detach().double().cpu()
    later = torch.cat([g[1:], torch.zeros_like(g[:1])])
    return (g - decay * later) != 0


def msg_grad(fn, x) -> torch.Tensor:
    """dL/dx for dL/ds = 1 (the upstream gradient the mask inference assumes)."""
    spikes = fn(x)
    return torch.autograd.grad(spikes, x, torch.ones_like(spikes))[0]
