"""schedule-time (TIT) and fuse-lif."""

from passkit import expanded, golden_after
from snnc.passes.fuse_lif import fuse_lif
from snnc.passes.schedule_time import schedule_time


def test_schedule_time_records_stages_and_first_T():
    g = schedule_time(expanded("digits"), stages=((2, 3), (6, 1, 0.01)))
    assert g.attrs["time_stages"] == ((2, 3), (6, 1, 0.01)) and g.params["T"] == 2


def test_fuse_marks_bn_lif_pairs(update_goldens):
    g = fuse_lif(expanded("digits"))
    fused = {n.name for n in g.nodes if n.attrs.get("fuse_bn")}
    # the stem and each block's first LIF follow a BN; a block's last LIF follows the add
    assert fused == {"stem.lif", "layer1.0.main.lif", "layer2.0.main.lif"}
    golden_after("fuse-lif", g, update_goldens, "digits")


def test_fuse_skips_bns_with_other_users():
    src = """network n(T = 2) {
  input image[1, 4, 4]
  a = conv(2) -> bn
  b = a -> lif
  c = a -> lif
  d = add(b, c) -> flatten -> fc(3)
}"""
    from snnc.pipeline import compile_source

    g = fuse_lif(compile_source(src, file="n.snn").graph)
    assert not any(n.attrs.get("fuse_bn") for n in g.nodes)


def test_fuse_no_change_is_idempotent():
    g = fuse_lif(expanded("resnet18"))
    assert fuse_lif(g) == g
