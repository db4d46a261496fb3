"""Names for the generated .snn text: every one is checked by `snnc.names.identifier_problem`."""

from __future__ import annotations

import re
from itertools import chain, count

from snnc.frontend.declarations import CHAIN_WORDS
from snnc.names import identifier_problem

NETWORK_PARAMS = ("T", "classes")


def snake_case(name: str) -> str:
    """`BasicBlock` -> `basic_block`, `VGGStage` -> `vgg_stage`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def block_base(class_name: str) -> str:
    """The block name for a module class: snake case without a trailing `_block` (`BasicBlock` -> `basic`)."""
    name = snake_case(class_name)
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
