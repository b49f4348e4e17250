// Each recipe's panel: its verbs' controls, sent to the server, and the images it answers with.
// A panel's data-state is busy, done or error; an output's data-options are the options of the image it shows.
import { callVerb, dropZone, el, latestOnly, readUpload, showError } from "./dom.js";
import { paintPanel } from "./paint.js";

// A panel with a title, an error line, and run(verb, options, show) that calls the server and reports.
export function panel(title, runId) {
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const node = el("div", { class: "panel", "data-state": "idle" }, el("h3", {}, title), error);
  const run = async (verb, options, show) => {
    node.dataset.state = "busy";
    node.classList.add("busy");
    try {
      show(await callVerb(runId, verb, options));
      showError(error, "");
      node.dataset.state = "done";
    } catch (problem) {
      showError(error, problem.message);
      node.dataset.state = "error";
    } finally {
      node.classList.remove("busy");
    }
  };
  return { node, run };
}

const option = (value, text) => el("option", { value }, text);
const number = (name, value, min, max) => el("input", { type: "number", name, value, min, max });
const labelled = (text, input) => el("label", {}, text, input);
// An image with a caption, both hidden until the image has something to show.
function figure(img, caption) {
  const node = el("figure", { hidden: true }, img, el("figcaption", {}, caption));
  const follow = new MutationObserver(() => { node.hidden = img.hidden; });
  follow.observe(img, { attributes: true, attributeFilter: ["hidden"] });
  return node;
}

function showImage(img, answer, options) {
  img.src = answer.image;
  img.dataset.options = JSON.stringify(options);
  img.hidden = false;
}

// uncond / biggan: seed, count, class, truncation → a grid; biggan also interpolation strips.
function samplerPanel(runId, info) {
  const { node, run } = panel("Sample", runId);
  const seed = number("seed", 0, 0), count = number("n", 16, 1, 64);
  const classes = Array.from({ length: info.classes }, (_, c) => option(String(c), `class ${c}`));
  const klass = info.classes ? el("select", { name: "class" }, option("", "classes in turn"),
    option("all", "a row per class"), ...classes) : null;
  const truncate = el("input", { type: "checkbox", name: "truncate" });
  const threshold = el("input", { type: "range", name: "truncation", min: 0.05, max: 2, step: 0.05, value: 1 });
  const shown = el("output", {}, "1.00");
  const grid = el("img", { class: "output-image", alt: "samples", hidden: true });
  const common = () => ({ seed: Number(seed.value), truncation: truncate.checked ? Number(threshold.value) : null });
  const sample = latestOnly(() => {
    const options = { ...common(), n: Number(count.value), class: klass ? klass.value : "" };
    return run("sample", options, (answer) => showImage(grid, answer, options));
  });
  threshold.addEventListener("input", () => {
    shown.textContent = Number(threshold.value).toFixed(2);
    if (truncate.checked) sample();
  });
  for (const input of [seed, count, klass, truncate]) if (input) input.addEventListener("change", sample);
  node.append(el("div", { class: "controls" }, labelled("seed", seed), labelled("images", count),
    klass ? labelled("class", klass) : null,
    info.truncation ? el("label", {}, truncate, "truncation", threshold, shown) : null,
    el("button", { type: "button", onclick: sample }, "Sample")), el("div", { class: "outputs" }, grid));
  if (info.verbs.includes("interpolate")) node.append(interpolation(run, common, klass));
  node.refresh = sample;
  sample();
  return node;
}

function interpolation(run, common, klass) {
  const mode = el("select", { name: "mode" }, option("z", "between two latents"),
    option("class", "between two classes"));
  const rows = number("rows", 2, 1, 8), steps = number("steps", 8, 2, 16);
  const strip = el("img", { class: "strip", alt: "interpolation", hidden: true });
  const go = latestOnly(() => {
    const fixed = mode.value === "z" && /^\d+$/.test(klass.value) ? klass.value : "";  // a latent walk may keep a class
    const options = { ...common(), mode: mode.value, rows: Number(rows.value), steps: Number(steps.value),
      class: fixed };
    return run("interpolate", options, (answer) => showImage(strip, answer, options));
  });
  for (const input of [mode, rows, steps]) input.addEventListener("change", go);
  return el("div", { class: "interpolation" }, el("h3", {}, "Interpolation"),
    el("div", { class: "controls" }, labelled("walk", mode), labelled("strips", rows), labelled("steps", steps),
      el("button", { type: "button", onclick: go }, "Interpolate")), el("div", { class: "outputs" }, strip));
}

// stargan: a face, a toggle per attribute (set to what the critic reads in the face) → the translation.
function translatePanel(runId, info) {
  const { node, run } = panel("Translate attributes", runId);
  const names = info.translate.attributes;
  let face = null, read = {};
  const preview = el("img", { class: "output-image", alt: "face", hidden: true });
  const result = el("img", { class: "output-image", alt: "translation", hidden: true });
  const overview = el("img", { class: "strip", alt: "each change alone", hidden: true });
  const toggles = names.map((name) => el("input", { type: "checkbox", name, disabled: true }));
  const changes = () => Object.fromEntries(toggles.filter((t) => Number(t.checked) !== read[t.name])
    .map((t) => [t.name, Number(t.checked)]));
  const translate = latestOnly(() => {
    const attrs = changes();
    if (!Object.keys(attrs).length) { result.hidden = true; return Promise.resolve(); }
    return run("translate", { image: face, attrs }, (answer) => showImage(result, answer, { attrs }));
  });
  const open = async (file) => {
    face = await readUpload(file);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    result.hidden = true;
    await run("translate", { image: face, attrs: {} }, (answer) => {
      read = answer.sources;
      toggles.forEach((t) => { t.checked = read[t.name] === 1; t.disabled = false; });
      showImage(overview, answer, { attrs: {} });
    });
  };
  toggles.forEach((t) => t.addEventListener("change", translate));
  node.refresh = translate;
  node.append(el("div", { class: "controls" }, dropZone("Drop a face here, or click to choose one", open)),
    el("div", { class: "toggles" }, ...toggles.map((t) => el("label", {}, t, t.name))),
    el("div", { class: "outputs" }, figure(preview, "input"), figure(result, "translated")),
    el("h3", {}, "Each attribute changed alone"), el("div", { class: "outputs" }, overview));
  return node;
}

// sr: an image → upscaled, with a before/after slider and a download.
function upscalePanel(runId, info) {
  const { node, run } = panel(`Upscale ×${info.upscale.scale}`, runId);
  const before = el("img", { alt: "before" }), after = el("img", { class: "after", alt: "upscaled" });
  const bar = el("input", { type: "range", class: "compare-bar", min: 0, max: 100, value: 50,
    "aria-label": "before / after",
    oninput: () => { after.style.clipPath = `inset(0 0 0 ${bar.value}%)`; } });
  const download = el("a", { class: "download", hidden: true }, "Download the upscaled PNG");
  const view = el("div", { hidden: true }, el("div", { class: "compare" }, before, after), bar,
    el("p", { class: "muted" }, "◀ input (resized by the browser) · upscaled ▶ "), download);
  let last = null;
  const open = async (file) => {
    last = file;
    const image = await readUpload(file);
    await run("upscale", { image }, (answer) => {
      before.src = URL.createObjectURL(file);
      showImage(after, answer, { name: file.name });
      Object.assign(download, { href: answer.image, download: answer.download, hidden: false });
      view.hidden = false;
    });
  };
  node.append(el("div", { class: "controls" }, dropZone("Drop an image here, or click to choose one", open)), view);
  node.refresh = () => last && open(last);
  return node;
}

export function buildPanel(runId, info) {
  if (info.synthesize) return paintPanel(runId, info, panel);
  if (info.translate) return translatePanel(runId, info);
  if (info.upscale) return upscalePanel(runId, info);
  return samplerPanel(runId, info);
}
