"""Each surrogate g(x) of docs/methods.md §2, in float64, against formulas written here independently.

Checked implementations: the PyTorch path (`snnc.ops.surrogate`), the eager
reference (`snnc.ops.reference`) and the Triton code lines (`hooks.SURROGATE_CODE`),
the latter evaluated with numpy standing in for `tl`. Each integrates to 1.
"""

import math
import types

import numpy as np
import pytest
import torch

from snnc.backends.triton import hooks
from snnc.ops.reference import surrogate_reference
from snnc.ops.surrogate import surrogate_grad


def triangle(x, beta):
    return beta * max(0.0, 1.0 - beta * abs(x))


def rectangle(x, beta):
    return beta if abs(x) < 1.0 / (2.0 * beta) else 0.0


def arctan(x, beta):
    return beta / (1.0 + (math.pi * beta * x) ** 2)


def dspike(x, b, region):
    return b * (1.0 - math.tanh(b * x) ** 2) / (2.0 * math.tanh(b * region)) if abs(x) <= region else 0.0


def sigmoid(x, alpha):
    s = 1.0 / (1.0 + math.exp(-alpha * x))
    return alpha * s * (1.0 - s)


FORMULAS = {"triangle": triangle, "rectangle": rectangle, "arctan": arctan, "dspike": dspike, "sigmoid": sigmoid}
CASES = [("triangle", [0.5]), ("triangle", [1.0]), ("triangle", [2.5]),
         ("rectangle", [0.5]), ("rectangle", [1.0]), ("rectangle", [2.5]),
         ("arctan", [0.5]), ("arctan", [1.0]), ("arctan", [2.5]),
         ("dspike", [2.5, 1.0]), ("dspike", [1.0, 0.5]), ("dspike", [5.0, 2.0]),
         ("sigmoid", [1.0]), ("sigmoid", [4.0]), ("sigmoid", [10.0])]
IDS = [f"{name}{params}" for name, params in CASES]


def triton_lines(name, x: np.ndarray, params) -> np.ndarray:
    """Runs the Triton surrogate code with numpy in place of triton.language."""
    tl = types.SimpleNamespace(abs=np.abs, maximum=np.maximum, where=np.where, exp=np.exp)
    scope = {"tl": tl, "z": x}
    scope.update({pname: value for (pname, _), value in zip(hooks.surrogate_param_loads(name), params)})
    for line in hooks.surrogate_code(name):
        exec(line, scope)
    return np.broadcast_to(scope["sg"], x.shape).astype(np.float64)


def sample_points(name, params):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4001, generator=gen, dtype=torch.float64) * 1.5
    # add the support edges and their neighbours, where off-by-one comparisons show
    edge = {"triangle": 1 / params[0], "rectangle": 1 / (2 * params[0]), "dspike": params[-1]}.get(name, 1.0)
    extra = torch.tensor([0.0, edge, -edge, math.nextafter(edge, 0), math.nextafter(edge, 9)], dtype=torch.float64)
    return torch.cat([x, extra])


@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_implementations_match_the_methods_formula(name, params):
    x = sample_points(name, params)
    want = torch.tensor([FORMULAS[name](v, *params) for v in x.tolist()], dtype=torch.float64)
    torch.testing.assert_close(surrogate_grad(name, x, params), want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(surrogate_reference(name, x, params), want, rtol=1e-12, atol=1e-14)
    got = torch.from_numpy(triton_lines(name, x.numpy(), params))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_dspike_support_is_closed_and_peak_matches_methods():
    assert dspike(1.0, 2.5, 1.0) > 0 and dspike(math.nextafter(1.0, 2), 2.5, 1.0) == 0
    assert surrogate_grad("dspike", torch.tensor([1.0, -1.0], dtype=torch.float64), [2.5, 1.0]).gt(0).all()
    assert abs(dspike(0.0, 2.5, 1.0) - 2.5 / (2 * math.tanh(2.5))) < 1e-15  # about 1.27 (docs/methods.md §2)


@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_each_surrogate_integrates_to_one(name, params):
    if name == "arctan":
        half_width = 200.0
    elif name == "sigmoid":
        half_width = 60.0 / params[0]
    else:
        half_width = 1.01 * {"triangle": 1 / params[0], "rectangle": 1 / (2 * params[0]),
                             "dspike": params[-1]}[name]
    x = torch.linspace(-half_width, half_width, 2_000_001, dtype=torch.float64)
    g = surrogate_grad(name, x, params)
    integral = torch.trapezoid(g, x).item()
    if name == "arctan":
        # the heavy tails beyond +-half_width, in closed form: 1 - (2/pi) atan(pi beta L)
        integral += 1.0 - 2.0 / math.pi * math.atan(math.pi * params[0] * half_width)
    step = (2 * half_width) / 2_000_000
    tolerance = 2 * params[0] * step if name == "rectangle" else 1e-6  # a jump costs up to one cell
    assert abs(integral - 1.0) < tolerance
