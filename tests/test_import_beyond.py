"""`snnc import` of networks with concatenation, gates, slices, sigmoid, GELU, LayerNorm and dropout
(tests/fixtures/import_beyond.py): the .snn text, parameters and MACs, the weights, located refusals."""

import importlib.util
from pathlib import Path

import pytest
import torch

from snnc.backends.torch.render import render_model
from snnc.diagnostics import SnncError
from snnc.importer.fxcheck import check_generated
from snnc.importer import import_network
from snnc.importer.weights import snn_state
from snnc.ir.analysis import costs
from snnc.pipeline import compile_source
from zoo_torch import torch_macs

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "import_beyond.py"
_spec = importlib.util.spec_from_file_location("import_beyond", FIXTURE)
nets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nets)
torch.set_num_threads(1)


@pytest.mark.parametrize("name, ops, text", [
    ("TinyDense", {"cat": 2}, "out  = cat(main, skip)"),
    ("TinySE", {"mul": 2, "sigmoid": 2, "add": 2}, "mul("),
    ("TinyDPN", {"slice": 4, "cat": 1, "add": 1}, "slice(0, 4)"),
    ("SwishHead", {"mul": 1, "sigmoid": 1, "layernorm": 1, "gelu": 1, "dropout": 1}, "-> layernorm -> fc(16) -> gelu -> dropout(0.25)"),
])
def test_imports_with_the_new_ops(name, ops, text):
    net = getattr(nets, name)()
    imp = import_network(net, (3, 8, 8))
    found = [n.op for n in imp.graph.nodes]
    assert {op: found.count(op) for op in ops} == ops and text in imp.text
    compiled = compile_source(imp.text, file="imported.snn", recipe="sdt")
    assert check_generated(compiled.graph, render_model(compiled.graph, "imported", "sdt")) == []
    c = costs(compiled.graph)
    assert c.params == sum(p.numel() for p in net.parameters())
    assert sum(r["macs"] for r in c.per_layer if r["op"] in ("conv", "fc")) == torch_macs(net, (3, 8, 8))
    tensors, report = snn_state(imp)  # every conv, bn, fc and layernorm tensor has its place
    assert report.mapped == len(tensors) and not [k for k in report.ann_unused if not k.endswith("num_batches_tracked")]


def test_dense_blocks_become_a_block_with_the_new_channels_first():
    imp = import_network(nets.TinyDense(), (3, 8, 8))
    assert "block dense_layer(" in imp.text and "skip = identity" in imp.text
    cat = next(n for n in imp.graph.nodes if n.op == "cat")
    assert cat.inputs[0].endswith("main.conv1") and cat.shape == ("T", "B", 12, 8, 8)  # torch.cat([out, x], 1)


def test_a_channel_shuffle_is_refused_at_its_line():
    with pytest.raises(SnncError) as info:
        import_network(nets.Shuffle(), (3, 8, 8))
    assert "is not supported" in info.value.message and info.value.loc.line > 100
    assert Path(info.value.loc.file).name == "import_beyond.py"


def test_a_class_nested_in_itself_gives_one_block_per_level():
    net = nets.Forest()
    imp = import_network(net, (3, 8, 8))
    assert "block tree(" in imp.text and "block tree_2(" in imp.text and "block leaf(" in imp.text
    assert "a1   = tree(4, 4) x 2" in imp.text and "b1   = maxpool(2) -> tree_2 x 2" in imp.text
    assert costs(compile_source(imp.text, file="imported.snn").graph).params == sum(p.numel() for p in net.parameters())


def test_a_size_computed_while_tracing_is_refused_with_a_hint():
    with pytest.raises(SnncError) as info:
        import_network(nets.SizeFromShape(), (3, 8, 8))
    assert "torch.fx cannot trace" in info.value.message and "__init__" in info.value.hint
    assert info.value.loc is not None and Path(info.value.loc.file).name == "import_beyond.py"
