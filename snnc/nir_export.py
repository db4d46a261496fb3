"""NIR export of an inference graph (https://neuroir.org), written as HDF5 with `nir.write`.

LIF with time step dt (docs/methods.md §1 with NIR's tau dv/dt = (v_leak - v) + r I, Euler):
    decay = 1 - dt/tau      ->  tau = dt / (1 - decay)
    input scale dt*r/tau    ->  r = tau/dt (= 1/(1 - decay)) for h = decay v + x,
                                r = 1 for decay_input (h = decay v + (1 - decay) x)
    v_leak = 0, v_threshold = vth, v_reset = 0 (hard reset)
With the default dt = 1 this is tau = 1/(1 - decay), r = tau. `if` (decay = 1) becomes
NIR's IF with r = 1/dt. Importers disagree on dt: snnTorch's import_from_nir assumes
dt = 1e-4 and Norse's from_nir 1e-3, so export with the dt the importer uses.
Residual adds become edges (NIR sums a node's inputs). NIR fires on v > vth, snnc on
h >= vth: the two differ only at exact ties. PLIF's trained k = sigmoid(w) gives tau = dt/k per
neuron; a token linear is a 1-wide Conv1d over the tokens, `tokens` a Flatten of H and W, `vote`
an averaging Linear. Products, concatenation, norms and analogue activations have no NIR node.
"""

from __future__ import annotations

import numpy as np
import torch

from snnc.diagnostics import SnncError
from snnc.ir.graph import Graph, Node


class Unsupported(SnncError):
    pass


# Ops of inference graphs that NIR's primitives (affine maps, convolutions, pooling, neurons, sums) cannot express.
NO_NIR = {"cat": "a concatenation", "mul": "a product of two values", "iand": "SEW's IAND connect function",
          "ssa": "spiking self-attention (products of spike matrices)", "layernorm": "a layer norm",
          "gelu": "a GELU", "sigmoid": "a sigmoid", "sum_tokens": "a sum over tokens", "mean_tokens": "a mean over tokens",
          "slice": "a channel slice"}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy()


def _pool_params(node: Node, in_hw: tuple[int, int]) -> tuple[int, int, int]:
    """(kernel, stride, padding) of an avg pool; adaptive pools only when they tile evenly."""
    a = node.attrs
    if node.op == "avgpool":
        return a["k"], a["stride"], a["pad"]
    size = a["size"]
    h, w = in_hw
    if h != w or h % size:
        raise Unsupported(f"%{node.name}: adaptive_avgpool({size}) on {h}x{w} is not an even tiling; NIR has no "
                          f"adaptive pooling", node.loc)
    return h // size, h // size, 0


def nir_nodes(graph: Graph, modules: dict[str, str], weights: dict[str, torch.Tensor], dt: float = 1.0,
              sum_pool: bool = False, lossy: bool = False) -> tuple[dict, list, list[str]]:
    """(NIR nodes, edges, warnings) for an inference graph."""
    import nir

    if dt <= 0:
        raise SnncError(f"--nir-dt must be positive, not {dt}")
    by_name = graph.by_name
    nodes: dict = {}
    warnings: list[str] = []
    sources: dict[str, list[str]] = {}  # IR node -> the NIR nodes whose outputs sum to its value

    def refuse(node: Node, what: str) -> None:
        if not lossy:
            raise Unsupported(f"%{node.name}: {what}, which NIR cannot express", node.loc,
                              "export without --nir, or with --lossy to drop it (with a warning)")
        warnings.append(f"%{node.name}: {what} dropped (--lossy)")

    edges: list[tuple[str, str]] = []
    for node in graph.nodes:
        a = node.attrs
        key = node.name.replace(".", "_")
        feats = node.features
        ins = [s for i in node.inputs for s in sources[i]]
        in_feat = by_name[node.inputs[0]].features if node.inputs else ()
        if node.op == "input":
            if "encoding" in a:
                refuse(node, "a Poisson input encoder (the NIR graph reads the spikes it would draw)")
            nodes["input"] = nir.Input(input_type={"input": np.array(feats)})
            sources[node.name] = ["input"]
            continue
        if node.op in NO_NIR:
            raise Unsupported(f"%{node.name}: {NO_NIR[node.op]}, which NIR cannot express", node.loc,
                              "export without --nir; NIR graphs sum inputs and have no products or norms")
        if node.op == "add":
            if len(set(ins)) != len(ins):
                refuse(node, "an add of a value to itself")
            sources[node.name] = ins
            continue
        if node.op == "time_weights":
            if not np.allclose(a["weights"], 1.0):
                refuse(node, "TWO's per-step output weights")
            sources[node.name] = ins
            continue
        mod = modules.get(node.name)
        if node.op == "conv":
            bias = weights.get(f"{mod}.bias")
            nodes[key] = nir.Conv2d(input_shape=tuple(in_feat[1:]), weight=_np(weights[f"{mod}.weight"]),
                                    stride=a["stride"], padding=a["pad"], dilation=1, groups=a["groups"],
                                    bias=_np(bias) if bias is not None else np.zeros(a["out"], np.float32))
        elif node.op == "fc":
            bias = weights.get(f"{mod}.bias")
            w = _np(weights[f"{mod}.weight"])
            nodes[key] = nir.Affine(weight=w, bias=_np(bias)) if bias is not None else nir.Linear(weight=w)
        elif node.op == "flatten":
            nodes[key] = nir.Flatten(input_type={"input": np.array(in_feat)}, start_dim=0, end_dim=-1)
        elif node.op == "tokens":
            nodes[key] = nir.Flatten(input_type={"input": np.array(in_feat)}, start_dim=1, end_dim=2)
        elif node.op == "linear":  # the same fc on every token: a 1-wide Conv1d over the N tokens
            bias = weights.get(f"{mod}.bias")
            w = _np(weights[f"{mod}.weight"])[:, :, None]
            nodes[key] = nir.Conv1d(input_shape=in_feat[1], weight=w, stride=1, padding=0, dilation=1, groups=1,
                                    bias=_np(bias) if bias is not None else np.zeros(a["out"], np.float32))
        elif node.op == "vote":  # the mean of groups of k features: a fixed averaging matrix
            k = a["k"]
            nodes[key] = nir.Linear(weight=np.kron(np.eye(feats[0], dtype=np.float32), np.full((1, k), 1 / k,
                                                                                              np.float32)))
        elif node.op in ("avgpool", "adaptive_avgpool"):
            k, s, p = _pool_params(node, tuple(in_feat[1:]))
            if sum_pool:
                nodes[key] = nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]),
                                           padding=np.array([p, p]))
                nodes[key + "_scale"] = nir.Scale(scale=np.full(feats, 1.0 / (k * k), np.float32))
                edges.append((key, key + "_scale"))
                edges += [(src, key) for src in ins]
                sources[node.name] = [key + "_scale"]
                continue
            nodes[key] = nir.AvgPool2d(kernel_size=np.array([k, k]), stride=np.array([s, s]), padding=np.array([p, p]))
        elif node.op == "lif":
            if a["reset"] == "soft":
                refuse(node, "a soft reset (NIR resets to v_reset)")
                if lossy:
                    warnings[-1] = f"%{node.name}: soft reset exported as a hard reset (--lossy)"
            vth = np.full(feats, a["vth"], np.float32)
            zeros = np.zeros(feats, np.float32)
            if "learn_decay" in a:  # PLIF: the trained k = sigmoid(w) = 1 - decay, per layer or per channel
                k = torch.sigmoid(weights[f"{mod}.w"].double()).numpy()
                k = np.broadcast_to(k.reshape((-1,) + (1,) * (len(feats) - 1)) if k.ndim else k, feats)
                tau = (dt / k).astype(np.float32)
                r = np.ones(feats, np.float32) if a["decay_input"] else tau / dt
                nodes[key] = nir.LIF(tau=tau, r=r.astype(np.float32), v_leak=zeros, v_threshold=vth, v_reset=zeros)
            elif a["decay"] == 1.0:
                nodes[key] = nir.IF(r=np.full(feats, 1.0 / dt, np.float32), v_threshold=vth, v_reset=zeros)
            else:
                tau = dt / (1.0 - a["decay"])
                r = 1.0 if a["decay_input"] else tau / dt
                nodes[key] = nir.LIF(tau=np.full(feats, tau, np.float32), r=np.full(feats, r, np.float32),
                                     v_leak=zeros, v_threshold=vth, v_reset=zeros)
        elif node.op == "maxpool":
            # Dropping it would change the shape that follows; an average pool keeps every shape
            # (NIR's type inference checks them) and is the nearest op NIR has.
            refuse(node, "max pooling")
            warnings[-1] = (f"%{node.name}: max pooling exported as average pooling (--lossy): the next layer "
                            f"sees the spike rate of each window, not its maximum")
            k, s_, p_ = a["k"], a["stride"], a["pad"]
            nodes[key] = nir.AvgPool2d(kernel_size=np.array([k, k]), stride=np.array([s_, s_]),
                                       padding=np.array([p_, p_]))
        elif node.op == "affine":
            refuse(node, "a per-channel affine map (a BN with nothing to fold into)")
            sources[node.name] = ins
            continue
        else:
            raise Unsupported(f"%{node.name}: no NIR mapping for op '{node.op}'", node.loc)
        edges += [(src, key) for src in ins]
        sources[node.name] = [key]
    nodes["output"] = nir.Output(output_type={"output": np.array(by_name[graph.output].features)})
    edges += [(src, "output") for src in sources[graph.output]]
    return nodes, edges, warnings


def write_nir(graph: Graph, modules: dict[str, str], weights: dict[str, torch.Tensor], path, dt: float = 1.0,
              sum_pool: bool = False, lossy: bool = False) -> dict:
    """Writes `path` (HDF5); returns a summary for the manifest."""
    import nir

    nodes, edges, warnings = nir_nodes(graph, modules, weights, dt, sum_pool, lossy)
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges))
    return {"file": "model.nir", "dt": dt, "sum_pool": sum_pool, "nodes": len(nodes), "edges": len(edges),
            "warnings": warnings}
