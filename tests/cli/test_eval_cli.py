"""`gancli eval fid|is|kid|pr|stats` and `gancli bench eval` through the CLI, including every bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gancli.data.builtin import BuiltinImages
from gancli.data.images import save_image
from gancli.errors import ConfigError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private stats cache, and no Inception or VGG16 weights anywhere (no download either)."""
    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GANCLI_NO_DOWNLOAD", "1")
    monkeypatch.delenv("GANCLI_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("GANCLI_VGG16_WEIGHTS", raising=False)


def _folder(path, split="test", count=24, resolution=32, start=0):
    path.mkdir(parents=True)
    data = BuiltinImages(split, resolution)
    for i in range(count):
        save_image(data[start + i][0], path / f"{i:03d}.png")
    return path


@pytest.fixture
def folders(tmp_path):
    return _folder(tmp_path / "real", "test"), _folder(tmp_path / "fake", "train", start=100)


def assert_error(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    text = " ".join(result.output.split())
    assert "Error:" in text and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, text


BUILTIN = ["--features", "builtin", "--device", "cpu"]


def test_fid_prints_score_feature_network_and_protocol(cli, folders):
    real, fake = folders
    result = cli("eval", "fid", "--real", real, "--fake", fake, *BUILTIN)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "FID " in text and "builtin-cnn-v1 pool128" in text
    assert "real 24 (" in text and "fake 24 (" in text and "resize bilinear-aa-32" in text
    assert "weights sha256 " in text


def test_json_output_and_each_metric(cli, folders):
    real, fake = folders
    for metric, key in (("fid", "fid"), ("kid", "kid"), ("pr", "precision")):
        result = cli("eval", metric, "--real", real, "--fake", fake, *BUILTIN, "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["metric"] == metric and isinstance(data[key], float)
        assert data["protocol"]["feature_net"] == "builtin-cnn-v1" and data["protocol"]["real"]["n"] == 24
    result = cli("eval", "is", "--fake", fake, *BUILTIN, "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and 1.0 <= data["is"] <= 10.0 and data["protocol"]["is_splits"] == 10
    kid = json.loads(cli("eval", "kid", "--real", real, "--fake", fake, *BUILTIN, "--json").stdout)
    assert kid["protocol"]["kid_subset_size"] == 24  # fewer images than 1000: subsets of all of them


def test_stats_file_then_fid_against_it_without_reading_the_data(cli, folders, tmp_path):
    real, fake = folders
    out = tmp_path / "ref.npz"
    result = cli("eval", "stats", real, "--out", out, *BUILTIN)
    assert result.exit_code == 0 and out.is_file(), result.output
    assert_error(cli("eval", "kid", "--real", out, "--fake", fake, *BUILTIN), "no saved features", "--with-features")
    assert cli("eval", "stats", real, "--out", out, "--with-features", *BUILTIN).exit_code == 0
    direct = json.loads(cli("eval", "fid", "--real", real, "--fake", fake, *BUILTIN, "--json").stdout)
    via_file = json.loads(cli("eval", "fid", "--real", out, "--fake", fake, *BUILTIN, "--json").stdout)
    assert via_file["fid"] == pytest.approx(direct["fid"], rel=1e-12)
    assert via_file["protocol"]["real"]["statistics"] == "file"
    kid = cli("eval", "kid", "--real", out, "--fake", fake, *BUILTIN, "--json")
    assert kid.exit_code == 0, kid.output


def test_cache_is_hit_on_the_second_run(cli, folders):
    real, fake = folders
    first = json.loads(cli("eval", "fid", "--real", real, "--fake", fake, *BUILTIN, "--json").stdout)
    second = json.loads(cli("eval", "fid", "--real", real, "--fake", fake, *BUILTIN, "--json").stdout)
    assert first["protocol"]["real"]["statistics"] == "miss"
    assert second["protocol"]["real"]["statistics"] == "hit" and second["fid"] == first["fid"]
    third = json.loads(cli("eval", "fid", "--real", real, "--fake", fake, *BUILTIN, "--json", "--no-cache").stdout)
    assert third["protocol"]["real"]["statistics"] == "off"


def test_a_damaged_cache_entry_is_recomputed_not_trusted(cli, folders, tmp_path):
    real, fake = folders
    first = json.loads(cli("eval", "fid", "--real", real, "--fake", fake, *BUILTIN, "--json").stdout)
    for entry in (tmp_path / "cache" / "stats").glob("*.npz"):
        with np.load(entry) as data:
            mu = data["mu"] + 1
        _tampered(entry, entry, keep_checksum=True, mu=mu)
    again = json.loads(cli("eval", "fid", "--real", real, "--fake", fake, *BUILTIN, "--json").stdout)
    assert again["protocol"]["real"]["statistics"] == "miss" and again["fid"] == first["fid"]


def _make_run(path, with_checkpoint=True, with_ema=False):
    from gancli import api
    from gancli.config import save_toml
    from gancli.train import checkpoint as ckpt
    from recipes import get_recipe

    cfg = api.make_config("uncond", preset="quick", out=str(path), width=0.125, z_dim=8, device="cpu")
    path.mkdir(parents=True)
    save_toml(cfg, path / "config.toml")
    if with_checkpoint:
        G = get_recipe("uncond")(cfg).build_models()["G"]
        weights = {"G": G.state_dict(), **({"G_ema": G.state_dict()} if with_ema else {})}
        ckpt.write_checkpoint(path / "checkpoints" / "step_00000007", weights, {"recipe": "uncond", "step": 7})
    return path


def test_run_folder_as_fake_appends_to_metrics_jsonl(cli, folders, tmp_path):
    real, _ = folders
    run = _make_run(tmp_path / "run")
    result = cli("eval", "fid", "--real", real, "--fake", run, "--n", "20", *BUILTIN)
    assert result.exit_code == 0, result.output
    assert "step_00000007" in result.output and "fake 20 (" in " ".join(result.output.split())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "eval" and records[-1]["step"] == 7 and "fid" in records[-1]["scores"]
    assert "builtin-cnn-v1" in records[-1]["protocol"]["fid"]


def test_the_ema_label_says_which_weights_were_sampled(cli, folders, tmp_path):
    real, _ = folders

    def fake_label(run, *flags):
        result = cli("eval", "fid", "--real", real, "--fake", run, "--n", "4", *flags, *BUILTIN, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["protocol"]["fake"]["label"]

    plain, with_ema = _make_run(tmp_path / "plain"), _make_run(tmp_path / "ema", with_ema=True)
    assert "(EMA)" not in fake_label(plain)  # the config asks for EMA, but the checkpoint has none
    assert fake_label(with_ema).endswith("(EMA)") and "(EMA)" not in fake_label(with_ema, "--no-ema")


def test_conditional_run_is_sampled_class_balanced_with_truncation(tmp_path, monkeypatch):
    """A class-conditional recipe's run gives every class the same number of images, and --truncation reaches it."""
    import dataclasses

    import recipes
    from gancli.config import save_toml
    from gancli.metrics.generative.sources import open_source
    from gancli.runs import run_source
    from gancli.train import checkpoint as ckpt
    from recipes.uncond import Uncond, UncondConfig

    @dataclasses.dataclass
    class ToyConfig(UncondConfig):
        num_classes: int = 5

    calls = []

    class Toy(Uncond):  # paints each image in its class's grey level
        name, Config = "condtoy", ToyConfig

        def sample(self, G, n, generator, labels=None, truncation=None):
            calls.append(truncation)
            return (labels.float() / 4 * 2 - 1).view(n, 1, 1, 1).expand(n, 3, 8, 8)

    monkeypatch.setattr(recipes, "get_recipe", lambda name: Toy if name == "condtoy" else Uncond)
    cfg = ToyConfig(recipe="condtoy", width=0.125, z_dim=8, device="cpu")
    (tmp_path / "run").mkdir()
    save_toml(cfg, tmp_path / "run" / "config.toml")
    G = Toy(cfg).build_models()["G"]
    ckpt.write_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000003", {"G": G.state_dict()},
                          {"recipe": "condtoy", "step": 3})

    with pytest.raises(ConfigError, match="is a run folder; evaluate it through gancli.api"):
        open_source(str(tmp_path / "run"), n=23)  # the metrics never open runs themselves
    source = open_source(str(tmp_path / "run"), n=23, truncation=0.5, open_run=run_source)
    images = torch.cat(list(source.batches(4)))
    classes = (images[:, 0, 0, 0].float() / 255 * 4).round().long()
    assert len(images) == 23 and classes.bincount().tolist() == [5, 5, 5, 4, 4]
    assert set(calls) == {0.5} and source.description["class_balanced"]
    assert "truncation 0.5" in source.label
    with pytest.raises(ConfigError, match="--truncation must be a positive threshold, got -1"):
        open_source(str(tmp_path / "run"), n=23, truncation=-1.0, open_run=run_source)


def test_bench_eval_matches_torch_fidelity_on_cpu(cli):
    result = cli("bench", "eval", "--n", "8", "--size", "16", "--batch-size", "4", "--random-weights",
                 "--repeats", "1", "--device", "cpu", "--memory-format", "all", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    rows = info["rows"]
    assert info["pytorch_default_precision"] == "fp32"  # no TF32 on a CPU: one torch-fidelity run
    assert [(r["engine"], r.get("memory_format")) for r in rows] == [
        ("torch-fidelity", None), ("gancli eager", "channels_last"), ("gancli eager", "contiguous")]
    assert all(r["fid_rel_diff"] < 1e-4 and r["img_per_s"] > 0 for r in rows[1:])


def test_bench_compares_speed_with_pytorchs_defaults_and_scores_with_ieee_fp32():
    """On a TF32 GPU torch-fidelity runs twice: as PyTorch's defaults run it (the speed baseline) and in IEEE fp32
    (the scores' reference)."""
    from gancli.metrics.generative.bench import compare

    row = lambda engine, precision, img_s, fid, **extra: {"engine": engine, "precision": precision,
                                                         "img_per_s": img_s, "fid": fid, "is": 2.0, **extra}
    rows = [row("torch-fidelity", "tf32", 4000, 10.02, pytorch_defaults=True),
            row("torch-fidelity", "fp32", 2000, 10.0, pytorch_defaults=False),
            row("gancli fused", "fp32", 3000, 10.0), row("gancli fused", "tf32", 8000, 9.99),
            row("gancli fused", "bf16", 9000, 10.05), {"engine": "gancli compile", "precision": "fp32", "error": "x"}]
    compare(rows)
    assert [r.get("speedup") for r in rows] == [1.0, 0.5, 0.75, 2.0, 2.25, None]
    assert [r.get("speedup_same_precision") for r in rows] == [1.0, 1.0, 1.5, 2.0, None, None]
    assert [r.get("fid_rel_diff") for r in rows[:5]] == pytest.approx([2e-3, 0, 0, 1e-3, 5e-3])


def test_bench_eval_profile_times_every_step(cli):
    result = cli("bench", "eval", "--n", "4", "--size", "16", "--batch-size", "4", "--random-weights",
                 "--repeats", "1", "--device", "cpu", "--no-baseline", "--profile", "--json")
    assert result.exit_code == 0, result.output
    (profile,) = json.loads(result.stdout)["profiles"]
    names = [step["step"] for step in profile["steps"]]
    assert names[0].startswith("resize") and names[-1].startswith("feature statistics")
    assert "Conv2d_1a_3x3" in names and "Mixed_7c" in names and len(names) == 18 + 3
    assert all(step["ms"] > 0 for step in profile["steps"])
    assert sum(step["share"] for step in profile["steps"]) == pytest.approx(1)
    kernels = profile["kernels"]  # torch.profiler's costliest operators, the convolutions among them
    assert 0 < len(kernels) <= 15 and any("convolution" in k["name"] for k in kernels)
    assert all(k["calls"] > 0 and k["ms"] >= 0 for k in kernels) and sum(k["share"] for k in kernels) <= 1 + 1e-9


# ---- bad input -----------------------------------------------------------------------------
def test_missing_and_empty_folders(cli, folders, tmp_path):
    real, _ = folders
    assert_error(cli("eval", "fid", "--real", real, "--fake", tmp_path / "nope", *BUILTIN), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_error(cli("eval", "fid", "--real", real, "--fake", tmp_path / "empty", *BUILTIN), "contains no images")


def test_data_root_is_where_dataset_specs_are_read(cli, folders, tmp_path):
    """--data-root reaches the CIFAR-10 reader, which checks the official MD5 before reading anything."""
    _, fake = folders
    batches = tmp_path / "datasets" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "test_batch").write_bytes(b"not the official file")
    assert_error(cli("eval", "fid", "--real", "cifar10:test", "--fake", fake, "--data-root", tmp_path / "datasets",
                     *BUILTIN), f"File '{batches / 'test_batch'}' is corrupt or not the official one")
    assert_error(cli("eval", "fid", "--real", "cifar10:test", "--fake", fake, "--data-root", tmp_path / "none",
                     *BUILTIN), "cifar-10-batches-py/test_batch' is missing", "GANCLI_NO_DOWNLOAD is set")


def test_mixed_sizes_and_unreadable_images(cli, folders, tmp_path):
    real, _ = folders
    mixed = _folder(tmp_path / "mixed", count=3)
    Image.new("RGB", (48, 40)).save(mixed / "odd.png")
    assert_error(cli("eval", "fid", "--real", real, "--fake", mixed, *BUILTIN), "odd.png", "share one size")
    broken = _folder(tmp_path / "broken", count=3)
    (broken / "bad.png").write_bytes(b"\x89PNG not really")
    assert_error(cli("eval", "fid", "--real", real, "--fake", broken, *BUILTIN), "bad.png", "corrupt")
    floats = _folder(tmp_path / "floats", count=3)
    Image.fromarray(np.full((32, 32), 0.5, dtype=np.float32), "F").save(floats / "hdr.tif")
    assert_error(cli("eval", "fid", "--real", real, "--fake", floats, *BUILTIN), "hdr.tif", "floating-point pixels")


def test_fewer_images_than_the_kid_subset(cli, folders):
    real, fake = folders
    assert_error(cli("eval", "kid", "--real", real, "--fake", fake, "--subset-size", "1000", *BUILTIN),
                 "subsets of 1000 images", "24 fake")


def test_stats_file_from_another_feature_network(cli, folders, tmp_path):
    real, fake = folders
    out = tmp_path / "ref.npz"
    assert cli("eval", "stats", real, "--out", out, *BUILTIN).exit_code == 0
    weights = tmp_path / "random.pth"
    from gancli.metrics.generative.features import random_inception_state_dict
    torch.save(random_inception_state_dict(0), weights)
    assert_error(cli("eval", "fid", "--real", out, "--fake", fake, "--weights", weights, "--device", "cpu"),
                 "builtin-cnn-v1", "inception-v3-tf-2015-12-05")


@pytest.mark.parametrize("content", [b"", b"not a zip archive"])
def test_empty_or_corrupt_stats_file(cli, folders, tmp_path, content):
    _, fake = folders
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    assert_error(cli("eval", "fid", "--real", bad, "--fake", fake, *BUILTIN), "unreadable or corrupt")


def _tampered(path, out, keep_checksum=False, **changes):
    """A copy of a statistics file with some arrays (or, under 'meta', its JSON record) replaced; without its
    checksum unless asked (as another tool, or a hand, would write it)."""
    with np.load(path) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["meta"]))
    if not keep_checksum:
        del meta["checksum"]
    if "meta" in changes:
        replacement = changes.pop("meta")
        meta = replacement(meta) if callable(replacement) else replacement
    arrays.update(changes, meta=np.array(json.dumps(meta)))
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("change,fragments", [
    ({"meta": [1, 2]}, ["unreadable or corrupt"]),
    ({"n": np.array([3, 4])}, ["unreadable or corrupt"]),
    ({"mu": np.full(128, np.nan)}, ["corrupt", "not finite"]),
    ({"sigma": np.eye(128) * (1 + 1j)}, ["unreadable or corrupt"]),
    ({"pool": np.zeros((3, 128), np.float32)}, ["says 24 images"]),
    ({"pool": np.full((24, 128), np.inf, np.float32)}, ["not finite"]),
    ({"sigma": -5 * np.eye(128)}, ["not symmetric with non-negative variances"]),
    ({"sigma": np.triu(np.ones((128, 128)))}, ["not symmetric with non-negative variances"]),
    ({"mu": np.zeros(64), "sigma": np.eye(64), "pool": np.zeros((24, 64), np.float32)},
     ["its features are not the 128-d pool128 (and 10 logits) of builtin-cnn-v1"]),
    ({"logits": np.zeros((24, 5), np.float32)}, ["its features are not the 128-d"]),
    ({"meta": lambda meta: {k: v for k, v in meta.items() if k != "protocol"}},
     ["made under gancli's evaluation protocol 1", "uses protocol 2", "gancli eval stats"]),
])
def test_tampered_stats_files_are_refused(cli, folders, tmp_path, change, fragments):
    real, fake = folders
    good = tmp_path / "ref.npz"
    assert cli("eval", "stats", real, "--out", good, "--with-features", *BUILTIN).exit_code == 0
    assert cli("eval", "kid", "--real", good, "--fake", fake, "--subset-size", "10", *BUILTIN).exit_code == 0
    bad = _tampered(good, tmp_path / "bad.npz", **change)
    assert_error(cli("eval", "kid", "--real", bad, "--fake", fake, "--subset-size", "10", *BUILTIN), *fragments)


def test_a_stats_file_whose_numbers_changed_after_writing_is_refused(cli, folders, tmp_path):
    real, fake = folders
    good = tmp_path / "ref.npz"
    assert cli("eval", "stats", real, "--out", good, *BUILTIN).exit_code == 0
    with np.load(good) as data:
        mu = data["mu"] + 1
    _tampered(good, tmp_path / "edited.npz", keep_checksum=True, mu=mu)
    assert_error(cli("eval", "fid", "--real", tmp_path / "edited.npz", "--fake", fake, *BUILTIN),
                 "is corrupt (its numbers do not match its checksum)")
    _tampered(good, tmp_path / "unsigned.npz", mu=mu)  # no checksum: checked for sense only, and used
    assert cli("eval", "fid", "--real", tmp_path / "unsigned.npz", "--fake", fake, *BUILTIN).exit_code == 0


def test_a_number_of_images_a_stats_file_does_not_hold(cli, folders, tmp_path):
    real, fake = folders
    ref = tmp_path / "ref.npz"
    assert cli("eval", "stats", real, "--out", ref, *BUILTIN).exit_code == 0
    assert cli("eval", "fid", "--real", ref, "--fake", fake, "--n-real", "24", *BUILTIN).exit_code == 0
    assert_error(cli("eval", "fid", "--real", ref, "--fake", fake, "--n-real", "10", *BUILTIN),
                 "holds the statistics of 24 images, so 10 cannot be taken", "gancli eval stats --n 10")


def test_an_unknown_fid_method_is_refused_before_any_image_is_read(cli, folders, monkeypatch):
    from gancli.metrics.generative import features

    def no_extraction(*args, **kwargs):
        raise AssertionError("images were read")

    monkeypatch.setattr(features, "extract", no_extraction)
    real, fake = folders
    assert_error(cli("eval", "fid", "--real", real, "--fake", fake, "--method", "foo", *BUILTIN),
                 "--method must be one of eigh, sqrtm, eigvals, got 'foo'.")


def test_a_file_that_is_no_spec(cli, folders, tmp_path):
    _, fake = folders
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert_error(cli("eval", "fid", "--real", text, "--fake", fake, *BUILTIN), "is a file; a SPEC is")


def test_run_whose_checkpoint_does_not_fit_its_config_is_one_line(cli, folders, tmp_path):
    real, _ = folders
    run = _make_run(tmp_path / "run")
    config = run / "config.toml"
    config.write_text(config.read_text().replace("width = 0.125", "width = 0.25"))
    result = cli("eval", "fid", "--real", real, "--fake", run, *BUILTIN)
    assert_error(result, "does not fit the run's generator (size mismatch for", "more)")
    assert len(result.output.strip().splitlines()) <= 3  # one sentence (wrapped), not PyTorch's list of every key


def test_scores_are_printed_even_when_the_run_cannot_record_them(cli, folders, tmp_path):
    real, _ = folders
    run = _make_run(tmp_path / "run")
    (run / "metrics.jsonl").mkdir()
    result = cli("eval", "fid", "--real", real, "--fake", run, "--n", "20", *BUILTIN, "--json")
    assert_error(result, "The scores above were not appended to", "metrics.jsonl")
    assert json.loads(result.stdout)["recorded_in"] is None and json.loads(result.stdout)["fid"] > 0


def test_one_image_is_too_few_for_any_metric(cli, folders, tmp_path):
    real, _ = folders
    one = _folder(tmp_path / "one", count=1)
    assert_error(cli("eval", "is", "--fake", one, "--splits", "1", *BUILTIN),
                 f"IS needs at least 2 fake images, and '{one}' gives 1.")
    assert_error(cli("eval", "kid", "--real", one, "--fake", real, *BUILTIN),
                 f"KID needs at least 2 real images, and '{one}' gives 1.")


def test_scores_name_their_layer_and_warn_of_small_sets(cli, folders, tmp_path):
    real, fake = folders
    inception = cli("eval", "is", "--fake", fake, *BUILTIN)
    assert inception.exit_code == 0 and "builtin-cnn-v1 logits10]" in inception.stdout
    assert "builtin-cnn-v1 logits10 ·" in " ".join(inception.stdout.split())
    fid = cli("eval", "fid", "--real", real, "--fake", fake, *BUILTIN)
    assert "builtin-cnn-v1 pool128]" in fid.stdout
    assert "rank-deficient" in fid.stderr and "rank-deficient" not in fid.stdout  # notes go to stderr
    kid = cli("eval", "kid", "--real", real, "--fake", fake, *BUILTIN)
    assert "Every KID subset is the whole set of 24 images" in " ".join(kid.stderr.split())
    same = cli("eval", "fid", "--real", real, "--fake", real, *BUILTIN)
    assert "FID 0.0000 " in same.stdout


def test_a_folder_named_like_a_stats_file_is_a_folder(cli, folders, tmp_path):
    real, fake = folders
    odd = _folder(tmp_path / "odd.npz", count=4)
    result = cli("eval", "fid", "--real", odd, "--fake", fake, *BUILTIN, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["protocol"]["real"]["n"] == 4


def test_run_without_checkpoint(cli, folders, tmp_path):
    real, _ = folders
    run = _make_run(tmp_path / "run", with_checkpoint=False)
    assert_error(cli("eval", "fid", "--real", real, "--fake", run, *BUILTIN), "has no checkpoints")


def test_missing_inception_weights_name_the_file(cli, folders):
    real, fake = folders
    assert_error(cli("eval", "fid", "--real", real, "--fake", fake, "--device", "cpu"),
                 "weights-inception-2015-12-05-6726825d.pth", "--weights")


def test_precision_recall_uses_vgg16_by_default_and_names_its_missing_weights(cli, folders):
    real, fake = folders
    assert_error(cli("eval", "pr", "--real", real, "--fake", fake, "--device", "cpu"),
                 "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth", "--weights")


@pytest.mark.parametrize("args,fragments", [
    (["eval", "fid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "vgg"], ["--features"]),
    (["eval", "fid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "builtin",
      "--precision", "fp8"], ["--precision"]),
    (["eval", "fid", "--real", "nosuch:thing", "--fake", "builtin:train", "--features", "builtin"],
     ["Unknown dataset"]),
    (["eval", "fid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "builtin", "--n", "999999"],
     ["only 20000"]),
    (["eval", "fid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "builtin",
      "--truncation", "0.5"], ["--truncation applies to run folders"]),
    (["eval", "stats", "builtin:test", "--out", "x.txt", "--features", "builtin"], [".npz"]),
    (["eval", "fid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "builtin", "--n", "-5"],
     ["--n must be a positive number of images, got -5"]),
    (["eval", "fid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "builtin", "--n", "0"],
     ["--n must be a positive number of images, got 0"]),
    (["eval", "kid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "builtin",
      "--n-real", "0"], ["--n-real must be a positive number of images, got 0"]),
    (["eval", "stats", "builtin:test", "--out", "x.npz", "--features", "builtin", "--n", "-1"], ["--n must be"]),
    (["eval", "is", "--fake", "builtin:train", "--features", "builtin", "--workers", "-1"],
     ["--workers must be 0 or more, got -1"]),
    (["eval", "kid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "builtin", "--n", "20",
      "--n-real", "20", "--subset-size", "0"], ["KID's subset size must be at least 2, got 0."]),
    (["eval", "is", "--fake", "builtin:train", "--features", "builtin", "--precision", "tf32"],
     ["--precision tf32 needs a CUDA device; use fp32 on the CPU."]),
    (["eval", "fid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "builtin",
      "--engine", "fused"], ["--engine fused applies to the inception features; builtin-cnn-v1 runs in eager"]),
    (["eval", "fid", "--real", "builtin:test", "--fake", "builtin:train", "--features", "builtin",
      "--checkpoint", "5"], ["--checkpoint applies to run folders, and 'builtin:train' is not one."]),
    (["eval", "stats", "builtin:test", "--out", ".npz", "--features", "builtin"],
     ["--out must be a file name ending in .npz, got '.npz'."]),
    (["eval", "stats", "builtin:test", "--out", "x.npz", "--weights", "."],
     ["Weights file '.' (given by --weights) is a folder, not a file."]),
    (["bench", "eval", "--random-weights", "--memory-format", "nhwc"],
     ["--memory-format must be one of channels_last, contiguous or all, got 'nhwc'."]),
])
def test_bad_options(cli, args, fragments):
    assert_error(cli(*args, "--device", "cpu"), *fragments)


def test_stats_file_under_a_file_is_a_clear_error(cli, tmp_path):
    (tmp_path / "file.png").write_bytes(b"x")
    out = tmp_path / "file.png" / "stats.npz"
    assert_error(cli("eval", "stats", "builtin:test", "--out", out, "--n", "10", *BUILTIN),
                 f"Cannot write statistics file '{out}'")


def test_verbs_a_recipe_lacks_are_refused_in_one_sentence(cli, tmp_path):
    """Every verb goes through api.load; a run whose recipe lacks it is refused before any image is read."""
    run = _make_run(tmp_path / "run")
    image = tmp_path / "in.png"
    save_image(torch.zeros(3, 8, 8, dtype=torch.uint8), image)
    result = cli("upscale", run, image, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "This is a 'uncond' run; `gancli upscale` needs an sr run." in result.output
    assert not (tmp_path / "out").exists()
    result = cli("eval", "sr", run, "--data", "builtin")
    assert result.exit_code == 1 and "This is a 'uncond' run; `gancli eval sr` needs an sr run." in result.output
    result = cli("translate", run, image, "--attr", "Male=1", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "This is a 'uncond' run; `gancli translate` needs a stargan run." in result.output
    result = cli("synthesize", run, image, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "This is a 'uncond' run; `gancli synthesize` needs a spade run." in result.output


def test_api_evaluate_takes_a_run_folder(tmp_path):
    from gancli import api

    run = _make_run(tmp_path / "run")
    score = api.evaluate("fid", fake=run, real="builtin:test:32", features="builtin", device="cpu", n=20, n_real=20)
    assert score.metric == "fid" and score.value > 0
    assert score.protocol["fake"]["kind"] == "run" and "step_00000007" in score.protocol["fake"]["label"]
