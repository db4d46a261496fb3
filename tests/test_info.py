"""`snnc info` figures against independently built torch.nn architectures; memory footprint and size limits."""

import json
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from clirun import snnc
from snnc.budget import MAX_PARAM_BYTES, WARN_ACTIVATION_BYTES, WARN_PARAM_BYTES, human_bytes, warnings
from snnc.diagnostics import SOURCES, SnncError, render
from snnc.ir.analysis import costs, footprint
from snnc.pipeline import compile_source

ROOT = Path(__file__).resolve().parent.parent


def info(model: str, **overrides):
    g = compile_source(ROOT / "models" / f"{model}.snn", {k: str(v) for k, v in overrides.items()}).graph
    return costs(g)


# ---- plain PyTorch versions of the zoo (ReLU stands in for LIF: neither has parameters)
def cbr(cin, cout, k=3, stride=1, pad=None):
    return [nn.Conv2d(cin, cout, k, stride, k // 2 if pad is None else pad, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU()]


class Basic(nn.Module):
    def __init__(self, cin, c, stride=1, sew=False):
        super().__init__()
        self.main = nn.Sequential(*cbr(cin, c, 3, stride), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.skip = nn.Identity()
        if stride != 1 or cin != c:
            self.skip = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(self.main(x) + self.skip(x))


def resnet(stem, stages, classes, head_hidden=None):
    layers, cin = list(stem), stem[0].out_channels
    for c, n, stride in stages:
        for i in range(n):
            layers.append(Basic(cin, c, stride if i == 0 else 1))
            cin = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if head_hidden:
        layers += [nn.Linear(cin, head_hidden), nn.ReLU()]
        cin = head_hidden
    layers.append(nn.Linear(cin, classes))
    return nn.Sequential(*layers)


def vgg(cin, plan, classes, flat):
    layers = []
    for item in plan:
        if item == "A":
            layers.append(nn.AvgPool2d(2))
        else:
            layers += cbr(cin, item)
            cin = item
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, classes))


TORCH_MODELS = {
    "resnet18": (lambda: resnet(cbr(3, 64), [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)], 10), (3, 32, 32)),
    "resnet19": (lambda: resnet(cbr(3, 64), [(128, 3, 1), (256, 3, 2), (512, 2, 2)], 10, head_hidden=256),
                 (3, 32, 32)),
    "resnet34": (lambda: resnet(cbr(3, 64, 7, 2), [(64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1000),
                 (3, 224, 224)),
    "vggsnn": (lambda: vgg(2, [64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A"], 10, 512 * 9),
               (2, 48, 48)),
    "cifarnet": (lambda: vgg(3, [256, 256, "A", 256, 256, "A", 512, 512, 512, "A", 1024, 1024, "A"], 10, 4096),
                 (3, 32, 32)),
    "vgg16": (lambda: vgg(3, [64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A",
                              512, 512, 512, "A"], 100, 512), (3, 32, 32)),
    "digits": (lambda: resnet(cbr(1, 16), [(16, 1, 1), (32, 1, 2)], 10), (1, 8, 8)),
}


def torch_macs(model: nn.Module, shape) -> int:
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("model", sorted(TORCH_MODELS))
def test_params_and_macs_match_torch(model):
    build, shape = TORCH_MODELS[model]
    net = build()
    c = info(model)
    assert c.params == sum(p.numel() for p in net.parameters())
    assert c.macs == torch_macs(net, shape)


@pytest.mark.parametrize("depth", [5, 13, 21])
def test_toy_depth_parameter(depth):
    net = nn.Sequential(*cbr(3, 64), *cbr(64, 64, 3, 2), *cbr(64, 128, 3, 2),
                        *[m for _ in range(depth) for m in cbr(128, 128)],
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(512, 10))
    c = info("toy", L=depth)
    assert c.params == sum(p.numel() for p in net.parameters())
    assert c.macs == torch_macs(net, (3, 32, 32))
    assert c.lif_layers == depth + 3


@pytest.mark.parametrize("model,gmac", [("resnet18", 0.56), ("resnet19", 2.22)])
def test_macs_match_the_sml_paper(model, gmac):
    assert info(model).macs / 1e9 == pytest.approx(gmac, rel=0.03)


def test_neurons_count_lif_outputs():
    c = info("digits")
    # stem 16x8x8, block1: 2 LIF of 16x8x8, block2: 2 LIF of 32x4x4
    assert c.neurons == 3 * 16 * 64 + 2 * 32 * 16
    assert c.lif_layers == 5


# ------------------------------------------------------------------ memory footprint and the size limits
TINY = """network tiny(T = 4, width = 4, classes = 10) {
  input image[1, 8, 8]
  stem = conv(width, 3) -> bn -> lif
  head = flatten -> fc(classes)
}
"""


def test_footprint_of_a_small_network_by_hand():
    g = compile_source(TINY, file="tiny.snn").graph
    fp = footprint(g)
    # per step: input 64, conv 4*64, bn 4*64, lif 4*64, flatten (a view) 0, fc 10
    assert fp.steps == 4 and fp.activation_bytes == 4 * 4 * (64 + 3 * 256 + 10)
    assert fp.param_bytes == 4 * (4 * 9 + 2 * 4 + 10 * 256 + 10) == 4 * costs(g).params
    assert fp.largest_params[1].name == "head.fc" and fp.largest_activations[1].name == "stem.conv"


def test_footprint_counts_sml_modules_and_the_longest_tit_stage():
    plain = footprint(compile_source(ROOT / "models" / "digits.snn", recipe="sdt").graph)
    sml = footprint(compile_source(ROOT / "models" / "digits.snn", recipe="sml").graph)
    assert sml.param_bytes > plain.param_bytes and sml.largest_params[1].role == "aux"
    tit = footprint(compile_source(ROOT / "models" / "digits.snn", recipe="tit(stages=[(8, 1), (2, 1)])").graph)
    assert tit.steps == 8 and tit.activation_bytes == 2 * plain.activation_bytes


def too_large(text: str, overrides=None, recipe=None):
    start = time.perf_counter()
    with pytest.raises(SnncError) as info:
        compile_source(text, overrides or {}, file="big.snn", recipe=recipe)
    assert time.perf_counter() - start < 10
    err = info.value
    assert "is too large to train" in err.message and err.loc is not None, render(err)
    assert "SNNC_ALLOW_LARGE=1" in err.hint
    return err


def line_of(err) -> str:
    return SOURCES.line(err.loc).strip()


DIGITS = (ROOT / "models" / "digits.snn").read_text()


@pytest.mark.parametrize("overrides,what,where", [
    ({"width": "100000"}, "parameters", "main = conv"),
    ({"width": "2000000000"}, "parameters", "main = conv"),
    ({"classes": "1000000000"}, "parameters", "head"),
    ({"T": "100000000"}, "activations", "stem"),
    ({"T": "300000"}, "activations", "stem"),
])
def test_networks_too_large_are_refused_at_the_layer(overrides, what, where):
    err = too_large(DIGITS, overrides)
    assert what in err.message and line_of(err).startswith(where), render(err)
    if "T" in overrides:
        assert f"T = {overrides['T']} comes from --set" in render(err)


@pytest.mark.parametrize("old,new,where", [
    ("head   = adaptive_avgpool -> flatten -> fc(classes)", "head = flatten -> fc(1000000000) -> fc(classes)", "head"),
    ("input image[1, 8, 8]", "input image[1, 100000, 100000]", "stem"),
    ("T = 4", "T = 100000000", "stem"),
])
def test_source_edits_too_large_are_refused(old, new, where):
    err = too_large(DIGITS.replace(old, new))
    assert line_of(err).startswith(where)
    if "T =" in new:
        assert any(n.message == "T = 100000000 is declared here" and n.loc.line == 4 for n in err.notes)


def test_sml_modules_too_large_point_at_the_recipe():
    err = too_large(DIGITS, recipe="sml(k = 1e9)")
    assert err.loc.file == "--recipe" and "'sm1." in err.message and "sml(k = ...)" in err.hint
    assert err.notes[0].loc.file == "big.snn"


def test_a_long_tit_stage_points_at_the_recipe():
    err = too_large(DIGITS, recipe="tit(stages=[(2, 1), (100000000, 1)])")
    assert any(n.loc is not None and n.loc.file == "--recipe" and "T = 100000000" in n.message for n in err.notes)


def test_snnc_allow_large_builds_it_anyway(monkeypatch):
    monkeypatch.setenv("SNNC_ALLOW_LARGE", "1")
    g = compile_source(DIGITS, {"width": "100000"}, file="big.snn").graph
    assert footprint(g).param_bytes > MAX_PARAM_BYTES


def test_limits_leave_the_zoo_alone():
    for path in sorted((ROOT / "models").glob("*.snn")):
        fp = footprint(compile_source(path, recipe="sdt").graph)
        assert fp.param_bytes < WARN_PARAM_BYTES and fp.activation_bytes < WARN_ACTIVATION_BYTES
        assert not warnings(fp)


def test_info_prints_memory_and_warns_above_the_lower_threshold():
    r = snnc("info", "models/digits.snn")
    assert r.returncode == 0 and "weights          78.8 KB (float32)" in r.stdout and not r.stderr
    r = snnc("info", "models/digits.snn", "--set", "width=3000", "--json")
    row = json.loads(r.stdout)
    assert r.returncode == 0 and row["memory"]["param_bytes"] == 4 * row["parameters"] > WARN_PARAM_BYTES
    assert len(row["warnings"]) == 1 and "warning: 2.66 GB of float32 parameters" in r.stderr


def test_compile_refuses_before_writing(tmp_path):
    r = snnc("compile", "models/digits.snn", "--set", "width=100000", "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and "too large to train" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "train.py").exists()


@pytest.mark.parametrize("n,text", [(999, "999 bytes"), (78_824, "78.8 KB"), (32 * 10**9, "32 GB"),
                                    (2 * 10**15, "2 PB"), (12_345 * 10**300, "1.23e304 bytes")])
def test_human_bytes(n, text):
    assert human_bytes(n) == text


def test_widths_past_any_float_are_refused():
    err = too_large(DIGITS.replace("width = 16", "width = 1e200"))  # an integral float: a valid width
    assert "e40" in err.message and "bytes of float32 parameters" in err.message
