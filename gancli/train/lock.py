"""One training process per run folder: a lock file holding the trainer's process id, and how the process ended.

RUN/train.lock is held with an exclusive advisory lock (flock) while a process trains into RUN; the kernel
drops it when that process dies, however it dies, so a leftover file from a killed run never blocks a resume.
The file names the pid and host for `gancli runs`. RUN/exit.json says how the last process ended.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from gancli.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no flock; fall back to asking whether the recorded process is alive
    fcntl = None

LOCK, EXIT = "train.lock", "exit.json"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


def read_lock(run_dir: Path) -> dict[str, Any] | None:
    """The lock file's record (pid, host, started) when a live process on this host holds it, else None."""
    try:
        record = json.loads((Path(run_dir) / LOCK).read_text())
        pid = int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("host") != socket.gethostname() or not process_alive(pid):
        return None
    return record


class RunLock:
    """Held while a process trains into a run folder; a second process asking for it is refused in one sentence."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._fd: int | None = None
        self._created_dir = False

    def __enter__(self) -> RunLock:
        self._created_dir = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not self._try_lock(fd):
                os.close(fd)
                holder = read_lock(self.run_dir) or {}
                who = f"process {holder['pid']}" if "pid" in holder else "another process"
                raise ConfigError(f"'{self.run_dir}' is being trained by {who} right now; wait for it to end "
                                  "or stop it before training into this folder.")
            try:  # the holder before us may have deleted the file after we opened it: lock the file at the path
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(record).encode())
        self._fd = fd
        return self

    def _try_lock(self, fd: int) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError:
                return False
        return read_lock(self.run_dir) is None

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if self._created_dir and not any(self.run_dir.iterdir()):  # a new run that failed before writing anything
            self.run_dir.rmdir()


def write_exit(run_dir: Path, status: str, message: str = "") -> None:
    """Record how the training process ended: finished, interrupted or failed (with the error's sentence)."""
    record = {"status": status, "message": message, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (Path(run_dir) / EXIT).write_text(json.dumps(record) + "\n")


def read_exit(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(run_dir) / EXIT).read_text())
    except (OSError, ValueError):
        return {}
