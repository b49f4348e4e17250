"""Train the unconditional SNDCGAN with SAN on the builtin data, then sample a grid, from Python."""

from gancli import api
from gancli.train.plots import save_grid

cfg = api.make_config("uncond", preset="quick", norm="san", steps=200, out="runs/example-uncond-san")
run = api.train(cfg)
save_grid(api.sample(run.path, n=64, seed=1), run.path / "example-grid.png")
print("wrote", run.path / "example-grid.png")
