"""A memory policy is a build option: `snnc compile --memory` records it, train.py trains to the same
weights as without it, and `snnc export` writes the same deployed model."""

from __future__ import annotations

import json

from clirun import ROOT

from snnc.cli.build_commands import run_train_script
from snnc.cli.main import main
from snnc.export import export_run


def _train_and_export(tmp, policy: str | None):
    build, run, deploy = tmp / f"build-{policy}", tmp / f"run-{policy}", tmp / f"deploy-{policy}"
    argv = ["compile", str(ROOT / "models" / "digits.snn"), "--recipe", "sml+tet", "-o", str(build), "--set", "width=4"]
    assert main(argv + (["--memory", policy] if policy else [])) == 0
    assert run_train_script(build, ["--data", "digits", "--epochs", "1", "--batch-size", "128", "--quiet",
                                    "--out", str(run)]) == 0
    export_run(run, deploy)
    return build, run, deploy


def test_pack_and_recompute_train_and_export_exactly_as_store(tmp_path):
    base_build, base_run, base_deploy = _train_and_export(tmp_path, None)
    assert json.loads((base_build / "manifest.json").read_text())["memory"] == "store"
    assert "plan-memory" not in (base_build / "manifest.json").read_text()
    for policy, spelled in (("pack", "pack"), ("recompute", "recompute(max_macs=576)")):
        build, run, deploy = _train_and_export(tmp_path, policy)
        manifest = json.loads((build / "manifest.json").read_text())
        assert manifest["memory"] == spelled and manifest["passes"][-1] == "plan-memory"
        assert "M.packed_spikes()" in (build / "model.py").read_text()
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        base = [json.loads(line) for line in (base_run / "metrics.jsonl").read_text().splitlines()]
        drop = ("seconds", "samples_per_s", "time", "elapsed")
        assert [{k: v for k, v in m.items() if k not in drop} for m in metrics] == \
               [{k: v for k, v in m.items() if k not in drop} for m in base]
        for name in ("weights.safetensors", "model.py", "model.ir"):
            assert (deploy / name).read_bytes() == (base_deploy / name).read_bytes(), (policy, name)
