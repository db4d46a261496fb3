"""Subcommands that build and train: recipes, compile, train, run."""

from __future__ import annotations

import runpy
import shlex
import sys
from pathlib import Path

from snnc.cli.main import add_set_option, overrides
from snnc.diagnostics import SnncError


def cmd_recipes(args) -> int:
    from snnc.recipes import describe_all

    print(describe_all())
    return 0


def _add_recipes(sub, common):
    p = sub.add_parser("recipes", parents=[common], help="list the training recipes",
                       description="List every recipe with its parameters, defaults and source paper.")
    p.set_defaults(func=cmd_recipes)


def data_hint(graph) -> str:
    """A --data spec that fits the network's input: the embedded digits where the shape allows."""
    inp = graph.node("x").attrs
    dims, classes = tuple(inp["dims"]), graph.node(graph.output).shape[-1]
    if inp["kind"] == "events":
        return "nmnist:PATH"  # or dvsgesture:PATH, cifar10dvs:PATH, dvs:PATH (pre-framed)
    if dims == (1, 8, 8) and classes == 10:
        return "digits"
    if dims == (1, 28, 28) and classes == 10:
        return "mnist5k"
    if dims == (3, 32, 32) and classes in (10, 100):
        return f"cifar{classes}:PATH"
    return "synthetic"


def cmd_compile(args) -> int:
    from snnc.compiler import compile_to

    compiled = compile_to(args.file, args.recipe, args.out, overrides(args), args.backend, fuse=not args.no_fuse,
                          force=args.force, loop=args.loop, memory=args.memory)
    print(f"compiled {compiled.graph.network} with {compiled.recipe.slug()} into {args.out}/ "
          f"({len(compiled.stages)} IR dumps, model.py, train.py)")
    out = shlex.quote(str(args.out))  # a command to paste: a folder name with spaces stays one argument
    print(f"train it with: snnc train {out} --data {data_hint(compiled.graph)}   "
          f"(or: python {shlex.quote(str(Path(args.out) / 'train.py'))} --help)")
    return 0


def _add_compile(sub, common):
    p = sub.add_parser("compile", parents=[common], help="write the training artifacts",
                       description="Compile FILE with a recipe into DIR: IR dumps, Triton kernels, model.py, "
                                   "train.py and manifest.json.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--recipe", default="sdt", help="e.g. sml+tet or 'sml(n=3)+tet(lam=0.001)' (default: sdt)")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="output folder; an earlier build folder there is replaced, anything else is refused")
    p.add_argument("--force", action="store_true", help="also replace a run or deploy folder at DIR (deletes it)")
    p.add_argument("--backend", choices=("auto", "triton", "cpu", "torch"), default="auto",
                   help="LIF kernels: auto = Triton on CUDA and the generated C kernel on the CPU (the PyTorch "
                        "path where no C compiler exists); cpu, triton or torch force one (default: auto)")
    p.add_argument("--no-fuse", action="store_true", help="keep BN and LIF as separate ops")
    p.add_argument("--memory", metavar="POLICY",
                   help="what the model keeps for backward (docs/memory.md): store (as without the option), pack "
                        "(spikes as bits), recompute or recompute(max_macs=N) (also runs cheap layers again)")
    p.add_argument("--loop", choices=("trainer", "inline"), default="trainer",
                   help="train.py calls snnc's trainer (checkpoints, resume, torchrun), or 'inline': its training "
                        "loop spelled out in the file, to read and edit (docs/loop.md) (default: trainer)")
    add_set_option(p)
    p.set_defaults(func=cmd_compile)


def run_train_script(build_dir: str | Path, argv: list[str]) -> int:
    """Runs BUILD_DIR/train.py in this process, exactly as `python BUILD_DIR/train.py ARGV` would."""
    script = Path(build_dir) / "train.py"
    if not script.is_file():
        raise SnncError(f"{build_dir} has no train.py", hint="create it with snnc compile FILE --recipe R -o DIR")
    saved = sys.argv
    sys.argv = [str(script)] + list(argv)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved
    return 0


TRAIN_USAGE = """usage: snnc train DIR [train.py options]

Runs DIR/train.py (written by snnc compile) with the options that follow:
`snnc train DIR --epochs 5` is `python DIR/train.py --epochs 5`.
`snnc train DIR --help` shows the options of that folder's train.py.
The options every train.py takes, with their defaults:
"""


def _generic_train_help() -> str:
    from snnc.runtime.options import TrainSpec, make_parser

    spec = TrainSpec(network="NETWORK", recipe="RECIPE", slug="RECIPE", T=4, input_kind="image", input_dims=(1,),
                     classes=10, lif_layers=[])
    help_text = make_parser(spec).format_help()
    return TRAIN_USAGE + help_text[help_text.index("\noptions:"):] if "\noptions:" in help_text else help_text


def cmd_train(args) -> int:
    if args.dir is None or args.train_help:
        print(_generic_train_help(), end="")
        return 0
    return run_train_script(args.dir, args.train_args)


def _add_train(sub, common):
    p = sub.add_parser("train", parents=[common], help="run a compiled folder's train.py",
                       description="Run DIR/train.py with the remaining arguments: `snnc train DIR --epochs 5` is "
                                   "`python DIR/train.py --epochs 5`. See `snnc train DIR --help`.",
                       add_help=False)
    p.add_argument("-h", "--help", action="store_true", dest="train_help", help="show this help")
    p.add_argument("dir", metavar="DIR", nargs="?", help="a folder written by snnc compile")
    p.add_argument("train_args", nargs="...", help="options for train.py (e.g. --data digits --epochs 5)")
    p.set_defaults(func=cmd_train)


def _free_folder(base: Path) -> Path:
    if not base.exists():
        return base
    i = 2
    while Path(f"{base}-{i}").exists():
        i += 1
    return Path(f"{base}-{i}")


# `snnc run` options passed on to train.py when given; train.py's own defaults apply otherwise
# (snnc/runtime/options.py), so `snnc run` and `snnc train DIR` train alike.
RUN_TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "seed")


def cmd_run(args) -> int:
    from snnc.compiler import write_compiled
    from snnc.outputs import check_run_folder
    from snnc.pipeline import compile_source

    compiled = compile_source(args.file, overrides(args), recipe=args.recipe, memory=args.memory)
    build = Path(args.build_dir or Path("build") / f"{compiled.graph.network}-{compiled.recipe.slug()}")
    run_dir = Path(args.out) if args.out else _free_folder(Path("runs") / f"{compiled.graph.network}-"
                                                                           f"{compiled.recipe.slug()}")
    _check_run_paths(build, run_dir, args.extra)
    if check_run_folder(run_dir) == "run" and not {"--resume", "--force"} & set(args.extra):
        raise SnncError(f"{run_dir} already holds a run", hint="choose another --out, or pass -- --force to start "
                                                               "it over (-- --resume to continue it)")
    if "time_stages" in compiled.graph.attrs and args.epochs is not None:
        raise SnncError("--epochs conflicts with the tit schedule in the recipe",
                        hint="set the epochs of each stage in tit(stages=[(T, epochs), ...])")
    write_compiled(compiled, build, overrides(args))
    print(f"[1/3] compiled {compiled.graph.network} with {compiled.recipe.canonical()} into {build}/")
    train_argv = ["--data", args.data, "--out", str(run_dir)]
    for name in RUN_TRAIN_OPTIONS:
        if getattr(args, name) is not None:
            train_argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    train_argv += args.extra
    print(f"[2/3] training: python {build}/train.py {' '.join(train_argv)}")
    code = run_train_script(build, train_argv)
    if code != 0:
        return code
    return export_after_run(run_dir, args)


def _check_run_paths(build: Path, run_dir: Path, extra: list[str]) -> None:
    """Refuse, before any work, what would make run's three steps disagree: an option after -- that
    run sets itself (train.py would take the last one, the export would read the other), or a
    build folder and run folder that are one, or one inside the other."""
    own = ("out", "data", *RUN_TRAIN_OPTIONS)
    for word in extra:
        name = word[2:].split("=", 1)[0].replace("-", "_") if word.startswith("--") else None
        if name in own:
            raise SnncError(f"{word.split('=', 1)[0]} after -- would override snnc run's own",
                            hint=f"give it before --: snnc run FILE {word.split('=', 1)[0]} ...")
    a, b = build.resolve(), run_dir.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise SnncError(f"--build-dir {build} and --out {run_dir} overlap; the build and the run need folders "
                        f"of their own", hint="choose two separate folders (by default build/... and runs/...)")


def export_after_run(run_dir: Path, args) -> int:
    from snnc.export import export_run

    deploy = run_dir / "deploy"
    check = export_run(run_dir, deploy, check_data=args.data)["check"]
    print(f"[3/3] exported {deploy}/ (model.py imports only torch): deployed test accuracy "
          f"{100 * check['test_acc']:.2f}%, trained {100 * check['trained_test_acc']:.2f}%; predictions agree on "
          f"{100 * check['agreement']:.2f}%, tie rate {check['tie_rate']:.1e} ({check['differing']} of "
          f"{check['spikes']} spikes flip at the threshold after BN folding)")
    return 0


def _add_run(sub, common):
    from snnc.runtime.options import DEFAULTS

    p = sub.add_parser("run", parents=[common], help="compile, train and export in one go",
                       description="Compile FILE with a recipe, train it briefly and export the deployable model. "
                                   "Options after -- go to train.py: snnc run FILE -- --lr 0.01")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--recipe", default="sdt", help="(default: sdt)")
    p.add_argument("--data", default="digits", help="(default: digits, bundled with scikit-learn)")
    p.add_argument("--epochs", type=int, help=f"(default: train.py's, {DEFAULTS['epochs']}; a tit recipe sets its own)")
    p.add_argument("--batch-size", type=int, help=f"(default: train.py's, {DEFAULTS['batch_size']})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default: train.py's, {DEFAULTS['lr']:g} with "
                                            f"{DEFAULTS['optimizer']})")
    p.add_argument("--seed", type=int, help=f"(default: train.py's, {DEFAULTS['seed']})")
    p.add_argument("--build-dir", metavar="DIR", help="where to compile (default: build/NETWORK-RECIPE)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default: a new runs/NETWORK-RECIPE[-N])")
    p.add_argument("--memory", metavar="POLICY", help="store, pack or recompute, as for snnc compile (docs/memory.md)")
    add_set_option(p)
    p.set_defaults(func=cmd_run)


REGISTRARS = [_add_recipes, _add_compile, _add_train, _add_run]
