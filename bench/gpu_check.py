"""The Triton LIF kernels on a GPU: every specialization compiled against the float64 reference, then speed.

    python bench/gpu_check.py               # on a CUDA machine: validation, then the timing table (< 5 min)
    python bench/gpu_check.py --validate    # validation only
    python bench/gpu_check.py --smoke       # tiny, end to end; without CUDA it runs Triton's interpreter

(a) Validation. Every structural specialization (surrogate x reset x charge form x
detach_reset x mask off/on/rescale x fused BN x float64/float32/float16/bfloat16) at a
constexpr T = 4, and the runtime-T kernels for each dtype and charge form, run compiled
and are compared with snnc's eager reference (`snnc.ops.reference`, an autograd loop) in
float64 on the CPU: spikes exactly, gradients to a tolerance. float64 cases use values
that float32 cannot hold (decay = vth = 0.3, beta = 0.3, mask_p = 0.3) and exact ties
h = vth; the other dtypes use inputs on a dyadic grid, where every h is exact in the
storage dtype, so their spikes must match exactly too. Masked cases apply the mask the
Triton mask kernel draws for the key; the keep fraction is checked separately, and read
back from the gradients. Fused BN runs in training mode (batch statistics) in float64
and with an exact affine in eval mode otherwise. Cases run in parallel processes.

(b) Timing. fwd+bwd of one LIF layer at T in {4, 16}, N = 64 x 65536, float32, float16
and bfloat16: snnc, SpikingJelly's Triton LIF (if importable; install it with
`pip install --no-deps spikingjelly loguru`), torch.compile of the eager loop, and the
eager loop; median times, achieved GB/s (6 T N bytes-per-element moved: x, s, h forward;
grad, h, grad_x backward) against the measured copy bandwidth. A contender that fails
prints a row saying so. Anchor (issue 13): SpikingJelly's Triton LIF on an RTX 4090,
float16, 0.77 ms at T = 4 and 1.70 ms at T = 16.

(c) The fused BN+LIF op against torch's BatchNorm then `lif` on the Triton engine at the
ResNet-18/19 layer shapes (bench/bn_lif.py's table; issue 17 asks for <= 0.8).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import multiprocessing
import os
import statistics
import sys
import time
import traceback
import zlib

SURROGATES = ("triangle", "rectangle", "arctan", "dspike", "sigmoid")
# float64: parameters float32 cannot hold; the grid dtypes: ordinary ones.
PARAMS64 = {"triangle": "beta=0.3", "rectangle": "beta=0.7", "arctan": "beta=0.3", "dspike": "b=0.7, region=0.3",
            "sigmoid": "alpha=0.3"}
PARAMS = {"triangle": "beta=1.0", "rectangle": "beta=0.75", "arctan": "beta=1.5", "dspike": "b=2.5, region=1.0",
          "sigmoid": "alpha=4.0"}
DTYPES = ("float64", "float32", "float16", "bfloat16")
MASKS = ("off", "on", "rescale")
TOLERANCE = {"float64": 1e-12, "float32": 1e-5, "float16": 4e-3, "bfloat16": 3e-2}  # gradients, x max |ref|


def cases(smoke: bool) -> list[tuple]:
    """(surrogate, reset, decay_input, detach_reset, mask, fused_bn, dtype, T); T = 3 selects runtime T."""
    full = list(itertools.product(SURROGATES, ("hard", "soft"), (False, True), (False, True), MASKS, (False, True),
                                  DTYPES, (4,)))
    runtime_t = [(s, r, di, False, m, bn, d, 3) for (s, r, di, m, bn), d in
                 zip(itertools.cycle([("dspike", "hard", False, "on", False), ("sigmoid", "soft", True, "off", True),
                                      ("arctan", "soft", False, "rescale", True), ("triangle", "hard", True, "on", False)]),
                     [d for d in DTYPES for _ in range(4)])]
    if not smoke:
        return full + runtime_t
    # a covering subset: each dtype, reset, charge form, mask mode, BN and the runtime-T kernels
    picked = [("triangle", "hard", False, False, "on", False, "float64", 4),
              ("dspike", "soft", True, True, "rescale", True, "float64", 4),
              ("sigmoid", "soft", False, False, "off", True, "float32", 4),
              ("rectangle", "hard", True, False, "on", False, "float16", 4),
              ("arctan", "hard", False, True, "off", True, "bfloat16", 4)]
    return picked + runtime_t[::4]


# --- (a) validation ------------------------------------------------------------------------

def _grid_inputs(torch, T, shape, decay_input, gen):
    # h stays on a dyadic grid: decay = 1 (or 0.5 with decay_input and T <= 4), so h is exact in
    # every storage dtype and the kernel's spikes must equal the float64 reference's.
    if decay_input:
        return torch.randint(-4, 7, (T, *shape), generator=gen).double() / 2
    return torch.randint(-12, 20, (T, *shape), generator=gen).double() / 8


def check_case(case: tuple, device: str, n: int) -> tuple[str, str]:
    """('ok' | 'FAIL' | 'skip', detail) for one specialization."""
    import torch
    import torch.nn.functional as F

    from snnc.backends.triton import launch
    from snnc.ops import bn_lif, lif
    from snnc.ops.mask import mask_key_seed
    from snnc.ops.reference import lif_reference

    surrogate, reset, decay_input, detach, mask, fused_bn, dtype_name, T = case
    dtype = getattr(torch, dtype_name)
    exact64 = dtype_name == "float64"
    gen = torch.Generator().manual_seed(zlib.crc32(repr(case).encode()))
    spelling = f"{surrogate}({(PARAMS64 if exact64 else PARAMS)[surrogate]})"
    if exact64:
        neuron = dict(decay=0.3, vth=0.3)
    else:
        neuron = dict(decay=0.5 if decay_input else 1.0, vth=1.0)
    neuron.update(reset=reset, decay_input=decay_input, detach_reset=detach, surrogate=spelling)
    masked = dict(mask_p=0.3 if exact64 else 0.5, rescale=mask == "rescale") if mask != "off" else {}
    C = 4
    shape = (2, C, n // 8) if fused_bn else (n,)
    if exact64:
        x = torch.randn((T, *shape), generator=gen, dtype=torch.float64) * 0.25 + 0.2
        if decay_input:
            x = x / 0.7
        if not fused_bn:
            tie = 0.3 / 0.7 if decay_input else 0.3
            while decay_input and 0.7 * tie != 0.3:  # (1 - 0.3) * x == vth exactly
                tie = float(torch.tensor(tie, dtype=torch.float64).nextafter(torch.tensor(1.0, dtype=torch.float64)))
            x[0, : n // 4] = tie
    else:
        x = _grid_inputs(torch, T, shape, decay_input, gen)
    grad_out = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype).double()

    keep = None
    if masked:
        keep = launch.keep_mask(mask_key_seed(7, 0, 1), 5, T, x[0].numel(), masked["mask_p"], device).cpu().view(x.shape)

    xd = x.to(device, dtype).requires_grad_()
    leaves_d, leaves_r = [xd], [x.clone().requires_grad_()]
    kw = dict(neuron, **masked, seed=7, mask_key=(0, 1, 5), backend="triton")
    if not fused_bn:
        spikes = lif(xd, **kw)
        ref = lif_reference(leaves_r[0], keep=keep, **{k: v for k, v in neuron.items()}, **masked)
    else:
        if exact64:
            weight = torch.rand(C, generator=gen, dtype=torch.float64) + 0.5
            bias = torch.randn(C, generator=gen, dtype=torch.float64) * 0.3 + 0.2
            running = [torch.randn(C, generator=gen, dtype=torch.float64), torch.rand(C, generator=gen, dtype=torch.float64) + 0.5]
            bn = dict(training=True, momentum=0.1, eps=1e-5, scale=0.7)
        else:
            if not torch.equal(torch.rsqrt(torch.ones(1, device=device)), torch.ones(1, device=device)):
                return "skip", "rsqrt(1) != 1 on this device: the exact-affine BN case cannot be exact"
            weight = torch.ones(C, dtype=torch.float64)
            bias = (torch.randint(-1, 4, (C,), generator=gen).double() / 2 if decay_input
                    else torch.randint(-4, 5, (C,), generator=gen).double() / 8)
            running = [torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)]
            bn = dict(training=False, momentum=0.1, eps=0.0, scale=1.0)
        wd = weight.to(device, torch.float32 if not exact64 else dtype).requires_grad_()
        bd = bias.to(device, wd.dtype).requires_grad_()
        leaves_d += [wd, bd]
        wr, br = weight.clone().requires_grad_(), bias.clone().requires_grad_()
        leaves_r += [wr, br]
        run_d = [r.to(device, wd.dtype) for r in running]
        run_r = [r.clone() for r in running]
        spikes = bn_lif(xd, wd, bd, *run_d, **bn, **kw)
        merged = leaves_r[0].reshape(T * shape[0], *shape[1:])
        xhat = F.batch_norm(merged, run_r[0], run_r[1], None, None, bn["training"], bn["momentum"], bn["eps"])
        y = (bn["scale"] * xhat * wr.view(1, C, 1) + br.view(1, C, 1)).view(x.shape)
        ref = lif_reference(y, keep=keep, **neuron, **masked)
    got_grads = torch.autograd.grad(spikes, leaves_d, grad_out.to(device, dtype))
    want_grads = torch.autograd.grad(ref, leaves_r, grad_out)

    if not torch.equal(spikes.detach().cpu().double(), ref.detach()):
        return "FAIL", f"{(spikes.detach().cpu().double() != ref.detach()).sum().item()} spikes differ"
    rate = ref.detach().mean().item()
    if not 0.05 < rate < 0.95:
        return "FAIL", f"uninformative case: spike rate {rate:.2f}"
    tol = TOLERANCE[dtype_name]
    for name, a, b in zip(("x", "weight", "bias"), got_grads, want_grads):
        scale = b.abs().max().item()
        err = (a.detach().cpu().double() - b).abs().max().item()
        if scale == 0 or err > tol * scale:
            return "FAIL", f"dL/d{name}: max error {err:.3g} vs {tol:g} x {scale:.3g}"
    if fused_bn and bn["training"]:
        for a, b in zip(run_d, run_r):
            if (a.cpu().double() - b).abs().max().item() > 1e-12 * max(1.0, b.abs().max().item()):
                return "FAIL", "running statistics differ"
    return "ok", ""


def check_masks(device: str, n: int) -> list[tuple[str, str, str]]:
    """Keep fractions of the MSG mask kernel and of the backward (read back from gradients)."""
    import torch

    from snnc.backends.triton import launch
    from snnc.ops import lif
    from snnc.ops.mask import mask_key_seed

    rows = []
    T, p = 4, 0.3
    keep = launch.keep_mask(mask_key_seed(1, 0, 2), 3, T, n, p, device)
    sigma = (p * (1 - p) / keep.numel()) ** 0.5
    frac = keep.double().mean().item()
    rows.append(("mask kernel keep fraction", "ok" if abs(frac - (1 - p)) < 4 * sigma else "FAIL",
                 f"{frac:.4f} (want {1 - p} +- {4 * sigma:.4f})"))
    # soft, detached reset: dL/dx[t] - decay * dL/dx[t+1] = g * keep with dL/ds = 1 (tests/test_ops_msg.py)
    for dtype in (torch.float64, torch.float32):
        x = (torch.randn(T, n, dtype=torch.float64) * 0.7 + 0.55).to(device, dtype).requires_grad_()
        s = lif(x, mask_p=p, seed=1, mask_key=(0, 2, 3), reset="soft", detach_reset=True, decay=0.5,
                surrogate="arctan(beta=1.0)", backend="triton")
        (g,) = torch.autograd.grad(s, x, torch.ones_like(s))
        g = g.double().cpu()
        later = torch.cat([g[1:], torch.zeros_like(g[:1])])
        inferred = (g - 0.5 * later) != 0
        same = torch.equal(inferred, keep.cpu())
        frac = inferred.double().mean().item()
        rows.append((f"backward keep fraction ({str(dtype)[6:]})", "ok" if same else "FAIL",
                     f"{frac:.4f}; {'equals' if same else 'differs from'} the mask kernel's mask"))
    return rows


def _init_worker(env: dict) -> None:
    os.environ.update(env)


def validate(device: str, smoke: bool, jobs: int, budget_s: float) -> int:
    n = 96 if smoke else 4099  # several programs of 1024 and a ragged tail
    todo = cases(smoke)
    start = time.perf_counter()
    results: dict[tuple, tuple[str, str]] = {}
    if jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        env = {k: os.environ[k] for k in ("TRITON_INTERPRET",) if k in os.environ}
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                                    initargs=(env,)) as pool:
            futures = {pool.submit(check_case, case, device, n): case for case in todo}
            for future in concurrent.futures.as_completed(futures):
                case = futures[future]
                try:
                    results[case] = future.result(timeout=max(1.0, budget_s - (time.perf_counter() - start)))
                except Exception as exc:  # noqa: BLE001 - reported, never fatal
                    results[case] = ("FAIL", f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
                if time.perf_counter() - start > budget_s:
                    for other in futures:
                        other.cancel()
                    break
    else:
        for case in todo:
            if time.perf_counter() - start > budget_s:
                break
            try:
                results[case] = check_case(case, device, n)
            except Exception as exc:  # noqa: BLE001
                results[case] = ("FAIL", f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
    elapsed = time.perf_counter() - start
    counts = {status: sum(1 for r in results.values() if r[0] == status) for status in ("ok", "FAIL", "skip")}
    not_run = len(todo) - len(results)
    print(f"\n## Validation: {len(todo)} specializations against the float64 reference ({elapsed:.0f} s)\n")
    print(f"ok {counts['ok']}, failed {counts['FAIL']}, skipped {counts['skip']}, not run (time budget) {not_run}\n")
    bad = [(case, r) for case, r in results.items() if r[0] != "ok"]
    if bad:
        print("| surrogate | reset | decay_input | detach | mask | bn | dtype | T | status | detail |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for case, (status, detail) in sorted(bad, key=str)[:60]:
            print("| " + " | ".join(str(c) for c in case) + f" | {status} | {detail} |")
        if len(bad) > 60:
            print(f"\n... and {len(bad) - 60} more")
    mask_rows = []
    try:
        mask_rows = check_masks(device, 4096 if smoke else 1 << 20)
    except Exception as exc:  # noqa: BLE001
        mask_rows = [("MSG masks", "FAIL", f"{type(exc).__name__}: {exc}".splitlines()[0][:200])]
    print("\n| MSG check | status | detail |\n|---|---|---|")
    for row in mask_rows:
        print("| " + " | ".join(row) + " |")
    return counts["FAIL"] + not_run + sum(1 for r in mask_rows if r[1] != "ok")


# --- (b) timing ----------------------------------------------------------------------------

def _contenders(torch, smoke: bool, compile_loop: bool) -> dict:
    """name -> fn(x) returning spikes (or an exception instance if it cannot be built)."""
    from snnc.ops import lif

    args = dict(decay=0.5, vth=1.0, reset="hard", surrogate="sigmoid(alpha=4.0)")  # SpikingJelly's default surrogate
    methods = {"snnc (Triton)": lambda x: lif(x, backend="triton", **args)}
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate

        node = neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0,
                              surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m")

        def spikingjelly(x):
            functional.reset_net(node)
            return node(x)

        methods["SpikingJelly (Triton)" if torch.cuda.is_available() else "SpikingJelly"] = spikingjelly
    except Exception as exc:  # noqa: BLE001
        methods["SpikingJelly (Triton)"] = exc
    eager = lambda x: lif(x, backend="reference", **args)  # noqa: E731
    if compile_loop:
        try:
            methods["torch.compile loop"] = torch.compile(eager)
        except Exception as exc:  # noqa: BLE001
            methods["torch.compile loop"] = exc
    else:
        methods["torch.compile loop"] = RuntimeError("skipped (--smoke or --no-compile)")
    methods["eager loop"] = eager
    return methods


def _time_ms(torch, fn, x, grad, repeats: int, device: str) -> float:
    def once():
        xx = x.detach().requires_grad_()
        torch.autograd.grad(fn(xx), xx, grad)

    for _ in range(2):
        once()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            once()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            once()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def copy_bandwidth(torch, device: str, nbytes: int) -> float:
    """Bytes per second of dst.copy_(src), read + write counted."""
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    times = []
    for _ in range(9):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        dst.copy_(src)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * nbytes / statistics.median(times)


def bench(device: str, smoke: bool, compile_loop: bool, budget_s: float) -> None:
    import torch

    Ts = (4,) if smoke else (4, 16)
    N = 4096 if smoke else 64 * 65536
    dtypes = (torch.float32,) if smoke else (torch.float32, torch.float16, torch.bfloat16)
    repeats = 1 if smoke else 20
    bandwidth = copy_bandwidth(torch, device, (1 << 20) if smoke else (1 << 30))
    methods = _contenders(torch, smoke, compile_loop)
    print(f"\n## fwd+bwd of one LIF layer, N = {N}, surrogate sigmoid(alpha=4), hard reset, decay 0.5\n")
    print(f"measured copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write); bytes moved = 6 T N x element size\n")
    print("| T | dtype | method | fwd+bwd ms | GB/s | % of copy | x snnc |")
    print("|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    for T, dtype in itertools.product(Ts, dtypes):
        gen = torch.Generator().manual_seed(0)
        x = (torch.randn(T, N, generator=gen) * 0.8 + 0.6).to(device, dtype)
        grad = torch.randn(T, N, generator=gen).to(device, dtype)
        moved = 6 * T * N * x.element_size()
        base = None
        for name, fn in methods.items():
            row = f"| {T} | {str(dtype)[6:]} | {name} |"
            if isinstance(fn, Exception):
                print(f"{row} not run: {str(fn).splitlines()[0][:120]} | | | |")
                continue
            if time.perf_counter() - start > budget_s:
                print(f"{row} not run: time budget spent | | | |")
                continue
            try:
                ms = _time_ms(torch, fn, x, grad, repeats, device)
            except Exception as exc:  # noqa: BLE001 - a failing contender is a row, not a crash
                print(f"{row} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''} | | | |")
                continue
            base = base or ms
            gbs = moved / ms / 1e6
            print(f"{row} {ms:.3f} | {gbs:.0f} | {100 * gbs * 1e9 / bandwidth:.0f}% | {ms / base:.2f} |")
    print("\nx snnc: time / snnc's time (higher = snnc faster). Targets (issue 13, H100/H200): "
          ">= 1.2x SpikingJelly-Triton, >= 70% of copy bandwidth.")
    bn_lif_trade(device, smoke)


def bn_lif_trade(device: str, smoke: bool) -> None:
    """(c) The fused BN+LIF op against BatchNorm then lif on the Triton engine (bench/bn_lif.py's table)."""
    import bn_lif as bn_lif_bench  # bench/bn_lif.py, beside this script

    nets, batch = ({"tiny": [(8, 4)]}, 2) if smoke else (bn_lif_bench.SHAPES, 8)
    print(f"\n## fused BN+LIF against BatchNorm then lif, T = 4, batch {batch}, float32, fwd+bwd (x, weight, bias)\n")
    bn_lif_bench.trade_table(device, ["triton"], nets, 4, batch, 1 if smoke else 20)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and a covering subset; runs Triton's interpreter without CUDA")
    parser.add_argument("--validate", action="store_true", help="validation only, no timing")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile contender")
    parser.add_argument("--jobs", type=int, default=None, help="validation processes (default: 12 on CUDA, 1 otherwise)")
    parser.add_argument("--budget", type=float, default=170.0, help="seconds for the validation (default: %(default)s)")
    args = parser.parse_args(argv)

    import torch  # torch.cuda does not import triton: the interpreter can still be chosen below

    cuda = torch.cuda.is_available()
    if not cuda:
        if not args.smoke:
            print("no CUDA device: run with --smoke to exercise the script in Triton's interpreter")
            return 2
        os.environ["TRITON_INTERPRET"] = "1"
    os.environ.setdefault("SJ_LIF_CUDA_IMPLEMENTATION", "triton")  # SpikingJelly: its Triton LIF
    device = "cuda" if cuda else "cpu"
    import triton

    name = torch.cuda.get_device_name(0) if cuda else "CPU (Triton interpreter)"
    print(f"# gpu_check: {name}; torch {torch.__version__}, triton {triton.__version__}"
          f"{', smoke' if args.smoke else ''}")
    jobs = args.jobs or (min(12, os.cpu_count() or 1) if cuda and not args.smoke else 1)
    failed = validate(device, args.smoke, jobs, args.budget)
    if not args.validate:
        try:
            bench(device, args.smoke, compile_loop=not (args.smoke or args.no_compile), budget_s=120.0)
        except Exception:  # noqa: BLE001 - the validation verdict stands; say what broke
            traceback.print_exc()
            print("timing failed (see the traceback above)")
    print(f"\n{'FAILED' if failed else 'PASSED'}: validation")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
