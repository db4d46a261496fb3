"""The ANN's weights as an initial checkpoint of the generated SNN (`train.py --init CKPT`).

Keys are those of the generated model: `<NODE_MODULES[ir node]>.<tensor>`, the
attribute coming from the lowering's own naming (backends/torch/lower.py), so
`layer2.0.main.conv0` holds the ANN's `layer2.0.conv1.weight` as
`layer2_0_main_conv0.weight`. Every key and shape is checked against the
generated model, built on the meta device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from snnc.backends.torch.lower import lower_model
from snnc.backends.torch.render import render_model
from snnc.diagnostics import SnncError
from snnc.importer import Imported
from snnc.importer.fxcheck import build_on_meta, load_generated


@dataclass
class WeightsReport:
    mapped: int = 0
    ann_unused: list[str] = field(default_factory=list)   # ANN tensors with no place in the SNN
    snn_initial: list[str] = field(default_factory=list)  # SNN tensors the ANN has no value for

    def lines(self) -> list[str]:
        out = [f"mapped {self.mapped} tensors of the ANN (conv, bn, fc) onto the SNN"]
        if self.ann_unused:
            out.append(f"{len(self.ann_unused)} ANN tensors have no place in the SNN: "
                       + ", ".join(self.ann_unused[:8]) + (" ..." if len(self.ann_unused) > 8 else ""))
        if self.snn_initial:
            kinds = sorted({k.rsplit(".", 1)[-1] for k in self.snn_initial})
            out.append(f"{len(self.snn_initial)} SNN tensors keep their initial values (the neurons' "
                       f"{', '.join(kinds)})")
        return out


def load_ann_weights(imported: Imported, path: str | Path) -> None:
    """Loads a state dict (.pt, .pth or .safetensors) into the ANN; every key must fit."""
    from snnc.runtime.weights import load_state_dict

    state = load_state_dict(path)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    try:
        imported.root.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise SnncError(f"--weights {path} does not fit the network: {detail}", None,
                        "save it with torch.save(model.state_dict(), PATH) from the same class and arguments") from None


def snn_state(imported: Imported) -> tuple[dict[str, torch.Tensor], WeightsReport]:
    """The SNN state dict holding the ANN's tensors, and what did not carry over."""
    attrs = lower_model(imported.graph).node_modules
    tensors: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for ir_name, path in imported.origin.items():
        for key, value in imported.root.get_submodule(path).state_dict().items():
            tensors[f"{attrs[ir_name]}.{key}"] = value.detach().clone().contiguous()
            used.add(f"{path}.{key}")
    own = build_on_meta(load_generated(render_model(imported.graph, "imported.snn", "sdt"))).state_dict()
    wrong = [k for k, v in tensors.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        raise AssertionError(f"weights that do not fit the generated model: {', '.join(wrong[:8])}")
    report = WeightsReport(len(tensors), [k for k in imported.root.state_dict() if k not in used],
                           [k for k in own if k not in tensors])
    return tensors, report
