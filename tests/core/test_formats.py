"""Real dataset formats, written as tiny fixtures in their exact on-disk layouts, and the spec parser."""

from __future__ import annotations

import io
import os
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancli.data import formats
from gancli.data.builtin import BuiltinImages
from gancli.data.formats import (
    CIFAR10Images,
    ImageFolderImages,
    NumpyOnlyUnpickler,
    STL10Images,
)
from gancli.data.specs import check_uniform_size, open_dataset, resized
from gancli.errors import DataError

PER_FILE = 10


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` opcodes, as the official CIFAR files (pickled by Python 2) do."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        header = pickle.SHORT_BINSTRING + bytes([len(obj)]) if len(obj) < 256 else \
            pickle.BINSTRING + struct.pack("<i", len(obj))
        self.write(header + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def cifar_pixels(file_index: int) -> np.ndarray:
    """Distinct, non-symmetric uint8 images (N, 3, 32, 32) for one batch file."""
    rng = np.random.default_rng(file_index)
    return rng.integers(0, 256, size=(PER_FILE, 3, 32, 32), dtype=np.uint8)


def write_cifar(root) -> None:
    """cifar-10-batches-py/ with data_batch_1..5 and test_batch, each a dict like the official files."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch = {b"batch_label": f"fixture batch {i}".encode(),
                 b"labels": [(i + j) % 10 for j in range(PER_FILE)],
                 b"data": cifar_pixels(i).reshape(PER_FILE, 3072),
                 b"filenames": [f"img_{i}_{j}.png".encode() for j in range(PER_FILE)]}
        buffer = io.BytesIO()
        Python2Pickler(buffer, protocol=2).dump(batch)
        (folder / name).write_bytes(buffer.getvalue())


@pytest.fixture
def cifar_root(tmp_path):
    write_cifar(tmp_path)
    return tmp_path


def test_cifar_round_trip(cifar_root):
    train = CIFAR10Images(cifar_root, "train", verify=False)
    test = CIFAR10Images(cifar_root, "test", verify=False)
    assert len(train) == 5 * PER_FILE and len(test) == PER_FILE
    assert (train.num_classes, train.resolution, train.name, test.name) == (10, 32, "cifar10:train", "cifar10:test")
    image, label = train[PER_FILE + 3]  # data_batch_2, image 3
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    assert torch.equal(image, torch.from_numpy(cifar_pixels(1)[3])) and label == 4
    image, label = test[7]
    assert torch.equal(image, torch.from_numpy(cifar_pixels(5)[7])) and label == (5 + 7) % 10


def test_cifar_verify_rejects_unofficial_files(cifar_root):
    with pytest.raises(DataError, match="data_batch_1.*not the official one"):
        CIFAR10Images(cifar_root, "train")


def test_cifar_missing_file_is_named(tmp_path, cifar_root):
    with pytest.raises(DataError, match="test_batch.*cifar-10-python.tar.gz"):
        CIFAR10Images(tmp_path / "nowhere", "test")
    (cifar_root / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4"):
        CIFAR10Images(cifar_root, "train", verify=False)


def test_cifar_is_downloaded_on_first_use_into_the_data_root(tmp_path, monkeypatch):
    """Where the network allows, a missing official archive is fetched (URL and MD5 as published) and extracted."""
    calls = []

    def fake_download(url, download_root, filename, md5):
        calls.append((url, filename, md5))
        write_cifar(Path(download_root))

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_download)
    monkeypatch.delenv("GANCLI_NO_DOWNLOAD")
    assert len(open_dataset("cifar10:test", root=tmp_path / "data", verify=False)) == PER_FILE
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                      "c58f30108f718f92721af3b95e74349a")]
    open_dataset("cifar10:train", root=tmp_path / "data", verify=False)
    assert len(calls) == 1  # found on the second use


def test_no_download_when_the_environment_says_offline(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive",
                        lambda *a, **k: pytest.fail("no download may be tried"))
    monkeypatch.setenv("GANCLI_NO_DOWNLOAD", "1")
    with pytest.raises(DataError, match=r"stl10_binary/unlabeled_X.bin' is missing.*GANCLI_NO_DOWNLOAD is set"):
        open_dataset("stl10:unlabeled", root=tmp_path)


def test_cifar_download_failure_is_one_sentence(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    with pytest.raises(DataError, match="Could not download CIFAR-10 from https://www.cs.toronto.edu"):
        CIFAR10Images(tmp_path, "train", download=True)


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_code(cifar_root, tmp_path):
    marker = tmp_path / "payload_ran"
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"evil": Exploit(marker)}
    (cifar_root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError, match="test_batch.*not allowed"):
        CIFAR10Images(cifar_root, "test", verify=False)
    assert not marker.exists()


def test_unpickler_accepts_old_numpy_path():
    assert NumpyOnlyUnpickler(io.BytesIO(b"")).find_class("numpy.core.multiarray", "_reconstruct") is \
        formats._reconstruct
    with pytest.raises(DataError):
        NumpyOnlyUnpickler(io.BytesIO(b"")).find_class("builtins", "eval")


def test_cifar_garbage_file(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="test_batch"):
        CIFAR10Images(cifar_root, "test", verify=False)


def stl_images(n: int, seed: int) -> np.ndarray:
    """Random uint8 (N, 3, 96, 96) images in display (C, H, W) order."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)


def write_stl(root) -> dict[str, np.ndarray]:
    """stl10_binary/ with each channel written column-major, labels 1..10, as the official binaries."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    images = {"unlabeled": stl_images(4, 0), "train": stl_images(3, 1), "test": stl_images(2, 2)}
    # A recognisable non-symmetric image: a bright horizontal bar across the top rows of channel 0.
    images["train"][0] = 0
    images["train"][0, 0, :5, :] = 255
    for split, array in images.items():
        array.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # Fortran order within each channel
    np.array([1, 10, 5], np.uint8).tofile(folder / "train_y.bin")
    np.array([2, 3], np.uint8).tofile(folder / "test_y.bin")
    return images


def test_stl_round_trip_and_orientation(tmp_path):
    images = write_stl(tmp_path)
    for split in ("unlabeled", "train", "test"):
        data = STL10Images(tmp_path, split, verify=False)
        assert len(data) == len(images[split]) and data.resolution == 96 and data.name == f"stl10:{split}"
        for i in range(len(data)):
            assert torch.equal(data[i][0], torch.from_numpy(images[split][i]))
    train = STL10Images(tmp_path, "train", verify=False)
    bar = train[0][0]
    assert bar[0, :5, :].eq(255).all() and bar[0, 5:, :].eq(0).all()  # rows, not columns
    assert [train[i][1] for i in range(3)] == [0, 9, 4] and train.num_classes == 10
    unlabeled = STL10Images(tmp_path, "unlabeled", verify=False)
    assert unlabeled[2][1] == -1 and unlabeled.num_classes == 0


def test_stl_verify_missing_and_bad_size(tmp_path):
    write_stl(tmp_path)
    with pytest.raises(DataError, match="train_X.bin.*not the official one"):
        STL10Images(tmp_path, "train")
    with pytest.raises(DataError, match="unlabeled_X.bin.*stl10_binary.tar.gz"):
        STL10Images(tmp_path / "nowhere", "unlabeled")
    (tmp_path / "stl10_binary" / "test_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(DataError, match="test_X.bin"):
        STL10Images(tmp_path, "test", verify=False)


def save_png(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def pixels(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_image_folder_with_classes(tmp_path):
    arrays = {"dog/b.png": pixels(8, 8, 0), "cat/a.png": pixels(8, 8, 1), "cat/c.png": pixels(8, 8, 2)}
    for name, array in arrays.items():
        save_png(tmp_path / name, array)
    data = ImageFolderImages(tmp_path)
    assert len(data) == 3 and data.num_classes == 2 and data.classes == ["cat", "dog"]
    assert data.name == f"folder:{tmp_path.resolve()}" and data.resolution == 8
    labels = {path.relative_to(tmp_path.resolve()).as_posix(): data[i][1] for i, path in enumerate(data.files)}
    assert labels == {"cat/a.png": 0, "cat/c.png": 0, "dog/b.png": 1}
    image = data[data.files.index(tmp_path.resolve() / "dog/b.png")][0]
    assert torch.equal(image, torch.from_numpy(arrays["dog/b.png"]).permute(2, 0, 1))


def test_image_folder_without_classes(tmp_path):
    save_png(tmp_path / "a.png", pixels(6, 10, 0))
    save_png(tmp_path / "sub" / "b.png", pixels(6, 6, 1))
    data = ImageFolderImages(tmp_path)
    assert data.num_classes == 0 and [data[i][1] for i in range(2)] == [-1, -1]
    assert data[0][0].shape == (3, 6, 10) and data.resolution is None


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderImages(tmp_path / "missing")
    save_png(tmp_path / "good.png", pixels(4, 4, 0))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    data = ImageFolderImages(tmp_path)
    with pytest.raises(DataError, match="broken.png"):
        data[data.files.index(tmp_path.resolve() / "broken.png")]


def test_image_folders_follow_linked_folders_and_skip_hidden_files(tmp_path):
    save_png(tmp_path / "elsewhere" / "linked.png", pixels(4, 4, 0))
    root = tmp_path / "images"
    save_png(root / "a.png", pixels(4, 4, 1))
    save_png(root / ".ipynb_checkpoints" / "a-checkpoint.png", pixels(4, 4, 2))
    save_png(root / "._a.png", pixels(4, 4, 3))  # macOS metadata next to a copied file
    (root / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # a link back up: read once, not forever
    data = ImageFolderImages(root)
    assert [p.relative_to(data.root).as_posix() for p in data.files] == ["a.png", "more/linked.png"]
    (root / "gone.png").symlink_to(tmp_path / "deleted.png")
    with pytest.raises(DataError, match="gone.png' is a link to a file that does not exist"):
        ImageFolderImages(root)


def test_alpha_is_dropped_as_the_reference_loaders_do(tmp_path):
    """torchvision's, torch-fidelity's and pytorch-fid's loaders all read Image.open(path).convert('RGB')."""
    from gancli.data.images import load_image

    rgba = np.random.default_rng(0).integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., [0, 3]], "LA").save(tmp_path / "la.png")
    for name in ("rgba.png", "la.png"):
        expected = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        assert torch.equal(load_image(tmp_path / name), torch.from_numpy(expected.copy()).permute(2, 0, 1))


def test_a_folder_named_like_a_dataset_is_not_silently_the_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_png(tmp_path / "builtin" / "a.png", pixels(4, 4, 0))
    with pytest.raises(DataError, match="'builtin' names both the builtin dataset and a folder here; write ./builtin"):
        open_dataset("builtin")
    assert len(open_dataset("./builtin")) == 1 and len(open_dataset("folder:builtin")) == 1
    assert open_dataset("builtin:test").name == "builtin:test:32"


def test_high_bit_depth_images_are_scaled_to_8_bits_not_clipped(tmp_path):
    """A 16-bit grayscale PNG reads as round(v / 257) in each channel (PIL's own conversion clips at 255); pixels of
    unknown range (float, or 32-bit integers beyond 255) are refused with the file's name."""
    from gancli.data.images import load_image

    values = np.array([[0, 128, 129, 1000, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    assert image.shape == (3, 1, 6) and image[0].tolist() == [[0, 0, 1, 4, 128, 255]]
    assert torch.equal(image[0], image[2])
    Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32), "I").save(tmp_path / "int.tif")
    assert load_image(tmp_path / "int.tif")[1].tolist() == [[0, 100, 255]]  # 8-bit values in a 32-bit image
    Image.fromarray(np.array([[0, 300]], dtype=np.int32), "I").save(tmp_path / "wide.tif")
    with pytest.raises(DataError, match="wide.tif' has integer pixels outside the 8-bit range"):
        load_image(tmp_path / "wide.tif")
    Image.fromarray(np.array([[0.0, 0.5]], dtype=np.float32), "F").save(tmp_path / "float.tif")
    with pytest.raises(DataError, match="float.tif' has floating-point pixels"):
        load_image(tmp_path / "float.tif")


def test_specs_builtin(monkeypatch):
    assert open_dataset("builtin").name == "builtin:train:32"
    assert open_dataset("builtin:test").name == "builtin:test:32"
    assert open_dataset("builtin:test:64").name == "builtin:test:64"
    assert open_dataset("builtin", resolution=48).name == "builtin:train:48"
    data = open_dataset("builtin:train:16")
    assert isinstance(data, BuiltinImages) and data[0][0].shape == (3, 16, 16)
    for bad in ("builtin:val", "builtin:test:big", "mnist", "cifar10:val", "stl10:extra", "cifar10:test:32"):
        with pytest.raises(DataError):
            open_dataset(bad)
    with pytest.raises(DataError, match="Unknown dataset 'mnist'.*folder:PATH"):
        open_dataset("mnist")
    with pytest.raises(DataError, match="train, test"):
        open_dataset("cifar10:val")


def test_specs_real_formats(tmp_path, monkeypatch):
    write_cifar(tmp_path)
    write_stl(tmp_path)
    assert len(open_dataset("cifar10:test", root=tmp_path, verify=False)) == PER_FILE
    monkeypatch.setenv("GANCLI_DATA", str(tmp_path))
    assert open_dataset("cifar10", verify=False).name == "cifar10:train"
    assert open_dataset("stl10", verify=False).name == "stl10:unlabeled"
    assert len(open_dataset("stl10:test", verify=False)) == 2
    with pytest.raises(DataError, match="not the official one"):
        open_dataset("stl10:train")
    monkeypatch.setenv("GANCLI_DATA", str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"empty.*test_batch"):
        open_dataset("cifar10:test")


def test_specs_folders(tmp_path):
    save_png(tmp_path / "imgs" / "a.png", pixels(5, 5, 0))
    assert open_dataset(f"folder:{tmp_path / 'imgs'}").name == f"folder:{(tmp_path / 'imgs').resolve()}"
    assert len(open_dataset(str(tmp_path / "imgs"))) == 1
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(f"folder:{tmp_path / 'nope'}")


def test_resized_shapes(tmp_path):
    save_png(tmp_path / "wide.png", pixels(20, 40, 0))
    save_png(tmp_path / "tall.png", pixels(30, 12, 1))
    save_png(tmp_path / "square.png", pixels(16, 16, 2))
    data = resized(ImageFolderImages(tmp_path), 16)
    assert data.resolution == 16 and data.name.endswith("@16") and len(data) == 3
    for i in range(3):
        image, label = data[i]
        assert image.shape == (3, 16, 16) and image.dtype == torch.uint8 and label == -1
    square = data[[p.name for p in data.dataset.files].index("square.png")][0]
    assert torch.equal(square, torch.from_numpy(pixels(16, 16, 2)).permute(2, 0, 1))  # already right size
    assert resized(BuiltinImages("test", 32, size=4), 24)[0][0].shape == (3, 24, 24)


def test_check_uniform_size(tmp_path):
    for name, (h, w) in {"a.png": (8, 8), "b.png": (8, 8), "c.png": (8, 9)}.items():
        save_png(tmp_path / name, pixels(h, w, 0))
    data = ImageFolderImages(tmp_path)
    assert check_uniform_size(data, max_check=2) == (8, 8)
    with pytest.raises(DataError, match="c.png.*9×8"):
        check_uniform_size(data)
    assert check_uniform_size(BuiltinImages("test", 16, size=5)) == (16, 16)
    assert check_uniform_size(resized(data, 8)) == (8, 8)


def test_official_cifar_is_counted_without_reading_and_verified_once(cifar_root, tmp_path, monkeypatch):
    """A second open of an MD5-checked file reads nothing: what a cached reference statistic relies on."""
    monkeypatch.setenv("GANCLI_CACHE", str(tmp_path / "cache"))
    hashed, loaded = [], []
    monkeypatch.setattr(formats, "check_integrity", lambda path, md5: hashed.append(path) or True)
    real_load = formats.load_cifar_batch
    monkeypatch.setattr(formats, "load_cifar_batch", lambda path: loaded.append(path) or real_load(path))
    data = CIFAR10Images(cifar_root, "train")
    assert len(data) == 50_000 and len(hashed) == 5 and loaded == []  # the official files hold 10,000 each
    CIFAR10Images(cifar_root, "train")
    assert len(hashed) == 5  # same size and mtime as when they passed: not read again
    batch = cifar_root / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes() + b"x")  # changed since: checked again
    CIFAR10Images(cifar_root, "train")
    assert len(hashed) == 6
    assert data[PER_FILE][0].shape == (3, 32, 32) and len(loaded) == 5  # read on first use only
