"""The recipes: one module per pipeline. Adding a recipe is one new module and one line here."""

from __future__ import annotations

import importlib

from gancli.errors import ConfigError

REGISTRY: dict[str, str] = {
    "uncond": "recipes.uncond:Uncond",
    "sr": "recipes.sr:SuperResolution",
    "biggan": "recipes.biggan:BigGAN",
    "spade": "recipes.spade:Spade",
    "stargan": "recipes.stargan:StarGAN",
}


def get_recipe(name: str):
    """The Recipe class registered under name."""
    if name not in REGISTRY:
        raise ConfigError(f"Unknown recipe '{name}'; choose one of {', '.join(REGISTRY)}.")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)
