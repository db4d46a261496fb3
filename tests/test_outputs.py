"""snnc/outputs.py: what a folder is, which folders a command may replace, staging and publication."""

import json
import os
import signal

import pytest

from snnc.diagnostics import SnncError
from snnc.outputs import Terminated, check_destination, check_run_folder, folder_kind, staged_folder


def _folder(path, files: dict):
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


MANIFEST = json.dumps({"snnc_version": "0.1.0", "network": "n"})
RUN_MANIFEST = json.dumps({"kind": "run"})


@pytest.mark.parametrize("files, kind", [
    ({}, "empty"),
    ({"manifest.json": json.dumps({"kind": "build"}), "model.py": ""}, "build"),
    ({"manifest.json": MANIFEST, "train.py": "", "model.py": ""}, "build"),          # before "kind" existed
    ({"manifest.json": MANIFEST, "weights.safetensors": ""}, "deploy"),
    ({"manifest.json": json.dumps({"kind": "run"}), "checkpoint.pt": "", "metrics.jsonl": ""}, "run"),
    ({"manifest.json": MANIFEST, "checkpoint.pt": ""}, "run"),                       # before "kind" existed
    ({"manifest.json": json.dumps({"kind": "build"}), "checkpoint.pt": ""}, None),   # results in a build: not replaced
    ({"metrics.jsonl": "", "notes.txt": ""}, None),                                  # another tool's run
    ({"checkpoint.pt": ""}, None),
    ({"summary.md": "", "data.json": json.dumps({"kind": "report"})}, "report"),
    ({"manifest.json": "{}", "notes.txt": "mine"}, None),                           # someone else's manifest
    ({"manifest.json": "not json"}, None),
    ({"weights.safetensors": ""}, None),
])
def test_folder_kind(tmp_path, files, kind):
    assert folder_kind(_folder(tmp_path / "f", files)) == kind


def test_a_command_replaces_only_its_own_kind(tmp_path):
    build = _folder(tmp_path / "b", {"manifest.json": json.dumps({"kind": "build"})})
    run = _folder(tmp_path / "r", {"manifest.json": RUN_MANIFEST, "checkpoint.pt": "", "metrics.jsonl": ""})
    mine = _folder(tmp_path / "m", {"notes.txt": "keep"})
    assert check_destination(build, "build") == build
    assert check_destination(tmp_path / "new" / "deeper", "build") == tmp_path / "new" / "deeper"
    with pytest.raises(SnncError, match="holds a training run.*replaces only that") as err:
        check_destination(run, "build")
    assert "--force" in err.value.hint
    assert check_destination(run, "build", force=True) == run
    for force in (False, True):
        with pytest.raises(SnncError, match="holds files that snnc did not write"):
            check_destination(mine, "deploy", force=force)


def test_a_folder_of_its_kind_holding_other_files_is_not_replaced(tmp_path):
    build = _folder(tmp_path / "b", {"manifest.json": json.dumps({"kind": "build"}), "model.py": "",
                                     ".model.ir.tmp-12": "", "thesis.tex": "mine"})
    (build / "__pycache__").mkdir()
    for force in (False, True):
        with pytest.raises(SnncError, match=r"holds a build folder .* and also thesis.tex, which snnc did not write"):
            check_destination(build, "build", force=force)
    (build / "thesis.tex").unlink()
    assert check_destination(build, "build") == build  # its own files, caches and temporaries only
    report = _folder(tmp_path / "r", {"data.json": json.dumps({"kind": "report"}), "summary.md": "", "loss.png": ""})
    assert check_destination(report, "report") == report
    (report / ".git").mkdir()
    with pytest.raises(SnncError, match="also .git"):
        check_destination(report, "report")


def test_a_run_that_is_training_is_not_replaced_even_with_force(tmp_path):
    from snnc.outputs import lock_folder

    run = _folder(tmp_path / "run", {"manifest.json": RUN_MANIFEST, "checkpoint.pt": ""})
    fd = lock_folder(run)  # as its training process holds it
    try:
        with pytest.raises(SnncError, match="is training now"):
            check_destination(run, "build", force=True)
    finally:
        os.close(fd)
    assert check_destination(run, "build", force=True) == run


def test_bad_locations_are_diagnostics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    cases = {"file": "is a file", "file/sub": "is a file, so no folder", "dangling": "which does not exist",
             ".": "current folder", "..": "current folder"}
    for out, message in cases.items():
        with pytest.raises(SnncError, match=message):
            check_destination(out, "build")
    run = _folder(tmp_path / "run", {"manifest.json": RUN_MANIFEST, "checkpoint.pt": ""})
    for out in (run, run / "deploy" / ".."):
        with pytest.raises(SnncError, match="which this command reads"):
            check_destination(out, "deploy", inside=(run,))
    assert not (run / "deploy").exists()


def test_a_link_to_a_folder_is_written_through(tmp_path):
    target = _folder(tmp_path / "real", {"manifest.json": json.dumps({"kind": "build"})})
    os.symlink(target, tmp_path / "link")
    out = check_destination(tmp_path / "link", "build")
    with staged_folder(out) as tmp:
        (tmp / "manifest.json").write_text(json.dumps({"kind": "build", "new": True}))
    assert (tmp_path / "link").is_symlink() and json.loads((target / "manifest.json").read_text())["new"]


def test_run_folders(tmp_path):
    assert check_run_folder(tmp_path / "new") == "new"
    assert check_run_folder(_folder(tmp_path / "e", {})) == "empty"
    assert check_run_folder(_folder(tmp_path / "r", {"manifest.json": RUN_MANIFEST, "metrics.jsonl": ""})) == "run"
    for files in ({"metrics.jsonl.txt": ""}, {"metrics.jsonl": "{}", "notes.txt": "mine"}):
        with pytest.raises(SnncError, match="holds files that training did not write"):
            check_run_folder(_folder(tmp_path / f"x{len(files)}", files))
    with pytest.raises(SnncError, match="holds a build folder"):
        check_run_folder(_folder(tmp_path / "b", {"manifest.json": json.dumps({"kind": "build"})}))
    (tmp_path / "f").write_text("")
    with pytest.raises(SnncError, match="is a file"):
        check_run_folder(tmp_path / "f")


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt(), "sigterm"])
def test_a_failed_stage_leaves_the_old_folder_and_no_litter(tmp_path, failure):
    out = _folder(tmp_path / "a" / "out", {"manifest.json": json.dumps({"kind": "build"}), "x": "old"})
    before = _snapshot(out)
    with pytest.raises(RuntimeError if isinstance(failure, RuntimeError) else KeyboardInterrupt):
        with staged_folder(out) as tmp:
            (tmp / "x").write_text("new")
            if failure == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise failure
    assert _snapshot(out) == before
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["out"]


def test_sigterm_raises_terminated_and_the_handler_is_restored(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with staged_folder(tmp_path / "deep" / "out"):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == previous
    assert not (tmp_path / "deep").exists()  # parents made for the output are removed too


def test_published_folders_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with staged_folder(tmp_path / "out") as tmp:
            (tmp / "a").write_text("x")
            os.chmod(tmp / "a", 0o600)   # as safetensors writes its files
            (tmp / "sub").mkdir()
    finally:
        os.umask(old)
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert (mode(tmp_path / "out"), mode(tmp_path / "out" / "a"), mode(tmp_path / "out" / "sub")) == \
        (0o750, 0o640, 0o750)
