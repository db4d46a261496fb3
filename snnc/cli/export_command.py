"""`snnc export`: the deployable inference folder of a trained run."""

from __future__ import annotations

import tempfile
from pathlib import Path

from snnc.diagnostics import SnncError


def evaluate_export(run_dir: Path, deploy_dir: Path, data_spec: str, checkpoint=None) -> dict:
    """Test accuracy of the deployed model, agreement with the training model and the tie rate."""
    from snnc.export import load_run
    from snnc.export_check import compare, deployed_model, training_model
    from snnc.runtime import data as datasets

    train, manifest, state = load_run(run_dir, checkpoint)
    if manifest["input"]["kind"] == "events":
        raise SnncError("checking event models needs frame data; run the comparison in Python instead")
    dims = tuple(manifest["input"]["dims"])
    data = datasets.reshape_synthetic(datasets.load(data_spec), dims, manifest["classes"])
    if data.sample_shape != dims:
        raise SnncError(f"--check-data {data_spec} gives samples of shape {list(data.sample_shape)}, but "
                        f"{manifest['network']} expects {list(dims)}")
    deployed, module = deployed_model(deploy_dir)
    with tempfile.TemporaryDirectory() as tmp:
        train_model, train_modules = training_model(train, state["model"], Path(tmp))
        result = compare(train_model, train_modules, deployed, module.NODE_MODULES, data.test_x)
    preds = module.predict(deployed, data.test_x)
    return {"test_acc": float((preds == data.test_y).float().mean()), "agreement": result.prediction_agreement,
            "tie_rate": result.tie_rate, "spikes": result.spikes, "differing": result.differing,
            "cascaded": result.cascaded,
            "trained_test_acc": float((state.get("metrics") or {}).get("test_acc", float("nan")))}


def cmd_export(args) -> int:
    from snnc.export import export_run

    nir_options = {"dt": args.nir_dt, "sum_pool": args.nir_sum_pool, "lossy": args.lossy}
    info = export_run(args.run_dir, args.out, args.checkpoint, args.dtype, args.nir, nir_options)
    print(f"exported {info['network']} ({info['recipe']}) from epoch {info['checkpoint_epoch']} to {args.out}/: "
          f"model.py, weights.safetensors, model.ir, manifest.json{', model.nir' if args.nir else ''}")
    for warning in (info.get("nir") or {}).get("warnings", []):
        print(f"warning: {warning}")
    if args.check_data:
        r = evaluate_export(Path(args.run_dir), Path(args.out), args.check_data, args.checkpoint)
        print(f"check on {args.check_data}: deployed test accuracy {100 * r['test_acc']:.2f}%, "
              f"predictions agree with the training model on {100 * r['agreement']:.2f}%, "
              f"tie rate {r['tie_rate']:.2e} ({r['differing']} of {r['spikes']} spikes flip at the threshold; "
              f"{r['cascaded']} differ downstream when both run freely)")
    return 0


def _add_export(sub, common):
    p = sub.add_parser("export", parents=[common], help="write the deployable inference model",
                       description="Run the inference passes (strip-aux, fold-bn, bake-decoding, dce) on a trained "
                                   "run and write a standalone folder: model.py (imports only torch), "
                                   "weights.safetensors, model.ir, manifest.json and optionally model.nir.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("-o", "--out", required=True, metavar="DEPLOY_DIR")
    p.add_argument("--checkpoint", metavar="PATH", help="(default: RUN_DIR/checkpoint.pt)")
    p.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32", help="weights dtype (default: fp32)")
    p.add_argument("--nir", action="store_true", help="also write model.nir (HDF5)")
    p.add_argument("--nir-dt", type=float, default=1.0,
                   help="time step the NIR parameters assume (default: 1; snnTorch's importer assumes 1e-4)")
    p.add_argument("--nir-sum-pool", action="store_true", help="average pooling as SumPool2d + Scale")
    p.add_argument("--lossy", action="store_true", help="drop what NIR cannot express, with a warning")
    p.add_argument("--check-data", metavar="SPEC",
                   help="compare the deployed and training models on this data's test split (e.g. digits)")
    p.set_defaults(func=cmd_export)


REGISTRARS = [_add_export]
