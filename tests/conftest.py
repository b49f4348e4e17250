"""Shared fixtures: tiny configs so training tests finish in seconds on 2 CPU cores."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("COLUMNS", "160")
os.environ["GANCLI_NO_DOWNLOAD"] = "1"  # no test reaches for the network; the download tests say so explicitly
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_UNCOND = ["--resolution", "32", "--width", "0.125", "--batch-size", "4", "--z-dim", "8",
               "--log-every", "1", "--sample-every", "0", "--eval-every", "0", "--n-samples", "4", "--device", "cpu"]


@pytest.fixture
def tiny_uncond():
    return list(TINY_UNCOND)


@pytest.fixture
def cli():
    """Invoke the gancli CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from gancli.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture
def write_nrqm_model():
    """A writer of stand-in NRQM_model.mat files (pyiqa's NRQM weights cannot be downloaded here)."""
    return _write_nrqm_model


def _write_nrqm_model(path: Path, constant: float) -> None:
    """An NRQM_model.mat in the layout pyiqa reads (Ma et al.'s MATLAB model): three forests of one one-leaf tree, and
    linear weights [constant, 0, 0, 0], so that NRQM is `constant` whatever the features."""
    import numpy as np
    import scipy.io

    forests = np.empty((1, 3), dtype=object)
    for i in range(3):  # fields by position: ldau, rdau, -, -, threshold, prediction, attribute
        forests[0, i] = {"ldau": np.array([[0]]), "rdau": np.array([[0]]), "a": np.array([[0]]), "b": np.array([[0]]),
                         "threshold": np.array([[0.0]]), "pred": np.array([[1.0 + i]]), "attr": np.array([[1]])}
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"model": {"linear": np.array([[constant], [0.0], [0.0], [0.0]]), "rf": forests}})
