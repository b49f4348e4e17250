"""`gancli serve`: a local web page over gancli.api, to watch runs and use their verbs (the serve extra)."""

from __future__ import annotations

import importlib.util
import socket
import tempfile
from pathlib import Path

from gancli.errors import ConfigError
from gancli.serve.catalog import RunCatalog
from gancli.serve.verbs import Limits

__all__ = ["PageServer", "Limits", "RunCatalog", "require_extra"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def require_extra() -> None:
    """One sentence naming the extra when its server libraries are not installed."""
    if any(importlib.util.find_spec(name) is None for name in ("starlette", "uvicorn")):
        raise ConfigError("`gancli serve` needs the serve extra (Starlette and uvicorn): pip install 'gancli[serve]'.")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"Cannot listen on {host}:{port} ({reason}); choose another --port or --host.") from None


class PageServer:
    """The page's server on a bound socket (port 0: a free one); run() serves until stop() or Ctrl-C."""

    def __init__(self, runs: list[Path], runs_dir: Path | None = None, *, host: str = "127.0.0.1", port: int = 8000,
                 device: str = "auto", limits: Limits = Limits(), poll_seconds: float = 2.0):
        require_extra()
        import uvicorn

        from gancli.device import resolve_device
        from gancli.serve.app import create_app

        catalog = RunCatalog(runs, runs_dir)
        self.runs_dir = catalog.runs_dir
        device = str(resolve_device(device))
        self.socket = _listen(host, port)
        self._temp = tempfile.TemporaryDirectory(prefix="gancli-serve-")  # every upload and output, nowhere else
        hosts = LOOPBACK + ("[::1]",) if host in LOOPBACK else ("*",)  # who chose another address chose its names
        app = create_app(catalog, Path(self._temp.name), limits=limits, device=device, poll_seconds=poll_seconds,
                         hosts=hosts)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        bound = self.socket.getsockname()
        self.url = f"http://{f'[{bound[0]}]' if ':' in bound[0] else bound[0]}:{bound[1]}/"
        self.exposed = host not in LOOPBACK

    @property
    def started(self) -> bool:
        return self.server.started

    def run(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()
            self._temp.cleanup()

    def stop(self) -> None:
        self.server.should_exit = True
