"""Fixtures of the `gancli serve` tests: one tiny run of each recipe, and a page server on a free local port."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

LOGS = {"log_every": 1, "sample_every": 1, "ckpt_every": 0, "eval_every": 0, "tensorboard": False, "device": "cpu"}
TINY_RUNS = {  # two steps each, the smallest networks the recipes take
    "uncond": {"resolution": 32, "width": 0.125, "batch_size": 4, "z_dim": 8, "n_samples": 4},
    "biggan": {"ch": 2, "z_dim": 16, "batch_size": 4, "n_samples": 4, "standing_passes": 2},
    "spade": {"image_size": [32, 32], "ngf": 4, "spade_hidden": 4, "ndf": 4, "z_dim": 4, "batch_size": 2,
              "n_samples": 2, "perceptual": "none", "use_vae": True},
    "stargan": {"resolution": 32, "g_width": 8, "g_blocks": 1, "d_width": 8, "d_layers": 3, "batch_size": 4,
                "n_samples": 2},
    "sr": {"pretrain_steps": 1, "hr_size": 32, "batch_size": 2, "n_blocks": 1, "eval_images": 1, "workers": 0,
           "n_samples": 2, "perceptual": "none"},
}


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory) -> Path:
    """A folder with a two-step run of every recipe, named by recipe."""
    from gancli import api

    root = tmp_path_factory.mktemp("serve") / "runs"
    for recipe, sets in TINY_RUNS.items():
        api.train(api.make_config(recipe, out=str(root / recipe), steps=2, sets={**LOGS, **sets}))
    return root


@pytest.fixture
def listing():
    """listing(folder): every file under it with its size and modification time (to see that nothing was written)."""
    def files(folder: Path) -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in sorted(folder.rglob("*")) if p.is_file()}

    return files


class Serving:
    """A PageServer running in a thread; stop() ends it."""

    def __init__(self, runs: list[Path], runs_dir: Path | None, **options):
        from gancli.serve import PageServer

        self.server = PageServer(runs, runs_dir, host="127.0.0.1", port=0, device="cpu", **options)
        self.url = self.server.url
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the page server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(10)


@pytest.fixture(scope="module")
def serving():
    """Start page servers (Serving(...) arguments); all are stopped at the end of the module."""
    started: list[Serving] = []

    def start(runs: list[Path], runs_dir: Path | None = None, **options) -> Serving:
        started.append(Serving(runs, runs_dir, **options))
        return started[-1]

    yield start
    for server in started:
        server.stop()
