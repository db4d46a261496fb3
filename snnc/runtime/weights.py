"""Reading plain state dicts from .safetensors or .pt files without unpickling code."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import torch

from snnc.diagnostics import SnncError, brief


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise SnncError(f"no such weights file: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001
            raise SnncError(f"{path} is not a readable safetensors file: {brief(exc)}",
                            hint="it may be truncated or corrupted") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise SnncError(f"{path} is not a readable weights file: {brief(exc)}",
                        hint="it may be truncated or corrupted") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # an snnc checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SnncError(f"{path} does not hold a state dict of tensors", hint=_wrapped_hint(path, state))
    odd = [k for k, v in state.items() if not isinstance(k, str) or not plain_tensor(v)]
    if odd:
        raise SnncError(f"{path} holds entries a state dict does not: {', '.join(_shown(k) for k in odd[:5])} "
                        f"(names must be strings, tensors dense and holding their values)",
                        hint="save model.state_dict() of a plain model")
    return state


def plain_tensor(t: torch.Tensor) -> bool:
    """Dense, on a real device and holding all its values: what weights and checkpoints are made of
    (sparse, meta or quantized tensors are not, and the code that reads weights does not expect them)."""
    return t.layout == torch.strided and not t.is_meta and not t.is_quantized and \
        t.untyped_storage().nbytes() >= (t.storage_offset() + t.numel()) * t.element_size()


def _wrapped_hint(path: Path, state) -> str | None:
    """Where a training checkpoint keeps its state dict (e.g. {'net': ..., 'acc': ...}), and how to extract it."""
    if not isinstance(state, dict):
        return None
    keys = [k for k, v in state.items() if isinstance(k, str) and isinstance(v, dict) and v
            and all(isinstance(t, torch.Tensor) for t in v.values())]
    if not keys:
        return f"it holds {', '.join(_shown(k) for k in list(state)[:6])}; save the model's state_dict() on its own"
    where = f"it wraps a state dict under {' and '.join(_shown(k) for k in keys[:6])}"
    if len(repr(keys[0])) > 100:
        return f"{where}; save that state dict on its own"
    # A command to paste: Python literals for the path and key (JSON strings are Python strings),
    # the whole quoted for the shell, since both come from outside (a key may hold "$(...)").
    path_literal, key_literal = (json.dumps(str(v), ensure_ascii=False) for v in (path, keys[0]))
    code = f'import torch; torch.save(torch.load({path_literal})[{key_literal}], "weights.pt")'
    return f"{where}; extract it with: python -c {shlex.quote(code)}"


def _shown(key) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."
