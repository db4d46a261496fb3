"""`snnc info` figures against independently built torch.nn architectures."""

from pathlib import Path

import pytest
import torch
from torch import nn

from snnc.ir.analysis import costs
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
