"""The Python API of DESIGN.md: snnc.compile, snnc.ops, snnc.losses, snnc.cpng."""

from pathlib import Path

import pytest
import torch

import snnc
from snnc.diagnostics import SnncError

ROOT = Path(__file__).resolve().parent.parent


def test_compile_a_path_with_parameters():
    result = snnc.compile(ROOT / "models" / "toy.snn", recipe="tet", L=7, T=2)
    assert result.graph.params["L"] == 7 and result.graph.params["T"] == 2
    assert len([n for n in result.graph.nodes if n.op == "lif"]) == 10
    assert result.stages[-1][0] == "fuse-lif" and result.recipe.slug() == "tet"


def test_compile_source_text_into_a_folder(tmp_path):
    src = "network n(T = 2) {\n  input image[1, 4, 4]\n  s = conv(2) -> lif -> flatten -> fc(3)\n}\n"
    snnc.compile(src, recipe="sdt", out=tmp_path / "build")
    assert (tmp_path / "build" / "train.py").is_file()
    with pytest.raises(SnncError, match="<source>:3"):
        snnc.compile(src.replace("lif", "lfi"))


def test_lazy_submodules():
    spikes = snnc.ops.lif(torch.full((3, 2), 0.6), decay=0.5, vth=1.0)
    assert spikes[:, 0].tolist() == [0.0, 0.0, 1.0]  # h = 0.6, 0.9, 1.05
    assert snnc.losses.sdt(torch.zeros(2, 1, 3), torch.tensor([0])).item() == pytest.approx(1.0986, abs=1e-4)
    assert 0 < snnc.cpng.chi(1.0, 0.5, 1.0) < 1
    with pytest.raises(AttributeError):
        snnc.nothing
