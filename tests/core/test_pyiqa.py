"""pyiqa through gancli (the iqa extra): our PSNR/SSIM equal pyiqa's, weights found offline-first, PI; and the base
install that does not need pyiqa."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from gancli.errors import MissingWeightsError
from gancli.metrics.quality import iqa, pyiqa_metrics

ROOT = Path(__file__).resolve().parents[2]
needs_pyiqa = pytest.mark.skipif(not pyiqa_metrics.installed(), reason="the iqa extra (pyiqa) is not installed")
# pyiqa's TID2013 pairs, as tests/core/test_iqa.py reads them
CALIBRA = (Path(pyiqa_metrics.importlib.util.find_spec("pyiqa").origin).parent.parent / "ResultsCalibra"
           if pyiqa_metrics.installed() else Path("/nonexistent"))
NAMES = ("I03", "I04", "I06", "I08", "I19")
CS_NONNEGATIVE = ("I04", "I06")  # no window of these pairs has a negative contrast-structure term on Y


def _load(path: Path) -> torch.Tensor:
    from PIL import Image

    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty torch hub (pyiqa's default weights folder is in it), no $GANCLI_PYIQA_WEIGHTS, no downloads."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(pyiqa_metrics.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("GANCLI_NO_DOWNLOAD", "1")
    return tmp_path


# ---- the base install ------------------------------------------------------------------------------------------
def test_pyiqa_is_an_extra_that_the_tests_install():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.lower().startswith("pyiqa") for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(dep.startswith("pyiqa") for dep in extras["iqa"])
    assert any(dep.startswith("gancli[") and "iqa" in dep for dep in extras["test"])  # CI installs .[test]


def _module_level(tree: ast.AST):
    """The statements a module runs when imported (function bodies excluded)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield node
        yield from _module_level(node)


def test_no_module_imports_pyiqa_at_module_level():
    wrong = []
    for path in [*ROOT.joinpath("gancli").rglob("*.py"), *ROOT.joinpath("recipes").rglob("*.py")]:
        for node in _module_level(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "pyiqa"]
    assert not wrong, wrong


def test_every_module_imports_and_the_cli_answers_without_pyiqa():
    code = ("import sys, pkgutil, importlib; sys.modules['pyiqa'] = None\n"
            "import gancli, recipes\n"
            "for pkg in (gancli, recipes):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
            "from gancli.metrics.quality import pyiqa_metrics\n"
            "assert not pyiqa_metrics.installed()\n"
            "from typer.testing import CliRunner\n"
            "from gancli.cli import app\n"
            "r = CliRunner().invoke(app, ['eval', 'iqa', '--list'])\n"
            "print(r.exit_code, ' '.join(r.output.split()))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("1 Error:") and 'pip install "gancli[iqa]"' in done.stdout, done.stdout


# ---- pyiqa's psnr / ssim against ours ---------------------------------------------------------------------------
@needs_pyiqa
@pytest.mark.skipif(not CALIBRA.is_dir(), reason="pyiqa's ResultsCalibra images are not installed")
def test_our_psnr_and_ssim_equal_pyiqa_on_the_y_channel():
    psnr = pyiqa_metrics.PyiqaMetric("psnr", y_channel=True, eps=0.0)  # pyiqa's default eps=1e-8 moves 57 dB by 0.03
    ssim = pyiqa_metrics.PyiqaMetric("ssim", y_channel=True)
    assert psnr.y_channel and ssim.y_channel and "Y channel" in ssim.protocol()
    for name in NAMES:
        ref, dist = _load(CALIBRA / "ref_dir" / f"{name}.bmp"), _load(CALIBRA / "dist_dir" / f"{name}.bmp")
        assert psnr(dist, ref) == pytest.approx(iqa.psnr(dist, ref, y_channel=True), abs=1e-4)
        # pyiqa's SSIM works on MATLAB's uint8 Y (rounded), and clips negative contrast-structure terms to 0
        ours = iqa.ssim(iqa.rgb_to_y_uint8(dist.double()), iqa.rgb_to_y_uint8(ref.double()))
        if name in CS_NONNEGATIVE:
            assert ssim(dist, ref) == pytest.approx(ours, abs=1e-4)
        else:
            assert 0 < ssim(dist, ref) - ours < 3e-4


@needs_pyiqa
def test_a_border_crop_and_rgb_are_passed_on():
    rng = np.random.default_rng(0)
    gt = torch.from_numpy(rng.integers(0, 256, (3, 40, 52), dtype=np.uint8))
    pred = (gt.int() + torch.from_numpy(rng.integers(-20, 21, (3, 40, 52)))).clamp(0, 255).to(torch.uint8)
    psnr = pyiqa_metrics.PyiqaMetric("psnr", crop_border=4, eps=0.0)
    assert not psnr.y_channel and "4 px border crop" in psnr.protocol()
    assert psnr(pred, gt) == pytest.approx(iqa.psnr(pred, gt, crop_border=4), abs=1e-4)


# ---- weights -----------------------------------------------------------------------------------------------------
@needs_pyiqa
def test_a_metric_whose_weights_are_missing_is_one_sentence(no_weights):
    folder = no_weights / "torch" / "hub" / "pyiqa"
    with pytest.raises(MissingWeightsError, match=r"'NRQM_model.mat' is not in .*pyiqa and downloads are off; "
                                                  r"download https://\S+NRQM_model.mat into .*--iqa-weights DIR"):
        pyiqa_metrics.PyiqaMetric("nrqm")
    with pytest.raises(MissingWeightsError, match=r"CNNIQA\S*\.pth' is not in"):  # through load_pretrained_network
        pyiqa_metrics.PyiqaMetric("cnniqa")
    assert not folder.exists() or not any(folder.iterdir())  # nothing was downloaded
    assert pyiqa_metrics.perceptual_index(4)[0] is None and "NRQM_model.mat" in pyiqa_metrics.perceptual_index(4)[1]


@needs_pyiqa
def test_pyiqa_loaders_are_restored_and_read_plain_weights_only(tmp_path):
    import pyiqa.archs.arch_util as arch_util
    import pyiqa.utils.download_util as download_util

    originals = download_util.load_file_from_url, arch_util.load_pretrained_network
    with pyiqa_metrics.routed_weights(tmp_path, download=False):
        import pyiqa.archs.dbcnn_arch as imported_meanwhile  # as pyiqa imports a network's module when building it

        load = arch_util.load_pretrained_network
        assert imported_meanwhile.load_pretrained_network is load
        assert load is not originals[1]
        net = torch.nn.Linear(3, 2)
        torch.save({"params": {f"module.{k}": v + 1 for k, v in net.state_dict().items()}}, tmp_path / "w.pth")
        before = net.weight.clone()
        load(net, str(tmp_path / "w.pth"), weight_keys="params")
        assert torch.equal(net.weight, before + 1)
        torch.save({"params": {"weight": object()}}, tmp_path / "pickle.pth")
        with pytest.raises(MissingWeightsError, match="cannot be read as plain weights"):
            load(net, str(tmp_path / "pickle.pth"), weight_keys="params")
    assert (download_util.load_file_from_url, arch_util.load_pretrained_network) == originals
    assert imported_meanwhile.load_pretrained_network is originals[1]


@needs_pyiqa
def test_perceptual_index_is_half_of_ten_minus_ma_plus_our_niqe(no_weights, monkeypatch, write_nrqm_model):
    folder = no_weights / "weights"
    write_nrqm_model(folder / "NRQM_model.mat", 6.25)
    monkeypatch.setenv(pyiqa_metrics.WEIGHTS_ENV, str(folder))
    image = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 112, 120), dtype=np.uint8))
    pi, reason = pyiqa_metrics.perceptual_index(4)
    assert reason == ""
    parts = pi.parts(image)
    assert parts["ma"] == pytest.approx(6.25)
    assert parts["niqe"] == iqa.niqe(image, 4, convert="y")
    assert parts["pi"] == pytest.approx(0.5 * ((10 - 6.25) + parts["niqe"]))
