"""Property: the text printer and parser are inverse, parse(print(g)) == g, on random graphs."""

from hypothesis import given, settings
from hypothesis import strategies as st

from snnc.catalog import SURROGATE_PARAMS, make_surrogate
from snnc.diagnostics import Loc
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Graph, Node
from snnc.ir.printer import print_graph
from snnc.ir.schema import schema
from snnc.ir.textparse import parse
from snnc.ir.verify import verify

floats = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
unit = st.floats(min_value=1e-6, max_value=1.0, allow_nan=False)
locs = st.none() | st.builds(
    lambda f, l, c, w, multi: Loc(f, l, c, l + multi, c + w),
    st.sampled_from(["m.snn", "models/a b.snn", "dir/x-1.snn"]), st.integers(1, 500), st.integers(1, 120),
    st.integers(1, 40), st.integers(0, 2))


@st.composite
def surrogates(draw):
    name = draw(st.sampled_from(sorted(SURROGATE_PARAMS)))
    return make_surrogate(name, [], {p.name: draw(floats) for p in SURROGATE_PARAMS[name]})


def _node(name, op, inputs, attrs, shapes, loc, role="main"):
    shape = schema(op).infer(shapes, Attrs(attrs))
    return Node(name, op, tuple(inputs), Attrs(attrs), shape, role, loc)


@st.composite
def graphs(draw):
    c, h = draw(st.integers(1, 8)), draw(st.integers(4, 16))
    nodes = [Node("x", "input", (), Attrs(kind=draw(st.sampled_from(["image", "events"])), dims=(c, h, h)),
                  ("T", "B", c, h, h), "main", draw(locs))]
    cur = nodes[0]
    for i in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["conv", "bn", "lif", "avgpool", "add", "identity"]))
        loc = draw(locs)
        name = f"s{i}.{op}"
        if op == "conv":
            k = draw(st.integers(1, 3))
            attrs = dict(out=draw(st.integers(1, 8)), k=k, stride=draw(st.integers(1, 2)), pad=k // 2,
                         groups=1, bias=draw(st.booleans()))
        elif op == "bn":
            attrs = dict(mode="bn", eps=draw(floats), momentum=draw(unit))
            if draw(st.booleans()):
                attrs.update(mode="tdbn", a=draw(floats), vth=draw(floats))
        elif op == "lif":
            attrs = dict(decay=draw(unit), vth=draw(floats), reset=draw(st.sampled_from(["hard", "soft"])),
                         decay_input=False, detach_reset=draw(st.booleans()), surrogate=draw(surrogates()))
        elif op == "avgpool":
            if cur.shape[-1] < 2:
                continue
            attrs = dict(k=2, stride=2, pad=0)
        else:
            attrs = {}
        inputs = [cur.name, cur.name] if op == "add" else [cur.name]
        cur = _node(name, op, inputs, attrs, [cur.shape] * len(inputs), loc)
        nodes.append(cur)
    flat = _node("head.flatten", "flatten", [cur.name], {}, [cur.shape], None)
    fc = _node("head.fc", "fc", [flat.name], dict(out=draw(st.integers(1, 20)), bias=draw(st.booleans())),
               [flat.shape], draw(locs))
    nodes += [flat, fc]
    aux = []
    if draw(st.booleans()):
        aux.append(_node("sm1.fc", "fc", [flat.name], dict(out=3, bias=True), [flat.shape], None, role="aux"))
    nodes += aux
    params = Attrs({"T": draw(st.integers(1, 16)), "classes": fc.shape[-1], "lr": draw(floats),
                    "flag": draw(st.booleans())})
    gattrs = Attrs(draw(st.dictionaries(st.sampled_from(["stages", "lam", "name"]),
                                        st.lists(st.lists(st.integers(-5, 99), max_size=3), max_size=3)
                                        | floats | st.sampled_from(["tet", "sml.x"]), max_size=3)))
    return Graph(draw(st.sampled_from(["net", "resnet18", "a_b"])), params, tuple(nodes), fc.name,
                 tuple(a.name for a in aux), (), gattrs)


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_parse_print_roundtrip(graph):
    verify(graph)
    text = print_graph(graph, "test")
    back = parse(text)
    assert back == graph
    assert print_graph(back, "test") == text


def test_int_and_float_attrs_stay_distinct():
    g = Graph("n", Attrs(T=4, a=1, b=1.0), (Node("x", "input", (), Attrs(kind="image", dims=(1,)), ("T", "B", 1)),),
              "x")
    back = parse(print_graph(g))
    assert type(back.params["a"]) is int and type(back.params["b"]) is float
