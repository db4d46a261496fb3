"""torch.compile of generated models: the LIF layers are the custom ops snnc::lif and snnc::bn_lif, so
Dynamo traces the whole forward as one graph, and compiled outputs and gradients equal eager ones."""

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

import snnc
from snnc.ops import LIF, bn_lif, lif

ROOT = Path(__file__).resolve().parent.parent


def generated_model(tmp_path, recipe):
    out = tmp_path / recipe.replace("+", "_")
    snnc.compile(str(ROOT / "models" / "digits.snn"), recipe=recipe, out=str(out))
    spec = importlib.util.spec_from_file_location(f"digits_{out.name}", out / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_lifs(net, seed=3):
    for module in net.modules():
        if isinstance(module, LIF):
            module.seed = seed


def step(call, net, x, y):
    """Output and the parameter gradients (named) of one training forward+backward of `call` (net or its compiled form)."""
    out, _ = call(x)
    loss = torch.nn.functional.cross_entropy(out.mean(0), y)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    return out.detach(), grads


@pytest.mark.parametrize("recipe", ["sdt", "msg"])
def test_generated_model_compiles_to_one_graph_with_eager_results(tmp_path, recipe):
    module = generated_model(tmp_path, recipe)
    torch.manual_seed(0)
    eager = module.build_model()
    seed_lifs(eager)
    compiled_net = copy.deepcopy(eager)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 8, 8, generator=gen) * 2
    y = torch.randint(0, 10, (3,), generator=gen)

    explained = torch._dynamo.explain(copy.deepcopy(eager))(x)
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    assert explained.graph_count == 1
    ops = {str(node.target) for graph in explained.graphs for node in graph.graph.nodes}
    assert "snnc.lif.default" in ops and "snnc.bn_lif.default" in ops

    compiled = torch.compile(compiled_net, backend="aot_eager", fullgraph=True)
    for _ in range(2):  # two steps: the MSG iteration advances, running statistics move
        want = step(eager, eager, x, y)
        got = step(compiled, compiled_net, x, y)
        assert torch.equal(got[0], want[0])
        assert want[0].abs().sum() > 0
        assert set(got[1]) == set(want[1]) and len(want[1]) > 10
        for name in want[1]:
            torch.testing.assert_close(got[1][name], want[1][name], rtol=1e-5, atol=1e-7, msg=name)
        for p in (*eager.parameters(), *compiled_net.parameters()):
            p.grad = None
    for (name, a), (_, b) in zip(eager.named_buffers(), compiled_net.named_buffers()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0, msg=name)
    if recipe == "msg":
        assert all(m.iteration.item() == 2 for m in compiled_net.modules() if isinstance(m, LIF))


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lif1 = LIF(surrogate="arctan(beta=1.5)", mask_p=0.3, layer=1)
        self.lif1.seed = 1
        self.bn = torch.nn.BatchNorm1d(3)
        self.lif2 = LIF(reset="soft", tau=3.0, decay_input=True, vth=0.4)

    def forward(self, x):
        s = self.lif1(x * 1.5)
        return self.lif2.forward_bn(s + x, self.bn, scale=0.5)


def test_inductor_compiles_lif_and_bn_lif_with_eager_results():
    """The fake implementations describe the real outputs well enough for Inductor (shapes, strides)."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 2, 3, 5, generator=gen) * 0.8 + 0.5).requires_grad_()
    g = torch.randn(4, 2, 3, 5, generator=gen)
    eager = Block()
    with torch.no_grad():
        eager.bn.weight.uniform_(0.5, 1.5)
        eager.bn.bias.uniform_(0.2, 0.8)
    compiled_block = copy.deepcopy(eager)
    compiled = torch.compile(compiled_block, fullgraph=True)
    for _ in range(2):
        want = eager(x)
        got = compiled(x)
        assert torch.equal(got, want) and 0.05 < want.mean().item() < 0.95
        leaves = lambda m: (x, m.bn.weight, m.bn.bias)  # noqa: E731
        for a, c in zip(torch.autograd.grad(got, leaves(compiled_block), g),
                        torch.autograd.grad(want, leaves(eager), g)):
            torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)
    for (name, a), (_, c) in zip(compiled_block.named_buffers(), eager.named_buffers()):
        torch.testing.assert_close(a, c, msg=name)


def test_the_public_functions_give_eager_results_under_compile():
    """lif/bn_lif called directly validate their arguments in Python first (Dynamo breaks the graph
    there), then run the same custom ops: results equal eager ones."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 2, 3, 5, generator=gen) * 0.8 + 0.5).requires_grad_()
    w = (torch.rand(3, generator=gen) + 0.5).requires_grad_()

    def f(x, w, rm, rv):
        s = lif(x * 1.5, surrogate="sigmoid(alpha=3.3)", mask_p=0.3, seed=1, mask_key=(0, 1, 2))
        return bn_lif(s + x, w, None, rm, rv, training=True, momentum=0.1, eps=1e-5)

    running, running_c = [torch.zeros(3), torch.ones(3)], [torch.zeros(3), torch.ones(3)]
    want = f(x, w, *running)
    got = torch.compile(f, backend="aot_eager")(x, w, *running_c)
    assert torch.equal(got, want)
    g = torch.randn(want.shape, generator=gen)
    for a, c in zip(torch.autograd.grad(got, (x, w), g), torch.autograd.grad(want, (x, w), g)):
        torch.testing.assert_close(a, c)
    torch.testing.assert_close(running_c, running)


def test_train_py_compile_flag_compiles_the_network(tmp_path, monkeypatch):
    """`train.py --compile` wraps the trainer's network in torch.compile (training with it is measured in
    bench/compile_step.py; here only the wiring, since compiling costs tens of seconds on a small CPU)."""
    from snnc.runtime import trainer

    out = tmp_path / "digits"
    snnc.compile(str(ROOT / "models" / "digits.snn"), recipe="sdt", out=str(out))
    spec = importlib.util.spec_from_file_location("digits_train", out / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    built = []
    monkeypatch.setattr(trainer.Trainer, "run", lambda self: built.append(self) or 0)  # set up, do not train
    for flag, compiled in (([], False), (["--compile"], True)):
        argv = ["--data", "synthetic:16", "--epochs", "1", "--out", str(tmp_path / f"run{len(built)}"), *flag]
        assert train.main(argv) == 0
        t = built[-1]
        assert isinstance(t.net, torch._dynamo.eval_frame.OptimizedModule) == compiled
        assert (t.net._orig_mod if compiled else t.net) is t.model
