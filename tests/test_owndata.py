"""Your own data: imagefolder:PATH (Pillow) and py:FILE.py:FACTORY (a torch Dataset), checked against the network."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from snnc.diagnostics import SnncError, render
from snnc.runtime import data

DIGITS = data.Target("image", (1, 8, 8), 4, 10)


def _image(path: Path, seed: int, size=(12, 10), mode="RGB"):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def make_folder(root: Path, classes=("cat", "ant", "bee"), per_class=(3, 1), split=True):
    for c, name in enumerate(classes):
        if split:
            for i in range(per_class[0]):
                _image(root / "train" / name / f"{i}.png", 10 * c + i)
            for i in range(per_class[1]):
                _image(root / "test" / name / f"{i}.jpg" if i % 2 else root / "test" / name / f"{i}.png", 99 + c + i)
        else:
            for i in range(per_class[0]):
                _image(root / name / f"{i}.png", 10 * c + i)
    return root


def test_train_and_test_folders_resized_standardised_and_recorded(tmp_path):
    root = make_folder(tmp_path / "imgs")
    d = data.load(f"imagefolder:{root}", data.Target("image", (3, 6, 8), 4, 3))
    assert d.classes == 3 and d.sample_shape == (3, 6, 8) and len(d.train_y) == 9 and len(d.test_y) == 3
    assert d.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]              # sorted class names: ant, bee, cat
    assert d.preprocess["classes"] == ["ant", "bee", "cat"]
    # the independent path: Pillow's resize of the file, then the recorded preprocessing
    raw = np.asarray(Image.open(root / "train" / "cat" / "1.png").convert("RGB").resize((8, 6), Image.BILINEAR))
    p = d.preprocess
    expected = (torch.tensor(raw).permute(2, 0, 1).float() * p["scale"] - torch.tensor(p["mean"]).view(3, 1, 1)) \
        / torch.tensor(p["std"]).view(3, 1, 1)
    assert torch.allclose(d.train_x[7], expected, atol=1e-5)
    assert torch.allclose(d.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    # augmentation: a function of the trainer's generator, and it changes the batch
    a = d.augment(d.train_x[:4], torch.Generator().manual_seed(1))
    assert torch.equal(a, d.augment(d.train_x[:4], torch.Generator().manual_seed(1))) and not torch.equal(a, d.train_x[:4])


def test_a_single_folder_is_split_per_class_by_a_fixed_seed_and_grey_for_one_channel(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=(5, 0), split=False)
    d = data.load(f"imagefolder:{root}", DIGITS)
    assert torch.bincount(d.test_y).tolist() == [1, 1, 1] and len(d.train_y) == 12 and d.sample_shape == (1, 8, 8)
    again = data.load(f"imagefolder:{root}", DIGITS)
    assert torch.equal(again.test_x, d.test_x)
    raw = np.asarray(Image.open(root / "ant" / "0.png").convert("L").resize((8, 8), Image.BILINEAR))
    p = d.preprocess
    candidate = (torch.tensor(raw).float() * p["scale"] - p["mean"][0]) / p["std"][0]
    assert any(torch.allclose(x[0], candidate, atol=1e-5) for x in torch.cat([d.train_x, d.test_x]))


def test_nothing_in_a_data_folder_runs_and_bad_images_are_named(tmp_path):
    root = make_folder(tmp_path / "imgs")
    marker = tmp_path / "pwned"
    for where in (root / "train" / "ant", root / "train", root):
        (where / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
        (where / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    data.load(f"imagefolder:{root}", DIGITS)
    assert not marker.exists()
    (root / "train" / "bee" / "2.png").write_bytes(b"#!/bin/sh\ntouch pwned\n")
    with pytest.raises(SnncError, match=r"cannot read .*bee/2.png as an image") as info:
        data.load(f"imagefolder:{root}", DIGITS)
    assert "expected PATH/train/<class>" in render(info.value)


def test_an_image_over_the_pixel_limit_is_refused_not_warned_about(tmp_path, monkeypatch):
    from snnc.runtime import imagefolder

    root = make_folder(tmp_path / "imgs")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # put back after the test
    monkeypatch.setattr(imagefolder, "MAX_PIXELS", 125)  # the folder's images are 12x10
    Image.new("L", (12, 11)).save(root / "train" / "bee" / "big.png")  # Pillow only warns below 250
    with pytest.raises(SnncError, match=r"big.png as an image: DecompressionBombError: 12x11 pixels, more than 125"):
        data.load(f"imagefolder:{root}", DIGITS)


@pytest.mark.parametrize("change,message", [
    (lambda r: _image(r / "test" / "wasp" / "0.png", 1), "classes that .* lacks: wasp"),
    (lambda r: [p.unlink() for p in (r / "test").rglob("*.*")], "no test images"),
    (lambda r: None, "1 \\(grey\\) or 3 \\(RGB\\) channels"),
])
def test_layout_problems_are_diagnostics(tmp_path, change, message):
    root = make_folder(tmp_path / "imgs")
    change(root)
    target = data.Target("image", (2, 8, 8), 4, 3) if "channels" in message else DIGITS
    with pytest.raises(SnncError, match=message):
        data.load(f"imagefolder:{root}", target)


FACTORY = '''
import torch
from torch.utils.data import Dataset

class Blobs(Dataset):
    def __init__(self, n, shape, classes, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, classes, (n,), generator=g)
        self.x = torch.randn(n, *shape, generator=g) + self.y.view(-1, *[1] * len(shape)).float()
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return self.x[i], int(self.y[i])

def make(train, input_shape, classes, **kwargs):
    return Blobs(64 if train else 16, input_shape, classes, 0 if train else 1)

def wrong_shape(train, **kwargs):
    return Blobs(4, (1, 9, 9), 10, 0)

def wrong_label(train, classes, input_shape, **kwargs):
    d = Blobs(4, input_shape, classes, 0)
    d.y[2] = classes
    return d

def not_a_dataset(train, **kwargs):
    return 42

def raises(train, **kwargs):
    raise RuntimeError("no such data here")
'''


def test_py_factory_is_read_once_with_the_networks_shape(tmp_path):
    (tmp_path / "mydata.py").write_text(FACTORY)
    d = data.load(f"py:{tmp_path / 'mydata.py'}:make", DIGITS)
    assert d.sample_shape == (1, 8, 8) and len(d.train_y) == 64 and len(d.test_y) == 16 and d.classes == 10
    g = torch.Generator().manual_seed(1)                   # the independent reference: the test Blobs
    y = torch.randint(0, 10, (16,), generator=g)
    x = torch.randn(16, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
    assert torch.equal(d.test_y, y) and torch.equal(d.test_x, x)
    events = data.load(f"py:{tmp_path / 'mydata.py'}:make", data.Target("events", (2, 4, 4), 3, 5))
    assert events.sample_shape == (3, 2, 4, 4)             # events samples are [T, C, H, W]


@pytest.mark.parametrize("factory,message", [
    ("wrong_shape", r"train item 0 has x of shape \[1, 9, 9\], but the network takes samples of shape \[1, 8, 8\]"),
    ("wrong_label", r"train item 2 has label 10, outside \[0, 10\)"),
    ("not_a_dataset", "not a map-style Dataset"),
    ("raises", r"raises\(train=True, ...\) raised RuntimeError: no such data here"),
    ("missing", "defines no function 'missing'"),
])
def test_py_factory_problems_are_diagnostics(tmp_path, factory, message):
    (tmp_path / "mydata.py").write_text(FACTORY)
    with pytest.raises(SnncError, match=message) as info:
        data.load(f"py:{tmp_path / 'mydata.py'}:{factory}", DIGITS)
    assert info.value.hint


@pytest.mark.parametrize("spec,message", [("py:nofile.py:make", "is not a file"), ("py:x.txt:make", "expected py:FILE"),
                                          ("py:x.py", "expected py:FILE"), ("py", "needs a file")])
def test_py_spec_errors(spec, message):
    with pytest.raises(SnncError, match=message):
        data.load(spec, DIGITS)


def test_train_py_checks_a_py_dataset_before_training(tmp_path):
    from trainkit import build

    (tmp_path / "mydata.py").write_text(FACTORY)
    out, _ = build(tmp_path, "digits", "sdt", {"width": "4", "T": "2"})
    common = ["--epochs", "1", "--quiet", "--out"]
    bad = subprocess.run([sys.executable, str(out / "train.py"), "--data", f"py:{tmp_path / 'mydata.py'}:wrong_shape",
                          *common, str(tmp_path / "bad")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "network takes samples of shape [1, 8, 8]" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()
    good = subprocess.run([sys.executable, str(out / "train.py"), "--data", f"py:{tmp_path / 'mydata.py'}:make",
                           *common, str(tmp_path / "good")], capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stderr[-2000:]
    images = make_folder(tmp_path / "imgs", classes=[f"c{i}" for i in range(10)], per_class=(2, 1))
    folder = subprocess.run([sys.executable, str(out / "train.py"), "--data", f"imagefolder:{images}",
                             *common, str(tmp_path / "folder")], capture_output=True, text=True, timeout=300)
    assert folder.returncode == 0, folder.stderr[-2000:]
