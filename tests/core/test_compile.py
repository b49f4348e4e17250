"""`--compile`: compiled training steps give the losses and weights of eager ones, for every recipe (CPU)."""

from pathlib import Path

import pytest
import torch

from gancli import api
from gancli.config import TrainConfig, apply_overrides
from gancli.errors import ConfigError

SIZES = {
    "uncond": {"resolution": 16, "width": 0.125, "z_dim": 4},
    "sr": {"hr_size": 32, "n_blocks": 1, "pretrain_steps": 0},  # its critic penalty runs eagerly (double backward)
    "biggan": {"ch": 2, "z_dim": 16, "resolution": 32, "standing_passes": 0},
    "spade": {"image_size": "32,32", "ngf": 4, "spade_hidden": 4, "ndf": 4, "z_dim": 4, "perceptual": "none"},
    "stargan": {"resolution": 32, "g_width": 8, "g_blocks": 1, "d_width": 8, "d_layers": 3},
}


def train(tmp_path: Path, recipe: str, iters: int, **options):
    """Each iteration's losses, the trainer, and how often dynamo compiled or broke a graph after iteration 1."""
    import torch._dynamo.utils as dynamo_utils

    from gancli.data.stream import batch_stream
    from gancli.train.trainer import Trainer
    from recipes import get_recipe

    torch._dynamo.reset()
    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    cfg = api.make_config(recipe, out=str(out), batch_size=2, steps=iters, device="cpu", sample_every=0,
                          ckpt_every=0, eval_every=0, **SIZES[recipe], **options)
    trainer = Trainer(get_recipe(recipe)(cfg), out)
    stream = batch_stream(trainer.dataset, cfg.batch_size, cfg.seed, 0, 0)
    losses = []
    for i in range(iters):
        if i == 2:
            dynamo_utils.counters.clear()
        losses.append({k: float(v) for k, v in trainer.iteration(stream).items()})
    late = {"frames": dynamo_utils.counters["frames"]["total"],
            "breaks": sum(dynamo_utils.counters["graph_break"].values())}
    return losses, trainer, late


def assert_same_training(eager, compiled, rtol):
    (losses, trainer, _), (c_losses, c_trainer, late) = eager, compiled
    for step, (a, b) in enumerate(zip(losses, c_losses)):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=rtol, abs=1e-6), (step, key)
    for name, model in trainer.models.items():
        theirs = c_trainer.models[name].state_dict()
        assert list(theirs) == list(model.state_dict())  # checkpoints of compiled runs load into eager ones
        # A bias before a batch norm has a zero gradient up to rounding, which Adam scales to steps of ~lr: the
        # weights agree to the updates' size, the losses (above) to float32 rounding.
        step_size = c_trainer.cfg.steps * max(c_trainer.cfg.lr_g, c_trainer.cfg.lr_d)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(theirs[key], value, rtol=rtol, atol=step_size, msg=f"{name}.{key}")
    assert late == {"frames": 0, "breaks": 0}, "steady-state steps recompiled or broke a graph"


@pytest.mark.parametrize("recipe,options", [
    ("uncond", {"norm": "san"}), ("uncond", {"norm": "san", "san_mode": "reparam"}), ("uncond", {"norm": "sn"}),
    ("sr", {}), ("biggan", {}), ("spade", {}), ("stargan", {}),
])
def test_captured_steps_equal_eager_steps(tmp_path, recipe, options):
    """aot_eager captures the same graphs as inductor (dynamo + AOTAutograd) without generating code: fast."""
    eager = train(tmp_path, recipe, 3, **options)
    compiled = train(tmp_path, recipe, 3, compile="default", compile_backend="aot_eager", **options)
    assert_same_training(eager, compiled, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["san", "sn"])
def test_inductor_steps_equal_eager_steps(tmp_path, norm):
    """Generated code (inductor, CPU): the SNDCGAN steps' losses to float32 reassociation."""
    eager = train(tmp_path, "uncond", 3, norm=norm)
    compiled = train(tmp_path, "uncond", 3, norm=norm, compile="default")
    assert_same_training(eager, compiled, rtol=1e-4)


def test_compile_flag_and_its_values(cli, tiny_uncond, tmp_path):
    assert apply_overrides(TrainConfig(), {"compile": "true"}, "t").compile == "default"  # a bare --compile
    assert apply_overrides(TrainConfig(), {"compile": "false"}, "t").compile == "none"  # --no-compile
    assert apply_overrides(TrainConfig(), {"compile": "reduce-overhead"}, "t").compile == "reduce-overhead"
    with pytest.raises(ConfigError, match="'compile' must be one of"):
        api.make_config("uncond", out=str(tmp_path / "r"), compile="fast")
    result = cli("train", "uncond", "--compile", "--set", "compile_backend=aot_eager", "--steps", "2",
                 "--out", tmp_path / "run", *tiny_uncond)
    assert result.exit_code == 0, result.output
    assert 'compile = "default"' in (tmp_path / "run" / "config.toml").read_text()


def test_a_network_that_fails_to_compile_trains_on_eagerly(tmp_path, monkeypatch):
    """Eager is the fallback: a compiler failure (here a backend that always raises) costs speed, not the run."""
    from torch._dynamo.backends.registry import register_backend

    from gancli.train import compile as compile_module

    def broken(graph, inputs):
        raise RuntimeError("no C compiler on this machine")

    register_backend(broken, name="gancli_test_broken")
    real = compile_module.compile_networks
    monkeypatch.setattr("gancli.train.trainer.compile_networks",
                        lambda models, mode, backend: real(models, mode, "gancli_test_broken"))
    eager, _, _ = train(tmp_path, "uncond", 3, norm="san")
    compiled, _, _ = train(tmp_path, "uncond", 3, norm="san", compile="default")
    assert compiled == eager


@pytest.mark.parametrize("args,fragment", [
    (["--compile", "fast"], "'compile' must be one of none, default, reduce-overhead, max-autotune, got 'fast'."),
    (["--set", "compile_backend=tvm"], "'compile_backend' must be one of inductor, aot_eager, eager, got 'tvm'."),
    (["--set", "critic_padding=reflect"], "'critic_padding' must be one of auto, circular, zeros, got 'reflect'."),
])
def test_bad_compile_and_padding_values_are_one_sentence(cli, tiny_uncond, tmp_path, args, fragment):
    result = cli("train", "uncond", *args, "--steps", "1", "--out", tmp_path / "run", *tiny_uncond)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert fragment in " ".join(result.output.split())
