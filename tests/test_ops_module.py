"""The LIF nn.Module: buffers, the MSG iteration counter, statistics, and forward_bn."""

import pytest
import torch

from snnc.diagnostics import SnncError
from snnc.ops import LIF, lif
from test_ops_cases import make_input, reference


def test_buffers_hold_surrogate_parameters_and_iteration():
    layer = LIF(surrogate="dspike(b=3.0)", layer=4)
    buffers = dict(layer.named_buffers())
    assert buffers["sg_params"].dtype == torch.float64 and buffers["sg_params"].tolist() == [3.0, 1.0]
    assert buffers["iteration"].dtype == torch.int64 and buffers["iteration"].dim() == 0
    assert set(layer.state_dict()) == {"sg_params", "iteration"}
    assert (layer.seed, layer.rank, layer.layer, layer.record_stats) == (0, 0, 4, False)


def test_forward_equals_the_op_and_uses_sg_params_in_place():
    x = make_input(4, (2, 37))
    layer = LIF(surrogate="triangle(beta=1.0)", reset="soft")
    layer.sg_params[0] = 2.5  # what CPNG does every epoch
    g = torch.randn(x.shape, dtype=x.dtype)
    got = torch.autograd.grad(layer(x), x, g)[0]
    want = torch.autograd.grad(lif(x, surrogate="triangle(beta=2.5)", reset="soft"), x, g)[0]
    assert torch.equal(got, want)


def test_iteration_counts_training_forwards_only_when_masking():
    x = make_input(2, (5,))
    masked, plain = LIF(mask_p=0.5), LIF()
    for module in (masked, plain):
        module(x)
        module(x)
        module.eval()
        module(x)
    assert masked.iteration.item() == 2 and plain.iteration.item() == 0


def test_masks_follow_the_key_and_resume_reproduces_them():
    x = make_input(4, (3, 37))
    g = torch.randn(x.shape, dtype=x.dtype)

    def grads(module, steps):
        return [torch.autograd.grad(module(x), x, g)[0] for _ in range(steps)]

    a = LIF(mask_p=0.5, layer=2)
    a.seed = 5
    first = grads(a, 3)
    assert not torch.equal(first[0], first[1])  # a new mask every iteration
    b = LIF(mask_p=0.5, layer=2)
    b.seed = 5
    b.load_state_dict({k: v for k, v in a.state_dict().items()})
    b.iteration.fill_(1)  # resume after the first iteration
    assert all(torch.equal(p, q) for p, q in zip(grads(b, 2), first[1:]))
    c = LIF(mask_p=0.5, layer=3)
    c.seed = 5
    assert not torch.equal(grads(c, 1)[0], first[0])  # another layer, another mask


def test_record_stats_stores_moments_of_h_and_spike_rate():
    x = make_input(4, (3, 37))
    layer = LIF()
    layer(x)
    assert layer.h_mean is None
    layer.record_stats = True
    spikes = layer(x)
    record = {}
    reference(x, {}, record=record)
    for value in (layer.h_mean, layer.h_std, layer.spike_rate):
        assert value.dtype == torch.float32 and value.dim() == 0 and not value.requires_grad
    torch.testing.assert_close(layer.h_mean.double(), record["h"].mean(), rtol=1e-6, atol=0)
    torch.testing.assert_close(layer.h_std.double(), record["h"].std(correction=0), rtol=1e-6, atol=0)
    torch.testing.assert_close(layer.spike_rate.double(), spikes.detach().mean(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_forward_bn_matches_batchnorm_module_then_lif(momentum):
    torch.manual_seed(0)
    x = (torch.randn(4, 3, 5, 6, 6, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    bn_a = torch.nn.BatchNorm2d(5, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        bn_a.weight.uniform_(0.5, 1.5)
        bn_a.bias.uniform_(0.3, 0.9)
    bn_b = torch.nn.BatchNorm2d(5, momentum=momentum, dtype=torch.float64)
    bn_b.load_state_dict(bn_a.state_dict())
    layer = LIF(surrogate="arctan(beta=1.5)")
    layer.record_stats = True
    g = torch.randn(x.shape, dtype=x.dtype)
    for training in (True, True, False):
        bn_a.train(training)
        bn_b.train(training)
        spikes = layer.forward_bn(x, bn_a)
        y = bn_b(x.reshape(12, 5, 6, 6)).view(x.shape)
        ref = lif(y, surrogate="arctan(beta=1.5)", backend="reference")
        assert torch.equal(spikes, ref)
        got = torch.autograd.grad(spikes, (x, bn_a.weight, bn_a.bias), g)
        want = torch.autograd.grad(ref, (x, bn_b.weight, bn_b.bias), g)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())
        for name, buf in bn_b.named_buffers():
            torch.testing.assert_close(dict(bn_a.named_buffers())[name], buf, rtol=1e-12, atol=1e-14)
    assert bn_a.num_batches_tracked.item() == 2
    assert layer.spike_rate is not None


def test_constructor_validates_settings():
    with pytest.raises(SnncError, match="unknown surrogate"):
        LIF(surrogate="tirangle")
    with pytest.raises(SnncError, match="unknown backend"):
        LIF(backend="gpu")
