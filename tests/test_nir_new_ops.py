"""NIR export of the new ops: PLIF's trained decay as tau per neuron, token linears as 1-wide Conv1d,
tokens as a Flatten, vote as an averaging Linear; located refusals for what NIR cannot express."""

import numpy as np
import pytest
import torch

from snnc.backends.torch.lower import lower_model
from snnc.nir_export import Unsupported, nir_nodes
from snnc.passes import run_pipeline
from snnc.pipeline import compile_source, inference_steps

NET = """network n(T = 2, classes = 10) {
  input image[2, 4, 4]
  neuron plif(tau = 2.0, per_channel = true, decay_input = DI)
  stem = conv(4, 3) -> bn -> plif -> tokens -> linear(6) -> bn -> lif
  head = flatten -> fc(20) -> plif(per_channel = false) -> vote(2)
}
"""


def inference(text: str):
    g = run_pipeline(compile_source(text, file="n.snn", recipe="sdt").graph, inference_steps())
    return g, lower_model(g, deploy=True).node_modules


def weights_for(g, modules, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for node in g.nodes:
        m = modules.get(node.name)
        a = node.attrs
        if node.op == "conv":
            out[f"{m}.weight"] = torch.randn(a["out"], 2, 3, 3, generator=gen)
            out[f"{m}.bias"] = torch.randn(a["out"], generator=gen)
        elif node.op in ("linear", "fc"):
            cin = g.node(node.inputs[0]).features[0]
            out[f"{m}.weight"] = torch.randn(a["out"], cin, generator=gen)
            out[f"{m}.bias"] = torch.randn(a["out"], generator=gen)
        elif node.op == "lif" and "learn_decay" in a:
            shape = (node.features[0],) if a["learn_decay"] == "channel" else ()
            out[f"{m}.w"] = torch.randn(shape, generator=gen)
    return out


@pytest.mark.parametrize("decay_input", [True, False])
def test_plif_tokens_linear_and_vote(decay_input):
    g, modules = inference(NET.replace("DI", "true" if decay_input else "false"))
    w = weights_for(g, modules)
    nodes, edges, warnings = nir_nodes(g, modules, w, dt=0.5)
    assert not warnings
    k = torch.sigmoid(w["stem_plif.w"].double()).numpy()
    lif = nodes["stem_plif"]
    assert lif.tau.shape == (4, 4, 4)
    for c in range(4):  # tau = dt / k of the neuron's channel; r = 1 (decay_input) or tau / dt
        assert np.allclose(lif.tau[c], 0.5 / k[c], rtol=1e-6)
        assert np.allclose(lif.r[c], 1.0 if decay_input else 1.0 / k[c], rtol=1e-6)
    head_k = float(torch.sigmoid(w["head_plif.w"].double()))
    assert np.allclose(nodes["head_plif"].tau, 0.5 / head_k, rtol=1e-6)
    assert nodes["stem_tokens"].start_dim == 1 and nodes["stem_tokens"].end_dim == 2
    conv1d = nodes["stem_linear"]
    assert conv1d.weight.shape[:2] == (6, 4) and conv1d.weight.shape[2] == 1
    vote = nodes["head_vote"].weight
    assert vote.shape == (10, 20) and np.allclose(vote @ np.arange(20.0), np.arange(20.0).reshape(10, 2).mean(1))
    assert ("stem_tokens", "stem_linear") in edges and ("head_vote", "output") in edges


@pytest.mark.parametrize("body, what", [
    ("  a = conv(4, 3) -> bn -> lif\n  g = a -> adaptive_avgpool -> conv(4, 1) -> sigmoid\n  s = mul(a, g)\n",
     "a sigmoid"),
    ("  a = conv(4, 3) -> bn -> lif\n  b = a -> conv(4, 3) -> bn -> lif\n  s = cat(a, b)\n", "a concatenation"),
    ("  s = conv(4, 3) -> bn -> lif -> layernorm\n", "a layer norm"),
])
def test_what_nir_cannot_express_is_refused_at_its_line(body, what):
    text = f"network n(T = 2, classes = 10) {{\n  input image[2, 4, 4]\n{body}  head = flatten -> fc(classes)\n}}\n"
    g, modules = inference(text)
    with pytest.raises(Unsupported, match=what) as info:
        nir_nodes(g, modules, weights_for(g, modules))
    assert info.value.loc.file == "n.snn" and info.value.hint


def test_poisson_input_needs_lossy():
    text = NET.replace("DI", "true").replace("input image[2, 4, 4]", "input image[2, 4, 4] @encode(poisson)")
    g, modules = inference(text)
    with pytest.raises(Unsupported, match="Poisson input encoder"):
        nir_nodes(g, modules, weights_for(g, modules))
    _, _, warnings = nir_nodes(g, modules, weights_for(g, modules), lossy=True)
    assert warnings and "Poisson" in warnings[0]
