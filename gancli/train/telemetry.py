"""Training telemetry of BigGAN §4: the top three singular values of every weight layer of G and D; collapse detection.

Every `telemetry_every` steps σ₀ of each layer's raw weight (before any normalization, reshaped to out × rest as
spectral norm does; BigGAN Fig. 3) is read: from the layer's own spectral-norm vectors where it has spectral norm (σ₀
= uᵀWv after SN's last power iteration, no extra work), else by one power iteration from the vector kept since the
last reading (15 at the first). σ₁ and σ₂ come from a subspace iteration on three vectors kept the same way (BigGAN §4
tracks the top three, "the most informative"). Readings go to RUN/telemetry.jsonl (`sigma/`, `sigma1/`, `sigma2/` per
layer) and σ₀ is plotted in RUN/spectra.png. BigGAN saw collapse as σ₀ of some G layers exploding and D's loss jumping
up (§4.1-4.2, App. F); a reading above `collapse_factor` times the median of its series' recent readings counts as
such a jump. Telemetry only judges: on its verdict the trainer stops, naming the last checkpoint saved before it, or
(`on_collapse = "rollback"`) reloads that checkpoint and continues at half the learning rates.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import _SpectralNorm

from gancli.config import TrainConfig
from gancli.errors import GancliError
from gancli.figures import pyplot, save_figure
from gancli.train import checkpoint as ckpt
from gancli.train import distributed
from gancli.train.critic_probe import CriticProbe, plot_probe

WEIGHT_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)
WINDOW = 10  # readings in the median a new reading is compared with; detection starts after this many
LOSS_FLOOR = 0.1  # a D loss near 0 (BigGAN §4.2) is compared with at least this, so noise around 0 is no jump
D_LOSS = "D/loss"
TRACKED = 3  # singular values per layer (BigGAN §4)
LOWER = tuple(f"sigma{i}/" for i in range(1, TRACKED))  # recorded, not judged: collapse is read from σ₀ and D loss


class TrainingCollapsed(GancliError):
    """σ₀ or the critic's loss jumped: training stopped at the last good checkpoint."""


def raw_weight(layer: nn.Module) -> Tensor:
    """The weight a layer learns: the parametrization's original where a normalization wraps it."""
    parametrizations = getattr(layer, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        return getattr(parametrizations.weight, "original", layer.weight)
    return layer.weight


@torch.no_grad()
def top_singular_value(layer: nn.Module, vectors: dict[int, Tensor]) -> Tensor:
    """σ₀ of the layer's raw weight: from its spectral norm's u, v if it has one, else one power iteration.

    `vectors` keeps the left singular vector estimate of layers without spectral norm between calls.
    """
    weight = raw_weight(layer)
    parametrizations = getattr(layer, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        norm = parametrizations.weight[0]
        if isinstance(norm, _SpectralNorm):
            matrix = norm._reshape_weight_to_matrix(weight)
            return torch.vdot(norm._u, matrix.mv(norm._v))
    matrix = (weight.transpose(0, 1) if isinstance(layer, nn.ConvTranspose2d) else weight).flatten(1).float()
    u = vectors.get(id(layer))
    rounds = 1
    if u is None:  # a first reading starts from a fixed random vector and converges before it counts
        u = torch.randn(matrix.shape[0], generator=torch.Generator().manual_seed(matrix.shape[0])).to(matrix.device)
        rounds = 15
    for _ in range(rounds):
        v = nn.functional.normalize(matrix.T.mv(u), dim=0)
        u = nn.functional.normalize(matrix.mv(v), dim=0)
    vectors[id(layer)] = u
    return torch.vdot(u, matrix.mv(v))


@torch.no_grad()
def lower_singular_values(layer: nn.Module, bases: dict[int, Tensor], k: int = TRACKED) -> Tensor:
    """σ₁ … σ_{k-1} of the layer's raw weight by one round of subspace iteration (15 at the first call) on k right
    singular vectors kept in `bases` between calls; zeros where the weight has fewer than k singular values."""
    weight = raw_weight(layer)
    matrix = (weight.transpose(0, 1) if isinstance(layer, nn.ConvTranspose2d) else weight).flatten(1).float()
    rank = min(k, *matrix.shape)
    basis = bases.get(id(layer))
    rounds = 1
    if basis is None:
        basis = torch.randn(matrix.shape[1], rank, generator=torch.Generator().manual_seed(matrix.shape[1]))
        basis, rounds = basis.to(matrix.device), 15
    for _ in range(rounds):
        left = torch.linalg.qr(matrix @ basis).Q
        basis = torch.linalg.qr(matrix.T @ left).Q
    bases[id(layer)] = basis
    values = torch.linalg.svdvals(left.T @ matrix @ basis)
    return torch.cat([values[1:], values.new_zeros(k - rank)])


def weight_layers(models: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """'G.blocks.0.conv1' → layer, for every weight layer of every network, in depth order."""
    return {f"{name}.{path}": layer for name, model in models.items()
            for path, layer in model.named_modules() if isinstance(layer, WEIGHT_LAYERS)}


def find_jumps(reading: dict[str, float], history: dict[str, list[tuple[int, float]]], factor: float,
               window: int = WINDOW) -> list[tuple[str, float, float]]:
    """(series, recent median, value) of each series whose value exceeds factor × its median of the last readings."""
    jumps = []
    for series, value in reading.items():
        past = [v for _, v in history.get(series, [])[-window:]]
        if len(past) < window:
            continue
        base = statistics.median(past)
        floor = LOSS_FLOOR if series == D_LOSS else 0.0
        if not math.isfinite(value) or value > factor * max(base, floor):
            jumps.append((series, base, value))
    return jumps


@dataclass
class Collapse:
    """Telemetry's verdict on a reading with a jump: what jumped, and the last good checkpoint before it."""

    step: int
    what: str  # e.g. "G.dense from 1 to 10"
    good: Path | None  # the newest step checkpoint saved no later than the last reading without a jump


class Telemetry:
    """Reads σ₀ every `telemetry_every` steps and judges each reading; the trainer acts on the verdict."""

    def __init__(self, models: dict[str, nn.Module], run_dir: Path, cfg: TrainConfig, world: distributed.World,
                 device: torch.device, step: int = 0):
        self.cfg, self.world, self.device = cfg, world, device
        self.every = cfg.telemetry_every
        self.layers = weight_layers(models)
        self.vectors: dict[int, Tensor] = {}
        self.bases: dict[int, Tensor] = {}
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.loss_sum, self.loss_count = 0.0, 0
        self.last_good_step = step
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "telemetry.jsonl"
        # SAN's constants, the exact conv norms, ‖∇ₓD‖ and channel sparsity of the critic (not judged for collapse)
        self.probe = CriticProbe(models["D"]) if self.every and "D" in models else None

    def observe(self, step: int, logs: dict[str, torch.Tensor | float]) -> Collapse | None:
        """Called after every iteration with its losses; a Collapse when a reading jumped (unless on_collapse is
        'warn'), else None."""
        if not self.every:
            return None
        if D_LOSS in logs:
            self.loss_sum, self.loss_count = self.loss_sum + logs[D_LOSS], self.loss_count + 1
        if self.probe is not None and (step + 1) % self.every == 0:
            self.probe.arm()  # keeps the next critic step's real and fake inputs
        if step % self.every:
            return None
        reading = self.read()
        judged = {k: v for k, v in reading.items() if not k.startswith(LOWER)}
        jumps = find_jumps(judged, self.history, self.cfg.collapse_factor)
        probe = self.probe.read() if self.probe is not None else {}
        self._write({"step": step, **reading, **probe, **({"collapse": [j[0] for j in jumps]} if jumps else {})})
        if jumps and self.cfg.on_collapse != "warn":
            what = ", ".join(f"{series.removeprefix('sigma/')} from {base:.3g} to {value:.3g}"
                             for series, base, value in jumps[:3])
            what += f" and {len(jumps) - 3} more" if len(jumps) > 3 else ""
            return Collapse(step, what, self.good_checkpoint())
        for series, value in judged.items():
            self.history.setdefault(series, []).append((step, value))
        self.last_good_step = step
        return None

    def read(self) -> dict[str, float]:
        """σ₀, σ₁, σ₂ of every layer (one transfer from the device) and the mean D loss since the last reading."""
        values = torch.stack([torch.cat([top_singular_value(layer, self.vectors).float().view(1),
                                         lower_singular_values(layer, self.bases)])
                              for layer in self.layers.values()]).cpu().tolist() if self.layers else []
        reading = {}
        for name, sigmas in zip(self.layers, values):
            reading.update({f"sigma{i or ''}/{name}": sigma for i, sigma in enumerate(sigmas)})
        if self.loss_count:
            loss = float(self.loss_sum / self.loss_count)  # the losses stay on the device until read here
            loss = distributed.average_values({D_LOSS: loss}, self.world, self.device)[D_LOSS]
            reading[D_LOSS] = float(loss)
        self.loss_sum, self.loss_count = 0.0, 0
        return reading

    def good_checkpoint(self) -> Path | None:
        """The newest step checkpoint saved no later than the last reading without a jump."""
        good = [p for p in ckpt.step_dirs(self.run_dir) if int(p.name.split("_")[1]) <= self.last_good_step]
        return good[-1] if good else None

    def rolled_back(self, step: int) -> None:
        """The trainer went back to `step`: later readings no longer count."""
        self.history = {k: [(s, v) for s, v in h if s <= step] for k, h in self.history.items()}
        self.last_good_step = step

    def _write(self, record: dict[str, Any]) -> None:
        if self.world.main:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def finish(self) -> Path | None:
        """Plot the readings so far (called at the end of training and on collapse)."""
        if not self.every or not self.world.main or not self.path.is_file():
            return None
        plot_probe(self.path, self.run_dir / "metrics.jsonl", self.run_dir / "critic_probe.png")
        return plot_spectra(self.path, self.run_dir / "spectra.png")


def plot_spectra(telemetry_file: Path, out: Path) -> Path | None:
    """σ₀ of every layer of G and of D against the step (colour from red to violet with depth, as BigGAN Fig. 3),
    and D's loss; collapses are marked."""
    plt = pyplot()

    records = [json.loads(line) for line in telemetry_file.read_text().splitlines() if line.strip()]
    if not records:
        return None
    steps = [r["step"] for r in records]
    panels = [(f"σ₀ of {net}'s layers", [k for k in records[-1] if k.startswith(f"sigma/{net}.")]) for net in "GD"]
    panels = [(title, keys) for title, keys in panels if keys]
    if any(D_LOSS in r for r in records):
        panels.append(("D loss (mean over each interval)", [D_LOSS]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        colours = plt.cm.rainbow_r([i / max(len(keys) - 1, 1) for i in range(len(keys))])
        for key, colour in zip(keys, colours):
            points = [(r["step"], r[key]) for r in records if key in r]
            ax.plot(*zip(*points), color=colour, linewidth=1)
        for record in records:
            if record.get("collapse"):
                ax.axvline(record["step"], color="black", linestyle="--", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_xlim(min(steps), max(max(steps), min(steps) + 1))
        if keys != [D_LOSS]:
            ax.set_yscale("log")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return save_figure(fig, out, dpi=110)
