"""Data-parallel training under torchrun: two CPU processes (gloo) stay in lockstep and resume."""

import itertools
import json
import subprocess
import sys
import textwrap

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


def torchrun(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_two_processes_keep_identical_replicas_on_different_data(tmp_path):
    script = tmp_path / "lockstep.py"
    script.write_text(LOCKSTEP)
    done = torchrun(script, tmp_path / "run", tmp_path / "result.json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result == {"world": 2, "rows": 3, "same_weights": True, "same_batches": False}
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3]  # one writer


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
