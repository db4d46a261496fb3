"""The zoo's transformers, SEW, PLIF, DenseNet and SE networks: parameters and MACs against independent
torch.nn constructions and the papers, every recipe that applies trains and exports (the deployed model
predicts what the trained one does), the others are refused with a located message."""

from pathlib import Path

import pytest
import torch

import zoo_torch as zt
from snnc.diagnostics import SnncError
from snnc.export import export_run, load_run
from snnc.export_check import compare, deployed_model, training_model
from snnc.ir.analysis import costs
from snnc.pipeline import compile_source
from snnc.runtime import checkpoint
from snnc.runtime.setup import set_time_steps
from trainkit import build

ROOT = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)

# model -> (torch.nn model, input shape, --set overrides); the first row of each is the zoo default
TORCH = [
    ("spikformer", lambda: zt.Spikformer(), (3, 32, 32), {}),
    ("spikformer", lambda: zt.Spikformer(dim=64, depth=2, ratio=2, cin=1), (1, 16, 16),
     dict(dim=64, heads=4, depth=2, ratio=2, channels=1, size=16)),
    ("sdt", lambda: zt.SDT(), (3, 32, 32), {}),
    ("sdt", lambda: zt.SDT(dim=512), (3, 32, 32), dict(dim=512)),
    ("sew_resnet", lambda: zt.resnet18(), (3, 32, 32), {}),
    ("sew_resnet", lambda: zt.resnet18(), (3, 32, 32), dict(connect="AND")),
    ("plif_net", lambda: zt.PLIFNet(), (3, 32, 32), {}),
    ("densenet", lambda: zt.densenet(), (3, 32, 32), {}),
    ("densenet", lambda: zt.densenet(8, (2, 3, 4, 2)), (3, 32, 32), dict(growth=8, d1=2, d2=3, d3=4, d4=2)),
    ("se_resnet", lambda: zt.resnet18(gate_reduction=16), (3, 32, 32), {}),
]


def info(model: str, sets: dict):
    return costs(compile_source(ROOT / "models" / f"{model}.snn", {k: str(v) for k, v in sets.items()}).graph)


@pytest.mark.parametrize("model, make, shape, sets", TORCH, ids=[f"{m}-{i}" for i, (m, *_) in enumerate(TORCH)])
def test_parameters_and_macs_match_torch(model, make, shape, sets):
    net, c = make(), info(model, sets)
    assert c.params == sum(p.numel() for p in net.parameters())
    layer_macs = sum(r["macs"] for r in c.per_layer if r["op"] in ("conv", "fc", "linear"))
    assert layer_macs == zt.torch_macs(net, shape)


def test_spikformer_has_the_papers_parameter_count():
    assert round(info("spikformer", {}).params / 1e6, 2) == 9.32  # Spikformer-4-384, CIFAR-10 (paper's Table)


def test_attention_macs():
    c = info("spikformer", {})
    ssa = [r for r in c.per_layer if r["op"] == "ssa"]
    assert len(ssa) == 4 and all(r["macs"] == 2 * 64 * 64 * 384 for r in ssa)  # Q K^T and (.)V over 64 tokens
    sdt = info("sdt", {})
    assert sum(r["macs"] for r in sdt.per_layer if r["op"] == "mul") == 2 * 2 * 256 * 8 * 8  # K*V and Q*kv


# ---- every recipe trains a step and exports. Recipes that combine are trained together.
TINY = {
    "spikformer": dict(T=2, size=8, dim=16, heads=2, depth=1),
    "sdt": dict(T=2, size=8, dim=16, depth=1),
    "sew_resnet": dict(T=2, size=8, width=4),
    "plif_net": dict(T=2, size=8, width=8, hidden=32),
    "densenet": dict(T=2, size=16, growth=4, d1=1, d2=1, d3=1, d4=1),
    "se_resnet": dict(T=2, size=8, width=8, reduction=4),
}
TIME = "msg+two(warmup=0)+tet+tit(stages=[(1,1),(2,1)])"
RUNS = [("spikformer", "sml(n=1, k=16)+sdt", {}), ("spikformer", TIME, {}),
        ("sdt", "sml(n=1, k=16)+sdt", {}), ("sdt", TIME, {}),
        ("sew_resnet", "sml(n=1, k=16)+cpng+sdt", dict(connect="IAND")), ("sew_resnet", TIME, dict(connect="AND")),
        ("plif_net", "cpng+sdt", {}), ("plif_net", TIME, {}),
        ("densenet", "sml(n=1, k=16)+cpng+sdt", {}), ("densenet", TIME, {}),
        ("se_resnet", "sml(n=1, k=16)+cpng+sdt", {}), ("se_resnet", TIME, {})]


def calibrate_bn(run: Path, mod) -> None:
    """BN running statistics of the trained weights over a few batches (two steps barely move them from
    mean 0, var 1, so that in eval mode most layers would stay silent and a wrong layer would go unseen)."""
    ck = checkpoint.load(run / "checkpoint.pt")
    net = mod.model.build_model()
    set_time_steps(net, int(ck["T"]))
    net.load_state_dict(ck["model"])
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average
    net.train()
    torch.manual_seed(1)
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, *mod.model.INPUT_DIMS) * 2)
    checkpoint.save_atomic({**ck, "model": net.state_dict()}, run / "checkpoint.pt")


@pytest.mark.parametrize("model, recipe, extra", RUNS, ids=[f"{m}-{r.split('+')[0]}" for m, r, _ in RUNS])
def test_trains_and_exports(tmp_path, model, recipe, extra):
    sets = {k: str(v) for k, v in {**TINY[model], **extra}.items()}
    _, mod = build(tmp_path, model, recipe, sets)
    run = tmp_path / "run"
    epochs = [] if "tit" in recipe else ["--epochs", "1"]
    assert mod.main(["--data", "synthetic:32", "--batch-size", "16", "--quiet", "--out", str(run)] + epochs) == 0
    calibrate_bn(run, mod)
    export_run(run, tmp_path / "deploy")
    deployed, module = deployed_model(tmp_path / "deploy")
    train, _, state = load_run(run)
    net, modules = training_model(train, state["model"], tmp_path)
    initial = mod.model.build_model().state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in state["model"].items() if v.is_floating_point())
    x = torch.randn(16, *mod.model.INPUT_DIMS) * 2
    net.T = int(state["T"])
    with torch.no_grad():
        trained, served = net(x)[0], deployed(x)
    assert torch.equal(trained.mean(0).argmax(-1), served.mean(0).argmax(-1))
    assert torch.allclose(trained, served, atol=1e-4)
    agreement = compare(net, modules, deployed, module.NODE_MODULES, x)  # layer by layer, same upstream spikes
    fired = [layer for layer, (spikes, _) in agreement.per_layer.items() if spikes]
    assert agreement.differing == 0 and len(fired) >= len(agreement.per_layer) / 2  # IAND and SE gates are quiet


@pytest.mark.parametrize("model, recipe, message", [
    ("spikformer", "cpng", "cpng needs a triangle, rectangle or arctan surrogate, but %stem.lif0 uses sigmoid"),
    ("sdt", "cpng+tet", "cpng needs a triangle, rectangle or arctan surrogate"),
    ("plif_net", "sml+tet", "sml needs residual blocks, and network 'plif_net' has none"),
])
def test_refusals_are_located(model, recipe, message):
    with pytest.raises(SnncError) as info:
        compile_source(ROOT / "models" / f"{model}.snn", recipe=recipe)
    assert info.value.message.startswith(message) and info.value.loc is not None


def test_cpng_on_a_transformer_leaves_the_attention_neurons_alone():
    text = (ROOT / "models" / "spikformer.snn").read_text().replace("surrogate sigmoid(alpha = 4.0)",
                                                                     "surrogate triangle(beta = 1.0)")
    text = text.replace("-> lif(vth = 0.5) -> linear(dim) -> bn -> lif", "-> lif(vth = 0.5) -> linear(dim) -> layernorm -> lif")
    g = compile_source(text, file="spikformer.snn", recipe="cpng").graph
    lifs = {n.name: n for n in g.nodes if n.op == "lif"}
    fixed = sorted(name for name, n in lifs.items() if not n.attrs.get("adaptive_beta"))
    assert fixed == [f"blocks.{i}.attn.lif0" for i in range(4)]  # fed by the attention product, not a norm
    assert lifs["blocks.0.attn.lif1"].attrs["adaptive_beta"]  # fed by a layernorm
