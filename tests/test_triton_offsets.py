"""Element offsets beyond 2^31 in the Triton kernels (issue: t * stride_xt was formed in int32).

A batch-split view has a large time stride: T = 3 steps 1.2e9 elements apart put the last row
2.4e9 elements (> 2^31) past the first, while each row is short. Nothing that large is
allocated here: on the CPU the storage is a sparse file mapped into memory (only the pages of
the three rows are ever touched), so the interpreter dereferences real addresses cheaply. The
check runs in a child process: before the fix the interpreter died with SIGSEGV.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parent.parent
T, N, STRIDE = 3, 1024, 1_200_000_000  # (T - 1) * STRIDE = 2.4e9 > 2^31 - 1; STRIDE itself fits int32

CHECK = textwrap.dedent("""
    import sys
    import torch
    from snnc.ops import bn_lif, lif

    T, N, STRIDE, device, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    numel = (T - 1) * STRIDE + N
    if device == "cpu":
        with open(path, "wb") as f:
            f.truncate(numel * 2)  # sparse: no disk blocks and no memory until a page is touched
        storage = torch.from_file(path, shared=True, size=numel, dtype=torch.float16)
    else:
        storage = torch.empty(numel, dtype=torch.float16, device=device)
    x = storage.as_strided((T, N), (STRIDE, 1))
    gen = torch.Generator().manual_seed(0)
    values = (torch.randn(T, N, generator=gen) * 0.7 + 0.55).half()
    x.copy_(values)
    assert x.stride(0) == STRIDE and x.storage_offset() == 0
    grad_out = torch.randn(T, N, generator=gen).half()

    def fwd_bwd(inp, backend):
        inp = inp.detach().requires_grad_()
        s = lif(inp, backend=backend, surrogate="arctan(beta=1.5)")
        (g,) = torch.autograd.grad(s, inp, grad_out.to(inp.device))
        return s.cpu(), g.cpu()

    got = fwd_bwd(x, "triton")
    want = fwd_bwd(values, "torch")  # the PyTorch path on a contiguous copy
    assert torch.equal(got[0], want[0]), "spikes differ"
    assert 0.1 < want[0].float().mean().item() < 0.9
    torch.testing.assert_close(got[1], want[1], rtol=1e-3, atol=1e-3)

    # The fused BN prologue reads x with the same stride (forward, and the backward's recomputation).
    x3 = x.view(T, 1, N)  # [T, B=1, C=N] with the time stride kept
    assert x3.stride(0) == STRIDE
    w, b = torch.ones(N, device=x.device), torch.zeros(N, device=x.device)
    s = bn_lif(x3.detach().requires_grad_(), w, b, None, None, training=False, momentum=0.1, eps=1e-5,
               backend="triton")
    ref = bn_lif(values.view(T, 1, N).to(x.device), w, b, None, None, training=False, momentum=0.1, eps=1e-5,
                 backend="torch")
    assert torch.equal(s.cpu(), ref.cpu()), "bn_lif spikes differ"
    print("ok")
""")


def run_check(device: str, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", CHECK, str(T), str(N), str(STRIDE), device,
                           str(tmp_path / "sparse.bin")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), (
        f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="the interpreter check (CPU)")
def test_time_stride_beyond_int32_in_the_interpreter(tmp_path):
    run_check("cpu", tmp_path)


@pytest.mark.gpu
def test_time_stride_beyond_int32_compiled(tmp_path):
    # 4.8 GB of float16 on the GPU (one storage, three rows used).
    if torch.cuda.get_device_properties(0).total_memory < 8 * 2**30:
        pytest.skip("needs 8 GiB of GPU memory")
    run_check("cuda", tmp_path)
