"""Lowering of the ops beyond conv nets (snnc/ir/schema_ops.py), PLIF and the Poisson encoder.

Called by lower.py for each such node with `lw`, the lowering's helpers: `module(node, ctor)`
declares a module and returns its attribute, `emit(node, expr, layout)` writes a forward line,
`var`/`layout` map IR names to Python variables and layouts, `as_seq(name)` gives [T, B, ...].
Training models take the layers from snnc.runtime.layers (`L.`); the deployed model.py defines
its own forward-only copies under the same names (deploy_model.py.jinja), so `prefix` is "" there.
Every value written is an int, a float through float_literal, a bool, or a generated identifier.
"""

from __future__ import annotations

from snnc.ir.graph import Node

OPS = ("cat", "mul", "iand", "ssa", "dropout", "layernorm", "gelu", "sigmoid", "tokens", "linear", "sum_tokens",
       "mean_tokens", "slice", "vote", "token_map")
# Classes the deployed model.py must define, by the op (or neuron kind) that needs them.
DEPLOY_CLASSES = {"iand": "IAnd", "ssa": "SpikingSelfAttention", "layernorm": "LayerNorm", "linear": "TokenLinear",
                  "vote": "Vote", "plif": "LearnedSpiking", "poisson": "PoissonEncoder"}


def handles(node: Node) -> bool:
    return node.op in OPS or (node.op == "lif" and "learn_decay" in node.attrs) or (
        node.op == "input" and "encoding" in node.attrs)


def lower_op(lw, node: Node, r, surrogate_literal) -> None:
    """Writes `node`'s module and forward line; `r` spells literals (lower._r)."""
    a = node.attrs
    ins = node.inputs
    src = [lw.var[i] for i in ins]
    keep = lw.layout.get(ins[0]) if ins else None
    feat = lw.by_name[ins[0]].features if ins else ()
    p = lw.prefix
    op = node.op
    if op == "input":
        attr = lw.module(node, f"{p}PoissonEncoder({r(a['seed'])})")
        lw.emit(node, f"self.{attr}(x)", lw.MERGED)
    elif op == "lif":
        lower_plif(lw, node, r, surrogate_literal)
    elif op == "cat":
        lw.emit(node, f"torch.cat([{', '.join(src)}], 1)", keep)
    elif op == "mul":
        lw.emit(node, f"{src[0]} * {src[1]}", keep)
    elif op == "iand":
        attr = lw.module(node, f"{p}IAnd()")
        lw.emit(node, f"self.{attr}({src[0]}, {src[1]})", keep)
    elif op == "ssa":
        attr = lw.module(node, f"{p}SpikingSelfAttention({r(a['heads'])}, {r(a['scale'])})")
        lw.emit(node, f"self.{attr}({', '.join(src)})", keep)
    elif op == "dropout":
        attr = lw.module(node, f"{p}Dropout({r(a['p'])})")
        lw.emit(node, f"self.{attr}({src[0]}, T)", keep)
    elif op == "layernorm":
        attr = lw.module(node, f"{p}LayerNorm({r(feat[0])}, eps={r(a['eps'])})")
        lw.emit(node, f"self.{attr}({src[0]})", keep)
    elif op == "gelu":
        lw.emit(node, f"torch.nn.functional.gelu({src[0]})", keep)
    elif op == "sigmoid":
        lw.emit(node, f"torch.sigmoid({src[0]})", keep)
    elif op == "tokens":
        lw.emit(node, f"{src[0]}.flatten(2)", keep)
    elif op == "linear":
        attr = lw.module(node, f"{p}TokenLinear({r(feat[0])}, {r(a['out'])}, bias={r(a['bias'])})")
        lw.emit(node, f"self.{attr}({src[0]})", keep)
    elif op == "sum_tokens":
        dims = ", ".join(str(2 + i) for i in range(len(feat) - 1))
        lw.emit(node, f"{src[0]}.sum(({dims},), keepdim=True)", keep)
    elif op == "mean_tokens":
        lw.emit(node, f"{src[0]}.mean(2)", keep)
    elif op == "slice":
        lw.emit(node, f"{src[0]}[:, {r(a['start'])}:{r(a['stop'])}]", keep)
    elif op == "vote":
        attr = lw.module(node, f"{p}Vote({r(a['k'])})")
        lw.emit(node, f"self.{attr}({src[0]})", keep)
    elif op == "token_map":
        lw.emit(node, f"{src[0]}.unflatten(2, ({r(a['size'])}, {r(a['size'])}))", keep)
    else:
        raise NotImplementedError(f"no PyTorch lowering for op '{op}' (%{node.name})")


def lower_plif(lw, node: Node, r, surrogate_literal) -> None:
    """A LIF with a learnable decay: snnc.runtime.plif.PLIF in training, LearnedSpiking when deployed."""
    a = node.attrs
    channels = node.features[0] if a["learn_decay"] == "channel" else None
    if lw.deploy:
        attr = lw.module(node, f"LearnedSpiking({r(channels)}, vth={r(a['vth'])}, reset={r(a['reset'])}, "
                               f"decay_input={r(a['decay_input'])})")
    else:
        attr = lw.module(node, (
            f"L.PLIF(channels={r(channels)}, decay={r(a['decay'])}, vth={r(a['vth'])}, reset={r(a['reset'])}, "
            f"decay_input={r(a['decay_input'])}, detach_reset={r(a['detach_reset'])}, "
            f"surrogate={surrogate_literal(a['surrogate'])}, mask_p={r(a.get('mask_p', 0.0))}, "
            f"rescale={r(a.get('mask_rescale', False))}, layer={r(a.get('layer', 0))}, backend=BACKEND)"))
        if a.get("adaptive_beta"):
            lw.ctx.cpng_layers.append(attr)
    lw.ctx.lif_layers.append(attr)
    lw.emit(node, f"self.{attr}({lw.as_seq(node.inputs[0])}).flatten(0, 1)", lw.MERGED)


def deploy_classes(graph) -> list[str]:
    """The optional classes the deployed model.py of `graph` needs (deploy_model.py.jinja's flags)."""
    need = set()
    for node in graph.nodes:
        if node.op in DEPLOY_CLASSES:
            need.add(DEPLOY_CLASSES[node.op])
        if node.op == "lif" and "learn_decay" in node.attrs:
            need.add(DEPLOY_CLASSES["plif"])
        if node.op == "input" and node.attrs.get("encoding") == "poisson":
            need.add(DEPLOY_CLASSES["poisson"])
    return sorted(need)
