"""`gancli serve` without a browser: the extra, the command's errors, and the server's limits and refusals over HTTP."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra (pip install 'gancli[serve]') is not installed")


def http(url: str, body: dict | None = None, raw: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict | bytes]:
    """(status, JSON or bytes) of a GET, or a POST of JSON (or raw bytes)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, payload, kind = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        status, payload, kind = error.code, error.read(), error.headers.get("Content-Type", "")
    return status, json.loads(payload) if "json" in kind else payload


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def upload(data: bytes, name: str = "photo.png") -> dict:
    return {"name": name, "data": base64.b64encode(data).decode()}


def test_without_the_extra_serve_names_it_in_one_sentence(cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if not installed: find_spec says None
    result = cli("serve", "--runs", tmp_path)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "pip install 'gancli[serve]'" in text and "Traceback" not in text


def test_the_cli_does_not_load_the_server_libraries():
    code = "import sys, gancli.cli; print(sorted(m for m in ('starlette', 'uvicorn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_serve_says_where_and_warns_off_the_loopback(cli, monkeypatch, serve_runs):
    from gancli.serve import PageServer

    monkeypatch.setattr(PageServer, "run", lambda self: self.socket.close())  # bound, then gone at once
    result = cli("serve", "--runs", serve_runs, "--port", 0)
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and f"Serving the runs in {serve_runs} at http://127.0.0.1:" in text, text
    assert "anyone who can reach" not in text
    result = cli("serve", serve_runs / "sr", serve_runs / "spade", "--host", "0.0.0.0", "--port", 0)
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "Serving 2 runs at http://0.0.0.0:" in text and "anyone who can reach" in text


def test_verb_inputs_tell_a_client_what_each_recipe_takes(serve_runs):
    from gancli import api
    from gancli.data.scenes import PALETTE

    inputs = {recipe: api.verb_inputs(serve_runs / recipe) for recipe in ("uncond", "biggan", "spade", "stargan", "sr")}
    assert [inputs[r]["recipe"] for r in inputs] == list(inputs)
    uncond = inputs["uncond"]
    assert uncond["classes"] == 0 and uncond["truncation"] and uncond["verbs"] == ["sample"]
    assert inputs["biggan"]["classes"] == 10 and "interpolate" in inputs["biggan"]["verbs"]
    assert inputs["spade"]["synthesize"] == {"label_nc": 8, "size": [32, 32], "styles": True,
                                             "palette": PALETTE.tolist()}
    assert inputs["stargan"]["translate"]["attributes"] == inputs["stargan"]["config"]["attrs"]
    assert inputs["sr"]["upscale"] == {"scale": 4} and inputs["sr"]["config"]["hr_size"] == 32


def test_bad_folders_and_a_port_in_use_are_one_sentence(cli, tmp_path, serve_runs):
    result = cli("serve", tmp_path)
    assert result.exit_code == 1 and "is not a gancli run folder" in result.output
    result = cli("serve", "--runs", tmp_path / "absent")
    assert result.exit_code == 1 and "does not exist" in result.output
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = cli("serve", serve_runs / "uncond", "--port", port)
    assert result.exit_code == 1 and f"Cannot listen on 127.0.0.1:{port}" in " ".join(result.output.split())


def test_only_the_given_runs_by_id_and_no_other_file(serving, serve_runs):
    server = serving([serve_runs / "uncond", serve_runs / "sr"])
    status, answer = http(server.url + "api/runs")
    assert status == 200 and [row["id"] for row in answer["runs"]] == ["uncond", "sr"]
    assert {row["status"] for row in answer["runs"]} == {"finished"}
    for path in ["api/runs/biggan", "api/runs/..%2Fbiggan/records", "api/runs/uncond/samples/..%2F..%2Fconfig.toml",
                 "static/..%2F__init__.py", "static/app.py", "static/%2Fetc%2Fpasswd", "api/runs/%2Ftmp/records"]:
        status, answer = http(server.url + path)
        assert status == 404, (path, status, answer)
    status, answer = http(server.url + "api/runs/uncond/verbs/sample", {"n": 1})
    assert status == 200 and answer["image"].startswith("data:image/png;base64,")
    status, answer = http(server.url + "api/runs/uncond/verbs/sample", {"n": 1}, headers={"Content-Type": "text/plain"})
    assert status == 415  # what another site's page may send without asking first
    status, answer = http(server.url + "api/runs", headers={"Host": "rebound.example:8000"})
    assert status == 400 and answer == b"Invalid host header"
    assert http(server.url.replace("127.0.0.1", "localhost") + "api/runs")[0] == 200
    status, answer = http(server.url + "api/runs/uncond/records?start=1")
    assert status == 200 and answer["next"] == 1 + len(answer["records"]) and answer["grids"] == [1, 2]
    status, grid = http(server.url + "api/runs/uncond/samples/2.png")
    assert status == 200 and grid == (serve_runs / "uncond/samples/step_00000002.png").read_bytes()


def test_uploads_have_a_byte_and_a_pixel_limit_and_bad_ones_are_named(serving, serve_runs, listing):
    from gancli.serve import Limits

    before = listing(serve_runs)
    server = serving([serve_runs / "sr"], limits=Limits(upload_bytes=4000, pixels=40 * 40))
    url = server.url + "api/runs/sr/verbs/upscale"
    cases = [
        ({"image": upload(b"not an image", "notes.png")}, 400, "The image 'notes.png' is not an image"),
        ({"image": upload(png(np.zeros((41, 40, 3), np.uint8)), "big.png")}, 400, "'big.png' is 40×41 pixels"),
        ({"image": upload(np.random.default_rng(0).bytes(4001), "huge.png")}, 400,
         "'huge.png' is 4,001 bytes; this server takes uploads of at most 4,000 bytes"),
        ({"image": {"name": "x.png", "data": "%%%"}}, 400, "did not arrive as base64"),
        ({}, 400, "No image was sent"),
    ]
    for body, status, message in cases:
        got, answer = http(url, body)
        assert got == status and message in answer["error"], (body.keys(), got, answer)
    got, answer = http(url, raw=b"x" * (3 * 4000 + 2**16 + 1))
    assert got == 413 and "larger than this server takes" in answer["error"]
    got, answer = http(url, raw=b"{not json")
    assert got == 400 and answer["error"] == "The request is not JSON."
    got, answer = http(url, {"image": upload(png(np.zeros((10, 12, 3), np.uint8)), "small.png")})
    assert got == 200 and answer["download"] == "small_x4.png"
    image = Image.open(io.BytesIO(base64.b64decode(answer["image"].split(",", 1)[1])))
    assert image.size == (48, 40)
    assert listing(serve_runs) == before  # nothing written into the runs


def test_bad_options_and_a_run_folder_that_disappears(serving, serve_runs, tmp_path):
    shutil.copytree(serve_runs / "biggan", tmp_path / "doomed")
    server = serving([tmp_path / "doomed"])
    url = server.url + "api/runs/doomed/verbs/sample"
    for body, message in [({"class": "12"}, "Class 12 is out of range"), ({"n": 0}, "'n' must be between 1 and 64"),
                          ({"truncation": "x"}, "'truncation' must be a number"), ({"seed": "1.5"}, "whole number")]:
        status, answer = http(url, body)
        assert status == 400 and message in answer["error"], (body, answer)
    assert http(url, {"n": 2, "class": "3", "truncation": 0.5})[0] == 200
    status, answer = http(server.url + "api/runs/doomed/verbs/paint", {})
    assert status == 404 and "There is no verb 'paint'" in answer["error"]
    shutil.rmtree(tmp_path / "doomed")
    status, answer = http(url, {"n": 2})
    assert status == 400 and "is gone" in answer["error"]
    status, answer = http(server.url + "api/runs")
    assert status == 200 and answer["runs"][0]["status"] == "missing"


def test_a_request_that_fails_is_an_error_and_the_server_keeps_serving(serving, serve_runs, monkeypatch):
    from gancli import api

    server = serving([serve_runs / "uncond"])

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(api, "run_records", broken)
    status, answer = http(server.url + "api/runs/uncond/records")
    assert status == 500 and answer["error"] == ("The server failed on this request (RuntimeError: a bug); it keeps "
                                                 "serving.")
    monkeypatch.undo()
    assert http(server.url + "api/runs/uncond/records")[0] == 200
