"""Feature-network weights: lookup order, the hub cache, official copies, downloads checked before use."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from gancli.errors import MissingWeightsError
from gancli.metrics.generative.weights import INCEPTION, VGG16, find_weights

SPECS = pytest.mark.parametrize("spec", [INCEPTION, VGG16], ids=["inception", "vgg16"])


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty torch hub cache, and no weights named by the environment: its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for spec in (INCEPTION, VGG16):
        monkeypatch.delenv(spec.env, raising=False)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    return tmp_path / "hub" / "checkpoints"


def official_by_sha256(spec, content: bytes):
    """spec, as if content were its official file (by the sha256 prefix)."""
    return dataclasses.replace(spec, sha256_prefix=hashlib.sha256(content).hexdigest()[:8])


@SPECS
def test_missing_weights_name_the_file_and_where_to_get_it(hub_cache, spec):
    with pytest.raises(MissingWeightsError) as info:
        find_weights(spec, None, download=False)
    text = str(info.value)
    assert spec.file in text and spec.url in text and "--weights" in text and spec.env in text


@SPECS
def test_a_given_path_or_environment_variable_comes_first(hub_cache, spec, monkeypatch, tmp_path):
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"x")
    assert find_weights(spec, mine, download=False) == mine
    with pytest.raises(MissingWeightsError, match="'/nowhere.pth' \\(given by --weights\\) does not exist"):
        find_weights(spec, "/nowhere.pth", download=False)
    monkeypatch.setenv(spec.env, str(mine))
    assert find_weights(spec, None, download=False) == mine
    monkeypatch.setenv(spec.env, "/nowhere.pth")
    with pytest.raises(MissingWeightsError, match=f"from \\${spec.env}\\) does not exist"):
        find_weights(spec, None, download=False)


@SPECS
def test_a_corrupt_hub_cache_file_fails_its_hash_check(hub_cache, spec):
    (hub_cache / spec.file).write_bytes(b"not the weights")
    with pytest.raises(MissingWeightsError, match="corrupt: its sha256 starts with"):
        find_weights(spec, None, download=False)
    official = official_by_sha256(spec, b"not the weights")
    assert find_weights(official, None, download=False) == hub_cache / spec.file


def test_pytorch_fids_copy_is_used_only_when_official_by_sha256_or_its_published_sha1(hub_cache):
    (name, _), = INCEPTION.copies.items()
    theirs = hub_cache / name
    theirs.write_bytes(b"pytorch-fid's file")
    with pytest.raises(MissingWeightsError, match="does not exist"):  # another file under that name: not used
        find_weights(INCEPTION, None, download=False)
    assert find_weights(official_by_sha256(INCEPTION, theirs.read_bytes()), None, download=False) == theirs
    by_sha1 = dataclasses.replace(INCEPTION, copies={name: hashlib.sha1(theirs.read_bytes()).hexdigest()})
    assert by_sha1.is_official(theirs) and find_weights(by_sha1, None, download=False) == theirs


@SPECS
@pytest.mark.parametrize("official", [True, False])
def test_the_weights_are_downloaded_into_the_hub_cache_and_checked_before_use(hub_cache, monkeypatch, spec,
                                                                                official):
    fetched = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        fetched.append(url)
        Path(dst).write_bytes(b"the official file" if official else b"a truncated file")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    spec = official_by_sha256(spec, b"the official file")
    target = hub_cache / spec.file
    if official:
        assert find_weights(spec, None, download=True) == target and target.read_bytes() == b"the official file"
    else:
        with pytest.raises(MissingWeightsError, match="failed its hash check"):
            find_weights(spec, None, download=True)
        assert not target.exists()
    assert fetched == [spec.url] and sorted(p.name for p in hub_cache.iterdir()) == (
        [target.name] if official else [])  # no partial download is left behind


def test_a_failed_download_is_one_sentence_that_names_the_file(hub_cache, monkeypatch):
    def offline(url, dst, hash_prefix=None, progress=True):
        raise OSError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(MissingWeightsError, match="Downloading the weights failed \\(OSError\\).*vgg16-397923af.pth"):
        find_weights(VGG16, None, download=True)
    assert list(hub_cache.iterdir()) == []
