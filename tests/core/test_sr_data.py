"""SR data: MATLAB bicubic, builtin photos, DIV2K and test-set layouts, training crops, bad inputs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancli.data.sr import (
    BUILTIN_PHOTOS,
    DIV2K,
    BuiltinPhotos,
    SRCrops,
    SRTestSet,
    bicubic_downsample,
    heldout_for,
    imresize,
    mod_crop,
    open_sr_images,
)
from gancli.errors import DataError


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---- MATLAB bicubic ---------------------------------------------------------------------


def test_imresize_matches_pil_bicubic_away_from_the_borders():
    # PIL's bicubic is the same a = -0.5 kernel, antialiased when shrinking; only borders differ
    # (PIL renormalizes the cut kernel where MATLAB mirrors the image).
    a = (np.random.default_rng(1).random((64, 96)) * 255).astype(np.float32)
    down = np.asarray(Image.fromarray(a, "F").resize((24, 16), Image.BICUBIC))
    ours = imresize(torch.from_numpy(a).double(), 0.25).numpy()
    assert ours.shape == (16, 24)
    np.testing.assert_allclose(ours[3:-3, 3:-3], down[3:-3, 3:-3], atol=1e-3)
    small = a[:16, :24]
    up = np.asarray(Image.fromarray(small, "F").resize((96, 64), Image.BICUBIC))
    ours = imresize(torch.from_numpy(small).double(), 4).numpy()
    np.testing.assert_allclose(ours[8:-8, 8:-8], up[8:-8, 8:-8], atol=1e-3)


def test_imresize_keeps_constants_and_rounds_uint8_like_matlab():
    flat = torch.full((3, 20, 28), 77, dtype=torch.uint8)
    out = imresize(flat, 0.25)
    assert out.dtype == torch.uint8 and out.shape == (3, 5, 7) and (out == 77).all()
    up = imresize(torch.full((1, 5, 7), 0.5, dtype=torch.float64), 4)
    torch.testing.assert_close(up, torch.full((1, 20, 28), 0.5, dtype=torch.float64))


def test_mod_crop_cuts_bottom_right():
    assert mod_crop(torch.zeros(3, 103, 98), 4).shape == (3, 100, 96)


# ---- builtin photos ---------------------------------------------------------------------


def test_builtin_photos_are_colour_and_the_splits_are_disjoint():
    assert not set(BUILTIN_PHOTOS["train"]) & set(BUILTIN_PHOTOS["test"])
    test = BuiltinPhotos("test")
    item = test[0]
    assert item["name"] == "chelsea.png" and item["hr"].dtype == torch.uint8
    assert item["hr"].shape == (3, 300, 448)  # 451 wide: cropped to a multiple of 4
    assert item["lr"].shape == (3, 75, 112)
    assert (item["hr"][0] != item["hr"][1]).any()  # colour, not gray
    assert "chelsea.png" in test.crop_note()
    with pytest.raises(DataError, match="splits"):
        BuiltinPhotos("valid")


# ---- training crops -----------------------------------------------------------------------


def test_crops_are_deterministic_per_key_and_aligned():
    crops = SRCrops(BuiltinPhotos("train"), hr_size=32)
    a, b, c = crops[(3, 17)], crops[(3, 17)], crops[(3, 18)]
    assert a["lr"].shape == (3, 8, 8) and a["hr"].shape == (3, 32, 32)
    assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])
    assert not torch.equal(a["hr"], c["hr"])
    assert a["hr"].min() >= -1 and a["hr"].max() <= 1
    # the LR crop is the bicubic downsampling of the HR crop's neighbourhood: close to its own downsampling
    hr_u8 = ((a["hr"] + 1) * 127.5).round().to(torch.uint8)
    lr_u8 = ((a["lr"] + 1) * 127.5).round()
    assert (bicubic_downsample(hr_u8, 4).double() - lr_u8)[:, 2:-2, 2:-2].abs().max() <= 1


def test_crops_made_from_hr_regions_equal_the_full_image_lr(tmp_path):
    hr = _rgb(70, 90, seed=3)
    _save(tmp_path / "a.png", hr)
    images = SRTestSet(tmp_path, scale=4)  # uncached, no LR files: LR from a local HR region
    full_lr = bicubic_downsample(mod_crop(torch.from_numpy(hr).permute(2, 0, 1), 4), 4)
    crops = SRCrops(images, hr_size=32, augment="none")
    for seed in range(6):
        item = crops[(0, seed)]
        lr = ((item["lr"] + 1) * 127.5).round().to(torch.uint8)
        hits = [(y, x) for y in range(full_lr.shape[1] - 7) for x in range(full_lr.shape[2] - 7)
                if torch.equal(full_lr[:, y:y + 8, x:x + 8], lr)]
        assert hits, "the LR crop is not a crop of the full-image LR"


def test_crops_reject_images_smaller_than_the_crop(tmp_path):
    _save(tmp_path / "tiny.png", _rgb(20, 20))
    with pytest.raises(DataError, match="tiny.png.*smaller than the 32 px"):
        SRCrops(SRTestSet(tmp_path, scale=4), hr_size=32)[(0, 0)]


# ---- DIV2K ------------------------------------------------------------------------------------


def _div2k(root: Path, with_lr: bool, n: int = 2) -> None:
    for i in range(1, n + 1):
        hr = _rgb(48, 64, seed=i)
        _save(root / "DIV2K_train_HR" / f"{i:04d}.png", hr)
        if with_lr:
            lr = bicubic_downsample(torch.from_numpy(hr).permute(2, 0, 1), 4).permute(1, 2, 0).numpy()
            _save(root / "DIV2K_train_LR_bicubic" / "X4" / f"{i:04d}x4.png", lr)


def test_div2k_with_lr_files(tmp_path):
    _div2k(tmp_path, with_lr=True)
    data = open_sr_images(str(tmp_path), 4, "train")
    assert isinstance(data, DIV2K) and len(data) == 2 and data.has_lr_files
    assert data.lr_files[0].name == "0001x4.png"
    item = data[1]
    assert item["hr"].shape == (3, 48, 64) and item["lr"].shape == (3, 12, 16)
    batch = SRCrops(data, hr_size=32)[(1, 5)]
    assert batch["lr"].shape == (3, 8, 8)


def test_div2k_hr_only_makes_lr_on_the_fly(tmp_path):
    _div2k(tmp_path, with_lr=False)
    data = DIV2K(tmp_path / "DIV2K_train_HR", scale=4)
    assert not data.has_lr_files
    hr = data[0]["hr"]
    assert torch.equal(data[0]["lr"], bicubic_downsample(hr, 4))


def test_div2k_missing_folder_and_missing_lr_file(tmp_path):
    with pytest.raises(DataError, match="DIV2K_train_HR.*missing"):
        DIV2K(tmp_path, 4)
    _div2k(tmp_path, with_lr=True)
    (tmp_path / "DIV2K_train_LR_bicubic" / "X4" / "0002x4.png").unlink()
    with pytest.raises(DataError, match="No LR image for '0002.png'"):
        DIV2K(tmp_path, 4)


def test_lr_made_from_an_uncropped_hr_image_is_accepted_and_cropped(tmp_path):
    _save(tmp_path / "HR" / "a.png", _rgb(34, 42))
    _save(tmp_path / "LR_bicubic" / "X4" / "a.png", _rgb(9, 11))  # MATLAB: ceil(34/4) x ceil(42/4)
    item = SRTestSet(tmp_path, scale=4)[0]
    assert item["hr"].shape == (3, 32, 40) and item["lr"].shape == (3, 8, 10)


def test_div2k_valid_is_the_heldout_set_of_a_div2k_root(tmp_path):
    _div2k(tmp_path, with_lr=False, n=1)
    _save(tmp_path / "DIV2K_valid_HR" / "0801.png", _rgb(48, 48))
    held = heldout_for(str(tmp_path), 4)
    assert isinstance(held, DIV2K) and held.name(0) == "0801.png"
    assert heldout_for("builtin", 4).name(0) == "chelsea.png"
    assert heldout_for(str(tmp_path / "DIV2K_train_HR"), 4).name(0) == "0801.png"


def test_lr_file_of_the_wrong_size_is_named(tmp_path):
    _save(tmp_path / "HR" / "a.png", _rgb(32, 32))
    _save(tmp_path / "LR_bicubic" / "X4" / "a.png", _rgb(7, 8))
    data = SRTestSet(tmp_path, scale=4)
    with pytest.raises(DataError, match="a.png' is 8x7 but its HR image .* needs 8x8"):
        data[0]


# ---- test sets ----------------------------------------------------------------------------


def test_test_set_layouts(tmp_path):
    plain = tmp_path / "Set5"
    _save(plain / "baby.png", _rgb(34, 42))
    data = SRTestSet(plain, scale=4)
    assert data[0]["hr"].shape == (3, 32, 40) and "cropped" in data.crop_note()

    basicsr = tmp_path / "Set14"
    _save(basicsr / "GTmod12" / "comic.png", _rgb(24, 24))
    _save(basicsr / "LRbicx4" / "comic.png", _rgb(6, 6, seed=9))
    data = SRTestSet(basicsr, scale=4)
    assert data.has_lr_files and torch.equal(data[0]["lr"], torch.from_numpy(_rgb(6, 6, seed=9)).permute(2, 0, 1))

    huang = tmp_path / "Urban100"
    _save(huang / "image_SRF_4" / "img_001_SRF_4_HR.png", _rgb(16, 16))
    _save(huang / "image_SRF_4" / "img_001_SRF_4_LR.png", _rgb(4, 4))
    data = SRTestSet(huang, scale=4)
    assert len(data) == 1 and data.lr_files[0].name == "img_001_SRF_4_LR.png"


def test_explicit_lr_folder_and_crop_note_when_nothing_is_cropped(tmp_path):
    _save(tmp_path / "hr" / "x.png", _rgb(16, 16))
    _save(tmp_path / "lr" / "xx4.png", _rgb(4, 4))
    data = SRTestSet(tmp_path / "hr", tmp_path / "lr", scale=4)
    assert data.lr_files[0].name == "xx4.png" and data.crop_note() == ""


def test_gray_and_rgba_images_are_converted_and_corrupt_files_named(tmp_path):
    _save(tmp_path / "gray.png", np.full((16, 16), 100, np.uint8), "L")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    _save(tmp_path / "rgba.png", rgba, "RGBA")
    data = SRTestSet(tmp_path, scale=4)
    assert [tuple(data[i]["hr"].shape) for i in range(2)] == [(3, 16, 16)] * 2
    (tmp_path / "broken.png").write_bytes(b"not a png")
    data = SRTestSet(tmp_path, scale=4)
    with pytest.raises(DataError, match="broken.png' is corrupt"):
        data[0]


def test_bad_specs_and_scales(tmp_path):
    with pytest.raises(DataError, match="neither"):
        open_sr_images(str(tmp_path / "nope"), 4)
    with pytest.raises(DataError, match="no images"):
        SRTestSet(tmp_path, scale=4)
    with pytest.raises(DataError, match="scale must be"):
        BuiltinPhotos("train", scale=5)
