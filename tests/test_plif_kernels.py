"""The fused PLIF kernels (a learned decay): the generated C kernel and the Triton kernels (compiled on
CUDA, in Triton's interpreter otherwise) against plain autograd (`plif_reference`) and the PyTorch
path, per layer and per channel, with both resets, decay_input, detach_reset and MSG masks."""

import pytest
import torch

from plifkit import ITERATION, KEY, case_id, cases, check, config, inputs, reference, run, torch_keep
from snnc.backends import lif_math
from snnc.backends.cpu import build
from snnc.backends.cpu import plif as cpu_plif
from snnc.ops.config import make_config
from snnc.runtime.plif_engine import select_engine
from test_ops_cases import backend_device

needs_cc = pytest.mark.skipif(build.compiler() is None, reason="no C compiler")


def run_triton(x, w, cfg):
    device = backend_device("triton")
    xd, wd = (t.detach().to(device).requires_grad_() for t in (x, w))
    return tuple(t.cpu() for t in run("triton", xd, wd, cfg))


def triton_keep(x, cfg):
    """The mask exactly as the Triton backward draws it (the LIF kernels' Philox code and key)."""
    if not cfg.masked:
        return None
    from snnc.backends.triton import launch

    T, N = x.shape[0], x[0].numel()
    return launch.keep_mask(KEY, ITERATION, T, N, cfg.mask_p, backend_device("triton")).cpu().view(x.shape)


@needs_cc
@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_cpu_kernel_matches_autograd_in_float64(case):
    cfg = config(case)
    x, w = inputs(case, 6, shape=(2, 3, 30, 25))  # 4500 neurons: two blocks of 4096 and a ragged tail
    assert select_engine(x, "cpu", cfg) is cpu_plif
    check(run("cpu", x, w, cfg), reference(x, w, cfg, torch_keep(x, cfg)))


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_triton_matches_autograd_in_float64(case):
    cfg = config(case)
    x, w = inputs(case, 5, shape=(2, 3, 7, 9))  # 378 neurons
    check(run_triton(x, w, cfg), reference(x, w, cfg, triton_keep(x, cfg)))


@pytest.mark.parametrize("case", cases()[::5], ids=case_id)
def test_runtime_T_and_a_single_step(case, monkeypatch):
    from snnc.backends.triton import launch

    cfg = config(case)
    x, w = inputs(case, 4, shape=(3, 3, 5, 3))
    monkeypatch.setattr(launch, "MAX_STATIC_T", 0)  # the runtime-T kernels
    check(run_triton(x, w, cfg), reference(x, w, cfg, triton_keep(x, cfg)))
    monkeypatch.undo()
    x1, w1 = inputs(case, 1, shape=(30, 3, 5, 3))
    check(run_triton(x1, w1, cfg), reference(x1, w1, cfg, triton_keep(x1, cfg)))
    if build.compiler() is not None:
        check(run("cpu", x1, w1, cfg), reference(x1, w1, cfg, torch_keep(x1, cfg)))


@needs_cc
@pytest.mark.parametrize("case", cases()[1::3], ids=case_id)
def test_float32_cpu_kernel_fires_as_the_torch_path(case):
    """float32: both CPU engines round every step alike (no fused multiply-add), so the spikes are
    bit-identical; the gradients agree to 2e-6 of the largest, and with float64 autograd to 1e-4."""
    cfg = config(case)
    x, w = inputs(case, 6, shape=(2, 3, 30, 25), dtype=torch.float32)
    a, b = run("cpu", x, w, cfg), run("torch", x, w, cfg)
    check(a, b, rtol=2e-6)
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    want = reference(x64, w64, cfg, torch_keep(x, cfg))
    check(tuple(t.double() for t in a), want, rtol=1e-4)


def test_float32_triton_against_float64_autograd():
    case = ("soft", True, False, "channel", "sigmoid(alpha=3.3)", "mask")
    cfg = config(case)
    x, w = inputs(case, 4, shape=(2, 3, 7, 9), dtype=torch.float32)
    got = run_triton(x, w, cfg)
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    check(tuple(t.double() for t in got), reference(x64, w64, cfg, triton_keep(x, cfg)), rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("learn", ["layer", "channel"])
def test_half_precision_on_an_exact_grid(dtype, learn):
    """w = 0 gives k = 1/2 exactly; with x on a 1/4 grid every h of 4 steps sits on a 1/64 grid below 4,
    exact in float16 and bfloat16, so the spikes must equal float64 autograd's; the gradients agree to
    the storage dtype's rounding. Triton, and the C kernel's fallback (the PyTorch path)."""
    case = ("hard", True, False, learn, "triangle(beta=1.3)", "nomask")
    cfg = config(case)
    g = torch.Generator().manual_seed(0)
    x64 = (torch.randint(-4, 11, (4, 3, 3, 5, 5), generator=g).double() / 4).requires_grad_()
    w64 = torch.zeros(3 if learn == "channel" else (), dtype=torch.float64, requires_grad=True)
    want = reference(x64, w64, cfg)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    x, w = x64.detach().to(dtype).requires_grad_(), w64.detach().float().requires_grad_()
    for got in (run_triton(x, w, cfg), run("cpu", x, w, cfg)):
        assert got[0].dtype == dtype and got[1].dtype == dtype and got[2].dtype == torch.float32
        assert torch.equal(got[0].double(), want[0]) and 0.1 < want[0].mean().item() < 0.9
        for a, b in zip(got[1:], want[1:]):
            torch.testing.assert_close(a.double(), b, rtol=tol, atol=tol * b.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_precision_triton_fires_as_the_torch_path(dtype):
    """Both compute in float32 and round h to the storage dtype (to nearest even) before firing."""
    case = ("soft", True, False, "channel", "arctan(beta=1.3)", "nomask")
    cfg = config(case)
    x, w = inputs(case, 5, shape=(2, 3, 7, 9), dtype=dtype)
    w = w.detach().float().requires_grad_()
    a, b = run_triton(x, w, cfg), run("torch", x, w, cfg)
    assert torch.equal(a[0], b[0]) and 0.1 < b[0].float().mean().item() < 0.9
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(a[1], b[1], rtol=eps, atol=eps * b[1].abs().max().item())
    torch.testing.assert_close(a[2], b[2], rtol=1e-5, atol=1e-5 * b[2].abs().max().item())


@needs_cc
def test_decay_gradient_is_the_same_run_to_run_and_for_any_thread_count():
    case = ("hard", True, False, "channel", "sigmoid(alpha=3.3)", "nomask")
    cfg = config(case)
    x, w = inputs(case, 4, shape=(4, 16, 32, 32), dtype=torch.float32)  # 65536 neurons: 16 blocks
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 2):
            torch.set_num_threads(n)
            results.append(run("cpu", x, w, cfg)[2])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(r, results[0]) for r in results)


@needs_cc
@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_time_steps_far_apart_are_read_in_place(backend):
    """x[::2]: the steps of x lie two rows apart, in forward and in the backward's x reads (decay_input)."""
    case = ("soft", True, False, "channel", "arctan(beta=1.3)", "mask")
    cfg = config(case)
    base, w = inputs(case, 8, shape=(2, 3, 7, 9))
    x = base.detach()[::2].requires_grad_()
    if backend == "cpu":
        got, keep = run("cpu", x, w, cfg), torch_keep(x, cfg)
    else:
        got, keep = run_triton(x, w, cfg), triton_keep(x, cfg)
    check(got, reference(x, w, cfg, keep))


@needs_cc
@pytest.mark.parametrize("decay_input", [True, False])
def test_saves_h_and_only_with_decay_input_x(decay_input):
    case = ("hard", decay_input, False, "layer", "triangle(beta=1.3)", "nomask")
    cfg = config(case)
    x, w = inputs(case, 4, shape=(2, 3, 5, 5))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        from snnc.runtime.plif import run_plif

        run_plif(x, w, cfg, None, (KEY, 0), "cpu", None)
    big = [t for t in saved if t.numel() == x.numel()]
    assert len(big) == (2 if decay_input else 1)


@needs_cc
def test_a_second_backward_is_a_clear_error():
    from snnc.diagnostics import SnncError

    case = cases()[0]
    x, w = inputs(case, 3)
    spikes = __import__("snnc.runtime.plif", fromlist=["run_plif"]).run_plif(
        x, w, config(case), None, (KEY, 0), "cpu", None)
    spikes.sum().backward(retain_graph=True)
    with pytest.raises(SnncError, match="twice"):
        spikes.sum().backward()


def test_auto_is_the_c_kernel_on_the_cpu_and_half_precision_the_torch_path():
    from snnc.runtime import plif_engine

    cfg = make_config(decay=0.5, decay_input=True)
    x = torch.zeros(2, 3, 4)
    want = cpu_plif if build.compiler() is not None else plif_engine
    assert select_engine(x, "auto", cfg) is want
    assert select_engine(x.half(), "auto", cfg) is plif_engine
    assert select_engine(x, "torch", cfg) is plif_engine


def test_kernel_sources_render_the_shared_math():
    """The C and Triton kernels hold the statements of snnc.backends.lif_math, one @triton.jit per file."""
    from snnc.backends.triton import LifSpec, kernel_sources

    spec = LifSpec.from_attrs(decay=0.5, reset="soft", decay_input=True, surrogate="arctan(beta=1.3)", mask_p=0.3,
                              T=4, learn_decay=True)
    sources = kernel_sources(spec)
    assert sorted(sources) == ["plif_bwd_soft_decayinput_arctan_mask_f32_T4.py", "plif_fwd_soft_decayinput_f32_T4.py"]
    triton_text = "\n".join(sources.values())
    for name, text in sources.items():
        compile(text, name, "exec")
        assert text.count("@triton.jit") == 1
    c_text = cpu_plif.render(LifSpec.from_attrs(decay=0.5, reset="soft", decay_input=True, surrogate="arctan",
                                                mask_p=0.3, learn_decay=True))
    math = lif_math.plif_charge(True) + lif_math.plif_previous("soft") + lif_math.plif_gradient("soft", False, True)
    for line in lif_math.to_triton(math):
        assert line in triton_text, line
    for line in lif_math.to_c(math, "float", declared={"h", "h_prev", "gs", "gv", "gk", "k", "x", "keep", "v"}):
        assert line.split("//")[0].strip() in c_text, line
