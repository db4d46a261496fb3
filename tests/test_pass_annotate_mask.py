"""annotate-mask (MSG): mask_p and rescale on every main LIF layer."""

from passkit import expanded, golden_after
from snnc.passes.annotate_mask import annotate_mask
from snnc.passes.annotate_surrogate import annotate_surrogate


def test_sets_mask_on_every_lif(update_goldens):
    g = annotate_mask(annotate_surrogate(expanded("cifarnet")), mask_p=0.3, rescale=True)
    lifs = [n for n in g.nodes if n.op == "lif"]
    assert lifs and all(n.attrs["mask_p"] == 0.3 and n.attrs["mask_rescale"] is True for n in lifs)
    assert all("mask_p" not in n.attrs for n in g.nodes if n.op != "lif")
    golden_after("annotate-mask", g, update_goldens, "cifarnet")


def test_no_change_when_applied_twice():
    g = annotate_mask(annotate_surrogate(expanded("digits")), mask_p=0.5)
    assert annotate_mask(g, mask_p=0.5) == g
