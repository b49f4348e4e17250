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
