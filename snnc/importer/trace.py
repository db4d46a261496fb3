"""Loading a user's network from `FILE.py:Name` and tracing it with torch.fx.

Every failure is an `SnncError` located at the user's own source line: the
deepest frame that is not inside torch, snnc or the standard library, taken
from the exception's traceback, or recorded by the tracer for each fx node.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import linecache
import re
import sys
import sysconfig
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.fx as fx
from torch import nn

import snnc
from snnc.diagnostics import Loc, SnncError, brief

_LIBRARY_DIRS = tuple(str(Path(p).resolve()) for p in (
    Path(torch.__file__).parent, Path(snnc.__file__).parent, sysconfig.get_paths()["stdlib"]))


@dataclass
class Traced:
    """A traced network: the module, its fx graph, and where it came from."""

    root: nn.Module
    graph: fx.Graph
    file: str
    name: str


@lru_cache(maxsize=4096)
def _is_library(file: str) -> bool:
    if file.startswith("<"):  # <frozen importlib...> is Python's; <string> and the like ran the user's code
        return file.startswith("<frozen")
    try:
        path = str(Path(file).resolve())
    except OSError:
        return False
    return path.startswith(_LIBRARY_DIRS)


def _loc(file: str, line: int, code: str | None = None) -> Loc:
    """A span covering the code on `line` of `file` (the whole line when its text is unknown)."""
    text = linecache.getline(file, line).rstrip("\n") or (code or "")
    start = len(text) - len(text.lstrip()) + 1
    return Loc(file, line, start, line, max(len(text) + 1, start + 1))


def user_loc_from_traceback(tb) -> Loc | None:
    """The location of the deepest user frame in a traceback, or None."""
    frames = [f for f in traceback.extract_tb(tb) if not _is_library(f.filename)]
    if not frames:
        return None
    return _loc(frames[-1].filename, frames[-1].lineno, frames[-1].line)


def user_loc(node: fx.Node) -> Loc | None:
    """The user source line that created an fx node (recorded by the tracer below)."""
    where = node.meta.get("user_frame")
    return _loc(*where) if where else None


def _split_spec(spec: str) -> tuple[Path, str]:
    file, sep, name = spec.rpartition(":")
    if not sep or not file or not name:
        raise SnncError(f"expected FILE.py:Name, got '{spec}'", None, "for example: snnc import nets.py:ResNet18 ...")
    if not all(part.isidentifier() for part in name.split(".")):
        raise SnncError(f"'{name}' is not a Python name", None, "name the class or function that builds the network")
    path = Path(file)
    if not path.is_file():
        raise SnncError(f"no such file: {file}", None)
    if path.suffix != ".py":
        raise SnncError(f"{file} is not a Python file", None, "give the .py file that defines the network")
    return path, name


def _run_user_code(what: str, fn):
    try:
        return fn()
    except SnncError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure in the user's code is reported at its line
        hint = ("pass its arguments with --kwargs '{\"name\": value}', or import a function that builds it"
                if isinstance(exc, TypeError) and what.startswith("building") else None)
        raise SnncError(f"{what} failed: {brief(exc)}", user_loc_from_traceback(exc.__traceback__), hint) from None


def _targets_hint(pymod, module_name: str) -> str | None:
    """The classes (nn.Module) and functions defined in the user's file: what FILE.py:Name may name."""
    classes = sorted(k for k, v in vars(pymod).items()
                     if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module_name)
    functions = sorted(k for k, v in vars(pymod).items()
                       if inspect.isfunction(v) and v.__module__ == module_name and not k.startswith("_"))
    parts = ([f"modules: {', '.join(classes)}"] if classes else []) + \
        ([f"functions: {', '.join(functions)}"] if functions else [])
    return "defined there: " + "; ".join(parts) if parts else None


def load_module(spec: str, kwargs_json: str | None = None) -> tuple[nn.Module, str, str]:
    """(module instance, file, name) for `FILE.py:Name` called with the JSON keyword arguments."""
    path, name = _split_spec(spec)
    kwargs = {}
    if kwargs_json:
        try:
            kwargs = json.loads(kwargs_json)
        except json.JSONDecodeError as exc:
            raise SnncError(f"--kwargs is not valid JSON: {exc.msg} at character {exc.pos}", None,
                            "for example: --kwargs '{\"num_classes\": 10}'") from None
        if not isinstance(kwargs, dict):
            raise SnncError("--kwargs must be a JSON object of keyword arguments", None,
                            "for example: --kwargs '{\"num_classes\": 10}'")
    module_name = "snnc_import_" + re.sub(r"\W", "_", path.stem)
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    pymod = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = pymod  # dataclasses and pickling look the module up by name
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # sibling imports of the user's file
    try:
        _run_user_code(f"importing {path}", lambda: loader_spec.loader.exec_module(pymod))
    finally:
        sys.path.remove(folder)
    target = pymod
    for part in name.split("."):
        if not hasattr(target, part):
            raise SnncError(f"{path} has no '{name}'", None, _targets_hint(pymod, module_name))
        target = getattr(target, part)
    if not callable(target):
        raise SnncError(f"'{name}' in {path} is not a class or function", None)
    module = _run_user_code(f"building {name}", lambda: target(**kwargs))
    if not isinstance(module, nn.Module):
        raise SnncError(f"{name}(...) returned {type(module).__name__}, not a torch.nn.Module", None)
    return module, str(path), name


class _Tracer(fx.Tracer):
    """torch.nn modules other than containers are leaves (fx's default); each node remembers the user's line.

    fx's own `record_stack_traces` symbolizes whole stacks through torch._inductor, which takes seconds to
    import; walking the Python frames to the first one outside torch and snnc is enough here.
    """

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        frame = sys._getframe(1)
        while frame is not None and _is_library(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is not None:
            proxy.node.meta["user_frame"] = (frame.f_code.co_filename, frame.f_lineno)
        return proxy


def trace(module: nn.Module, file: str = "<module>", name: str | None = None) -> Traced:
    name = name or type(module).__name__
    try:
        graph = _Tracer().trace(module)
    except fx.proxy.TraceError as exc:  # a branch or loop on a tensor value
        raise SnncError(f"torch.fx cannot trace {name}: the code branches or loops on a tensor value "
                        f"({str(exc).splitlines()[0][:200]})", user_loc_from_traceback(exc.__traceback__),
                        "make the branch depend on constructor arguments, not on tensor values") from None
    except Exception as exc:  # noqa: BLE001 - user code may fail under tracing in any way
        hint = ("a size computed in Python from a traced tensor (int(x.size(1) * r)) has no value while tracing; "
                "compute it from constructor arguments in __init__") if "Proxy" in str(exc) else None
        raise SnncError(f"torch.fx cannot trace {name}: {type(exc).__name__}: {str(exc)[:300]}",
                        user_loc_from_traceback(exc.__traceback__), hint) from None
    return Traced(module, graph, file, name)
