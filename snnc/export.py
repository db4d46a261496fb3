"""`snnc export`: inference passes, folded weights and a standalone deployable folder.

DEPLOY/model.py             imports only torch; load_model(), preprocess(), predict()
DEPLOY/weights.safetensors  the folded weights
DEPLOY/model.ir             the inference IR
DEPLOY/manifest.json        source hash, recipe, T, input and its preprocessing, classes, snnc version,
                            the checkpoint's metrics, and with --check-data what the check measured
DEPLOY/model.nir            with --nir (snnc/nir_export.py)

Everything the export needs (the run, the checkpoint, the check data, the destination) is
checked before anything is written; the folder is then staged next to DEPLOY, checked
there when --check-data is given, and renamed into place (snnc/outputs.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from snnc import __version__
from snnc.backends.torch.lower import lower_model
from snnc.backends.torch.render import render_deploy
from snnc.diagnostics import SnncError
from snnc.ir.graph import Graph
from snnc.ir.printer import print_graph
from snnc.outputs import check_destination, staged_folder
from snnc.passes import run_pipeline
from snnc.runfolder import check_checkpoint, read_ir, read_manifest
from snnc.pipeline import inference_steps
from snnc.runtime import checkpoint as ckpt

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def load_run(run_dir: Path, checkpoint: Path | None = None):
    """(training graph at the checkpoint's T, manifest, checkpoint) of a run folder, every field checked.

    A TIT run trains at several T; the graph is returned at the T of the stage the checkpoint
    was saved in, which is the T the model is built, checked and deployed at."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SnncError(f"no run folder {run_dir}", hint="train first: python BUILD/train.py --out RUN_DIR")
    for name in ("model.ir", "manifest.json"):
        if not (run_dir / name).is_file():
            raise SnncError(f"{run_dir} has no {name}", hint="it is written when training starts; is this a run folder?")
    manifest = read_manifest(run_dir / "manifest.json")
    if _minor(manifest["snnc_version"]) != _minor(__version__):
        raise SnncError(f"the run was compiled by snnc {manifest['snnc_version']}, this is snnc {__version__}",
                        hint="export with the snnc version that compiled it, or recompile and retrain")
    graph = read_ir(run_dir / "model.ir")
    path = Path(checkpoint) if checkpoint else run_dir / "checkpoint.pt"
    state = check_checkpoint(ckpt.load(path), path, graph)
    if state["network"] != manifest["network"] or state["recipe"] != manifest["recipe"]:
        raise SnncError(f"the checkpoint is for {state['network']} with {state['recipe']}, but {run_dir} "
                        f"holds {manifest['network']} with {manifest['recipe']}",
                        hint="pass the checkpoint of this run")
    if graph.network != manifest["network"]:
        raise SnncError(f"{run_dir}/model.ir is network {graph.network}, the manifest says {manifest['network']}")
    inp = graph.node("x").attrs
    if manifest["input"] != {"kind": inp["kind"], "dims": list(inp["dims"])} or \
            manifest["classes"] != graph.node(graph.output).shape[-1]:
        raise SnncError(f"{run_dir}/manifest.json and model.ir disagree about the input or the classes",
                        hint="one of them was edited; restore it, or recompile and retrain")
    if "T" in state and state["T"] != int(graph.params["T"]):
        graph = graph.replace(params=graph.params.set(T=int(state["T"])))
    return graph, manifest, state


def _minor(version: str) -> tuple:
    return tuple(version.split(".")[:2])


def _tensor(state: dict, key: str, shape=None) -> torch.Tensor:
    if key not in state:
        raise SnncError(f"the checkpoint has no tensor '{key}': it is from another network",
                        hint="export the run this checkpoint belongs to")
    t = state[key]
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise SnncError(f"checkpoint tensor '{key}' has shape {list(t.shape)}, the network needs {list(shape)}",
                        hint="the checkpoint is from a network with other sizes")
    _require_finite(key, t, "checkpoint tensor")
    return t.double()


def _require_finite(key: str, t: torch.Tensor, what: str) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise SnncError(f"{what} '{key}' holds {bad} non-finite value(s) (NaN or infinity): the run diverged "
                        f"or the file is damaged; nothing was exported",
                        hint="export an earlier checkpoint with --checkpoint, or retrain with a lower --lr")


def deploy_weights(inference: Graph, train_modules: dict[str, str], deploy_modules: dict[str, str],
                   state: dict) -> dict[str, torch.Tensor]:
    """Folded float64 tensors keyed by the deployed model's state-dict names."""
    by_name = inference.by_name
    out: dict[str, torch.Tensor] = {}

    def bn_factors(bn_name: str, channels: int, eps: float, scale: float):
        p = f"{train_modules[bn_name]}."
        gamma, beta = _tensor(state, p + "weight", (channels,)), _tensor(state, p + "bias", (channels,))
        mean, var = _tensor(state, p + "running_mean", (channels,)), _tensor(state, p + "running_var", (channels,))
        k = gamma * scale / torch.sqrt(var + eps)   # docs/methods.md §9, in float64 to keep rounding at the threshold rare
        return k, beta, mean

    for node in inference.nodes:
        if node.op == "layernorm" or (node.op == "lif" and "learn_decay" in node.attrs):
            out.update(_trained_as_is(node, train_modules[node.name], deploy_modules[node.name], state))
            continue
        if node.op not in ("conv", "fc", "linear", "affine"):
            continue
        a = node.attrs
        dst = f"{deploy_modules[node.name]}."
        if node.op == "affine":
            k, beta, mean = bn_factors(a["from_bn"], node.shape[2], a["bn_eps"], a["bn_scale"])
            out[dst + "weight"], out[dst + "bias"] = k, beta - mean * k
            continue
        cin = by_name[node.inputs[0]].shape[2]
        wshape = (a["out"], cin // a["groups"], a["k"], a["k"]) if node.op == "conv" else (a["out"], cin)
        src = f"{train_modules[node.name]}."
        w = _tensor(state, src + "weight", wshape)
        had_bias = src + "bias" in state
        b = _tensor(state, src + "bias", (a["out"],)) if had_bias else torch.zeros(a["out"], dtype=torch.float64)
        if "folded_bn" in a:
            k, beta, mean = bn_factors(a["folded_bn"], a["out"], a["bn_eps"], a["bn_scale"])
            w = w * k.view(-1, *([1] * (w.dim() - 1)))
            b = beta + (b - mean) * k
        out[dst + "weight"] = w
        if a["bias"]:
            out[dst + "bias"] = b
    return out


def _trained_as_is(node, src: str, dst: str, state: dict) -> dict[str, torch.Tensor]:
    """A layernorm's weight and bias, or a PLIF layer's trained w, copied unchanged."""
    channels = node.features[0]
    if node.op == "layernorm":
        return {f"{dst}.{k}": _tensor(state, f"{src}.{k}", (channels,)) for k in ("weight", "bias")}
    shape = () if node.attrs["learn_decay"] == "layer" else (channels,)
    return {f"{dst}.w": _tensor(state, f"{src}.w", shape)}


def decoding_weights(train: Graph, train_modules: dict[str, str], state: dict) -> tuple[float, ...] | None:
    decode = train.of_op("two_decode")
    if not decode:
        return None
    T = int(train.params["T"])
    return tuple(float(x) for x in _tensor(state, f"{train_modules[decode[0].name]}.f", (T,)))


def build_inference(train: Graph, state: dict) -> tuple[Graph, dict[str, str]]:
    """(inference graph, the training model's node -> module map) for a checkpoint's state dict."""
    train_modules = lower_model(train).node_modules
    model_state = state["model"] if "model" in state else state
    graph = run_pipeline(train, inference_steps(decoding_weights(train, train_modules, model_state)))
    return graph, train_modules


def export_run(run_dir: str | Path, deploy_dir: str | Path, checkpoint: str | Path | None = None,
               dtype: str = "fp32", nir: bool = False, nir_options: dict | None = None,
               check_data: str | None = None, force: bool = False) -> dict:
    """Writes DEPLOY_DIR; returns its manifest plus `deploy_dir` (and `check` with check_data)."""
    if dtype not in DTYPES:
        raise SnncError(f"unknown --dtype {dtype}", hint="fp32 or fp16")
    run_dir = Path(run_dir)
    deploy_dir = check_destination(deploy_dir, "deploy", force=force, inside=(run_dir,))
    train, manifest, state = load_run(run_dir, Path(checkpoint) if checkpoint else None)
    data = None
    if check_data:
        from snnc.export_check import load_check_data

        data = load_check_data(check_data, manifest)
    inference, train_modules = build_inference(train, state)
    model_text, deploy_modules = render_deploy(inference, manifest.get("source", "?"), manifest["recipe"],
                                               (manifest.get("data") or {}).get("preprocess"))
    weights = deploy_weights(inference, train_modules, deploy_modules, state["model"])
    for key, tensor in weights.items():
        _require_finite(key, tensor, "folded weight")
    weights = {k: v.to(DTYPES[dtype]).contiguous() for k, v in weights.items()}
    info = {
        "kind": "deploy", "snnc_version": __version__, "network": manifest["network"], "recipe": manifest["recipe"],
        "source": manifest.get("source"), "source_sha256": manifest.get("source_sha256"),
        "T": int(inference.params["T"]), "input": {**manifest["input"], **_input_contract(manifest, inference.node("x").attrs)},
        "classes": manifest["classes"], "dtype": dtype, "checkpoint_epoch": int(state.get("epoch", 0)),
        # A checkpoint from the middle of an epoch (SIGTERM, Ctrl-C): its weights are past the last epoch's
        # metrics by this many batches.
        "checkpoint_batch": int(state.get("batch") or 0),
        "metrics": state.get("metrics") or {}, "passes": ["strip-aux", "fold-bn", "bake-decoding", "dce"],
    }
    from safetensors.torch import save_file

    with staged_folder(deploy_dir) as tmp:
        (tmp / "model.py").write_text(model_text)
        save_file(weights, str(tmp / "weights.safetensors"), metadata={"network": manifest["network"]})
        (tmp / "model.ir").write_text(print_graph(inference, "dce"))
        if nir:
            from snnc.nir_export import write_nir

            info["nir"] = write_nir(inference, deploy_modules, weights, tmp / "model.nir", **(nir_options or {}))
        if data is not None:
            from snnc.export_check import check_deployed

            info["check"] = {"data": check_data, **check_deployed(train, state, tmp, data)}
        (tmp / "manifest.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return {"deploy_dir": str(deploy_dir), **info}


def _input_contract(manifest: dict, inp) -> dict:
    """How inputs are fed: the preprocessing of raw samples, and the time encoding (the IR's input node)."""
    if inp["kind"] == "events":
        encoding = "event frames [T, B, C, H, W], one frame per step"
    elif inp.get("encoding") == "poisson":
        encoding = (f"poisson (seed {inp.get('seed', 0)}): at each of the T steps a value x fires with probability "
                    f"clamp(x, 0, 1) (the same draws for the same batch)")
    else:
        encoding = "direct: the same (preprocessed) image is the input at each of the T steps"
    return {"preprocess": (manifest.get("data") or {}).get("preprocess"), "encoding": encoding}
