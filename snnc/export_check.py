"""Checks a deployed folder against the training model it came from.

Predictions must be equal. Per-layer spikes may differ only where BN folding
moves a membrane value across the threshold by float rounding; `tie_rate` is
the number of differing spikes over the number of spikes the training model fired.
"""

from __future__ import annotations

import importlib.util
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from snnc.backends.torch.render import render_model
from snnc.diagnostics import SnncError
from snnc.ir.graph import Graph

_counter = itertools.count()


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_{next(_counter)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_model(train: Graph, model_state: dict, workdir: Path):
    """The training model.py of `train` (regenerated from the IR) with `model_state` loaded, in eval mode."""
    path = workdir / "train_model.py"
    path.write_text(render_model(train, "model.ir", "export check"))
    module = load_module(path, "snnc_export_check")
    net = module.build_model()
    net.load_state_dict(model_state)
    return net.eval(), module.NODE_MODULES


@dataclass
class Agreement:
    samples: int
    agree: int
    spikes: int           # spikes fired by the training model, all layers
    differing: int        # spikes a deployed layer computes differently from the same upstream spikes
    per_layer: dict       # layer -> [spikes fired, differing]
    cascaded: int = 0     # spikes that differ when both models run freely

    @property
    def prediction_agreement(self) -> float:
        return self.agree / max(self.samples, 1)

    @property
    def tie_rate(self) -> float:
        return self.differing / max(self.spikes, 1)


def _spike_hooks(model, node_modules: dict[str, str], layers: list[str], store: dict):
    """Records each layer's output spikes; returns undo callables. Training LIF layers whose BN is
    fused run through `forward_bn`, which forward hooks do not see, so that method is wrapped too."""
    undo = []
    for node in layers:
        module = model.get_submodule(node_modules[node])
        handle = module.register_forward_hook(lambda m, i, o, key=node: store.setdefault(key, []).append(o.detach()))
        undo.append(handle.remove)
        if hasattr(module, "forward_bn"):
            original = module.forward_bn

            def recording(*args, _original=original, _key=node, **kwargs):
                out = _original(*args, **kwargs)
                store.setdefault(_key, []).append(out.detach())
                return out

            module.forward_bn = recording
            undo.append(lambda m=module: delattr(m, "forward_bn"))
    return undo


def _forcing_hooks(model, node_modules: dict[str, str], layers: list[str], forced: dict, counts: dict):
    """Each deployed layer counts where its spikes differ from `forced[layer]`, then outputs those."""
    handles = []
    for node in layers:
        def hook(m, i, o, key=node):
            target = forced[key].to(o.dtype)
            counts[key] = int((o != target).sum())
            return target

        handles.append(model.get_submodule(node_modules[node]).register_forward_hook(hook))
    return [h.remove for h in handles]


@torch.no_grad()
def compare(train_model, train_modules: dict[str, str], deployed, deploy_modules: dict[str, str],
            inputs: torch.Tensor, batch_size: int = 64) -> Agreement:
    """Predictions and per-layer spikes of both models on `inputs` [N, ...] (eval mode)."""
    layers = [n for n in deploy_modules if n in train_modules and
              type(deployed.get_submodule(deploy_modules[n])).__name__ == "Spiking"]
    total = Agreement(0, 0, 0, 0, {n: [0, 0] for n in layers})
    dtype = next(deployed.parameters()).dtype
    for chunk in inputs.split(batch_size):
        a_store: dict = {}
        b_store: dict = {}
        undo = _spike_hooks(train_model, train_modules, layers, a_store) + \
            _spike_hooks(deployed, deploy_modules, layers, b_store)
        try:
            out_a, _ = train_model(chunk)
            out_b = deployed(chunk.to(dtype))
        finally:
            for restore in undo:
                restore()
        total.samples += chunk.shape[0]
        total.agree += int((out_a.mean(0).argmax(-1) == out_b.float().mean(0).argmax(-1)).sum())
        total.cascaded += sum(int((a_store[n][0] != b_store[n][0].to(a_store[n][0].dtype)).sum()) for n in layers)
        forced = {n: a_store[n][0] for n in layers}
        counts: dict = {}
        undo = _forcing_hooks(deployed, deploy_modules, layers, forced, counts)
        try:
            deployed(chunk.to(dtype))
        finally:
            for restore in undo:
                restore()
        for n in layers:
            fired = int(forced[n].sum())
            total.spikes += fired
            total.differing += counts[n]
            total.per_layer[n][0] += fired
            total.per_layer[n][1] += counts[n]
    return total


def deployed_model(deploy_dir: Path):
    module = load_module(Path(deploy_dir) / "model.py", "snnc_deployed")
    return module.load_model(), module


def load_check_data(spec: str, manifest: dict):
    """The data of `--check-data SPEC`, refused unless its samples fit the run's network."""
    from snnc.runtime import data as datasets

    if manifest["input"]["kind"] == "events":
        raise SnncError("--check-data works on image networks; check event models in Python "
                        "(snnc.export_check.compare)")
    dims = tuple(manifest["input"]["dims"])
    T = int((manifest.get("params") or {}).get("T", 1))  # imagefolder and py: specs read for the network
    target = datasets.Target("image", dims, T, manifest["classes"])
    data = datasets.reshape_synthetic(datasets.load(spec, target), dims, manifest["classes"])
    if data.sample_shape != dims:
        raise SnncError(f"--check-data {spec} gives samples of shape {list(data.sample_shape)}, but "
                        f"{manifest['network']} expects {list(dims)}")
    if data.classes != manifest["classes"]:
        raise SnncError(f"--check-data {spec} has {data.classes} classes, {manifest['network']} {manifest['classes']}")
    return data


def check_deployed(train: Graph, state: dict, deploy_dir: Path, data) -> dict:
    """Test accuracy of the deployed folder, its agreement with the training model and the tie rate.

    What is checked is deploy_dir/model.py with its weights.safetensors, against the training
    model regenerated from the run's IR with the checkpoint loaded."""
    deployed, module = deployed_model(deploy_dir)
    with tempfile.TemporaryDirectory() as tmp:
        train_model, train_modules = training_model(train, state["model"], Path(tmp))
        result = compare(train_model, train_modules, deployed, module.NODE_MODULES, data.test_x)
    preds = module.predict(deployed, data.test_x)
    return {"checked": "model.py with weights.safetensors", "samples": result.samples,
            "test_acc": float((preds == data.test_y).float().mean()), "agreement": result.prediction_agreement,
            "tie_rate": result.tie_rate, "spikes": result.spikes, "differing": result.differing,
            "cascaded": result.cascaded,
            "trained_test_acc": float((state.get("metrics") or {}).get("test_acc", float("nan")))}
