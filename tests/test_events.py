"""Neuromorphic datasets (nmnist, dvsgesture, cifar10dvs) from tiny recordings in their native formats."""

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import eventfiles
from snnc.diagnostics import SnncError, render
from snnc.runtime import data, events

pytest.importorskip("tonic")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "frames"


def _events(seed: int, w: int, h: int, n: int = 40, span: int = 90_000):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, span, n))
    ts[0], ts[-1] = 0, span
    return [(int(rng.integers(0, w)), int(rng.integers(0, h)), int(t), int(rng.integers(0, 2))) for t in ts]


def make_nmnist(root: Path, per_class=(2, 1), digits=(0, 1, 2)):
    for split, n in zip(("Train", "Test"), per_class):
        for d in digits:
            for i in range(n):
                eventfiles.nmnist_bin(root / split / str(d) / f"{i:05d}.bin", _events(100 * d + i, 34, 34))
    return root


def make_gesture(root: Path, labels=(0, 3, 10)):
    for split, users in (("ibmGestureTrain", ("user01_fluorescent", "user02_led")),
                         ("ibmGestureTest", ("user24_natural",))):
        for u, user in enumerate(users):
            for label in labels:
                eventfiles.gesture_npy(root / split / user / f"{label}.npy", _events(label + 20 * u, 128, 128))
    return root


def make_cifar10dvs(root: Path, per_class=2, writer=eventfiles.aedat4, suffix=".aedat4"):
    for c, name in enumerate(events.CIFAR10_CLASSES):
        for i in range(per_class):
            writer(root / name / f"cifar10_{name}_{i}{suffix}", _events(c * 10 + i, 128, 128))
    return root


def reference_frames(evs, T, sensor_w, sensor_h, x_scale=1.0, y_scale=1.0, out_w=None, out_h=None):
    """Counts per (bin, p, y, x): bins of width (t_last - t_first) // T from the first event (tonic's
    n_time_bins slicing; events at or past T widths are left out), coordinates scaled and floored."""
    out = np.zeros((T, 2, out_h or sensor_h, out_w or sensor_w), np.float32)
    t0, t1 = evs[0][2], evs[-1][2]
    width = (t1 - t0) // T
    for x, y, t, p in evs:
        b = (t - t0) // width
        if b < T:
            out[b, p, int(y * y_scale), int(x * x_scale)] += 1
    return torch.from_numpy(out)


def test_nmnist_frames_at_native_size_match_a_reference(tmp_path):
    root = make_nmnist(tmp_path / "nm")
    d = data.load(f"nmnist:{root}", data.Target("events", (2, 34, 34), 3, 10))
    assert d.classes == 10 and d.sample_shape == (3, 2, 34, 34)
    assert d.train_y.tolist() == [0, 0, 1, 1, 2, 2] and d.test_y.tolist() == [0, 1, 2]
    assert torch.equal(d.train_x[2], reference_frames(_events(100, 34, 34), 3, 34, 34))   # Train/1/00000.bin
    assert torch.equal(d.test_x[2], reference_frames(_events(200, 34, 34), 3, 34, 34))    # Test/2/00000.bin


def test_nmnist_is_enlarged_by_repeating_pixels_and_polarities_can_be_added(tmp_path):
    root = make_nmnist(tmp_path / "NMNIST_parent" / "NMNIST")
    big = data.load(f"nmnist:{root.parent}", data.Target("events", (2, 48, 48), 2, 10))  # the folder above works
    native = reference_frames(_events(0, 34, 34), 2, 34, 34)
    idx = torch.arange(48) * 34 // 48                       # nearest: output pixel i shows sensor pixel 34 i / 48
    assert torch.equal(big.train_x[0], native[:, :, idx][:, :, :, idx])
    one = data.load(f"nmnist:{root}", data.Target("events", (1, 34, 34), 2, 10))
    assert torch.equal(one.train_x[0], native.sum(1, keepdim=True))


def test_dvsgesture_is_summed_into_coarser_pixels(tmp_path):
    root = make_gesture(tmp_path / "g")
    d = data.load(f"dvsgesture:{root}", data.Target("events", (2, 48, 48), 4, 11))
    assert d.classes == 11 and d.sample_shape == (4, 2, 48, 48)
    assert d.train_y.tolist() == [0, 3, 10, 0, 3, 10] and d.test_y.tolist() == [0, 3, 10]
    evs = [(x, y, t // 1000 * 1000, p) for x, y, t, p in _events(3, 128, 128)]  # the .npy keeps milliseconds
    expected = reference_frames(evs, 4, 128, 128, 48 / 128, 48 / 128, 48, 48)
    assert torch.equal(d.train_x[1], expected) and float(expected.sum()) > 30


@pytest.mark.parametrize("writer,suffix", [(eventfiles.aedat4, ".aedat4"), (eventfiles.aedat2, ".aedat")])
def test_cifar10dvs_reads_each_class_and_holds_out_a_seeded_share(tmp_path, writer, suffix):
    root = make_cifar10dvs(tmp_path / "c", per_class=3, writer=writer, suffix=suffix)
    target = data.Target("events", (2, 128, 128), 2, 10)
    d = data.load(f"cifar10dvs:{root}", target)
    assert d.classes == 10 and len(d.test_y) == 10 and len(d.train_y) == 20
    assert torch.bincount(d.test_y, minlength=10).tolist() == [1] * 10
    # every framed test sample is the reference framing of one of its class's recordings
    for x, y in zip(d.test_x, d.test_y.tolist()):
        candidates = [reference_frames(_events(y * 10 + i, 128, 128), 2, 128, 128) for i in range(3)]
        assert any(torch.equal(x, c) for c in candidates)
    again = data.load(f"cifar10dvs:{root}", target)
    assert torch.equal(again.test_x, d.test_x)                 # the split is fixed


def test_frames_are_cached_by_files_and_binning(tmp_path, cache, monkeypatch):
    root = make_nmnist(tmp_path / "nm")
    target = data.Target("events", (2, 34, 34), 3, 10)
    first = data.load(f"nmnist:{root}", target)
    entries = list(cache.glob("nmnist-*.safetensors"))
    assert len(entries) == 1

    def refuse(path, tonic):
        raise AssertionError(f"read {path} again")

    monkeypatch.setitem(events.READERS, "nmnist", refuse)
    cached = data.load(f"nmnist:{root}", target)
    assert torch.equal(cached.train_x, first.train_x) and torch.equal(cached.test_y, first.test_y)
    with pytest.raises(SnncError, match="read .* again"):     # another T is another binning: framed again
        data.load(f"nmnist:{root}", data.Target("events", (2, 34, 34), 4, 10))
    monkeypatch.undo()
    monkeypatch.setenv("SNNC_CACHE_DIR", str(cache.parent))
    eventfiles.nmnist_bin(root / "Train" / "0" / "00000.bin", _events(999, 34, 34, n=12))  # a changed recording
    changed = data.load(f"nmnist:{root}", target)
    assert not torch.equal(changed.train_x[0], first.train_x[0]) and torch.equal(changed.train_x[1], first.train_x[1])
    assert len(list(cache.glob("nmnist-*.safetensors"))) == 2     # the T=4 framing failed: nothing cached
    entries[0].write_bytes(b"not safetensors")                # a damaged entry is framed again, with a note
    assert torch.equal(data.load(f"nmnist:{root}", target).test_x, first.test_x)


@pytest.mark.parametrize("kind,damage,message", [
    ("nmnist", lambda r: (r / "Test").rename(r / "test-moved"), "has no Test/ folder"),
    ("nmnist", lambda r: (r / "Train" / "1" / "00000.bin").write_bytes(b"\x01\x02\x03"), "multiple of 5 bytes"),
    ("nmnist", lambda r: (r / "Train" / "seven").mkdir(), "not a digit folder"),
    ("nmnist", lambda r: eventfiles.nmnist_bin(r / "Train" / "0" / "00000.bin", []), "holds no events"),
    ("dvsgesture", lambda r: np.save(r / "ibmGestureTrain" / "user01_fluorescent" / "3.npy", np.zeros((5, 3))),
     r"\[N, 4\] numeric array"),
    ("dvsgesture", lambda r: (r / "ibmGestureTest" / "user24_natural" / "12.npy").write_bytes(b""),
     "named by its label"),
    ("dvsgesture", lambda r: np.save(r / "ibmGestureTrain" / "user02_led" / "0.npy",
                                     np.array([[200, 1, 0, 5], [1, 1, 1, 9]])), "outside the 128x128 sensor"),
    ("cifar10dvs", lambda r: (r / "airplane" / "cifar10_airplane_0.aedat4").write_bytes(b"#!AER-DAT4.0\r\nxx"),
     "cannot read"),
    ("cifar10dvs", lambda r: [p.unlink() for p in (r / "truck").iterdir()], "truck is missing or holds fewer"),
])
def test_missing_or_malformed_files_name_the_file_and_the_layout(tmp_path, kind, damage, message):
    maker = {"nmnist": make_nmnist, "dvsgesture": make_gesture, "cifar10dvs": make_cifar10dvs}[kind]
    root = maker(tmp_path / "d")
    damage(root)
    with pytest.raises(SnncError, match=message) as info:
        data.load(f"{kind}:{root}", data.Target("events", (2, 48, 48), 2, 10))
    text = render(info.value)
    assert "expected PATH/" in text and "Traceback" not in text


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_a_pickled_npy_is_refused_and_runs_nothing(tmp_path):
    root = make_gesture(tmp_path / "g")
    marker = tmp_path / "pwned"
    np.save(root / "ibmGestureTrain" / "user02_led" / "3.npy", np.array([RunsCode(marker)], dtype=object),
            allow_pickle=True)
    with pytest.raises(SnncError, match="cannot read"):
        data.load(f"dvsgesture:{root}", data.Target("events", (2, 48, 48), 2, 11))
    assert not marker.exists()
    pickle.loads(pickle.dumps(RunsCode(marker)))              # the control: the payload is live
    assert marker.exists()


def test_wrong_network_and_missing_tonic_are_diagnostics(tmp_path, monkeypatch):
    root = make_nmnist(tmp_path / "nm")
    with pytest.raises(SnncError, match="need an events input"):
        data.load(f"nmnist:{root}", data.Target("image", (1, 28, 28), 4, 10))
    with pytest.raises(SnncError, match="needs the network it is for"):
        data.load(f"nmnist:{root}")
    monkeypatch.setitem(sys.modules, "tonic", None)
    with pytest.raises(SnncError, match="tonic, which is not installed") as info:
        data.load(f"nmnist:{root}", data.Target("events", (2, 34, 34), 2, 10))
    assert "snnc[events]" in info.value.hint


@pytest.mark.parametrize("kind", ["nmnist", "dvsgesture", "cifar10dvs"])
def test_vggsnn_trains_a_step_on_each(tmp_path, kind):
    from trainkit import build

    maker = {"nmnist": make_nmnist, "dvsgesture": make_gesture, "cifar10dvs": make_cifar10dvs}[kind]
    root = maker(tmp_path / "d")
    classes = "11" if kind == "dvsgesture" else "10"
    out, _ = build(tmp_path, "vggsnn", "tet", {"T": "2", "classes": classes})
    r = subprocess.run([sys.executable, str(out / "train.py"), "--data", f"{kind}:{root}", "--epochs", "1",
                        "--batch-size", "32", "--out", str(tmp_path / "run"), "--quiet"], capture_output=True,
                       text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "done: test accuracy" in r.stdout
