"""The top-level declarations of a network: parameters, defaults, blocks, input, stage names."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from snnc.catalog import ENCODER_PARAMS, NEURON_PARAMS, NORM_PARAMS, SurrogateSpec, make_surrogate, resolve_lif
from snnc.diagnostics import Loc, Note, SnncError, did_you_mean
from snnc.frontend import ast
from snnc.frontend.binding import bind, evaluate_args, located, surrogate
from snnc.frontend.values import Env, evaluate
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Node
from snnc.ir.schema import SCHEMAS
from snnc.ir.schema_ops import JOIN_OPS
from snnc.names import identifier_problem
from snnc.params import Symbol, format_value

DEFAULT_SURROGATE = "triangle"
NEURONS = tuple(NEURON_PARAMS)
NORMS = tuple(NORM_PARAMS)
LAYER_OPS = tuple(n for n, s in SCHEMAS.items() if s.dsl and n not in JOIN_OPS)
CHAIN_WORDS = NEURONS + NORMS + LAYER_OPS + JOIN_OPS


def check_identifier(name: str, loc: Loc, what: str) -> None:
    problem = identifier_problem(name)
    if problem:
        raise SnncError(f"invalid {what} name: {problem}", loc, "rename it, e.g. with a trailing '_' or a longer name")


@dataclass
class Defaults:
    neurons: dict[str, dict] = field(default_factory=dict)  # kind -> bound args (un-resolved)
    surrogate: SurrogateSpec = None  # type: ignore[assignment]
    norm: str = "bn"
    norm_args: dict = field(default_factory=dict)


def network_params(net: ast.Network, overrides: dict[str, str]) -> dict:
    """Resolved network parameters: defaults, then --set overrides; T is required."""
    seen: dict[str, Loc] = {}
    for p in net.params:
        check_identifier(p.name, p.loc, "parameter")
        if p.name in seen:
            raise SnncError(f"parameter '{p.name}' is declared twice", p.loc,
                            notes=[Note("first declared here", seen[p.name])])
        seen[p.name] = p.loc
    for name in overrides:
        if name not in seen:
            raise SnncError(f"--set {name}: network '{net.name}' has no parameter '{name}'", None,
                            did_you_mean(name, seen, "parameter") or "it declares no parameters")
    values: dict = {}
    env = Env(values, symbols_ok=False)
    for p in net.params:
        word = isinstance(p.default, ast.NameRef) and p.default.name not in values  # `connect = ADD`
        if p.name in overrides:
            values[p.name] = parse_word(p.name, overrides[p.name]) if word else parse_override(p.name, overrides[p.name])
        elif word:
            values[p.name] = Symbol(p.default.name)
        elif p.default is None:
            raise SnncError(f"parameter '{p.name}' has no default; give it with --set {p.name}=...", p.loc)
        else:
            value = evaluate(p.default, env)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SnncError(f"parameter '{p.name}' must be a number or true/false, not {format_value(value)}",
                                p.default.loc)
            values[p.name] = value
    if "T" not in values:
        raise SnncError(f"network '{net.name}' must declare the number of time steps T",
                        net.name_loc, f"network {net.name}(T = 4, ...)")
    t = values["T"]
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        loc = next(p.loc for p in net.params if p.name == "T")
        raise SnncError(f"T must be a positive integer, not {format_value(t)}", loc)
    return values

def defaults(net: ast.Network, env: Env) -> Defaults:
    """The `neuron`, `surrogate` and `norm` statements."""
    d = Defaults()
    seen: dict[str, Loc] = {}
    for decl in net.defaults:
        call = decl.call
        key = f"{decl.what} {call.name}" if decl.what == "neuron" else decl.what
        if key in seen:
            raise SnncError(f"'{key}' is set twice", decl.loc, notes=[Note("first set here", seen[key])])
        seen[key] = decl.loc
        pos, kw = evaluate_args(call, env)
        if decl.what == "neuron":
            if call.name not in NEURON_PARAMS:
                raise SnncError(f"unknown neuron '{call.name}'", call.name_loc,
                                did_you_mean(call.name, NEURONS, "neuron"))
            values = bind(NEURON_PARAMS[call.name], pos, kw, call, f"neuron '{call.name}'")
            if call.name in ("lif", "plif"):
                located(lambda: resolve_lif(values), call)
            d.neurons[call.name] = values
        elif decl.what == "surrogate":
            d.surrogate = surrogate(call, pos, kw)
        else:
            if call.name not in NORM_PARAMS:
                raise SnncError(f"unknown norm '{call.name}'", call.name_loc, did_you_mean(call.name, NORMS, "norm"))
            d.norm = call.name
            d.norm_args = bind(NORM_PARAMS[call.name], pos, kw, call, f"norm '{call.name}'")
    if d.surrogate is None:
        d.surrogate = make_surrogate(DEFAULT_SURROGATE, [], {})
    return d

def collect_blocks(net: ast.Network) -> dict[str, ast.BlockDef]:
    """Block definitions by name, checked: names, parameters, no recursion."""
    blocks: dict[str, ast.BlockDef] = {}
    for b in net.blocks:
        check_identifier(b.name, b.name_loc, "block")
        if b.name in blocks:
            raise SnncError(f"block '{b.name}' is defined twice", b.name_loc,
                            notes=[Note("first defined here", blocks[b.name].name_loc)])
        if b.name in CHAIN_WORDS:
            raise SnncError(f"block '{b.name}' has the name of a built-in op", b.name_loc,
                            "choose another name")
        seen = set()
        for p in b.params:
            check_identifier(p.name, p.loc, "block parameter")
            if p.name in seen:
                raise SnncError(f"block '{b.name}' declares parameter '{p.name}' twice", p.loc)
            seen.add(p.name)
        if not b.body:
            raise SnncError(f"block '{b.name}' is empty", b.name_loc)
        blocks[b.name] = b
    check_recursion(blocks)
    return blocks


def check_recursion(blocks: dict[str, ast.BlockDef]) -> None:
    calls: dict[str, list[ast.Call]] = {name: [] for name in blocks}
    for name, b in blocks.items():
        for assign in b.body:
            calls[name] += [c for c in _calls_in(assign.rhs) if c.name in blocks]
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]):
        state[name] = 1
        for c in calls[name]:
            if state.get(c.name) == 1:
                cycle = path[path.index(c.name):] + [c.name]
                raise SnncError(f"block '{c.name}' is recursive: " + " -> ".join(cycle), c.name_loc,
                                "blocks cannot call themselves, directly or through other blocks")
            if c.name not in state:
                visit(c.name, path + [c.name])
        state[name] = 2

    for name in blocks:
        if name not in state:
            visit(name, [name])

def network_input(net: ast.Network, env: Env) -> Node:
    """The input node from the single `input` statement."""
    if not net.inputs:
        raise SnncError(f"network '{net.name}' has no input", net.name_loc,
                        "declare one, e.g. input image[3, 32, 32] (or input events[2, 48, 48])")
    if len(net.inputs) > 1:
        raise SnncError("a network has exactly one input", net.inputs[1].loc,
                        notes=[Note("first input here", net.inputs[0].loc)])
    decl = net.inputs[0]
    if decl.kind not in ("image", "events"):
        raise SnncError(f"unknown input kind '{decl.kind}'", decl.kind_loc,
                        did_you_mean(decl.kind, ("image", "events"), "input kind"))
    dims = []
    for d in decl.dims:
        value = evaluate(d, env)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SnncError(f"input dims must be positive integers, not {format_value(value)}", d.loc)
        dims.append(value)
    if len(dims) not in (1, 3):
        raise SnncError(f"input must be [C, H, W] or [F], got {len(dims)} dims", decl.loc)
    attrs = Attrs(kind=decl.kind, dims=tuple(dims), **input_encoding(decl, env))
    return Node("x", "input", (), attrs, ("T", "B", *dims), "main", decl.loc)


def input_encoding(decl: ast.InputDecl, env: Env) -> dict:
    """The input node's encoding attributes from `@encode(...)`: none for direct, encoding and seed for poisson."""
    if not decl.annotations:
        return {}
    if len(decl.annotations) > 1 or decl.annotations[0].name != "encode":
        bad = next((a for a in decl.annotations if a.name != "encode"), decl.annotations[-1])
        raise SnncError(f"an input takes one @encode(...), not @{bad.name}", bad.loc,
                        "e.g. input image[1, 28, 28] @encode(poisson(seed = 0))")
    ann = decl.annotations[0]
    expr = ann.args[0].value if len(ann.args) == 1 and ann.args[0].name is None else None
    if isinstance(expr, ast.NameRef):
        expr = ast.Call(expr.name, (), expr.loc, expr.loc)
    if not isinstance(expr, ast.Call):
        raise SnncError("@encode takes one encoder: direct or poisson(seed = 0)", ann.loc)
    if expr.name not in ENCODER_PARAMS:
        raise SnncError(f"unknown encoder '{expr.name}'", expr.name_loc,
                        did_you_mean(expr.name, ENCODER_PARAMS, "encoder") or "encoders: direct, poisson")
    if decl.kind == "events" and expr.name != "direct":
        raise SnncError(f"event input is already spikes; @encode({expr.name}) applies to images", ann.loc,
                        "use input image[...] or drop the annotation")
    pos, kw = evaluate_args(expr, env)
    values = bind(ENCODER_PARAMS[expr.name], pos, kw, expr, f"encoder '{expr.name}'", env=env)
    return {} if expr.name == "direct" else {"encoding": expr.name, **values}

def check_stage_names(net: ast.Network, blocks: dict[str, ast.BlockDef]) -> None:
    seen: dict[str, Loc] = {}
    for stage in net.stages:
        check_identifier(stage.name, stage.name_loc, "stage")
        if stage.name in seen:
            raise SnncError(f"'{stage.name}' is assigned twice", stage.name_loc,
                            notes=[Note("first assigned here", seen[stage.name])])
        if stage.name in blocks or stage.name in CHAIN_WORDS:
            what = "a block" if stage.name in blocks else "a built-in op"
            raise SnncError(f"stage '{stage.name}' has the name of {what}", stage.name_loc,
                            "choose another name")
        if stage.name in {p.name for p in net.params}:
            raise SnncError(f"stage '{stage.name}' has the name of a network parameter", stage.name_loc)
        seen[stage.name] = stage.name_loc


def _calls_in(rhs):
    if isinstance(rhs, ast.CondChain):
        yield from _calls_in(rhs.then)
        yield from _calls_in(rhs.otherwise)
        return
    for el in rhs.elements:
        if isinstance(el.unit, ast.Group):
            yield from _calls_in(el.unit.chain)
        else:
            yield el.unit


def parse_word(name: str, text: str) -> Symbol:
    """The value of `--set name=WORD` for a parameter whose default is a word (`connect = ADD`)."""
    text = text.strip()
    problem = identifier_problem(text)
    if problem:
        raise SnncError(f"--set {name}={text}: '{name}' takes a word, and {problem}", None,
                        f"for example --set {name}=IAND")
    return Symbol(text)


def parse_override(name: str, text: str):
    """The value of `--set name=text`: an integer, a number, or true/false."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    # Numbers as the language writes them: ASCII digits, no '_' (Python's int() and float() also take
    # '1_6' and other scripts' digits, which the language refuses).
    if not text.isascii() or "_" in text:
        raise SnncError(f"--set {name}={ascii(text)[1:-1]}: the value must be a number or true/false, in ASCII "
                        f"digits", None, f"for example --set {name}=4")
    try:
        value = int(text)
        if abs(value) > 2**62:
            raise SnncError(f"--set {name}={text}: number too large", None)
        return value
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise SnncError(f"--set {name}={text}: the value must be a number or true/false", None,
                        f"for example --set {name}=4") from None
    if not math.isfinite(value):
        raise SnncError(f"--set {name}={text}: the value must be finite", None)
    return value
