"""A small segmentation network of the builtin scenes: the `builtin` judge of label-to-image synthesis.

SPADE is judged by segmenting its images and comparing with the input maps (mIoU, pixel accuracy).
Real datasets use a real segmentation network (`--seg-weights`); the builtin scenes use this one,
trained once on first use (deterministically, about three CPU-minutes) and cached under
$GANCLI_CACHE/builtin_segmenter/. Its scores are labelled `builtin-seg-v1` with the weights' hash and
are not comparable with numbers from other segmenters.

    python -m gancli.metrics.judges.builtin_segmenter   # train (or find) it and print its accuracy on real scenes
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancli.paths import cache_root

NAME = "builtin-seg-v1"
INPUT = 64  # images are resized (antialiased bilinear) to 64×64 and the logits back to the map's size
TRAINING = {"steps": 500, "batch": 16, "lr": 3e-3, "scenes": 1600, "seed": 0}


def _conv(c_in: int, c_out: int, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class SceneSegmenter(nn.Module):
    """A three-level U-Net: 16, 32, 64 channels (the last with a dilated conv), skip connections, 1×1 to classes."""

    def __init__(self, num_labels: int, width: int = 16):
        super().__init__()
        c = width
        self.enc1 = nn.Sequential(*_conv(3, c), *_conv(c, c))
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), *_conv(c, 2 * c), *_conv(2 * c, 2 * c))
        self.enc3 = nn.Sequential(nn.MaxPool2d(2), *_conv(2 * c, 4 * c), *_conv(4 * c, 4 * c, dilation=2))
        self.dec2 = nn.Sequential(*_conv(6 * c, 2 * c))
        self.dec1 = nn.Sequential(*_conv(3 * c, c))
        self.head = nn.Conv2d(c, num_labels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2, mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2, mode="nearest"), e1], 1))
        return self.head(d1)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) → float in [-1, 1] at 64×64."""
    x = images.float() / 127.5 - 1
    if x.shape[-2:] != (INPUT, INPUT):
        x = F.interpolate(x, size=(INPUT, INPUT), mode="bilinear", align_corners=False, antialias=True)
    return x


class BuiltinSegmenter(nn.Module):
    """uint8 images (N, 3, H, W) → label logits (N, L, H, W), through SceneSegmenter at 64×64."""

    def __init__(self, model: SceneSegmenter, weights_hash: str, path: str):
        super().__init__()
        self.model, self.weights_hash, self.path = model.eval(), weights_hash, path
        self.label = f"{NAME} (builtin scenes, sha256 {weights_hash[:8]})"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(preprocess(images))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def _key() -> str:
    return hashlib.sha256(f"{NAME} {sorted(TRAINING.items())}".encode()).hexdigest()[:12]


def weights_path() -> Path:
    return cache_root() / "builtin_segmenter" / f"{NAME}-{_key()}.safetensors"


def _scenes(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training scenes at 64×64, rendered square and at 1:2 (as Cityscapes-shaped maps are), at 64 and 32 px."""
    from gancli.data.scenes import render_scene

    images, labels = [], []
    for i in range(count):
        size = ((64, 64), (64, 128), (32, 32), (32, 64))[i % 4]
        photo, label, _ = render_scene(seed * 7_919_000 + 31 * i + 17, *size)  # none of these are train/val items
        images.append(preprocess(photo[None])[0])
        labels.append(F.interpolate(label[None, None].float(), size=(INPUT, INPUT), mode="nearest")[0, 0].long())
    return torch.stack(images), torch.stack(labels)


def train(log=print, **overrides) -> tuple[SceneSegmenter, dict[str, float]]:
    """Train the builtin segmenter deterministically; returns it and its pixel accuracy on held-out scenes."""
    from gancli.data.scenes import BuiltinScenes

    spec = {**TRAINING, **overrides}
    start = time.time()
    with torch.random.fork_rng():
        torch.manual_seed(spec["seed"])
        images, labels = _scenes(spec["scenes"], spec["seed"])
        log(f"rendered {len(images)} scenes in {time.time() - start:.0f}s")
        model = SceneSegmenter(BuiltinScenes.num_labels)
        opt = torch.optim.Adam(model.parameters(), lr=spec["lr"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec["lr"], total_steps=spec["steps"])
        gen = torch.Generator().manual_seed(spec["seed"])
        model.train()
        for step in range(spec["steps"]):
            idx = torch.randint(len(images), (spec["batch"],), generator=gen)
            x, y = images[idx], labels[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            y = torch.where(flip.view(-1, 1, 1), y.flip(2), y)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if (step + 1) % 100 == 0:
                log(f"step {step + 1}/{spec['steps']} loss {loss.item():.4f}")
    model.eval()
    report = {"train_seconds": time.time() - start}
    return model, report


def _claim(path: Path, stale_seconds: float = 3600.0) -> bool:
    """True when this process should train the segmenter; False once another process's training has finished.

    A lock file marks a training in progress (two runs started together train it once); one older than an hour
    is taken to be left over from a killed process.
    """
    lock = path.with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            pass
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            age = 0.0
        if path.is_file():
            return False
        if age > stale_seconds:
            lock.unlink(missing_ok=True)
        time.sleep(2)


def load_builtin_segmenter(log=None) -> BuiltinSegmenter:
    """The cached builtin segmenter, trained first when the cache has none."""
    from safetensors.torch import load_file, save_file

    from gancli.data.scenes import BuiltinScenes
    from gancli.metrics.generative.weights import sha256_file

    path = weights_path()
    if not path.is_file() and _claim(path):
        try:
            model, report = train(log=log or (lambda _: None))
            partial = path.with_suffix(f".{os.getpid()}.partial")
            state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
            save_file(state, str(partial), metadata={k: f"{v:.4f}" for k, v in report.items()})
            partial.replace(path)  # atomic: a concurrent reader sees the whole file or none
        finally:
            path.with_suffix(".lock").unlink(missing_ok=True)
    model = SceneSegmenter(BuiltinScenes.num_labels)
    try:
        model.load_state_dict(load_file(str(path)), strict=False)
    except (OSError, RuntimeError):  # a damaged cache entry is retrained
        path.unlink(missing_ok=True)
        return load_builtin_segmenter(log)
    return BuiltinSegmenter(model, sha256_file(path), str(path))


def main() -> None:
    from gancli.data.scenes import BuiltinScenes
    from gancli.metrics.judges.miou import SegmentationScore

    segmenter = load_builtin_segmenter(log=print)
    data = BuiltinScenes("val", (64, 64))
    score = SegmentationScore(data.num_labels)
    with torch.no_grad():
        for start in range(0, len(data), 50):
            items = [data[i] for i in range(start, min(start + 50, len(data)))]
            images = torch.stack([image for image, _, _ in items])
            score.add(segmenter(images).argmax(1), torch.stack([label for _, label, _ in items]))
    print(f"{segmenter.label}: {score.result()} on the 500 real val scenes at 64×64 ({segmenter.path})")


if __name__ == "__main__":
    main()
