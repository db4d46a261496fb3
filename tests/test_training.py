"""Generated training end to end on the CPU: SML, TWO, TIT, MSG, resume, NaN, learning."""

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from clirun import snnc
from snnc.runtime import checkpoint
from trainkit import build, read_metrics, stable

QUICK = ["--data", "synthetic:64", "--batch-size", "32", "--quiet"]


def test_sml_leaves_the_snn_forward_identical(tmp_path):
    _, plain = build(tmp_path, "digits", "sdt")
    _, sml = build(tmp_path, "digits", "sml+tet")
    torch.manual_seed(0)
    a = sml.model.build_model()
    b = plain.model.build_model()
    missing = b.load_state_dict({k: v for k, v in a.state_dict().items() if k in b.state_dict()}, strict=True)
    assert not missing.missing_keys
    x = torch.randn(5, 1, 8, 8)
    for mode in ("train", "eval"):
        getattr(a, mode)(), getattr(b, mode)()
        (oa, aux), (ob, none) = a(x), b(x)
        assert torch.equal(oa, ob) and len(aux) == 2 and none == []


def test_sml_gradients_reach_layers_before_the_module(tmp_path):
    _, sml = build(tmp_path, "digits", "sml(at=[2])")
    net = sml.model.build_model()
    O, aux = net(torch.randn(6, 1, 8, 8))
    F.cross_entropy(aux[0], torch.arange(6) % 10).backward()
    assert net.stem_conv.weight.grad.abs().sum() > 0                 # before the module: reached
    assert net.layer2_0_main_conv0.weight.grad.abs().sum() > 0       # inside the chosen block: reached
    assert net.head_fc.weight.grad is None                           # after it: untouched


def test_two_hook_update_rule():
    from snnc.runtime.hooks import TWOHook
    from snnc.runtime.layers import TimeWeights

    net = torch.nn.Module()
    net.decode = TimeWeights(3)
    hook = TWOHook(net, "decode", m=0.7, warmup=1)
    y = torch.tensor([0, 1, 2, 0])
    outputs = torch.zeros(3, 4, 3)
    outputs[0, torch.arange(4), y] = 1          # step 0: 4/4 right
    outputs[1, torch.arange(2), y[:2]] = 1      # step 1: 2/4 right
    outputs[1, 2:, 1] = outputs[1, 2:, 0] = 0.5  # (ties resolve to class 0: sample 3 right)
    outputs[2, :, 2] = 1                         # step 2: 1/4 right
    hook.observe(outputs, y)
    assert hook.end_epoch(0) == [1.0, 1.0, 1.0]  # epoch 1 is still in the warm-up (epochs 0..1)
    hook.observe(outputs, y)
    f = hook.end_epoch(1)
    acc = torch.tensor([1.0, 0.75, 0.25], dtype=torch.float64)
    expected = 0.7 + 0.3 * acc / acc.mean()
    assert torch.allclose(torch.tensor(f, dtype=torch.float64), expected, atol=1e-6)
    assert torch.allclose(net.decode(torch.ones(3, 2, 3))[:, 0, 0].double(), expected, atol=1e-6)


def test_tit_keeps_weights_and_statistics_across_the_T_change(tmp_path, monkeypatch):
    from snnc.runtime import setup, trainer

    out, mod = build(tmp_path, "digits", "tit(stages=[(2,1),(3,1)])")
    seen = []
    original = setup.make_optimizer

    def spy(model, args, lr):
        seen.append(({k: v.clone() for k, v in model.state_dict().items()}, model.T))
        return original(model, args, lr)

    saved = []
    monkeypatch.setattr(setup, "make_optimizer", spy)
    monkeypatch.setattr(trainer.Trainer, "_save", lambda self, o, s, st: saved.append(
        {k: v.clone() for k, v in self.model.state_dict().items()}))
    assert mod.main(QUICK + ["--out", str(tmp_path / "run")]) == 0
    (start1, t1), (start2, t2) = seen
    assert (t1, t2) == (2, 3)
    after_stage1 = saved[0]
    assert all(torch.equal(start2[k], after_stage1[k]) for k in after_stage1)  # inherited, BN stats included
    assert any(not torch.equal(start1[k], after_stage1[k]) for k in after_stage1 if "running_mean" in k)
    assert [r["T"] for r in read_metrics(tmp_path / "run")] == [2, 3]


def test_msg_with_p_zero_equals_sdt(tmp_path):
    runs = []
    for recipe in ("sdt", "msg(mask_p=0)"):
        _, mod = build(tmp_path, "digits", recipe)
        run = tmp_path / f"run-{len(runs)}"
        assert mod.main(QUICK + ["--epochs", "1", "--out", str(run)]) == 0
        runs.append(run)
    a, b = (checkpoint.load(r / "checkpoint.pt")["model"] for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert stable(read_metrics(runs[0])) == stable(read_metrics(runs[1]))


def test_resume_gives_the_same_metrics_and_weights(tmp_path):
    _, mod = build(tmp_path, "digits", "sml+two(warmup=0)+msg+tet")
    full, part = tmp_path / "full", tmp_path / "part"
    args = QUICK + ["--epochs", "3"]
    assert mod.main(args + ["--out", str(full)]) == 0
    assert mod.main(args + ["--out", str(part), "--stop-after", "1"]) == 0
    assert len(read_metrics(part)) == 1
    assert mod.main(args + ["--out", str(part), "--resume"]) == 0
    assert stable(read_metrics(full)) == stable(read_metrics(part))
    a, b = (checkpoint.load(r / "checkpoint.pt")["model"] for r in (full, part))
    assert all(torch.equal(a[k], b[k]) for k in a)


# Three layers with different thresholds and CPNG's three surrogates (their support
# half-widths differ); every layer is listed with (vth, surrogate, initial beta).
CPNG_NET = """network cp(T = 3, classes = 10) {
  input image[1, 8, 8]
  neuron lif(decay = 0.5, vth = 0.5)
  surrogate triangle(beta = 1.0)
  norm bn
  stem = conv(8, 3) -> bn -> lif
  mid  = (conv(8, 3) -> bn -> lif(vth = 1.5)) @surrogate(arctan)
  low  = (conv(8, 3, 2) -> bn -> lif) @surrogate(rectangle(beta = 2))
  head = adaptive_avgpool -> flatten -> fc(classes)
}
"""
CPNG_LAYERS = {"stem_lif": (0.5, "triangle", 1.0), "mid_lif": (1.5, "arctan", 1.0), "low_lif": (0.5, "rectangle", 2.0)}


def _chi(beta, mu, sigma, vth, surrogate):
    """P(|h - vth| < w(beta)) for h ~ N(mu, sigma^2), w = 1/beta or 1/(2 beta) for rectangle (docs/methods.md §7)."""
    w = 1 / (2 * beta) if surrogate == "rectangle" else 1 / beta
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    return cdf((vth + w - mu) / sigma) - cdf((vth - w - mu) / sigma)


def test_cpng_follows_the_epoch_rule_from_the_logged_statistics(tmp_path):
    source = tmp_path / "cp.snn"
    source.write_text(CPNG_NET)
    _, mod = build(tmp_path, source, "cpng(chi_limit=0.5)+tet")
    run = tmp_path / "run"
    assert mod.main(QUICK + ["--epochs", "5", "--out", str(run)]) == 0
    records = read_metrics(run)
    assert set(mod.model.CPNG_LAYERS) == set(CPNG_LAYERS)
    branches = set()
    for layer, (vth, surrogate, beta) in CPNG_LAYERS.items():
        rec = None
        for r in records:  # replay the rule on each epoch's logged mu and sigma, with the beta in use
            log = r["cpng"][layer]
            current = _chi(beta, log["mu"], log["sigma"], vth, surrogate)
            if rec is None:
                rec, solve = current, False  # the first epoch only records chi
            else:
                if rec < 0.5:
                    rec, why = 0.5, "limit"
                elif current < rec:
                    rec, why = current, "lower"
                else:
                    why = "keep"
                solve = rec != current
                branches.add(why)
            assert log["chi"] == pytest.approx(rec, rel=1e-9), (layer, r["epoch"])
            if solve:  # a new beta whose chi is the recorded one
                assert _chi(log["beta"], log["mu"], log["sigma"], vth, surrogate) == pytest.approx(rec, abs=1e-6)
                assert log["beta"] != beta, (layer, r["epoch"])  # chi is strictly monotone in beta
            else:
                assert log["beta"] == beta, (layer, r["epoch"])
            beta = log["beta"]
    assert branches == {"limit", "lower", "keep"}  # this run goes through every case of the rule
    ck = checkpoint.load(run / "checkpoint.pt")
    for layer, v in records[-1]["cpng"].items():  # the logged beta is the one the layer holds
        assert ck["model"][f"{layer}.sg_params"][0].item() == pytest.approx(v["beta"], rel=1e-6)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, capsys):
    _, mod = build(tmp_path, "digits", "sdt")
    calls = {"n": 0}
    real = mod.compute_loss

    def flaky(outputs, aux, y):
        calls["n"] += 1
        loss = real(outputs, aux, y)
        return loss * float("nan") if calls["n"] == 4 else loss  # step 2 of epoch 2 (2 batches per epoch)

    mod.compute_loss = flaky
    run = tmp_path / "run"
    assert mod.main(QUICK + ["--epochs", "3", "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert "the loss became nan at epoch 2, step 2" in err and "Traceback" not in err
    assert checkpoint.load(run / "checkpoint.pt")["epoch"] == 1


def test_run_folder_is_not_overwritten_by_accident(tmp_path, capsys):
    _, mod = build(tmp_path, "digits", "sdt")
    run = tmp_path / "run"
    assert mod.main(QUICK + ["--epochs", "1", "--out", str(run)]) == 0
    assert mod.main(QUICK + ["--epochs", "1", "--out", str(run)]) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert mod.main(QUICK + ["--epochs", "1", "--out", str(run), "--force"]) == 0


@pytest.mark.parametrize("recipe", ["sdt", "tet", "sml", "sml+tet", "msg+two", "sml+tet+tit(stages=[(2,1)])",
                                    "two+tet", "msg(rescale=true)+sml"])
def test_resnet18_takes_a_training_step_with_each_recipe(tmp_path, recipe):
    _, mod = build(tmp_path, "resnet18", recipe)
    torch.manual_seed(0)
    net = mod.model.build_model()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    outputs, aux = net(x)
    loss = mod.compute_loss(outputs, aux, y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and outputs.shape == (net.T, 2, 10)
    assert net.stem_conv.weight.grad.abs().sum() > 0


def test_digits_sml_tet_learns(tmp_path):
    _, mod = build(tmp_path, "digits", "sml+tet")
    run = tmp_path / "run"
    assert mod.main(["--data", "digits", "--epochs", "2", "--lr", "0.01", "--quiet", "--out", str(run)]) == 0
    first, second = read_metrics(run)
    assert second["train_loss"] < first["train_loss"] and second["test_acc"] > 0.2


def test_snnc_train_equals_python_train_py(tmp_path):
    out, _ = build(tmp_path, "digits", "tet")
    a = snnc("train", str(out), *QUICK, "--epochs", "1", "--out", str(tmp_path / "a"))
    b = subprocess.run([sys.executable, str(out / "train.py"), *QUICK, "--epochs", "1", "--out",
                        str(tmp_path / "b")], capture_output=True, text=True)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert stable(read_metrics(tmp_path / "a")) == stable(read_metrics(tmp_path / "b"))
