"""The layers of the new ops (snnc/runtime/tokens.py, encoders.py) against independent float64 formulas."""

import pytest
import torch
from torch import nn

from snnc.runtime.encoders import PoissonEncoder
from snnc.runtime.tokens import Dropout, IAnd, LayerNorm, SpikingSelfAttention, TokenLinear, Vote

torch.set_num_threads(1)


def spikes(*shape, p=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) < p).double()


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_ssa_is_spikformers_formula(heads):
    n, d, N = 3, 8, 6
    q, k, v = spikes(n, d, N, seed=1), spikes(n, d, N, seed=2), spikes(n, d, N, seed=3)
    out = SpikingSelfAttention(heads, 0.125)(q, k, v)
    dh = d // heads
    expected = torch.zeros(n, d, N, dtype=torch.float64)
    for b in range(n):  # the paper's per-head Q K^T V * s, channels of head h at h*dh .. h*dh+dh-1
        for h in range(heads):
            rows = slice(h * dh, (h + 1) * dh)
            Q, K, V = q[b, rows].T, k[b, rows].T, v[b, rows].T  # [N, dh]
            expected[b, rows] = (Q @ K.T @ V * 0.125).T
    assert torch.equal(out, expected)  # sums of 0/1 products, then * 1/8: exact


def test_ssa_on_a_map_treats_positions_as_tokens():
    q, k, v = spikes(2, 4, 3, 3, seed=4), spikes(2, 4, 3, 3, seed=5), spikes(2, 4, 3, 3, seed=6)
    flat = SpikingSelfAttention(2, 0.5)(q.flatten(2), k.flatten(2), v.flatten(2))
    assert torch.equal(SpikingSelfAttention(2, 0.5)(q, k, v), flat.view(2, 4, 3, 3))


def test_token_linear_is_a_linear_on_each_token():
    torch.manual_seed(0)
    layer = TokenLinear(5, 3).double()
    x = torch.randn(2, 5, 7, dtype=torch.float64)
    expected = torch.stack([torch.stack([layer.weight @ x[b, :, j] + layer.bias for j in range(7)], 1)
                            for b in range(2)])
    assert torch.allclose(layer(x), expected, rtol=0, atol=1e-12)
    assert set(layer.state_dict()) == set(nn.Linear(5, 3).state_dict())


def test_layernorm_normalises_the_channels_of_each_position():
    torch.manual_seed(0)
    norm = LayerNorm(6, eps=1e-5).double()
    nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64) * 3 + 1
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight.view(1, 6, 1, 1) + norm.bias.view(1, 6, 1, 1)
    assert torch.allclose(norm(x), expected, rtol=0, atol=1e-12)
    flat = torch.randn(4, 6, dtype=torch.float64)
    assert torch.allclose(norm(flat), nn.functional.layer_norm(flat, (6,), norm.weight, norm.bias, 1e-5))


def test_vote_iand():
    x = torch.arange(20, dtype=torch.float64).view(2, 10)
    assert torch.equal(Vote(5)(x), torch.tensor([[2.0, 7.0], [12.0, 17.0]], dtype=torch.float64))
    a, b = spikes(3, 9, seed=7), spikes(3, 9, seed=8)
    assert torch.equal(IAnd()(a, b), ((a == 0) & (b == 1)).double())  # not(a) and b on spikes


def test_dropout_shares_one_mask_over_time_and_rescales():
    torch.manual_seed(0)
    T, B = 3, 4
    drop = Dropout(0.25)
    x = torch.ones(T * B, 50)
    y = drop(x, T).view(T, B, 50)
    assert torch.equal(y[0], y[1]) and torch.equal(y[0], y[2])
    assert y.unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    assert 0.15 < float((y[0] == 0).float().mean()) < 0.35
    assert torch.equal(drop.eval()(x, T), x)


def test_poisson_spikes_are_seeded_and_follow_the_rate():
    x = torch.linspace(-0.5, 1.5, 9).repeat(4000, 1)
    enc = PoissonEncoder(seed=3).eval()
    s = enc(x)
    assert torch.equal(s, PoissonEncoder(seed=3).eval()(x)) and not torch.equal(s, PoissonEncoder(seed=4).eval()(x))
    rate = s.mean(0)
    assert torch.allclose(rate, x[0].clamp(0, 1), atol=0.03)  # P(spike) = clamp(x, 0, 1)
    train = PoissonEncoder(seed=3).train()
    a, b = train(x), train(x)
    assert not torch.equal(a, b) and int(train.draws) == 2  # fresh spikes in every training forward
    resumed = PoissonEncoder(seed=3).train()
    resumed.load_state_dict(train.state_dict())  # draws = 2, as a checkpoint keeps it
    assert torch.equal(resumed(x), train(x))  # a resumed run draws the third batch's spikes again
