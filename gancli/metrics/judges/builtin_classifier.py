"""A small CNN classifier of the builtin procedural images: the `builtin` feature network.

Where the TF-Inception weights cannot be had, FID/KID/IS/PR on the builtin data are computed on this
network's features instead (128-d global-average-pooled features, 10 class logits). Such scores are
labelled `builtin-cnn` everywhere and are not comparable with Inception-based numbers.

Retrain the shipped weights (reproducible with the same seed, torch version and thread count):

    python -m gancli.metrics.judges.builtin_classifier [--epochs 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancli.errors import MissingWeightsError
from gancli.metrics.generative.feature_net import FeatureNet
from gancli.metrics.generative.weights import sha256_file

RESOLUTION = 32
WEIGHTS_FILE = Path(__file__).parent / "weights" / "builtin_classifier.safetensors"
NAME = "builtin-cnn-v1"


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) → float in [-1, 1] at 32×32 (antialiased bilinear when the size differs)."""
    x = images.float() / 127.5 - 1
    if x.shape[-2:] != (RESOLUTION, RESOLUTION):
        x = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False, antialias=True)
    return x


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class BuiltinClassifier(nn.Module):
    """Five 3×3 conv-BN-ReLU layers (32, 32, 64, 64, 128 channels, two 2× max-pools), global pool, linear."""

    def __init__(self, num_classes: int = 10, width: int = 32):
        super().__init__()
        c = width
        self.body = nn.Sequential(*_block(3, c), *_block(c, c), nn.MaxPool2d(2),
                                  *_block(c, 2 * c), *_block(2 * c, 2 * c), nn.MaxPool2d(2),
                                  *_block(2 * c, 4 * c))
        self.head = nn.Linear(4 * c, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class BuiltinFeatures(FeatureNet):
    """The builtin classifier as a feature network: (128-d pooled features, 10 logits)."""

    pool_layer, logits_layer, resize = "pool128", "logits10", "bilinear-aa-32"
    pool_dim, logits_dim = 128, 10

    def __init__(self, model: BuiltinClassifier, weights_hash: str, weights_path: str):
        super().__init__()
        self.model = model
        self.identify(NAME, weights_hash, weights_path, official=True)  # gancli's own file

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(images.device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            pool = self.model.embed(preprocess(images))
            return pool.float(), self.model.head(pool).float()


def load_classifier(path: str | Path = WEIGHTS_FILE) -> BuiltinClassifier:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"Builtin classifier weights '{path}' are missing; recreate them with "
                                  f"`python -m gancli.metrics.judges.builtin_classifier`.")
    model = BuiltinClassifier()
    try:
        missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise MissingWeightsError(f"Builtin classifier weights '{path}' do not fit the network ({exc}).") from None
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise MissingWeightsError(f"Builtin classifier weights '{path}' do not fit the network "
                                  f"(missing {missing[:3]}, unexpected {unexpected[:3]}).")
    return model.eval()


def load_builtin_features(path: str | Path = WEIGHTS_FILE) -> BuiltinFeatures:
    model = load_classifier(path)
    return BuiltinFeatures(model, sha256_file(path), str(path))


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def _render(split: str, resolution: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    from gancli.data.builtin import BuiltinImages

    data = BuiltinImages(split, resolution)
    count = min(count, len(data))
    items = [data[i] for i in range(count)]
    images = preprocess(torch.stack([image for image, _ in items]))
    return images, torch.tensor([label for _, label in items])


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(part).argmax(1) for part in images.split(500)])
    return float((predictions == labels).float().mean())


def train(epochs: int = 3, seed: int = 0, batch_size: int = 128, lr: float = 2e-3,
          log=print) -> tuple[BuiltinClassifier, dict[str, float]]:
    """Train on the builtin train split at 16, 32 and 64 px (all seen at 32 px); report test accuracy."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    start = time.time()
    parts = [_render("train", 32, 20000), _render("train", 16, 10000), _render("train", 64, 4000)]
    images, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    log(f"rendered {len(images)} training images in {time.time() - start:.0f}s")
    model = BuiltinClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(images) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        for i in range(len(images) // batch_size):
            idx = order[i * batch_size:(i + 1) * batch_size]
            x = images[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                log(f"epoch {epoch + 1} step {step}/{steps} loss {loss.item():.4f}")
    report = {}
    for res in (32, 16, 64):
        test_images, test_labels = _render("test", res, 5000 if res != 64 else 2000)
        report[f"test_accuracy_{res}px"] = accuracy(model, test_images, test_labels)
    log("  ".join(f"{k} {v:.4f}" for k, v in report.items()) + f"  ({time.time() - start:.0f}s)")
    return model.eval(), report


def save(model: BuiltinClassifier, path: str | Path, report: dict[str, float]) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(path), metadata={k: f"{v:.4f}" for k, v in report.items()})
    path.chmod(0o644)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Retrain the builtin-data classifier used by --features builtin.")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    args = parser.parse_args(argv)
    model, report = train(args.epochs, args.seed)
    path = save(model, args.out, report)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, sha256 {sha256_file(path)[:12]})")


if __name__ == "__main__":
    main()
