"""Where commands write: what a folder already holds, whether a command may replace it, and atomic publication.

snnc writes three kinds of folders, each recorded as `"kind"` in its manifest.json:
`build` (snnc compile), `run` (train.py --out) and `deploy` (snnc export); `snnc report`
writes a `report` folder (its data.json). A command replaces only a folder of its own
kind. Replacing another snnc folder (compile -o onto a run) needs --force; a folder
holding anything else, or an snnc folder holding files snnc did not write there (a
user's notes in a build folder), is never replaced.

A folder is written under a hidden temporary name next to its destination and renamed
into place once complete, so the destination holds the old folder or the new one, never
a mix. SIGTERM and Ctrl-C while staging remove the temporary folder.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from snnc.diagnostics import SnncError

KINDS = ("build", "run", "deploy", "report")
WHAT = {"build": "a build folder (snnc compile)", "run": "a training run (train.py --out)",
        "deploy": "a deployed model (snnc export)", "report": "a report (snnc report)"}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every `finally` clean-up runs."""


def _json_kind(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("kind") in KINDS:
        return data["kind"]
    return "legacy" if "snnc_version" in data else None


def folder_kind(path: Path) -> str | None:
    """'build', 'run', 'deploy' or 'report' for snnc's folders, 'empty', or None for anything else.

    A folder is snnc's by its manifest (a report by its data.json), never by file names alone:
    checkpoint.pt and metrics.jsonl are common names in other tools' folders too."""
    entries = {p.name for p in path.iterdir()}
    if not entries:
        return "empty"
    results = bool(entries & {"checkpoint.pt", "metrics.jsonl"})
    kind = _json_kind(path / "manifest.json") if "manifest.json" in entries else None
    if kind in KINDS:
        # Training results under another kind's manifest are nobody's to replace.
        return kind if kind == "run" or not results else None
    if kind == "legacy":  # written before manifests recorded their kind
        if results:
            return "run"
        if {"train.py", "model.py"} <= entries:
            return "build"
        if "weights.safetensors" in entries:
            return "deploy"
    if {"summary.md", "data.json"} <= entries and _json_kind(path / "data.json") == "report":
        return "report"
    return None


# The top-level entries of each kind of folder as snnc writes it, besides Python's __pycache__ and
# the hidden temporaries of atomic writes (.NAME.tmp-PID).
OWN_ENTRIES = {
    "build": {"ir", "kernels", "manifest.json", "model.ir", "model.py", "train.py", "source.snn"},
    "run": {"checkpoint.pt", "metrics.jsonl", "manifest.json", "model.ir", "tensorboard", "deploy", "report"},
    "deploy": {"manifest.json", "model.ir", "model.py", "weights.safetensors", "model.nir"},
    "report": {"data.json", "summary.md"},
}


def foreign_entries(path: Path, kind: str) -> list[str]:
    """The entries of `path`, a `kind` folder by its manifest, that snnc does not write there."""
    def own(name: str) -> bool:
        return (name in OWN_ENTRIES[kind] or name == "__pycache__" or fnmatch.fnmatch(name, ".*.tmp-*")
                or (kind == "report" and name.endswith(".png")))
    return sorted(p.name for p in path.iterdir() if not own(p.name))


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return parent
    return Path("/")


def _real_location(out: str | Path) -> Path:
    """The absolute, symlink-free path `out` names, once it can hold a folder."""
    given = str(out)
    path = Path(out)
    if path.is_symlink() and not Path(os.path.realpath(path)).exists():
        raise SnncError(f"{given} is a symbolic link to {os.path.realpath(path)}, which does not exist",
                        hint="remove the link, or point it at a folder")
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_dir():
        raise SnncError(f"{given} is a file, not a folder", hint="choose a folder name")
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise SnncError(f"{given}: {ancestor} is a file, so no folder can be made inside it",
                        hint="choose a folder whose parents are folders")
    if not os.access(path if path.exists() else ancestor, os.W_OK):
        raise SnncError(f"{given}: no permission to write in {path if path.exists() else ancestor}")
    return path


def check_destination(out: str | Path, kind: str, *, force: bool = False, inside: tuple[Path, ...] = ()) -> Path:
    """The real folder `out` names, once a new `kind` folder may replace what is there. Writes nothing.

    `inside`: folders that must not be replaced by the output (e.g. the run an export reads).
    """
    given = str(out)
    path = _real_location(out)
    here = Path.cwd().resolve()
    if path == here or path in here.parents:
        raise SnncError(f"{given} is the current folder or one of its parents; snnc will not replace it",
                        hint="name a new folder, e.g. -o build/NAME")
    for folder in inside:
        folder = Path(os.path.realpath(folder))
        if path == folder or path in folder.parents:
            raise SnncError(f"{given} is {folder} or a folder above it, which this command reads",
                            hint=f"write somewhere else, e.g. -o {folder / kind}")
    if path.exists():
        found = folder_kind(path)
        if found is None:
            raise SnncError(f"{given} exists and holds files that snnc did not write; snnc will not replace it",
                            hint="choose another folder, or empty this one")
        if found not in ("empty", kind) and not force:
            raise SnncError(f"{given} holds {WHAT[found]}; this command writes {WHAT[kind]} and replaces only that",
                            hint=f"choose another folder, or pass --force to delete the {found} folder and write here")
        if found == "run" and _busy(path):
            raise SnncError(f"{given} holds a training run that is training now (a process holds its lock)",
                            hint="wait for it to finish or stop it, or choose another folder")
        extra = foreign_entries(path, found) if found in KINDS else []
        if extra:  # replacing the folder would delete them with it
            shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            raise SnncError(f"{given} holds {WHAT[found]} and also {shown}, which snnc did not write; snnc will "
                            f"not replace it", hint="move those files elsewhere, or choose another folder")
    return path


def check_run_folder(out: str | Path) -> str:
    """'new', 'empty' or 'run' for a train.py --out folder; anything else is refused. Writes nothing."""
    path = _real_location(out)
    if not path.exists():
        return "new"
    found = folder_kind(path)
    if found in ("empty", "run"):
        return found
    if found is None:
        raise SnncError(f"--out {out} exists and holds files that training did not write; they would be mixed "
                        f"with the run's", hint="choose a new or empty folder for --out")
    raise SnncError(f"--out {out} holds {WHAT[found]}, not a training run", hint="choose a new or empty folder for --out")


def lock_folder(path: Path) -> int | None:
    """An exclusive lock on the folder `path` (made if missing), held until the returned descriptor
    is closed or the process ends, however it ends; None if another process holds it. A file
    system without locks (some network mounts) gives the descriptor unlocked rather than refusing."""
    import fcntl  # POSIX only, as the rest of training's signal handling

    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        pass
    return fd


def _busy(run: Path) -> bool:
    """Whether a training holds the run folder's lock (lock_folder) now."""
    fd = lock_folder(run)
    if fd is None:
        return True
    os.close(fd)
    return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _follow_umask(folder: Path) -> None:
    """Modes as a plain mkdir/open would give: mkdtemp makes 0700, some writers (safetensors) 0600."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


@contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM raises `Terminated` (a KeyboardInterrupt) so clean-ups run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def staged_folder(out: Path):
    """Yields an empty hidden folder next to `out`; when the block succeeds it becomes `out`.

    On any failure (an exception, Ctrl-C, SIGTERM) the hidden folder and any parent folders
    made for it are removed, and `out` is as it was.
    """
    made = [p for p in reversed(out.parents) if not p.exists()]
    with terminate_as_interrupt():
        tmp = None
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
            yield tmp
            _follow_umask(tmp)
            _publish(tmp, out)
        except BaseException:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            for parent in reversed(made):
                try:
                    parent.rmdir()
                except OSError:
                    break
            raise


def _publish(tmp: Path, out: Path) -> None:
    """Renames `tmp` to `out`, moving an existing `out` aside first and deleting it afterwards."""
    if not out.exists():
        tmp.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    old.rmdir()
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)
