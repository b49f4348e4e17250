"""`gancli recipes`: the recipes, one line each, with their presets and the offline preset's critic."""

from __future__ import annotations

from rich.table import Table

from gancli import api
from gancli.cli.app import app
from gancli.cli.ui import console


@app.command("recipes")
def list_recipes():
    """List the recipes, one line each, with their presets and the offline preset's critic normalization."""
    table = Table("recipe", "what it trains", "presets", "offline preset's critic, and why", title="gancli recipes")
    for info in api.recipes():
        presets = ", ".join(f"{p}{' (offline default)' if p == info['offline_preset'] else ''}"
                            for p in info["presets"])
        why = info["offline_critic_why"]
        table.add_row(info["name"], info["summary"], presets, info["offline_critic"] + (f": {why}" if why else ""))
    console.print(table)
