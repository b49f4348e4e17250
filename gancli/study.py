"""Controlled studies: a grid of config settings × seeds, one training run per cell, failures kept as results.

The method of the large-scale study (Kurach et al. 2019) and of self-modulation (Chen et al. 2019). A study
file names a recipe and preset, fixed settings, the grid and the seeds:

    recipe = "uncond"
    preset = "quick"
    seeds = [0, 1, 2]
    pairs = "norm"              # optional: the field whose values are compared setting by setting
    tuned = ["optimizer"]       # optional: fields tuned over in the unpaired comparison (best setting per model)
    [base]                      # fixed settings of every cell
    steps = 400
    eval_every = 400
    [grid]                      # the Cartesian product of these lists
    norm = ["sn", "san"]
    loss = ["ns", "hinge"]
    optimizer = [               # a bundle: each value sets several fields together (label optional)
      {label = "a", lr_d = 2e-4, n_dis = 1},
      {lr_d = 1e-4, n_dis = 5},
    ]
    regularizer = [             # `model`: values the unpaired comparison counts as one model (tuned over together)
      {label = "gp1", model = "gp", penalty = "gp", penalty_weight = 1.0},
      {label = "gp10", model = "gp", penalty = "gp", penalty_weight = 10.0},
    ]

Each cell is a run folder DIR/cells/NAME with a cell.json record once it finished or failed; the report
(gancli.study_report) reads those records.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import multiprocessing
import os
import re
import shutil
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from importlib import resources
from itertools import product
from pathlib import Path
from typing import Any

import tomli_w

from gancli.config import TrainConfig, field_types, load_toml
from gancli.errors import ConfigError
from gancli.nn.norms import CRITIC_NORMS
from gancli.objectives.penalties import PENALTIES
from gancli.train import checkpoint as ckpt
from gancli.train.plots import read_metrics
from gancli.train.trainer import TrainingInterrupted

STUDY_FILE, CELL_FILE, CELLS = "study.toml", "cell.json", "cells"
STUDY_KEYS = ("name", "description", "recipe", "preset", "seeds", "pairs", "tuned", "base", "grid")
ALIASES = {"san_vs_sn": "san_vs_sn-cpu"}  # built-ins renamed to say they are CPU proxies
RESERVED = {"seed": "give seeds as `seeds = [...]` at the top of the study file",
            "out": "each cell's run folder is chosen by the study", "recipe": "name it at the top of the study file",
            "preset": "name it at the top of the study file"}
BUNDLE_LABEL, BUNDLE_MODEL = "label", "model"


class Diverged(Exception):
    """A loss became NaN or infinite: the cell stops and is recorded as diverged."""


@dataclass
class Study:
    """A parsed study file."""

    name: str
    recipe: str
    preset: str
    seeds: list[int]
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    pairs: str = ""
    description: str = ""
    source: str = ""
    tuned: list[str] = dataclasses.field(default_factory=list)

    def to_toml(self) -> str:
        data = {"name": self.name, "description": self.description, "recipe": self.recipe, "preset": self.preset,
                "seeds": self.seeds, "pairs": self.pairs, "tuned": self.tuned, "base": self.base, "grid": self.grid}
        return tomli_w.dumps({k: v for k, v in data.items() if v not in ("", {}, None, [])})


@dataclass
class Cell:
    """One setting of the grid with one seed: its labels, the config values it sets, and its folder name."""

    setting: dict[str, str]  # grid key -> label of its value, in grid order
    seed: int
    overrides: dict[str, Any]  # config field -> value (bundles flattened)
    name: str

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.setting.items()) + f", seed {self.seed}"


# ---- study files ---------------------------------------------------------------------------------
def builtin_studies() -> dict[str, str]:
    """The study files shipped with gancli: name -> description."""
    out = {}
    for entry in sorted(resources.files("gancli").joinpath("studies").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = str(tomllib.loads(entry.read_text()).get("description", ""))
    return out


def load_study(spec: str | Path, sets: dict[str, Any] | None = None) -> Study:
    """A study from a TOML file or a built-in name (see builtin_studies()), with `sets` (--set values) added to its
    fixed [base] settings."""
    study = _load_study(spec)
    if sets:
        study.base = {**study.base, **sets}
    return study


def _load_study(spec: str | Path) -> Study:
    """A study from a TOML file, or a built-in study by name."""
    path = Path(spec)
    if path.is_file():
        return parse_study(load_toml_document(path), str(path), path.stem)
    names = builtin_studies()
    spec = ALIASES.get(str(spec), spec)
    if str(spec) in names:
        text = resources.files("gancli").joinpath("studies", f"{spec}.toml").read_text()
        return parse_study(tomllib.loads(text), f"built-in study '{spec}'", str(spec))
    if path.suffix == ".toml" or path.parent != Path("."):
        raise ConfigError(f"Study file '{spec}' does not exist.")
    raise ConfigError(f"'{spec}' is neither a study file nor a built-in study ({', '.join(names)}).")


def load_toml_document(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Study file '{path}' is not valid TOML: {exc}.") from None


def parse_study(data: dict[str, Any], source: str, default_name: str = "study") -> Study:
    """Check a study document's shape (field names are checked against the recipe by expand())."""
    unknown = [k for k in data if k not in STUDY_KEYS]
    if unknown:
        raise ConfigError(f"{_cap(source)} has an unknown key '{unknown[0]}'; a study file has "
                          f"{', '.join(STUDY_KEYS)}.")
    recipe = data.get("recipe")
    if not isinstance(recipe, str) or not recipe:
        raise ConfigError(f"{_cap(source)} names no recipe; add e.g. recipe = \"uncond\".")
    grid = data.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{_cap(source)} has no grid; give a grid table of at least one field = list of values.")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"Grid entry '{key}' in {source} must be a non-empty list of values, got {values!r}.")
    seeds = data.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds)
            or len(set(seeds)) != len(seeds)):
        raise ConfigError(f"'seeds' in {source} must be a non-empty list of distinct integers, got {seeds!r}.")
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise ConfigError(f"The base table of {source} must hold field = value pairs, got {base!r}.")
    pairs = data.get("pairs", "")
    if pairs and (pairs not in grid or len(grid[pairs]) < 2):
        raise ConfigError(f"'pairs' in {source} must name a grid entry with at least two values, got '{pairs}'.")
    tuned = data.get("tuned", [])
    if not isinstance(tuned, list) or any(t not in grid or t == pairs for t in tuned):
        raise ConfigError(f"'tuned' in {source} must list grid entries other than the pairs field, got {tuned!r}.")
    for key in [*base, *grid]:
        if key in RESERVED:
            raise ConfigError(f"'{key}' cannot be set in the base or grid table of {source}: {RESERVED[key]}.")
    return Study(str(data.get("name") or default_name), recipe, str(data.get("preset", "")), list(seeds), dict(base),
                 dict(grid), str(pairs),
                 str(data.get("description", "")), source, list(tuned))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def value_label(value: Any) -> str:
    """How a grid value is named in folders, tables and plots."""
    if isinstance(value, dict):
        if BUNDLE_LABEL in value:
            return str(value[BUNDLE_LABEL])
        return " ".join(f"{k}={value_label(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(value_label(v) for v in value)
    return str(value)


def model_label(value: Any) -> str:
    """How the unpaired comparison names a grid value: its bundle's `model`, else its label."""
    return str(value[BUNDLE_MODEL]) if isinstance(value, dict) and BUNDLE_MODEL in value else value_label(value)


def _folder_name(setting: dict[str, str], seed: int) -> str:
    text = "__".join(f"{k}-{v}" for k, v in setting.items())
    slug = re.sub(r"[^A-Za-z0-9._+=-]+", "_", text).strip("_")
    if len(slug) > 90:
        slug = slug[:80] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{slug}__seed-{seed}"


def expand(study: Study) -> list[Cell]:
    """Every cell of the grid (settings in grid order, seeds innermost); field names checked against the recipe."""
    from recipes import get_recipe

    fields = field_types(get_recipe(study.recipe).Config)

    def check_field(key: str, where: str) -> None:
        if key in fields:
            return
        close = difflib.get_close_matches(key, list(fields), n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ConfigError(f"{_cap(study.source)} sets '{key}' in {where}, which is not a config field of recipe "
                          f"'{study.recipe}'{hint}.")

    for key in study.base:
        check_field(key, "its base table")
    options: list[list[tuple[str, dict[str, Any]]]] = []
    for key, values in study.grid.items():
        choices, seen = [], set()
        for value in values:
            if isinstance(value, dict):  # a bundle of fields set together
                fields_set = {k: v for k, v in value.items() if k not in (BUNDLE_LABEL, BUNDLE_MODEL)}
                if not fields_set:
                    raise ConfigError(f"Grid entry '{key}' in {study.source} has a table that sets no field.")
                for field in fields_set:
                    check_field(field, f"grid entry '{key}'")
                    if field in RESERVED:
                        raise ConfigError(f"'{field}' cannot be set in the grid of {study.source}: {RESERVED[field]}.")
            else:
                check_field(key, "its grid")
                fields_set = {key: value}
            label = value_label(value)
            if label in seen:
                raise ConfigError(f"Grid entry '{key}' in {study.source} lists the value '{label}' twice.")
            seen.add(label)
            choices.append((label, fields_set))
        options.append(choices)
    cells = []
    for combination in product(*options):
        setting = {key: label for key, (label, _) in zip(study.grid, combination)}
        overrides: dict[str, Any] = {}
        for _, fields_set in combination:
            overrides.update(fields_set)
        for seed in study.seeds:
            cells.append(Cell(setting, seed, overrides, _folder_name(setting, seed)))
    return cells


def resolve(study: Study, cells: list[Cell], out: Path) -> list[TrainConfig]:
    """Each cell's full, validated config (recipe defaults < preset < [base] < grid values < seed and folder)."""
    from gancli import api
    from recipes import get_recipe

    configs = []
    for cell in cells:
        sets = {**study.base, **cell.overrides, "seed": cell.seed, "out": str(out / CELLS / cell.name)}
        try:
            cfg = api.make_config(study.recipe, preset=study.preset or None, sets=sets)
            recipe = get_recipe(study.recipe)(cfg)  # the recipe's own checks (architecture names, ...)
            for key, names in (("norm", CRITIC_NORMS), ("penalty", PENALTIES)):  # else found only as cells start
                if getattr(cfg, key) not in names:
                    raise ConfigError(f"Unknown critic {key} '{getattr(cfg, key)}'; choose one of {', '.join(names)}.")
        except ConfigError as exc:
            raise ConfigError(f"Study cell '{cell.label}': {exc}") from None
        if recipe.best_metric is None:
            raise ConfigError(f"Recipe '{study.recipe}' keeps no score to compare runs by, so it cannot be studied.")
        if not cfg.eval_every:
            raise ConfigError(f"A study compares '{recipe.best_metric[0]}', so every cell must evaluate: set "
                              f"eval_every in the base table (to steps for one evaluation at the end).")
        configs.append(cfg)
    return configs


# ---- the state of a cell ---------------------------------------------------------------------------
def cell_record(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / CELL_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a damaged record is rebuilt from the run folder


def _write_record(run_dir: Path, record: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{CELL_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=1, allow_nan=True))
    os.replace(tmp, run_dir / CELL_FILE)


def _same_config(cfg: TrainConfig, run_dir: Path) -> None:
    """A cell folder that holds a run of other settings is an error (the study file changed), never reused."""
    saved = load_toml(run_dir / "config.toml")
    wanted = dataclasses.asdict(cfg)
    for key, value in wanted.items():
        if key != "out" and key in saved and saved[key] != value:
            raise ConfigError(f"Cell folder '{run_dir}' holds a run with {key} = {saved[key]!r}, not {value!r}; the "
                              f"study changed, so give it another --out.")


def _last_step(run_dir: Path) -> int:
    dirs = ckpt.step_dirs(run_dir)
    return int(dirs[-1].name.split("_")[1]) if dirs else 0


def cell_state(cfg: TrainConfig, retry_failed: bool = False) -> str:
    """'done' (recorded), 'finished' (trained and scored, not yet recorded), 'partial' (resumable) or 'new'."""
    run_dir = Path(cfg.out)
    if (run_dir / "config.toml").is_file():
        _same_config(cfg, run_dir)
    record = cell_record(run_dir)
    if record is not None and (record.get("status") == "ok" or not retry_failed):
        return "done"
    if not (run_dir / "config.toml").is_file():
        return "new"
    last = _last_step(run_dir)
    if last >= cfg.steps and _scores(run_dir, cfg)[0]:
        return "finished"
    return "partial" if last else "new"


def _scores(run_dir: Path, cfg: TrainConfig) -> tuple[list[dict[str, Any]], str | None]:
    """The run's evaluation records up to its final step, and why evaluation was skipped (if it was)."""
    records = read_metrics(Path(run_dir) / "metrics.jsonl")
    evals = [r for r in records if any(k.startswith("eval/") for k in r) and r.get("step", 0) <= cfg.steps]
    skipped = next((r["eval_skipped"] for r in records if "eval_skipped" in r), None)
    if evals and evals[-1].get("step") != cfg.steps:
        evals = []  # not scored at its last step: not finished
    return evals, skipped


def finished_record(run_dir: Path, cfg: TrainConfig, score: str, better: str) -> dict[str, Any]:
    """The result of a trained cell: its final and best score, or why it has none."""
    evals, skipped = _scores(run_dir, cfg)
    values = [(r["step"], r.get(f"eval/{score}")) for r in evals if isinstance(r.get(f"eval/{score}"), (int, float))]
    if not values:
        why = f"evaluation was skipped ({skipped})" if skipped else f"no {score} at step {cfg.steps}"
        return {"status": "failed", "reason": "no-score", "error": f"The run has no {score}: {why}."}
    step, final = values[-1]
    if not math.isfinite(final):
        return {"status": "failed", "reason": "diverged", "error": f"{score} is {final} at step {step}."}
    finite = [v for _, v in values if math.isfinite(v)]
    best = min(finite) if better == "min" else max(finite)
    last = evals[-1]
    others = {k[5:]: v for k, v in last.items()
              if k.startswith("eval/") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"status": "ok", "final": final, "best": best, "scores": others, "step": step}


# ---- running cells -----------------------------------------------------------------------------------
def _stop_on_nan(on_progress: Callable[[int, dict[str, float]], None] | None):
    def watch(step: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise Diverged(f"{key} became {value} at step {step}.")
        if on_progress:
            on_progress(step, logs)
    return watch


def run_cell(cfg: TrainConfig, info: dict[str, Any], score: str, better: str,
             on_progress: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train (or resume, or just record) one cell; any failure but an interruption becomes its record."""
    from gancli import api

    run_dir, started = Path(cfg.out), time.time()
    state = cell_state(cfg, retry_failed=True)
    if state == "done":
        return cell_record(run_dir)
    try:
        if state != "finished":
            if state == "new" and run_dir.exists():
                shutil.rmtree(run_dir)  # an earlier start that left no checkpoint (or a failure being retried)
            api.train(cfg, resume=state == "partial", on_progress=_stop_on_nan(on_progress))
        result = finished_record(run_dir, cfg, score, better)
    except TrainingInterrupted:
        raise
    except Diverged as exc:
        result = {"status": "failed", "reason": "diverged", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a study records what broke a cell and goes on
        result = {"status": "failed", "reason": "error", "error": f"{type(exc).__name__}: {exc}".strip()}
    record = {**info, **result, "score": score, "better": better, "resumed": state == "partial",
              "seconds": round(time.time() - started, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_record(run_dir, record)
    return record


def _init_worker(devices: Any, threads: int) -> None:
    """A worker process: its own GPU (when there are several) and its share of the CPU threads."""
    device = devices.get()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    import torch
    torch.set_num_threads(threads)


def _gpu_ids() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them."""
    import torch

    if not torch.cuda.is_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [v.strip() for v in visible.split(",") if v.strip()][:torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass
class StudyRun:
    """What run_study did: every cell's record, and how many were run now or found done."""

    study: Study
    out: Path
    records: list[dict[str, Any]]
    ran: int
    reused: int


def plan(study: Study, out: str | Path) -> tuple[list[Cell], list[TrainConfig]]:
    cells = expand(study)
    return cells, resolve(study, cells, Path(out))


def run_study(study: Study, out: str | Path, jobs: int = 1, retry_failed: bool = False,
              on_cell: Callable[[dict[str, Any], int, int], None] | None = None,
              on_step: Callable[[Cell, int, int], None] | None = None,
              on_plan: Callable[[int, int], None] | None = None) -> StudyRun:
    """Run every cell of a study that has no record yet (resuming half-done ones); returns all records.

    on_plan(cells, pending) is called once the whole grid is validated, before any training.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be a positive number, got {jobs}.")
    out = Path(out)
    cells, configs = plan(study, out)
    from recipes import get_recipe
    score, better = get_recipe(study.recipe)(configs[0]).best_metric
    out.mkdir(parents=True, exist_ok=True)
    (out / STUDY_FILE).write_text(study.to_toml())
    records: dict[str, dict[str, Any]] = {}
    pending = []
    for cell, cfg in zip(cells, configs):
        if cell_state(cfg, retry_failed) == "done":
            records[cell.name] = cell_record(Path(cfg.out))
        else:
            pending.append((cell, cfg))
    reused, total = len(records), len(cells)
    if on_plan:
        on_plan(total, len(pending))

    def info(cell: Cell) -> dict[str, Any]:
        return {"cell": cell.name, "setting": cell.setting, "seed": cell.seed}

    def done(cell: Cell, record: dict[str, Any]) -> None:
        records[cell.name] = record
        if on_cell:
            on_cell(record, len(records), total)

    if jobs == 1 or len(pending) <= 1:
        for cell, cfg in pending:
            step_cb = (lambda step, logs, cell=cell, cfg=cfg: on_step(cell, step, cfg.steps)) if on_step else None
            try:
                done(cell, run_cell(cfg, info(cell), score, better, step_cb))
            except TrainingInterrupted:
                raise TrainingInterrupted(f"Study stopped during cell '{cell.label}' (checkpoint saved); run the "
                                          f"same command again to resume it.") from None
    else:
        _run_parallel(pending, jobs, info, score, better, done)
    ordered = [records[c.name] for c in cells if c.name in records]
    return StudyRun(study, out, ordered, len(pending), reused)


def _run_parallel(pending, jobs: int, info, score: str, better: str, done) -> None:
    """Cells in `jobs` worker processes (spawned, so CUDA starts fresh in each), one GPU each when there are several."""
    context = multiprocessing.get_context("spawn")
    gpus = _gpu_ids()
    devices = context.Queue()
    for i in range(jobs):
        devices.put(gpus[i % len(gpus)] if len(gpus) > 1 else None)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(devices, threads))
    try:
        futures = {pool.submit(run_cell, cfg, info(cell), score, better): (cell, cfg) for cell, cfg in pending}
        for future in as_completed(futures):
            cell, cfg = futures[future]
            try:
                record = future.result()
            except BrokenProcessPool:
                record = {**info(cell), "status": "failed", "reason": "crash", "score": score, "better": better,
                          "error": "The worker process died (out of memory, or killed); rerun with --retry-failed."}
                _write_record(Path(cfg.out), record)
            except TrainingInterrupted:
                raise TrainingInterrupted("Study stopped (checkpoints saved); run the same command again to resume "
                                          "it.") from None
            done(cell, record)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # running cells save their checkpoints; queued ones never start
        raise
    pool.shutdown(wait=True)
