"""The generated CPU kernel (backend "cpu"; "auto" on the CPU) against the eager reference and the PyTorch path.

float64 is exact to the reference (1e-12); float32 spikes are bit-identical to the PyTorch
path and gradients within 1e-6 of the largest; MSG masks are the PyTorch path's; without a
C compiler, or when a build fails, the PyTorch path runs with a one-line note.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snnc.backends import lif_math
from snnc.backends.cpu import build, codegen, launch
from snnc.backends.triton.spec import LifSpec
from snnc.ops import bn_lif, lif
from snnc.ops.function import engine_for
from test_ops_cases import assert_matches, gain, grid, grid_id, lif_kwargs, make_input, reference, run
from test_ops_lif import MASK, saved_for_backward, torch_keep

pytestmark = pytest.mark.skipif(build.compiler() is None, reason="no C compiler")
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("T", [1, 5])
@pytest.mark.parametrize("case", grid(), ids=grid_id)
def test_cpu_kernel_matches_reference_in_float64(case, T):
    kwargs = lif_kwargs(case)
    x = make_input(T, (3, 1500), gain=gain(kwargs))  # several blocks of neurons and a ragged tail
    got = run(lambda x: lif(x, backend="cpu", **MASK, **kwargs), x)
    keep = torch_keep(x) if kwargs["mask_p"] else None
    want = run(lambda x: reference(x, kwargs, keep=keep), x)
    assert_matches(*got, *want)  # 1e-12 in float64


@pytest.mark.parametrize("case", grid(), ids=grid_id)
def test_float32_spikes_bit_identical_to_the_torch_path(case):
    kwargs = lif_kwargs(case)
    x = make_input(6, (2, 4700), dtype=torch.float32, gain=gain(kwargs))
    a = run(lambda x: lif(x, backend="cpu", **MASK, **kwargs), x)
    b = run(lambda x: lif(x, backend="torch", **MASK, **kwargs), x)
    assert torch.equal(a[0], b[0])
    scale = b[1].abs().max().item()
    assert scale > 0 and (a[1] - b[1]).abs().max().item() <= 1e-6 * scale


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bn_lif_cpu_kernel(training, dtype):
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(4, 2, 3, 5, 7, generator=gen, dtype=torch.float64) * 2 + 0.3).to(dtype).requires_grad_()
    weight = (torch.rand(3, generator=gen, dtype=torch.float64) + 0.5).to(dtype).requires_grad_()
    bias = (torch.randn(3, generator=gen, dtype=torch.float64) * 0.3 + 0.5).to(dtype).requires_grad_()
    stats = [torch.randn(3, dtype=dtype), torch.rand(3, dtype=dtype) + 0.5]
    kwargs = dict(training=training, momentum=0.1, eps=1e-5, scale=0.7, surrogate="sigmoid(alpha=3.3)", reset="soft",
                  mask_p=0.3, **MASK)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype)
    results = []
    for backend in ("cpu", "torch"):
        running = [s.clone() for s in stats]
        spikes = bn_lif(x, weight, bias, *running, backend=backend, **kwargs)
        results.append((spikes, torch.autograd.grad(spikes, (x, weight, bias), g), running))
    (s1, g1, r1), (s2, g2, r2) = results
    assert torch.equal(s1, s2) and 0.1 < s2.float().mean().item() < 0.9
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    for a, b in zip(g1, g2):
        assert (a - b).abs().max().item() <= tol * b.abs().max().item()
    for a, b in zip(r1, r2):
        assert torch.equal(a, b)
    if dtype == torch.float64:  # and against BatchNorm followed by the reference LIF
        ref = bn_lif(x, weight, bias, *[s.clone() for s in stats], backend="reference",
                     **{k: v for k, v in kwargs.items() if k != "mask_p"})
        plain = bn_lif(x, weight, bias, *[s.clone() for s in stats], backend="cpu",
                       **{k: v for k, v in kwargs.items() if k != "mask_p"})
        assert torch.equal(plain, ref)
        grads = zip(torch.autograd.grad(plain, (x, weight, bias), g), torch.autograd.grad(ref, (x, weight, bias), g))
        for a, b in grads:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * b.abs().max().item())


def test_strided_input_is_read_in_place():
    base = make_input(8, (2, 5000))
    x = base.detach()[::2].requires_grad_()  # steps 2 rows apart
    kwargs = dict(surrogate="triangle(beta=1.3)", reset="soft")
    assert_matches(*run(lambda x: lif(x, backend="cpu", **kwargs), x), *run(lambda x: reference(x, kwargs), x))
    y = base.detach()[:, :, ::3].requires_grad_()  # not unit stride inside a step: copied first
    assert_matches(*run(lambda x: lif(x, backend="cpu", **kwargs), y), *run(lambda x: reference(x, kwargs), y))


def test_saves_only_h_and_auto_uses_the_kernel_on_the_cpu():
    x = make_input(4, (3, 37))
    assert engine_for(x, "auto") is launch
    record = {}
    reference(x, {}, record=record)
    saved = saved_for_backward(lambda x: lif(x, backend="cpu"), x)
    big = [t for t in saved if t.numel() >= x.numel()]
    assert len(big) == 1 and torch.equal(big[0].view(x.shape), record["h"])


def test_half_precision_runs_the_torch_path():
    x = make_input(4, (3, 37), dtype=torch.bfloat16)
    assert launch.library(launch_config(), torch.bfloat16, "cpu", False) is None
    a = run(lambda x: lif(x, backend="cpu"), x)
    b = run(lambda x: lif(x, backend="torch"), x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def launch_config():
    from snnc.ops.config import make_config

    return make_config(surrogate="arctan(beta=1.1)")


def test_the_kernel_source_is_the_shared_math():
    """The C statements are rendered from snnc.backends.lif_math, the statements of the Triton templates."""
    spec = LifSpec.from_attrs(surrogate="dspike(b=2.3, region=0.9)", reset="hard", tau=3.0, decay_input=True,
                              mask_p=0.3, rescale=True, fused_bn=True, dtype="float32")
    source = codegen.render(spec)
    for line in lif_math.to_c(lif_math.SURROGATES["dspike"], "float", declared={"z"}):
        assert line in source
    assert "h = fma(decay, v, h);" in source and "x = x * bn_scale;" in source
    assert "sg = keep ? (sg * keep_scale) : 0.0f;" in source


def test_build_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNC_CACHE_DIR", str(tmp_path))
    spec = LifSpec.from_attrs(surrogate="arctan(beta=1.1)", dtype="float32")
    build.load.cache_clear()
    try:
        assert build.load(spec) is not None
        built = list((tmp_path / "cpu").glob("lif_cpu_*.so"))
        assert len(built) == 1
        build.load.cache_clear()
        monkeypatch.setattr(build, "_build", lambda *a: pytest.fail("rebuilt a cached kernel"))
        assert build.load(spec) is not None
    finally:
        build.load.cache_clear()


def test_without_a_compiler_the_torch_path_runs_with_a_note(tmp_path):
    """In a fresh process whose PATH has no compiler: one note on stderr, the PyTorch path's results."""
    code = (
        "import torch\n"
        "from snnc.ops import lif\n"
        "x = (torch.randn(4, 3000) * 0.7 + 0.55).requires_grad_()\n"
        "a = lif(x, backend='cpu'); b = lif(x, backend='torch')\n"
        "lif(x, backend='auto')\n"
        "assert torch.equal(a, b)\n"
        "print('ok')\n")
    env = dict(os.environ, PATH=str(tmp_path), CC="", SNNC_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: no C compiler found ($CC, cc, gcc): the LIF layers run on the PyTorch CPU path"]
    assert not (tmp_path / "cache").exists()


def test_a_failing_build_falls_back_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SNNC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(build, "FLAGS", build.FLAGS + ("-fno-such-flag-anywhere",))
    monkeypatch.setattr(build, "_NOTED", set())
    build.load.cache_clear()
    launch._library.cache_clear()
    try:
        x = make_input(3, (50,), dtype=torch.float32)
        a = run(lambda x: lif(x, backend="cpu", surrogate="rectangle(beta=0.7)"), x)
        b = run(lambda x: lif(x, backend="torch", surrogate="rectangle(beta=0.7)"), x)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        err = capsys.readouterr().err
        assert err.count("note: building the CPU LIF kernel failed") == 1 and "no-such-flag" in err
    finally:
        build.load.cache_clear()
        launch._library.cache_clear()


def _near_ties(n_want=64, seed=0):
    """float32 x [2, n] where h[1] = decay * x[0] + x[1] (decay = 0.7) reaches vth = 1.3 if the
    product is rounded before the sum, and stays below it if both are rounded once (fused).
    (Rounding is monotone, so near vth only this direction occurs.) x[0] < vth does not fire."""
    import numpy as np

    rng = np.random.default_rng(seed)
    decay, vth = np.float32(0.7), np.float32(1.3)
    x0 = rng.uniform(0.05, 0.95, 200_000).astype(np.float32)
    x1 = (np.float64(vth) - np.float64(decay) * x0.astype(np.float64)).astype(np.float32)
    x1 = np.nextafter(x1, np.float32(-10))  # one float32 step below the exact complement
    fused = (np.float64(decay) * x0.astype(np.float64) + x1.astype(np.float64)).astype(np.float32)
    unfused = (decay * x0).astype(np.float32) + x1
    pick = np.flatnonzero((fused < vth) & (unfused >= vth))[:n_want]
    assert len(pick) == n_want
    return torch.from_numpy(np.stack([x0[pick], x1[pick]]))


def test_float32_near_ties_fire_as_on_the_torch_path():
    """Inputs where fused and unfused decay*v + x round to different sides of vth: the kernel must
    fire where the PyTorch path does (torch.add with alpha is a fused multiply-add)."""
    x = _near_ties()
    spikes = {b: lif(x, backend=b, decay=0.7, vth=1.3, surrogate="arctan(beta=1.1)") for b in ("cpu", "torch")}
    assert spikes["torch"].sum() == 0  # the fused sums stay below vth
    assert torch.equal(spikes["cpu"], spikes["torch"])


def test_float32_bn_near_ties_fire_as_on_the_torch_path():
    """The folded BN is x * scale + shift rounded twice on the PyTorch path (mul_, then add_): inputs
    where fusing it would flip the spike."""
    import numpy as np

    rng = np.random.default_rng(1)
    C = 64
    w = rng.uniform(0.5, 1.5, C).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, C).astype(np.float32)
    x = ((1.0 - b.astype(np.float64)) / w).astype(np.float32)  # y = x*w + b close to vth = 1
    xs = np.stack([np.nextafter(x, np.float32(k)) for k in np.linspace(-1, 3, 2000)])  # [2000, C] near values
    fused = (xs.astype(np.float64) * w + b).astype(np.float32)
    unfused = (xs * w).astype(np.float32) + b
    assert ((fused >= 1) != (unfused >= 1)).any()
    xt = torch.from_numpy(xs).view(1, 2000, C, 1)
    wt, bt = torch.from_numpy(w), torch.from_numpy(b)
    ones, zeros = torch.ones(C), torch.zeros(C)
    spikes = {k: bn_lif(xt, wt, bt, zeros, ones - 1e-5, training=False, momentum=0.1, eps=1e-5, backend=k)
              for k in ("cpu", "torch")}
    assert torch.equal(spikes["cpu"], spikes["torch"])


# Spatial sizes that take each path of bn_units.c.jinja: inner 1 (elements walked one by one),
# 16 (power of two: pairwise row sums), 35 (short rows, expanded per call), 144 (long rows, one
# unit each, summed per unit) and 65*65 = 4225 > BLOCK (a row cut into two pieces).
@pytest.mark.parametrize("spatial", [(1, 1), (4, 4), (5, 7), (12, 12), (65, 65)], ids=lambda s: f"inner{s[0] * s[1]}")
@pytest.mark.parametrize("training", [True, False])
def test_bn_lif_cpu_kernel_every_unit_layout_against_batchnorm_then_reference(spatial, training):
    from test_ops_bn_lif import bn_then_reference, make_case

    x, weight, bias, running, g = make_case(shape=(3, 2, 5, *spatial), seed=sum(spatial))
    lif_kwargs = dict(surrogate="sigmoid(alpha=4.0)", reset="soft")
    bn_args = dict(training=training, momentum=0.1, eps=1e-5, scale=0.7)
    mine = [s.clone() for s in running]
    spikes = bn_lif(x, weight, bias, *mine, backend="cpu", **bn_args, **lif_kwargs)
    ref, ref_running = bn_then_reference(x, weight, bias, [s.clone() for s in running], lif_kwargs=lif_kwargs,
                                         **bn_args)
    assert torch.equal(spikes, ref) and 0.1 < spikes.mean().item() < 0.9
    for a, b in zip(mine, ref_running):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(spikes, (x, weight, bias), g)
    want = torch.autograd.grad(ref, (x, weight, bias), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * b.abs().max().item())
