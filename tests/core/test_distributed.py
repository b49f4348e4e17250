"""Data-parallel training under torchrun: two CPU processes (gloo) stay in lockstep and resume."""

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gancli.data.stream import SeededBatchSampler
from gancli.train import checkpoint as ckpt


def test_each_process_takes_its_slice_of_every_global_batch():
    whole = SeededBatchSampler(50, 8, seed=3, start_batch=5)
    halves = [SeededBatchSampler(50, 8, seed=3, start_batch=5, shard=(rank, 2)) for rank in range(2)]
    for batch, first, second in itertools.islice(zip(iter(whole), *map(iter, halves)), 20):  # endless streams
        assert first + second == batch and len(first) == 4


LOCKSTEP = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import torch, torch.distributed as dist
    from gancli import api
    from gancli.train.trainer import Trainer, start_run_dir
    from recipes import get_recipe

    out, result = Path(sys.argv[1]), sys.argv[2]
    cfg = api.make_config("uncond", out=str(out), resolution=32, width=0.125, z_dim=8, batch_size=8, steps=3,
                          norm="san", penalty="r1", penalty_weight=1.0, device="cpu", log_every=1,
                          sample_every=0, eval_every=0, ckpt_every=3)
    recipe = get_recipe("uncond")(cfg)
    seen = []
    d_step = recipe.d_step
    recipe.d_step = lambda models, batch: seen.append(batch["image"].float().sum()) or d_step(models, batch)
    trainer = Trainer(recipe, out)
    if trainer.world.main:
        start_run_dir(cfg, out)
    trainer.fit()
    flat = torch.cat([p.detach().flatten() for m in trainer.models.values() for p in m.parameters()])
    replicas = [torch.empty_like(flat) for _ in range(trainer.world.size)]
    dist.all_gather(replicas, flat)
    batches = [torch.empty(len(seen)) for _ in range(trainer.world.size)]
    dist.all_gather(batches, torch.stack(seen))
    if trainer.world.main:
        json.dump({"world": trainer.world.size, "rows": len(seen),
                   "same_weights": all(torch.equal(r, replicas[0]) for r in replicas),
                   "same_batches": bool(torch.equal(batches[0], batches[1]))}, open(result, "w"))
    dist.destroy_process_group()
""")


def torchrun_command(*args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]


def torchrun(*args, timeout=240):
    return subprocess.run(torchrun_command(*args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_processes_keep_identical_replicas_on_different_data(tmp_path):
    script = tmp_path / "lockstep.py"
    script.write_text(LOCKSTEP)
    done = torchrun(script, tmp_path / "run", tmp_path / "result.json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result == {"world": 2, "rows": 3, "same_weights": True, "same_batches": False}
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3]  # one writer


@pytest.mark.slow
def test_torchrun_cli_trains_and_resumes_exactly(tmp_path):
    run, whole = tmp_path / "run", tmp_path / "whole"
    tiny = ["--device", "cpu", "--width", "0.125", "--batch-size", "8", "--log-every", "1", "--sample-every", "0",
            "--eval-every", "0", "--ckpt-every", "2", "--deterministic"]
    first = torchrun("-m", "gancli", "train", "uncond", "--steps", "2", "--out", run, *tiny)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("new run in") == 1  # process 1 prints nothing
    state = ckpt.load_state(ckpt.resolve_checkpoint(run))
    assert len(state["rng_ranks"]) == 2 and not torch.equal(state["rng_ranks"][0]["torch"],
                                                            state["rng_ranks"][1]["torch"])
    again = torchrun("-m", "gancli", "train", "uncond", "--resume", run, "--steps", "4")
    assert again.returncode == 0, again.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert ckpt.resolve_checkpoint(run).name == "step_00000004"
    # the same 4 steps without a break: every process's data, noise and RNG resumed where they stopped
    uninterrupted = torchrun("-m", "gancli", "train", "uncond", "--steps", "4", "--out", whole, *tiny)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    resumed, _ = ckpt.load_weights(ckpt.resolve_checkpoint(run))
    straight, _ = ckpt.load_weights(ckpt.resolve_checkpoint(whole))
    assert straight.keys() == resumed.keys() and {"G", "D"} <= straight.keys()
    for name in straight:
        for key in straight[name]:
            assert torch.equal(resumed[name][key], straight[name][key]), f"{name}.{key}"


def _worker_of_rank(agent: int, rank: int) -> int | None:
    """The pid of torchrun's worker process with RANK=rank (read from /proc), or None while it is not there yet."""
    for child in Path(f"/proc/{agent}/task/{agent}/children").read_text().split():
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(child)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers through /proc")
def test_a_signal_to_one_process_stops_every_process_with_one_checkpoint(tmp_path):
    """SIGTERM to process 1 alone: both stop after the same step, and process 0 saves and says why (once)."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        torchrun_command("--monitor-interval", "5", "-m", "gancli", "train", "uncond", "--out", out,
                         "--steps", "100000", "--ckpt-every", "100000", "--resolution", "32", "--width", "0.125",
                         "--batch-size", "8", "--z-dim", "8", "--sample-every", "0", "--eval-every", "0",
                         "--device", "cpu"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.2)
    worker = _worker_of_rank(proc.pid, 1)
    assert (out / "metrics.jsonl").exists() and worker, proc.communicate()[1][-3000:]
    os.kill(worker, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    text = " ".join(stderr.split())
    assert text.count("Stopped by another process's signal") == 1  # process 0 speaks for both
    assert "Stopped by SIGTERM" not in text and "ValueError" not in text and "--resume" in text
    step = int(ckpt.resolve_checkpoint(out).name.split("_")[1])
    assert step >= 10
