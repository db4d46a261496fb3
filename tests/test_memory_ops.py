"""The runtime of memory plans: spikes packed to bits (C kernel and PyTorch path), packing around a
forward (what autograd keeps, composed with outer hooks), and recomputed segments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnc.backends.cpu import bits as cpu_bits
from snnc.ops import LIF, bits
from snnc.ops import memory as M
from snnc.runtime import layers as L

SIZES = [1, 7, 8, 9, 64, 65535, 65536, 65537, 3 * 65536 + 5]


def _spikes(n: int, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.3).to(dtype)


def _reference_bits(x: torch.Tensor) -> bytes:
    """Value i is bit i % 8 of byte i // 8: written out one value at a time."""
    out = bytearray((x.numel() + 7) // 8)
    for i, v in enumerate(x.tolist()):
        if v == 1.0:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


@pytest.mark.parametrize("n", SIZES)
def test_pack_is_the_documented_bit_order_and_unpacks_bit_for_bit(n):
    for dtype in (torch.float32, torch.float64, torch.float16):
        x = _spikes(n, dtype, seed=n)
        packed = bits.pack(x)
        if n <= 65536:
            assert bytes(packed.tolist()) == _reference_bits(x)
        back = bits.unpack(packed, n, dtype)
        assert back.dtype == dtype and torch.equal(back.view(torch.uint8), x.view(torch.uint8))


def test_c_kernel_and_pytorch_path_agree(monkeypatch):
    if cpu_bits.library(torch.float32) is None:
        pytest.skip("no C compiler")
    x = _spikes(3 * 65536 + 5)
    kernel = bits.pack(x)
    monkeypatch.setattr(bits, "_cpu_kernels", lambda x: None)
    assert torch.equal(bits.pack(x), kernel)


@pytest.mark.parametrize("bad", [-0.0, 0.5, 2.0, float("nan"), float("inf")])
@pytest.mark.parametrize("where", [0, 70000, 3 * 65536 + 4])
def test_pack_refuses_anything_but_one_and_plus_zero(bad, where):
    x = _spikes(3 * 65536 + 5)
    x[where] = bad
    assert bits.pack(x) is None
    assert bits.pack(x.double()) is None
    assert bits.pack(x[:1].expand(4)) is None  # not contiguous


class SpikeNet(nn.Module):
    """conv -> BN+LIF -> two readers of the spikes (a conv and a transposed matmul) -> LIF."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn0 = L.BatchNorm(4)
        self.lif0 = LIF(layer=0)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn1 = L.BatchNorm(4)
        self.lif1 = LIF(layer=1)
        self.mode = "store"

    def block(self, T, c1, s):
        return self.lif1((self.bn1(c1) + s).unflatten(0, (T, -1))).flatten(0, 1)

    def forward(self, x, T=3):
        s = self.lif0.forward_bn(self.conv0(x).unflatten(0, (T, -1)), self.bn0).flatten(0, 1)
        c1 = self.conv1(s)
        if self.mode == "recompute":
            out = M.recompute(self.block, (self.bn1, self.lif1), T, c1, s)
        else:
            out = self.block(T, c1, s)
        flat = s.flatten(1)
        return out.sum() + (flat.t() @ flat).square().sum() * 1e-3


def _counted(net, x, packing: bool):
    """(storages seen by an outer hook: {ptr: (dtype, bytes)}, the loss)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = (t.dtype, t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if packing:
            with M.packed_spikes():
                loss = net(x)
        else:
            loss = net(x)
    return seen, loss


def _grads(net):
    return [p.grad.clone() for p in net.parameters()]


def test_packing_keeps_each_spike_storage_once_as_bits_and_changes_no_gradient():
    torch.manual_seed(0)
    x = torch.randn(3 * 2, 2, 6, 6)
    ref = SpikeNet()
    seen_store, loss = _counted(ref, x, packing=False)
    loss.backward()
    net = SpikeNet()
    net.load_state_dict(ref.state_dict(), strict=False)
    for mode in ("store", "recompute"):
        net.zero_grad()
        net.mode = mode
        seen, loss = _counted(net, x, packing=True)
        loss.backward()
        assert all(torch.equal(a, b) for a, b in zip(_grads(ref), _grads(net))), mode
        # lif0's spikes: read by conv1, the matmul (transposed views) and the block: one uint8 storage
        spikes = 3 * 2 * 4 * 6 * 6
        assert [v for v in seen.values() if v[0] == torch.uint8] == [(torch.uint8, spikes // 8)]
        full = sorted(v[1] for v in seen.values() if v[0] != torch.uint8)
        before = sorted(v[1] for v in seen_store.values())
        assert sum(full) < sum(before) - 4 * spikes + 1  # the float32 spikes are gone


def test_the_pytorch_packing_path_changes_no_gradient_either(monkeypatch):
    """Where the C kernel does not run (CUDA, no compiler) PyTorch ops pack and unpack."""
    monkeypatch.setattr(bits, "_cpu_kernels", lambda x: None)
    monkeypatch.setattr(cpu_bits, "library", lambda dtype: None)
    torch.manual_seed(4)
    x = torch.randn(6, 2, 6, 6)
    ref, net = SpikeNet(), SpikeNet()
    net.load_state_dict(ref.state_dict())
    net.mode = "recompute"
    ref(x).backward()
    seen, loss = _counted(net, x, packing=True)
    loss.backward()
    assert any(v[0] == torch.uint8 for v in seen.values())
    assert all(torch.equal(a, b) for a, b in zip(_grads(ref), _grads(net)))


def test_outer_hooks_that_transform_saved_tensors_compose_with_packing():
    torch.manual_seed(3)
    x = torch.randn(6, 2, 6, 6)
    ref, net = SpikeNet(), SpikeNet()
    net.load_state_dict(ref.state_dict())
    ref(x).backward()
    with torch.autograd.graph.save_on_cpu():  # keeps (device, copy) pairs instead of the tensors
        with M.packed_spikes():
            loss = net(x)
    loss.backward()
    assert all(torch.equal(a, b) for a, b in zip(_grads(ref), _grads(net)))


def test_a_noted_storage_that_is_not_binary_is_kept_as_it_is():
    w = torch.randn(3, 3, requires_grad=True)
    x = torch.randn(4, 3)
    with M.packed_spikes():
        M.note_spikes(x)
        y = (x @ w).sum()
    y.backward()
    assert torch.equal(w.grad, x.sum(0, keepdim=True).t().expand(3, 3))


def test_recompute_leaves_buffers_and_statistics_as_the_forward_did():
    torch.manual_seed(1)
    x = torch.randn(3 * 2, 2, 6, 6)
    a, b = SpikeNet(), SpikeNet()
    b.load_state_dict(a.state_dict())
    b.mode = "recompute"
    for net in (a, b):
        net.lif1.record_stats = True
    la, lb = a(x), b(x)
    stats = b.lif1.h_mean
    la.backward()
    lb.backward()
    assert b.lif1.h_mean is stats  # the replay did not record again
    for (name, u), (_, v) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(u, v), name  # running statistics updated once, as without recomputing


def test_two_forwards_before_their_backwards_keep_their_own_masks():
    """MSG's mask key is fixed at forward time; a replay sees the iteration its forward saw."""
    def make():
        torch.manual_seed(2)
        net = SpikeNet()
        net.lif1 = LIF(layer=1, mask_p=0.5)
        return net

    a, b = make(), make()
    b.mode = "recompute"
    x1, x2 = torch.randn(6, 2, 6, 6), torch.randn(6, 2, 6, 6)
    for net in (a, b):
        l1, l2 = net(x1), net(x2)
        (l1 + 2 * l2).backward()
    assert all(torch.equal(u, v) for u, v in zip(_grads(a), _grads(b)))


def test_under_torch_compile_the_plan_is_a_single_graph():
    import torch._dynamo as dynamo

    net = SpikeNet()
    net.mode = "recompute"

    def forward(x):
        with M.packed_spikes():
            return net(x)

    explained = dynamo.explain(forward)(torch.randn(6, 2, 6, 6))
    assert explained.graph_count == 1 and explained.graph_break_count == 0
