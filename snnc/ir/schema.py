"""Op schemas: inputs, typed attributes with ranges and defaults, shape inference.

`verify()` checks every node against its schema; the builder binds DSL call
arguments against the same `Param`s, so a range is written down exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from snnc.catalog import NORM_PARAMS
from snnc.ir import shapes
from snnc.params import OPTIONAL, REQUIRED, Param

POS_INT = dict(lo=1)
NONNEG_INT = dict(lo=0)


@dataclass(frozen=True)
class OpSchema:
    name: str
    doc: str
    attrs: tuple[Param, ...] = ()
    min_inputs: int = 1
    max_inputs: int | None = 1
    infer: Callable | None = shapes.same  # None: the node's shape is declared, not inferred
    dsl: bool = True               # callable by name in a .snn chain
    complete: Callable[[dict], dict] | None = None  # fills defaults that depend on other args
    completed: tuple[str, ...] = ()  # the attributes `complete` always fills (so verify requires them)
    check: Callable[[dict], str | None] | None = None  # cross-attribute rule; returns a message
    aux_only: bool = False         # only valid on role=aux nodes
    annotations: tuple[str, ...] = ()  # attributes only passes set (added by `extend`): never source arguments

    @property
    def attr_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.attrs)

    @property
    def source_attrs(self) -> tuple[Param, ...]:
        """The attributes a .snn call may give."""
        return tuple(p for p in self.attrs if p.name not in self.annotations)

    def param(self, name: str) -> Param:
        for p in self.attrs:
            if p.name == name:
                return p
        raise KeyError(name)


def _conv_complete(v: dict) -> dict:
    v.setdefault("pad", v["k"] // 2)
    return v


def _pool_complete(v: dict) -> dict:
    v.setdefault("stride", v["k"])
    return v


def _bn_check(a: dict) -> str | None:
    tdbn = a.get("mode") == "tdbn"
    has = ("a" in a, "vth" in a)
    if tdbn and not all(has):
        return "tdbn needs both 'a' and 'vth'"
    if not tdbn and any(has):
        return "'a' and 'vth' belong to mode=tdbn only"
    return None


SCHEMAS: dict[str, OpSchema] = {}


def register(schema: OpSchema) -> OpSchema:
    SCHEMAS[schema.name] = schema
    return schema


def extend(name: str, *params: Param) -> None:
    """Adds optional attributes to an op (passes annotate nodes this way)."""
    old = SCHEMAS[name]
    known = set(old.attr_names)
    new = tuple(p for p in params if p.name not in known)
    SCHEMAS[name] = OpSchema(**{**old.__dict__, "attrs": old.attrs + new,
                                "annotations": old.annotations + tuple(p.name for p in new)})


register(OpSchema("input", "network input: an image repeated over T, or event frames [T,B,...]",
                  attrs=(Param("kind", "enum", REQUIRED, choices=("image", "events")),
                         Param("dims", "ints", REQUIRED, lo=1)),
                  min_inputs=0, max_inputs=0, infer=shapes.input_shape, dsl=False))
register(OpSchema("param", "the input of a block body", min_inputs=0, max_inputs=0, infer=None, dsl=False))
register(OpSchema("call", "a call of an instantiated block (removed by expand-blocks)",
                  attrs=(Param("block", "name", REQUIRED),), infer=None, dsl=False))
register(OpSchema("conv", "2-D convolution over each time step",
                  attrs=(Param("out", "int", REQUIRED, **POS_INT, doc="output channels"),
                         Param("k", "int", 3, **POS_INT, doc="kernel size"),
                         Param("stride", "int", 1, **POS_INT),
                         Param("pad", "int", OPTIONAL, **NONNEG_INT, doc="padding; default k // 2"),
                         Param("groups", "int", 1, **POS_INT),
                         Param("bias", "bool", False)),
                  infer=shapes.conv, complete=_conv_complete, completed=("pad",)))
register(OpSchema("bn", "batch norm over the merged T*B batch per channel (docs/methods.md §9)",
                  attrs=(Param("mode", "enum", "bn", choices=("bn", "tdbn")),
                         *NORM_PARAMS["bn"],
                         Param("a", "float", OPTIONAL, lo=0.0, lo_open=True, doc="tdbn branch factor"),
                         Param("vth", "float", OPTIONAL, lo=0.0, lo_open=True, doc="tdbn threshold factor")),
                  infer=shapes.norm, check=_bn_check, dsl=False))
register(OpSchema("lif", "leaky integrate-and-fire neuron over all T steps (docs/methods.md §1)",
                  attrs=(Param("decay", "float", REQUIRED, lo=0.0, lo_open=True, hi=1.0),
                         Param("vth", "float", REQUIRED, lo=0.0, lo_open=True),
                         Param("reset", "enum", REQUIRED, choices=("hard", "soft")),
                         Param("decay_input", "bool", REQUIRED),
                         # training-only: inference graphs (phase=inference) drop both
                         Param("detach_reset", "bool", OPTIONAL),
                         Param("surrogate", "surrogate", OPTIONAL)),
                  dsl=False))
for _pool in ("avgpool", "maxpool"):
    register(OpSchema(_pool, f"{_pool[:3]} pooling over each time step",
                      attrs=(Param("k", "int", 2, **POS_INT), Param("stride", "int", OPTIONAL, **POS_INT,
                             doc="default k"), Param("pad", "int", 0, **NONNEG_INT)),
                      infer=lambda s, a, _op=_pool: shapes.pool(s, a, _op), complete=_pool_complete,
                      completed=("stride",)))
register(OpSchema("adaptive_avgpool", "average pooling to a fixed size x size map",
                  attrs=(Param("size", "int", 1, **POS_INT),), infer=shapes.adaptive_pool))
register(OpSchema("flatten", "flattens the feature dims", infer=shapes.flatten))
register(OpSchema("fc", "fully connected layer",
                  attrs=(Param("out", "int", REQUIRED, **POS_INT), Param("bias", "bool", True)),
                  infer=shapes.fc))
register(OpSchema("add", "element-wise sum of two or more values of the same shape",
                  min_inputs=2, max_inputs=None, infer=shapes.add))
register(OpSchema("identity", "passes its input through; marks a block output after expand-blocks",
                  attrs=(Param("block", "name", OPTIONAL, doc="the block this node ends"),)))


def schema(op: str) -> OpSchema:
    return SCHEMAS[op]


# ---- ops and attributes that training passes add (snnc/passes/*)
register(OpSchema("mean_t", "mean over the time dimension: [T,B,...] -> [B,...]", infer=shapes.mean_t))
register(OpSchema("leaky_relu", "leaky ReLU (SML modules are ANN branches)",
                  attrs=(Param("slope", "float", 0.01, lo=0.0),), aux_only=True))
register(OpSchema("two_decode", "temporally weighted output f[t] * O[t] (docs/methods.md §8)",
                  attrs=(Param("m", "float", REQUIRED, lo=0.0, hi=1.0, hi_open=True),
                         Param("warmup", "int", REQUIRED, lo=0)), dsl=False))
register(OpSchema("time_weights", "constant per-step output weights f[t] * O[t] (TWO, baked)",
                  attrs=(Param("weights", "floats", REQUIRED),), dsl=False))
_LOSS = dict(min_inputs=1, max_inputs=None, infer=shapes.none, dsl=False, aux_only=True)
register(OpSchema("sdt_loss", "CE(mean_t O[t], y) (docs/methods.md §4)", **_LOSS))
register(OpSchema("tet_loss", "(1-lam) mean_t CE(O[t], y) + lam mean((O - phi)^2) (docs/methods.md §4)",
                  attrs=(Param("lam", "float", REQUIRED, lo=0.0, hi=1.0), Param("phi", "float", REQUIRED)), **_LOSS))
register(OpSchema("sml_loss",
                  "surrogate-module distillation loss; inputs: O, then each module's logits (docs/methods.md §6)",
                  attrs=(Param("alpha", "float", REQUIRED, lo=0.0), Param("lam", "float", REQUIRED, lo=0.0, hi=1.0),
                         Param("tdis", "float", REQUIRED, lo=0.0, lo_open=True),
                         Param("inner", "enum", REQUIRED, choices=("sdt", "tet")),
                         Param("tet_lam", "float", OPTIONAL, lo=0.0, hi=1.0), Param("phi", "float", OPTIONAL)),
                  **_LOSS))
extend("lif",
       Param("layer", "int", OPTIONAL, lo=0, doc="index among the network's LIF layers (mask key, CPNG logs)"),
       Param("adaptive_beta", "bool", OPTIONAL, doc="CPNG adapts this layer's beta every epoch"),
       Param("mask_p", "float", OPTIONAL, lo=0.0, hi=1.0, hi_open=True, doc="MSG masking probability"),
       Param("mask_rescale", "bool", OPTIONAL, doc="MSG: divide kept gradients by 1 - mask_p"),
       Param("fuse_bn", "bool", OPTIONAL, doc="the preceding bn runs inside this layer's kernels"))


# ---- ops and attributes of inference graphs (snnc/passes/{strip_aux,fold_bn,bake_decoding,dce}.py)
register(OpSchema("affine", "per-channel y = weight * x + bias: a BN that could not fold into a conv or fc",
                  attrs=(Param("from_bn", "name", REQUIRED, doc="the BN whose statistics it holds"),
                         Param("bn_eps", "float", REQUIRED, lo=0.0, lo_open=True),
                         Param("bn_scale", "float", REQUIRED, lo=0.0, lo_open=True)),
                  infer=shapes.norm, dsl=False))
for _op in ("conv", "fc"):
    extend(_op,
           Param("folded_bn", "name", OPTIONAL, doc="the BN folded into this layer's weight and bias"),
           Param("bn_eps", "float", OPTIONAL, lo=0.0, lo_open=True),
           Param("bn_scale", "float", OPTIONAL, lo=0.0, lo_open=True, doc="tdBN's a*vth, 1 for plain BN"))
TRAINING_ONLY_OPS = ("bn", "two_decode", "mean_t", "leaky_relu", "sdt_loss", "tet_loss", "sml_loss", "dropout",
                     "token_map")
TRAINING_ONLY_LIF_ATTRS = ("surrogate", "detach_reset", "layer", "adaptive_beta", "mask_p", "mask_rescale", "fuse_bn")


from snnc.ir import schema_ops  # noqa: E402,F401  (registers the ops beyond conv nets)
