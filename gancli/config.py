"""Training configuration: plain dataclasses, resolved from defaults, a preset, a TOML file and --set."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from gancli.errors import ConfigError


@dataclass
class TrainConfig:
    """Fields every recipe shares; a recipe subclasses this with its own fields and defaults."""

    recipe: str = ""
    preset: str = ""
    data: str = ""  # "" means the recipe's builtin data
    out: str = ""
    init_from: str = ""  # a run folder whose latest weights initialise G (and D when its shapes fit)
    steps: int = 1000
    batch_size: int = 64
    # critic normalization (gancli.nn.apply_critic_norm)
    norm: str = "sn"
    norm_ratio: float = 1.0  # SAN: fraction of kernel pairs sampled
    norm_gain: float = 0.0  # SAN: compensation g; 0 means eq. 9 of the SAN paper
    norm_every: int = 1  # SAN / sn-exact: recompute sigma every k critic updates
    # SAN / sn-exact form: project (Alg. 1: stored conv weights divided by g·sigma in place) or reparam (W/(g·sigma))
    san_mode: str = "project"
    # auto: circular for san and sn-exact (Lemma 1 of the SAN paper needs it), the networks' own otherwise;
    # circular: every padded critic conv pads cyclically whatever the norm (e.g. SN on SAN's architecture);
    # zeros: every padded critic conv pads with zeros; san / sn-exact take σ on the (H+kh-1)×(W+kw-1) grid
    critic_padding: str = "auto"
    penalty: str = "none"
    penalty_weight: float = 10.0  # λ; for r1 it is γ of γ/2·E‖∇D(x)‖²
    clip_value: float = 0.01  # penalty clip: critic weights clamped to [-c, c] after each critic step (WGAN)
    loss: str = "hinge"
    # optimisation
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas_g: list[float] = field(default_factory=lambda: [0.5, 0.9])
    betas_d: list[float] = field(default_factory=lambda: [0.5, 0.9])
    n_dis: int = 1
    grad_accum: int = 1
    lr_schedule: str = "constant"  # constant | multistep | linear
    lr_milestones: list[float] = field(default_factory=list)  # fractions of steps (multistep)
    lr_gamma: float = 0.5  # multistep factor
    lr_decay_start: float = 0.0  # fraction of steps where linear decay to 0 begins
    ema: bool = True
    ema_decay: float = 0.999
    ema_start: int = 0
    # execution
    precision: str = "fp32"  # fp32 | bf16 (autocast, CUDA only)
    memory_format: str = "channels_last"  # or contiguous: layout of 4-D weights and image batches (NHWC: faster convs)
    # torch.compile of the networks: none | default | reduce-overhead (CUDA graphs on a GPU) | max-autotune
    compile: str = "none"
    compile_backend: str = "inductor"  # or aot_eager / eager: capture without code generation (debugging, tests)
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    deterministic: bool = False
    workers: int = -1  # data-loading processes; -1: none on the CPU, up to 8 with CUDA
    # intervals (steps; 0 disables)
    log_every: int = 10
    sample_every: int = 500
    ckpt_every: int = 500
    eval_every: int = 0
    keep_ckpts: int = 3
    n_samples: int = 64
    ckpt_minutes: float = 10.0  # also checkpoint when this much wall time passed since the last one (0: off)
    tensorboard: bool = True  # also write TensorBoard event files (needs the 'tensorboard' extra)
    # augmentation of every image the critic sees (gancli.train.augment)
    augment: str = "none"  # none | diffaug (Zhao et al. 2020) | ada (Karras et al. 2020)
    diffaug_policy: list[str] = field(default_factory=lambda: ["color", "translation", "cutout"])
    ada_target: float = 0.6  # ADA: the E[sign(D(real))] that p is tuned to keep
    ada_interval: int = 4  # ADA: critic steps between adjustments of p
    ada_kimg: float = 500.0  # ADA: thousands of images over which p may go from 0 to 1
    # telemetry (gancli.train.telemetry): top singular value of every weight layer, collapse detection
    telemetry_every: int = 0  # steps between readings; 0 disables
    on_collapse: str = "stop"  # stop | rollback (to the last good checkpoint, lower lr) | warn
    collapse_factor: float = 3.0  # a reading above this multiple of its recent median is a collapse


CHOICES: dict[str, tuple[str, ...]] = {
    "lr_schedule": ("constant", "multistep", "linear"),
    "precision": ("fp32", "bf16"),
    "memory_format": ("contiguous", "channels_last"),
    "device": ("auto", "cpu", "cuda"),
    "augment": ("none", "diffaug", "ada"),
    "on_collapse": ("stop", "rollback", "warn"),
    "san_mode": ("project", "reparam"),
    "critic_padding": ("auto", "circular", "zeros"),
    "compile": ("none", "default", "reduce-overhead", "max-autotune"),
    "compile_backend": ("inductor", "aot_eager", "eager"),
}
# A bare flag (`--compile`) or its negation (`--no-compile`) for fields that take a mode.
FLAG_VALUES: dict[str, dict[str, str]] = {"compile": {"true": "default", "false": "none"}}
POSITIVE = ("steps", "batch_size", "grad_accum", "norm_every", "keep_ckpts", "n_samples", "ada_interval", "ada_kimg",
            "clip_value")
NON_NEGATIVE = ("n_dis", "log_every", "sample_every", "ckpt_every", "eval_every", "ema_start", "telemetry_every",
                "penalty_weight", "lr_g", "lr_d", "norm_gain", "lr_decay_start", "ckpt_minutes")


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Convert a TOML or command-line value to the field's declared type, or say why not."""
    origin = typing.get_origin(typ)
    try:
        if origin is list:
            (item,) = typing.get_args(typ)
            if isinstance(value, str):
                value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return [_coerce(key, v, item) for v in value]
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            if isinstance(value, str):
                value = float(value) if any(c in value for c in ".eE") else int(value)
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if isinstance(value, (list, dict)):
                raise ValueError
            return str(value).strip()
    except (ValueError, TypeError):
        pass
    name = getattr(typ, "__name__", str(typ))
    raise ConfigError(f"Config key '{key}' expects a value of type {name}, got {value!r}.")


def apply_overrides(cfg: TrainConfig, overrides: dict[str, Any], source: str) -> TrainConfig:
    """Return a copy of cfg with overrides applied; unknown keys and wrong types are errors."""
    types = field_types(type(cfg))
    changes = {}
    for key, value in overrides.items():
        key = key.replace("-", "_")
        if key not in types:
            close = [k for k in types if k.startswith(key[:3])]
            hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
            raise ConfigError(f"Unknown config key '{key}' in {source}{hint}.")
        value = _coerce(key, value, types[key])
        changes[key] = FLAG_VALUES.get(key, {}).get(str(value).lower(), value)
    return dataclasses.replace(cfg, **changes)


def parse_set(items: list[str]) -> dict[str, str]:
    """Parse repeated --set key=value options."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'.")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist.")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file '{path}' is not valid TOML: {exc}.") from None
    return data.get("config", data)


def save_toml(cfg: TrainConfig, path: Path) -> None:
    path.write_text(tomli_w.dumps({"config": dataclasses.asdict(cfg)}))


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check values that no type can express; raise ConfigError with one sentence."""
    for key in POSITIVE:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"'{key}' must be a positive number, got {getattr(cfg, key)}.")
    for key in NON_NEGATIVE:
        if getattr(cfg, key) < 0:
            raise ConfigError(f"'{key}' must not be negative, got {getattr(cfg, key)}.")
    for key, choices in CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise ConfigError(f"'{key}' must be one of {', '.join(choices)}, got '{getattr(cfg, key)}'.")
    for key in ("betas_g", "betas_d"):
        betas = getattr(cfg, key)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ConfigError(f"'{key}' must be two numbers in [0, 1), got {betas}.")
    if cfg.workers < -1:
        raise ConfigError(f"'workers' must be -1 (automatic) or a count, got {cfg.workers}.")
    if not 0.0 < cfg.norm_ratio <= 1.0:
        raise ConfigError(f"'norm_ratio' must be in (0, 1], got {cfg.norm_ratio}.")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise ConfigError(f"'ema_decay' must be in [0, 1), got {cfg.ema_decay}.")
    if not 0.0 < cfg.ada_target < 1.0:
        raise ConfigError(f"'ada_target' must be in (0, 1), got {cfg.ada_target}.")
    if not cfg.collapse_factor > 1.0:
        raise ConfigError(f"'collapse_factor' must be greater than 1, got {cfg.collapse_factor}.")
    if any(not 0.0 < m < 1.0 for m in cfg.lr_milestones):
        raise ConfigError(f"'lr_milestones' are fractions of the steps in (0, 1), got {cfg.lr_milestones}.")
    return cfg
