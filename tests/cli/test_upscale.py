"""Tiled upscaling equals whole-image upscaling for generators whose receptive field fits in the overlap."""

from pathlib import Path

import pytest
import torch

from gancli.data.images import plan_outputs
from gancli.errors import ConfigError, DataError
from gancli.nn.tiling import tile_boxes, upscale_image, upscale_tensor
from recipes.sr_nets import SRResNetGenerator


@pytest.fixture(scope="module")
def small_G():
    torch.manual_seed(0)
    # two ResBlocks: receptive field 1 + 4 + 1 (+1 for PS and HR convs) LR px, same layout as Table 8
    return SRResNetGenerator(scale=4, n_blocks=2).eval()


def test_tiles_cover_the_image_once():
    boxes = tile_boxes(50, 37, 16)
    covered = torch.zeros(50, 37)
    for y0, y1, x0, x1 in boxes:
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all() and len(boxes) == 4 * 3


def test_tiled_equals_whole_image(small_G):
    lr = torch.rand(1, 3, 61, 47) * 2 - 1
    whole = upscale_tensor(small_G, lr, 4, tile=0)
    tiled = upscale_tensor(small_G, lr, 4, tile=16, overlap=8)
    assert tiled.shape == whole.shape == (1, 3, 244, 188)
    assert (tiled - whole).abs().max() < 1e-5


def test_too_little_overlap_shows_seams(small_G):
    lr = torch.rand(1, 3, 48, 48) * 2 - 1
    whole = upscale_tensor(small_G, lr, 4, tile=0)
    assert (upscale_tensor(small_G, lr, 4, tile=16, overlap=1) - whole).abs().max() > 1e-3


def test_table8_receptive_field_fits_the_default_overlap():
    torch.manual_seed(0)
    G = SRResNetGenerator(scale=4).double().eval()  # float64: the effect decays fast but never to 0 inside
    lr = torch.rand(1, 3, 76, 76, dtype=torch.float64) * 2 - 1
    bumped = lr.clone()
    bumped[..., 38, 38] += 0.5
    with torch.no_grad():
        changed = (G(bumped) - G(lr)).abs().amax(1)[0] > 0
    rows = changed.any(1).nonzero()
    reach = max(38 * 4 - rows.min().item(), rows.max().item() - (38 * 4 + 3)) / 4  # in LR pixels
    assert reach == 35  # head + 32 ResBlock convs + first PS conv (34) + HR convs (1) < the default overlap 40


def test_upscale_image_uint8_round_trip(small_G):
    lr = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    out = upscale_image(small_G, lr, 4, tile=8, overlap=8)
    assert out.dtype == torch.uint8 and out.shape == (3, 80, 120)
    whole = upscale_image(small_G, lr, 4, tile=0)
    assert (out.int() - whole.int()).abs().max() <= 1  # equal up to a rounding tie


def test_bad_tiles_and_wrong_generators(small_G):
    with pytest.raises(ConfigError, match="negative"):
        upscale_tensor(small_G, torch.zeros(1, 3, 8, 8), 4, tile=-1)
    with pytest.raises(ConfigError, match="not the x2 upscale"):
        upscale_tensor(small_G, torch.zeros(1, 3, 8, 8), 2, tile=0)


def test_output_plan_keeps_names_and_layout(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.jpg"):
        (folder / name).write_bytes(b"x")
    single = tmp_path / "c.bmp"
    single.write_bytes(b"x")
    out = tmp_path / "out"
    plan = plan_outputs([folder, single], out)
    assert [dst.relative_to(out).as_posix() for _, dst in plan] == ["a.png", "sub/b.png", "c.bmp"]
    with pytest.raises(DataError, match="would both be written"):
        plan_outputs([folder / "a.png", folder / "a.png"], out)
    with pytest.raises(DataError, match="overwrite its input"):
        plan_outputs([folder], folder)
    with pytest.raises(DataError, match="does not exist"):
        plan_outputs([tmp_path / "nope.png"], out)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not an image"):
        plan_outputs([Path(tmp_path / "notes.txt")], out)
