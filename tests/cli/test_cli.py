"""The foundation's command line: help, version, recipes, train/sample, and every bad input."""

import pytest
import torch

from gancli import __version__, api
from gancli.errors import ConfigError
from gancli.train import checkpoint as ckpt


def assert_error(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    assert "Error:" in text
    for fragment in fragments:
        assert fragment in text, text


def test_help_version_recipes(cli):
    assert cli("--help").exit_code == 0
    result = cli("--version")
    assert result.exit_code == 0 and __version__ in result.output
    result = cli("recipes")
    assert result.exit_code == 0 and "uncond" in result.output and "quick" in result.output


def test_train_and_sample_grid_and_folder(cli, tiny_uncond, tmp_path):
    run = tmp_path / "run"
    result = cli("train", "uncond", "--norm", "san", "--out", run, "--steps", "3", *tiny_uncond)
    assert result.exit_code == 0, result.output
    assert "norm" in result.output and "san" in result.output  # the resolved config is printed
    result = cli("sample", run, "--n", "4", "--out", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output and (tmp_path / "grid.png").is_file()
    result = cli("sample", run, "--n", "3", "--out", tmp_path / "imgs")
    assert result.exit_code == 0 and len(list((tmp_path / "imgs").glob("*.png"))) == 3


@pytest.mark.parametrize("args,fragments", [
    (["train", "nosuch"], ["Unknown recipe 'nosuch'", "uncond"]),
    (["train", "uncond", "--norm", "bogus"], ["bogus", "san"]),
    (["train", "uncond", "--loss", "bogus"], ["bogus", "hinge"]),
    (["train", "uncond", "--penalty", "bogus"], ["bogus", "gp"]),
    (["train", "uncond", "--set", "nokey=1"], ["Unknown config key 'nokey'"]),
    (["train", "uncond", "--set", "steps=many"], ["'steps' expects a value of type int"]),
    (["train", "uncond", "--no-such-flag", "3"], ["Unknown config key 'no_such_flag'"]),
    (["train", "uncond", "--steps", "0"], ["'steps' must be a positive number"]),
    (["train", "uncond", "--steps", "-5"], ["'steps' must be a positive number"]),
    (["train", "uncond", "--batch-size", "0"], ["'batch_size' must be a positive number"]),
    (["train", "uncond", "--preset", "nope"], ["presets", "quick"]),
    (["train", "uncond", "--config", "/no/such.toml"], ["does not exist"]),
    (["train", "uncond", "--memory-format", "nhwc"], ["'memory_format' must be one of contiguous, channels_last"]),
    (["train", "uncond", "--width", "0"], ["'width' must be a positive channel multiplier, got 0.0"]),
    (["train", "uncond", "--z-dim", "0"], ["'z_dim' must be a positive number, got 0"]),
    (["train", "uncond", "--eval-n", "-1"], ["'eval_n' must be a positive number, got -1"]),
    (["train", "uncond", "--eval-metrics", "fid,xyz"], ["'eval_metrics' must name one or more of fid, is, kid"]),
    (["train", "uncond", "--eval-features", "vgg"], ["'eval_features' must be inception or builtin"]),
])
def test_bad_train_input(cli, tmp_path, args, fragments):
    result = cli(*args, "--out", tmp_path / "r", *(["--steps", "1"] if "--steps" not in args else []))
    assert_error(result, *fragments)


def test_global_batch_that_does_not_split_over_torchrun_processes(cli, tmp_path, tiny_uncond, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    result = cli("train", "uncond", "--out", tmp_path / "r", "--steps", "1", *tiny_uncond, "--batch-size", "4")
    assert_error(result, "batch_size 4 (the global batch) does not split evenly over 3 processes")
    assert not (tmp_path / "r").exists()


def test_missing_data_path(cli, tmp_path, tiny_uncond):
    result = cli("train", "uncond", "--data", tmp_path / "missing", "--out", tmp_path / "r", "--steps", "1",
                 *tiny_uncond)
    assert_error(result, "missing")
    assert not (tmp_path / "r").exists()  # a failed start leaves no half-made run folder behind


def test_data_root_names_where_cifar10_is_looked_for(cli, tmp_path, tiny_uncond):
    result = cli("train", "uncond", "--data", "cifar10:train", "--data-root", tmp_path / "datasets",
                 "--out", tmp_path / "r", "--steps", "1", *tiny_uncond)
    assert_error(result, f"CIFAR-10 file '{tmp_path / 'datasets' / 'cifar-10-batches-py' / 'data_batch_1'}' is missing")
    assert not (tmp_path / "r").exists()


def test_run_folder_errors(cli, tmp_path, tiny_uncond):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_error(cli("sample", empty), "not a gancli run folder")
    assert_error(cli("sample", tmp_path / "nothing"), "does not exist")
    run = tmp_path / "run"
    cfg = api.make_config("uncond", out=str(run), steps=1, resolution=32, width=0.125, batch_size=2, z_dim=8)
    from gancli.train.trainer import start_run_dir
    start_run_dir(cfg, run)  # a run folder whose training never reached a checkpoint
    assert_error(cli("sample", run), "has no checkpoints")
    assert_error(cli("sample", run, "--n", "0"), "positive")


def test_existing_run_is_never_overwritten(cli, tmp_path, tiny_uncond):
    run = tmp_path / "run"
    assert cli("train", "uncond", "--out", run, "--steps", "2", *tiny_uncond).exit_code == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert_error(cli("train", "uncond", "--out", run, "--steps", "2", *tiny_uncond), "already holds a run", "--resume")
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert before == after


def test_checkpoint_from_another_recipe(cli, tmp_path, tiny_uncond):
    run = tmp_path / "run"
    assert cli("train", "uncond", "--out", run, "--steps", "2", *tiny_uncond).exit_code == 0
    path = ckpt.resolve_checkpoint(run)
    weights, meta = ckpt.load_weights(path)
    ckpt.write_checkpoint(path, weights, {**meta, "recipe": "sr"}, ckpt.load_state(path))
    assert_error(cli("sample", run), "from recipe 'sr'", "not 'uncond'")
    assert_error(cli("train", "uncond", "--resume", run, "--steps", "4"), "from recipe 'sr'")
    assert_error(cli("train", "sr", "--resume", run), "recipe 'uncond', not 'sr'")


def test_checkpoint_that_does_not_fit_the_runs_networks_is_one_line(cli, tmp_path, tiny_uncond):
    run = tmp_path / "run"
    assert cli("train", "uncond", "--out", run, "--steps", "2", *tiny_uncond).exit_code == 0
    config = run / "config.toml"
    config.write_text(config.read_text().replace("width = 0.125", "width = 0.25"))
    result = cli("train", "uncond", "--resume", run, "--steps", "4")
    assert_error(result, "does not fit this run's networks (size mismatch for", "more)")
    error = result.output[result.output.index("Error:"):]  # after the resolved config the run prints first
    assert len(error.strip().splitlines()) <= 3  # one sentence, not PyTorch's list of every key


def test_a_folder_named_like_a_dataset_is_refused_by_the_cli(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cifar10").mkdir()
    assert_error(cli("eval", "fid", "--real", "cifar10", "--fake", "builtin:train", "--features", "builtin",
                     "--device", "cpu"),
                 "'cifar10' names both the cifar10 dataset and a folder here; write ./cifar10 or folder:cifar10")


def test_truncation_unsupported(cli, tmp_path, tiny_uncond):
    run = tmp_path / "run"
    assert cli("train", "uncond", "--out", run, "--steps", "1", *tiny_uncond).exit_code == 0
    assert cli("sample", run, "--n", "2", "--truncation", "0.5").exit_code == 0  # uncond samples truncated z
    from gancli.runs import sampling_options
    from recipes.sr import SRConfig, SuperResolution

    with pytest.raises(ConfigError, match="Recipe 'sr' does not support --truncation."):
        sampling_options(SuperResolution(SRConfig()), 0.5)
    assert_error(cli("sample", run, "--device", "tpu"), "--device must be auto, cpu, cuda or cuda:N, got 'tpu'")
    assert_error(cli("sample", run, "--out", tmp_path / "x.gif"), "is neither a .png or .jpg file")
    assert not (tmp_path / "x.gif").exists()
    (tmp_path / "file").write_text("x")  # an output path through a file: the OS's reason, no traceback
    assert_error(cli("sample", run, "--out", tmp_path / "file" / "grid.png"),
                 f"Cannot read or write '{tmp_path / 'file'}': File exists.")
    assert_error(cli("train", "uncond", "--out", tmp_path / "file" / "r", "--steps", "1", *tiny_uncond),
                 f"Cannot read or write '{tmp_path / 'file' / 'r'}': Not a directory.")


def test_bench_train_prints_ratios_against_the_baseline(cli):
    result = cli("bench", "train", "uncond", "--iters", "3", "--rounds", "2", "--warmup", "0", "--device", "cpu",
                 "--json", "--set", "width=0.125", "--set", "batch_size=2", "--set", "z_dim=8", "--set",
                 "resolution=16", "--variant", "norm=sn", "--variant", "norm=none,memory_format=contiguous")
    assert result.exit_code == 0, result.output
    import json
    rows = json.loads(result.output)
    assert [r["variant"] for r in rows] == ["baseline", "norm=sn", "norm=none,memory_format=contiguous"]
    assert rows[0]["ratio"] == 1.0 and all(r["it_s"] > 0 and r["rounds"] == 2 for r in rows)
    assert rows[1]["img_s"] == pytest.approx(2 * rows[1]["it_s"]) and rows[1]["peak_mib"] is None  # no CPU peak
    assert_error(cli("bench", "train", "uncond", "--iters", "0"), "--iters and --rounds must be positive")
    assert_error(cli("bench", "train", "uncond", "--rounds", "0"), "--iters and --rounds must be positive")
    assert_error(cli("bench", "train", "uncond", "--variant", "norm=bogus", "--iters", "1", "--device", "cpu"),
                 "Unknown critic normalization")


@pytest.mark.parametrize("error,fragment", [(MemoryError, "out of memory"),
                                            (torch.OutOfMemoryError, "the GPU ran out of memory")])
def test_out_of_memory_is_one_sentence(error, fragment, capsys):
    import typer

    from gancli.cli.app import report_errors

    @report_errors
    def command():
        raise error("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(typer.Exit) as exit_info:
        command()
    assert exit_info.value.exit_code == 1
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("width", [80, 160])
def test_progress_bars_keep_their_numbers_whole_in_a_narrow_terminal(width, monkeypatch):
    """The bar and the losses give way (the losses end in an ellipsis); the count, rate and times never do."""
    from rich.console import Console

    from gancli.cli import ui

    console = Console(width=width, force_terminal=True, color_system=None)
    monkeypatch.setattr(ui, "console", console)
    losses = "D/loss 0.328  D/real 1.502  D/fake -1.056  G/loss 1.512  lr 2e-4"
    bar = ui.progress("it/s")
    task = bar.add_task("real builtin:test:32", total=50000, info=losses)
    bar.update(task, completed=20000)
    bar.tasks[0].finished_speed = 931.2
    with console.capture() as captured:
        console.print(bar.make_tasks_table(bar.tasks))
    (line,) = captured.get().splitlines()
    assert "real builtin:test:32" in line and "20000/50000" in line and "40%" in line and "931.2 it/s" in line
    assert ("lr 2e-4" in line) == (width == 160) and (line.rstrip().endswith("…") == (width == 80))



def test_error_messages_keep_their_brackets(capsys):
    """The one-sentence error is printed as text: a [grid] in it is not taken for rich markup and dropped."""
    import typer

    from gancli.cli.app import report_errors

    @report_errors
    def fails():
        raise ConfigError("Study file 'x.toml' sets 'seed' in [grid]; give seeds = [...] instead.")

    with pytest.raises(typer.Exit) as stop:
        fails()
    assert stop.value.exit_code == 1
    assert "sets 'seed' in [grid]; give seeds = [...] instead." in " ".join(capsys.readouterr().err.split())
