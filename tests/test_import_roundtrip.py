"""Round trip: ResNet-18 (CIFAR), ResNet-34 (ImageNet) and VGG-16 with BN, written in plain torch.nn, through
`snnc import`, `snnc info` and `snnc compile` with every recipe; each generated model.py checked with fx."""

import json
from pathlib import Path

import pytest

from snnc.importer.fxcheck import check_generated
from snnc.ir.textparse import parse
from snnc.pipeline import compile_source
from test_import import NETS, nets, snnc
from test_info import torch_macs

ROOT = Path(__file__).resolve().parent.parent

NETWORKS = {  # name: (factory in import_nets.py, input)
    "resnet18": ("resnet18_cifar", (3, 32, 32)),
    "resnet34": ("resnet34", (3, 224, 224)),
    "vgg16": ("VGG", (3, 32, 32)),
}
RECIPES = ["sdt", "tet", "sml", "sml+tet", "cpng+tet", "msg+two", "tit(stages=[(2,1),(4,1)])"]
_files: dict[str, Path] = {}
_checked: dict[str, list[str]] = {}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("imported")


def imported(folder: Path, name: str, *options: str) -> Path:
    """`snnc import` of one network (once per option set), as a user runs it."""
    key = "-".join((name,) + options)
    if key not in _files:
        factory, dims = NETWORKS[name]
        out = folder / f"{abs(hash(key))}.snn"
        code, _, stderr = snnc("import", f"{NETS}:{factory}", "--input", ",".join(map(str, dims)), "-o", out,
                               *options)
        assert code == 0, stderr
        _files[key] = out
    return _files[key]


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_info_gives_the_pytorch_parameters_and_macs(folder, name):
    factory, dims = NETWORKS[name]
    code, stdout, stderr = snnc("info", imported(folder, name), "--json")
    assert code == 0, stderr
    info = json.loads(stdout)
    model = getattr(nets, factory)()
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["macs_per_step"] == torch_macs(model, dims)


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_compiles_and_the_model_is_the_ir(folder, name, recipe):
    out = folder / f"build-{name}-{abs(hash(recipe))}"
    code, _, stderr = snnc("compile", imported(folder, name), "--recipe", recipe, "-o", out)
    if name == "vgg16" and recipe.startswith("sml"):
        assert code == 1 and "sml needs residual blocks, and network 'vgg' has none" in stderr
        return
    assert code == 0, stderr
    text = (out / "model.py").read_text()
    key = text.split("\n", 3)[-1]  # without the header naming the recipe: train-only recipes share model.py
    if key not in _checked:
        _checked[key] = check_generated(parse((out / "model.ir").read_text()), text)
    assert _checked[key] == []


def test_imported_resnet18_is_models_resnet18(folder):
    path = imported(folder, "resnet18", "--neuron", "lif(decay=0.5, vth=1.0, reset=hard)", "--surrogate",
                    "dspike(b=2.5)")

    def normalized(graph):
        return graph.replace(network="net", nodes=[n.replace(loc=None) for n in graph.nodes])

    ours = compile_source(path).graph
    zoo = compile_source(ROOT / "models" / "resnet18.snn").graph
    assert len(ours.nodes) == len(zoo.nodes)
    assert normalized(ours) == normalized(zoo)
