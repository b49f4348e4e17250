"""The Starlette application: the page, the runs as JSON, and the verbs (imported only with the serve extra)."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request as HttpRequest
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from gancli import api
from gancli.errors import GancliError
from gancli.serve.catalog import RunCatalog, UnknownRun
from gancli.serve.verbs import VERBS, Limits, Request, byte_count

STATIC = Path(__file__).parent / "static"
FILES = {"page.js": "text/javascript", "dom.js": "text/javascript", "panels.js": "text/javascript",
         "paint.js": "text/javascript",
         "style.css": "text/css"}  # all the page is; nothing else of the disk is served


class TooLarge(GancliError):
    """A request body over the server's limit."""


def _finite(value: Any) -> Any:
    """JSON that browsers parse: NaN and infinities (a diverged loss) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _os_message(exc: OSError) -> str:
    """A file that went away under the server (a run folder removed while it was read), in one sentence."""
    if exc.filename is None:
        return f"{exc.strerror or exc}."
    return f"Cannot read '{exc.filename}': {exc.strerror or exc}."


def reply(content: Any, status: int = 200) -> Response:
    return JSONResponse(_finite(content), status_code=status, headers={"Cache-Control": "no-store"})


def _error(status: int, message: str) -> Response:
    return reply({"error": message}, status)


async def _body(request: HttpRequest, cap: int) -> bytes:
    """The request body, refused as soon as it passes cap bytes."""
    too_large = TooLarge(f"The request is larger than this server takes ({byte_count(cap)}).")
    if int(request.headers.get("content-length") or 0) > cap:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class Site:
    """The endpoints over a catalog of runs; every file a verb reads or writes lives in a request folder under temp."""

    def __init__(self, catalog: RunCatalog, temp: Path, limits: Limits, device: str, poll_seconds: float):
        self.catalog, self.temp, self.limits = catalog, temp, limits
        self.device, self.poll_seconds = device, poll_seconds
        self.busy = threading.Lock()  # one verb at a time: each one fills the cores by itself
        self.body_cap = 3 * limits.upload_bytes + 2**16  # two uploads (label map and style) in base64, and options

    async def index(self, request: HttpRequest) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def static(self, request: HttpRequest) -> Response:
        name = request.path_params["name"]
        if name not in FILES:
            return _error(404, f"There is no file '{name}' here.")
        return FileResponse(STATIC / name, media_type=FILES[name], headers={"Cache-Control": "no-store"})

    async def no_icon(self, request: HttpRequest) -> Response:
        return Response(status_code=204)

    def runs(self, request: HttpRequest) -> Response:
        rows, problem = self.catalog.rows()
        return reply({"runs": rows, "problem": problem, "poll_seconds": self.poll_seconds})

    def run_info(self, request: HttpRequest) -> Response:
        return reply(api.verb_inputs(self.catalog.path(request.path_params["run"])))

    def records(self, request: HttpRequest) -> Response:
        path = self.catalog.path(request.path_params["run"])
        start = request.query_params.get("start", "0")
        start = int(start) if start.isdigit() else 0
        found = api.run_records(path, start)
        return reply({"records": found, "next": start + len(found), "grids": list(api.sample_grids(path))})

    def grid(self, request: HttpRequest) -> Response:
        step = request.path_params["step"]
        file = api.sample_grids(self.catalog.path(request.path_params["run"])).get(step)
        if file is None:
            return _error(404, f"The run has no sample grid of step {step}.")
        return FileResponse(file, media_type="image/png")

    def call(self, name: str, path: Path, params: dict[str, Any]) -> Response:
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.temp))
        req = Request(folder, self.limits)
        try:
            with self.busy:
                return reply(VERBS[name](path, req, params, self.device))
        except GancliError as exc:
            return _error(400, req.explain(exc))
        except OSError as exc:  # a run folder removed while it was read
            return _error(400, req.explain(_os_message(exc)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def verb(self, request: HttpRequest) -> Response:
        name = request.path_params["verb"]
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            # a JSON body makes another site's page ask first (CORS preflight), which this server never grants
            return _error(415, "Verbs take a JSON body (Content-Type: application/json).")
        if name not in VERBS:
            return _error(404, f"There is no verb '{name}'; there are {', '.join(VERBS)}.")
        path = self.catalog.path(request.path_params["run"])
        try:
            params = json.loads(await _body(request, self.body_cap) or b"{}")
        except ValueError:
            return _error(400, "The request is not JSON.")
        if not isinstance(params, dict):
            return _error(400, "The request must be a JSON object.")
        return await run_in_threadpool(self.call, name, path, params)

    def routes(self) -> list[Route]:
        return [Route("/", self.index), Route("/favicon.ico", self.no_icon), Route("/static/{name}", self.static),
                Route("/api/runs", self.runs), Route("/api/runs/{run}", self.run_info),
                Route("/api/runs/{run}/records", self.records),
                Route("/api/runs/{run}/samples/{step:int}.png", self.grid),
                Route("/api/runs/{run}/verbs/{verb}", self.verb, methods=["POST"])]


async def _user_error(request: HttpRequest, exc: Exception) -> Response:
    if isinstance(exc, OSError):
        return _error(400, _os_message(exc))
    return _error(404 if isinstance(exc, UnknownRun) else 413 if isinstance(exc, TooLarge) else 400, str(exc))


async def _bug(request: HttpRequest, exc: Exception) -> Response:  # uvicorn logs the traceback
    return _error(500, f"The server failed on this request ({exc.__class__.__name__}: {exc}); it keeps serving.")


def create_app(catalog: RunCatalog, temp: Path, *, limits: Limits = Limits(), device: str = "cpu",
               poll_seconds: float = 2.0, hosts: tuple[str, ...] = ("*",)) -> Starlette:
    """The app serving catalog's runs (by id), writing only under temp, to requests addressed to one of hosts."""
    site = Site(catalog, temp, limits, device, poll_seconds)
    # a page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) sends its name as the Host: refused
    return Starlette(routes=site.routes(), middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))],
                     exception_handlers={GancliError: _user_error, OSError: _user_error, Exception: _bug})
