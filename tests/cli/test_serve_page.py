"""`gancli serve` in a real browser (Playwright on Debian's Chromium, headless): each recipe's panel gives what
gancli.api gives for the same inputs, the runs table follows a training run, and a bad upload is an error in the page.

GANCLI_SCREENSHOTS=docs python -m pytest tests/cli/test_serve_page.py  also writes the panels' screenshots there.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gancli import api

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                "(apt-get install chromium; .ci/run installs it)")
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(serve_runs, serving, tmp_path_factory):
    """A page server on a free local port: the tiny runs by name, and a folder where a run will appear (polled
    every 0.3 s)."""
    live = tmp_path_factory.mktemp("live")
    server = serving(sorted(serve_runs.iterdir()), live, poll_seconds=0.3)
    server.live = live
    return server


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, errors


def open_run(page, site, run_id: str):
    """The page on a run; returns its recipe's panel."""
    page.goto(f"{site.url}#{run_id}")
    panel = page.locator(".panel")
    panel.wait_for()
    return panel


def shown(page, selector: str, **options) -> np.ndarray:
    """The image at selector once it shows the result of these options (it may show earlier results until then)."""
    found = page.wait_for_function("""([selector, want]) => {
        const node = document.querySelector(selector);
        if (!node || !node.dataset.options) return false;
        const got = JSON.parse(node.dataset.options);
        return Object.entries(want).every(([k, v]) => JSON.stringify(got[k]) === JSON.stringify(v)) && node.src;
    }""", arg=[selector, options])
    return decoded(found.json_value())


def set_value(page, selector: str, value, event: str | None = "change") -> None:
    """Set an input's value as a user would, with the event the page listens to (None: no event yet, so that the
    next control's event sends both in one request)."""
    page.locator(selector).evaluate("(node, [value, event]) => { node.value = value; "
                                    "if (event) node.dispatchEvent(new Event(event, {bubbles: true})); }",
                                    [str(value), event])


def decoded(src: str) -> np.ndarray:
    assert src.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")).astype(int)


def grid_of(images, folder: Path, nrow=None) -> np.ndarray:
    """The grid `gancli sample` writes for images in [-1, 1], as an array."""
    from gancli.train.plots import save_grid

    return np.asarray(Image.open(save_grid(images, folder / "expected.png", nrow=nrow)).convert("RGB")).astype(int)


def assert_close(page: np.ndarray, expected: np.ndarray) -> None:
    """Pixel-equal or within one level (the issue's tolerance)."""
    assert page.shape == expected.shape, (page.shape, expected.shape)
    assert np.abs(page - expected).max() <= 1


def screenshot(locator, name: str) -> None:
    folder = os.environ.get("GANCLI_SCREENSHOTS")
    if folder:
        locator.screenshot(path=str(Path(folder) / f"serve-{name}.png"))


def test_uncond_panel_samples_what_the_api_samples(page, site, serve_runs, tmp_path):
    run = serve_runs / "uncond"
    panel = open_run(page, site, "uncond")
    first = shown(page, ".panel img", seed=0, n=16, truncation=None)
    assert_close(first, grid_of(api.sample_sheet(run, 16)[0], tmp_path))
    set_value(page, "input[name=seed]", 3, None)
    set_value(page, "input[name=n]", 4, None)
    page.check("input[name=truncate]")
    set_value(page, "input[name=truncation]", 0.5, "input")
    page_grid = shown(page, ".panel img", seed=3, n=4, truncation=0.5)
    assert_close(page_grid, grid_of(api.sample_sheet(run, 4, truncation=0.5, seed=3)[0], tmp_path))
    assert page.locator(".interpolation").count() == 0  # no interpolation verb for an unconditional run
    screenshot(panel, "uncond")


def test_biggan_panel_class_truncation_and_interpolation(page, site, serve_runs, tmp_path):
    run = serve_runs / "biggan"
    panel = open_run(page, site, "biggan")
    page.select_option("select[name=class]", "all")  # a row per class
    images, per_row = api.sample_sheet(run, 16, class_id="all", seed=0)
    assert_close(shown(page, ".panel img[alt=samples]", n=16, **{"class": "all"}), grid_of(images, tmp_path, per_row))
    set_value(page, "select[name=class]", 3, None)
    set_value(page, "input[name=seed]", 1, None)
    set_value(page, "input[name=n]", 4, None)
    set_value(page, "input[name=truncation]", 0.7, None)
    page.check("input[name=truncate]")
    grid = shown(page, ".panel img[alt=samples]", seed=1, n=4, truncation=0.7, **{"class": "3"})
    assert_close(grid, grid_of(api.sample_sheet(run, 4, class_id="3", truncation=0.7, seed=1)[0], tmp_path))
    set_value(page, "select[name=mode]", "class", None)
    set_value(page, "input[name=rows]", 1, None)
    set_value(page, "input[name=steps]", 4)
    strip = shown(page, "img[alt=interpolation]", mode="class", rows=1, steps=4, seed=1, truncation=0.7)
    assert_close(strip, grid_of(api.interpolate(run, "class", rows=1, steps=4, truncation=0.7, seed=1), tmp_path, 4))
    screenshot(panel, "biggan")


def test_spade_panel_paints_a_map_and_synthesizes_it_with_styles(page, site, serve_runs, tmp_path):
    from gancli.data.scenes import PALETTE

    run = serve_runs / "spade"
    panel = open_run(page, site, "spade")
    canvas = page.locator("#painter")
    page.click(".swatch[data-id='2']")
    page.click(".tool[data-tool=fill]")
    canvas.click(position={"x": 10, "y": 10})
    page.click(".swatch[data-id='5']")
    page.click(".tool[data-tool=brush]")
    set_value(page, "input[name=brush]", 8, "input")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    photos = page.locator("img.photo")
    shown(page, "img.photo", edits=2, seed=0, styles=2)
    assert photos.count() == 2
    with page.expect_download() as download:
        page.click(".save-map")
    saved = tmp_path / "map.png"
    download.value.save_as(saved)
    colours = np.asarray(Image.open(saved).convert("RGB"))
    ids = (colours[:, :, None, :] == PALETTE.numpy()[None, None]).all(-1).argmax(-1)
    assert set(np.unique(ids)) == {2, 5} and ids[16, 16] == 5 and ids[0, 0] == 2 and ids[16, 4] == 2
    files = api.synthesize(run, [saved], tmp_path / "api", palette=True, n_styles=2, seed=0)
    for k, file in enumerate(files):
        assert_close(decoded(photos.nth(k).get_attribute("src")), np.asarray(Image.open(file)).astype(int))
    screenshot(panel, "spade")


def _face(path: Path) -> Path:
    """A 40×40 picture: a red disc on a dark background."""
    y, x = np.mgrid[:40, :40]
    picture = np.full((40, 40, 3), 30, np.uint8)
    picture[(y - 20) ** 2 + (x - 20) ** 2 < 150] = (220, 40, 40)
    Image.fromarray(picture).save(path)
    return path


def test_stargan_panel_toggles_attributes_as_the_api_translates(page, site, serve_runs, tmp_path):
    run = serve_runs / "stargan"
    face = _face(tmp_path / "face.png")
    panel = open_run(page, site, "stargan")
    page.set_input_files(".panel input[type=file]", face)
    overview = shown(page, "img[alt='each change alone']", attrs={})
    both = api.translate(run, [face], {}, out=tmp_path / "grid", grid=True)
    assert_close(overview, np.asarray(Image.open(both.grid)).astype(int))
    red = page.locator("input[name=Red]")
    red.wait_for(state="visible")
    assert red.is_enabled() and red.is_checked() == (both.sources[0]["Red"] == 1)
    red.click()
    value = 0 if both.sources[0]["Red"] == 1 else 1
    translated = shown(page, "img[alt=translation]", attrs={"Red": value})
    expected = api.translate(run, [face], {"Red": 1 if value else -1}, out=tmp_path / "one").outputs[0]
    assert_close(translated, np.asarray(Image.open(expected)).astype(int))
    screenshot(panel, "stargan")


def test_sr_panel_upscales_and_a_bad_upload_is_an_error_then_the_next_works(page, site, serve_runs, tmp_path):
    from gancli.data.images import load_image

    run = serve_runs / "sr"
    panel = open_run(page, site, "sr")
    bad = tmp_path / "notes.png"
    bad.write_text("these are notes, not pixels")
    page.set_input_files(".panel input[type=file]", bad)
    error = panel.locator(".error")
    error.wait_for(state="visible")
    assert "The image 'notes.png' is not an image" in error.inner_text()
    photo = tmp_path / "photo.png"
    y, x = np.mgrid[:12, :16]
    Image.fromarray(np.stack([x * 16, y * 20, 255 - x * 8], -1).astype(np.uint8)).save(photo)  # smooth colours
    page.set_input_files(".panel input[type=file]", photo)
    upscaled = shown(page, "img[alt=upscaled]", name="photo.png")
    assert error.is_hidden()
    expected = api.load(run, verb="upscale").upscale(load_image(photo)).permute(1, 2, 0).numpy().astype(int)
    assert_close(upscaled, expected)
    link = page.locator("a.download")
    assert link.get_attribute("download") == "photo_x4.png"
    assert link.get_attribute("href") == page.locator("img[alt=upscaled]").get_attribute("src")
    set_value(page, ".compare-bar", 20, "input")
    assert "20%" in page.locator("img[alt=upscaled]").evaluate("node => node.style.clipPath")
    screenshot(panel, "sr")


def test_the_runs_table_follows_a_training_run_without_a_reload(page, site):
    # a training subprocess imports gancli and torch first: on a loaded 2-core CI machine that alone took over 60 s
    page.set_default_timeout(4 * WAIT_MS)
    page.goto(site.url)
    page.locator("#runs-table tbody tr").first.wait_for()
    flags = ["--resolution", "32", "--width", "0.125", "--batch-size", "4", "--z-dim", "8", "--n-samples", "4",
             "--steps", "12", "--log-every", "1", "--sample-every", "4", "--ckpt-every", "4", "--eval-every", "0",
             "--no-tensorboard", "--device", "cpu"]
    training = subprocess.Popen([sys.executable, "-m", "gancli", "train", "uncond", "--out", str(site.live / "live"),
                                 *flags], env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        row = page.locator("tr[data-run=live]")
        row.click()  # waits for the row to appear
        status, step = row.locator(".status"), row.locator(".step")
        page.wait_for_function("() => document.querySelector('tr[data-run=live] .status').textContent"
                               ".startsWith('running')")
        first = step.inner_text()
        page.wait_for_function("first => document.querySelector('tr[data-run=live] .step').textContent !== first",
                               arg=first)
        if os.environ.get("GANCLI_SCREENSHOTS"):  # while it trains, once its panel shows a checkpoint's samples
            page.wait_for_function("() => document.querySelector('.panel').dataset.state === 'done' || document"
                                   ".querySelector('tr[data-run=live] .status').textContent === 'finished'")
            screenshot(page.locator("main"), "runs")
        page.wait_for_function("() => document.querySelector('tr[data-run=live] .status').textContent === 'finished'")
        assert training.wait(240) == 0, training.stderr.read()
    finally:
        training.kill()
    assert step.inner_text() == "12 / 12" and status.inner_text() == "finished"
    page.wait_for_function("() => document.querySelector('#sample-step').textContent === 'step 12 (3 grids)'")
    points = page.locator("svg[data-key='G/loss'] polyline").get_attribute("points")
    assert len(points.split()) == 12  # every logged step once, drawn as it came
    # the panel, opened before the first checkpoint ("no checkpoints"), samples again as checkpoints come
    page.wait_for_function("() => document.querySelector('.panel').dataset.state === 'done'")
    assert page.locator(".panel .error").is_hidden() and page.locator(".panel img").is_visible()
