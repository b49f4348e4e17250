"""The report of a study, as the large-scale study and self-modulation papers give theirs (CSV tables and PNGs).

- per-setting median score over seeds (Kurach et al. 2019, Sec. 3; Chen et al. 2019, Sec. 3.2);
- the score distribution of the top 5% of trained models for each value of each grid field (Kurach et al., Fig. 1-4),
  a model being a setting scored by its median over seeds (Kurach et al. §2: "train the models 5 times ... and report
  the median FID");
- paired comparisons: value A beats value B in k of n settings, with a two-sided exact sign test (Chen et al.:
  self-modulation wins 124 of 144 paired settings);
- unpaired comparisons (Chen et al. §3.2, Tables 2-3): a model is a setting without its `tuned` fields (bundles
  with the same `model` name count as one), scored by its best median over them; A against B model by model;
- the budget curve: the expected best median score after trying k random settings, averaged over 1000
  random orders (Kurach et al., Fig. 1 and 4, second row).

A failed cell (an error, a NaN loss, no score) counts as the worst possible score (FID +∞).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from itertools import combinations, product
from pathlib import Path
from typing import Any

import numpy as np

from gancli.errors import ConfigError
from gancli.figures import pyplot, save_figure
from gancli.study import (
    CELL_FILE,
    CELLS,
    STUDY_FILE,
    Study,
    load_toml_document,
    model_label,
    parse_study,
    value_label,
)

TOP_FRACTION, DRAWS = 0.05, 1000


# ---- statistics on plain numbers (scores oriented so that lower is better; failures are +inf) --------------
def median_over_seeds(values: list[float]) -> float:
    """The median of a setting's seeds; a failed seed (+inf) counts as the worst."""
    return float(np.median(np.asarray(values, dtype=np.float64)))


def top_fraction(values: list[float], fraction: float = TOP_FRACTION) -> list[float]:
    """The best ceil(fraction·n) values (at least one), finite ones only, best first."""
    ordered = sorted(values)
    count = max(1, math.ceil(fraction * len(ordered)))
    return [v for v in ordered[:count] if math.isfinite(v)]


def sign_test(wins_a: int, wins_b: int) -> float:
    """Two-sided exact sign test p-value of wins_a against wins_b (ties left out): binomial(n, ½)."""
    from scipy.stats import binomtest

    n = wins_a + wins_b
    return 1.0 if n == 0 else float(binomtest(wins_a, n, 0.5, alternative="two-sided").pvalue)


def budget_curve(values: list[float], draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    """E[min of k settings drawn without replacement], k = 1..n, averaged over `draws` random orders.

    The prefix minima of a random permutation are minima of uniformly random k-subsets, so one permutation
    per draw gives every k at once.
    """
    scores = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    orders = rng.permuted(np.tile(np.arange(len(scores)), (draws, 1)), axis=1)
    with np.errstate(invalid="ignore"):
        return np.minimum.accumulate(scores[orders], axis=1).mean(axis=0)


# ---- reading a study folder ------------------------------------------------------------------------
@dataclass
class Setting:
    """One grid setting: its labels and its seeds' scores (oriented; failures +inf)."""

    labels: dict[str, str]
    seeds: dict[int, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return median_over_seeds(list(self.seeds.values()))

    @property
    def failed(self) -> int:
        return sum(not math.isfinite(v) for v in self.seeds.values())


@dataclass
class Results:
    study: Study
    records: list[dict[str, Any]]
    score: str  # e.g. "fid"
    better: str  # "min" or "max"
    which: str  # "final" or "best"
    settings: list[Setting]

    def shown(self, value: float) -> float:
        """An oriented score back in the metric's own direction."""
        return value if self.better == "min" else -value

    @property
    def keys(self) -> list[str]:
        return list(self.study.grid)

    @property
    def varied(self) -> list[str]:
        return [k for k in self.keys if len(self.study.grid[k]) > 1]


def load_results(study_dir: str | Path, which: str = "final") -> Results:
    """The study file and the cell records of a study folder (cells of the current grid only)."""
    study_dir = Path(study_dir)
    if which not in ("final", "best"):
        raise ConfigError(f"--score must be final or best, got '{which}'.")
    study_file = study_dir / STUDY_FILE
    if not study_file.is_file():
        raise ConfigError(f"'{study_dir}' is not a study folder (it has no {STUDY_FILE}); run `gancli study` first.")
    study = parse_study(load_toml_document(study_file), str(study_file), study_dir.name)
    labels = {k: [value_label(v) for v in values] for k, values in study.grid.items()}
    settings: dict[tuple[str, ...], Setting] = {}
    for values in product(*labels.values()):
        settings[values] = Setting(dict(zip(labels, values)))
    records, score, better = [], None, "min"
    for path in sorted((study_dir / CELLS).glob(f"*/{CELL_FILE}")):
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        key = tuple(record.get("setting", {}).get(k) for k in labels)
        if key not in settings or record.get("seed") not in study.seeds:
            continue  # a cell of an earlier grid
        records.append(record)
        score, better = record.get("score", score), record.get("better", better)
        value = record.get(which) if record.get("status") == "ok" else None
        oriented = math.inf if value is None else (value if better == "min" else -value)
        settings[key].seeds[record["seed"]] = oriented
    if not records:
        raise ConfigError(f"Study folder '{study_dir}' has no finished cells yet.")
    return Results(study, records, score or "score", better, which, [s for s in settings.values() if s.seeds])


# ---- the paper's tables --------------------------------------------------------------------------------
@dataclass
class Paired:
    """Value a against value b of the pairs field, setting by setting (medians over seeds)."""

    field: str
    a: str
    b: str
    wins_a: int
    wins_b: int
    ties: int
    rows: list[dict[str, Any]]

    @property
    def n(self) -> int:
        return self.wins_a + self.wins_b

    @property
    def p_value(self) -> float:
        return sign_test(self.wins_a, self.wins_b)


def paired_comparisons(results: Results) -> list[Paired]:
    """Every pair of values of the study's `pairs` field, compared in each setting of the other fields."""
    key = results.study.pairs
    if not key:
        return []
    others = [k for k in results.keys if k != key]
    by_rest: dict[tuple[str, ...], dict[str, float]] = {}
    for setting in results.settings:
        rest = tuple(setting.labels[k] for k in others)
        by_rest.setdefault(rest, {})[setting.labels[key]] = setting.median
    return [_compare(results, key, a, b, others, by_rest)
            for a, b in combinations([value_label(v) for v in results.study.grid[key]], 2)]


def budget_curves(results: Results, draws: int = DRAWS) -> dict[str, dict[str, np.ndarray]]:
    """For each varied field and each of its values: the expected best setting median after k settings."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in results.varied:
        out[key] = {}
        for label in (value_label(v) for v in results.study.grid[key]):
            medians = [s.median for s in results.settings if s.labels[key] == label]
            if medians:
                out[key][label] = budget_curve(medians, draws)
    return out


def top_models(results: Results, fraction: float = TOP_FRACTION) -> dict[str, dict[str, list[float]]]:
    """For each varied field and value: the scores of the top `fraction` of its models, each setting scored by its
    median over seeds."""
    out: dict[str, dict[str, list[float]]] = {}
    for key in results.varied:
        out[key] = {}
        for label in (value_label(v) for v in results.study.grid[key]):
            medians = [s.median for s in results.settings if s.labels[key] == label and s.seeds]
            out[key][label] = [results.shown(v) for v in top_fraction(medians, fraction)]
    return out


def unpaired_comparisons(results: Results) -> list[Paired]:
    """Chen et al. §3.2 (Tables 2-3): each value of the pairs field after tuning: per model (the other untuned fields,
    bundles merged by their `model` name), the best setting median over the tuned fields; A against B per model."""
    key, tuned = results.study.pairs, results.study.tuned
    if not key or not tuned:
        return []
    names = {k: {value_label(v): model_label(v) for v in values} for k, values in results.study.grid.items()}
    others = [k for k in results.keys if k != key and k not in tuned]
    best: dict[tuple[str, ...], dict[str, float]] = {}
    for setting in results.settings:
        if not setting.seeds:
            continue
        model = tuple(names[k][setting.labels[k]] for k in others)
        side = best.setdefault(model, {})
        side[setting.labels[key]] = min(side.get(setting.labels[key], math.inf), setting.median)
    return [_compare(results, key, a, b, others, best)
            for a, b in combinations([value_label(v) for v in results.study.grid[key]], 2)]


def _compare(results: Results, key: str, a: str, b: str, others: list[str],
             scores: dict[tuple[str, ...], dict[str, float]]) -> Paired:
    """Value a against value b of `key`, one row per entry of `scores` (the rest of the setting -> score by value)."""
    wins_a = wins_b = ties = 0
    rows = []
    for rest, by_value in scores.items():
        if a not in by_value or b not in by_value:
            continue
        ma, mb = by_value[a], by_value[b]
        winner = a if ma < mb else b if mb < ma else "tie"
        wins_a, wins_b, ties = wins_a + (winner == a), wins_b + (winner == b), ties + (winner == "tie")
        rows.append({**dict(zip(others, rest)), a: results.shown(ma), b: results.shown(mb), "better": winner})
    return Paired(key, a, b, wins_a, wins_b, ties, rows)


# ---- writing it all -------------------------------------------------------------------------------
@dataclass
class Report:
    results: Results
    files: list[Path]
    paired: list[Paired]
    ranked: list[Setting]
    unpaired: list[Paired] = field(default_factory=list)


def write_report(study_dir: str | Path, which: str = "final", fraction: float = TOP_FRACTION,
                 draws: int = DRAWS) -> Report:
    """Write the tables (CSV) and plots (PNG) of a study folder into DIR/report/."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"--top must be a fraction in (0, 1], got {fraction}.")
    if draws < 1:
        raise ConfigError(f"--draws must be a positive number, got {draws}.")
    results = load_results(study_dir, which)
    out = Path(study_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    ranked = sorted(results.settings, key=lambda s: (s.median, s.failed))
    name = results.score.upper() if results.score == "fid" else results.score
    files = [_write_cells(results, out / "cells.csv"), _write_settings(results, ranked, out / "settings.csv"),
             _plot_settings(results, ranked, name, out / "settings.png")]
    top = top_models(results, fraction)
    if top:
        files.append(_plot_top(results, top, name, fraction, out / "top_boxplots.png"))
        curves = budget_curves(results, draws)
        files += [_write_budget(results, curves, out / "budget_curve.csv"),
                  _plot_budget(results, curves, name, draws, out / "budget_curve.png")]
    paired = paired_comparisons(results)
    if paired:
        files += [_write_paired(paired, out / "paired.csv"), _write_paired_rows(paired, out / "paired_settings.csv"),
                  _plot_paired(results, paired, name, out / "paired.png")]
    unpaired = unpaired_comparisons(results)
    if unpaired:
        files += [_write_paired(unpaired, out / "unpaired.csv"),
                  _write_paired_rows(unpaired, out / "unpaired_models.csv")]
    return Report(results, files, paired, ranked, unpaired)


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _fmt(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "failed"


def _write_cells(results: Results, path: Path) -> Path:
    rows = [[r["cell"], *[r["setting"][k] for k in results.keys], r["seed"], r["status"], r.get("reason", ""),
             r.get("final", ""), r.get("best", ""), r.get("seconds", ""), r.get("error", "")] for r in results.records]
    return _csv(path, ["cell", *results.keys, "seed", "status", "reason", f"final_{results.score}",
                       f"best_{results.score}", "seconds", "error"], rows)


def _write_settings(results: Results, ranked: list[Setting], path: Path) -> Path:
    seeds = results.study.seeds
    rows = [[i + 1, *[s.labels[k] for k in results.keys], results.shown(s.median), len(s.seeds), s.failed,
             *[results.shown(s.seeds[x]) if x in s.seeds else "" for x in seeds]] for i, s in enumerate(ranked)]
    return _csv(path, ["rank", *results.keys, f"median_{results.score}", "seeds", "failed",
                       *[f"seed_{x}" for x in seeds]], rows)


def _write_budget(results: Results, curves, path: Path) -> Path:
    rows = [[key, label, k + 1, results.shown(v), len(curve)]
            for key, by_value in curves.items() for label, curve in by_value.items() for k, v in enumerate(curve)]
    return _csv(path, ["field", "value", "k", f"expected_best_{results.score}", "settings"], rows)


def _write_paired(paired: list[Paired], path: Path) -> Path:
    rows = [[p.field, p.a, p.b, p.wins_a, p.wins_b, p.ties, p.n, f"{p.p_value:.6g}"] for p in paired]
    return _csv(path, ["field", "a", "b", "a_better", "b_better", "ties", "n", "sign_test_p"], rows)


def _write_paired_rows(paired: list[Paired], path: Path) -> Path:
    keys = list(dict.fromkeys(k for p in paired for row in p.rows for k in row if k not in (p.a, p.b, "better")))
    rows = [[p.a, p.b, *[row.get(k, "") for k in keys], row[p.a], row[p.b], row["better"]]
            for p in paired for row in p.rows]
    return _csv(path, ["a", "b", *keys, "median_a", "median_b", "better"], rows)


def _plot_settings(results: Results, ranked: list[Setting], name: str, path: Path) -> Path:
    plt = pyplot()
    seeds = results.study.seeds
    header = ["#", *results.keys, f"median {name}", *[f"seed {x}" for x in seeds]]
    cells = [[str(i + 1), *[s.labels[k] for k in results.keys], _fmt(results.shown(s.median)),
              *[_fmt(results.shown(s.seeds[x])) if x in s.seeds else "–" for x in seeds]]
             for i, s in enumerate(ranked)]
    fig, ax = plt.subplots(figsize=(min(18, 1.2 + 1.3 * len(header)), 0.9 + 0.28 * (len(cells) + 1)))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(header))))
    median_col = len(results.keys) + 1
    for (row, col), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#dde3ea")
            cell.set_text_props(weight="bold")
        elif col == median_col:
            cell.set_facecolor("#eef6ee" if row == 1 else "white")
            cell.set_text_props(weight="bold")
    ax.set_title(f"{results.study.name}: median {name} ({results.which}) over {len(seeds)} seeds, best first "
                 f"({_pending_note(results)})", fontsize=9)
    return save_figure(fig, path, dpi=120, tight="bbox")


def _pending_note(results: Results) -> str:
    expected = math.prod(len(v) for v in results.study.grid.values()) * len(results.study.seeds)
    failed = sum(r.get("status") != "ok" for r in results.records)
    return f"{len(results.records)} of {expected} cells done, {failed} failed"


def _plot_top(results: Results, top, name: str, fraction: float, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(top), figsize=(3.2 * len(top) + 0.6, 3.6), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (key, by_value) in zip(axes[0], top.items()):
        labels = list(by_value)
        data = [by_value[label] for label in labels]
        shown = [d if d else [np.nan] for d in data]
        ax.boxplot(shown, widths=0.5, showfliers=False)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=12, alpha=0.7, zorder=3)
        ax.set_xticks(range(1, len(labels) + 1), [_short(label) for label in labels], rotation=20, fontsize=8)
        ax.set_title(key, fontsize=9)
        ax.set_ylabel(f"{name} ({results.which})", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{results.study.name}: {name} of the top {fraction:.0%} of models per option "
                 f"({'lower' if results.better == 'min' else 'higher'} is better)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, tight="bbox")


def _short(label: str, width: int = 22) -> str:
    return label if len(label) <= width else label[:width - 1] + "…"


def _plot_budget(results: Results, curves, name: str, draws: int, path: Path) -> Path:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(curves), figsize=(3.9 * len(curves) + 0.6, 3.5), squeeze=False)
    for ax, (key, by_value) in zip(axes[0], curves.items()):
        for label, curve in by_value.items():
            ks = np.arange(1, len(curve) + 1)
            values = np.array([results.shown(v) for v in curve])
            finite = np.isfinite(values)
            ax.plot(ks[finite], values[finite], marker="o", markersize=3, label=_short(label))
        ax.set_title(key, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("settings tried (budget k)", fontsize=8)
        ax.set_ylabel(f"expected best median {name}", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{results.study.name}: best {name} for a budget of k random settings (mean of {draws} draws; "
                 f"a failed setting is +∞, points left out where a draw can hold only failed ones)", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, tight="bbox")


def _plot_paired(results: Results, paired: list[Paired], name: str, path: Path) -> Path:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(len(paired), 2, figsize=(8.4, 3.6 * len(paired)), squeeze=False)
    for (scatter, bars), p in zip(axes, paired):
        xa = np.array([row[p.a] for row in p.rows], dtype=float)
        xb = np.array([row[p.b] for row in p.rows], dtype=float)
        both = np.isfinite(xa) & np.isfinite(xb)
        scatter.scatter(xa[both], xb[both], s=16)
        if both.any():
            lo, hi = min(xa[both].min(), xb[both].min()), max(xa[both].max(), xb[both].max())
            scatter.plot([lo, hi], [lo, hi], color="gray", lw=1, ls="--")
        scatter.set_xlabel(f"median {name}, {p.field}={p.a}", fontsize=8)
        scatter.set_ylabel(f"median {name}, {p.field}={p.b}", fontsize=8)
        below = p.b if results.better == "min" else p.a
        scatter.set_title(f"one point per setting, {below} better below the diagonal\n"
                          f"({int((~both).sum())} with a failed median not drawn)", fontsize=8)
        scatter.grid(alpha=0.3)
        counts = [p.wins_a, p.ties, p.wins_b]
        bars.barh([f"{p.a} better", "tie", f"{p.b} better"], counts, color=["#4c78a8", "#bbbbbb", "#f58518"])
        for i, count in enumerate(counts):
            bars.text(count, i, f" {count}", va="center", fontsize=8)
        bars.set_title(f"{p.a} beats {p.b} in {p.wins_a} of {p.n} settings; sign test p = {p.p_value:.3g}",
                       fontsize=8)
        bars.set_xlim(0, max(counts + [1]) * 1.25)
        bars.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{results.study.name}: paired comparison of {paired[0].field} (median {name} over seeds)",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, tight="bbox")
