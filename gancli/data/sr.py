"""Super-resolution data: MATLAB bicubic resizing, HR/LR image sets (builtin photos, DIV2K, test
folders) and the random training crops of the `sr` recipe.

Low-resolution images are made with MATLAB's `imresize(HR, 1/scale)` (bicubic, a = -0.5, antialiased
when shrinking, symmetric borders; uint8 images rounded after each axis as MATLAB does), the kernel
DIV2K's official LR_bicubic images and the SR papers' test sets were made with. torch's
F.interpolate(mode="bicubic") differs (a = -0.75, clamped borders) and is not used.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import re
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

from gancli.data.images import IMAGE_SUFFIXES, list_images, load_image
from gancli.errors import DataError

# ---------------------------------------------------------------------------------------------
# MATLAB imresize (bicubic)
# ---------------------------------------------------------------------------------------------


def _cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=128)
def resize_matrix(in_len: int, out_len: int, scale: float) -> Tensor:
    """The (out_len, in_len) float64 matrix of MATLAB's imresize along one axis (its `contributions`)."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:  # widen the kernel to low-pass before shrinking
        kernel_width /= scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centres in 1-based input coordinates
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None]
    weights = scale * _cubic(scale * (u[:, None] - idx)) if antialias else _cubic(u[:, None] - idx)
    weights = weights / weights.sum(1, keepdim=True)
    mirror = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])  # symmetric padding
    cols = mirror[(idx.long() - 1) % (2 * in_len)]
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    rows = torch.arange(out_len)[:, None].expand_as(cols)
    matrix.index_put_((rows.reshape(-1), cols.reshape(-1)), weights.reshape(-1), accumulate=True)
    return matrix


_MATRICES: dict[tuple, Tensor] = {}


def _resize_matrix_on(in_len: int, out_len: int, scale: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    """resize_matrix on a device and dtype, cached so a generator's forward copies nothing to the GPU.

    A plain dict, not functools.lru_cache: torch.compile traces through lru_cache (building the matrix inside the
    graph, on the host), but reads a dict entry made by an eager forward as a constant.
    """
    key = (in_len, out_len, scale, torch.device(device), dtype)
    if key not in _MATRICES:
        if len(_MATRICES) >= 128:
            _MATRICES.clear()
        _MATRICES[key] = resize_matrix(in_len, out_len, scale).to(device, dtype)
    return _MATRICES[key]


def _round_uint8(x: Tensor) -> Tensor:
    return torch.floor(x + 0.5).clamp_(0, 255)  # MATLAB rounds half away from zero


def imresize(image: Tensor, scale: float | None = None, size: tuple[int, int] | None = None) -> Tensor:
    """MATLAB `imresize(image, scale)` (or to `size`), bicubic, for (..., H, W) tensors.

    uint8 input is rounded after each axis and returned as uint8, like MATLAB; float input is
    resized in its own dtype without rounding. Rows (height) are resized first, as MATLAB does
    when both factors are equal.
    """
    h, w = image.shape[-2:]
    if size is None:
        if scale is None or scale <= 0:
            raise ValueError("imresize needs a positive scale or an output size")
        size = (math.ceil(h * scale), math.ceil(w * scale))
        scale_h = scale_w = float(scale)
    else:
        scale_h, scale_w = size[0] / h, size[1] / w
    is_uint8 = image.dtype == torch.uint8
    dtype = torch.float64 if is_uint8 or image.dtype == torch.float64 else torch.float32
    x = image.to(dtype)
    mh = _resize_matrix_on(h, size[0], scale_h, x.device, dtype)
    mw = _resize_matrix_on(w, size[1], scale_w, x.device, dtype)
    x = torch.matmul(mh, x)
    if is_uint8:
        x = _round_uint8(x)
    x = torch.matmul(x, mw.T)
    if is_uint8:
        return _round_uint8(x).to(torch.uint8)
    return x.to(image.dtype)


def bicubic_downsample(hr: Tensor, scale: int) -> Tensor:
    """LR image of an HR uint8 image whose sides are multiples of scale: MATLAB imresize(hr, 1/scale)."""
    return imresize(hr, 1.0 / scale)


def bicubic_upsample(lr: Tensor, scale: int) -> Tensor:
    """MATLAB imresize(lr, scale) (the bicubic baseline); differentiable for float input."""
    return imresize(lr, float(scale))


def bicubic_phase_filters(scale: int) -> Tensor:
    """(scale, 5) float64: MATLAB's bicubic weights of output phase p on inputs i-2..i+2, read off an interior row
    of resize_matrix (an integer upscale repeats them for every input pixel). Computed eagerly, never while a graph
    is traced (resize_matrix's cache would keep a traced tensor)."""
    length, i = 12, 6
    matrix = resize_matrix(length, length * scale, float(scale))
    rows = matrix[scale * i: scale * (i + 1)]
    taps = rows[:, i - 2: i + 3]
    assert torch.allclose(taps.sum(1), rows.sum(1)), "an upscale tap lies outside i-2..i+2"
    return taps.clone()


def _upsample_rows(x: Tensor, taps: Tensor) -> Tensor:
    """(N, C, H, W) → (N, C, scale·H, W): symmetric 2-px padding (MATLAB's border rule), a conv of one filter per
    output phase, phases interleaved."""
    n, c, h, w = x.shape
    padded = torch.cat([x[..., :2, :].flip(-2), x, x[..., -2:, :].flip(-2)], dim=-2)
    scale = taps.shape[0]
    out = F.conv2d(padded.reshape(n * c, 1, h + 4, w), taps.view(scale, 1, 5, 1))  # (N·C, scale, H, W)
    return out.view(n, c, scale, h, w).permute(0, 1, 3, 2, 4).reshape(n, c, h * scale, w)


def bicubic_upsample_conv(x: Tensor, taps: Tensor) -> Tensor:
    """bicubic_upsample of a float batch (N, C, H, W) by an integer factor, given its bicubic_phase_filters, as
    shape-generic convolutions (torch.export can make H and W symbolic); equal to it up to float rounding for sides
    of at least 3 px."""
    taps = taps.to(x.dtype)
    return _upsample_rows(_upsample_rows(x, taps).transpose(-1, -2), taps).transpose(-1, -2)


def mod_crop(image: Tensor, scale: int) -> Tensor:
    """Crop the bottom/right edge so both sides are multiples of scale (the SR test convention)."""
    h, w = image.shape[-2:]
    return image[..., : h - h % scale, : w - w % scale]


# ---------------------------------------------------------------------------------------------
# HR/LR image sets
# ---------------------------------------------------------------------------------------------


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding; corrupt files are named."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"Image '{path}' is corrupt or not an image ({exc.__class__.__name__}).") from None


class SRImages(Dataset):
    """Pairs of HR images and (optional) LR files; item i is {"name", "hr", "lr"} as uint8 (3, H, W).

    HR images are cropped to a multiple of the scale; a missing LR file is made by MATLAB bicubic
    downsampling. An LR file whose size is not HR/scale is an error naming both files.
    """

    def __init__(self, hr_files: list[Path], lr_files: list[Path | None] | None, scale: int,
                 what: str, cache: bool = False):
        if scale not in (2, 3, 4, 8):
            raise DataError(f"Super-resolution scale must be 2, 3, 4 or 8, got {scale}.")
        if not hr_files:
            raise DataError(f"{what} has no HR images.")
        self.hr_files = list(hr_files)
        self.lr_files = list(lr_files) if lr_files is not None else [None] * len(hr_files)
        self.scale, self.what, self.cache = scale, what, cache
        self._hr_cache: dict[int, Tensor] = {}
        self._lr_cache: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.hr_files)

    @property
    def has_lr_files(self) -> bool:
        return any(p is not None for p in self.lr_files)

    def name(self, index: int) -> str:
        return self.hr_files[index].name

    def hr_full(self, index: int) -> Tensor:
        """The HR image as stored (not cropped), uint8 (3, H, W)."""
        if index in self._hr_cache:
            return self._hr_cache[index]
        image = load_image(self.hr_files[index])
        if self.cache:
            self._hr_cache[index] = image
        return image

    def lr_file(self, index: int) -> Tensor | None:
        """The stored LR image, checked against its HR size, or None when there is no LR file."""
        path = self.lr_files[index]
        if path is None:
            return None
        lr = load_image(path)
        h, w = image_size(self.hr_files[index])
        want = (h // self.scale, w // self.scale)
        made_from_uncropped = (-(-h // self.scale), -(-w // self.scale))  # MATLAB's ceil(H/s) × ceil(W/s)
        if tuple(lr.shape[-2:]) not in (want, made_from_uncropped):
            raise DataError(f"LR image '{path}' is {lr.shape[-1]}x{lr.shape[-2]} but its HR image "
                            f"'{self.hr_files[index]}' needs {want[1]}x{want[0]} at scale x{self.scale}.")
        return lr[:, : want[0], : want[1]]

    def lr_full(self, index: int) -> Tensor:
        """The LR image: the stored file, else MATLAB bicubic downsampling of the cropped HR image."""
        if index in self._lr_cache:
            return self._lr_cache[index]
        lr = self.lr_file(index)
        if lr is None:
            lr = bicubic_downsample(mod_crop(self.hr_full(index), self.scale), self.scale)
        if self.cache:
            self._lr_cache[index] = lr
        return lr

    def __getitem__(self, index: int) -> dict:
        hr = mod_crop(self.hr_full(index), self.scale)
        return {"name": self.name(index), "hr": hr, "lr": self.lr_full(index)}

    def cropped_names(self) -> list[str]:
        """Names of HR images whose sides are not multiples of the scale (they get cropped)."""
        out = []
        for path in self.hr_files:
            h, w = image_size(path)
            if h % self.scale or w % self.scale:
                out.append(path.name)
        return out

    def crop_note(self) -> str:
        """One sentence saying which HR images are cropped to a multiple of the scale, or ''."""
        names = self.cropped_names()
        if not names:
            return ""
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        return (f"{len(names)} of {len(self)} HR images of {self.what} are not a multiple of x{self.scale} "
                f"and are cropped at the bottom/right edge ({shown}).")


# The colour photographs shipped inside the scikit-image wheel (skimage/data/), no download.
# motorcycle_right (the other half of a stereo pair) is left out so no view is in both splits;
# the grayscale, synthetic and RGBA images are not natural colour photos.
BUILTIN_PHOTOS = {
    "train": ("astronaut.png", "coffee.png", "motorcycle_left.png", "hubble_deep_field.jpg", "ihc.png"),
    "test": ("chelsea.png", "rocket.jpg"),
}


def skimage_data_dir() -> Path:
    try:
        return Path(str(importlib.resources.files("skimage") / "data"))
    except ModuleNotFoundError:
        raise DataError("The builtin SR photos come from scikit-image, which is not installed; "
                        "pip install scikit-image or pass --data.") from None


class BuiltinPhotos(SRImages):
    """The natural colour photos scikit-image ships (train: 5 images, test: chelsea and rocket)."""

    def __init__(self, split: str = "train", scale: int = 4):
        if split not in BUILTIN_PHOTOS:
            raise DataError(f"Builtin photos have splits {', '.join(BUILTIN_PHOTOS)}, not '{split}'.")
        root = skimage_data_dir()
        files = [root / name for name in BUILTIN_PHOTOS[split]]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DataError(f"scikit-image's data folder '{root}' lacks {', '.join(missing)}; "
                            "reinstall scikit-image or pass --data.")
        super().__init__(files, None, scale, f"builtin photos ({split})", cache=True)


def _match_lr(hr_files: list[Path], lr_dir: Path, scale: int) -> list[Path]:
    """The LR file of each HR file in lr_dir: same stem, or stem + 'x4' (DIV2K), or _HR → _LR."""
    by_key: dict[str, Path] = {}
    for path in list_images(lr_dir, recursive=False):
        by_key[_pair_key(path.stem, scale)] = path
    out = []
    for hr in hr_files:
        lr = by_key.get(_pair_key(hr.stem, scale))
        if lr is None:
            raise DataError(f"No LR image for '{hr.name}' in '{lr_dir}' (looked for '{hr.stem}.*', "
                            f"'{hr.stem}x{scale}.*' and _HR→_LR names).")
        out.append(lr)
    return out


def _pair_key(stem: str, scale: int) -> str:
    key = re.sub(r"_(HR|LR)$", "", stem, flags=re.IGNORECASE)  # img_001_SRF_4_HR → img_001_SRF_4
    key = re.sub(rf"(_?SRF_{scale}|x{scale})$", "", key, flags=re.IGNORECASE)  # → img_001; 0001x4 → 0001
    return key.lower()


class DIV2K(SRImages):
    """DIV2K: `DIV2K_{train,valid}_HR/0001.png` and, when present, `DIV2K_{split}_LR_bicubic/X4/0001x4.png`.

    `root` is the folder holding those folders (or the HR folder itself). Without the LR folder the
    LR images are made on the fly with the same MATLAB bicubic kernel.
    """

    SPLITS = ("train", "valid")

    def __init__(self, root: str | Path, scale: int = 4, split: str = "train", cache: bool = False):
        if split not in self.SPLITS:
            raise DataError(f"DIV2K has splits {', '.join(self.SPLITS)}, not '{split}'.")
        root = Path(root).expanduser()
        hr_dir = root / f"DIV2K_{split}_HR"
        if root.name == f"DIV2K_{split}_HR":
            hr_dir, root = root, root.parent
        if not hr_dir.is_dir():
            raise DataError(f"DIV2K folder '{hr_dir}' is missing; download DIV2K_{split}_HR.zip from "
                            f"https://data.vision.ee.ethz.ch/cvl/DIV2K/ and extract it into '{root}'.")
        hr_files = list_images(hr_dir, recursive=False)
        lr_dir = root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}"
        lr_files = _match_lr(hr_files, lr_dir, scale) if lr_dir.is_dir() else None
        super().__init__(hr_files, lr_files, scale, f"DIV2K {split}", cache=cache)
        self.lr_dir = lr_dir if lr_dir.is_dir() else None


class SRTestSet(SRImages):
    """An SR test set (Set5, Set14, BSD100, Urban100, ...) as a folder of HR images, LR optional.

    Recognised layouts of `path`: a plain folder of HR images; `HR/` (+ `LR_bicubic/X4/`);
    `GTmod12/` (+ `LRbicx4/`), as in BasicSR's copies; `image_SRF_4/` with `*_HR.png`/`*_LR.png`.
    An explicit `lr_dir` overrides the LR folder found in the layout.
    """

    def __init__(self, path: str | Path, lr_dir: str | Path | None = None, scale: int = 4):
        path = Path(path).expanduser()
        if not path.is_dir():
            raise DataError(f"Test set folder '{path}' does not exist.")
        hr_files, found_lr = self._layout(path, scale)
        lr_dir = Path(lr_dir).expanduser() if lr_dir else found_lr
        if isinstance(lr_dir, Path) and not lr_dir.is_dir():
            raise DataError(f"LR folder '{lr_dir}' does not exist.")
        lr_files = None
        if isinstance(lr_dir, Path):
            lr_files = _match_lr(hr_files, lr_dir, scale)
        elif isinstance(found_lr, list):
            lr_files = found_lr
        super().__init__(hr_files, lr_files, scale, f"test set '{path.name}'")

    @staticmethod
    def _layout(path: Path, scale: int) -> tuple[list[Path], Path | list[Path] | None]:
        for hr_name, lr_name in (("HR", f"LR_bicubic/X{scale}"), ("GTmod12", f"LRbicx{scale}")):
            if (path / hr_name).is_dir():
                lr = path / lr_name
                return list_images(path / hr_name, recursive=False), lr if lr.is_dir() else None
        srf = path / f"image_SRF_{scale}"
        if srf.is_dir():
            files = list_images(srf, recursive=False)
            hr = [f for f in files if f.stem.upper().endswith("_HR")]
            lr = [f for f in files if f.stem.upper().endswith("_LR")]
            if not hr:
                raise DataError(f"Folder '{srf}' has no *_HR images.")
            by_key = {_pair_key(f.stem, scale): f for f in lr}
            return hr, [by_key.get(_pair_key(f.stem, scale)) for f in hr]
        files = list_images(path, recursive=False)
        return files, None


def open_sr_images(spec: str, scale: int, split: str = "train") -> SRImages:
    """The SR image set a --data / --test-data value names.

    "" or "builtin" → the scikit-image photos; a folder holding DIV2K_{split}_HR (or that folder) →
    DIV2K; `div2k:PATH` likewise; any other folder → an HR folder / test-set layout (SRTestSet).
    """
    if spec in ("", "builtin"):
        return BuiltinPhotos("train" if split == "train" else "test", scale)
    kind, _, rest = spec.partition(":")
    if kind.lower() == "div2k" and rest:
        return DIV2K(rest, scale, "train" if split == "train" else "valid")
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise DataError(f"SR data '{spec}' is neither 'builtin', 'div2k:PATH' nor an existing folder.")
    div2k_split = "train" if split == "train" else "valid"
    if (path / f"DIV2K_{div2k_split}_HR").is_dir() or path.name == f"DIV2K_{div2k_split}_HR":
        return DIV2K(path, scale, div2k_split)
    if path.name.startswith("DIV2K_") and path.name.endswith("_HR"):
        return DIV2K(path.parent, scale, "valid" if "valid" in path.name else "train")
    return SRTestSet(path, None, scale)


def heldout_for(train_spec: str, scale: int) -> SRImages | None:
    """The images evaluated during training when no --test-data is given, or None if there are none."""
    if train_spec in ("", "builtin"):
        return BuiltinPhotos("test", scale)
    path = Path(train_spec.partition(":")[2] if train_spec.lower().startswith("div2k:") else train_spec)
    path = path.expanduser()
    root = path.parent if path.name.startswith("DIV2K_") else path
    if (root / "DIV2K_valid_HR").is_dir():
        return DIV2K(root, scale, "valid")
    return None


# ---------------------------------------------------------------------------------------------
# Training crops
# ---------------------------------------------------------------------------------------------


class SRCrops(Dataset):
    """Random aligned (LR, HR) crops, augmented, keyed by (index, seed).

    augment: "dihedral" (random horizontal and vertical flips and transposition: the 8 flips/90° rotations,
    as ESRGAN), "hflip" (a random horizontal flip only, as the SAN paper) or "none".

    Index i draws from image i mod n; every random choice comes from
    torch.Generator().manual_seed(seed). The LR crop is cut from stored LR files when the set has
    them; otherwise it is made from an HR region with a margin of 3 LR pixels, which gives exactly
    the pixels a full-image MATLAB downsampling would (cached sets keep the whole LR image). Items: "lr" (3, p, p) and "hr" (3, s·p, s·p)
    in [-1, 1].
    """

    MARGIN = 3  # LR pixels; the bicubic kernel reaches 2 LR pixels when shrinking

    AUGMENTS = ("dihedral", "hflip", "none")

    def __init__(self, images: SRImages, hr_size: int, augment: str = "dihedral", min_length: int = 1024):
        if augment not in self.AUGMENTS:
            raise ValueError(f"augment must be one of {', '.join(self.AUGMENTS)}, got {augment!r}")
        if hr_size % images.scale:
            raise DataError(f"The HR crop size {hr_size} is not a multiple of the scale x{images.scale}.")
        self.images, self.hr_size, self.augment = images, hr_size, augment
        self.scale = images.scale
        self.repeats = max(1, math.ceil(min_length / len(images)))

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        index, seed = key
        g = torch.Generator().manual_seed(int(seed))
        i = index % len(self.images)
        s, p = self.scale, self.hr_size // self.scale
        hr_img = self.images.hr_full(i)
        lr_h, lr_w = hr_img.shape[-2] // s, hr_img.shape[-1] // s
        if lr_h < p or lr_w < p:
            raise DataError(f"Image '{self.images.hr_files[i]}' is {hr_img.shape[-1]}x{hr_img.shape[-2]}, "
                            f"smaller than the {self.hr_size} px HR crop; use a smaller --hr-size.")
        y = int(torch.randint(0, lr_h - p + 1, (1,), generator=g))
        x = int(torch.randint(0, lr_w - p + 1, (1,), generator=g))
        hr = hr_img[:, y * s:(y + p) * s, x * s:(x + p) * s]
        if self.images.cache or self.images.has_lr_files:
            lr = self.images.lr_full(i)[:, y:y + p, x:x + p]
        else:  # uncached HR-only data: downsample a local region instead of the whole image
            lr = self._lr_from_hr(hr_img, y, x, p, lr_h, lr_w)
        if self.augment != "none":
            flip_h, flip_v, transpose = (torch.rand(3, generator=g) < 0.5).tolist()
            if self.augment == "hflip":
                flip_v = transpose = False
            lr, hr = (_augment(t, flip_h, flip_v, transpose) for t in (lr, hr))
        return {"lr": lr.float() / 127.5 - 1, "hr": hr.float() / 127.5 - 1}

    def _lr_from_hr(self, hr_img: Tensor, y: int, x: int, p: int, lr_h: int, lr_w: int) -> Tensor:
        """LR pixels [y, y+p) × [x, x+p) of the full image's MATLAB downsampling, from a local region."""
        s, m = self.scale, self.MARGIN
        y0, x0 = max(y - m, 0), max(x - m, 0)
        y1, x1 = min(y + p + m, lr_h), min(x + p + m, lr_w)
        region = hr_img[:, y0 * s:y1 * s, x0 * s:x1 * s]
        lr = bicubic_downsample(region, s)
        return lr[:, y - y0:y - y0 + p, x - x0:x - x0 + p]


def _augment(image: Tensor, flip_h: bool, flip_v: bool, transpose: bool) -> Tensor:
    if flip_h:
        image = image.flip(-1)
    if flip_v:
        image = image.flip(-2)
    if transpose:
        image = image.transpose(-1, -2)
    return image.contiguous()


__all__ = ["BUILTIN_PHOTOS", "DIV2K", "IMAGE_SUFFIXES", "BuiltinPhotos", "SRCrops", "SRImages", "SRTestSet",
           "bicubic_downsample", "bicubic_upsample", "heldout_for", "imresize", "mod_crop", "open_sr_images",
           "resize_matrix"]
