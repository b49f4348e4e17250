"""Any metric of pyiqa (the `iqa` extra: pip install "gancli[iqa]"), its weights offline-first, and PIRM's PI.

pyiqa is imported only here and only when a metric is built: the base install does not need it.

Weights. pyiqa fetches its own weights with `pyiqa.utils.download_util.load_file_from_url` into
$TORCH_HOME/hub/pyiqa (the file name of the URL) and reads them with `load_pretrained_network`
(`torch.load(weights_only=False)`). While a metric is built both are replaced, in every pyiqa module that
imported them: files come from one folder (--iqa-weights DIR, else $GANCLI_PYIQA_WEIGHTS, else pyiqa's own
cache, so files pyiqa downloaded are found), are downloaded there only where downloads are allowed
(not with GANCLI_NO_DOWNLOAD), and are read with `weights_only=True`. A missing file is one sentence naming it,
its URL and the folder. Backbones that some metrics take from timm, Hugging Face or torch hub go through those
libraries' own caches; a failure there is reported in one sentence too.

Conventions. Images are uint8 RGB (3, H, W), given to pyiqa as floats in [0, 1]. The border crop is ours (the
same as `gancli eval psnr`); the Y channel is pyiqa's `test_y_channel` with `color_space='ycbcr'` (BT.601 as
MATLAB's rgb2ycbcr; pyiqa rounds it to integers for the metrics that work on 0..255, e.g. ssim). Measured
against gancli's own metrics on pyiqa's TID2013 pairs: psnr (eps=0) equal to 1e-6 dB (pyiqa's default eps=1e-8 on
the [0, 1] MSE moves a 57 dB PSNR by 0.027 dB); ssim equal to 1e-4 where no local contrast-structure term is
negative (pyiqa clips those to 0, Wang et al.'s MATLAB code does not; up to 1.9e-4 apart on heavy distortions).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from gancli.data.formats import downloads_allowed, network_timeout
from gancli.errors import ConfigError, DataError, GancliError, MissingExtraError, MissingWeightsError
from gancli.metrics.quality import iqa

WEIGHTS_ENV = "GANCLI_PYIQA_WEIGHTS"
# NRQM's weights as pyiqa names them (pyiqa/archs/nrqm_arch.py: get_url_from_name('NRQM_model.mat'))
NRQM_URL = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/NRQM_model.mat"
EXTRA = 'pip install "gancli[iqa]"'
# names that gancli computes itself; pyiqa's metric of the same name stays reachable as pyiqa:NAME
OWN_METRICS = {
    "niqe": ("NR", True, "gancli's NIQE (MATLAB port, within 0.04 of MATLAB; pyiqa's niqe, as pyiqa:niqe, is up to "
                         "0.44 away)"),
    "pi": ("NR", True, "Perceptual Index (PIRM 2018) ½((10 − NRQM) + NIQE): gancli's NIQE and pyiqa's NRQM on Y"),
}


def installed() -> bool:
    """Whether pyiqa can be imported (without importing it: that takes seconds)."""
    try:
        return importlib.util.find_spec("pyiqa") is not None
    except ValueError:  # sys.modules["pyiqa"] is None: blocked
        return False


def _require() -> None:
    if not installed():
        raise MissingExtraError(f"pyiqa's metrics need the iqa extra, which is not installed: {EXTRA}.")


def _configs() -> dict[str, dict[str, Any]]:
    """pyiqa's table of metrics (DEFAULT_CONFIGS), read from its file without importing the package."""
    _require()
    folder = Path(importlib.util.find_spec("pyiqa").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location("_pyiqa_default_configs", folder / "default_model_configs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.DEFAULT_CONFIGS)


def list_metrics() -> list[dict[str, Any]]:
    """Every metric `eval iqa` takes: name, mode (FR: needs --gt; NR: no reference), lower_better, range, by whom."""
    rows = [{"name": name, "mode": mode, "lower_better": lower, "range": "", "by": "gancli", "note": note}
            for name, (mode, lower, note) in OWN_METRICS.items()]
    for name, cfg in _configs().items():
        shown = f"pyiqa:{name}" if name in OWN_METRICS else name
        rows.append({"name": shown, "mode": cfg.get("metric_mode", ""), "lower_better": cfg.get("lower_better", False),
                     "range": cfg.get("score_range", ""), "by": "pyiqa", "note": ""})
    return rows


def resolve(name: str) -> tuple[str | None, str]:
    """(pyiqa's name or None for gancli's own, mode 'FR' or 'NR') of a metric name; unknown names are an error."""
    if name in OWN_METRICS:
        return None, OWN_METRICS[name][0]
    configs = _configs()
    key = name.removeprefix("pyiqa:")
    if key not in configs:
        near = [n for n in configs if key.lower() in n or n in key.lower()][:5]
        hint = f" (similar: {', '.join(near)})" if near else ""
        raise ConfigError(f"pyiqa has no metric '{name}'{hint}; `gancli eval iqa --list` lists them.")
    return key, configs[key].get("metric_mode", "NR")


# ---------------------------------------------------------------------------------------------
# weights: one folder, offline-first
# ---------------------------------------------------------------------------------------------
def weights_dir(path: str | Path | None = None) -> Path:
    """--iqa-weights DIR, else $GANCLI_PYIQA_WEIGHTS, else pyiqa's own cache ($TORCH_HOME/hub/pyiqa)."""
    given = path or os.environ.get(WEIGHTS_ENV)
    if given:
        folder = Path(given).expanduser()
        if folder.exists() and not folder.is_dir():
            raise MissingWeightsError(f"pyiqa's weights folder '{folder}' is a file, not a folder.")
        return folder
    return Path(torch.hub.get_dir()) / "pyiqa"


def fetch_weights(url: str, folder: Path, download: bool | None = None, file_name: str | None = None) -> Path:
    """The file of a pyiqa weights URL in `folder`: there already, else downloaded where allowed, else an error."""
    name = file_name or os.path.basename(urlparse(url).path)
    path = folder / name
    if path.is_file():
        return path
    where = f"download {url} into {folder}, or pass --iqa-weights DIR (or set {WEIGHTS_ENV}) for a folder that holds it"
    if not downloads_allowed(download):
        raise MissingWeightsError(f"pyiqa's weights file '{name}' is not in {folder} and downloads are off; {where}.")
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name}.{os.getpid()}.download"
    try:
        with network_timeout():
            torch.hub.download_url_to_file(url, str(partial), progress=True)
        os.replace(partial, path)
    except (OSError, ValueError) as exc:  # URLError, timeouts, no route, ...
        raise MissingWeightsError(f"Downloading pyiqa's weights file '{name}' failed ({exc.__class__.__name__}); "
                                  f"{where}.") from None
    finally:
        partial.unlink(missing_ok=True)
    return path


def _load_network(folder: Path, download: bool | None, used: list[Path]):
    """pyiqa's load_pretrained_network, reading the file with weights_only=True from our folder."""

    def load_pretrained_network(net, model_path, strict=True, weight_keys=None):
        if str(model_path).startswith(("https://", "http://")):
            model_path = fetch_weights(str(model_path), folder, download)
        used.append(Path(model_path))
        try:
            state = torch.load(model_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to read means unusable weights
            raise MissingWeightsError(f"pyiqa's weights file '{model_path}' cannot be read as plain weights "
                                      f"({exc.__class__.__name__}).") from None
        if weight_keys is not None:
            state = state[weight_keys]
        net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=strict)

    return load_pretrained_network


@contextlib.contextmanager
def routed_weights(folder: Path, download: bool | None = None, used: list[Path] | None = None) -> Iterator[None]:
    """pyiqa's weight loaders replaced by ours in every pyiqa module that holds them, for the duration; the files
    they hand out are appended to `used`."""
    import pyiqa.archs.arch_util as arch_util
    import pyiqa.utils.download_util as download_util

    originals = {"load_file_from_url": download_util.load_file_from_url,
                 "load_pretrained_network": arch_util.load_pretrained_network}
    used = [] if used is None else used

    def load_file_from_url(url, model_dir=None, progress=True, file_name=None):
        used.append(fetch_weights(url, folder, download, file_name))
        return str(used[-1])

    ours = {"load_file_from_url": load_file_from_url, "load_pretrained_network": _load_network(folder, download, used)}
    _swap(originals, ours)
    try:
        yield
    finally:  # modules imported meanwhile (pyiqa imports a network's module when it builds it) hold ours too
        _swap(ours, originals)


def _swap(old: dict[str, Any], new: dict[str, Any]) -> None:
    """In every loaded pyiqa module, each attribute that is old[name] becomes new[name]."""
    for module in [m for name, m in list(sys.modules.items()) if name.startswith("pyiqa") and m is not None]:
        for attr, value in old.items():
            if getattr(module, attr, None) is value:
                setattr(module, attr, new[attr])


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
def _arch_options(pyiqa_name: str, config: dict[str, Any], y_channel: bool | None) -> tuple[dict[str, Any], str | None]:
    """The options that ask pyiqa's network for (or against) the Y channel, and which luma is used: 'ycbcr'
    (BT.601), 'own' (the network's own conversion, e.g. YIQ) or None (RGB)."""
    import pyiqa.archs
    from pyiqa.utils.registry import ARCH_REGISTRY

    arch = config["metric_opts"]["type"]
    # pyiqa ≥ 0.1.15 imports a network's module when it first builds it; older versions import them all at once
    if arch not in ARCH_REGISTRY and hasattr(pyiqa.archs, "_lazy_import_arch"):
        pyiqa.archs._lazy_import_arch(arch)
    params = inspect.signature(ARCH_REGISTRY.get(arch).__init__).parameters
    if "test_y_channel" not in params:
        if y_channel:
            raise ConfigError(f"pyiqa's '{pyiqa_name}' has no Y-channel option; leave out --y-channel.")
        return {}, None
    default = params["test_y_channel"].default
    used = config["metric_opts"].get("test_y_channel", default) if y_channel is None else y_channel
    options = {"test_y_channel": used}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())  # psnr hands them on
    if not used:
        return options, None
    if "color_space" in params or takes_any:
        options["color_space"] = "ycbcr"
        return options, "ycbcr"
    return options, "own"


class PyiqaMetric:
    """One pyiqa metric on uint8 RGB images (3, H, W): metric(pred) for NR, metric(pred, gt) for FR metrics."""

    def __init__(self, name: str, *, y_channel: bool | None = None, crop_border: int = 0,
                 weights: str | Path | None = None, download: bool | None = None,
                 device: str | torch.device = "cpu", **options: Any):
        pyiqa_name, self.mode = resolve(name)
        if pyiqa_name is None:
            raise ConfigError(f"'{name}' is gancli's own metric, not pyiqa's.")
        if crop_border < 0:
            raise DataError(f"--crop-border must not be negative, got {crop_border}.")
        config = _configs()[pyiqa_name]
        self.name, self.crop_border, self.device = pyiqa_name, crop_border, torch.device(device)
        self.lower_better = bool(config.get("lower_better", False))
        self.folder = weights_dir(weights)
        self.weights_files: list[Path] = []
        self.net, self.luma = _build(pyiqa_name, config, y_channel, self.folder, download, self.device, options,
                                     self.weights_files)
        # hand-made metrics (no parameters) in float64, so that PSNR/SSIM carry no float32 rounding
        self.dtype = torch.float32 if any(True for _ in self.net.parameters()) else torch.float64

    @property
    def y_channel(self) -> bool:
        return self.luma is not None

    def _batch(self, image: torch.Tensor) -> torch.Tensor:
        image = iqa._crop(image, self.crop_border)
        return (image.to(self.dtype) / 255.0)[None].to(self.device)

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, gt: torch.Tensor | None = None) -> float:
        if self.mode == "FR":
            if gt is None:
                raise ConfigError(f"pyiqa's '{self.name}' is a full-reference metric; give --gt DIR.")
            if pred.shape != gt.shape:
                raise DataError(f"Prediction and ground truth differ in size: {tuple(pred.shape)} vs "
                                f"{tuple(gt.shape)}.")
            return float(self.net(self._batch(pred), self._batch(gt)).item())
        return float(self.net(self._batch(pred)).item())

    def protocol(self) -> str:
        import pyiqa

        channels = {None: "RGB", "ycbcr": "the Y channel (BT.601 rgb2ycbcr, as pyiqa computes it)",
                    "own": "the luma of pyiqa's own conversion for this metric"}[self.luma]
        from gancli.metrics.generative.weights import sha256_file

        lower = "lower is better" if self.lower_better else "higher is better"
        weights = "".join(f", weights {p.name} (sha256 {sha256_file(p)[:8]})"
                          for p in dict.fromkeys(self.weights_files))
        return (f"pyiqa {pyiqa.__version__} '{self.name}' ({self.mode}, {lower}) on {channels} (given as RGB in "
                f"[0, 1]), {self.crop_border} px border crop{weights}")


def _build(name: str, config: dict, y_channel: bool | None, folder: Path, download: bool | None,
           device: torch.device, options: dict[str, Any], used: list[Path]) -> tuple[torch.nn.Module, str | None]:
    """(pyiqa.create_metric with our weight loaders, its luma); a failure to get weights is one sentence."""
    import pyiqa

    try:
        with routed_weights(folder, download, used), network_timeout(), contextlib.redirect_stdout(sys.stderr):
            arch_options, luma = _arch_options(name, config, y_channel)  # imports the network's module: routed
            metric = pyiqa.create_metric(name, device=device, **arch_options, **options)
    except GancliError:  # ours: missing weights, a refused option
        raise
    except (OSError, RuntimeError, ValueError, ImportError) as exc:  # timm / Hugging Face / torch hub backbones
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise MissingWeightsError(f"pyiqa could not build '{name}' ({exc.__class__.__name__}: {first}); a backbone "
                                  f"it takes from timm, Hugging Face or torch hub is missing from their caches."
                                  ) from None
    return metric, luma


class PerceptualIndex:
    """PI = ½((10 − Ma) + NIQE) (Blau et al., PIRM 2018): Ma's NRQM (pyiqa) and gancli's NIQE, both on the Y channel
    (rgb2ycbcr) of the image with `crop_border` px removed at each side, as the PIRM scripts shave the scale."""

    def __init__(self, crop_border: int = 0, *, weights: str | Path | None = None, download: bool | None = None):
        self.crop_border = crop_border
        self.nrqm = PyiqaMetric("nrqm", y_channel=True, crop_border=crop_border, weights=weights, download=download)

    def parts(self, image: torch.Tensor, niqe: float | None = None) -> dict[str, float]:
        """{'pi', 'ma', 'niqe'} of one uint8 RGB image (3, H, W); `niqe`: its NIQE (Y, same crop) when known."""
        ma = self.nrqm(image)
        niqe = iqa.niqe(image, self.crop_border, convert="y") if niqe is None else niqe
        return {"pi": 0.5 * ((10.0 - ma) + niqe), "ma": ma, "niqe": niqe}

    def __call__(self, image: torch.Tensor) -> float:
        return self.parts(image)["pi"]

    def protocol(self) -> str:
        import pyiqa

        from gancli.metrics.generative.weights import sha256_file

        weights = self.nrqm.weights_files[0] if self.nrqm.weights_files else None
        sha = f" ({weights.name}, sha256 {sha256_file(weights)[:8]})" if weights else ""
        return (f"PI = ½((10 − Ma) + NIQE): Ma's NRQM of pyiqa {pyiqa.__version__}{sha} and gancli's NIQE (MATLAB "
                f"port), both on the Y channel (rgb2ycbcr), {self.crop_border} px border crop")


def perceptual_index(crop_border: int = 0, weights: str | Path | None = None) -> tuple[PerceptualIndex | None, str]:
    """(a PerceptualIndex, "") when the iqa extra is installed and NRQM's weights are at hand without a download,
    else (None, why not) for the report's notes."""
    if not installed():
        return None, f"PI is not reported: it needs the iqa extra ({EXTRA})."
    try:
        fetch_weights(NRQM_URL, weights_dir(weights), download=False)  # before pyiqa's import, which takes seconds
        return PerceptualIndex(crop_border, weights=weights, download=False), ""
    except MissingWeightsError as exc:
        return None, f"PI is not reported: {exc}"
