"""Data parallelism: the generated train.py under torchrun, 2 processes on the CPU (gloo).

Each run sets SNNC_DUMP_RANK_STATE so that every rank writes its own final
state; the tests compare what the ranks hold, not only what rank 0 saved.
"""

import importlib.util
import itertools
import math
import os
import socket
import subprocess
import sys

import pytest
import torch

from snnc.compiler import compile_to
from snnc.runtime import checkpoint
from trainkit import build, read_metrics

_count = itertools.count()

# The digits network of models/digits.snn without BN: BN statistics are per rank on
# the CPU, so only a BN-free network can match a single process with the global batch.
DIGITS_NO_BN = """
network digits_nobn(T = 4, classes = 10, width = 8) {
  input image[1, 8, 8]
  neuron lif(decay = 0.5, vth = 1.0, reset = hard)
  surrogate triangle(beta = 1.0)

  block basic(c, stride = 1) {
    main = conv(c, 3, stride) -> lif -> conv(c, 3)
    skip = conv(c, 1, stride) if stride != 1 or in != c else identity
    out  = add(main, skip) -> lif
  }

  stem   = conv(width, 3) -> lif
  layer1 = basic(width)
  layer2 = basic(2 * width, stride = 2)
  head   = adaptive_avgpool -> flatten -> fc(classes)
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs a generated train.py (its path is the first argument) with a loss that sends SIGTERM to
# rank 1 alone at one step: the ranks must still agree to stop after the same batch.
SIGTERM_ONE_RANK = """
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("train", sys.argv.pop(1))
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
calls = [0]

def compute_loss(outputs, aux, y):
    calls[0] += 1
    if os.environ["RANK"] == "1" and calls[0] == int(os.environ["SIGTERM_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGTERM)
    return train.compute_loss(outputs, aux, y)

sys.exit(train.trainer.main(train.SPEC, train.model.build_model, compute_loss))
"""


def torchrun(script, args, dump, env=(), nproc=2, timeout=300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *map(str, script), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SNNC_DUMP_RANK_STATE": str(dump), **dict(env)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=dump.parent)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def rank_states(dump, n=2) -> list[dict]:
    states = [torch.load(dump / f"rank-{r}.pt", weights_only=True) for r in range(n)]
    assert [s["rank"] for s in states] == list(range(n)) and all(s["world_size"] == n for s in states)
    return states


@pytest.fixture
def one_thread():
    """Single-threaded torch, as in the torchrun workers (OMP_NUM_THREADS=1), and much faster on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _import_train(build_dir):
    spec = importlib.util.spec_from_file_location(f"train_ddp_{next(_count)}", build_dir / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ranks_hold_identical_beta_and_two_weights(tmp_path):
    # chi_limit=0.5 lies above the chi of these layers, so the second epoch's update must move beta.
    out, mod = build(tmp_path, "digits", "sml+tet+cpng(chi_limit=0.5)+two(warmup=0)")
    run, dump = tmp_path / "run", tmp_path / "dump"
    proc = _ok(torchrun([out / "train.py"], ["--data", "synthetic:128", "--batch-size", "16", "--epochs", "2",
                                             "--lr", "0.01", "--quiet", "--out", str(run)], dump))
    a, b = rank_states(dump)
    for key in a["model"]:
        if key.endswith(".sg_params") or key == "decode.f" or not ("running_" in key or "num_batches" in key):
            assert torch.equal(a["model"][key], b["model"][key]), key  # beta, f and every parameter
    betas = torch.stack([a["model"][f"{layer}.sg_params"][0] for layer in mod.model.CPNG_LAYERS])
    f = a["model"]["decode.f"]
    assert (betas != 1.0).any() and (f != 1.0).any(), (betas, f)  # both controllers really moved
    # Each rank saw other samples in its last batch, so the rule needed the all-reduce to agree.
    assert a["local_h"] != b["local_h"]
    # Only rank 0 logs and writes: one summary per epoch, one metrics line per epoch, one checkpoint.
    assert proc.stdout.count("epoch 1/2") == 1 and proc.stdout.count("done:") == 1
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "manifest.json", "metrics.jsonl", "model.ir"]
    ck = checkpoint.load(run / "checkpoint.pt")
    assert ck["world_size"] == 2 and torch.equal(ck["model"]["decode.f"], f)
    for layer, v in records[-1]["cpng"].items():
        assert a["model"][f"{layer}.sg_params"][0].item() == pytest.approx(v["beta"])
    assert records[-1]["two_weights"] == pytest.approx(f.tolist())


def test_two_processes_match_one_process_with_the_global_batch(tmp_path, one_thread):
    source = tmp_path / "digits_nobn.snn"
    source.write_text(DIGITS_NO_BN)
    out = tmp_path / "build"
    compile_to(source, "tet+cpng(chi_limit=0.5)+two(warmup=0)", out)
    # 64 samples, 2 ranks x 8 vs 1 rank x 16: 4 optimizer steps per epoch either way, no padding.
    # DistributedSampler permutes with the same seed for any world size and gives rank r the
    # positions r, r + 2, r + 4, ... of that permutation; so step k of the two ranks together sees
    # positions [16k, 16k + 16), exactly batch k of the single process. DDP averages the ranks'
    # gradients of per-sample mean losses, which is the gradient of the mean over all 16 samples.
    common = ["--data", "synthetic:64", "--epochs", "2", "--lr", "0.05", "--quiet"]
    dump, ddp = tmp_path / "dump", tmp_path / "ddp"
    # The 2-process run is stopped by a SIGTERM that only rank 1 receives, mid-epoch, and resumed.
    wrapper = tmp_path / "sigterm_one_rank.py"
    wrapper.write_text(SIGTERM_ONE_RANK)
    stopped = torchrun([wrapper, out / "train.py"], common + ["--batch-size", "8", "--out", str(ddp)], dump,
                       env={"SIGTERM_AT_STEP": "6"})
    assert "stopped by SIGTERM after 1 epoch(s) and 2 batch(es)" in stopped.stderr, stopped.stderr[-3000:]
    ck = checkpoint.load(ddp / "checkpoint.pt")
    assert (ck["epoch"], ck["batch"], ck["world_size"], ck["sums"][2]) == (1, 2, 2, 32)  # both ranks' samples
    assert not dump.exists()
    _ok(torchrun([out / "train.py"], common + ["--batch-size", "8", "--out", str(ddp), "--resume"], dump))
    single = _import_train(out)
    assert single.main(common + ["--batch-size", "16", "--out", str(tmp_path / "one")]) == 0
    one = checkpoint.load(tmp_path / "one" / "checkpoint.pt")["model"]
    ranks = rank_states(dump)
    for state in ranks:
        assert state["model"].keys() == one.keys()
        for key, value in one.items():
            torch.testing.assert_close(state["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert (one["decode.f"] != 1).any() and any((one[f"{n}.sg_params"][0] != 1) for n in single.model.CPNG_LAYERS)
    ddp_metrics, one_metrics = read_metrics(ddp), read_metrics(tmp_path / "one")
    assert len(ddp_metrics) == len(one_metrics) == 2
    for a, b in zip(ddp_metrics, one_metrics):
        assert a["train_acc"] == b["train_acc"] and a["test_acc"] == b["test_acc"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


# Calls a generated train.py's main (its path is the first argument) after registering an exit
# handler that leaves a file behind: the handler runs only if the interpreter finalizes. stdout is
# block-buffered (torchrun runs workers unbuffered, other launchers may not).
EXIT_HANDLER = """
import atexit, importlib.util, os, sys
sys.stdout = open(sys.stdout.fileno(), "w", buffering=1 << 16, closefd=False)
spec = importlib.util.spec_from_file_location("train", sys.argv.pop(1))
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
atexit.register(lambda: open(os.environ["FINALIZED_MARK"] + os.environ["RANK"], "w").close())
sys.exit(train.trainer.main(train.SPEC, train.model.build_model, train.compute_loss))
"""


def test_a_finished_worker_ends_without_interpreter_finalization(tmp_path):
    # DDP keeps gloo's worker threads alive past destroy_process_group; one that releases a finished
    # collective's tensor while the interpreter finalizes aborts the process, and torchrun reports
    # the finished run as failed (2 of 300 runs on a busy 2-core machine). So a finished worker ends
    # with os._exit, after flushing its output: rank 0's last lines still reach the pipe.
    source = tmp_path / "digits_nobn.snn"
    source.write_text(DIGITS_NO_BN)
    out, run, dump = tmp_path / "build", tmp_path / "run", tmp_path / "dump"
    compile_to(source, "tet", out)
    wrapper = tmp_path / "exit_handler.py"
    wrapper.write_text(EXIT_HANDLER)
    proc = _ok(torchrun([wrapper, out / "train.py"], ["--data", "synthetic:32", "--batch-size", "8", "--epochs", "1",
                                                     "--quiet", "--out", str(run)], dump,
                        env={"FINALIZED_MARK": str(tmp_path / "finalized-")}))
    assert "done: test accuracy" in proc.stdout, proc.stdout[-2000:]
    assert not list(tmp_path.glob("finalized-*"))
    assert checkpoint.load(run / "checkpoint.pt")["epoch"] == 1 and len(read_metrics(run)) == 1
    assert len(rank_states(dump)) == 2


# Each rank runs one LIF layer on a batch of its own size (3 and 11 samples) and a shifted
# input, then CPNG's update, and saves its input and what the update logged.
CPNG_UNEQUAL_SHARDS = """
import os, sys, torch
from snnc.ops import LIF
from snnc.runtime import distributed as dist
from snnc.runtime.hooks import CPNGHook

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lif = LIF(decay=0.5, vth=1.0, reset="hard", surrogate="triangle(beta=1.0)")
    def forward(self, x):
        return self.lif(x), []

torch.distributed.init_process_group("gloo")
rank = torch.distributed.get_rank()
g = torch.Generator().manual_seed(rank)
x = torch.randn(4, (3, 11)[rank], 5, generator=g) * (1 + rank) + 0.8 * rank
net = Net()
hook = CPNGHook(net, ["lif"], chi_limit=0.2)
net.lif.record_stats = True
net(x)
logged = hook.update()["lif"]
torch.save({"x": x, "logged": logged}, os.path.join(sys.argv[1], f"cpng-{rank}.pt"))
dist.shutdown()
"""


def _lif_h(x: torch.Tensor, decay=0.5, vth=1.0) -> torch.Tensor:
    """h[t] = decay * v[t-1] + x[t], hard reset, in float64 (docs/methods.md §1)."""
    v, hs = torch.zeros_like(x[0], dtype=torch.float64), []
    for t in range(x.shape[0]):
        h = decay * v + x[t].double()
        hs.append(h)
        v = h * (h < vth)
    return torch.stack(hs)


def test_cpng_pools_h_statistics_of_unequal_shards_by_size(tmp_path):
    script = tmp_path / "cpng_unequal.py"
    script.write_text(CPNG_UNEQUAL_SHARDS)
    _ok(torchrun([script], [str(tmp_path)], tmp_path / "dump", timeout=120))
    ranks = [torch.load(tmp_path / f"cpng-{r}.pt", weights_only=True) for r in range(2)]
    hs = [_lif_h(r["x"]) for r in ranks]
    whole = torch.cat([h.flatten() for h in hs])
    mu = whole.sum().item() / whole.numel()
    sigma = math.sqrt(((whole - mu) ** 2).sum().item() / whole.numel())
    chi = 0.5 * (math.erf((1 + 1 - mu) / (sigma * math.sqrt(2))) - math.erf((1 - 1 - mu) / (sigma * math.sqrt(2))))
    for r in ranks:  # both ranks logged the statistics of all 14 samples together
        assert r["logged"]["mu"] == pytest.approx(mu, rel=1e-6)
        assert r["logged"]["sigma"] == pytest.approx(sigma, rel=1e-6)
        assert r["logged"]["chi"] == pytest.approx(chi, rel=1e-6) and r["logged"]["beta"] == 1.0
    # The ranks' own means differ enough that averaging them unweighted would be far off.
    assert abs(sum(h.mean().item() for h in hs) / 2 - mu) > 0.1
