"""Reading plain state dicts from .safetensors or .pt files without unpickling code."""

from __future__ import annotations

from pathlib import Path

import torch

from snnc.diagnostics import SnncError


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise SnncError(f"no such weights file: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001
            raise SnncError(f"{path} is not a readable safetensors file: {str(exc)[:200]}",
                            hint="it may be truncated or corrupted") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise SnncError(f"{path} is not a readable weights file: {str(exc)[:200]}",
                        hint="it may be truncated or corrupted") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # an snnc checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SnncError(f"{path} does not hold a state dict of tensors")
    return state
