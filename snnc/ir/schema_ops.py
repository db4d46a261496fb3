"""Op schemas beyond conv nets: joins, analogue ops, token ops, attention, encoders, PLIF.

Imported by snnc/ir/schema.py, so every op is registered wherever schemas are used.
Layouts are channel-first: an image [C,H,W], a token map [D,N], a vector [F].
"""

from __future__ import annotations

from snnc.ir import shapes
from snnc.ir.schema import POS_INT, OpSchema, extend, register
from snnc.params import OPTIONAL, REQUIRED, Param

POSITIVE = dict(lo=0.0, lo_open=True)
# Ops whose inputs are values named in the chain (`cat(a, b)`), not the previous element.
JOIN_OPS = ("add", "cat", "mul", "iand", "ssa")

# ---- joins: they start a chain and read the values they name
register(OpSchema("cat", "concatenation of two or more values along channels (other dims equal)",
                  min_inputs=2, max_inputs=None, infer=shapes.cat))
register(OpSchema("mul", "element-wise product of two values; a dim of size 1 broadcasts (gates: [C,1,1] x [C,H,W])",
                  min_inputs=2, max_inputs=2, infer=shapes.broadcast))
register(OpSchema("iand", "(1 - a) * b of spikes a, b: SEW-ResNet's IAND connect function, not(a) and b",
                  min_inputs=2, max_inputs=2, infer=shapes.same_all))
# Spikformer (Zhou et al., ICLR 2023, eq. 14-16; code cifar10/model.py `SSA`): per head,
# SSA(Q, K, V) = Q K^T V * scale with spike matrices Q, K, V and no softmax.
register(OpSchema("ssa", "spiking self-attention Q K^T V * scale per head, no softmax (Spikformer); inputs q, k, v",
                  attrs=(Param("heads", "int", REQUIRED, **POS_INT), Param("scale", "float", 0.125, **POSITIVE)),
                  min_inputs=3, max_inputs=3, infer=shapes.ssa))

# ---- single-input ops
register(OpSchema("dropout", "training only: zeroes a value with probability p, one mask over all T steps "
                             "(SpikingJelly layer.Dropout), scaling the rest by 1/(1-p); inference drops it",
                  attrs=(Param("p", "float", 0.5, lo=0.0, hi=1.0, hi_open=True),)))
register(OpSchema("layernorm", "layer norm over the channels of each position (token), with weight and bias",
                  attrs=(Param("eps", "float", 1e-5, **POSITIVE),), infer=shapes.layernorm))
register(OpSchema("gelu", "GELU, an analogue activation (no spikes)"))
register(OpSchema("sigmoid", "logistic sigmoid, an analogue gate (no spikes)"))
register(OpSchema("tokens", "patch embedding's last step: a [C,H,W] map becomes the token map [C,H*W]",
                  infer=shapes.tokens))
register(OpSchema("linear", "a fully connected layer applied to each token: [D,N] -> [out,N]",
                  attrs=(Param("out", "int", REQUIRED, **POS_INT), Param("bias", "bool", True)), infer=shapes.linear))
# Spike-driven Transformer (Yao et al., NeurIPS 2023, eq. 10): SDSA = Q * SN(SUM_c(K * V)),
# written mul(k, v) -> sum_tokens -> lif(vth = 0.5), then mul(q, kv).
register(OpSchema("sum_tokens", "sum over the positions of each channel, keeping them as size 1: [C,N] -> [C,1]",
                  infer=shapes.sum_tokens))
register(OpSchema("mean_tokens", "mean over the tokens of each channel: [D,N] -> [D]", infer=shapes.mean_tokens))
register(OpSchema("slice", "channels start..stop-1 of a value: [C,...] -> [stop-start,...]",
                  attrs=(Param("start", "int", REQUIRED, lo=0), Param("stop", "int", REQUIRED, lo=1)),
                  infer=shapes.slice_channels))
# PLIF's CIFAR-10 net ends in a voting layer (Fang et al., ICCV 2021; code models.py `boost`).
register(OpSchema("vote", "mean of each group of k consecutive features: [F] -> [F/k] (a voting layer)",
                  attrs=(Param("k", "int", REQUIRED, **POS_INT),), infer=shapes.vote))
register(OpSchema("token_map", "a [D,N] token map as the [D,size,size] map it came from (SML modules on tokens)",
                  attrs=(Param("size", "int", REQUIRED, **POS_INT),), infer=shapes.token_map, dsl=False,
                  aux_only=True))

# ---- attributes on existing ops
extend("input",
       Param("encoding", "enum", OPTIONAL, choices=("poisson",), doc="absent: direct (the image at every step)"),
       Param("seed", "int", OPTIONAL, lo=0, doc="poisson: seed of the spike draws"))
extend("lif", Param("learn_decay", "enum", OPTIONAL, choices=("layer", "channel"),
                    doc="PLIF: the decay is a trained parameter, one per layer or per channel; `decay` is its start"))
extend("linear",
       Param("folded_bn", "name", OPTIONAL, doc="the BN folded into this layer's weight and bias"),
       Param("bn_eps", "float", OPTIONAL, lo=0.0, lo_open=True),
       Param("bn_scale", "float", OPTIONAL, lo=0.0, lo_open=True))
