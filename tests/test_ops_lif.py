"""The PyTorch path of snnc.ops.lif against the eager reference, MSG masks, and argument errors."""

import pytest
import torch

from snnc.diagnostics import SnncError
from snnc.ops import lif, mask, torch_engine
from snnc.ops.mask import keep_mask_torch, mask_key_seed
from test_ops_cases import assert_matches, check_exact_grid, gain, grid, grid_id, lif_kwargs, make_input, reference, run

MASK = dict(seed=7, mask_key=(1, 2, 3))


def torch_keep(x, seed=7, mask_key=(1, 2, 3), p=0.5):
    key = mask_key_seed(seed, mask_key[0], mask_key[1])
    return keep_mask_torch(key, mask_key[2], x.shape[0], x[0].numel(), p, x.device).view(x.shape)


@pytest.fixture
def small_blocks(monkeypatch):
    """Several neuron blocks even for small N, so block boundaries are exercised."""
    monkeypatch.setattr(mask, "CHUNK", 64)
    monkeypatch.setattr(torch_engine, "CHUNK", 64)


@pytest.mark.parametrize("T", [1, 4, 7])
@pytest.mark.parametrize("case", grid(), ids=grid_id)
def test_torch_path_matches_reference(case, T, small_blocks):
    kwargs = lif_kwargs(case)
    x = make_input(T, (3, 37), gain=gain(kwargs))
    got = run(lambda x: lif(x, backend="torch", **MASK, **kwargs), x)
    keep = torch_keep(x) if kwargs["mask_p"] else None
    want = run(lambda x: reference(x, kwargs, keep=keep), x)
    assert_matches(*got, *want)


@pytest.mark.parametrize("rescale", [False, True])
def test_public_reference_backend_applies_the_torch_mask(rescale):
    kwargs = dict(surrogate="triangle(beta=2.0)", mask_p=0.5, rescale=rescale, **MASK)
    x = make_input(4, (2, 37))
    got = run(lambda x: lif(x, backend="torch", **kwargs), x)
    want = run(lambda x: lif(x, backend="reference", **kwargs), x)
    assert_matches(*got, *want, rtol=1e-12)


def test_float32_matches_reference_in_float32():
    x = make_input(4, (5, 41), dtype=torch.float32)
    kwargs = dict(surrogate="sigmoid(alpha=4.0)", decay=0.5)
    assert_matches(*run(lambda x: lif(x, backend="torch", **kwargs), x), *run(lambda x: reference(x, kwargs), x))


def test_non_contiguous_input():
    base = make_input(6, (8, 37))
    x = base.detach()[::2, :, ::3].transpose(1, 2).requires_grad_()  # strided in every dimension
    assert not x.is_contiguous()
    kwargs = dict(surrogate="arctan(beta=1.5)", reset="soft")
    spikes, grad = run(lambda x: lif(x, backend="torch", **kwargs), x)
    assert spikes.shape == x.shape and grad.shape == x.shape
    assert_matches(spikes, grad, *run(lambda x: reference(x, kwargs), x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_precision_on_an_exact_grid(dtype):
    check_exact_grid("torch", dict(surrogate="arctan(beta=1.0)"), dtype)


def test_sg_params_override_the_spelling_at_run_time():
    x = make_input(4, (2, 37))
    a = run(lambda x: lif(x, surrogate="triangle(beta=1.0)", sg_params=torch.tensor([2.0])), x)
    b = run(lambda x: lif(x, surrogate="triangle(beta=2.0)"), x)
    c = run(lambda x: lif(x, surrogate="triangle(beta=1.0)"), x)
    assert torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_tau_equals_decay_input_with_decay():
    x = make_input(4, (2, 37))
    a = run(lambda x: lif(x, tau=4.0, decay_input=True), x)
    b = run(lambda x: lif(x, decay=0.75, decay_input=True), x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_no_grad_forward_equals_training_forward():
    x = make_input(4, (2, 37))
    with torch.no_grad():
        plain = lif(x)
    assert torch.equal(plain, lif(x).detach())


def test_stats_are_population_moments_of_h():
    x = make_input(4, (3, 37))
    stats, record = {}, {}
    spikes = lif(x, stats=stats)
    reference(x, {}, record=record)
    h = record["h"]
    assert stats["h_mean"].dtype == torch.float32 and stats["h_mean"].dim() == 0
    torch.testing.assert_close(stats["h_mean"].double(), h.mean(), rtol=1e-6, atol=0)
    torch.testing.assert_close(stats["h_std"].double(), h.std(correction=0), rtol=1e-6, atol=0)
    torch.testing.assert_close(stats["spike_rate"].double(), spikes.detach().mean(), rtol=1e-6, atol=0)


# --- MSG masks (docs/methods.md §3) -------------------------------------------------------------

def test_same_seed_gives_same_gradients_and_other_seeds_differ():
    x = make_input(4, (3, 37))
    kwargs = dict(mask_p=0.5, mask_key=(0, 1, 5))
    a = run(lambda x: lif(x, seed=1, **kwargs), x)
    b = run(lambda x: lif(x, seed=1, **kwargs), x)
    c = run(lambda x: lif(x, seed=2, **kwargs), x)
    assert torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert torch.equal(a[0], c[0])  # the forward never changes


def test_mask_p_zero_is_bit_identical_to_unmasked():
    x = make_input(4, (3, 37))
    a = run(lambda x: lif(x, mask_p=0.0, seed=3, mask_key=(1, 2, 3)), x)
    b = run(lambda x: lif(x), x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# The law of the masks, read from the gradients, is tested in test_ops_msg.py.


def test_rescale_divides_kept_gradients():
    # With T = 1 there is no recurrence: dL/dx = g * keep / (1 - p) elementwise.
    x = make_input(1, (2000,))
    kwargs = dict(mask_p=0.75, **MASK)
    _, plain = run(lambda x: lif(x), x)
    _, masked = run(lambda x: lif(x, **kwargs), x)
    _, scaled = run(lambda x: lif(x, rescale=True, **kwargs), x)
    keep = torch_keep(x, p=0.75)
    assert torch.equal(masked, torch.where(keep, plain, torch.zeros_like(plain)))
    torch.testing.assert_close(scaled, torch.where(keep, plain / 0.25, torch.zeros_like(plain)))


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(surrogate="triangel"), "unknown surrogate"),
    (dict(surrogate="triangle(gamma=1)"), "no parameter 'gamma'"),
    (dict(decay=0.0), "out of range"),
    (dict(decay=1.5), "out of range"),
    (dict(decay=0.5, tau=2.0), "either 'decay' or 'tau'"),
    (dict(tau=0.5), "out of range"),
    (dict(reset="medium"), "must be one of hard, soft"),
    (dict(mask_p=1.0), "mask_p"),
    (dict(backend="cuda"), "unknown backend"),
    (dict(sg_params=[1.0, 2.0]), "must hold 1 value"),
    (dict(mask_key=(1, 2)), "mask_key"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(SnncError) as info:
        lif(make_input(2, (3,)), **kwargs)
    assert message in info.value.message


def test_wrong_rank_is_an_error():
    with pytest.raises(SnncError, match="rank >= 2"):
        lif(torch.ones(4))


def test_triton_backend_on_cpu_without_interpreter_says_how_to_enable_it(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(SnncError) as info:
        lif(make_input(2, (3,)), backend="triton")
    assert "TRITON_INTERPRET=1" in info.value.hint


def test_second_backward_through_one_forward_is_a_clear_error():
    x = make_input(4, (2, 37))
    spikes = lif(x)
    spikes.sum().backward(retain_graph=True)
    with pytest.raises(SnncError, match="twice"):
        spikes.sum().backward()


def saved_for_backward(fn, x):
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fn(x)
    return saved


@pytest.mark.parametrize("kwargs", [dict(), dict(mask_p=0.5, reset="soft", surrogate="dspike")])
def test_saves_only_h_for_backward(kwargs):
    x = make_input(4, (3, 37))
    record = {}
    reference(x, kwargs, record=record)
    saved = saved_for_backward(lambda x: lif(x, backend="torch", **kwargs), x)
    big = [t for t in saved if t.numel() >= x.numel()]
    assert len(big) == 1 and torch.equal(big[0].view(x.shape), record["h"])
    assert sum(t.numel() for t in saved) <= x.numel() + 2  # plus the surrogate parameters
