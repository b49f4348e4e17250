"""The runs a server offers, by id: the client names a run by its id, never by a path."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from gancli import api
from gancli.errors import CheckpointError, ConfigError, GancliError


class UnknownRun(GancliError):
    """A run id this server does not serve."""


class RunCatalog:
    """The given run folders, and those found under a folder of runs (looked for again on every listing)."""

    def __init__(self, runs: list[Path], runs_dir: Path | None = None):
        for run in runs:
            if not (Path(run) / "config.toml").is_file():
                raise ConfigError(f"'{run}' is not a gancli run folder (it has no config.toml).")
        if runs_dir is not None and not Path(runs_dir).is_dir():
            raise ConfigError(f"Folder of runs '{runs_dir}' does not exist.")
        self.runs = [Path(run) for run in runs]
        self.runs_dir = None if runs_dir is None else Path(runs_dir)
        self._ids: dict[str, Path] = {}
        self._lock = threading.Lock()

    def _id_of(self, path: Path) -> str:
        """The id of a run folder: its name, made unique with -2, -3, ...; an id always names the same folder."""
        with self._lock:
            for run_id, known in self._ids.items():
                if known == path:
                    return run_id
            run_id, k = path.name or "run", 1
            while run_id in self._ids:
                k += 1
                run_id = f"{path.name}-{k}"
            self._ids[run_id] = path
            return run_id

    def rows(self) -> tuple[list[dict[str, Any]], str]:
        """The runs table (gancli runs' summaries with an id each) and a problem with the folder of runs, if any."""
        rows, problem = [], ""
        for path in self.runs:
            try:
                rows.append(api.summarize_run(path))
            except (GancliError, OSError) as exc:
                gone = f"Run folder '{path}' is gone."
                rows.append({"run": str(path), "status": "missing", "message": str(exc) if path.is_dir() else gone})
        if self.runs_dir is not None:
            try:
                given = {run.resolve() for run in self.runs}
                rows += [row for row in api.list_runs(self.runs_dir) if Path(row["run"]).resolve() not in given]
            except (GancliError, OSError) as exc:
                problem = str(exc)
        return [{"id": self._id_of(Path(row["run"])), **row} for row in rows], problem

    def path(self, run_id: str) -> Path:
        """The folder of a served run; UnknownRun for any other id."""
        if run_id not in self._ids:
            self.rows()  # a run that appeared under the folder of runs since the last listing
        if run_id not in self._ids:
            raise UnknownRun(f"This server serves no run '{run_id}'.")
        path = self._ids[run_id]
        if not path.is_dir():
            raise CheckpointError(f"Run folder '{path}' is gone.")
        return path
