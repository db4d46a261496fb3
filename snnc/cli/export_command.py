"""`snnc export`: the deployable inference folder of a trained run."""

from __future__ import annotations


def check_summary(check: dict) -> str:
    return (f"check on {check['data']}: deployed test accuracy {100 * check['test_acc']:.2f}% "
            f"(trained {100 * check['trained_test_acc']:.2f}%); predictions agree with the training model on "
            f"{100 * check['agreement']:.2f}% of {check['samples']} samples; tie rate {check['tie_rate']:.2e} "
            f"({check['differing']} of {check['spikes']} spikes flip at the threshold; {check['cascaded']} differ "
            f"downstream when both run freely)")


def cmd_export(args) -> int:
    from snnc.export import export_run

    nir_options = {"dt": args.nir_dt, "sum_pool": args.nir_sum_pool, "lossy": args.lossy}
    info = export_run(args.run_dir, args.out, args.checkpoint, args.dtype, args.nir, nir_options,
                      check_data=args.check_data, force=args.force)
    batch = info["checkpoint_batch"]
    where = f"epoch {info['checkpoint_epoch']}" + (f" and {batch} batches of epoch {info['checkpoint_epoch'] + 1}"
                                                   if batch else "")
    print(f"exported {info['network']} ({info['recipe']}) from {where} at T={info['T']} "
          f"to {args.out}/: model.py, weights.safetensors, model.ir, manifest.json{', model.nir' if args.nir else ''}")
    if batch:
        print(f"note: a mid-epoch checkpoint: its recorded metrics are those of epoch {info['checkpoint_epoch']}, "
              f"before these {batch} batches")
    for warning in (info.get("nir") or {}).get("warnings", []):
        print(f"warning: {warning}")
    if "check" in info:
        print(check_summary(info["check"]))
        if (info.get("nir") or {}).get("warnings"):
            print("note: the check ran model.py; model.nir differs from it where the warnings above say "
                  "and was not checked")
    return 0


def _add_export(sub, common):
    p = sub.add_parser("export", parents=[common], help="write the deployable inference model",
                       description="Run the inference passes (strip-aux, fold-bn, bake-decoding, dce) on a trained "
                                   "run and write a standalone folder: model.py (imports only torch), "
                                   "weights.safetensors, model.ir, manifest.json and optionally model.nir.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("-o", "--out", required=True, metavar="DEPLOY_DIR",
                   help="output folder; an earlier deploy folder there is replaced, anything else is refused")
    p.add_argument("--force", action="store_true", help="also replace a build or run folder at DEPLOY_DIR")
    p.add_argument("--checkpoint", metavar="PATH", help="(default: RUN_DIR/checkpoint.pt)")
    p.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32", help="weights dtype (default: fp32)")
    p.add_argument("--nir", action="store_true", help="also write model.nir (HDF5)")
    p.add_argument("--nir-dt", type=float, default=1.0,
                   help="time step the NIR parameters assume (default: 1; snnTorch's importer assumes 1e-4)")
    p.add_argument("--nir-sum-pool", action="store_true", help="average pooling as SumPool2d + Scale")
    p.add_argument("--lossy", action="store_true", help="drop what NIR cannot express, with a warning")
    p.add_argument("--check-data", metavar="SPEC",
                   help="compare the deployed and training models on this data's test split (e.g. digits) "
                        "before the folder is published; the figures go into its manifest")
    p.set_defaults(func=cmd_export)


REGISTRARS = [_add_export]
