"""Data specs: digits, CIFAR pickle batches, synthetic, dvs frames, and the errors for bad paths."""

import pickle

import numpy as np
import pytest
import torch

from snnc.diagnostics import SnncError
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


def test_synthetic_takes_the_network_shape():
    d = data.reshape_synthetic(data.load("synthetic:40"), (1, 8, 8), 4)
    assert d.sample_shape == (1, 8, 8) and d.classes == 4 and len(d.train_y) == 40
