"""Memory policies change what is kept for backward, never a number: gradients, weights and buffers
under `pack` and `recompute` equal `store`'s bit for bit (torch.equal) over several training steps,
for ResNet-style blocks at a small width and for every recipe on digits, through the recipes' own
loss and epoch hooks (CPNG's beta, TWO's weights, TIT's stages, MSG's masks)."""

from __future__ import annotations

import pytest
import torch
from memkit import ROOT, model_module, sample

import snnc

POLICIES = ("store", "pack", "recompute")
BLOCKS = """
network blocks(T = 3, classes = 10, width = 8) {
  input image[3, 16, 16]
  neuron lif(decay = 0.5, vth = 1.0, reset = hard)
  surrogate dspike(b = 2.5)
  norm NORM
  block basic(c, stride = 1) {
    main = conv(c, 3, stride) -> bn -> lif -> conv(c, 3) -> bn
    skip = (conv(c, 1, stride) -> bn) if stride != 1 or in != c else identity
    out  = add(main, skip) -> lif
  }
  stem   = conv(width, 3) -> bn -> lif
  layer1 = basic(width) x 2
  layer2 = basic(2 * width, stride = 2) -> basic(2 * width)
  head   = avgpool(2) -> conv(4 * width, 3) -> bn -> lif -> maxpool(2) -> flatten -> fc(32) -> lif -> fc(classes)
}
"""
SOFT = BLOCKS.replace("neuron lif(decay = 0.5, vth = 1.0, reset = hard)",
                      "neuron lif(decay = 0.6, vth = 0.8, reset = soft, decay_input = true)")


def _same(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name], b[name]
        assert (x is None) == (y is None), (what, name)
        assert x is None or torch.equal(x, y), (what, name)


def _grads(model) -> dict:
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def _models(source, recipe, fuse=True):
    modules = {p: model_module(source, recipe, p, fuse) for p in POLICIES}
    torch.manual_seed(0)
    nets = {p: m.build_model().train() for p, m in modules.items()}
    for net in nets.values():
        net.load_state_dict(nets["store"].state_dict())
    return modules["store"], nets


@pytest.mark.parametrize("source, fuse", [(BLOCKS.replace("NORM", "bn"), True), (SOFT.replace("NORM", "tdbn"), True),
                                          (BLOCKS.replace("NORM", "bn"), False)], ids=["bn", "tdbn-soft", "unfused"])
def test_resnet_blocks_train_bit_identically_under_every_policy(source, fuse):
    module, nets = _models(source, "tet", fuse)
    plans = {p: n for p, n in zip(POLICIES, (model_module(source, "tet", p, fuse).COMPILED.graph for p in POLICIES))}
    assert any(n.attrs.get("saves") == "segment" for n in plans["pack"].nodes)       # the plans differ ...
    assert any(n.attrs.get("saves") == "recomputed" and n.op == "conv" for n in plans["recompute"].nodes)
    opts = {p: torch.optim.AdamW(n.parameters(), lr=0.05) for p, n in nets.items()}
    for step in range(3):
        x, y = sample(module, 4, 3, seed=step)
        grads, outs = {}, {}
        for p, net in nets.items():
            opts[p].zero_grad(set_to_none=True)
            out, _ = net(x)
            torch.nn.functional.cross_entropy(out.mean(0), y).backward()
            grads[p], outs[p] = _grads(net), out.detach()
            opts[p].step()
        for p in ("pack", "recompute"):  # ... the numbers do not
            assert torch.equal(outs[p], outs["store"])
            _same(grads[p], grads["store"], f"{p} step {step}")
            _same(dict(nets[p].state_dict()), dict(nets["store"].state_dict()), f"{p} state {step}")
    assert all(g is not None for g in grads["store"].values())


RECIPES = ["sdt", "tet", "sml+tet", "cpng+tet", "msg+two", "sml+tet+tit(stages=[(2, 1), (4, 1)])",
           "msg(mask_p=0.3, rescale=true)+cpng(per_batch=true)+sml(n=2)+tet"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_on_digits_trains_bit_identically(recipe):
    """The recipes' loop (docs/loop.md) with their hooks, two epochs of three batches."""
    built = {p: snnc.build(str(ROOT / "models" / "digits.snn"), recipe, memory=p, width=8, seed=0) for p in POLICIES}
    assert built["pack"].model.forward_planned  # the plan reached model.py
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(48, 1, 8, 8, generator=g), torch.randint(0, 10, (48,), generator=g)
    opts = {}
    epoch = 0
    tit = "tit" in recipe
    for T, epochs in built["store"].stages(epochs=None if tit else 2):
        for b in built.values():
            b.set_time_steps(T)
        opts = {p: torch.optim.AdamW(b.model.parameters(), lr=0.02) for p, b in built.items()}
        for _ in range(epochs):
            for i in range(3):
                x, y = xs[16 * i:16 * i + 16], ys[16 * i:16 * i + 16]
                grads, outs = {}, {}
                for p, b in built.items():
                    b.model.train()
                    b.before_batch(last=i == 2)
                    out, aux = b.model(x)
                    loss = b.loss(out, aux, y)
                    opts[p].zero_grad(set_to_none=True)
                    loss.backward()
                    grads[p], outs[p] = _grads(b.model), out.detach()
                    opts[p].step()
                    b.after_batch(out, y)
                for p in ("pack", "recompute"):
                    assert torch.equal(outs[p], outs["store"]), (recipe, p)
                    _same(grads[p], grads["store"], f"{recipe} {p}")
            records = {p: b.end_epoch(epoch) for p, b in built.items()}
            assert records["pack"] == records["store"] == records["recompute"]
            epoch += 1
    assert epoch == 2 and (not tit or built["store"].model.T == 4)
    for p in ("pack", "recompute"):
        _same(dict(built[p].model.state_dict()), dict(built["store"].model.state_dict()), f"{recipe} {p} weights")
