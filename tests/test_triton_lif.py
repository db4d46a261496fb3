"""Generated Triton LIF kernels against the eager reference.

They run where Triton runs in this session: compiled on CUDA when there is a GPU, otherwise
in Triton's interpreter on the CPU (tests/conftest.py sets TRITON_INTERPRET=1 only then).
References are computed on the CPU in float64.
"""

import functools
import os

import pytest
import torch

pytest.importorskip("triton")

from snnc.backends.triton import launch  # noqa: E402
from snnc.ops import bn_lif, lif  # noqa: E402
from snnc.ops.config import make_config  # noqa: E402
from snnc.ops.mask import mask_key_seed  # noqa: E402
from test_ops_cases import (assert_matches, check_exact_grid, gain, grid, grid_id, lif_kwargs, make_input,  # noqa: E402
                            reference, run)

if os.environ.get("TRITON_INTERPRET") == "1":
    DEVICE = "cpu"
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    pytest.skip("the Triton kernels need CUDA or TRITON_INTERPRET=1", allow_module_level=True)

MASK = dict(seed=11, mask_key=(0, 3, 9))


def run_triton(x, **kwargs):
    """(spikes, dL/dx) of the Triton path for x (moved to DEVICE, same strides), back on the CPU."""
    xd = x.detach().to(DEVICE).requires_grad_() if x.device.type != DEVICE else x
    spikes, grad = run(lambda x: lif(x, backend="triton", **kwargs), xd)
    return spikes.cpu(), grad.cpu()


@functools.lru_cache(maxsize=None)
def _keep(T, N, p, seed, rank, layer, iteration):
    # Drawing in the interpreter is slow; the grid reuses one key, so draw each shape once.
    return launch.keep_mask(mask_key_seed(seed, rank, layer), iteration, T, N, p, DEVICE).cpu()


def triton_keep(x, p, seed=11, mask_key=(0, 3, 9)):
    """The mask exactly as the backward kernel draws it (same Philox code, rendered from the same hook)."""
    return _keep(x.shape[0], x[0].numel(), p, seed, *mask_key).view(x.shape)


def check_against_reference(x, kwargs):
    got = run_triton(x, **MASK, **kwargs)
    keep = triton_keep(x, kwargs["mask_p"]) if kwargs.get("mask_p") else None
    want = run(lambda x: reference(x, kwargs, keep=keep), x.detach().cpu().requires_grad_())
    assert_matches(*got, *want)


@pytest.mark.parametrize("T", [1, 4, 7])
@pytest.mark.parametrize("case", grid(), ids=grid_id)
def test_triton_matches_reference(case, T):
    kwargs = lif_kwargs(case)
    check_against_reference(make_input(T, (37,), gain=gain(kwargs)), kwargs)


@pytest.mark.parametrize("T", [1, 4, 7])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_runtime_T_kernels_match_reference(T, reset, monkeypatch):
    monkeypatch.setattr(launch, "MAX_STATIC_T", 0)
    kwargs = dict(surrogate="dspike(b=2.5, region=1.0)", reset=reset, mask_p=0.5)
    assert launch.spec_for(make_config(**kwargs), torch.float64, T, False).T is None
    check_against_reference(make_input(T, (3, 37)), kwargs)


def test_float32_spikes_exact_and_gradients_close():
    x = make_input(4, (3, 101), dtype=torch.float32)
    kwargs = dict(surrogate="sigmoid(alpha=4.0)", decay=0.5)
    check_against_reference(x, kwargs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_precision_on_an_exact_grid(dtype):
    check_exact_grid("triton", dict(surrogate="triangle(beta=1.0)", reset="soft"), dtype, DEVICE)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("kwargs", [dict(surrogate="arctan(beta=1.5)", decay=0.5),
                                    dict(surrogate="dspike(b=2.3, region=0.9)", tau=3.0, decay_input=True, vth=0.3,
                                         reset="soft")], ids=["decay", "tau"])
def test_half_precision_matches_the_torch_path_bit_for_bit(dtype, kwargs):
    # Both paths compute in float32 and round h to the storage dtype (to nearest even) before
    # firing, so the spikes agree bit for bit; gradients to the storage dtype's last bit.
    x = make_input(5, (3, 257), dtype=dtype, gain=gain(kwargs))
    a = run_triton(x, **kwargs)
    b = run(lambda x: lif(x, backend="torch", **kwargs), x)
    assert torch.equal(a[0], b[0])
    assert 0.1 < b[0].float().mean().item() < 0.9
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(a[1], b[1], rtol=eps, atol=eps * b[1].abs().max().item())


def test_bfloat16_h_is_rounded_to_nearest_even_as_torch_rounds():
    """The saved h[1] = 0.5 * x[0] + x[1] (exact in float32) rounded to bfloat16 equals torch's
    rounding: ties to even (1 + 2^-8 -> 1, 1 + 3*2^-8 -> 1 + 2^-6), a carry into the exponent
    (1.99609375 -> 2), a negative tie (-(1 + 3*2^-8) -> -(1 + 2^-6)) and random values."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.cat([torch.tensor([2**-7, 3 * 2**-7, 2**-7, -3 * 2**-7]), torch.randn(200, generator=gen)])
    x1 = torch.cat([torch.tensor([1.0, 1.0, 1.9921875, -1.0]), torch.randn(200, generator=gen) * 4])
    x = torch.stack([x0, x1]).to(torch.bfloat16)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        lif(x.to(DEVICE).requires_grad_(), decay=0.5, vth=1e4, backend="triton")
    (h,) = [t for t in saved if t.shape == x.shape]
    want = (0.5 * x[0].float() + x[1].float()).to(torch.bfloat16)
    assert want[:4].tolist() == [1.0, 1.015625, 2.0, -1.015625]
    assert torch.equal(h[1].cpu(), want)
    assert torch.equal(h[0].cpu(), x[0])


def test_non_contiguous_input():
    base = make_input(6, (8, 37)).detach().to(DEVICE)
    x = base[::2, :, ::3].transpose(1, 2).requires_grad_()
    check_against_reference(x, dict(surrogate="rectangle(beta=0.75)", mask_p=0.0))


def test_strided_time_steps_are_read_in_place():
    base = make_input(8, (2, 37)).detach().to(DEVICE)
    x = base[::2].requires_grad_()  # steps 2 rows apart, each row contiguous
    check_against_reference(x, dict(surrogate="triangle(beta=2.0)", mask_p=0.0))


def test_iteration_tensor_and_int_give_the_same_mask():
    x = make_input(4, (37,))
    kwargs = dict(mask_p=0.5, seed=1)
    a = run_triton(x, mask_key=(0, 1, 5), **kwargs)
    b = run_triton(x, mask_key=(0, 1, torch.tensor(5, device=DEVICE)), **kwargs)
    c = run_triton(x, mask_key=(0, 1, 6), **kwargs)
    assert torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])


def test_mask_p_zero_is_bit_identical_to_unmasked():
    x = make_input(4, (37,))
    a = run_triton(x, mask_p=0.0, seed=5)
    b = run_triton(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_changing_sg_params_reuses_the_kernel():
    from snnc.backends.triton.loader import _load

    x = make_input(4, (37,))
    run_triton(x, sg_params=torch.tensor([1.0]))
    before = _load.cache_info().currsize
    _, g2 = run_triton(x, sg_params=torch.tensor([2.0]))
    _, want = run(lambda x: reference(x, dict(surrogate="triangle(beta=2.0)")), x)
    assert _load.cache_info().currsize == before
    torch.testing.assert_close(g2, want)


@pytest.mark.parametrize("training", [True, False])
def test_bn_lif_triton_matches_torch_batchnorm_and_reference(training):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 2, 3, 5, 7, generator=gen, dtype=torch.float64).requires_grad_()
    weight = (torch.rand(3, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    bias = (torch.randn(3, generator=gen, dtype=torch.float64) * 0.3 + 0.5).requires_grad_()
    stats = [torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5]
    kwargs = dict(training=training, momentum=0.1, eps=1e-5, scale=0.7, surrogate="sigmoid(alpha=4.0)",
                  reset="soft")
    leaves = [t.detach().to(DEVICE).requires_grad_() for t in (x, weight, bias)]
    mine = [s.clone().to(DEVICE) for s in stats]
    spikes = bn_lif(*leaves, *mine, backend="triton", **kwargs)
    ref = [s.clone() for s in stats]
    ref_spikes = bn_lif(x, weight, bias, *ref, backend="reference", **kwargs)
    assert torch.equal(spikes.cpu(), ref_spikes)
    g = torch.randn(spikes.shape, generator=gen, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(spikes, leaves, g.to(DEVICE)),
                    torch.autograd.grad(ref_spikes, (x, weight, bias), g)):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-10, atol=1e-10 * b.abs().max().item())
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-12, atol=0)


def test_triton_saves_only_h_for_backward():
    from test_ops_lif import saved_for_backward

    x = make_input(4, (3, 37))
    record = {}
    reference(x, {}, record=record)
    saved = saved_for_backward(lambda x: lif(x, backend="triton"), x.detach().to(DEVICE).requires_grad_())
    big = [t for t in saved if t.numel() >= x.numel()]
    assert len(big) == 1 and torch.equal(big[0].view(x.shape).cpu(), record["h"])


def test_no_python_float_reaches_a_kernel(monkeypatch):
    """Triton types Python floats as float32 on a GPU (the interpreter keeps float64), so a float64
    kernel given decay or vth as a float would compute with float32 values there. Every runtime
    scalar must arrive in a tensor of the compute dtype instead."""
    calls = []
    launch_once = launch._launch

    def spy(kernel, N, *args, **kwargs):
        calls.append((kernel.__name__ if hasattr(kernel, "__name__") else str(kernel), args, kwargs))
        return launch_once(kernel, N, *args, **kwargs)

    monkeypatch.setattr(launch, "_launch", spy)
    x = make_input(4, (2, 3, 37))
    kwargs = dict(tau=3.0, decay_input=True, vth=0.3, mask_p=0.3, rescale=True, surrogate="dspike(b=0.7, region=0.3)")
    run_triton(x, **MASK, **kwargs)
    xd = x.detach().to(DEVICE).requires_grad_()
    w = torch.full((3,), 0.7, dtype=torch.float64, device=DEVICE, requires_grad=True)
    s = bn_lif(xd, w, None, None, None, training=True, momentum=0.1, eps=1e-5, scale=0.3, backend="triton", **kwargs)
    s.sum().backward()
    launch.keep_mask(5, 1, 4, 37, 0.3, DEVICE)
    assert len(calls) == 5  # forward and backward twice, and the mask kernel
    for name, args, kw in calls:
        floats = [a for a in (*args, *kw.values()) if isinstance(a, float)]
        assert not floats, (name, floats)
