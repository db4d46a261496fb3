"""MSG (docs/methods.md §3) through the backward itself: the masks are read back from dL/dx, never from snnc's
mask generators alone.

`inferred_keep` (test_ops_cases) recovers every step's mask from the gradient of a
known input; these tests compare it with the mask the generator draws for the key
(seed, rank, layer, iteration, t) of the forward, and check the law of the masks
(keep fraction, independence across steps, layers, ranks and iterations).
"""

import pytest
import torch

from snnc.ops import LIF, lif
from snnc.ops.mask import keep_mask_torch, mask_key_seed
from test_ops_cases import MSG_PROBE, backend_device, inferred_keep, make_input, msg_grad

BACKENDS = ["torch", "triton"]


def expected_keep(backend, seed, rank, layer, iteration, T, N, p, device):
    """The mask the backend's generator draws for this key, [T, N] bool on the CPU."""
    key = mask_key_seed(seed, rank, layer)
    if backend == "triton":
        pytest.importorskip("triton")
        from snnc.backends.triton import launch

        return launch.keep_mask(key, iteration, T, N, p, device).cpu()
    return keep_mask_torch(key, iteration, T, N, p, device).cpu()


def probe_input(T, N, device, seed=0):
    return make_input(T, (N,), seed=seed).detach().to(device).requires_grad_()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_gradient_shows_the_mask_of_the_key(backend):
    device = backend_device(backend)
    T, N, p = 4, 301, 0.5
    x = probe_input(T, N, device)
    grad = msg_grad(lambda x: lif(x, mask_p=p, seed=7, mask_key=(1, 2, 3), backend=backend, **MSG_PROBE), x)
    keep = inferred_keep(grad)
    assert torch.equal(keep, expected_keep(backend, 7, 1, 2, 3, T, N, p, device))
    # the probe itself: without masking every gradient is kept
    plain = msg_grad(lambda x: lif(x, backend=backend, **MSG_PROBE), x)
    assert inferred_keep(plain).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_two_forwards_before_backward_keep_each_forwards_mask(backend, order):
    """Gradient accumulation, a user's own loop or checkpointing: each graph keeps the
    mask of the iteration its forward ran in, whatever happened to the counter since."""
    device = backend_device(backend)
    T, N, p = 3, 257, 0.5
    layer = LIF(mask_p=p, layer=2, backend=backend, **MSG_PROBE).to(device)
    layer.seed, layer.rank = 5, 1
    xs = [probe_input(T, N, device, seed=s) for s in (0, 1)]
    spikes = [layer(x) for x in xs]  # iterations 1 and 2
    assert layer.iteration.item() == 2
    pairs = list(zip(xs, spikes, (1, 2)))
    if order == "reversed":
        pairs.reverse()
    for x, s, iteration in pairs:
        grad = torch.autograd.grad(s, x, torch.ones_like(s))[0]
        want = expected_keep(backend, 5, 1, 2, iteration, T, N, p, device)
        assert torch.equal(inferred_keep(grad), want), f"the graph of iteration {iteration} drew another mask"
    # and the two iterations' masks are different, so the check above can tell them apart
    assert not torch.equal(expected_keep(backend, 5, 1, 2, 1, T, N, p, device),
                           expected_keep(backend, 5, 1, 2, 2, T, N, p, device))


def backward_masks(backend, device, T, N, p, seed=0, rank=0, layer=0, iteration=0):
    x = probe_input(T, N, device)
    grad = msg_grad(lambda x: lif(x, mask_p=p, seed=seed, mask_key=(rank, layer, iteration), backend=backend,
                                  **MSG_PROBE), x)
    return inferred_keep(grad)


def sizes(backend):
    # The interpreter is slow; the PyTorch path gets more neurons (and so tighter bounds).
    return (4, 4099) if backend == "triton" else (4, 20000)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_backward_keeps_one_minus_p_of_the_gradients(backend, p):
    device = backend_device(backend)
    T, N = sizes(backend)
    keep = backward_masks(backend, device, T, N, p)
    sigma = (p * (1 - p) / keep.numel()) ** 0.5
    assert abs(keep.double().mean().item() - (1 - p)) < 3.5 * sigma


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_masks_are_independent_across_steps_layers_ranks_and_iterations(backend):
    device = backend_device(backend)
    T, N = sizes(backend)
    p = 0.5
    base = backward_masks(backend, device, T, N, p, seed=3, rank=0, layer=0, iteration=0)
    masks = [base[t] for t in range(T)]
    masks.append(backward_masks(backend, device, 1, N, p, seed=3, layer=1)[0])      # another layer
    masks.append(backward_masks(backend, device, 1, N, p, seed=3, iteration=1)[0])  # next iteration
    masks.append(backward_masks(backend, device, 1, N, p, seed=3, rank=1)[0])       # another rank
    masks.append(backward_masks(backend, device, 1, N, p, seed=4)[0])               # another seed
    again = backward_masks(backend, device, T, N, p, seed=3)
    assert torch.equal(again, base)  # reproducible from the key
    # Independent Bernoulli(1/2) masks agree on a fraction 1/2 +- 3.5 sigma of elements.
    sigma = (0.25 / N) ** 0.5
    for i in range(len(masks)):
        for j in range(i):
            agree = (masks[i] == masks[j]).double().mean().item()
            assert abs(agree - 0.5) < 3.5 * sigma, (i, j, agree)
