"""AST -> IR: resolves parameters and defaults, instantiates blocks, infers shapes.

Every semantic rule of the language is checked here and reported as a located
SnncError. The result is the un-expanded graph: block calls are `call` nodes
and each distinct instantiation is a `Block` (see snnc/passes/expand_blocks.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from snnc.catalog import NEURON_PARAMS, NORM_PARAMS, SurrogateSpec, resolve_lif
from snnc.diagnostics import Loc, Note, SnncError, did_you_mean
from snnc.frontend import ast, declarations as decl
from snnc.frontend.binding import arg_loc, bind, evaluate_args, located, surrogate
from snnc.frontend.declarations import CHAIN_WORDS, LAYER_OPS, NEURONS, NORMS, check_identifier
from snnc.frontend.joins import CHAIN_EXAMPLE, is_join, join_node
from snnc.frontend.tdbn import assign_tdbn_thresholds
from snnc.frontend.values import Env, evaluate
from snnc.ir.attrs import Attrs
from snnc.ir.graph import Block, Graph, Node
from snnc.ir.schema import schema
from snnc.ir.shapes import ShapeError, fmt
from snnc.params import Symbol, format_value

TDBN_BRANCH_FACTOR = 1 / math.sqrt(2)  # docs/methods.md §9: BNs that feed a residual add
ANNOTATIONS = ("surrogate",)
# Limits that keep a hostile source from running for minutes or past the recursion limit
# (the largest zoo network, sew_resnet34, has 159 nodes after expansion).
MAX_LAYERS = 20_000      # nodes after expanding every block call and repeat
MAX_BLOCK_NESTING = 32   # blocks calling blocks


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
        params = decl.network_params(net, self.overrides)
        env = Env(dict(params))
        self.defaults = decl.defaults(net, env)
        self.blocks_ast = decl.collect_blocks(net)
        input_node = decl.network_input(net, env)
        top = Scope([input_node], {}, env, "", self.defaults.surrogate)
        decl.check_stage_names(net, self.blocks_ast)
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
        if "classes" in params and out.shape[-1] != params["classes"]:
            raise SnncError(f"the network output has {out.shape[-1]} classes, but the parameter classes = "
                            f"{params['classes']}", out.loc or last.loc,
                            f"end the last stage with fc(classes), or set classes = {out.shape[-1]}")
        nodes = _assign_tdbn_factor(top.nodes)
        blocks = tuple(sorted(self.instances.values(), key=lambda b: _block_order(b.name)))
        spelled = {k: v.name if isinstance(v, Symbol) else v for k, v in params.items()}  # word parameters
        return assign_tdbn_thresholds(Graph(net.name, Attrs(spelled), tuple(nodes), current, (), blocks))

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
        pos, kw = evaluate_args(expr, env)
        return surrogate(expr, pos, kw)

    def _call(self, call: ast.Call, scope: Scope, current: str, counts, used, first: bool) -> str:
        name = call.name
        if name in scope.values:
            if not first or call.has_parens:
                raise SnncError(f"'{name}' is a value, so it can only start a chain (without parentheses)",
                                call.name_loc, f"write: ... = {name} -> ...")
            return scope.values[name][0]
        if is_join(name):
            if not first:
                raise SnncError(f"{name}(...) must start a chain: its inputs are the values it names", call.loc,
                                f"write: {CHAIN_EXAMPLE[name]}")
            return self._join(call, scope, counts, used)
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
        pos, kw = evaluate_args(call, scope.env)
        values = bind(sch.source_attrs, pos, kw, call, call.name, env=scope.env)
        if sch.complete:
            values = sch.complete(values)
        return Node("", call.name, (current,), Attrs(values), (), "main", call.loc)

    def _neuron(self, call: ast.Call, scope: Scope, current: str) -> Node:
        pos, kw = evaluate_args(call, scope.env)
        given = bind(NEURON_PARAMS[call.name], pos, kw, call, f"neuron '{call.name}'", defaults=False,
                           env=scope.env)
        values = dict(self.defaults.neurons.get(call.name, {}))
        if "decay" in given or "tau" in given:  # a layer's own decay/tau replaces the default's
            values.pop("decay", None)
            values.pop("tau", None)
        values.update(given)
        full = bind(NEURON_PARAMS[call.name], [], values, call, f"neuron '{call.name}'")
        if call.name in ("lif", "plif"):
            full = located(lambda: resolve_lif(full), call)
        else:
            full.update(decay=1.0, decay_input=False)
        full["surrogate"] = scope.surrogate
        return Node("", "lif", (current,), Attrs(full), (), "main", call.loc)

    def _norm(self, call: ast.Call, scope: Scope, current: str) -> Node:
        mode = self.defaults.norm if call.name == "bn" else call.name
        pos, kw = evaluate_args(call, scope.env)
        given = bind(NORM_PARAMS[mode], pos, kw, call, call.name, defaults=False, env=scope.env)
        values = {**self.defaults.norm_args, **given}
        values = bind(NORM_PARAMS[mode], [], values, call, call.name)
        values["mode"] = mode
        if mode == "tdbn":  # a and vth are set once the graph shows what the BN feeds
            values.update(a=1.0, vth=1.0)
        return Node("", "bn", (current,), Attrs(values), (), "main", call.loc)

    def _join(self, call: ast.Call, scope: Scope, counts, used) -> str:
        node = join_node(call, scope.values, scope.env, scope.shape_of)
        node = node.replace(name=scope.qualify(_op_name(call.name, counts, used)))
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
        pos, kw = evaluate_args(call, scope.env)
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
                raise SnncError(f"block '{bdef.name}' has no parameter '{key}'", arg_loc(call, key),
                                did_you_mean(key, names, "parameter"))
            if key in values:
                raise SnncError(f"parameter '{key}' of block '{bdef.name}' is given twice", arg_loc(call, key))
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

# ------------------------------------------------------------------ helpers
def _truthy(value, expr) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, Symbol):
        raise SnncError(f"unknown name '{value.name}' in condition", expr.loc)
    raise SnncError(f"a condition must be true/false, not {format_value(value)}", expr.loc)


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
    """tdBN uses a = 1/sqrt(2) on BNs that feed a residual add, 1 elsewhere (docs/methods.md §9)."""
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
