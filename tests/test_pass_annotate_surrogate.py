"""annotate-surrogate: LIF layer indices; CPNG marks beta adaptive and refuses other surrogates."""

import pytest

from passkit import expanded, golden_after
from snnc.diagnostics import SnncError
from snnc.passes.annotate_surrogate import annotate_surrogate, is_annotated

CPNG = {"chi_limit": 0.2, "beta": None, "per_batch": False}


def test_numbers_layers_in_graph_order(update_goldens):
    g = annotate_surrogate(expanded("digits"))
    lifs = [n for n in g.nodes if n.op == "lif"]
    assert [n.attrs["layer"] for n in lifs] == list(range(5)) and is_annotated(g)
    assert not any("adaptive_beta" in n.attrs for n in lifs) and "cpng_chi_limit" not in g.attrs
    golden_after("annotate-surrogate", g, update_goldens, "digits")


def test_cpng_marks_beta_adaptive_and_may_set_it(update_goldens):
    g = annotate_surrogate(expanded("digits"), cpng={**CPNG, "beta": 0.5})
    lifs = [n for n in g.nodes if n.op == "lif"]
    assert all(n.attrs["adaptive_beta"] and n.attrs["surrogate"]["beta"] == 0.5 for n in lifs)
    assert g.attrs["cpng_chi_limit"] == 0.2 and g.attrs["cpng_per_batch"] is False
    golden_after("annotate-surrogate", g, update_goldens, "digits-cpng")


def test_cpng_refuses_dspike_at_the_layer():
    with pytest.raises(SnncError) as info:
        annotate_surrogate(expanded("resnet18"), cpng=CPNG)
    assert "dspike" in info.value.message and info.value.loc.file.endswith("resnet18.snn")


def test_no_change_when_already_annotated():
    g = annotate_surrogate(expanded("digits"))
    again = annotate_surrogate(g)
    assert again == g and all(a is b for a, b in zip(again.nodes, g.nodes))
