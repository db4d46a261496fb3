"""insert-surrogate-modules (SML): placement rule, module architecture, located errors."""

import pytest

from passkit import expanded, golden_after
from snnc.diagnostics import SnncError
from snnc.passes.insert_surrogate_modules import auto_positions, choose_blocks, insert_surrogate_modules


@pytest.mark.parametrize("n,expected", [(1, [4]), (2, [3, 6]), (3, [2, 4, 6])])
def test_placement_matches_the_paper_for_resnet18(n, expected):
    assert auto_positions(n, 8) == expected
    chosen = choose_blocks(expanded("resnet18"), n=n)
    names = ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    assert [b.name for b in chosen] == [names[i - 1] for i in expected]


def test_explicit_positions_by_index_and_name_are_equal():
    g = expanded("resnet18")
    by_index = insert_surrogate_modules(g, at=(3, 6))
    by_name = insert_surrogate_modules(g, at=("layer2.0", "layer3.1"))
    assert by_index == by_name and by_index.attrs["sml_blocks"] == ("layer2.0", "layer3.1")


def test_module_architecture(update_goldens):
    g = insert_surrogate_modules(expanded("resnet18"), n=2, k=256)
    assert g.aux_outputs == ("sm1.fc2", "sm2.fc2")
    sm = {n.name: n for n in g.nodes if n.name.startswith("sm2.")}
    assert sm["sm2.rate"].op == "mean_t" and sm["sm2.rate"].inputs == ("layer3.1",)
    assert sm["sm2.rate"].shape == ("B", 256, 8, 8)
    assert "sm2.conv1" not in sm  # C = k: no 1x1 reduction
    assert [sm[f"sm2.conv{k}"].attrs["k"] for k in (7, 5, 3)] == [7, 5, 3]
    assert [sm[f"sm2.conv{k}"].attrs["stride"] for k in (7, 5, 3)] == [2, 2, 1]
    assert sm["sm2.pool"].shape == ("B", 256, 2, 2) and sm["sm2.fc1"].shape == ("B", 512)
    assert sm["sm2.fc2"].shape == ("B", 10) and all(n.role == "aux" for n in sm.values())
    assert all(n.role == "main" for n in g.nodes if not n.name.startswith("sm"))
    golden_after("insert-surrogate-modules", g, update_goldens, "resnet18")


def test_wide_blocks_get_a_1x1_reduction():
    g = insert_surrogate_modules(expanded("resnet18"), at=(7,), k=128)
    assert g.node("sm1.conv1").attrs["k"] == 1 and g.node("sm1.conv1").shape == ("B", 128, 4, 4)


def test_main_graph_is_unchanged():
    g = expanded("resnet18")
    out = insert_surrogate_modules(g, n=3)
    assert [n for n in out.nodes if n.role == "main"] == list(g.nodes) and out.output == g.output


@pytest.mark.parametrize("kwargs,message", [
    (dict(n=9), "more modules than the network has blocks"),
    (dict(at=(9,)), "at=9 is not a block"),
    (dict(at=("stem",)), "'stem' is not a block"),
    (dict(at=(3, "layer2.0")), "chosen twice"),
])
def test_errors(kwargs, message):
    with pytest.raises(SnncError, match=message):
        insert_surrogate_modules(expanded("resnet18"), **kwargs)


def test_no_blocks():
    with pytest.raises(SnncError, match="needs residual blocks"):
        insert_surrogate_modules(expanded("vggsnn"))
