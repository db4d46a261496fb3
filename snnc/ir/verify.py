"""`verify(graph)`: every node matches its op schema, names are unique, order is
topological, shapes agree with inference, main nodes never read aux nodes."""

from __future__ import annotations

from snnc.diagnostics import SnncError
from snnc.ir.graph import ROLES, Block, Graph, Node
from snnc.ir.memory import NODE_ANNOTATIONS
from snnc.ir.schema import SCHEMAS, TRAINING_ONLY_LIF_ATTRS, TRAINING_ONLY_OPS
from snnc.ir.shapes import ShapeError, fmt
from snnc.names import NODE_NAME_RE
from snnc.params import ParamError


class IRError(SnncError):
    """The IR breaks an invariant: a compiler bug, or hand-edited IR text."""


def _fail(node: Node | None, message: str) -> None:
    where = f"%{node.name}: " if node is not None else ""
    raise IRError(where + message, node.loc if node is not None else None)


def _check_attrs(node: Node) -> None:
    sch = SCHEMAS[node.op]
    known = set(sch.attr_names)
    for key in node.attrs:
        if key not in known and key not in NODE_ANNOTATIONS:
            _fail(node, f"{node.op} has no attribute '{key}' (known: {', '.join(sorted(known)) or 'none'})")
    # plan-memory's annotations may sit on any node (snnc/ir/memory.py); checked like attributes
    annotations = [NODE_ANNOTATIONS[k] for k in node.attrs if k in NODE_ANNOTATIONS and k not in known]
    for param in (*sch.attrs, *annotations):
        if param.name not in node.attrs:
            if not param.optional or param.name in sch.completed:
                _fail(node, f"{node.op} is missing attribute '{param.name}'")
            continue
        value = node.attrs[param.name]
        try:
            canonical = param.coerce(value)
        except ParamError as exc:
            _fail(node, exc.message)
        if type(canonical) is not type(value) or canonical != value:
            _fail(node, f"attribute '{param.name}' = {value!r} is not in canonical form ({canonical!r})")
        if param.kind == "name" and not NODE_NAME_RE.match(value):
            _fail(node, f"attribute '{param.name}' = {value!r} is not a valid name")
    if sch.check:
        problem = sch.check(dict(node.attrs))
        if problem:
            _fail(node, problem)


def _check_nodes(nodes: tuple[Node, ...], graph: Graph, where: str) -> dict[str, Node]:
    seen: dict[str, Node] = {}
    for node in nodes:
        if not NODE_NAME_RE.match(node.name):
            _fail(node, "invalid node name")
        if node.name in seen:
            _fail(node, f"duplicate node name in {where}")
        if node.op not in SCHEMAS:
            _fail(node, f"unknown op '{node.op}'")
        sch = SCHEMAS[node.op]
        if node.role not in ROLES:
            _fail(node, f"unknown role '{node.role}'")
        if sch.aux_only and node.role != "aux":
            _fail(node, f"{node.op} is a training-only op and must have role=aux")
        n = len(node.inputs)
        if n < sch.min_inputs or (sch.max_inputs is not None and n > sch.max_inputs):
            _fail(node, f"{node.op} takes {sch.min_inputs}..{sch.max_inputs} inputs, got {n}")
        for i in node.inputs:
            if i not in seen:
                _fail(node, f"input %{i} is not defined before it (graphs are in topological order)")
            if node.role == "main" and seen[i].role == "aux":
                _fail(node, f"main node reads aux node %{i}")
        _check_attrs(node)
        _check_shape(node, [seen[i].shape for i in node.inputs], graph)
        seen[node.name] = node
    return seen


def _check_shape(node: Node, in_shapes, graph: Graph) -> None:
    for d in node.shape:
        if isinstance(d, str) and d not in ("T", "B"):
            _fail(node, f"unknown symbolic dim '{d}'")
        if isinstance(d, int) and d < 1:
            _fail(node, f"non-positive dim in {fmt(node.shape)}")
    if node.op == "call":
        try:
            block = graph.block(node.attrs["block"])
        except KeyError:
            _fail(node, f"calls unknown block '{node.attrs['block']}'")
        param = block.nodes[0]
        if in_shapes[0] != param.shape:
            _fail(node, f"block {block.name} expects {fmt(param.shape)}, gets {fmt(in_shapes[0])}")
        result = next(n for n in block.nodes if n.name == block.result)
        if node.shape != result.shape:
            _fail(node, f"shape {fmt(node.shape)} differs from block result {fmt(result.shape)}")
        return
    infer = SCHEMAS[node.op].infer
    if infer is None:
        return
    try:
        expected = infer(in_shapes, node.attrs)
    except ShapeError as exc:
        _fail(node, exc.message)
    if tuple(expected) != tuple(node.shape):
        _fail(node, f"shape {fmt(node.shape)} differs from inferred {fmt(expected)}")


def _check_block(block: Block, graph: Graph) -> None:
    if not block.nodes or block.nodes[0].op != "param":
        raise IRError(f"block {block.name} must start with a param node")
    if sum(n.op == "param" for n in block.nodes) != 1:
        raise IRError(f"block {block.name} has more than one param node")
    seen = _check_nodes(block.nodes, graph, f"block {block.name}")
    if block.result not in seen:
        raise IRError(f"block {block.name} returns unknown %{block.result}")


def _check_phase(graph: Graph) -> None:
    """Training graphs give every LIF a surrogate. From strip-aux on (phase=stripped) nothing
    training-only remains; after dce (phase=inference) no BN, decoding or identity is left either."""
    phase = graph.attrs.get("phase", "training")
    if phase not in ("training", "stripped", "inference"):
        raise IRError(f"unknown phase '{phase}'")
    if phase == "training":
        for node in graph.nodes:
            if node.op == "lif" and "surrogate" not in node.attrs:
                _fail(node, "a training graph's LIF layers need a surrogate")
        return
    if graph.blocks or graph.aux_outputs:
        raise IRError(f"a {phase} graph has no blocks and no aux outputs")
    banned = {"sdt_loss", "tet_loss", "sml_loss", "mean_t", "leaky_relu", "call", "dropout", "token_map"}
    if phase == "inference":
        banned |= set(TRAINING_ONLY_OPS) | {"identity"}
    for node in graph.nodes:
        if node.role != "main":
            _fail(node, f"a {phase} graph has no aux nodes")
        if node.op in banned:
            _fail(node, f"a {phase} graph has no {node.op} nodes")
        if node.op == "lif":
            left = sorted(set(node.attrs) & set(TRAINING_ONLY_LIF_ATTRS))
            if left:
                _fail(node, f"a {phase} graph's LIF layers carry no training annotations ({', '.join(left)})")


def verify(graph: Graph) -> Graph:
    """Raises IRError on the first broken invariant; returns the graph unchanged."""
    names = set()
    for block in graph.blocks:
        if block.name in names:
            raise IRError(f"block {block.name} is defined twice")
        names.add(block.name)
        _check_block(block, graph)
    seen = _check_nodes(graph.nodes, graph, "the graph")
    if any(n.op == "param" for n in graph.nodes):
        raise IRError("param nodes belong in block bodies only")
    if graph.output not in seen:
        raise IRError(f"output %{graph.output} is not defined")
    if seen[graph.output].role != "main":
        raise IRError(f"output %{graph.output} must be a main node")
    for a in graph.aux_outputs:
        if a not in seen:
            raise IRError(f"aux output %{a} is not defined")
        if seen[a].role != "aux":
            raise IRError(f"aux output %{a} must be an aux node")
    _check_phase(graph)
    return graph
