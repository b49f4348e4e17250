"""The attribute judge: a small CNN that scores translated images, trained on real training images, never the critic.

A translation model's own critic learned its class head together with the generator, so it is fooled
by the same artefacts; the judge is trained separately on the real training split (builtin data: once,
deterministically, and cached under a key of what produced it), and reports its own accuracy on real
held-out images next to every score. Its 128-d pooled features also give the per-domain Fréchet distance
where no Inception weights are used (labelled with the judge's name).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancli.objectives.attributes import attribute_classification_loss, decide_attributes
from gancli.paths import cache_root

JUDGE_VERSION = "attr-judge-v1"


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class AttributeJudge(nn.Module):
    """3×3 conv-BN-ReLU blocks (32, 32, 64, 64, 128; a 2× max-pool after each pair and, at 64 px, once more),
    global average pool (the 128-d features), linear → one logit per attribute."""

    def __init__(self, n_attrs: int, resolution: int = 32, width: int = 32):
        super().__init__()
        self.resolution = resolution
        c = width
        pools = [nn.MaxPool2d(2)] if resolution >= 64 else []
        self.body = nn.Sequential(*_block(3, c), *_block(c, c), nn.MaxPool2d(2), *_block(c, 2 * c),
                                  *_block(2 * c, 2 * c), nn.MaxPool2d(2), *pools, *_block(2 * c, 4 * c))
        self.head = nn.Linear(4 * c, n_attrs)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) → [-1, 1] at the judge's resolution (antialiased bilinear)."""
        x = images.float() / 127.5 - 1
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False,
                              antialias=True)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@dataclass
class Judge:
    """A trained judge with its groups and the label printed next to its scores."""

    model: AttributeJudge
    names: list[str]
    groups: list[list[int]]
    label: str
    accuracy: float  # mean per-attribute accuracy on real held-out images

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images → ({0, 1} decisions (N, A), 128-d features (N, 128)), on the CPU."""
        device = next(self.model.parameters()).device
        decisions, features = [], []
        for part in images.split(batch):
            pooled = self.model.embed(self.model.preprocess(part.to(device)))
            decisions.append(decide_attributes(self.model.head(pooled), self.groups).cpu())
            features.append(pooled.cpu())
        return torch.cat(decisions), torch.cat(features)

    def to(self, device: str | torch.device) -> Judge:
        self.model.to(device)
        return self


def attribute_accuracy(decisions: torch.Tensor, labels: torch.Tensor, groups: list[list[int]]) -> torch.Tensor:
    """Per attribute: the fraction of rows decided right (a group member counts as right when the group is)."""
    right = (decisions == labels).float()
    for group in groups:
        whole = right[:, group].all(dim=1, keepdim=True).float()
        right[:, group] = whole.expand(-1, len(group))
    return right.mean(dim=0)


def train_judge(images: torch.Tensor, labels: torch.Tensor, groups: list[list[int]], resolution: int,
                width: int = 32, steps: int = 600, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                device: str | torch.device = "cpu", log: Callable[[str], object] | None = None) -> AttributeJudge:
    """Adam with one-cycle lr on uint8 images and {0, 1} labels, random flips; deterministic for a seed
    (and thread count). The global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AttributeJudge(labels.shape[1], resolution, width).to(device)
        x, labels = model.preprocess(images.to(device)), labels.to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        gen = torch.Generator().manual_seed(seed)
        model.train()
        for step in range(steps):
            idx = torch.randint(len(x), (batch_size,), generator=gen).to(device)
            batch = x[idx]
            flip = (torch.rand(batch_size, generator=gen) < 0.5).to(device)
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(3), batch)
            loss = attribute_classification_loss(model(batch), labels[idx], groups)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if log and (step + 1) % 100 == 0:
                log(f"judge step {step + 1}/{steps} loss {loss.item():.4f}")
    return model.cpu().eval().requires_grad_(False)


def judge_cache_path(description: dict) -> Path:
    text = json.dumps({**description, "version": JUDGE_VERSION, "torch": torch.__version__.split("+")[0]},
                      sort_keys=True, default=str)
    return cache_root() / "judges" / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.safetensors"


def load_or_train_judge(description: dict, names: list[str], groups: list[list[int]], resolution: int, width: int,
                        train_data: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                        test_data: Callable[[], tuple[torch.Tensor, torch.Tensor]], what: str,
                        steps: int = 600, seed: int = 0, device: str | torch.device = "cpu",
                        log: Callable[[str], object] | None = None) -> Judge:
    """The judge cached under the description, else trained on train_data() (uint8 images, {0, 1} labels), scored
    on test_data() and cached; `what` names the training data in the label."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file, save_file

    path = judge_cache_path({**description, "names": names, "groups": groups, "resolution": resolution,
                             "width": width, "steps": steps, "seed": seed})
    model = AttributeJudge(len(names), resolution, width)
    if path.is_file():
        try:
            model.load_state_dict(load_file(str(path)))
            with safe_open(str(path), "pt") as handle:
                accuracy = float(handle.metadata()["accuracy"])
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            return Judge(model.eval().requires_grad_(False), names, groups, _label(what, digest, accuracy), accuracy)
        except (SafetensorError, OSError, RuntimeError, KeyError, ValueError):
            pass  # a damaged entry is retrained, never trusted
    start = time.time()
    images, labels = train_data()
    model = train_judge(images, labels, groups, resolution, width, steps=steps, seed=seed, device=device, log=log)
    test_images, test_labels = test_data()
    judge = Judge(model, names, groups, "", 0.0)
    accuracy = float(attribute_accuracy(judge(test_images)[0], test_labels, groups).mean())
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(path), metadata={"accuracy": f"{accuracy:.6f}", "trained_on": what})
    if log:
        log(f"judge trained on {what} in {time.time() - start:.0f}s, held-out accuracy {accuracy:.4f}: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    judge.label, judge.accuracy = _label(what, digest, accuracy), accuracy
    return judge


def _label(what: str, digest: str, accuracy: float) -> str:
    return f"{JUDGE_VERSION} trained on {what} (sha256 {digest[:8]}, real held-out accuracy {accuracy:.3f})"


def builtin_judge(names: list[str], groups: list[list[int]], n_train: int = 4000, steps: int = 600,
                  device: str | torch.device = "cpu", log: Callable[[str], object] | None = None) -> Judge:
    """The judge of the builtin attribute images (32 px, width 16: ~2 CPU-minutes), trained once on their train split and cached."""
    from gancli.data.attributes import BuiltinAttributeImages

    def split(name: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        data = BuiltinAttributeImages(name, 32, attrs=names)
        count = min(count, len(data))
        return torch.stack([data.image(i) for i in range(count)]), data.labels()[:count]

    fingerprint = hashlib.sha256(split("test", 2)[0].numpy().tobytes()).hexdigest()[:16]
    return load_or_train_judge({"data": "builtin-attributes", "fingerprint": fingerprint, "n_train": n_train},
                               names, groups, 32, 16, lambda: split("train", n_train), lambda: split("test", 1000),
                               f"builtin attribute images ({n_train} train)", steps=steps, device=device,
                               log=log)
