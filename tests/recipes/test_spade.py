"""The spade recipe: SPADE against its definition, the multi-scale critic, real formats, synthesize, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.nn.utils import parametrize

from gancli.data.scenes import BuiltinScenes, colourize
from gancli.data.segmentation import (
    ADE20K,
    Cityscapes,
    ids_from_colours,
    instance_edges,
    open_segmentation,
)
from gancli.errors import ConfigError, DataError
from gancli.metrics.judges.segmentation import SegmentationScore
from gancli.nn import apply_critic_norm
from recipes.spade_nets import (
    SPADE,
    MultiScaleCritic,
    SPADEGenerator,
    feature_matching_loss,
)

TINY = ["--image-size", "32,32", "--ngf", "4", "--spade-hidden", "4", "--ndf", "4", "--z-dim", "4",
        "--batch-size", "2", "--steps", "2", "--log-every", "1", "--sample-every", "0", "--eval-every", "0",
        "--ckpt-every", "0", "--n-samples", "2", "--device", "cpu", "--perceptual", "none"]


def onehot(label: torch.Tensor, n: int) -> torch.Tensor:
    return F.one_hot(label, n).permute(0, 3, 1, 2).float()


# ---- SPADE and the networks ------------------------------------------------------------------
def test_spade_is_its_definition():
    """BN(x) without affine, ·(1 + γ(m)) + β(m), m the label map resized with nearest neighbour to x."""
    torch.manual_seed(0)
    block = SPADE(4, 3, hidden=5)
    x, seg = torch.randn(2, 4, 8, 8), onehot(torch.randint(0, 3, (2, 16, 16)), 3)
    m = seg[:, :, ::2, ::2]  # nearest 16 → 8 keeps every other pixel
    hidden = torch.relu(block.shared[0](m))
    expected = F.batch_norm(x, None, None, training=True) * (1 + block.gamma(hidden)) + block.beta(hidden)
    torch.testing.assert_close(block(x, seg), expected)


def test_spade_output_depends_on_the_map_and_not_on_other_samples_in_eval():
    torch.manual_seed(0)
    G = SPADEGenerator(5, (32, 32), ngf=1, hidden=4)
    G(onehot(torch.randint(0, 5, (4, 32, 32)), 5))  # one training step's statistics
    G.eval()
    maps = onehot(torch.randint(0, 5, (3, 32, 32)), 5)
    with torch.no_grad():
        alone = G(maps[:1])
        together = G(maps)
        other = G(torch.cat([maps[:1], maps[2:]]))
    assert not torch.allclose(together[0], together[1])  # another map, another image
    torch.testing.assert_close(alone[0], together[0])
    torch.testing.assert_close(together[0], other[0])


def test_generator_shapes_and_upsampling_modes():
    for upsampling, size in (("normal", (32, 64)), ("more", (64, 64))):
        G = SPADEGenerator(3, size, ngf=1, hidden=2, upsampling=upsampling)
        out = G(onehot(torch.randint(0, 3, (2, *size)), 3))
        assert out.shape == (2, 3, *size) and out.abs().max() <= 1
    # NVlabs/SPADE generator.py compute_latent_vector_size: Cityscapes (crop 512, aspect 2, "more") starts at 4×8,
    # ADE20K and COCO (crop 256, "normal") at 8×8
    cityscapes = SPADEGenerator(3, (256, 512), ngf=1, hidden=1, upsampling="more")
    assert (cityscapes.n_up, cityscapes.sh, cityscapes.sw) == (6, 4, 8)
    ade20k = SPADEGenerator(3, (256, 256), ngf=1, hidden=1)
    assert (ade20k.n_up, ade20k.sh, ade20k.sw) == (5, 8, 8)
    G = SPADEGenerator(3, (32, 64), ngf=1, hidden=2)
    assert G.n_up == 3  # small images start at 4×8, not 1×2, where eval-mode batch norm breaks down
    assert G(onehot(torch.zeros(1, 64, 96, dtype=torch.long), 3)).shape == (1, 3, 64, 96)  # any multiple of 32
    vae = SPADEGenerator(3, (32, 32), ngf=1, hidden=2, use_vae=True, z_dim=6)
    mu, logvar = vae.encode(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert mu.shape == logvar.shape == (2, 6)
    assert vae(onehot(torch.zeros(2, 32, 32, dtype=torch.long), 3), mu).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("norm", ["none", "sn", "san"])
def test_multiscale_critic_shapes_under_every_norm(norm):
    D = MultiScaleCritic(5, ndf=4, n_layers=4, num_d=2)
    apply_critic_norm(D, norm, ratio=0.25, gain=1.3)
    outputs = D(torch.randn(2, 5, 64, 32))
    assert len(outputs) == 2
    # 4×4 convs with padding 2: stride 2 maps s to s // 2 + 1, stride 1 to s + 1
    for (h, w), scale in zip(((64, 32), (32, 16)), outputs):
        sizes = []
        for stride in (2, 2, 2, 1, 1):
            h, w = (h // 2 + 1, w // 2 + 1) if stride == 2 else (h + 1, w + 1)
            sizes.append((h, w))
        assert [tuple(f.shape[1:]) for f in scale] == [(c, *s) for c, s in zip((4, 8, 16, 32, 1), sizes)]


@pytest.mark.parametrize("norm", ["sn", "san"])
def test_critic_norm_leaves_the_first_and_last_conv_of_each_scale_plain(norm):
    # NVlabs/SPADE models/networks/discriminator.py (NLayerDiscriminator): norm_layer wraps only the middle convs
    D = apply_critic_norm(MultiScaleCritic(5, ndf=4, n_layers=4, num_d=2), norm, ratio=0.25, gain=1.3, mode="reparam")
    for scale in D.scales:
        convs = [block[0] for block in scale.blocks]
        normalized = [parametrize.is_parametrized(conv, "weight") for conv in convs]
        assert normalized == [False, True, True, True, False]
        if norm == "san":  # SAN's circular padding (SAN §4.2) covers the plain convs too
            assert all(conv.padding_mode == "circular" for conv in convs)


def test_feature_matching_is_l1_of_intermediate_features_over_scales():
    fake = [[torch.ones(1, 2, 3, 3, requires_grad=True), torch.zeros(1, 1, 2, 2)] for _ in range(2)]
    real = [[torch.zeros(1, 2, 3, 3, requires_grad=True), torch.full((1, 1, 2, 2), 5.0)] for _ in range(2)]
    loss = feature_matching_loss(fake, real)
    assert loss.item() == pytest.approx(1.0)  # the logits (last) are not matched; mean over scales
    loss.backward()
    assert fake[0][0].grad is not None and real[0][0].grad is None
    same = [[f.detach() for f in scale] for scale in fake]
    assert feature_matching_loss(same, same).item() == 0


# ---- data ---------------------------------------------------------------------------------
def test_builtin_scenes_are_deterministic_and_scale_free():
    a, b = BuiltinScenes("val", (32, 64)), BuiltinScenes("val", (64, 128))
    photo, label, instance = a[3]
    assert photo.dtype == torch.uint8 and photo.shape == (3, 32, 64) and label.shape == (32, 64)
    torch.testing.assert_close(a[3][1], label)
    assert (b[3][1][::2, ::2] == label).float().mean() > 0.9  # the same layout at twice the size
    assert set(label.unique().tolist()) <= set(range(8)) and len(label.unique()) >= 3
    assert instance_edges(instance).sum() > 0


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_cityscapes(root: Path, label_value: int = 7, instances: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for city, frame in (("aachen", "000000_000019"), ("bremen", "000001_000019")):
            stem = f"{city}_{frame}"
            _png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                 rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
            label = np.full((32, 64), 23, np.uint8)
            label[16:, :] = label_value
            _png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label)
            if instances:
                inst = np.full((32, 64), 23, np.uint16)
                inst[20:28, 10:30] = 26000
                _png(root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png", inst)
    return root


def make_ade20k(root: Path, label_value: int = 150) -> Path:
    rng = np.random.default_rng(0)
    base = root / "ADEChallengeData2016"
    for sub, name in (("training", "ADE_train_00000001"), ("validation", "ADE_val_00000001")):
        _png(base / "images" / sub / f"{name}.jpg", rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
        label = np.zeros((40, 50), np.uint8)
        label[:, 25:] = label_value
        _png(base / "annotations" / sub / f"{name}.png", label)
    return root


def test_cityscapes_layout(tmp_path):
    data = Cityscapes(make_cityscapes(tmp_path / "cs"), "train", (16, 32), instances=True)
    assert len(data) == 2 and data.num_labels == 35
    photo, label, instance = data[0]
    assert photo.shape == (3, 16, 32) and label.shape == instance.shape == (16, 32)
    assert set(label.unique().tolist()) == {7, 23}  # nearest neighbour: no ids in between
    assert instance_edges(instance).sum() > 0
    assert open_segmentation(str(tmp_path / "cs"), "val", (16, 32)).name == "cityscapes:val"


def test_ade20k_layout(tmp_path):
    data = ADE20K(make_ade20k(tmp_path / "ade"), "val", (16, 16))
    photo, label, instance = data[0]
    assert data.num_labels == 151 and photo.shape == (3, 16, 16) and instance is None
    assert set(label.unique().tolist()) == {0, 150}
    assert open_segmentation(f"ade20k:{tmp_path / 'ade'}", "train", (16, 16)).name == "ade20k:train"


def test_a_label_id_past_the_count_names_file_and_id(tmp_path, cli):
    root = make_cityscapes(tmp_path / "cs", label_value=40)
    with pytest.raises(DataError, match=r"gtFine_labelIds.png' has id 40, but cityscapes:train has 35 label ids"):
        Cityscapes(root, "train", (16, 32))[0]
    result = cli("train", "spade", "--data", root, "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 1 and "has id 40" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
    ade = make_ade20k(tmp_path / "ade", label_value=151)
    with pytest.raises(DataError, match="has id 151, but ade20k:train has 151 label ids"):
        ADE20K(ade, "train", (16, 16))[0]


def test_a_missing_partner_names_both_paths(tmp_path, cli):
    root = make_cityscapes(tmp_path / "cs")
    label = root / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"
    label.unlink()
    result = cli("train", "spade", "--data", root, "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 1
    assert "aachen_000000_000019_leftImg8bit.png' has no label map" in result.output
    assert "aachen_000000_000019_gtFine_labelIds.png" in result.output
    (root / "gtFine/val/bremen/bremen_000001_000019_gtFine_instanceIds.png").unlink()
    with pytest.raises(DataError, match="has no instance map '.*bremen_000001_000019_gtFine_instanceIds.png'"):
        Cityscapes(root, "val", (16, 32), instances=True)
    ade = make_ade20k(tmp_path / "ade")
    (ade / "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png").unlink()
    with pytest.raises(DataError, match="ADE_val_00000001.jpg' has no label map '.*ADE_val_00000001.png'"):
        ADE20K(ade, "val")


def test_a_label_count_that_is_not_the_datas_is_refused(tmp_path, cli):
    root = make_cityscapes(tmp_path / "cs")
    result = cli("train", "spade", "--data", root, "--label-nc", "20", "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 1
    assert "label_nc is 20 but cityscapes:train has 35 label ids" in result.output
    result = cli("train", "spade", "--data", tmp_path, "--out", tmp_path / "run", *TINY)
    assert result.exit_code == 1 and "neither the Cityscapes layout" in result.output


def test_bad_image_size_and_missing_vgg_weights(tmp_path, cli):
    result = cli("train", "spade", "--out", tmp_path / "run", *TINY, "--image-size", "48,32")
    assert result.exit_code == 1 and "both multiples of 32" in result.output
    result = cli("train", "spade", "--out", tmp_path / "run", *TINY, "--perceptual", "vgg19",
                 "--vgg-weights", tmp_path / "vgg19.pth")
    assert result.exit_code == 1 and "VGG19 weights file" in result.output and "--perceptual none" in result.output


# ---- training, sampling, synthesize -------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A label-map run and a VAE run with instance edges, two steps each, on the builtin scenes."""
    from typer.testing import CliRunner

    from gancli.cli import app

    base = tmp_path_factory.mktemp("spade")
    runs = {}
    for name, extra in (("plain", []), ("vae", ["--use-vae", "--instance-edges", "--norm", "sn", "--grad-accum", "2"])):
        result = CliRunner().invoke(app, ["train", "spade", "--out", str(base / name), *TINY, *extra])
        assert result.exit_code == 0, result.output
        runs[name] = base / name
    return runs


def test_training_logs_the_paper_losses(tiny_runs):
    records = [json.loads(line) for line in (tiny_runs["plain"] / "metrics.jsonl").read_text().splitlines()]
    assert {"D/loss", "G/adv", "G/feat"} <= set(records[-1])
    vae = [json.loads(line) for line in (tiny_runs["vae"] / "metrics.jsonl").read_text().splitlines()]
    assert "G/kld" in vae[-1]
    assert "label_nc = 8" in (tiny_runs["plain"] / "config.toml").read_text()


def _write_maps(folder: Path, size=(32, 64), count=2) -> list[Path]:
    data = BuiltinScenes("val", size)
    files = []
    for i in range(count):
        _, label, instance = data[i]
        files.append(_png(folder / f"map{i}.png", label.numpy().astype(np.uint8)))
        _png(folder / f"map{i}_instanceIds.png", instance.numpy().astype(np.uint16))
        _png(folder / f"colour{i}.png", colourize(label).permute(1, 2, 0).numpy())
    return files


def test_synthesize_on_a_saved_run(tiny_runs, tmp_path, cli):
    maps = _write_maps(tmp_path / "maps")
    result = cli("synthesize", tiny_runs["plain"], *maps, "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out/map0.png").size == (64, 32)
    colours = [tmp_path / "maps/colour0.png", tmp_path / "maps/colour1.png"]
    result = cli("synthesize", tiny_runs["plain"], *colours, "--palette", "--out", tmp_path / "pal", "--device", "cpu")
    assert result.exit_code == 0, result.output
    same = np.asarray(Image.open(tmp_path / "pal/colour0.png")), np.asarray(Image.open(tmp_path / "out/map0.png"))
    assert np.array_equal(*same)  # the colour map is the same map
    square = _write_maps(tmp_path / "square", size=(32, 32), count=1)
    result = cli("synthesize", tiny_runs["vae"], square[0], "--n-styles", "2", "--style", tmp_path / "out/map1.png",
                 "--out", tmp_path / "styles", "--device", "cpu")
    assert result.exit_code == 0, result.output
    a, b = (np.asarray(Image.open(tmp_path / f"styles/map0_style{k}.png")) for k in range(2))
    assert a.shape == (32, 32, 3) and not np.array_equal(a, b)


def test_synthesize_bad_inputs(tiny_runs, tmp_path, cli):
    folder = tmp_path / "maps"
    maps = _write_maps(folder)
    bad_id = _png(folder / "bad_id.png", np.full((32, 32), 9, np.uint8))
    bad_size = _png(folder / "bad_size.png", np.zeros((30, 64), np.uint8))
    odd_colour = _png(folder / "odd.png", np.full((32, 32, 3), 3, np.uint8))
    plain, vae = tiny_runs["plain"], tiny_runs["vae"]
    cases = [
        ((plain, bad_id), "bad_id.png' has id 9, but run"),
        ((plain, bad_size), "is 64×30, but this generator takes maps whose sides are multiples of 8"),
        ((vae, maps[0]), "is 64×32, but this run's VAE generator makes 32×32 images only"),
        ((plain, odd_colour, "--palette"), "odd.png' has colour (3, 3, 3) at pixel (0, 0)"),
        ((plain, folder / "colour0.png"), "colour0.png' has RGB pixels; label maps hold one id per pixel"),
        ((plain, maps[0], "--n-styles", "2"), "trained without the VAE style encoder"),
        ((vae, folder / "nomap.png"), "nomap.png' does not exist"),
    ]
    for args, message in cases:
        result = cli("synthesize", *args, "--out", tmp_path / "out", "--device", "cpu")
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    lone = _png(tmp_path / "lone" / "map.png", np.zeros((32, 32), np.uint8))
    result = cli("synthesize", vae, lone, "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 1 and "has no instance map" in result.output and "map_instanceIds.png" in result.output


def test_sample_walks_the_validation_maps_and_eval_fid_takes_the_run(tiny_runs, tmp_path, cli):
    from gancli.api import open_run

    run = open_run(tiny_runs["plain"])
    G = run.load_generator(device="cpu")
    generator = torch.Generator().manual_seed(0)
    first, second = run.recipe.sample(G, 2, generator), run.recipe.sample(G, 2, generator)
    again = run.recipe.sample(G, 4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.cat([first, second]), again)
    labels, _, _ = run.recipe.validation_batch([0, 2])
    torch.testing.assert_close(again[[0, 2]], run.recipe.synthesize(G, labels))
    real = tmp_path / "real"
    data = BuiltinScenes("val", (32, 32))
    for i in range(6):
        _png(real / f"{i}.png", data[i][0].permute(1, 2, 0).numpy())
    result = cli("eval", "fid", "--fake", tiny_runs["plain"], "--real", real, "--n", "6", "--features", "builtin",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "FID" in result.output


# ---- evaluation ---------------------------------------------------------------------------
def test_segmentation_score_by_hand():
    score = SegmentationScore(3, ignore_label=0)
    truth = torch.tensor([[0, 1, 1, 2]])
    score.add(torch.tensor([[2, 1, 2, 2]]), truth)
    # pixel 0 is don't care; class 1: 1 hit, union 2; class 2: 1 hit, union 2
    assert score.result() == {"miou": pytest.approx(0.5), "pixel_accuracy": pytest.approx(2 / 3)}


def test_torchvision_segmenter_weights(tmp_path):
    import torchvision

    from gancli.errors import ConfigError, MissingWeightsError
    from gancli.metrics.judges.segmentation import load_segmenter

    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                        num_classes=8)
    torch.save(model.state_dict(), tmp_path / "seg.pth")
    segmenter = load_segmenter(8, tmp_path / "seg.pth", "lraspp_mobilenet_v3_large")
    with torch.no_grad():
        assert segmenter(torch.zeros(1, 3, 32, 48, dtype=torch.uint8)).shape == (1, 8, 32, 48)
    with pytest.raises(ConfigError, match="predict 8 classes, but the data has 35 label ids"):
        load_segmenter(35, tmp_path / "seg.pth", "lraspp_mobilenet_v3_large")
    with pytest.raises(MissingWeightsError, match="need a segmentation network: pass --seg-weights"):
        load_segmenter(35)
    with pytest.raises(MissingWeightsError, match="do not exist"):
        load_segmenter(35, tmp_path / "none.pth")


def test_builtin_segmenter_is_deterministic_and_evaluate_reports_fid_and_miou(tiny_runs, tmp_path, monkeypatch):
    from gancli.api import open_run
    from gancli.metrics.judges import builtin_segmenter

    tiny = {"steps": 2, "scenes": 4, "batch": 2}
    a, _ = builtin_segmenter.train(log=lambda _: None, **tiny)
    b, _ = builtin_segmenter.train(log=lambda _: None, **tiny)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path))
    monkeypatch.setattr(builtin_segmenter, "TRAINING", {**builtin_segmenter.TRAINING, **tiny})
    run = open_run(tiny_runs["plain"])
    run.recipe.cfg.eval_n = 6
    scores = run.recipe.evaluate(run.load_generator(device="cpu"))
    assert {"fid", "miou", "pixel_accuracy", "miou_real", "pixel_accuracy_real"} <= set(scores)
    assert scores["segmenter"].startswith("builtin-seg-v1") and "builtin" in scores["features"]
    assert list((tmp_path / "builtin_segmenter").glob("*.safetensors"))


def test_presets_equal_the_papers():
    from gancli import api

    san = api.make_config("spade", preset="cityscapes", data="cityscapes:/nowhere")
    paper = {"norm": "san", "norm_ratio": 0.25, "norm_gain": 1.3, "betas_g": [0.5, 0.9], "betas_d": [0.5, 0.9],
             "lr_g": 1e-4, "lr_d": 4e-4, "loss": "hinge", "lambda_feat": 10.0, "lambda_vgg": 10.0,
             "lambda_kld": 0.05, "ndf": 64, "n_layers_d": 4, "num_d": 2, "ngf": 64, "image_size": [256, 512],
             "instance_edges": True, "perceptual": "vgg19", "d_instance_norm": True,
             "num_upsampling_layers": "more"}  # NVlabs/SPADE data/cityscapes_dataset.py forces "more" (G from 4×8)
    assert {k: getattr(san, k) for k in paper} == paper
    original = api.make_config("spade", preset="original", data="cityscapes:/nowhere")
    assert (original.norm, original.betas_g, original.betas_d, original.d_instance_norm,
            original.num_upsampling_layers) == ("sn", [0.0, 0.9], [0.0, 0.9], True, "more")
    # NVlabs/SPADE data/ade20k_dataset.py and coco_dataset.py: crop 256 (aspect 1), instance maps for COCO only
    for name, edges in (("ade20k", False), ("coco", True)):
        cfg = api.make_config("spade", preset=name, data="ade20k:/nowhere")
        assert (cfg.image_size, cfg.instance_edges, cfg.num_upsampling_layers) == ([256, 256], edges, "normal")


def test_colour_maps_with_shared_colours_take_the_lowest_id():
    from gancli.data.segmentation import CITYSCAPES_PALETTE

    image = CITYSCAPES_PALETTE[torch.tensor([[0, 4, 26, 34, 7]])].permute(2, 0, 1)
    assert ids_from_colours(image, CITYSCAPES_PALETTE, "x.png").tolist() == [[0, 0, 26, 26, 7]]


def test_vgg19_loss_weighs_five_relu_layers(tmp_path):
    from gancli.objectives.perceptual import vgg19_features
    from recipes.spade_nets import VGG19Loss

    torch.manual_seed(0)
    features = vgg19_features()[:30]
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg19.pth")
    loss = VGG19Loss(str(tmp_path / "vgg19.pth"))
    fake = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    real = torch.rand(1, 3, 32, 32) * 2 - 1
    value = loss(fake, real)
    taps = loss.features(fake.detach()), loss.features(real)
    assert [f.shape[1] for f in taps[0]] == [64, 128, 256, 512, 512]
    expected = sum(w * F.l1_loss(a, b) for w, a, b in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0), *taps))
    torch.testing.assert_close(value.detach(), expected)
    value.backward()
    assert fake.grad.abs().sum() > 0 and loss(real, real).item() == 0
    # SPADE models/networks/loss.py VGGLoss and architecture.py VGG19: [-1, 1] images straight in, no ImageNet
    # mean/std (relu1_1 is VGG19's first conv + ReLU of the image as given)
    torch.testing.assert_close(taps[1][0], torch.relu(features[0](real)))


def test_spade_initialization_is_xavier_normal_gain_002():
    # SPADE options/base_options.py --init_type xavier --init_variance 0.02; models/networks/base_network.py
    # init_weights: xavier_normal_(gain=0.02) on every Conv/Linear weight, biases 0 (under SN: the raw weight)
    from gancli import api
    from recipes.spade import Spade

    cfg = api.make_config("spade", out="unused", label_nc=8, ngf=8, spade_hidden=16, ndf=16)
    models = Spade(cfg).build_models()
    G, D = models["G"], models["D"]
    for net in (G, D):
        for name, layer in net.named_modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                assert layer.bias is None or not layer.bias.any(), name
    raw = G.head_0.conv_0.parametrizations.weight.original  # a 128 → 128 3×3 conv under SN
    fan_in, fan_out = raw.shape[1] * raw[0, 0].numel(), raw.shape[0] * raw[0, 0].numel()
    assert raw.std().item() == pytest.approx(0.02 * (2 / (fan_in + fan_out)) ** 0.5, rel=0.1)
    widest = max((m for m in D.modules() if isinstance(m, torch.nn.Conv2d)), key=lambda m: m.weight.numel())
    fan_in, fan_out = widest.weight.shape[1] * 16, widest.weight.shape[0] * 16
    assert widest.weight.std().item() == pytest.approx(0.02 * (2 / (fan_in + fan_out)) ** 0.5, rel=0.1)


def test_ade20k_training_crops_as_spade(tmp_path):
    # SPADE data/ade20k_dataset.py: resize_and_crop, load_size 286 when training (256 when testing), crop 256, flip
    from gancli import api
    from recipes.spade import Spade

    cfg = api.make_config("spade", preset="ade20k", data="ade20k:/nowhere")
    assert (cfg.load_size, cfg.image_size, cfg.flip) == (286, [256, 256], True)
    root = make_ade20k(tmp_path / "ade")
    cfg = api.make_config("spade", data=f"ade20k:{root}", out="unused", image_size=[32, 32], load_size=40,
                          perceptual="none")
    dataset = Spade(cfg).build_dataset()
    crops = [dataset[(0, seed)] for seed in range(12)]
    assert all(c["image"].shape == (3, 32, 32) and c["label"].shape == (32, 32) for c in crops)
    assert torch.equal(dataset[(0, 3)]["image"], crops[3]["image"])  # the key's seed decides
    assert len({c["label"].sum().item() for c in crops}) > 1  # the label boundary moves with the crop
    whole = Spade(cfg).validation()[0][0]
    assert whole.shape == (3, 32, 32)  # validation maps: resized to image_size, no crop
    with pytest.raises(ConfigError, match="'load_size' must be 0 or at least the crop 32"):
        Spade(api.make_config("spade", data=f"ade20k:{root}", out="unused", image_size=[32, 32], load_size=8))


CITYSCAPES_TRAIN_IDS = {  # cityscapesScripts helpers/labels.py: label id -> trainId of the 19 evaluated classes
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14,
    28: 15, 31: 16, 32: 17, 33: 18,
}


def test_cityscapes_miou_is_on_the_19_train_ids():
    from gancli.metrics.judges.miou import IGNORE, on_scored_classes

    scored = Cityscapes.scored_labels
    assert {label: train for train, label in enumerate(scored)} == CITYSCAPES_TRAIN_IDS
    labels = torch.tensor([[[0, 7, 26, 34], [3, 33, 9, 24]]])  # void ids 0, 34, 3, 9 are ignored
    perfect = F.one_hot(labels, 35).permute(0, 3, 1, 2).float()
    predicted, truth = on_scored_classes(perfect, labels, scored)
    assert truth.tolist() == [[[IGNORE, 0, 13, IGNORE], [IGNORE, 18, IGNORE, 11]]]
    score = SegmentationScore(19, IGNORE)
    score.add(predicted, truth)
    assert score.result() == {"miou": 1.0, "pixel_accuracy": 1.0}
    nineteen = F.one_hot(truth.clamp(max=18), 19).permute(0, 3, 1, 2).float()  # a 19-class segmenter's logits
    assert torch.equal(on_scored_classes(nineteen, labels, scored)[0][truth != IGNORE], truth[truth != IGNORE])


def test_spade_evaluates_cityscapes_with_a_19_class_segmenter(tmp_path):
    import torchvision

    from gancli import api
    from gancli.metrics.judges.segmentation import load_torchvision_segmenter
    from recipes.spade import Spade

    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                        num_classes=19)
    torch.save(model.state_dict(), tmp_path / "seg19.pth")
    with pytest.raises(ConfigError, match="predict 19 classes, but the data has 35 label ids; give weights of a 35-"):
        load_torchvision_segmenter(tmp_path / "seg19.pth", "lraspp_mobilenet_v3_large", 35)
    root = make_cityscapes(tmp_path / "cs")
    options = dict(out="unused", image_size=[32, 64], ngf=4, spade_hidden=4, ndf=4, perceptual="none",
                   seg_weights=str(tmp_path / "seg19.pth"), seg_arch="lraspp_mobilenet_v3_large", eval_n=2,
                   eval_features="inception", num_upsampling_layers="normal")
    recipe = Spade(api.make_config("spade", data=f"cityscapes:{root}", **options))
    scores = recipe.evaluate(recipe.build_models()["G"].eval())
    assert scores["miou_classes"] == "19 train ids of cityscapes:val" and 0 <= scores["miou_real"] <= 1
    labelled = Spade(api.make_config("spade", data=f"cityscapes:{root}", miou_ids="label", **options))
    with pytest.raises(Exception, match="give weights of a 35-class"):
        labelled.judges()
