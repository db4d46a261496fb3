"""Export of every new op outside the zoo's models: a Poisson input, layer norm, GELU, cat, slice, iand,
a per-channel PLIF and vote; the deployed model.py (torch only) predicts exactly what the trained one does."""

import torch

from snnc.export import export_run, load_run
from snnc.export_check import deployed_model, training_model
from trainkit import build

torch.set_num_threads(1)
NET = """network mix(T = 3, classes = 4) {
  input image[2, 8, 8] @encode(poisson(seed = 5))
  neuron plif(tau = 4.0, vth = 0.25, per_channel = true)
  neuron lif(vth = 0.5)
  surrogate arctan(beta = 1.0)
  block unit(c) {
    skip = identity
    main = conv(c, 3) -> bn -> plif
    out  = iand(main, skip)
  }
  stem = conv(8, 3) -> bn -> lif -> unit(8)
  wide = stem -> conv(4, 3) -> bn -> lif
  both = cat(stem, wide) -> slice(2, 10) -> maxpool(2) -> tokens -> linear(6) -> layernorm -> gelu
  q    = both -> linear(4) -> bn -> lif
  k    = both -> linear(4) -> bn -> lif
  v    = both -> linear(4) -> bn -> lif
  attn = ssa(q, k, v, heads = 2, scale = 0.5) -> lif(vth = 0.5) -> linear(6)
  head = add(both, attn) -> flatten -> dropout(0.3) -> fc(8 * classes) -> lif -> vote(8)
}
"""


def test_every_new_op_exports(tmp_path):
    source = tmp_path / "mix.snn"
    source.write_text(NET)
    _, mod = build(tmp_path, source, "msg+two(warmup=0)+tet")
    run = tmp_path / "run"
    assert mod.main(["--data", "synthetic:48", "--batch-size", "16", "--epochs", "2", "--quiet",
                     "--out", str(run)]) == 0
    info = export_run(run, tmp_path / "deploy")
    text = (tmp_path / "deploy" / "model.py").read_text()
    assert "class LearnedSpiking" in text and "class PoissonEncoder" in text and "Dropout" not in text
    assert {ln.split()[1] for ln in text.splitlines() if ln.startswith(("import ", "from "))} <= {"json", "pathlib",
                                                                                                   "torch"}
    deployed, _ = deployed_model(tmp_path / "deploy")
    train, _, state = load_run(run)
    net, _ = training_model(train, state["model"], tmp_path)
    assert not torch.equal(state["model"]["stem_0_main_plif.w"], torch.zeros(8))  # the decay was trained
    assert torch.equal(deployed.stem_0_main_plif.w.detach(), state["model"]["stem_0_main_plif.w"])
    x = torch.rand(32, 2, 8, 8) * 1.2 - 0.1
    rates = {}
    for name, layer in deployed.named_modules():
        if type(layer).__name__ in ("Spiking", "LearnedSpiking"):
            layer.register_forward_hook(lambda m, i, o, name=name: rates.__setitem__(name, float(o.mean())))
    with torch.no_grad():
        trained, served = net(x)[0], deployed(x)
    assert len(rates) == 8 and all(0.0 < r < 1.0 for r in rates.values()), rates  # every layer matters
    assert torch.equal(trained.mean(0).argmax(-1), served.mean(0).argmax(-1))
    assert torch.allclose(trained, served, atol=1e-5) and info["T"] == 3
    assert info["input"]["encoding"].startswith("poisson (seed 5)")  # the manifest says how inputs are fed
