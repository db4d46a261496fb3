"""snnc export: files, equivalence with the training model, tie rate, NIR, bad input."""

import json
import shutil

import pytest
import torch

from clirun import snnc
from snnc.diagnostics import SnncError
from snnc.export import export_run
from snnc.export_check import compare, deployed_model, training_model
from snnc.runtime import checkpoint
from snnc.runtime.data import digits
from trainkit import build

QUICK = ["--batch-size", "64", "--quiet", "--lr", "0.01"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    _, mod = build(tmp, "digits", "sml+tet+two(warmup=0)")
    run = tmp / "run"
    assert mod.main(["--data", "digits", "--epochs", "2", "--out", str(run)] + QUICK) == 0
    return run


def test_export_writes_a_standalone_folder(digits_run, tmp_path):
    info = export_run(digits_run, tmp_path / "deploy")
    files = sorted(p.name for p in (tmp_path / "deploy").iterdir())
    assert files == ["manifest.json", "model.ir", "model.py", "weights.safetensors"]
    text = (tmp_path / "deploy" / "model.py").read_text()
    imports = {ln.split()[1] for ln in text.splitlines() if ln.startswith(("import ", "from "))}
    assert imports <= {"json", "pathlib", "torch"}, imports
    assert "surrogate" not in (tmp_path / "deploy" / "model.ir").read_text()
    m = json.loads((tmp_path / "deploy" / "manifest.json").read_text())
    assert m["T"] == 4 and m["classes"] == 10 and m["kind"] == "deploy"
    assert m["checkpoint_epoch"] == m["metrics"]["epoch"] == 2  # both count completed epochs
    assert m["input"]["kind"] == "image" and m["input"]["dims"] == [1, 8, 8]
    assert m["input"]["preprocess"]["scale"] == 1 / 16 and m["input"]["encoding"].startswith("direct")
    assert m["metrics"]["test_acc"] == info["metrics"]["test_acc"] and len(m["source_sha256"]) == 64
    usage = [ln for ln in text.splitlines() if ln.startswith("#   classes = predict(")]  # one call a line
    assert len(usage) == 2 and usage[0].endswith("# x: [B, 1, 8, 8]") and "raw=True" in usage[1], usage


def test_deployed_digits_equals_the_trained_model(digits_run, tmp_path):
    export_run(digits_run, tmp_path / "deploy")
    deployed, module = deployed_model(tmp_path / "deploy")
    from snnc.export import load_run

    train, _, state = load_run(digits_run)
    net, modules = training_model(train, state["model"], tmp_path)
    data = digits()
    result = compare(net, modules, deployed, module.NODE_MODULES, data.test_x)
    assert result.prediction_agreement == 1.0
    assert result.spikes > 10_000 and result.tie_rate < 1e-4
    acc = float((module.predict(deployed, data.test_x) == data.test_y).float().mean())
    assert acc == pytest.approx(state["metrics"]["test_acc"])
    # the TWO weights are baked in as constants
    assert deployed.decode.f.tolist() == pytest.approx(state["model"]["decode.f"].tolist())


def _calibrated_run(tmp_path, model, recipe):
    """A run folder whose checkpoint holds random weights with realistic BN statistics."""
    out, mod = build(tmp_path, model, recipe)
    torch.manual_seed(0)
    net = mod.model.build_model()
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the calibration batches
            torch.nn.init.uniform_(m.weight, 0.6, 1.6)
            torch.nn.init.normal_(m.bias, 0.0, 0.2)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, *mod.model.INPUT_DIMS))
    if getattr(mod.model, "DECODE", None):
        net.get_submodule(mod.model.DECODE).f.copy_(torch.tensor([0.8, 1.3, 1.1, 0.9]))
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(out / "model.ir", run / "model.ir")
    shutil.copy(out / "manifest.json", run / "manifest.json")
    checkpoint.save_atomic({"network": mod.SPEC.network, "recipe": mod.SPEC.recipe, "model": net.state_dict(),
                            "epoch": 0, "metrics": {}}, run / "checkpoint.pt")
    return run, net.eval(), mod


def test_resnet18_sml_tet_two_equivalence_and_tie_rate(tmp_path):
    run, net, mod = _calibrated_run(tmp_path, "resnet18", "sml+tet+two")
    export_run(run, tmp_path / "deploy")
    deployed, module = deployed_model(tmp_path / "deploy")
    torch.manual_seed(1)
    x = torch.randn(12, 3, 32, 32)
    result = compare(net, mod.model.NODE_MODULES, deployed, module.NODE_MODULES, x, batch_size=12)
    assert len(result.per_layer) == 17 and all(fired > 0 for fired, _ in result.per_layer.values())
    # Folding BN into the convolutions rounds differently: a membrane within an ulp of the threshold
    # flips its spike (a few in millions, each layer fed the training model's spikes), and in a
    # random-weight network such a flip can cascade to a prediction (seeds 1-6: 0-4 flips, 10-12 of 12).
    assert result.tie_rate < 2e-6, result.per_layer
    assert result.prediction_agreement >= (1.0 if result.cascaded == 0 else 0.75)
    assert not any(type(m).__name__ == "BatchNorm2d" for m in deployed.modules())


def test_fp16_export(digits_run, tmp_path):
    export_run(digits_run, tmp_path / "deploy", dtype="fp16")
    deployed, module = deployed_model(tmp_path / "deploy")
    assert next(deployed.parameters()).dtype == torch.float16
    data = digits()
    acc = float((module.predict(deployed, data.test_x) == data.test_y).float().mean())
    trained = json.loads((tmp_path / "deploy" / "manifest.json").read_text())["metrics"]["test_acc"]
    assert abs(acc - trained) < 0.05


# ---------------------------------------------------------------- NIR
FF = """network ff(T = 4, classes = 10) {
  input image[1, 8, 8]
  neuron lif(decay = 0.5, vth = 1.0)
  s = conv(8, 3) -> bn -> lif -> avgpool(2) -> flatten -> fc(32) -> lif -> fc(classes)
}
"""


@pytest.fixture(scope="module")
def ff_run(tmp_path_factory):
    from snnc.compiler import compile_to
    import importlib.util

    tmp = tmp_path_factory.mktemp("ff")
    (tmp / "ff.snn").write_text(FF)
    compile_to(tmp / "ff.snn", "tet", tmp / "build")
    spec = importlib.util.spec_from_file_location("ff_train", tmp / "build" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--data", "digits", "--epochs", "1", "--out", str(tmp / "run")] + QUICK) == 0
    return tmp / "run"


def test_nir_reads_back_with_the_lif_mapping(ff_run, tmp_path):
    import nir

    export_run(ff_run, tmp_path / "deploy", nir=True)
    g = nir.read(str(tmp_path / "deploy" / "model.nir"))
    lif = g.nodes["s_lif0"]
    assert isinstance(lif, nir.LIF)
    assert float(lif.tau.flat[0]) == pytest.approx(2.0) and float(lif.r.flat[0]) == pytest.approx(2.0)
    assert float(lif.v_threshold.flat[0]) == 1.0 and float(lif.v_leak.flat[0]) == 0.0
    assert isinstance(g.nodes["s_conv"], nir.Conv2d) and isinstance(g.nodes["s_fc1"], nir.Affine)
    assert ("s_conv", "s_lif0") in g.edges and ("s_fc1", "output") in g.edges


def test_snntorch_reproduces_the_deployed_model(ff_run, tmp_path):
    """snnTorch's import_from_nir assumes dt = 1e-4, so export for that dt. NIR fires on v > vth and
    snnc on h >= vth: an exact tie would show as one differing output row; none is allowed here, and
    with random real weights a tie has probability ~0."""
    pytest.importorskip("snntorch")
    import nir
    import snntorch.utils
    from snntorch.import_nir import import_from_nir

    export_run(ff_run, tmp_path / "deploy", nir=True, nir_options={"dt": 1e-4})
    net = import_from_nir(nir.read(str(tmp_path / "deploy" / "model.nir")))
    deployed, _ = deployed_model(tmp_path / "deploy")
    x = digits().test_x[:12]
    with torch.no_grad():
        expected = deployed(x)
        for b in range(x.shape[0]):  # snnTorch's Flatten(0, -1) flattens the batch too: one sample at a time
            snntorch.utils.reset(net)
            got = torch.stack([net(x[b:b + 1])[0].reshape(-1) for _ in range(4)])
            assert torch.allclose(got, expected[:, b], atol=1e-5)


def test_nir_refuses_soft_reset_unless_lossy(tmp_path):
    (tmp_path / "soft.snn").write_text(FF.replace("vth = 1.0)", "vth = 1.0, reset = soft)"))
    run, _, _ = _calibrated_run(tmp_path, tmp_path / "soft.snn", "sdt")
    with pytest.raises(SnncError, match="soft reset"):
        export_run(run, tmp_path / "deploy", nir=True)
    assert not (tmp_path / "deploy").exists()  # nothing partly written
    info = export_run(run, tmp_path / "deploy", nir=True, nir_options={"lossy": True, "sum_pool": True})
    assert any("soft reset exported as a hard reset" in w for w in info["nir"]["warnings"])


def test_lossy_nir_of_a_maxpool_network_passes_nir_type_inference(tmp_path):
    import nir

    (tmp_path / "mp.snn").write_text(FF.replace("avgpool(2)", "maxpool(2)"))
    run, _, _ = _calibrated_run(tmp_path, tmp_path / "mp.snn", "sdt")
    with pytest.raises(SnncError, match="max pooling, which NIR cannot express"):
        export_run(run, tmp_path / "deploy", nir=True)
    info = export_run(run, tmp_path / "deploy", nir=True, nir_options={"lossy": True})
    assert any("max pooling exported as average pooling" in w for w in info["nir"]["warnings"])
    graph = nir.read(str(tmp_path / "deploy" / "model.nir"))
    graph.infer_types()  # NIR's own check of every edge's shape (dropping the pool failed it: 8x8x8 vs 8x4x4)
    pool = next(n for n in graph.nodes.values() if isinstance(n, nir.AvgPool2d))
    assert list(pool.kernel_size) == [2, 2]


# ------------------------------------------------------------ bad input
def test_bad_runs_give_clear_errors_and_write_nothing(digits_run, tmp_path):
    def fails(run, match, **kw):
        with pytest.raises(SnncError, match=match):
            export_run(run, tmp_path / "deploy", **kw)
        assert not (tmp_path / "deploy").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    fails(empty, "has no model.ir")
    fails(tmp_path / "nowhere", "no run folder")

    broken = tmp_path / "broken"
    shutil.copytree(digits_run, broken)
    data = (broken / "checkpoint.pt").read_bytes()
    (broken / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    fails(broken, "not a readable checkpoint")
    (broken / "checkpoint.pt").unlink()
    fails(broken, "no checkpoint")

    other = tmp_path / "other"
    shutil.copytree(digits_run, other)
    state = checkpoint.load(other / "checkpoint.pt")
    state["model"]["stem_conv.weight"] = torch.zeros(8, 1, 3, 3)
    checkpoint.save_atomic({k: v for k, v in state.items() if k != "format"}, other / "checkpoint.pt")
    fails(other, r"stem_conv.weight' has shape \[8, 1, 3, 3\]")

    state["network"] = "resnet18"
    checkpoint.save_atomic({k: v for k, v in state.items() if k != "format"}, other / "checkpoint.pt")
    fails(other, "the checkpoint is for resnet18")

    old = tmp_path / "old"
    shutil.copytree(digits_run, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["snnc_version"] = "0.0.1"
    (old / "manifest.json").write_text(json.dumps(manifest))
    fails(old, "compiled by snnc 0.0.1")


def _independent_predictions(run, deploy, tmp_path, x, dtype=torch.float32):
    """(training model's eval predictions, deployed predictions) computed here, not by the check."""
    from snnc.export import load_run

    train, _, state = load_run(run)
    net, _ = training_model(train, state["model"], tmp_path)
    deployed, _ = deployed_model(deploy)
    with torch.no_grad():
        trained = net(x)[0].mean(0).argmax(-1)
        shipped = deployed(x.to(dtype)).float().mean(0).argmax(-1)
    return trained, shipped


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_cli_export_check_records_what_it_measured(digits_run, tmp_path, dtype):
    r = snnc("export", str(digits_run), "-o", str(tmp_path / "d"), "--check-data", "digits", "--dtype", dtype)
    assert r.returncode == 0, r.stderr
    check = json.loads((tmp_path / "d" / "manifest.json").read_text())["check"]
    data = digits()
    trained, shipped = _independent_predictions(digits_run, tmp_path / "d", tmp_path, data.test_x,
                                                torch.float16 if dtype == "fp16" else torch.float32)
    n = len(data.test_y)
    agreement = int((trained == shipped).sum()) / n
    assert check["agreement"] == pytest.approx(agreement, abs=1e-6)
    assert check["test_acc"] == pytest.approx(int((shipped == data.test_y).sum()) / n, abs=1e-6)
    assert check["samples"] == len(data.test_y) and check["data"] == "digits"
    assert f"on {100 * agreement:.2f}% of {len(data.test_y)} samples" in r.stdout
    if dtype == "fp32":
        assert agreement == 1.0  # the promise of an fp32 export: the trained model's predictions


def test_cli_export_of_a_missing_run_is_a_diagnostic(tmp_path):
    r = snnc("export", str(tmp_path / "missing"), "-o", str(tmp_path / "e"))
    assert r.returncode == 1 and "no run folder" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("recipe", ["sdt", "tet", "sml", "sml+tet", "cpng+tet", "msg+two", "sml+tet+two",
                                    "sml+tet+tit(stages=[(2,1),(4,1)])", "sml+cpng+msg+two+tet"])
def test_export_works_for_every_recipe(tmp_path, recipe):
    _, mod = build(tmp_path, "digits", recipe)
    run = tmp_path / "run"
    epochs = [] if "tit" in recipe else ["--epochs", "1"]
    assert mod.main(["--data", "synthetic:64", "--out", str(run)] + epochs + QUICK) == 0
    export_run(run, tmp_path / "deploy")
    deployed, _ = deployed_model(tmp_path / "deploy")
    from snnc.export import load_run

    train, _, state = load_run(run)
    net, modules = training_model(train, state["model"], tmp_path)
    x = torch.randn(8, 1, 8, 8)
    net.T = int(state["T"])  # the T the run ended with (TIT switches it)
    assert deployed.T == net.T
    with torch.no_grad():
        assert torch.equal(net(x)[0].mean(0).argmax(-1), deployed(x).mean(0).argmax(-1))
