"""`gancli runs`: finished, interrupted, running and failed runs in one table (and as JSON)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from gancli import api
from gancli.train.lock import RunLock, write_exit


def set_steps(run_dir, steps):
    config = run_dir / "config.toml"
    text = config.read_text()
    assert "\nsteps = 2\n" in text
    config.write_text(text.replace("\nsteps = 2\n", f"\nsteps = {steps}\n"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "done"
    api.train(api.make_config("uncond", out=str(out), resolution=32, width=0.125, batch_size=2, z_dim=4,
                              steps=2, log_every=1, ckpt_every=1, eval_every=2, eval_n=20, sample_every=0,
                              n_samples=4, device="cpu", tensorboard=False))
    return out


@pytest.fixture
def runs_folder(tmp_path, finished_run):
    """The finished 2-step run, copied as an interrupted, a failed and a running one (each stopped at 2 of 5)."""
    root = tmp_path / "runs"
    shutil.copytree(finished_run, root / "done")
    for name in ("killed", "failed", "live"):
        shutil.copytree(root / "done", root / name)
        set_steps(root / name, 5)
        (root / name / "exit.json").unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (root / "killed" / "train.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename}))
    write_exit(root / "failed", "failed", "Image folder 'data/' is empty.")
    (root / "notes").mkdir()  # not a run: left out
    with RunLock(root / "live"):
        yield root


def test_runs_json_has_status_best_checkpoint_and_wall_time(cli, runs_folder):
    result = cli("runs", runs_folder, "--json")
    assert result.exit_code == 0, result.stderr
    rows = {os.path.basename(row["run"]): row for row in json.loads(result.stdout)}
    assert sorted(rows) == ["done", "failed", "killed", "live"]
    assert {name: row["status"] for name, row in rows.items()} == {
        "done": "finished", "failed": "failed", "killed": "interrupted", "live": "running"}
    assert rows["live"]["pid"] == os.getpid() and rows["killed"]["pid"] is None
    assert rows["failed"]["message"] == "Image folder 'data/' is empty."
    done = rows["done"]
    assert (done["recipe"], done["step"], done["steps"], done["last_checkpoint"]) == ("uncond", 2, 2, 2)
    assert done["best"]["metric"] == "fid" and done["best"]["step"] == 2 and done["best"]["value"] > 0
    assert done["wall_time_s"] > 0 and rows["killed"]["steps"] == 5


def test_runs_table(cli, runs_folder):
    result = cli("runs", runs_folder)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for expected in ("done", "finished", "interrupted", f"running (pid {os.getpid()})", "failed", "2 / 5",
                     "fid", "step 2", "Image folder 'data/' is empty."):
        assert expected in text, expected
    one = cli("runs", runs_folder / "done", "--json")  # a run folder itself lists that run
    assert [os.path.basename(r["run"]) for r in json.loads(one.stdout)] == ["done"]


def test_runs_errors_and_empty_folder(cli, tmp_path):
    result = cli("runs", tmp_path / "missing")
    assert result.exit_code == 1 and "Folder '" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("runs", tmp_path)
    assert result.exit_code == 0 and "No runs in" in result.stdout
