"""Names for the generated .snn text: every one is checked by `snnc.names.identifier_problem`."""

from __future__ import annotations

import re
from itertools import chain, count

from snnc.frontend.declarations import CHAIN_WORDS
from snnc.names import identifier_problem

NETWORK_PARAMS = ("T", "classes")


def snake_case(name: str) -> str:
    """`BasicBlock` -> `basic_block`, `VGGStage` -> `vgg_stage`, `ResNet18` -> `resnet18` (a `Net` joins the
    word before it, as the networks' own papers spell them), `MobileNetV2` -> `mobilenet_v2`."""
    words = re.findall(r"[A-Z]+(?![a-z])\d*|[A-Z]?[a-z]+\d*|\d+", name)
    merged: list[str] = []
    for word in words:
        if merged and re.fullmatch(r"[Nn]et\d*", word):
            merged[-1] += word
        else:
            merged.append(word)
    return "_".join(merged).lower() if merged else name.lower()


def block_base(class_name: str) -> str:
    """The block name for a module class: snake case without a trailing `_block` (`BasicBlock` -> `basic`)."""
    name = snake_case(class_name)
    if identifier_problem(name):  # a class named `Block` would otherwise become `block_`
        return f"{name}_unit"
    return name[: -len("_block")] if name.endswith("_block") and len(name) > len("_block") else name


class Names:
    """Hands out distinct valid names: a taken or invalid wish becomes `wish_`, then `wish_2`, `wish_3`, ..."""

    def __init__(self, taken=()):
        self.taken = set(taken) | set(CHAIN_WORDS) | set(NETWORK_PARAMS)

    def __call__(self, wish: str, fallback: str = "part") -> str:
        name = re.sub(r"[^A-Za-z0-9_]", "_", wish).strip("_") or fallback
        if name[0].isdigit():
            name = f"{fallback}{name}"
        candidates = chain((name, name + "_"), (f"{name}_{i}" for i in count(2)))
        name = next(c for c in candidates if c not in self.taken and not identifier_problem(c))
        self.taken.add(name)
        return name
