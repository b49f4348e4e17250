"""`gancli recipes`: the recipes, one line each, with their presets."""

from __future__ import annotations

from rich.table import Table

from gancli import api
from gancli.cli.app import app
from gancli.cli.ui import console


@app.command("recipes")
def list_recipes():
    """List the recipes, one line each, with their presets."""
    table = Table("recipe", "what it trains", "presets", title="gancli recipes")
    for info in api.recipes():
        presets = ", ".join(f"{p}{' (offline default)' if p == info['offline_preset'] else ''}"
                            for p in info["presets"])
        table.add_row(info["name"], info["summary"], presets)
    console.print(table)
