import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gancli import api
from gancli.config import TrainConfig
from gancli.errors import CheckpointError
from gancli.train import checkpoint as ckpt
from gancli.train.ema import EMA
from gancli.train.schedules import lr_factor

TINY = dict(resolution=32, width=0.125, batch_size=4, z_dim=8, log_every=1, sample_every=0, n_samples=4,
            device="cpu", ckpt_every=2, deterministic=True, eval_every=0)


def tiny_config(out, **kw):
    return api.make_config("uncond", out=str(out), **{**TINY, **kw})


def test_exact_resume_reproduces_uninterrupted_run(tmp_path):
    full = api.train(tiny_config(tmp_path / "full", steps=6, norm="san", ema=True, ema_start=2))
    api.train(tiny_config(tmp_path / "part", steps=3, norm="san", ema=True, ema_start=2))
    resumed = api.train(api.resume_config(tmp_path / "part", steps=6), resume=True)
    a, _ = ckpt.load_weights(full.checkpoint())
    b, meta = ckpt.load_weights(resumed.checkpoint())
    assert meta["step"] == 6
    for name in ("G", "D", "G_ema"):
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key} differs after resume"
    logged = [json.loads(line)["step"] for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in logged if s <= 6] == [1, 2, 3, 4, 5, 6]  # resumed logs are appended, not rewritten


def test_memory_format_changes_the_layout_not_the_training(tmp_path):
    from gancli.train.trainer import Trainer
    from recipes import get_recipe

    runs = {}
    for layout in ("channels_last", "contiguous"):
        cfg = tiny_config(tmp_path / layout, steps=2, norm="san", memory_format=layout)
        trainer = Trainer(get_recipe("uncond")(cfg), tmp_path / layout)
        conv_weights = [p for p in trainer.models["D"].parameters() if p.dim() == 4]
        expected = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        assert conv_weights and all(p.is_contiguous(memory_format=expected) for p in conv_weights)
        batch = trainer._to_device({"image": torch.zeros(2, 3, 8, 8), "label": torch.zeros(2)})
        assert batch["image"].is_contiguous(memory_format=expected) and batch["label"].dim() == 1
        runs[layout] = api.train(cfg)
    # the first step's losses come from the same initial weights: equal up to the order of float sums
    # (later steps drift apart further, as Adam's first updates are nearly ±lr whatever the gradient's size)
    first = {layout: json.loads((tmp_path / layout / "metrics.jsonl").read_text().splitlines()[0])
             for layout in runs}
    losses = [key for key in first["contiguous"] if key.startswith(("D/", "G/"))]
    assert losses
    for key in losses:
        assert first["channels_last"][key] == pytest.approx(first["contiguous"][key], rel=1e-4, abs=1e-5), key


def test_keeps_last_k_checkpoints_and_ignores_partial_writes(tmp_path):
    run = api.train(tiny_config(tmp_path / "r", steps=8, ckpt_every=1, keep_ckpts=2))
    names = [p.name for p in ckpt.step_dirs(run.path)]
    assert names == ["step_00000007", "step_00000008"]
    (run.path / "checkpoints" / ".tmp-step_00000009-123").mkdir()  # a killed writer's leftover
    assert ckpt.resolve_checkpoint(run.path).name == "step_00000008"


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    weights = {"G": {"w": torch.ones(3)}}
    ckpt.save_step(tmp_path, 1, weights, {"recipe": "uncond", "step": 1}, {"step": 1}, keep=3)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        ckpt.save_step(tmp_path, 2, {"G": {"w": torch.zeros(3)}}, {"recipe": "uncond", "step": 2}, {"step": 2}, 3)
    assert [p.name for p in ckpt.step_dirs(tmp_path)] == ["step_00000001"]
    loaded, meta = ckpt.load_weights(ckpt.resolve_checkpoint(tmp_path))
    assert torch.equal(loaded["G"]["w"], torch.ones(3)) and meta["step"] == 1


def test_trainer_state_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "c").mkdir()
    torch.save({"x": Evil()}, tmp_path / "c" / ckpt.STATE)
    with pytest.raises(CheckpointError, match="corrupt or unsafe"):
        ckpt.load_state(tmp_path / "c")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly_then_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gancli", "train", "uncond", "--out", str(out), "--steps", "100000",
           "--ckpt-every", "100000", "--resolution", "32", "--width", "0.125", "--batch-size", "4",
           "--z-dim", "8", "--sample-every", "0", "--eval-every", "0", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.2)
    assert (out / "metrics.jsonl").exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "SIGTERM" in stderr and "--resume" in stderr
    step = int(ckpt.resolve_checkpoint(out).name.split("_")[1])
    assert step >= 10
    run = api.train(api.resume_config(out, steps=step + 2), resume=True)
    assert ckpt.load_weights(run.checkpoint())[1]["step"] == step + 2


def test_lr_schedules():
    cfg = TrainConfig(steps=100, lr_schedule="multistep", lr_milestones=[0.125, 0.25, 0.5, 0.75])
    f = lr_factor(cfg)
    assert [f(s) for s in (0, 12, 13, 25, 50, 75, 99)] == [1, 1, 0.5, 0.25, 0.125, 0.0625, 0.0625]
    g = lr_factor(TrainConfig(steps=100, lr_schedule="linear", lr_decay_start=0.5))
    assert g(10) == 1.0 and g(75) == pytest.approx(0.5) and g(100) == 0.0


def test_ema_tracks_before_start_and_averages_after():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, decay=0.5, start=1)
    with torch.no_grad():
        net.weight.fill_(2.0)
    ema.update(net, step=0)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 2.0))
    with torch.no_grad():
        net.weight.fill_(4.0)
    ema.update(net, step=1)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 3.0))


def test_outputs_written(tmp_path):
    run = api.train(tiny_config(tmp_path / "r", steps=2, sample_every=1, eval_every=1, eval_n=20))
    assert (run.path / "plot.png").is_file() and (run.path / "config.toml").is_file()
    scores = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines() if "eval/fid" in line]
    assert [s["step"] for s in scores] == [1, 2] and scores[0]["eval/features"] == "builtin-cnn-v1"
    assert (run.path / "checkpoints" / "best" / "weights.safetensors").is_file()  # best by FID
    assert (run.path / "samples" / "step_00000002.png").is_file()
    images = api.sample(run.path, n=3)
    assert images.shape == (3, 3, 32, 32) and images.min() >= -1 and images.max() <= 1


def test_checkpoints_by_wall_time(tmp_path, monkeypatch):
    from gancli.train import trainer as trainer_module

    now = [0.0]
    monkeypatch.setattr(trainer_module, "clock", lambda: now[0])
    iteration = trainer_module.Trainer.iteration

    def three_minute_iteration(self, stream):
        now[0] += 180.0
        return iteration(self, stream)

    monkeypatch.setattr(trainer_module.Trainer, "iteration", three_minute_iteration)
    run = api.train(tiny_config(tmp_path / "r", steps=9, ckpt_every=0, ckpt_minutes=10, keep_ckpts=10))
    # 10 minutes passed at step 4 (12 min) and again at step 8; the last step is always saved
    assert [p.name for p in ckpt.step_dirs(run.path)] == ["step_00000004", "step_00000008", "step_00000009"]
    times = [json.loads(line)["wall_time"] for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert times == [180.0 * step for step in range(1, 10)]
    assert ckpt.load_state(run.checkpoint())["wall_time"] == 9 * 180.0  # a resumed run counts on from here


def test_exact_resume_with_augmentation(tmp_path):
    kw = dict(norm="sn", augment="ada", ada_target=0.05, ada_interval=1, ada_kimg=0.01)  # p moves 0.4 a step
    full = api.train(tiny_config(tmp_path / "full", steps=4, **kw))
    api.train(tiny_config(tmp_path / "part", steps=2, **kw))
    resumed = api.train(api.resume_config(tmp_path / "part", steps=4), resume=True)
    a, _ = ckpt.load_weights(full.checkpoint())
    b, _ = ckpt.load_weights(resumed.checkpoint())
    for name in ("G", "D"):
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key} differs after resume"
    records = [json.loads(line) for line in (full.path / "metrics.jsonl").read_text().splitlines()]
    assert any(r["augment/p"] > 0 for r in records)  # the augmentation did run in this check
    assert ckpt.load_state(resumed.checkpoint())["augment"] == ckpt.load_state(full.checkpoint())["augment"]


def test_resume_before_the_first_checkpoint_restarts_from_step_0(tmp_path, cli):
    from gancli.train.lock import read_exit

    out = tmp_path / "r"

    def power_cut(step, logs):
        if step == 2:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        api.train(tiny_config(out, steps=3, ckpt_every=0, ckpt_minutes=0), on_progress=power_cut)
    assert not ckpt.step_dirs(out) and (out / "config.toml").is_file()
    assert read_exit(out) == {**read_exit(out), "status": "failed", "message": "power cut"}
    result = cli("train", "uncond", "--resume", out)
    assert result.exit_code == 0, result.stderr
    assert "restarting from step 0 with its saved config" in " ".join(result.stdout.split())
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # the stopped attempt's log went with its weights
    assert read_exit(out)["status"] == "finished" and not (out / "train.lock").exists()
    uninterrupted = api.train(tiny_config(tmp_path / "u", steps=3, ckpt_every=0, ckpt_minutes=0))
    a, _ = ckpt.load_weights(uninterrupted.checkpoint())
    b, _ = ckpt.load_weights(ckpt.resolve_checkpoint(out))
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])


def test_a_second_process_training_into_the_same_run_is_refused(tmp_path, cli, tiny_uncond):
    from gancli.train.lock import RunLock

    run = api.train(tiny_config(tmp_path / "r", steps=1))
    with RunLock(run.path):  # as a training process holds it
        result = cli("train", "uncond", "--resume", run.path, "--steps", "2")
        assert result.exit_code == 1 and "Traceback" not in result.stderr
        assert f"is being trained by process {os.getpid()} right now" in " ".join(result.stderr.split())
        result = cli("train", "uncond", "--out", tmp_path / "new", "--steps", "1", *tiny_uncond)
        assert result.exit_code == 0  # another folder is free
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run.path / "train.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": "x"}))  # a kill -9's leftover
    result = cli("train", "uncond", "--resume", run.path, "--steps", "2")
    assert result.exit_code == 0, result.stderr
    result = cli("train", "uncond", "--resume", tmp_path / "nothing-here")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    with pytest.raises(CheckpointError, match="is not a gancli run folder"):  # the API checks it too
        api.train(tiny_config(tmp_path / "nothing-here"), resume=True)
    assert not (tmp_path / "nothing-here").exists()


def test_tensorboard_files_hold_scalars_samples_and_scores(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = api.train(tiny_config(tmp_path / "r", steps=2, sample_every=2, eval_every=2, eval_n=20))
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert {"D/loss", "G/loss", "lr_G", "wall_time", "eval/fid", "eval/is"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("G/loss")] == [1, 2]
    assert tags["images"] == ["samples"] and events.Images("samples")[0].step == 2


def test_without_tensorboard_training_goes_on_and_says_how_to_install(tmp_path, monkeypatch, caplog, cli,
                                                                     tiny_uncond):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.split(".")[0] == "tensorboard":
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    run = api.train(tiny_config(tmp_path / "r", steps=1))
    assert (run.path / "metrics.jsonl").is_file() and not (run.path / "tensorboard").exists()
    assert "pip install 'gancli[tensorboard]'" in caplog.text
    monkeypatch.setattr(builtins, "__import__", real_import)
    caplog.clear()
    result = cli("train", "uncond", "--out", tmp_path / "off", "--steps", "1", "--no-tensorboard", *tiny_uncond)
    assert result.exit_code == 0 and not (tmp_path / "off" / "tensorboard").exists() and "tensorboard" not in caplog.text


@pytest.mark.parametrize("recipe", ["uncond", "sr"])
def test_steps_keep_their_losses_on_the_device(tmp_path, recipe):
    """An iteration never reads a loss back to the host (a GPU would wait for it every step): its logs are tensors,
    and the trainer reads their means once per log step."""
    from gancli.data.stream import batch_stream
    from gancli.train.trainer import Trainer
    from recipes import get_recipe

    sizes = ({"resolution": 16, "width": 0.125, "z_dim": 4} if recipe == "uncond" else
             {"hr_size": 32, "n_blocks": 1, "pretrain_steps": 0})
    cfg = api.make_config(recipe, out=str(tmp_path / "r"), batch_size=2, steps=1, device="cpu", **sizes)
    trainer = Trainer(get_recipe(recipe)(cfg), tmp_path / "r")
    logs = trainer.iteration(batch_stream(trainer.dataset, cfg.batch_size, cfg.seed, 0, 0))
    assert logs and all(torch.is_tensor(v) and v.dim() == 0 for v in logs.values()), logs
    assert any(k.startswith("D/") for k in logs) and any(k.startswith("G/") for k in logs)
    means = trainer.read_means({k: v * 2 for k, v in logs.items()}, count=2)
    assert means == pytest.approx({k: float(v) for k, v in logs.items()}) and all(
        type(v) is float for v in means.values())
