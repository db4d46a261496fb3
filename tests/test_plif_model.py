"""PLIF in generated models: `snnc compile` writes the PLIF kernels, a training step of models/plif_net.snn
gives the PyTorch path's result on every backend, and torch.compile sees a PLIF layer as one op."""

import copy

import pytest
import torch

from memkit import compiled, model_module, sample
from snnc.compiler import kernel_files
from snnc.runtime.plif import PLIF

SIZES = dict(T=3, channels=1, size=8, width=8, hidden=32)


def test_compile_writes_the_plif_kernels():
    files = kernel_files(compiled("plif_net", "msg", **SIZES))
    plif = sorted(name for name in files if name.startswith("plif_"))
    # one specialization (hard reset, decay_input, detached reset, arctan, MSG) at T = 3
    assert plif == ["plif_bwd_hard_decayinput_arctan_detach_mask_f32_T3.py", "plif_fwd_hard_decayinput_f32_T3.py"]
    assert files.keys() == set(plif)
    for name in plif:
        compile(files[name], name, "exec")
        assert files[name].count("@triton.jit") == 1


def step(module, backend: str, dtype, x, y):
    """(loss, {parameter: gradient}, {parameter: value after one SGD step}) of one training step."""
    torch.manual_seed(0)
    net = module.build_model().to(dtype)
    with torch.no_grad():  # livelier than the initialisation, so that every layer fires (10-35% of neurons)
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(6)
            elif isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.fill_(2.0)
    plifs = [m for m in net.modules() if isinstance(m, PLIF)]
    assert len(plifs) == 8
    for m in plifs:
        m.seed, m.backend = 3, backend
    torch.manual_seed(1)  # the dropout mask
    out, _ = net(x.to(dtype))
    loss = torch.nn.functional.cross_entropy(out.mean(0), y)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters()}
    torch.optim.SGD(net.parameters(), lr=0.5).step()
    return loss.detach(), grads, {name: p.detach().clone() for name, p in net.named_parameters()}, out.detach()


def assert_same_step(a, b, rtol):
    (loss_a, grads_a, params_a, out_a), (loss_b, grads_b, params_b, out_b) = a, b
    assert torch.equal(out_a, out_b)  # the same spikes in every layer: the output is the voting layer's spikes
    torch.testing.assert_close(loss_a, loss_b, rtol=rtol, atol=0)
    for name in grads_b:
        scale = grads_b[name].abs().max().item()
        assert scale > 0, name
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=rtol, atol=rtol * scale, msg=name)
        torch.testing.assert_close(params_a[name], params_b[name], rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("recipe, backends", [("sdt", ["cpu", "triton"]), ("msg", ["cpu"])])
def test_a_training_step_is_the_pytorch_paths_on_every_backend(recipe, backends):
    """float64: loss, every parameter gradient (the decays' included) and every updated parameter agree with
    the PyTorch path to 1e-10 of the largest; float32 (the C kernel): the same spikes, 1e-5. Under MSG the
    C kernel drops the PyTorch path's gradients; Triton draws its own masks, so it runs the sdt recipe."""
    module = model_module("plif_net", recipe, **SIZES)
    x, y = sample(module, 4, SIZES["T"], seed=5)
    want = step(module, "torch", torch.float64, x, y)
    assert 0.1 < want[3].mean().item() < 0.9
    assert all(want[1][name].abs().max() > 0 for name in want[1] if name.endswith("plif.w"))
    for backend in backends:
        if backend == "triton":
            pytest.importorskip("triton")
        assert_same_step(step(module, backend, torch.float64, x, y), want, 1e-10)
    assert_same_step(step(module, "cpu", torch.float32, x, y), step(module, "torch", torch.float32, x, y), 1e-5)


def test_torch_compile_sees_one_op_and_gives_eager_results():
    torch.manual_seed(0)
    eager = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Unflatten(0, (4, 2)),
                                PLIF(channels=3, decay=0.6, mask_p=0.3, surrogate="sigmoid(alpha=3.3)"))
    eager[2].seed = 4
    compiled_net = copy.deepcopy(eager)
    x = torch.randn(8, 2, 5, 5) + 0.5
    explained = torch._dynamo.explain(copy.deepcopy(eager))(x)
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    ops = {str(node.target) for graph in explained.graphs for node in graph.graph.nodes}
    assert "snnc.plif.default" in ops
    run = torch.compile(compiled_net, backend="aot_eager", fullgraph=True)
    for _ in range(2):  # the MSG iteration advances in both
        results = []
        for net, call in ((eager, eager), (compiled_net, run)):
            net.zero_grad()
            out = call(x)
            (out * torch.arange(out.numel()).view(out.shape).cos()).sum().backward()
            results.append([out.detach()] + [p.grad.clone() for p in net.parameters()])
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * b.abs().max().item())
    assert int(eager[2].iteration) == int(compiled_net[2].iteration) == 2
