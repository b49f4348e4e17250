"""What SAN's argument rests on, read from a critic during training (SAN §2-3, Fig. 5), for the telemetry.

For every conv of the critic, at the input size it sees: SAN's constant ||W||_{0,∞} (eq. 6, by Lemma 1 on the grid
where the conv is a cropped circular one) and the true operator norm of the conv (Sedghi et al. 2018), of the
weight the conv applies (after any normalization), and the products of each over the critic's weight layers (a
dense layer counts its spectral norm in both, as SAN §3.1 normalizes it). Against those bounds, the empirical
Lipschitz constant: the mean ‖∇ₓD(x)‖ over the real and the fake images of one critic step. And the channel
sparsity SAN assumes (Fig. 5): the fraction of (image, channel) pairs that are entirely on the zero or negative
side after each activation (or, where the critic applies its activations as functions, at each conv's input).

The real and fake inputs are the critic's first two calls of the iteration after `arm()`: its d_step scoring the
real images, then the fake ones (every recipe's d_step calls the critic in that order).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gancli.nn.norms import _dilated, exact_conv_sigma, sigma_grid, sparsity_aware_sigma

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)
PREFIXES = ("san/", "exact/", "prod/", "lip/", "off/")
LABELS = {"prod/san": "∏ SAN constants", "prod/exact": "∏ exact norms", "lip/real": "‖∇ₓD‖ real",
          "lip/fake": "‖∇ₓD‖ fake"}


def channel_off_fraction(features: Tensor) -> float:
    """The fraction of (sample, channel) pairs of an N×C×H×W tensor with no positive entry (zero or negative side)."""
    return float((features.flatten(2).amax(dim=2) <= 0).float().mean())


@torch.no_grad()
def layer_constants(layer: nn.Module, input_size: tuple[int, int] | None) -> tuple[float, float]:
    """(SAN's ||W||_{0,∞}, the exact operator norm) of the weight a conv applies at this input size; a dense
    layer's spectral norm twice."""
    weight = layer.weight.detach().float()
    if isinstance(layer, nn.Linear):
        sigma = float(torch.linalg.matrix_norm(weight, 2))
        return sigma, sigma
    grid = sigma_grid(layer, input_size)
    weight = _dilated(weight, layer.dilation)
    san = float(sparsity_aware_sigma(weight, grid))
    exact = max(float(exact_conv_sigma(w, grid)) for w in weight.chunk(layer.groups))
    return san, exact


def _first_tensor(output: Any) -> Tensor | None:
    """The critic's score: its output, or the first tensor of a tuple output (e.g. StarGAN's source logits)."""
    if torch.is_tensor(output):
        return output
    if isinstance(output, (tuple, list)) and output:
        return _first_tensor(output[0])
    return None


class CriticProbe:
    """Keeps the critic's real and fake inputs of an armed iteration and reads the quantities above from them."""

    def __init__(self, critic: nn.Module):
        self.critic, self.calls, self.armed = critic, [], False
        critic.register_forward_pre_hook(self._record, with_kwargs=True)
        self.layers = {name: m for name, m in critic.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}

    def arm(self) -> None:
        """Keep the critic's next two inputs (the real and the fake images of the next critic step)."""
        self.armed, self.calls = True, []

    def _record(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self.armed and args and torch.is_tensor(args[0]):
            self.calls.append(([a.detach() if torch.is_tensor(a) else a for a in args], kwargs))
            self.armed = len(self.calls) < 2

    def read(self) -> dict[str, float]:
        """The readings of the kept inputs (nothing when no critic step was seen since arm())."""
        calls, self.calls, self.armed = self.calls, [], False
        if len(calls) < 2:
            return {}
        was_training = self.critic.training
        self.critic.eval()  # no power-iteration step, σ refresh or batch-statistics update from the probe
        reading = {}
        try:
            with torch.random.fork_rng(devices=[]):
                (sizes, off_real, lip_real), (_, off_fake, lip_fake) = (self._forward(*c) for c in calls)
            for name, layer in self.layers.items():
                if name in sizes or isinstance(layer, nn.Linear):
                    reading[f"san/{name}"], reading[f"exact/{name}"] = layer_constants(layer, sizes.get(name))
        finally:
            self.critic.train(was_training)
        for kind in ("san", "exact"):
            reading[f"prod/{kind}"] = float(torch.tensor([v for k, v in reading.items()
                                                           if k.startswith(f"{kind}/")]).prod())
        reading.update({f"off/{site}": (off_real[site] + off_fake[site]) / 2 for site in off_real})
        if off_real:
            reading["off/mean"] = sum(reading[f"off/{s}"] for s in off_real) / len(off_real)
        if lip_real is not None:
            reading["lip/real"], reading["lip/fake"] = lip_real, lip_fake
        return reading

    def _forward(self, args: list, kwargs: dict) -> tuple[dict[str, tuple[int, int]], dict[str, float], float | None]:
        """One forward of the critic: each conv's input size, each activation site's off fraction, mean ‖∇ₓD‖."""
        sizes, off, seen = {}, {}, set()
        x = args[0].clone().requires_grad_(True)

        def conv_input(name: str):
            def hook(module, inputs):
                sizes[name] = tuple(inputs[0].shape[-2:])
                if inputs[0] is not x and id(inputs[0]) not in seen:  # an activation applied as a function
                    off[f"in:{name}"] = channel_off_fraction(inputs[0].detach())
            return hook

        def activation_output(name: str):
            def hook(module, inputs, output):
                if output.dim() == 4:
                    seen.add(id(output))
                    off[name] = channel_off_fraction(output.detach())
            return hook

        handles = [m.register_forward_pre_hook(conv_input(n)) for n, m in self.layers.items()
                   if isinstance(m, nn.Conv2d)]
        handles += [m.register_forward_hook(activation_output(n)) for n, m in self.critic.named_modules()
                    if isinstance(m, ACTIVATIONS)]
        try:
            with torch.enable_grad():
                score = _first_tensor(self.critic(x, *args[1:], **kwargs))
                lip = None
                if score is not None:
                    (grad,) = torch.autograd.grad(score.float().sum(), x)
                    lip = float(grad.flatten(1).norm(dim=1).mean())
        finally:
            for handle in handles:
                handle.remove()
        return sizes, off, lip


def plot_probe(telemetry_file: Path, metrics_file: Path, out: Path) -> Path | None:
    """The probe's readings beside the losses: per-layer constants, their products and the gradient norms,
    channel sparsity, and the D and G losses of metrics.jsonl."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in _jsonl(telemetry_file) if any(k.startswith(PREFIXES) for k in r)]
    if not records:
        return None
    losses = [r for r in _jsonl(metrics_file) if "D/loss" in r or "G/loss" in r]
    keys = list(dict.fromkeys(k for r in records for k in r))
    panels = [("SAN constant ||W||₀,∞ per layer", [k for k in keys if k.startswith("san/")], False),
              ("exact operator norm per layer", [k for k in keys if k.startswith("exact/")], True),
              ("products over the critic, and mean ‖∇ₓD‖", [k for k in keys if k.startswith(("prod/", "lip/"))], True),
              ("fraction of channels off (zero / negative side)", [k for k in keys if k.startswith("off/")], False)]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.4 * (len(panels) + 1), 3.6), squeeze=False)
    for ax, (title, series, log) in zip(axes[0], panels):
        colours = plt.cm.rainbow_r([i / max(len(series) - 1, 1) for i in range(len(series))])
        for key, colour in zip(series, colours):
            points = [(r["step"], r[key]) for r in records if key in r]
            ax.plot(*zip(*points), color=colour, linewidth=1, label=LABELS.get(key, key.split("/", 1)[1]))
        _style(ax, title, log, len(series) <= 8)
    ax = axes[0][-1]
    for key in ("D/loss", "G/loss"):
        points = [(r["step"], r[key]) for r in losses if key in r]
        if points:
            ax.plot(*zip(*points), linewidth=1, label=key)
    _style(ax, "losses", False, True)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def _style(ax, title: str, log: bool, legend: bool) -> None:
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    if log:
        ax.set_yscale("log")
    else:
        ax.ticklabel_format(axis="y", useOffset=False)  # SAN's constants sit at 1 ± 1e-6: no offset notation
    if legend and ax.lines:
        ax.legend(fontsize=6)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
