"""Plain torch.nn versions of the zoo's newer networks, written from the papers and the authors' code
(not from the .snn files), for counting parameters and MACs. Neurons have no weights (PLIF's one
decay per layer excepted), so nn.Identity stands in for them; their forward only has to run."""

from __future__ import annotations

import torch
from torch import nn


def cbn(cin, cout, k=3, stride=1, bias=False):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=bias), nn.BatchNorm2d(cout)]


class TokenLinearBN(nn.Module):
    """Spikformer's `*_linear` + BatchNorm1d on [B, N, C] tokens."""

    def __init__(self, cin, cout):
        super().__init__()
        self.linear, self.bn = nn.Linear(cin, cout), nn.BatchNorm1d(cout)

    def forward(self, x):
        return self.bn(self.linear(x).transpose(1, 2)).transpose(1, 2)


class SpikformerBlock(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.q, self.k, self.v, self.proj = (TokenLinearBN(dim, dim) for _ in range(4))
        self.fc1, self.fc2 = TokenLinearBN(dim, hidden), TokenLinearBN(hidden, dim)

    def forward(self, x):
        x = x + self.proj(self.q(x) @ self.k(x).transpose(1, 2) @ self.v(x) * 0.125)
        return x + self.fc2(self.fc1(x))


class Spikformer(nn.Module):
    """Spikformer-CIFAR (cifar10/model.py): SPS, blocks, head; the two unused LayerNorms of Block left out."""

    def __init__(self, dim=384, depth=4, ratio=4, classes=10, cin=3):
        super().__init__()
        pool = nn.MaxPool2d(3, 2, 1)
        self.sps = nn.Sequential(*cbn(cin, dim // 8), *cbn(dim // 8, dim // 4), *cbn(dim // 4, dim // 2), pool,
                                 *cbn(dim // 2, dim), nn.MaxPool2d(3, 2, 1))
        self.rpe = nn.Sequential(*cbn(dim, dim))
        self.blocks = nn.Sequential(*(SpikformerBlock(dim, ratio * dim) for _ in range(depth)))
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.sps(x)
        x = (x + self.rpe(x)).flatten(2).transpose(1, 2)
        return self.head(self.blocks(x).mean(1))


class SDT(nn.Module):
    """Spike-driven Transformer, CIFAR, pooling_stat 0011 (module/sps.py, module/ms_conv.py)."""

    def __init__(self, dim=256, depth=2, ratio=4, classes=10, cin=3):
        super().__init__()
        self.sps = nn.Sequential(*cbn(cin, dim // 8), *cbn(dim // 8, dim // 4), *cbn(dim // 4, dim // 2),
                                 nn.MaxPool2d(3, 2, 1), *cbn(dim // 2, dim), nn.MaxPool2d(3, 2, 1))
        self.rpe = nn.Sequential(*cbn(dim, dim))
        self.attn = nn.ModuleList(nn.ModuleList([nn.Sequential(*cbn(dim, dim, 1)) for _ in range(3)] +
                                                [nn.Sequential(*cbn(dim, dim, 1, bias=True))]) for _ in range(depth))
        self.mlp = nn.ModuleList(nn.Sequential(*cbn(dim, ratio * dim, 1, bias=True), *cbn(ratio * dim, dim, 1, bias=True))
                                 for _ in range(depth))
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.sps(x)
        x = x + self.rpe(x)
        for (q, k, v, proj), mlp in zip(self.attn, self.mlp):
            x = x + proj(q(x) * (k(x) * v(x)).sum((2, 3), keepdim=True))
            x = x + mlp(x)
        return self.head(x.mean((2, 3)))


class Residual(nn.Module):
    """A BasicBlock whose residual path and shortcut are joined by `join` (SEW's g, or a sum)."""

    def __init__(self, cin, c, stride, gate_reduction=None):
        super().__init__()
        self.main = nn.Sequential(*cbn(cin, c, 3, stride), *cbn(c, c))
        self.skip = nn.Sequential(*cbn(cin, c, 1, stride)) if stride != 1 or cin != c else nn.Identity()
        self.gate = None
        if gate_reduction:  # squeeze and excitation
            self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // gate_reduction, 1),
                                      nn.Conv2d(c // gate_reduction, c, 1), nn.Sigmoid())

    def forward(self, x):
        out = self.main(x)
        if self.gate is not None:
            out = out * self.gate(out)
        return out + self.skip(x)


def resnet18(width=64, classes=10, cin=3, gate_reduction=None):
    layers, c_in = [*cbn(cin, width)], width
    for c, stride in ((width, 1), (width, 1), (2 * width, 2), (2 * width, 1), (4 * width, 2), (4 * width, 1),
                      (8 * width, 2), (8 * width, 1)):
        layers.append(Residual(c_in, c, stride, gate_reduction))
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes))


class PLIFNet(nn.Module):
    """The PLIF paper's Cifar10Net (codes/models.py) with one decay parameter per PLIF layer."""

    def __init__(self, width=256, hidden=2048, classes=10, cin=3, size=32):
        super().__init__()
        convs = []
        for i in range(6):
            convs += cbn(cin if i == 0 else width, width)
            if i in (2, 5):
                convs.append(nn.MaxPool2d(2, 2))
        self.conv = nn.Sequential(*convs)
        flat = width * (size // 4) ** 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(flat, hidden, bias=False),
                                nn.Linear(hidden, 10 * classes, bias=False))
        self.w = nn.Parameter(torch.zeros(8))  # one per PLIF layer: six convs, two fcs

    def forward(self, x):
        return nn.functional.avg_pool1d(self.fc(self.conv(x)).unsqueeze(1), 10, 10).squeeze(1)


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, 4 * growth, 1, bias=False),
                                  nn.BatchNorm2d(4 * growth), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([self.body(x), x], 1)


def densenet(growth=12, depths=(6, 12, 24, 16), classes=10, cin=3):
    layers, c = [nn.Conv2d(cin, 2 * growth, 3, padding=1, bias=False)], 2 * growth
    for i, n in enumerate(depths):
        for _ in range(n):
            layers.append(DenseLayer(c, growth))
            c += growth
        if i < len(depths) - 1:
            layers += [nn.BatchNorm2d(c), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
            c //= 2
    return nn.Sequential(*layers, nn.BatchNorm2d(c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def torch_macs(model: nn.Module, shape) -> int:
    """Conv and Linear multiply-accumulates of one sample (the only layers snnc's conv/fc/linear MACs count)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total
