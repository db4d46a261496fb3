"""Reading snnc's own files back (manifest.json, model.ir, checkpoint.pt), every field checked before use.

Anything on disk may have been edited or damaged since snnc wrote it, so each field a command
uses is validated against what snnc writes: a mismatch is a diagnostic naming the file and the
field, never a traceback, never code emitted from it and never an allocation sized by it.
`compatibility` says what differs between a run and a build, for `--resume`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from snnc.diagnostics import SnncError
from snnc.names import IDENT_RE
from snnc.ir.graph import Graph

MAX_T = 100_000          # time steps a checkpoint may name (the language's own bound is far lower)
MAX_DIM = 1 << 20        # an input dimension or a class count
DAMAGED = "it was edited or damaged; restore it, or recompile and retrain"


def _bad(path: Path, field: str, why: str) -> SnncError:
    return SnncError(f"{path}: field '{field}' {why}", hint=DAMAGED)


def _int(value, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except RecursionError:
        raise SnncError(f"cannot read {path}: it nests deeper than any snnc file", hint=DAMAGED) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SnncError(f"cannot read {path}: {exc.__class__.__name__}: {exc}", hint=DAMAGED) from None
    if not isinstance(data, dict):
        raise SnncError(f"{path} holds a {type(data).__name__}, not an object", hint=DAMAGED)
    return data


def read_manifest(path: Path) -> dict:
    """A build, run or deploy manifest with the fields commands rely on checked."""
    m = read_json(path)
    if not isinstance(m.get("network"), str) or not IDENT_RE.fullmatch(m["network"]):
        raise _bad(path, "network", "must be a network name")
    if not isinstance(m.get("recipe"), str) or not m["recipe"].isprintable():
        raise _bad(path, "recipe", "must be a recipe spelling")
    if not isinstance(m.get("snnc_version"), str):
        raise _bad(path, "snnc_version", "must be a version string")
    inp = m.get("input")
    if not isinstance(inp, dict) or inp.get("kind") not in ("image", "events") or not isinstance(inp.get("dims"), list) \
            or not 1 <= len(inp["dims"]) <= 4 or not all(_int(d, 1, MAX_DIM) for d in inp["dims"]):
        raise _bad(path, "input", "must be {\"kind\": \"image\" | \"events\", \"dims\": [positive integers]}")
    if not _int(m.get("classes"), 1, MAX_DIM):
        raise _bad(path, "classes", f"must be an integer in [1, {MAX_DIM}], not {m.get('classes')!r}")
    params = m.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(k, str) and _finite_scalar(v) for k, v in params.items()):
        raise _bad(path, "params", "must map parameter names to numbers")
    for key in ("source", "source_sha256"):
        if key in m and not isinstance(m[key], str):
            raise _bad(path, key, "must be a string")
    if "schedule" in m and not _schedule_ok(m["schedule"]):
        raise _bad(path, "schedule", "must be a list of {\"T\": int, \"epochs\": int, \"lr\": number}")
    data = m.get("data")
    if data is not None and not (isinstance(data, dict) and isinstance(data.get("spec"), str)
                                 and isinstance(data.get("preprocess"), (dict, type(None)))):
        raise _bad(path, "data", "must be {\"spec\": string, \"preprocess\": object or null}")
    if "train_args" in m and not isinstance(m["train_args"], dict):
        raise _bad(path, "train_args", "must be an object")
    return m


def _json_ok(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def finite_number(v) -> bool:
    """A finite int or float, not a bool (a 400-digit int, which no float holds, is not one)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _finite_scalar(v) -> bool:
    return isinstance(v, (str, bool)) or finite_number(v)


def _schedule_ok(schedule) -> bool:
    return isinstance(schedule, list) and bool(schedule) and all(
        isinstance(s, dict) and _int(s.get("T"), 1, MAX_T) and _int(s.get("epochs"), 1, 10**9)
        and isinstance(s.get("lr"), (int, float)) for s in schedule)


def read_ir(path: Path) -> Graph:
    """The IR in `path`, parsed and verified (a hand-edited attribute is refused here, not in codegen)."""
    from snnc.ir.textparse import parse
    from snnc.ir.verify import verify

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SnncError(f"cannot read {path}: {exc}", hint=DAMAGED) from None
    from snnc.budget import check_budget

    try:
        graph = verify(parse(text, str(path)))
    except SnncError as err:
        raise SnncError(f"{path} is not valid snnc IR: {err.message}", err.loc if err.loc and err.loc.file == str(path)
                        else None, DAMAGED) from None
    except Exception as exc:  # noqa: BLE001 - a transformer failure on malformed text
        raise SnncError(f"{path} is not valid snnc IR ({exc.__class__.__name__})", hint=DAMAGED) from None
    try:  # the compiler's size limits hold for a graph read back too: a run folder may come from anyone
        check_budget(graph)
    except SnncError as err:
        raise SnncError(f"{path}: {err.message}", None, err.hint) from None
    return graph


def schedule_Ts(graph: Graph) -> set[int]:
    """Every T the training graph may run at: the network's, and each TIT stage's."""
    Ts = {int(graph.params["T"])}
    Ts.update(int(s[0]) for s in graph.attrs.get("time_stages", ()))
    return Ts


def check_checkpoint(state: dict, path: Path, graph: Graph | None = None) -> dict:
    """The fields of an snnc checkpoint that commands use, checked (types and ranges)."""
    import torch

    for key in ("network", "recipe"):
        if not isinstance(state.get(key), str):
            raise _bad(path, key, "must be a string")
    for key in ("epoch", "batch", "stage"):
        if key in state and not _int(state[key], 0, 10**9):
            raise _bad(path, key, f"must be a non-negative integer, not {state[key]!r}")
    from snnc.runtime.weights import plain_tensor

    model = state.get("model")
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) and plain_tensor(v)
                                              for k, v in model.items()):
        raise _bad(path, "model", "must be a state dict of dense tensors")
    if "T" in state:
        allowed = schedule_Ts(graph) if graph is not None else None
        if not _int(state["T"], 1, MAX_T) or (allowed is not None and state["T"] not in allowed):
            raise _bad(path, "T", f"is {state['T']!r}, not a T this network trains at"
                                  + (f" ({', '.join(map(str, sorted(allowed)))})" if allowed else ""))
    if "metrics" in state and not (isinstance(state["metrics"], dict) and _json_ok(state["metrics"])):
        raise _bad(path, "metrics", "must be an object of numbers and strings")
    if "schedule" in state and not _schedule_ok(state["schedule"]):
        raise _bad(path, "schedule", "must be a list of {\"T\": int, \"epochs\": int, \"lr\": number}")
    order = state.get("epoch_order")
    if order is not None and not (isinstance(order, dict) and all(
            isinstance(k, str) and isinstance(v, (str, int)) and not isinstance(v, bool) for k, v in order.items())):
        raise _bad(path, "epoch_order", "must be an object of strings and integers")
    return state


# ------------------------------------------------------------ compatibility
def _loc_free(graph: Graph) -> Graph:
    return graph.replace(nodes=tuple(n.replace(loc=None) for n in graph.nodes), blocks=())


def ir_difference(run: Graph, build: Graph) -> str | None:
    """The first difference between two training graphs, locations aside, in words (None if equal)."""
    a, b = _loc_free(run), _loc_free(build)
    if a == b:
        return None
    names_a, names_b = [n.name for n in a.nodes], [n.name for n in b.nodes]
    if names_a != names_b:
        only_a = [n for n in names_a if n not in set(names_b)]
        only_b = [n for n in names_b if n not in set(names_a)]
        if only_a or only_b:
            return (f"the layers differ (the run has {', '.join('%' + n for n in only_a[:3]) or 'no others'}; "
                    f"this build has {', '.join('%' + n for n in only_b[:3]) or 'no others'})")
        return "the layers are in another order"
    for x, y in zip(a.nodes, b.nodes):
        if x == y:
            continue
        if x.op != y.op or x.inputs != y.inputs:
            return f"%{x.name} is {x.op}({', '.join(x.inputs)}) in the run, {y.op}({', '.join(y.inputs)}) here"
        for key in sorted(set(x.attrs) | set(y.attrs)):
            if x.attrs.get(key) != y.attrs.get(key):
                return f"%{x.name} has {key}={x.attrs.get(key)} in the run, {key}={y.attrs.get(key)} here"
        return f"%{x.name} differs ({x.shape} in the run, {y.shape} here)"
    if a.attrs != b.attrs:
        keys = sorted(k for k in set(a.attrs) | set(b.attrs) if a.attrs.get(k) != b.attrs.get(k))
        return f"the training settings differ ({', '.join(keys)})"
    return "the outputs differ"


def compatibility(run_manifest: dict | None, ck: dict, build_manifest: dict | None, network: str, recipe: str,
                  run_ir: Graph | None, build_ir: Graph | None) -> list[str]:
    """What differs between a run (its checkpoint, manifest and IR) and the build asked to resume it."""
    diffs = []
    if ck.get("network") != network:
        diffs.append(f"network: the run trains {ck.get('network')}, this build {network}")
    if ck.get("recipe") != recipe:
        diffs.append(f"recipe: the run uses {ck.get('recipe')}, this build {recipe}")
    have = ck.get("params") or (run_manifest or {}).get("params")
    want = (build_manifest or {}).get("params")
    if isinstance(have, dict) and isinstance(want, dict):
        for key in sorted(set(have) | set(want)):
            if have.get(key) != want.get(key):
                diffs.append(f"parameter {key}: the run has {have.get(key, 'none')}, this build "
                             f"{want.get(key, 'none')}")
    if not diffs and run_ir is not None and build_ir is not None:
        text = ir_difference(run_ir, build_ir)
        if text:
            diffs.append(text)
    return diffs


def shape_difference(saved: dict, own: dict) -> str | None:
    """The first tensor whose name or shape differs between two state dicts, in words."""
    for key in own:
        if key not in saved:
            return f"the checkpoint has no tensor {key}"
        if tuple(saved[key].shape) != tuple(own[key].shape):
            return (f"tensor {key} is {list(saved[key].shape)} in the checkpoint, {list(own[key].shape)} "
                    f"in this network")
    extra = [k for k in saved if k not in own]
    if extra:
        return f"the checkpoint has tensors this network lacks ({', '.join(extra[:3])})"
    return None


def write_json_atomic(path: Path, data: dict) -> None:
    import os

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
