"""AST -> IR: resolves parameters and defaults, instantiates blocks, infers shapes.

Every semantic rule of the language is checked here and reported as a located
SnncError. The result is the un-expanded graph: block calls are `call` nodes
and each distinct instantiation is a `Block` (see snnc/passes/expand_blocks.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from snnc.catalog import NEURON_PARAMS, NORM_PARAMS, SURROGATE_PARAMS, SurrogateSpec, make_surrogate, resolve_lif
from snnc.diagnostics import Loc, Note, SnncError, did_you_mean
from snnc.frontend import ast
from snnc.frontend.values import CallValue, DottedValue, Env, evaluate
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Block, Graph, Node
from snnc.ir.schema import SCHEMAS, schema
from snnc.ir.shapes import ShapeError, fmt
from snnc.names import identifier_problem
from snnc.params import ParamError, Symbol, bind_args, format_value

DEFAULT_SURROGATE = "triangle"
TDBN_BRANCH_FACTOR = 1 / math.sqrt(2)  # METHODS §9: BNs that feed a residual add
NEURONS = tuple(NEURON_PARAMS)
NORMS = tuple(NORM_PARAMS)
LAYER_OPS = tuple(n for n, s in SCHEMAS.items() if s.dsl and n not in ("add",))
CHAIN_WORDS = NEURONS + NORMS + LAYER_OPS + ("add",)
ANNOTATIONS = ("surrogate",)
# Limits that keep a hostile source from running for minutes or past the recursion limit
# (the largest zoo network, sew_resnet34, has 159 nodes after expansion).
MAX_LAYERS = 20_000      # nodes after expanding every block call and repeat
MAX_BLOCK_NESTING = 32   # blocks calling blocks


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
    tdbn_vth: float = 1.0


@dataclass
class Scope:
    """Where a chain is being built: the node list, names in scope, the name prefix."""

    nodes: list[Node]
    values: dict[str, tuple[str, Loc]]  # assigned value name -> (node name, loc)
    env: Env
    prefix: str
    surrogate: SurrogateSpec

    def qualify(self, local: str) -> str:
        return f"{self.prefix}.{local}" if self.prefix else local

    def shape_of(self, name: str):
        for n in reversed(self.nodes):
            if n.name == name:
                return n.shape
        raise KeyError(name)


class Builder:
    def __init__(self, net: ast.Network, overrides: dict[str, str] | None = None):
        self.net = net
        self.overrides = dict(overrides or {})
        self.blocks_ast = {}
        self.instances: dict[tuple, Block] = {}
        self.instance_counts: dict[str, int] = {}
        self.call_stack: list[tuple[str, Loc]] = []
        self.layers = 0                          # nodes so far, block calls counted expanded
        self.expanded: dict[str, int] = {}       # block instance -> its node count when inlined

    # ------------------------------------------------------------------ entry
    def build(self) -> Graph:
        net = self.net
        check_identifier(net.name, net.name_loc, "network")
        for recipe in net.recipes:
            check_identifier(recipe.name, recipe.name_loc, "recipe")
        params = self._network_params()
        env = Env(dict(params))
        self.defaults = self._defaults(env)
        self._collect_blocks()
        input_node = self._input(env)
        top = Scope([input_node], {}, env, "", self.defaults.surrogate)
        self._stage_names()
        current = input_node.name
        if not net.stages:
            raise SnncError(f"network '{net.name}' has no layers", net.name_loc,
                            "add stages such as: stem = conv(64, 3) -> bn -> lif")
        for stage in net.stages:
            current = self._assign(stage, top, default_input=current)
        out = top.nodes[-1] if top.nodes[-1].name == current else next(n for n in top.nodes if n.name == current)
        last = net.stages[-1]
        if len(out.shape) != 3 or out.shape[:2] != ("T", "B"):
            raise SnncError(
                f"the network output must be [T,B,classes], but stage '{last.name}' gives {fmt(out.shape)}",
                last.loc, "end the last stage with flatten -> fc(classes)",
            )
        nodes = _assign_tdbn_factor(top.nodes)
        blocks = tuple(sorted(self.instances.values(), key=lambda b: _block_order(b.name)))
        return Graph(net.name, Attrs(params), tuple(nodes), current, (), blocks)

    # ------------------------------------------------------------- parameters
    def _network_params(self) -> dict:
        seen: dict[str, Loc] = {}
        for p in self.net.params:
            check_identifier(p.name, p.loc, "parameter")
            if p.name in seen:
                raise SnncError(f"parameter '{p.name}' is declared twice", p.loc,
                                notes=[Note("first declared here", seen[p.name])])
            seen[p.name] = p.loc
        for name in self.overrides:
            if name not in seen:
                raise SnncError(f"--set {name}: network '{self.net.name}' has no parameter '{name}'", None,
                                did_you_mean(name, seen, "parameter") or "it declares no parameters")
        values: dict = {}
        env = Env(values, symbols_ok=False)
        for p in self.net.params:
            if p.name in self.overrides:
                values[p.name] = parse_override(p.name, self.overrides[p.name])
            elif p.default is None:
                raise SnncError(f"parameter '{p.name}' has no default; give it with --set {p.name}=...", p.loc)
            else:
                value = evaluate(p.default, env)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise SnncError(f"parameter '{p.name}' must be a number or true/false, not {format_value(value)}",
                                    p.default.loc)
                values[p.name] = value
        if "T" not in values:
            raise SnncError(f"network '{self.net.name}' must declare the number of time steps T",
                            self.net.name_loc, f"network {self.net.name}(T = 4, ...)")
        t = values["T"]
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            loc = next(p.loc for p in self.net.params if p.name == "T")
            raise SnncError(f"T must be a positive integer, not {format_value(t)}", loc)
        return values

    # --------------------------------------------------------------- defaults
    def _defaults(self, env: Env) -> Defaults:
        d = Defaults()
        seen: dict[str, Loc] = {}
        for decl in self.net.defaults:
            call = decl.call
            key = f"{decl.what} {call.name}" if decl.what == "neuron" else decl.what
            if key in seen:
                raise SnncError(f"'{key}' is set twice", decl.loc, notes=[Note("first set here", seen[key])])
            seen[key] = decl.loc
            pos, kw = self._args(call, env)
            if decl.what == "neuron":
                if call.name not in NEURON_PARAMS:
                    raise SnncError(f"unknown neuron '{call.name}'", call.name_loc,
                                    did_you_mean(call.name, NEURONS, "neuron"))
                values = self._bind(NEURON_PARAMS[call.name], pos, kw, call, f"neuron '{call.name}'")
                if call.name == "lif":
                    self._located(lambda: resolve_lif(values), call)
                d.neurons[call.name] = values
            elif decl.what == "surrogate":
                d.surrogate = self._surrogate(call, pos, kw)
            else:
                if call.name not in NORM_PARAMS:
                    raise SnncError(f"unknown norm '{call.name}'", call.name_loc, did_you_mean(call.name, NORMS, "norm"))
                d.norm = call.name
                d.norm_args = self._bind(NORM_PARAMS[call.name], pos, kw, call, f"norm '{call.name}'")
        if d.surrogate is None:
            d.surrogate = make_surrogate(DEFAULT_SURROGATE, [], {})
        # tdBN scales by the network's threshold (METHODS §9): that of its first declared neuron.
        for values in d.neurons.values():
            d.tdbn_vth = values.get("vth", 1.0)
            break
        return d

    def _surrogate(self, call: ast.Call, pos, kw) -> SurrogateSpec:
        if call.name not in SURROGATE_PARAMS:
            raise SnncError(f"unknown surrogate '{call.name}'", call.name_loc,
                            did_you_mean(call.name, SURROGATE_PARAMS, "surrogate"))
        try:
            return make_surrogate(call.name, pos, kw)
        except ParamError as exc:
            raise SnncError(exc.message, self._arg_loc(call, exc.arg), exc.hint) from None

    # ----------------------------------------------------------------- blocks
    def _collect_blocks(self) -> None:
        for b in self.net.blocks:
            check_identifier(b.name, b.name_loc, "block")
            if b.name in self.blocks_ast:
                raise SnncError(f"block '{b.name}' is defined twice", b.name_loc,
                                notes=[Note("first defined here", self.blocks_ast[b.name].name_loc)])
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
            self.blocks_ast[b.name] = b
        self._check_recursion()

    def _check_recursion(self) -> None:
        calls: dict[str, list[ast.Call]] = {name: [] for name in self.blocks_ast}
        for name, b in self.blocks_ast.items():
            for assign in b.body:
                calls[name] += [c for c in _calls_in(assign.rhs) if c.name in self.blocks_ast]
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

        for name in self.blocks_ast:
            if name not in state:
                visit(name, [name])

    # ------------------------------------------------------------------ input
    def _input(self, env: Env) -> Node:
        if not self.net.inputs:
            raise SnncError(f"network '{self.net.name}' has no input", self.net.name_loc,
                            "declare one, e.g. input image[3, 32, 32] (or input events[2, 48, 48])")
        if len(self.net.inputs) > 1:
            raise SnncError("a network has exactly one input", self.net.inputs[1].loc,
                            notes=[Note("first input here", self.net.inputs[0].loc)])
        decl = self.net.inputs[0]
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
        attrs = Attrs(kind=decl.kind, dims=tuple(dims))
        return Node("x", "input", (), attrs, ("T", "B", *dims), "main", decl.loc)

    # ----------------------------------------------------------------- stages
    def _stage_names(self) -> None:
        seen: dict[str, Loc] = {}
        for stage in self.net.stages:
            check_identifier(stage.name, stage.name_loc, "stage")
            if stage.name in seen:
                raise SnncError(f"'{stage.name}' is assigned twice", stage.name_loc,
                                notes=[Note("first assigned here", seen[stage.name])])
            if stage.name in self.blocks_ast or stage.name in CHAIN_WORDS:
                what = "a block" if stage.name in self.blocks_ast else "a built-in op"
                raise SnncError(f"stage '{stage.name}' has the name of {what}", stage.name_loc,
                                "choose another name")
            if stage.name in {p.name for p in self.net.params}:
                raise SnncError(f"stage '{stage.name}' has the name of a network parameter", stage.name_loc)
            seen[stage.name] = stage.name_loc

    def _assign(self, assign: ast.Assign, scope: Scope, default_input: str) -> str:
        chain = self._pick(assign.rhs, scope.env)
        sub = Scope(scope.nodes, scope.values, scope.env, scope.qualify(assign.name), scope.surrogate)
        counts = _op_counts(chain, self, scope)
        out = self._chain(chain, sub, default_input, counts, {})
        scope.values[assign.name] = (out, assign.name_loc)
        return out

    def _pick(self, rhs, env: Env) -> ast.Chain:
        while isinstance(rhs, ast.CondChain):
            rhs = rhs.then if _truthy(evaluate(rhs.cond, env), rhs.cond) else rhs.otherwise
        return rhs

    # ----------------------------------------------------------------- chains
    def _chain(self, chain: ast.Chain, scope: Scope, current: str, counts: dict, used: dict) -> str:
        for i, element in enumerate(chain.elements):
            current = self._element(element, scope, current, counts, used, first=(i == 0))
        return current

    def _element(self, el: ast.Element, scope: Scope, current: str, counts, used, first: bool) -> str:
        surrogate = scope.surrogate
        for ann in el.annotations:
            surrogate = self._annotation(ann, scope.env)
        inner = Scope(scope.nodes, scope.values, scope.env, scope.prefix, surrogate)
        unit = el.unit
        if el.repeat is None:
            if isinstance(unit, ast.Group):
                return self._chain(unit.chain, inner, current, counts, used)
            return self._call(unit, inner, current, counts, used, first)
        times = evaluate(el.repeat, scope.env)
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise SnncError(f"a repeat count must be a positive integer, not {format_value(times)}", el.repeat.loc)
        if times > 10_000:
            raise SnncError(f"repeat count {times} is too large (at most 10000)", el.repeat.loc)
        is_block = isinstance(unit, ast.Call) and unit.name in self.blocks_ast
        for _ in range(times):
            if is_block:
                current = self._call(unit, inner, current, counts, used, first=False)
            else:
                index = _next_unit(used)
                rep = Scope(inner.nodes, inner.values, inner.env, inner.qualify(str(index)), surrogate)
                chain = unit.chain if isinstance(unit, ast.Group) else ast.Chain((ast.Element(unit, None, (), el.loc),), el.loc)
                current = self._chain(chain, rep, current, _op_counts(chain, self, rep), {})
        return current

    def _annotation(self, ann: ast.Annotation, env: Env) -> SurrogateSpec:
        if ann.name not in ANNOTATIONS:
            raise SnncError(f"unknown annotation '@{ann.name}'", ann.name_loc,
                            did_you_mean(ann.name, ANNOTATIONS, "annotation"))
        if len(ann.args) != 1 or ann.args[0].name is not None:
            raise SnncError("@surrogate takes one surrogate, e.g. @surrogate(arctan(beta = 2))", ann.loc)
        expr = ann.args[0].value
        if isinstance(expr, ast.NameRef):
            expr = ast.Call(expr.name, (), expr.loc, expr.loc)
        if not isinstance(expr, ast.Call):
            raise SnncError("@surrogate takes a surrogate such as arctan(beta = 2)", expr.loc)
        pos, kw = self._args(expr, env)
        return self._surrogate(expr, pos, kw)

    def _call(self, call: ast.Call, scope: Scope, current: str, counts, used, first: bool) -> str:
        name = call.name
        if name in scope.values:
            if not first or call.has_parens:
                raise SnncError(f"'{name}' is a value, so it can only start a chain (without parentheses)",
                                call.name_loc, f"write: ... = {name} -> ...")
            return scope.values[name][0]
        if name == "add":
            if not first:
                raise SnncError("add(...) must start a chain: its inputs are the values it names", call.loc,
                                "write: out = add(main, skip) -> lif")
            return self._add(call, scope, counts, used)
        if name in self.blocks_ast:
            return self._block_call(call, scope, current, used)
        if name in NEURONS:
            node = self._neuron(call, scope, current)
        elif name in NORMS:
            node = self._norm(call, scope, current)
        elif name in LAYER_OPS:
            node = self._layer(call, scope, current)
        else:
            candidates = list(CHAIN_WORDS) + list(self.blocks_ast) + list(scope.values)
            raise SnncError(f"unknown op or block '{name}'", call.name_loc, did_you_mean(name, candidates, "op"))
        local = _op_name(name, counts, used)
        node = node.replace(name=scope.qualify(local))
        self._infer_and_add(node, scope, call)
        return node.name

    # ------------------------------------------------------------------- ops
    def _layer(self, call: ast.Call, scope: Scope, current: str) -> Node:
        sch = schema(call.name)
        pos, kw = self._args(call, scope.env)
        values = self._bind(sch.attrs, pos, kw, call, call.name, env=scope.env)
        if sch.complete:
            values = sch.complete(values)
        return Node("", call.name, (current,), Attrs(values), (), "main", call.loc)

    def _neuron(self, call: ast.Call, scope: Scope, current: str) -> Node:
        pos, kw = self._args(call, scope.env)
        given = self._bind(NEURON_PARAMS[call.name], pos, kw, call, f"neuron '{call.name}'", defaults=False,
                           env=scope.env)
        values = dict(self.defaults.neurons.get(call.name, {}))
        if "decay" in given or "tau" in given:  # a layer's own decay/tau replaces the default's
            values.pop("decay", None)
            values.pop("tau", None)
        values.update(given)
        full = self._bind(NEURON_PARAMS[call.name], [], values, call, f"neuron '{call.name}'")
        if call.name == "lif":
            full = self._located(lambda: resolve_lif(full), call)
        else:
            full.update(decay=1.0, decay_input=False)
        full["surrogate"] = scope.surrogate
        return Node("", "lif", (current,), Attrs(full), (), "main", call.loc)

    def _norm(self, call: ast.Call, scope: Scope, current: str) -> Node:
        mode = self.defaults.norm if call.name == "bn" else call.name
        pos, kw = self._args(call, scope.env)
        given = self._bind(NORM_PARAMS[mode], pos, kw, call, call.name, defaults=False, env=scope.env)
        values = {**self.defaults.norm_args, **given}
        values = self._bind(NORM_PARAMS[mode], [], values, call, call.name)
        values["mode"] = mode
        if mode == "tdbn":
            values.update(a=1.0, vth=self.defaults.tdbn_vth)
        return Node("", "bn", (current,), Attrs(values), (), "main", call.loc)

    def _add(self, call: ast.Call, scope: Scope, counts, used) -> str:
        if call.keyword or len(call.args) < 2:
            raise SnncError("add needs two or more values, e.g. add(main, skip)", call.loc)
        inputs, sides = [], []
        for arg in call.args:
            expr = arg.value
            if not isinstance(expr, ast.NameRef):
                raise SnncError("add takes names of values assigned earlier", expr.loc)
            if expr.name not in scope.values:
                raise SnncError(f"unknown value '{expr.name}'", expr.loc,
                                did_you_mean(expr.name, scope.values, "value") or "add reads values assigned above it")
            inputs.append(scope.values[expr.name][0])
            sides.append(expr)
        shapes = [scope.shape_of(i) for i in inputs]
        for side, shape in zip(sides[1:], shapes[1:]):
            if shape != shapes[0]:
                first = sides[0]
                hint = None
                if shape[-3:-2] != shapes[0][-3:-2] or shape[-2:] != shapes[0][-2:]:
                    hint = "make both paths end at the same channels and size, e.g. a 1x1 conv with the block's stride"
                raise SnncError(
                    f"add: '{first.name}' is {fmt(shapes[0])} but '{side.name}' is {fmt(shape)}", call.loc, hint,
                    notes=[Note(f"'{first.name}' assigned here", scope.values[first.name][1]),
                           Note(f"'{side.name}' assigned here", scope.values[side.name][1])],
                )
        local = _op_name("add", counts, used)
        node = Node(scope.qualify(local), "add", tuple(inputs), Attrs(), shapes[0], "main", call.loc)
        self._grow(1, call.loc)
        scope.nodes.append(node)
        return node.name

    def _grow(self, layers: int, loc: Loc) -> None:
        self.layers += layers
        if self.layers > MAX_LAYERS:
            raise SnncError(f"the network is too large: more than {MAX_LAYERS} layers once blocks and repeats "
                            f"are expanded", loc, "use fewer or shorter repeats")

    def _infer_and_add(self, node: Node, scope: Scope, call: ast.Call) -> None:
        shapes = [scope.shape_of(i) for i in node.inputs]
        try:
            shape = schema(node.op).infer(shapes, node.attrs)
        except ShapeError as exc:
            raise SnncError(f"{exc.message}", call.loc, exc.hint) from None
        self._grow(1, call.loc)
        scope.nodes.append(node.replace(shape=shape))

    # ------------------------------------------------------------ block calls
    def _block_call(self, call: ast.Call, scope: Scope, current: str, used) -> str:
        bdef = self.blocks_ast[call.name]
        pos, kw = self._args(call, scope.env)
        args = self._bind_block(bdef, pos, kw, call, scope.env)
        in_shape = scope.shape_of(current)
        key = (bdef.name, tuple(sorted(args.items())), in_shape, scope.surrogate)
        block = self.instances.get(key)
        if block is None:
            if len(self.call_stack) >= MAX_BLOCK_NESTING:
                raise SnncError(f"blocks nested too deeply (more than {MAX_BLOCK_NESTING} levels)", call.loc)
            self.call_stack.append((bdef.name, call.loc))
            try:
                block = self._instantiate(bdef, args, in_shape, scope)
            except SnncError as exc:
                exc.notes.append(Note(f"in block '{bdef.name}' called here", call.loc))
                raise
            finally:
                self.call_stack.pop()
            self.instances[key] = block
            self.expanded[block.name] = sum(1 + self.expanded[n.attrs["block"]] if n.op == "call" else 1
                                            for n in block.nodes[1:])
        self._grow(1 + self.expanded[block.name], call.loc)
        index = _next_unit(used)
        name = scope.qualify(str(index))
        result = next(n for n in block.nodes if n.name == block.result)
        scope.nodes.append(Node(name, "call", (current,), Attrs(block=block.name), result.shape, "main", call.loc))
        return name

    def _bind_block(self, bdef: ast.BlockDef, pos, kw, call: ast.Call, env: Env) -> dict:
        names = [p.name for p in bdef.params]
        if len(pos) > len(names):
            raise SnncError(f"block '{bdef.name}' takes {len(names)} argument(s), got {len(pos)}", call.loc,
                            f"block {bdef.name}({', '.join(names)})")
        values = dict(zip(names, pos))
        for key, value in kw.items():
            if key not in names:
                raise SnncError(f"block '{bdef.name}' has no parameter '{key}'", self._arg_loc(call, key),
                                did_you_mean(key, names, "parameter"))
            if key in values:
                raise SnncError(f"parameter '{key}' of block '{bdef.name}' is given twice", self._arg_loc(call, key))
            values[key] = value
        local = Env(dict(env.values), symbols_ok=False)
        for p in bdef.params:
            if p.name not in values:
                if p.default is None:
                    raise SnncError(f"block '{bdef.name}' needs a value for '{p.name}'", call.loc)
                values[p.name] = evaluate(p.default, local)
            value = values[p.name]
            if isinstance(value, Symbol) or not isinstance(value, (int, float, bool)):
                raise SnncError(f"block argument '{p.name}' must be a number or true/false, not {format_value(value)}",
                                call.loc)
            local.values[p.name] = value
        return {p.name: values[p.name] for p in bdef.params}

    def _instantiate(self, bdef: ast.BlockDef, args: dict, in_shape, scope: Scope) -> Block:
        count = self.instance_counts.get(bdef.name, 0)
        self.instance_counts[bdef.name] = count + 1
        feats = [d for d in in_shape if isinstance(d, int)]
        env = scope.env.child(args, in_channels=feats[0] if feats else None)
        param = Node("in", "param", (), Attrs(), in_shape, "main", bdef.loc)
        body = Scope([param], {}, env, "", scope.surrogate)
        seen: dict[str, Loc] = {}
        result = param.name
        for assign in bdef.body:
            check_identifier(assign.name, assign.name_loc, "value")
            if assign.name in seen:
                raise SnncError(f"'{assign.name}' is assigned twice in block '{bdef.name}'", assign.name_loc,
                                notes=[Note("first assigned here", seen[assign.name])])
            if assign.name in CHAIN_WORDS or assign.name in self.blocks_ast or assign.name in args:
                raise SnncError(f"'{assign.name}' in block '{bdef.name}' hides an op, block or parameter of that name",
                                assign.name_loc)
            seen[assign.name] = assign.name_loc
            result = self._assign(assign, body, default_input=param.name)
        nodes = _assign_tdbn_factor(body.nodes)
        return Block(f"{bdef.name}.{count}", Attrs(args), tuple(nodes), result)

    # ------------------------------------------------------------- arguments
    def _args(self, call: ast.Call, env: Env):
        pos = [evaluate(a.value, env) for a in call.positional]
        kw = {}
        for a in call.keyword:
            if a.name in kw:
                raise SnncError(f"argument '{a.name}' is given twice", a.loc)
            kw[a.name] = evaluate(a.value, env)
        for value, arg in zip(list(pos) + list(kw.values()), call.positional + call.keyword):
            if isinstance(value, (DottedValue, list, tuple)):
                raise SnncError(f"{call.name} takes numbers, true/false or names here, not {format_value(value)}",
                                arg.value.loc)
            if isinstance(value, CallValue) and call.name not in ("surrogate",):
                pass  # only surrogates take call values; Param.coerce reports the rest
        return pos, kw

    def _bind(self, params, pos, kw, call: ast.Call, what: str, defaults: bool = True, env: Env | None = None) -> dict:
        try:
            return bind_args(params, pos, kw, what, fill_defaults=defaults)
        except ParamError as exc:
            value = kw.get(exc.arg) if isinstance(exc.arg, str) else (
                pos[exc.arg] if isinstance(exc.arg, int) and exc.arg < len(pos) else None)
            if isinstance(value, Symbol) and env is not None and "must be a number" in exc.message:
                raise SnncError(f"unknown name '{value.name}'", self._arg_loc(call, exc.arg),
                                did_you_mean(value.name, env.values, "parameter")) from None
            raise SnncError(exc.message, self._arg_loc(call, exc.arg), exc.hint) from None

    def _located(self, fn, call: ast.Call):
        try:
            return fn()
        except ParamError as exc:
            raise SnncError(exc.message, self._arg_loc(call, exc.arg), exc.hint) from None

    @staticmethod
    def _arg_loc(call: ast.Call, which) -> Loc:
        if isinstance(which, str):
            for a in call.keyword:
                if a.name == which:
                    return a.loc
        elif isinstance(which, int):
            pos = call.positional
            if which < len(pos):
                return pos[which].loc
        return call.loc


# ------------------------------------------------------------------ helpers
def parse_override(name: str, text: str):
    """The value of `--set name=text`: an integer, a number, or true/false."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
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


def _truthy(value, expr) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, Symbol):
        raise SnncError(f"unknown name '{value.name}' in condition", expr.loc)
    raise SnncError(f"a condition must be true/false, not {format_value(value)}", expr.loc)


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


def _op_counts(chain: ast.Chain, builder: Builder, scope: Scope) -> dict[str, int]:
    """How often each op kind appears directly in a chain (so repeated kinds get numbered names)."""
    counts: dict[str, int] = {}

    def walk(ch: ast.Chain, first: bool):
        for i, el in enumerate(ch.elements):
            if el.repeat is not None:
                continue
            if isinstance(el.unit, ast.Group):
                walk(el.unit.chain, first and i == 0)
                continue
            name = el.unit.name
            if name in builder.blocks_ast or (name in scope.values and first and i == 0):
                continue
            counts[name] = counts.get(name, 0) + 1

    walk(chain, True)
    return counts


def _op_name(kind: str, counts: dict, used: dict) -> str:
    n = used.get(kind, 0)
    used[kind] = n + 1
    return f"{kind}{n}" if counts.get(kind, 0) > 1 else kind


def _next_unit(used: dict) -> int:
    n = used.get("#unit", 0)
    used["#unit"] = n + 1
    return n


def _block_order(name: str):
    base, _, idx = name.rpartition(".")
    return base, int(idx)


def _assign_tdbn_factor(nodes: list[Node]) -> list[Node]:
    """tdBN uses a = 1/sqrt(2) on BNs that feed a residual add, 1 elsewhere (METHODS §9)."""
    users: dict[str, list[Node]] = {}
    for n in nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n)
    out = []
    for n in nodes:
        if n.op == "bn" and n.attrs.get("mode") == "tdbn":
            feeds_add = bool(users.get(n.name)) and all(u.op == "add" for u in users[n.name])
            n = n.with_attrs(a=TDBN_BRANCH_FACTOR if feeds_add else 1.0)
        out.append(n)
    return out
