"""Structure of the generated Triton sources: rendering, headers, caching, one kernel per file."""

import ast
import itertools
import re

import jinja2
import pytest

from snnc.backends.triton import LifSpec, codegen, kernel_sources, render
from snnc.backends.triton.spec import DTYPES
from snnc.catalog import SURROGATE_PARAMS
from snnc.diagnostics import SnncError


def all_specs():
    for (surrogate, reset, decay_input, detach, masked, rescale, bn, (dtype, T)) in itertools.product(
            SURROGATE_PARAMS, ["hard", "soft"], [False, True], [False, True], [False, True], [False, True],
            [False, True], [("float32", 4), ("float16", None), ("bfloat16", 1)]):
        if rescale and not masked:
            continue
        yield LifSpec(reset=reset, decay_input=decay_input, detach_reset=detach, surrogate=surrogate,
                      masked=masked, rescale=rescale, fused_bn=bn, dtype=dtype, T=T)


def jit_functions(source: str) -> list[str]:
    tree = ast.parse(source)
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(ast.unparse(d) == "triton.jit" for d in node.decorator_list)]


def test_every_specialization_renders_one_jit_kernel_per_file_that_compiles():
    names = set()
    for spec in all_specs():
        for kind in ("fwd", "bwd", "mask") if spec.surrogate == "triangle" else ("bwd",):
            source = render(spec, kind)
            compile(source, spec.kernel_name(kind), "exec")
            assert source.count("@triton.jit") == 1
            assert jit_functions(source) == [spec.kernel_name(kind)]
            names.add((kind, spec.kernel_name(kind), source))
    # A kernel name always means the same source.
    by_name = {}
    for kind, name, source in names:
        assert by_name.setdefault(name, source) == source


def test_header_names_the_specialization():
    spec = LifSpec.from_attrs(decay=0.5, vth=1.0, reset="soft", decay_input=False, detach_reset=True,
                              surrogate="dspike(b=2.5, region=1.0)", mask_p=0.5, rescale=True,
                              fused_bn=True, dtype="float16", T=4)
    sources = kernel_sources(spec)
    assert set(sources) == {f"{spec.kernel_name('fwd')}.py", f"{spec.kernel_name('bwd')}.py"}
    bwd = sources[f"{spec.kernel_name('bwd')}.py"]
    header = "\n".join(line for line in bwd.splitlines() if line.startswith("#"))
    for item in ("lif_bwd.py.jinja", "reset=soft", "detach_reset=true", "surrogate=dspike", "mask=on",
                 "rescale=true", "fused_bn=true", "dtype=float16", "T=4", "[b, region]"):
        assert item in header, item


def test_surrogate_parameters_and_decay_are_not_part_of_the_specialization():
    a = LifSpec.from_attrs(decay=0.5, vth=1.0, surrogate="arctan(beta=1.0)", mask_p=0.3)
    b = LifSpec.from_attrs(tau=3.0, vth=0.5, surrogate="arctan(beta=4.0)", mask_p=0.7)
    assert a == b
    assert "sg_ptr" in render(a, "bwd") and "beta = tl.load(sg_ptr + 0)" in render(a, "bwd")


def test_runtime_T_variant_has_no_constexpr_T():
    static = render(LifSpec.from_attrs(T=4), "fwd")
    dynamic = render(LifSpec.from_attrs(T=None), "fwd")
    assert "T: tl.constexpr" in static and "tl.static_range(T)" in static
    assert "T: tl.constexpr" not in dynamic and "range(T)" in dynamic


def test_flags_select_code_without_arithmetic_in_templates():
    hard = render(LifSpec.from_attrs(reset="hard"), "bwd")
    soft = render(LifSpec.from_attrs(reset="soft"), "bwd")
    detached = render(LifSpec.from_attrs(reset="hard", detach_reset=True), "bwd")
    assert "gs - gv * h" in hard and "gs - vth * gv" in soft and "gs - gv * h" not in detached
    assert "tl.philox" not in hard and "tl.philox" in render(LifSpec.from_attrs(mask_p=0.5), "bwd")
    for template in codegen.TEMPLATES.glob("*.jinja"):
        text = template.read_text()
        for expr in text.split("{{")[1:]:
            inner = re.sub(r'"[^"]*"', '""', expr.split("}}")[0])  # Triton code passed as text is fine
            assert not any(op in inner for op in ("+", "*", "/", " - ")), (template.name, inner)


def test_rendering_is_cached_and_strict():
    spec = LifSpec.from_attrs(T=7)
    assert render(spec, "bwd") is render(spec, "bwd")
    with pytest.raises(jinja2.UndefinedError):
        codegen._ENV.get_template("lif_fwd.py.jinja").render({})


@pytest.mark.parametrize("kwargs, message", [
    (dict(dtype="int8"), "unsupported dtype"),
    (dict(T=0), "positive integer"),
    (dict(surrogate="sigmod"), "unknown surrogate"),
    (dict(decay=0.5, tau=2.0), "either 'decay' or 'tau'"),
])
def test_bad_specs_raise_clear_errors(kwargs, message):
    with pytest.raises(SnncError, match=message):
        LifSpec.from_attrs(**kwargs)


def test_dtype_table_covers_the_work_item():
    assert {"float32", "float16", "bfloat16"} <= set(DTYPES)
