"""The stargan recipe: label tiling, the cycle, the class loss, CelebA's format, translate, and every bad input."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gancli import api
from gancli.data.attributes import (BUILTIN_ATTRS, CELEBA_FILE, CELEBA_IMAGES, BuiltinAttributeImages,
                                    apply_assignments, attribute_source, open_attribute_images, read_attribute_table,
                                    write_celeba_layout)
from gancli.objectives.attributes import attribute_classification_loss, decide_attributes
from recipes.stargan import PRESETS, StarGANConfig
from recipes.stargan_nets import StarGANCritic, StarGANGenerator, tile_labels

TINY = {"resolution": 32, "g_width": 8, "g_blocks": 1, "d_width": 8, "d_layers": 3, "batch_size": 4,
        "log_every": 1, "sample_every": 0, "ckpt_every": 0, "eval_every": 0, "n_samples": 2, "device": "cpu"}
TINY_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
CELEBA_NAMES = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
                "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
                "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
                "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
                "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()


def assert_error(result, *fragments):
    assert result.exit_code == 1, (result.exit_code, result.output)
    text = " ".join(result.output.split())
    assert "Error:" in text and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 2-step builtin run trained without the Square attribute."""
    out = tmp_path_factory.mktemp("stargan") / "run"
    cfg = api.make_config("stargan", preset="quick", out=str(out), steps=2,
                          sets={**TINY, "attrs": "Red,Green,Blue,Large,Dark_Background"})
    return api.train(cfg).path


def celeba_tree(root, count: int):
    """A CelebA folder in its exact layout: 178×218 JPEGs, count line, 40 names, ±1 columns, CRLF."""
    (root / CELEBA_IMAGES).mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for i in range(count):
        name = f"{i + 1:06d}.jpg"
        image = Image.new("RGB", (178, 218), (0, 0, 255))  # blue rows above and below the 178 px centre square
        image.paste((200, 40 + 6 * i, 40), (0, 20, 178, 198))
        image.save(root / CELEBA_IMAGES / name, quality=95)
        values = (torch.rand(40, generator=gen) < 0.5).long() * 2 - 1
        rows.append(name + " " + " ".join(f"{v:2d}" for v in values.tolist()))
    text = f"{count}\r\n" + " ".join(CELEBA_NAMES) + " \r\n" + "\r\n".join(rows) + "\r\n"
    (root / CELEBA_FILE).write_text(text)
    return root


@pytest.fixture
def celeba(tmp_path):
    """A 30-image CelebA folder in its exact layout."""
    return celeba_tree(tmp_path / "celeba", 30)


# ---- model pieces ------------------------------------------------------------------------------
def test_labels_are_tiled_as_constant_maps_and_concatenated_to_the_image():
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    tiled = tile_labels(labels, 4, 5)
    assert tiled.shape == (2, 3, 4, 5)
    assert torch.equal(tiled[:, :, 3, 4], labels) and torch.equal(tiled.amin(dim=(2, 3)), tiled.amax(dim=(2, 3)))
    G = StarGANGenerator(3, width=8, n_blocks=1)
    assert G.net[0].in_channels == 3 + 3
    assert G(torch.zeros(2, 3, 32, 32), labels).shape == (2, 3, 32, 32)
    with torch.no_grad():  # the labels reach the output: different targets, different images
        x = torch.randn(1, 3, 32, 32)
        assert not torch.allclose(G(x, labels[:1]), G(x, labels[1:]))


def test_critic_heads_real_fake_patch_and_one_logit_per_attribute():
    D = StarGANCritic(5, resolution=128, width=64, n_layers=6)
    assert all(conv.padding_mode == "circular" for conv in D.features if isinstance(conv, torch.nn.Conv2d))
    assert D.attributes.kernel_size == (2, 2)  # the 2×2 map left at 128 px
    params = sum(p.numel() for p in D.parameters())
    assert 24.5e6 < params < 25.5e6  # SAN App. G: "only 25M (in contrast to the 44M of StarGAN)"
    stargan = StarGANCritic(5, resolution=128, width=64, n_layers=6, kernel=4)  # yunjey/stargan model.py
    assert all(conv.padding_mode == "zeros" and conv.kernel_size == (4, 4) and conv.padding == (1, 1)
               for conv in stargan.features if isinstance(conv, torch.nn.Conv2d))
    assert stargan.real_fake.kernel_size == (3, 3) and stargan.attributes.kernel_size == (2, 2)  # 128 / 64
    assert 44.5e6 < sum(p.numel() for p in stargan.parameters()) < 45e6  # "the 44M of StarGAN"
    assert StarGANCritic(5, resolution=256, kernel=4).attributes.kernel_size == (4, 4)
    small = StarGANCritic(6, resolution=32, width=8, n_layers=3)
    real_fake, classes = small(torch.randn(2, 3, 32, 32))
    assert real_fake.shape == (2, 16) and classes.shape == (2, 6)


def test_cycle_term_is_l1_of_the_round_trip_to_the_original_attributes():
    from recipes.stargan import StarGAN

    recipe = StarGAN(StarGANConfig(**{k: v for k, v in TINY.items() if k != "device"}, lambda_cls=0.0))
    models = recipe.build_models()
    data = recipe.build_dataset()
    batch = {k: torch.stack([data[(i, i)][k] for i in range(4)]) for k in ("image", "label")}
    torch.manual_seed(3)
    _, logs = recipe.g_step(models, batch)
    torch.manual_seed(3)
    targets = batch["label"][torch.randperm(4)]
    G = models["G"]
    expected = (G(G(batch["image"], targets), batch["label"]) - batch["image"]).abs().mean()
    assert logs["G/cycle"] == pytest.approx(expected.item(), rel=1e-5)
    assert not torch.equal(targets, batch["label"])  # the targets really are other images' attributes


def test_class_loss_is_stargans_bce_over_every_attribute_rows_without_a_hair_colour_included():
    """yunjey/stargan solver.py `classification_loss` (CelebA): BCE(logit, target, sum) / batch over every selected
    attribute; D on the real labels, G on the targets (the real labels permuted over the batch, `train`)."""
    from recipes.stargan import StarGAN

    recipe = StarGAN(StarGANConfig(**{k: v for k, v in TINY.items() if k != "device"}))
    models = recipe.build_models()
    image = torch.rand(4, 3, 32, 32) * 2 - 1
    label = torch.tensor([[0.0, 0, 0, 1, 0, 1], [1, 1, 0, 0, 1, 0], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]])
    batch = {"image": image, "label": label}  # rows 1 and 4: no colour, row 2: two colours
    _, logs = recipe.d_step(models, batch)
    with torch.no_grad():
        expected = F.binary_cross_entropy_with_logits(models["D"](image)[1], label, reduction="sum") / 4
    assert logs["D/cls"].item() == pytest.approx(expected.item(), rel=1e-5)
    torch.manual_seed(5)
    _, logs = recipe.g_step(models, batch)
    torch.manual_seed(5)
    targets = label[torch.randperm(4)]
    with torch.no_grad():
        logits = models["D"](models["G"](image, targets))[1]
    expected = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 4
    assert logs["G/cls"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_judges_class_loss_takes_one_hot_groups_as_softmax_groups():
    logits = torch.tensor([[2.0, -1.0, 0.5, 1.5, -0.5], [0.0, 1.0, 3.0, -2.0, 0.7], [1.0, 1.0, 1.0, 0.3, 0.2]])
    labels = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0, 1.0]])
    groups = [[0, 1, 2]]  # e.g. hair colour; row 3 has two members set, so its group term is left out
    bce = F.binary_cross_entropy_with_logits(logits[:, 3:], labels[:, 3:], reduction="sum") / 3
    ce = (F.cross_entropy(logits[:1, :3], torch.tensor([0]), reduction="sum")
          + F.cross_entropy(logits[1:2, :3], torch.tensor([2]), reduction="sum")) / 3
    assert attribute_classification_loss(logits, labels, groups).item() == pytest.approx((bce + ce).item(), rel=1e-6)
    all_binary = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / 3  # StarGAN's form
    assert attribute_classification_loss(logits, labels).item() == pytest.approx(all_binary.item(), rel=1e-6)
    decided = decide_attributes(logits, groups)
    assert decided.tolist() == [[1, 0, 0, 1, 0], [0, 0, 1, 0, 1], [1, 0, 0, 1, 1]]  # one member per group
    assert decide_attributes(logits).tolist() == [[1, 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 1, 1, 1]]  # by sign


def test_setting_one_member_of_a_group_clears_the_others():
    names, groups = list(BUILTIN_ATTRS), [["Red", "Green", "Blue"]]
    sources = torch.tensor([[1.0, 0, 0, 1, 0, 1], [0, 1.0, 0, 0, 1, 0]])
    targets = apply_assignments(sources, names, groups, {"Blue": 1, "Large": -1})
    assert targets.tolist() == [[0, 0, 1, 0, 0, 1], [0, 0, 1, 0, 1, 0]]


def test_presets_equal_the_papers():
    san = StarGANConfig()  # SAN App. G and Table 7
    assert (san.norm, san.loss, san.penalty, san.lambda_cls, san.lambda_rec) == ("san", "hinge", "none", 1.0, 10.0)
    assert (san.lr_g, san.lr_d, san.betas_g, san.betas_d, san.batch_size, san.n_dis) == (1e-4, 1e-4, [0.5, 0.9],
                                                                                         [0.5, 0.9], 16, 1)
    assert (san.resolution, san.g_width, san.g_blocks, san.d_width, san.d_layers) == (128, 64, 6, 64, 6)
    assert san.lr_schedule == "linear" and san.lr_decay_start == pytest.approx(10 / 15)  # 10 epochs, decay over 5
    assert san.steps == 15 * 200_599 // 16 and san.test_size == 2000
    assert san.critic == "table7"
    # StarGAN (yunjey/stargan model.py and solver.py): its own critic, WGAN-GP 10, n_critic 5, Adam 1e-4 (0.5, 0.999)
    original = PRESETS["original"]
    assert original["critic"] == "stargan"
    assert (original["loss"], original["penalty"], original["penalty_weight"], original["norm"]) == ("wgan", "gp", 10.0,
                                                                                                     "none")
    assert (original["n_dis"], original["betas_g"], original["betas_d"], original["lr_g"]) == (5, [0.5, 0.999],
                                                                                               [0.5, 0.999], 1e-4)
    assert StarGANConfig().attrs == [] and attribute_source("").default_attrs() == list(BUILTIN_ATTRS)


# ---- data --------------------------------------------------------------------------------------
def test_celeba_layout_is_read_with_attributes_by_name_the_178_crop_and_the_fixed_seed_split(celeba):
    table = read_attribute_table(celeba / CELEBA_FILE)
    assert len(table.files) == 30 and table.names == CELEBA_NAMES
    source = attribute_source(f"celeba:{celeba}")
    assert source.default_attrs() == ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    assert source.default_crop() == 178
    test = open_attribute_images(source, source.default_attrs(), "test", 64, crop=178)
    train = open_attribute_images(source, source.default_attrs(), "train", 64, crop=178)
    order = list(range(30))
    random.seed(1234)  # StarGAN: random.seed(1234); random.shuffle(lines); the first lines are the test split
    random.shuffle(order)
    assert [f for f in test.files] == [table.files[i] for i in order[:3]]  # 2,000, at most a tenth of the data
    assert len(train) == 27 and not set(train.files) & set(test.files)
    columns = [CELEBA_NAMES.index(n) for n in source.default_attrs()]
    assert torch.equal(train.values, table.values[order[3:]][:, columns])
    item = train[(0, 0)]
    assert item["image"].shape == (3, 64, 64) and item["label"].tolist() == (train.values[0] > 0).float().tolist()
    image = train.image(0)
    assert image[2].float().mean() < 80  # the blue bands outside the 178 px centre square are cropped away


def test_builtin_attributes_round_trip_through_celeba_layout(tmp_path):
    data = BuiltinAttributeImages("test", 32, size=12)
    write_celeba_layout(data, tmp_path / "b")
    table = read_attribute_table(tmp_path / "b" / CELEBA_FILE)
    assert table.names == list(BUILTIN_ATTRS) and torch.equal(table.values, data.values)
    again = BuiltinAttributeImages("test", 32, size=12)
    assert torch.equal(again.image(5), data.image(5))  # deterministic from the index


def test_folder_and_csv(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    lines = ["file,Smiling,Glasses"]
    for i in range(20):
        Image.new("RGB", (40, 30), (i * 10, 0, 0)).save(folder / f"{i}.png")
        lines.append(f"{i}.png,{1 if i % 2 else 0},{-1 if i % 3 else 1}")
    (tmp_path / "attrs.csv").write_text("\n".join(lines) + "\n")
    source = attribute_source(str(folder), str(tmp_path / "attrs.csv"))
    assert source.default_attrs() == ["Smiling", "Glasses"] and source.default_crop() == 0
    data = open_attribute_images(source, ["Glasses"], "train", 16)
    assert len(data) == 18 and data[(0, 0)]["image"].shape == (3, 16, 16)


# ---- translate ---------------------------------------------------------------------------------
def test_translate_a_combination_and_a_grid(tiny_run, tmp_path, cli):
    inputs = tmp_path / "in"
    write_celeba_layout(BuiltinAttributeImages("test", 48, size=3), inputs)
    files = sorted((inputs / CELEBA_IMAGES).iterdir())
    result = api.translate(tiny_run, files, ["Blue=1", "Large=0"], out=tmp_path / "out", grid=True)
    assert [p.name for p in result.outputs] == [f.stem + ".png" for f in files]
    assert all(Image.open(p).size == (32, 32) for p in result.outputs)
    assert result.columns == ["input", "Red=1", "Green=1", "Blue=1", "Large flipped", "Dark_Background flipped",
                              "combined"]
    width, height = Image.open(result.grid).size
    assert (width, height) == (2 + 7 * 34, 2 + 3 * 34)  # 3 inputs × (input + 5 changes + combined), 2 px padding
    run = api.open_run(tiny_run)
    sources = torch.tensor([[float(r[n]) for n in run.recipe.names] for r in result.sources])
    targets = run.recipe.targets(sources, {"Blue": 1, "Large": -1})
    assert targets[:, :3].tolist() == [[0, 0, 1]] * 3 and targets[:, 3].tolist() == [0, 0, 0]
    assert torch.equal(targets[:, 4], sources[:, 4])  # what was not asked for is kept
    cli_result = cli("translate", tiny_run, files[0], "--attr", "Green=1", "--attr", "Dark_Background=-1",
                     "--out", tmp_path / "cli", "--device", "cpu")
    assert cli_result.exit_code == 0, cli_result.output
    assert (tmp_path / "cli" / files[0].with_suffix(".png").name).is_file()


def test_evaluation_is_san_app_g_every_test_image_to_each_target_domain(tiny_run, tmp_path, monkeypatch):
    """SAN App. G: "the 2K test images [...] translating each image to one of five domains" (StarGAN's test targets)
    and the FID "between the translated images and the training images in the target domain"."""
    import gancli.metrics.judges.attribute_classifier as judges
    from gancli.metrics.generative.scores import fid_from_stats
    from gancli.metrics.generative.stats import FeatureStats

    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path / "cache"))
    tiny_judge = judges.builtin_judge
    monkeypatch.setattr(judges, "builtin_judge", lambda *a, **k: tiny_judge(*a, **{**k, "n_train": 64, "steps": 4}))
    run = api.open_run(tiny_run)
    recipe, G = run.recipe, run.load_generator()
    recipe.cfg.eval_n, recipe.cfg.eval_ref = 24, 40
    scores = recipe.evaluate(G)
    domains = ["Red=1", "Green=1", "Blue=1", "Large=1", "Large=0", "Dark_Background=1", "Dark_Background=0"]
    assert sorted(scores["fd"]) == sorted(domains) and sorted(scores["acc"]) == sorted(domains)
    assert 0 <= scores["attr_acc"] <= 1 and 0 <= scores["keep_acc"] <= 1 and scores["fd_mean"] > 0
    assert "builtin attribute images" in scores["judge"] and scores["features"].startswith("judge")
    assert "24 test images" in scores["protocol"] and "120 translations" in scores["protocol"]  # 24 × 5 targets
    assert "Red=1: 24" in scores["protocol"]  # every test image, those already red included

    test, train, judge = recipe.open_split("test"), recipe.open_split("train"), recipe.judge()
    images, sources = torch.stack([test.image(i) for i in range(24)]), test.labels()[:24]
    reference = torch.stack([train.image(i) for i in range(40)])[train.labels()[:40, 3] == 0]  # Large=0, first 40
    targets = sources.clone()
    targets[:, 3] = 1 - targets[:, 3]  # Large flipped: those that become small are the Large=0 translations
    fakes = recipe.translate_batch(G, images[targets[:, 3] == 0], targets[targets[:, 3] == 0])

    def stats(found):
        acc = FeatureStats()
        acc.update(found)
        return acc.mu(), acc.sigma()

    expected = fid_from_stats(*stats(judge(fakes)[1]), *stats(judge(reference)[1]))
    assert scores["fd"]["Large=0"] == pytest.approx(expected, rel=1e-4)
    assert len(list((tmp_path / "cache" / "stats").glob("*.npz"))) == len(domains)  # one cached reference each
    again = api.open_run(tiny_run).recipe  # as in a new process: the domain references come from the cache
    again.cfg.eval_n, again.cfg.eval_ref = 24, 40
    assert again.evaluate(G)["fd"] == pytest.approx(scores["fd"], rel=1e-6)


def test_test_targets_are_stargans_create_labels(tiny_run):
    """yunjey/stargan solver.py `create_labels`: a hair colour set and the other colours cleared; any other
    attribute flipped, the rest (hair colours included) as the source has them."""
    recipe = api.open_run(tiny_run).recipe  # Red, Green, Blue (one-hot group), Large, Dark_Background
    sources = torch.tensor([[0.0, 0, 0, 1, 0], [1, 1, 0, 0, 1]])  # no colour; two colours
    targets = dict(recipe.test_targets(sources))
    assert targets["Red"].tolist() == [[1, 0, 0, 1, 0], [1, 0, 0, 0, 1]]
    assert targets["Blue"].tolist() == [[0, 0, 1, 1, 0], [0, 0, 1, 0, 1]]
    assert targets["Large"].tolist() == [[0, 0, 0, 0, 0], [1, 1, 0, 1, 1]]
    assert list(targets) == recipe.names


# ---- bad input ---------------------------------------------------------------------------------
def test_a_celeba_tree_of_12_images_trains_on_11_and_says_its_test_split_is_1(cli, tmp_path, caplog):
    """All 12 are among StarGAN's first 2,000 after its shuffle; the test split shrinks to a tenth, and says so."""
    root = celeba_tree(tmp_path / "c12", 12)
    result = cli("train", "stargan", "--data", f"celeba:{root}", "--out", tmp_path / "r", "--steps", "2",
                 *TINY_FLAGS, "--sample-every", "2")
    assert result.exit_code == 0, result.output
    assert "12 images, so the test split is their first tenth after StarGAN's fixed shuffle (1, not test_size 2000) " \
           "and the other 11 train" in caplog.text
    assert (tmp_path / "r" / "samples").is_dir() and any((tmp_path / "r" / "samples").iterdir())
    tiny = celeba_tree(tmp_path / "c9", 9)  # a tenth of 9 is 0: no test split, refused before training
    result = cli("train", "stargan", "--data", f"celeba:{tiny}", "--out", tmp_path / "r9", *TINY_FLAGS)
    assert_error(result, "lists 9 images, too few for a test split")
    assert not (tmp_path / "r9" / "config.toml").exists()


def test_unknown_attribute_name_lists_the_valid_ones(cli, tmp_path):
    result = cli("train", "stargan", "--out", tmp_path / "r", "--steps", "1", *TINY_FLAGS, "--attrs", "Red,Purple")
    assert_error(result, "Unknown attribute 'Purple'", "Red, Green, Blue, Large, Dark_Background, Square")
    assert not (tmp_path / "r").exists()


def test_missing_attribute_file(cli, tmp_path, celeba):
    (celeba / CELEBA_FILE).unlink()
    result = cli("train", "stargan", "--data", f"celeba:{celeba}", "--out", tmp_path / "r", *TINY_FLAGS)
    assert_error(result, "Attribute file", CELEBA_FILE, "does not exist")
    result = cli("train", "stargan", "--data", celeba / CELEBA_IMAGES, "--out", tmp_path / "r", *TINY_FLAGS)
    assert_error(result, "has no attribute file")


def test_an_image_listed_but_absent(cli, tmp_path, celeba):
    (celeba / CELEBA_IMAGES / "000007.jpg").unlink()
    result = cli("train", "stargan", "--data", f"celeba:{celeba}", "--out", tmp_path / "r", *TINY_FLAGS)
    assert_error(result, "000007.jpg' is listed in", "does not exist")


def test_attribute_values_other_than_plus_minus_one_or_zero(cli, tmp_path, celeba, tiny_run):
    path = celeba / CELEBA_FILE
    path.write_text(path.read_text().replace("000004.jpg -1", "000004.jpg  2").replace("000004.jpg  1", "000004.jpg  2"))
    result = cli("train", "stargan", "--data", f"celeba:{celeba}", "--out", tmp_path / "r", *TINY_FLAGS)
    assert_error(result, "line 6", "value '2' is not an attribute value")
    result = cli("translate", tiny_run, path, "--attr", "Red=2", "--out", tmp_path / "o")
    assert_error(result, "--attr Red=2: the value must be 1, -1 or 0, not '2'.")


def test_attr_the_run_was_not_trained_with(cli, tmp_path, tiny_run):
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(image)
    result = cli("translate", tiny_run, image, "--attr", "Square=1", "--out", tmp_path / "o")
    assert_error(result, "trained with the attributes Red, Green, Blue, Large, Dark_Background; it has no 'Square'")
    result = cli("translate", tiny_run, tmp_path / "absent.png", "--attr", "Red=1", "--out", tmp_path / "o")
    assert_error(result, "absent.png' does not exist")
