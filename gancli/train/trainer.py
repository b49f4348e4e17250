"""The training loop every recipe shares: n_dis critic steps per generator step, EMA, checkpoints."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gancli import __version__
from gancli.config import TrainConfig, save_toml
from gancli.data.stream import batch_stream
from gancli.device import resolve_device
from gancli.errors import CheckpointError, ConfigError, GancliError, state_dict_mismatch
from gancli.nn import apply_config_norm, count_critic_updates, mark_critic_updated
from gancli.objectives import clip_weights
from gancli.train import checkpoint as ckpt
from gancli.train import distributed
from gancli.train.augment import critic_augmentation
from gancli.train.compile import compile_networks, eager, fallback, step_begins
from gancli.train.ema import EMA
from gancli.train.init_from import initialise_from
from gancli.train.lock import EXIT, write_exit
from gancli.train.plots import plot_metrics, save_grid
from gancli.train.recipe import Recipe
from gancli.train.schedules import lr_factor
from gancli.train.telemetry import Collapse, Telemetry, TrainingCollapsed
from gancli.train.tensorboard import open_tensorboard

clock = time.monotonic  # wall time of checkpoints-by-time and of the logged "wall_time" (tests replace it)
ROLLBACK_LR_FACTOR = 0.5  # on_collapse = "rollback": both learning rates are scaled by this at each rollback
MAX_ROLLBACKS = 3


class TrainingInterrupted(GancliError):
    """Ctrl-C or SIGTERM: the last step was checkpointed and the run can be resumed."""


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Owns models, optimizers, EMA and the run folder of one training run."""

    def __init__(self, recipe: Recipe, run_dir: Path):
        self.recipe, self.cfg, self.run_dir = recipe, recipe.cfg, Path(run_dir)
        cfg = self.cfg
        self.world = distributed.world_from_env()
        if cfg.batch_size % self.world.size:
            raise ConfigError(f"batch_size {cfg.batch_size} (the global batch) does not split evenly over "
                              f"{self.world.size} processes.")
        self.device = distributed.start(self.world, resolve_device(cfg.device))
        recipe.device = self.device
        seed_everything(cfg.seed, cfg.deterministic)  # the same initial weights in every process
        self.models: dict[str, nn.Module] = recipe.build_models()
        if cfg.init_from and not ckpt.step_dirs(self.run_dir):  # a run with checkpoints resumes from them instead
            initialise_from(cfg.init_from, self.models, recipe.name)  # plain networks: before D's normalization
        if "D" in self.models:
            apply_config_norm(self.models["D"], cfg)
            count_critic_updates(self.models["D"])
        self.augment = critic_augmentation(cfg, recipe.name, recipe.no_augment_reason, "D" in self.models)
        if self.augment is not None:
            self.augment.attach(self.models["D"])  # a forward pre-hook: D's weights and state-dict keys are untouched
        self.memory_format = torch.channels_last if cfg.memory_format == "channels_last" else torch.contiguous_format
        for model in self.models.values():
            model.to(self.device, memory_format=self.memory_format).train()
            if self.world.size > 1:
                distributed.broadcast_module(model)
        if self.world.rank:  # every process draws its own noise from here on
            seed_everything(cfg.seed * 1_000_003 + self.world.rank, cfg.deterministic)
        self.G = self.models["G"]
        self.ema = EMA(self.G, cfg.ema_decay, cfg.ema_start) if cfg.ema else None  # a copy made before compiling
        # --compile: after the session's first iteration, which runs eagerly: SAN's convs have then seen their
        # input sizes and projected their initial weights, and trace to plain convs (no graph break per layer)
        self._compile_due = cfg.compile != "none"
        fused = self.device.type == "cuda"  # one kernel for all parameters, no host synchronisation
        self.optimizers = {"G": torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas=tuple(cfg.betas_g), fused=fused)}
        if "D" in self.models:
            self.optimizers["D"] = torch.optim.Adam(self.models["D"].parameters(), cfg.lr_d,
                                                    betas=tuple(cfg.betas_d), fused=fused)
        self.lr_factor = lr_factor(cfg)
        self.base_lr = {"G": cfg.lr_g, "D": cfg.lr_d}
        self.step = 0
        self.best: float | None = None
        self.wall_time = 0.0  # seconds of training before this process started (restored from checkpoints)
        self._session_start = clock()
        self.tensorboard = None
        self.last_eval: dict[str, Any] = {}
        self.eval_disabled: str | None = None
        with distributed.main_first(self.world):
            self.dataset = recipe.build_dataset()
        self.sample_generator_seed = cfg.seed + 2**20
        # σ₀ of every layer and collapse detection (cfg.telemetry_every); its verdicts come to observe()
        self.telemetry = Telemetry(self.models, self.run_dir, cfg, self.world, self.device, self.step)
        self.rollbacks = 0

    # ---- state -------------------------------------------------------------------------
    def weights(self) -> dict[str, dict[str, torch.Tensor]]:
        out = {name: m.state_dict() for name, m in self.models.items()}
        if self.ema is not None:
            out["G_ema"] = self.ema.module.state_dict()
        return out

    def meta(self) -> dict[str, Any]:
        return {"recipe": self.recipe.name, "step": self.step, "gancli": __version__}

    def save(self) -> Path:
        """Checkpoint the step (process 0 writes it; every process's RNG state goes in)."""
        rngs = distributed.gather_objects(rng_state(), self.world)
        path = ckpt.step_dir(self.run_dir, self.step)
        if self.world.main:
            state = {"step": self.step, "best": self.best, "rng": rngs[0], "rng_ranks": rngs,
                     "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                     "wall_time": self.elapsed()}
            if self.augment is not None:
                state["augment"] = self.augment.state_dict()
            path = ckpt.save_step(self.run_dir, self.step, self.weights(), self.meta(), state, self.cfg.keep_ckpts)
        return path

    def restore(self, path: Path) -> None:
        weights, _ = ckpt.load_recipe_weights(path, self.recipe.name)
        state = ckpt.load_state(path)
        networks = {**self.models, **({"G_ema": self.ema.module} if self.ema is not None else {})}
        for name, model in networks.items():
            ckpt.load_module(model, weights, name, path, "this run's networks")
        try:
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
        except (KeyError, RuntimeError) as exc:
            reason = state_dict_mismatch(exc) if isinstance(exc, RuntimeError) else f"no entry {exc}"
            raise CheckpointError(f"Checkpoint '{path}' does not fit this run's networks ({reason}).") from None
        self.step, self.best = state["step"], state.get("best")
        self.wall_time, self._session_start = float(state.get("wall_time", 0.0)), clock()
        if self.augment is not None and "augment" in state:  # ADA's p goes on where it was
            self.augment.load_state_dict(state["augment"])
        self.set_learning_rates()
        rngs = state.get("rng_ranks") or [state["rng"]]
        if len(rngs) == self.world.size:
            set_rng_state(rngs[self.world.rank])
        elif self.world.rank == 0:
            set_rng_state(rngs[0])
        else:  # resumed on another number of processes: fresh, still distinct, noise
            seed_everything(self.cfg.seed * 1_000_003 + self.world.rank + 7919 * self.step, self.cfg.deterministic)

    def resume(self) -> bool:
        """Continue from the latest checkpoint; a run stopped before its first one starts over at step 0 (False)."""
        if not ckpt.step_dirs(self.run_dir):
            if self.world.main:  # the stopped attempt's logs describe weights that were never saved
                (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
                shutil.rmtree(self.run_dir / "tensorboard", ignore_errors=True)
            return False
        self.restore(ckpt.resolve_checkpoint(self.run_dir))
        return True

    # ---- one iteration -----------------------------------------------------------------
    def autocast(self):
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def optimize(self, name: str, step_fn, batches) -> dict[str, float]:
        """One optimizer step of network `name`, accumulating gradients over the micro-batches."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        logs: dict[str, torch.Tensor | float] = {}
        with fallback(self.cfg.compile):
            for batch in batches:
                step_begins(self.cfg.compile)
                if self.augment is not None:
                    self.augment.watch(batch, critic_step=name == "D")
                with self.autocast():
                    loss, parts = step_fn(self.models, batch)
                (loss / len(batches)).backward()
                for k, v in parts.items():  # kept on the device: reading them here would wait for the GPU each step
                    # (a copy: under CUDA graphs a graph's output is overwritten by its next replay)
                    v = (v.detach().to(torch.float32, copy=self.cfg.compile == "reduce-overhead")
                         if torch.is_tensor(v) else float(v))
                    logs[k] = logs.get(k, 0.0) + v / len(batches)
        regularizer = self.recipe.step_regularizer(name, self.models)
        if regularizer is not None:  # once per step: its gradient does not depend on the batch
            term, parts = regularizer
            term.backward()
            logs.update({k: v.detach().float() if torch.is_tensor(v) else float(v) for k, v in parts.items()})
        if self.world.size > 1:
            distributed.average_gradients(self.models[name].parameters(), self.world)
        optimizer.step()
        return logs

    def iteration(self, stream) -> dict[str, float]:
        cfg, logs = self.cfg, {}
        self.recipe.step = self.step
        critic = "D" in self.models and self.recipe.critic_active(self.step) and cfg.n_dis > 0
        rounds = cfg.n_dis if critic else 1
        batches = [[self._to_device(next(stream)) for _ in range(cfg.grad_accum)] for _ in range(rounds)]
        if critic:
            D = self.models["D"].requires_grad_(True)
            for micro in batches:
                logs = self.optimize("D", self.recipe.d_step, micro)
                mark_critic_updated(D)
                if cfg.penalty == "clip":
                    clip_weights(D, cfg.clip_value)
                if self.augment is not None:
                    self.augment.after_critic_step(self.world, self.device)
            D.requires_grad_(False)
        logs.update(self.optimize("G", self.recipe.g_step, batches[-1]))
        if "D" in self.models:
            self.models["D"].requires_grad_(True)
        if self.ema is not None:
            self.ema.update(self.G, self.step)
        self.step += 1
        self.set_learning_rates()
        if self._compile_due:
            compile_networks(self.models, cfg.compile, cfg.compile_backend)
            self._compile_due = False
        return logs

    def set_learning_rates(self) -> None:
        """The schedule is a function of the global step, so a phase without critic steps keeps D's in line."""
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.base_lr[name] * self.lr_factor(self.step)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        def move(v):
            if not torch.is_tensor(v):
                return v
            layout = self.memory_format if v.dim() == 4 else torch.preserve_format
            return v.to(self.device, memory_format=layout, non_blocking=True)

        return {k: move(v) for k, v in batch.items()}

    # ---- outputs -----------------------------------------------------------------------
    def inference_generator(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.G

    def write_samples(self) -> None:
        if not self.world.main:
            return
        G = self.inference_generator()
        was_training = G.training
        G.eval()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []), eager():
            images = self.recipe.sample(G, self.cfg.n_samples, torch.Generator(self.device).manual_seed(
                self.sample_generator_seed))
        G.train(was_training)
        save_grid(images, self.run_dir / "samples" / f"step_{self.step:08d}.png")
        if self.tensorboard is not None:
            self.tensorboard.grid("samples", images, self.step)

    def evaluate(self) -> dict[str, Any]:
        if not self.world.main:  # the others wait for it at their next gradient average
            return {}
        G = self.inference_generator()
        was_training = G.training
        G.eval()
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []), eager():
                scores = self.recipe.evaluate(G)
        except GancliError as exc:  # e.g. missing feature-network weights: train on, say why once
            self.log({"step": self.step, "eval_skipped": str(exc)})
            self.eval_disabled = str(exc)
            scores = {}
        finally:
            G.train(was_training)
        if scores:
            self.last_eval = scores
            self.log({"step": self.step, **{f"eval/{k}": v for k, v in scores.items()}})
            self._keep_best(scores)
        return scores

    def _keep_best(self, scores: dict[str, Any]) -> None:
        if self.recipe.best_metric is None:
            return
        key, mode = self.recipe.best_metric
        value = scores.get(key)
        if not isinstance(value, (int, float)) or math.isnan(value):
            return
        better = self.best is None or (value < self.best if mode == "min" else value > self.best)
        if better:
            self.best = float(value)
            ckpt.write_checkpoint(self.run_dir / "checkpoints" / "best", self.weights(),
                                  {**self.meta(), key: value})

    def log(self, record: dict[str, Any]) -> None:
        if not self.world.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.scalars(record)

    def elapsed(self) -> float:
        """Seconds of training of this run, over all the processes that resumed it."""
        return self.wall_time + clock() - self._session_start

    # ---- the loop ----------------------------------------------------------------------
    def fit(self, on_progress=None) -> dict[str, Any]:
        """Train up to cfg.steps; returns the last evaluation scores."""
        cfg = self.cfg
        per_step = (cfg.n_dis if "D" in self.models and cfg.n_dis > 0 else 1) * cfg.grad_accum
        stream = batch_stream(self.dataset, cfg.batch_size, cfg.seed, self._batches_consumed(per_step),
                              self.workers(), shard=(self.world.rank, self.world.size))
        sums: dict[str, torch.Tensor | float] = {}  # on the device until read_means
        count, t0, last_ckpt = 0, time.perf_counter(), clock()
        if self.world.main:
            self.tensorboard = open_tensorboard(self.run_dir, self.step, cfg.tensorboard)
        try:
            with StopSignal() as stop:
                while self.step < cfg.steps:
                    logs = self.iteration(stream)
                    self.observe(logs)
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                    means: dict[str, float] = {}  # the losses are read from the device only when they are logged
                    if cfg.log_every and self.step % cfg.log_every == 0:
                        elapsed = time.perf_counter() - t0
                        lrs = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}
                        means = self.read_means(sums, count)
                        augment = self.augment.logs() if self.augment is not None else {}
                        self.log({"step": self.step, "wall_time": round(self.elapsed(), 2), "it_s": count / elapsed,
                                  **means, **lrs, **augment})
                        sums, count, t0 = {}, 0, time.perf_counter()
                    if on_progress:
                        on_progress(self.step, means)
                    if cfg.sample_every and self.step % cfg.sample_every == 0:
                        self.write_samples()
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and not self.eval_disabled:
                        self.evaluate()
                    due = bool(cfg.ckpt_minutes) and clock() - last_ckpt >= 60 * cfg.ckpt_minutes
                    if distributed.any_process(due, self.world, self.device) or (
                            cfg.ckpt_every and self.step % cfg.ckpt_every == 0):
                        self.save()
                        last_ckpt = clock()
                    if distributed.any_process(stop.signum is not None, self.world, self.device):
                        path = self.save()
                        cause = (signal.Signals(stop.signum).name if stop.signum is not None
                                 else "another process's signal")
                        raise TrainingInterrupted(
                            f"Stopped by {cause} at step {self.step}; checkpoint saved to "
                            f"'{path}', continue with: gancli train {self.recipe.name} --resume {self.run_dir}")
            self.save()
            self.write_samples()
            if cfg.eval_every and self.step % cfg.eval_every and not self.eval_disabled:
                self.evaluate()
            if self.world.main:
                plot_metrics(self.run_dir / "metrics.jsonl", self.run_dir / "plot.png")
            self.telemetry.finish()
        finally:
            self.close()
        return self.last_eval

    def observe(self, logs: dict[str, torch.Tensor | float]) -> None:
        """Hand the step's losses to telemetry and act on its verdict: roll back, or stop at the last good
        checkpoint."""
        collapse = self.telemetry.observe(self.step, logs)
        if collapse is None:
            return
        if self.cfg.on_collapse == "rollback" and collapse.good is not None and self.rollbacks < MAX_ROLLBACKS:
            self.roll_back(collapse)
            return
        self.telemetry.finish()
        good = collapse.good
        where = (f"the last good checkpoint is '{good}' (`gancli sample {self.run_dir} --checkpoint {good.name}`; "
                 f"--on-collapse rollback continues from it at a lower learning rate)" if good else
                 "no checkpoint was saved before it")
        tried = f" after {self.rollbacks} rollbacks" if self.rollbacks else ""
        raise TrainingCollapsed(f"Training collapsed at step {collapse.step}{tried} ({collapse.what} jumped); "
                                f"{where}.")

    def roll_back(self, collapse: Collapse) -> None:
        """Reload the last good checkpoint and go on at lower learning rates (kept in config.toml for a resume)."""
        self.rollbacks += 1
        self.restore(collapse.good)
        for name in self.base_lr:
            self.base_lr[name] *= ROLLBACK_LR_FACTOR
        self.cfg.lr_g, self.cfg.lr_d = self.base_lr["G"], self.base_lr.get("D", self.cfg.lr_d)
        self.set_learning_rates()
        if self.world.main:
            save_toml(self.cfg, self.run_dir / "config.toml")
        self.telemetry.rolled_back(self.step)
        self.log({"step": collapse.step, "event": "rollback", "to": collapse.good.name, "why": collapse.what,
                  "lr_g": self.cfg.lr_g, "lr_d": self.cfg.lr_d})

    def read_means(self, sums: dict[str, torch.Tensor | float], count: int) -> dict[str, float]:
        """Means of the summed losses over `count` iterations and over the processes, in one transfer from the device."""
        if not sums:
            return {}
        keys = list(sums)
        values = torch.stack([torch.as_tensor(sums[k], dtype=torch.float32, device=self.device) for k in keys])
        return distributed.average_values(dict(zip(keys, (values / count).tolist())), self.world, self.device)

    def close(self) -> None:
        """Flush and close the TensorBoard files (also when training stops early)."""
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None

    def workers(self) -> int:
        if self.cfg.workers >= 0:
            return self.cfg.workers
        cpus = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # shared by torchrun's processes
        return min(8, max(cpus, 1)) if self.device.type == "cuda" else 0

    def _batches_consumed(self, per_step: int) -> int:
        # critic_active may vary by step (e.g. a pretraining phase): count exactly
        if "D" not in self.models or self.cfg.n_dis == 0:
            return self.step * self.cfg.grad_accum
        active = sum(self.recipe.critic_active(s) for s in range(self.step))
        return active * per_step + (self.step - active) * self.cfg.grad_accum


def check_run_dir(cfg: TrainConfig, resume: bool) -> Path:
    """The run folder; a new run never writes into a folder that already holds a run."""
    run_dir = Path(cfg.out)
    if not resume and (run_dir / "config.toml").exists():
        raise ConfigError(f"'{run_dir}' already holds a run; pass --resume {run_dir} to continue it "
                          "or choose another --out.")
    if resume and not (run_dir / "config.toml").is_file():
        raise CheckpointError(f"'{run_dir}' is not a gancli run folder (it has no config.toml), so it cannot be "
                              "resumed.")
    return run_dir


@contextlib.contextmanager
def exit_recorded(run_dir: Path, main: bool):
    """Write RUN/exit.json when training ends: finished, interrupted (signal, Ctrl-C) or failed (with the reason)."""
    if not main:
        yield
        return
    (run_dir / EXIT).unlink(missing_ok=True)  # while training, the lock file says "running"
    try:
        yield
    except (TrainingInterrupted, KeyboardInterrupt) as exc:
        write_exit(run_dir, "interrupted", str(exc))
        raise
    except BaseException as exc:
        write_exit(run_dir, "failed", str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__)
        raise
    write_exit(run_dir, "finished")


def start_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    """Create the folder and write the resolved config (after models and data were built without error)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_toml(cfg, run_dir / "config.toml")
