"""Subcommands that read networks: check, ir, info, passes."""

from __future__ import annotations

import json
import sys

from snnc.cli.main import add_set_option, overrides
from snnc.diagnostics import SnncError, did_you_mean, render


def _compile(args, path, recipe: str | None = None, memory: str | None = None):
    from snnc.pipeline import compile_source

    return compile_source(path, overrides(args), recipe=recipe or getattr(args, "recipe", None),
                          memory=memory or getattr(args, "memory_policy", None))


# ---------------------------------------------------------------- check
def cmd_check(args) -> int:
    from snnc.recipes import check_definitions

    failed = 0
    for path in args.files:
        try:
            check_definitions(_compile(args, path).network.recipes)
        except SnncError as err:
            if args.debug:
                raise
            failed += 1
            print(render(err), file=sys.stderr)
            continue
        if not args.quiet:
            print(f"{path}: ok")
    return 1 if failed else 0


def _add_check(sub, common):
    p = sub.add_parser("check", parents=[common], help="parse and verify .snn files",
                       description="Parse and verify each file, and every recipe it defines; print diagnostics. "
                                   "Exit 1 if any fails.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    add_set_option(p)
    p.set_defaults(func=cmd_check)


# ------------------------------------------------------------------- ir
def _format(graph, fmt: str, after: str) -> str:
    from snnc.ir.printer import print_graph
    from snnc.ir.views import to_dot, to_json

    if fmt == "json":
        return to_json(graph)
    if fmt == "dot":
        return to_dot(graph)
    return print_graph(graph, after)


def cmd_ir(args) -> int:
    compiled = _compile(args, args.file)
    stages = compiled.stages
    if args.all:
        out = [_format(g, args.format, name) for name, g in stages]
        sys.stdout.write("\n".join(out))
        return 0
    if args.after:
        names = [name for name, _ in stages]
        if args.after not in names:
            raise SnncError(f"--after {args.after}: no such step in this pipeline",
                            hint=did_you_mean(args.after, names, "step") or "steps: " + ", ".join(names))
        name, graph = next((n, g) for n, g in stages if n == args.after)
    else:
        name, graph = stages[-1]
    sys.stdout.write(_format(graph, args.format, name))
    return 0


def _add_ir(sub, common):
    p = sub.add_parser("ir", parents=[common], help="print the IR after a pass",
                       description="Print the IR of FILE after the last pass, after --after PASS, or after every step.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--recipe", default="sdt", help="training recipe, e.g. sml+tet (default: sdt)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--after", metavar="PASS", help="show the IR after this step ('build' is the frontend)")
    g.add_argument("--all", action="store_true", help="show the IR after every step")
    p.add_argument("--format", choices=("text", "json", "dot"), default="text", help="output format (default: text)")
    p.add_argument("--memory", dest="memory_policy", metavar="POLICY",
                   help="end with plan-memory: store, pack, recompute or recompute(max_macs=N) (docs/memory.md)")
    add_set_option(p)
    p.set_defaults(func=cmd_ir)


# ----------------------------------------------------------------- info
def _human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3f} {unit}"
    return str(n)


def cmd_info(args) -> int:
    from snnc.budget import human_bytes, warnings
    from snnc.ir.analysis import costs, footprint

    if args.memory:
        return _info_memory(args)
    rows = []
    for path in args.files:
        compiled = _compile(args, path)
        g = compiled.graph
        c = costs(g)
        fp = footprint(g)
        inp = g.node("x")
        row = {
            "file": str(path), "network": g.network, "params": dict(g.params),
            "input": {"kind": inp.attrs["kind"], "dims": list(inp.attrs["dims"])},
            "classes": g.node(g.output).shape[-1],
            "parameters": c.params, "macs_per_step": c.macs, "lif_layers": c.lif_layers,
            "neurons_per_step": c.neurons, "memory": fp.as_dict(), "warnings": warnings(fp),
        }
        for warning in row["warnings"]:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        if args.layers:
            row["layers"] = c.per_layer
        rows.append(row)
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=1))
        return 0
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        dims = "x".join(str(d) for d in row["input"]["dims"])
        print(f"{row['network']}({params})  [{row['file']}]")
        print(f"  input            {row['input']['kind']} {dims}, {row['classes']} classes")
        print(f"  parameters       {row['parameters']:,}")
        print(f"  MACs per step    {row['macs_per_step']:,}  ({_human(row['macs_per_step'])}MAC)")
        print(f"  LIF layers       {row['lif_layers']}")
        print(f"  neurons per step {row['neurons_per_step']:,}")
        mem = row["memory"]
        print(f"  weights          {human_bytes(mem['param_bytes'])} (float32)")
        print(f"  activations      {human_bytes(mem['activation_bytes_per_sample'])} per sample over T = "
              f"{mem['steps']} (kept for the backward pass)")
        for layer in row.get("layers", []):
            print(f"    {layer['name']:<32} {layer['op']:<6} params {layer['params']:>10,}  "
                  f"MACs {layer['macs']:>13,}  neurons {layer['neurons']:>9,}")
    return 0


def _add_info(sub, common):
    p = sub.add_parser("info", parents=[common], help="parameters, MACs, LIF layers, neurons",
                       description="Static figures of each network: parameters, MACs per time step, LIF layers, "
                                   "LIF neurons per time step (per sample). With --memory: the bytes training "
                                   "keeps for the backward pass per sample, for a recipe and memory policy, and the "
                                   "largest batch that fits a budget (docs/memory.md).")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--layers", action="store_true", help="also list every layer")
    m = p.add_argument_group("saved activations (--memory)")
    m.add_argument("--memory", action="store_true",
                   help="predict the saved activation bytes from the IR, for --recipe and --policy")
    m.add_argument("--recipe", default=None, help="training recipe for --memory (default: sdt)")
    m.add_argument("--policy", default="store", metavar="POLICY",
                   help="store, pack, recompute or recompute(max_macs=N) (default: store)")
    m.add_argument("--budget", type=parse_bytes, metavar="SIZE",
                   help="device memory, e.g. 80GiB or 141GB: report the largest batch that fits")
    m.add_argument("--batch", type=int, metavar="B", help="also report the memory at this batch size")
    add_set_option(p)
    p.set_defaults(func=cmd_info)


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """`80GiB`, `141GB`, `512MiB`, `1e9` -> bytes."""
    import argparse
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"expected a size like 80GiB, 141GB or 512MiB, got '{text}'")
    return int(float(m.group(1)) * _UNITS[unit])


def _mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB"


def memory_row(path, args) -> dict:
    """The saved-activation prediction of one network for `snnc info --memory` (also its JSON)."""
    from snnc.ir.analysis import footprint
    from snnc.ir.memory import largest_batch, predict
    from snnc.passes.plan_memory import policy_spelling

    recipe = args.recipe or "sdt"
    planned = _compile(args, path, recipe=recipe, memory=args.policy).graph
    store = predict(_compile(args, path, recipe=recipe, memory="store").graph)
    pred = predict(planned)
    params = footprint(planned).param_bytes
    row = {"file": str(path), "network": planned.network, "params": dict(planned.params), "recipe": recipe,
           "policy": policy_spelling(planned), "steps": pred.steps,
           "saved_bytes_per_sample": pred.per_sample, "saved_bytes_per_batch": pred.fixed,
           "store_bytes_per_sample": store.per_sample, "param_bytes": params,
           "per_node": pred.per_node}
    if args.budget is not None:
        row["budget_bytes"] = args.budget
        row["largest_batch"] = largest_batch(pred, args.budget, params)
    if args.batch is not None:
        row["batch"] = args.batch
        row["saved_bytes_at_batch"] = pred.total(args.batch)
    return row


def _info_memory(args) -> int:
    rows = [memory_row(path, args) for path in args.files]
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=1))
        return 0
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        per, store = row["saved_bytes_per_sample"], row["store_bytes_per_sample"]
        print(f"{row['network']}({params})  [{row['file']}]  recipe {row['recipe']}, memory {row['policy']}")
        fixed = row["saved_bytes_per_batch"]
        print(f"  saved for backward   {_mib(per)} per sample over T = {row['steps']}"
              + (f" ({per / store:.2f}x of store's {_mib(store)})" if store and row["policy"] != "store" else "")
              + (f", + {fixed / 2**10:,.1f} KiB per batch" if fixed else ""))
        if "batch" in row:
            print(f"  at batch {row['batch']:<11} {_mib(row['saved_bytes_at_batch'])} saved, beside "
                  f"{_mib(4 * row['param_bytes'])} of weights, gradients and AdamW state")
        if "largest_batch" in row:
            print(f"  largest batch        {row['largest_batch']:,} in {row['budget_bytes'] / 2**30:,.2f} GiB "
                  f"(after {_mib(4 * row['param_bytes'])} of weights, gradients and AdamW state)")
        if args.layers:
            for name, size in row["per_node"].items():
                print(f"    {name:<40} {_mib(size)}")
    return 0


# --------------------------------------------------------------- passes
def cmd_passes(args) -> int:
    from snnc.passes import PASSES
    from snnc.passes.registry import PROPERTIES

    for phase in ("frontend", "training", "inference"):
        items = [p for p in PASSES.values() if p.phase == phase]
        if not items:
            continue
        print(f"{phase} passes:")
        for p in items:
            print(f"  {p.name:<26} {p.doc}")
            if p.requires:
                print(f"  {'':<26} requires: {', '.join(p.requires)}")
            if p.ensures:
                print(f"  {'':<26} ensures:  {', '.join(p.ensures)}")
    print("properties:")
    for name, (_, doc) in PROPERTIES.items():
        print(f"  {name:<26} {doc}")
    return 0


def _add_passes(sub, common):
    p = sub.add_parser("passes", parents=[common], help="list the compiler passes",
                       description="List every registered pass with what it requires and ensures.")
    p.set_defaults(func=cmd_passes)


def _registrars():
    from snnc.cli import build_commands, export_command, import_command, report_command

    return ([_add_check, _add_ir, _add_info, _add_passes] + build_commands.REGISTRARS + export_command.REGISTRARS
            + import_command.REGISTRARS + report_command.REGISTRARS)


REGISTRARS = _registrars()
