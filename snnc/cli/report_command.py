"""`snnc report RUN_DIR`: plots and a Markdown summary of a training run (snnc/report.py)."""

from __future__ import annotations

from pathlib import Path


def cmd_report(args) -> int:
    from snnc.report import write_report

    folder, data = write_report(Path(args.run_dir), args.out, args.force)
    e = data.get("energy")
    print(f"report of {args.run_dir}: {len(data['epochs'])} epochs, final test accuracy "
          f"{100 * (data['accuracy']['test_acc'][-1] or 0):.2f}%"
          + (f", {e['total_pj'] / 1e6:.4f} uJ per sample" if e else ""))
    print(f"wrote {folder}/summary.md, data.json and the plots")
    return 0


def _add_report(sub, common):
    p = sub.add_parser("report", parents=[common], help="plots and a summary of a training run",
                       description="Plot the loss, accuracy, firing rates, CPNG's beta and chi and TWO's weights "
                                   "of RUN_DIR over epochs, estimate the energy per sample from synaptic "
                                   "operations, and write a Markdown summary.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run folder (train.py --out)")
    p.add_argument("-o", "--out", metavar="DIR", default=None,
                   help="where to write (default: RUN_DIR/report); an earlier report there is replaced")
    p.add_argument("--force", action="store_true", help="also replace another snnc folder at DIR")
    p.set_defaults(func=cmd_report)


REGISTRARS = [_add_report]
