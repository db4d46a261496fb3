"""`snnc import FILE.py:Name`: write the .snn of an existing PyTorch network (and its weights)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from snnc.diagnostics import SnncError


def _dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(part) for part in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) not in (1, 3) or min(dims, default=0) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W or F (positive integers), got '{text}'")
    return dims


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return Path(name)


def cmd_import(args) -> int:
    from snnc.importer import import_network
    from snnc.importer.trace import load_module
    from snnc.importer.weights import load_ann_weights, snn_state

    out = Path(args.out) if args.out else None
    weights_out = Path(args.weights_out) if args.weights_out else out.with_suffix(".safetensors") if out else None
    if args.weights and weights_out is None:
        raise SnncError("--weights needs -o OUT.snn or --weights-out PATH to write the checkpoint")
    for path in (out, weights_out if args.weights else None):
        if path is not None and path.is_dir():
            raise SnncError(f"{path} is a directory", None, "give a file name, e.g. -o nets/resnet18.snn")
    module, file, name = load_module(args.spec, args.kwargs)
    imported = import_network(module, args.input, name=args.name, neuron=args.neuron, surrogate=args.surrogate,
                              T=args.time_steps, source_file=file, source_name=name,
                              out_file=str(out) if out else f"{name}.snn")
    lines = []
    tensors = None
    if args.weights:
        load_ann_weights(imported, args.weights)
        tensors, report = snn_state(imported)
        lines += report.lines() + [f"wrote {weights_out}: train with  python DIR/train.py --init {weights_out}"]
    _write(imported.text if out else None, out, tensors, weights_out)
    if out is None:
        sys.stdout.write(imported.text)
    doc = imported.document
    blocks = ", ".join(b.name for b in doc.blocks) or "none"
    print(f"imported {name} from {file}: {len(imported.mapped.ops)} layers, blocks: {blocks}, "
          f"stages: {', '.join(s.name for s in doc.stages)}" + (f" -> {out}" if out else ""), file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    return 0


def _write(text: str | None, out: Path | None, tensors, weights_out: Path | None) -> None:
    """Writes every file under a temporary name beside it first, then renames: never a half-written output."""
    from safetensors.torch import save_file

    writers = []
    if tensors is not None:
        writers.append((weights_out, lambda tmp: save_file(tensors, str(tmp))))
    if text is not None:
        writers.append((out, lambda tmp: tmp.write_text(text, encoding="utf-8")))
    done = []
    try:
        for path, write in writers:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_beside(path)
            done.append((tmp, path))
            write(tmp)
        for tmp, path in done:
            os.replace(tmp, path)
    finally:
        for tmp, _ in done:
            tmp.unlink(missing_ok=True)


def _add_import(sub, common):
    p = sub.add_parser("import", parents=[common], help="write the .snn of a PyTorch network (torch.fx)",
                       description="Trace FILE.py:Name (an nn.Module class, or a function returning one) with "
                                   "torch.fx and write the network in the .snn language: ReLUs become spiking "
                                   "neurons, repeated submodules become blocks. See docs/import.md.")
    p.add_argument("spec", metavar="FILE.py:Name", help="the file and the class or function that builds the network")
    p.add_argument("--input", required=True, type=_dims, metavar="C,H,W",
                   help="the input of one sample: C,H,W for images, or F for feature vectors")
    p.add_argument("--kwargs", metavar="JSON", help="keyword arguments for Name, e.g. '{\"num_classes\": 10}'")
    p.add_argument("-o", "--out", metavar="OUT.snn", help="the .snn file to write (default: standard output)")
    p.add_argument("--weights", metavar="STATE_DICT",
                   help="the ANN's trained state dict (.pt, .pth, .safetensors): write it as an initial checkpoint "
                        "for train.py --init")
    p.add_argument("--weights-out", metavar="PATH", help="where to write that checkpoint (default: OUT.safetensors)")
    p.add_argument("--neuron", default="lif(decay=0.5, vth=1.0, reset=hard)",
                   help="the neuron that replaces each activation (default: %(default)s)")
    p.add_argument("--surrogate", default="triangle(beta=1.0)", help="the surrogate gradient (default: %(default)s)")
    p.add_argument("--name", help="the network's name (default: the class name in snake case)")
    p.add_argument("-T", "--time-steps", type=_positive, default=4, help="time steps T (default: %(default)s)")
    p.set_defaults(func=cmd_import)


REGISTRARS = [_add_import]
