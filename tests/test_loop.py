"""Your own loop: snnc.build's model, loss and hooks, and `--loop inline`, against the default train.py."""

import re
from pathlib import Path

import pytest
import torch

import snnc
from snnc.runtime import checkpoint
from trainkit import build, read_metrics

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--data", "digits", "--batch-size", "64", "--lr", "0.01", "--seed", "0", "--quiet"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _doc_loop() -> str:
    """The python block of docs/loop.md's 'A notebook loop'."""
    text = (ROOT / "docs" / "loop.md").read_text()
    section = text[text.index("## A notebook loop"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _reference(tmp_path, recipe: str, overrides: dict, epochs: list[str]) -> dict:
    """The final weights of the default train.py."""
    _, mod = build(tmp_path, "digits", recipe, overrides)
    run = tmp_path / f"ref-{len(list(tmp_path.iterdir()))}"
    assert mod.main(ARGS + epochs + ["--out", str(run)]) == 0
    return checkpoint.load(run / "checkpoint.pt")["model"]


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k].cpu(), b[k].cpu())]
    assert not differing, differing


@pytest.mark.parametrize("recipe,stages", [
    ("sml+tet+cpng", None),                                           # the block as documented
    ("msg+two(warmup=0)+tit(stages=[(2,1),(3,1)])", "net.stages()"),   # masks, output weights, two T stages
])
def test_the_documented_loop_reaches_train_pys_weights(tmp_path, capsys, recipe, stages):
    code = _doc_loop()
    assert 'snnc.build("models/digits.snn", "sml+tet+cpng", width=8, seed=0)' in code
    code = code.replace('"sml+tet+cpng"', repr(recipe)).replace('"models/digits.snn"', repr(str(ROOT / "models" /
                                                                                                 "digits.snn")))
    if stages:
        code = code.replace("net.stages(epochs=2)", stages)
    namespace = {}
    exec(compile(code, "docs/loop.md", "exec"), namespace)
    assert "epoch 2: test" in capsys.readouterr().out
    reference = _reference(tmp_path, recipe, {"width": "8"}, [] if stages else ["--epochs", "2"])
    _same(namespace["net"].model.state_dict(), reference)


def test_build_returns_the_recipes_pieces():
    net = snnc.build(ROOT / "models" / "digits.snn", "sml(n=1)+tet+cpng+two", width=4, T=2)
    assert isinstance(net.model, torch.nn.Module) and net.spec.T == 2 and net.folder.is_dir()
    assert net.hooks.cpng is not None and net.hooks.two is not None and net.stages(epochs=3) == [(2, 3)]
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4])
    net.before_batch(last=True)
    outputs, aux = net.model(x)
    assert outputs.shape == (2, 5, 10) and len(aux) == 1
    expected = snnc.losses.sml(outputs, aux, y, inner=snnc.losses.tet_inner(lam=0.05, phi=1.0))
    assert torch.allclose(net.loss(outputs, aux, y), expected)
    net.after_batch(outputs, y)
    record = net.end_epoch(0)
    assert set(record) == {"firing_rates", "cpng", "two_weights", "two_step_acc"}
    assert len(record["firing_rates"]) == len(net.spec.lif_layers) and len(record["two_weights"]) == 2
    # the same seed gives the same weights, another seed others; the global RNG is left alone
    state = torch.get_rng_state()
    again = snnc.build(ROOT / "models" / "digits.snn", "sdt", width=4, T=2)
    other = snnc.build(ROOT / "models" / "digits.snn", "sdt", width=4, T=2, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    w = "stem_conv.weight" if "stem_conv.weight" in again.model.state_dict() else next(iter(again.model.state_dict()))
    assert torch.equal(again.model.state_dict()[w], net.model.state_dict()[w])
    assert not torch.equal(other.model.state_dict()[w], again.model.state_dict()[w])


def test_build_with_tit_refuses_epochs():
    net = snnc.build(ROOT / "models" / "digits.snn", "tit(stages=[(2,1),(4,2)])", width=4)
    assert net.stages() == [(2, 1), (4, 2)]
    with pytest.raises(ValueError, match="tit"):
        net.stages(epochs=3)


@pytest.mark.parametrize("recipe,epochs", [("sml+tet+cpng", ["--epochs", "2"]),
                                           ("msg+two(warmup=0)+tit(stages=[(2,1),(3,1)])", [])])
def test_inline_loop_is_bit_identical_to_the_default_train_py(tmp_path, recipe, epochs):
    from snnc.compiler import compile_to
    import importlib.util

    out = tmp_path / "inline"
    compile_to(ROOT / "models" / "digits.snn", recipe, out, {"width": "8"}, loop="inline")
    text = (out / "train.py").read_text()
    assert "for i, idx in enumerate(batches):" in text and "trainer.main" not in text  # the loop is in the file
    spec = importlib.util.spec_from_file_location("inline_train", out / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    run = tmp_path / "inline-run"
    assert mod.main(ARGS + epochs + ["--out", str(run)]) == 0
    weights = torch.load(run / "weights.pt", weights_only=True)
    reference = _reference(tmp_path, recipe, {"width": "8"}, epochs)
    _same(weights, reference)
    inline_acc = [r["test_acc"] for r in read_metrics(run)]
    ref_run = sorted(p for p in tmp_path.iterdir() if p.name.startswith("ref-"))[-1]
    assert inline_acc == [r["test_acc"] for r in read_metrics(ref_run)]
    # a second run into the same folder is refused, not overwritten
    assert mod.main(ARGS + epochs + ["--out", str(run)]) == 1


def test_rebuild_gives_the_model_build_gives_for_that_seed():
    net = snnc.build(ROOT / "models" / "digits.snn", "msg+two", width=4, T=2)
    fresh = net.rebuild(3)
    direct = snnc.build(ROOT / "models" / "digits.snn", "msg+two", width=4, T=2, seed=3)
    _same(fresh.model.state_dict(), direct.model.state_dict())
    assert fresh.model is not net.model and fresh.hooks.two.decode is fresh.model.get_submodule(fresh.spec.two["module"])
    assert all(fresh.model.get_submodule(layer).seed == 3 for layer in fresh.spec.lif_layers)  # MSG's masks


def test_compile_loop_inline_from_the_command_line(tmp_path):
    from clirun import snnc as run_snnc

    r = run_snnc("compile", str(ROOT / "models" / "digits.snn"), "--recipe", "cpng", "--loop", "inline",
                 "-o", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "b" / "train.py").read_text()
    assert "hooks.end_epoch(epoch)" in text and "loss.backward()" in text and "from snnc.runtime import trainer" \
        not in text
    bad = run_snnc("compile", str(ROOT / "models" / "digits.snn"), "--loop", "notebook", "-o", str(tmp_path / "c"))
    assert bad.returncode == 2 and "invalid choice: 'notebook'" in bad.stderr


def _inline_module(tmp_path, name="inline"):
    from snnc.compiler import compile_to
    import importlib.util

    out = tmp_path / name
    compile_to(ROOT / "models" / "digits.snn", "tet", out, {"width": "4"}, loop="inline")
    spec = importlib.util.spec_from_file_location(f"inline_train_{name}", out / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, out


def test_inline_loop_refuses_an_out_that_is_not_its_own_before_any_work(tmp_path, capsys):
    mod, build_dir = _inline_module(tmp_path)
    trainer_run = tmp_path / "trainer-run"
    trainer_run.mkdir()
    (trainer_run / "manifest.json").write_text('{"kind": "run"}\n')
    (trainer_run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    checkpoint.save_atomic({"model": {}}, trainer_run / "checkpoint.pt")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2")
    cases = {trainer_run: "holds a run of the default train.py", build_dir: "holds a build folder",
             a_file: "is a file", foreign: "files that training did not write"}
    for out, message in cases.items():
        before = {p: p.read_bytes() for p in ([out] if out.is_file() else out.rglob("*")) if p.is_file()}
        assert mod.main(["--data", "digits", "--epochs", "1", "--quiet", "--force", "--out", str(out)]) == 1, out
        assert message in capsys.readouterr().err, out
        after = {p: p.read_bytes() for p in ([out] if out.is_file() else out.rglob("*")) if p.is_file()}
        assert after == before, out
    with pytest.raises(SystemExit) as exit_:
        mod.main(["--threads", "0", "--out", str(tmp_path / "new")])
    assert exit_.value.code == 2 and not (tmp_path / "new").exists()


def test_inline_loop_sets_its_threads_and_writes_loadable_weights(tmp_path):
    mod, _ = _inline_module(tmp_path)
    run = tmp_path / "run"
    assert torch.get_num_threads() == 1  # this file's fixture
    assert mod.main(["--data", "digits", "--epochs", "1", "--quiet", "--threads", "2", "--out", str(run)]) == 0
    assert torch.get_num_threads() == 2
    weights = torch.load(run / "weights.pt", weights_only=True)
    assert "format" not in weights and all(isinstance(v, torch.Tensor) for v in weights.values())
    assert sorted(p.name for p in run.iterdir()) == ["metrics.jsonl", "weights.pt"]  # no temporary file left
