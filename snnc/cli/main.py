"""The `snnc` command line: parses arguments, dispatches, and turns errors into exit codes.

Exit codes: 0 success, 1 user error (a diagnostic, never a traceback unless
--debug), 2 usage error, 130 interrupted, 143 terminated (SIGTERM), 70 internal error.
"""

from __future__ import annotations

import argparse
import sys

from snnc import __version__
from snnc.diagnostics import SnncError, render

EXIT_USER, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 70, 130, 143


def parse_set(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got '{text}' (e.g. --set T=6)")
    return name.strip(), value.strip()


def overrides(args) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in getattr(args, "set", None) or []:
        out[name] = value
    return out


def common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    return common


def add_set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", metavar="NAME=VALUE", type=parse_set, action="append",
                   help="override a network parameter, e.g. --set T=6 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    from snnc.cli import commands

    common = common_parser()
    parser = argparse.ArgumentParser(
        prog="snnc", parents=[common],
        description="snnc: a compiler for training spiking neural networks.",
        epilog="Run 'snnc COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"snnc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in commands.REGISTRARS:
        register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv and argv[:1] != ["train"]:  # `snnc run FILE ... -- --lr 0.01` passes the rest to train.py
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    args.extra = extra
    try:
        return int(args.func(args) or 0)
    except SnncError as err:
        if args.debug:
            raise
        print(render(err), file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt as exc:
        from snnc.outputs import Terminated

        print("terminated; no output folder was changed" if isinstance(exc, Terminated) else "interrupted", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug in snnc, not in the user's input
        if args.debug:
            raise
        print(f"snnc: internal error: {exc.__class__.__name__}: {exc}\n"
              f"run again with --debug for a traceback, and please report it", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
