// spade: paint a label map with the run's palette (a brush per label, fill, erase) or drop one → the synthesized
// photo (several styles with the VAE).
import { dropZone, el, latestOnly, readUpload } from "./dom.js";

// The run's palette, or distinct made-up colours for labels without one (ADE20K); only the ids are sent.
function colours(info) {
  const given = info.synthesize.palette;
  if (given) return given;
  return Array.from({ length: info.synthesize.label_nc }, (_, i) => {
    const hue = (i * 137.508) % 360, c = document.createElement("canvas").getContext("2d");
    c.fillStyle = `hsl(${hue} 60% ${40 + (i % 3) * 12}%)`;
    c.fillRect(0, 0, 1, 1);
    return Array.from(c.getImageData(0, 0, 1, 1).data.slice(0, 3));
  });
}

// The map: one id per pixel, drawn into the canvas in the palette's colours (no smoothing, so colours stay exact).
class LabelMap {
  constructor(width, height, palette) {
    Object.assign(this, { width, height, palette, ids: new Uint8Array(width * height) });
    this.canvas = el("canvas", { id: "painter", class: "pixels", width, height });
  }

  draw() {
    const image = new ImageData(this.width, this.height);
    this.ids.forEach((id, i) => { image.data.set([...this.palette[id], 255], 4 * i); });
    this.canvas.getContext("2d").putImageData(image, 0, 0);
  }

  stamp(x, y, size, id) {
    const r = Math.floor(size / 2);
    for (let v = Math.max(0, y - r); v < Math.min(this.height, y - r + size); v++)
      this.ids.fill(id, v * this.width + Math.max(0, x - r), v * this.width + Math.min(this.width, x - r + size));
  }

  line(from, to, size, id) {
    const n = Math.max(1, Math.abs(to[0] - from[0]), Math.abs(to[1] - from[1]));
    const along = (a, b, k) => Math.round(a + ((b - a) * k) / n);
    for (let k = 0; k <= n; k++) this.stamp(along(from[0], to[0], k), along(from[1], to[1], k), size, id);
  }

  fill(x, y, id) {  // the 4-connected region of (x, y)'s id
    const old = this.ids[y * this.width + x];
    if (old === id) return;
    const stack = [y * this.width + x];
    while (stack.length) {
      const i = stack.pop();
      if (this.ids[i] !== old) continue;
      this.ids[i] = id;
      const px = i % this.width;
      if (px > 0) stack.push(i - 1);
      if (px < this.width - 1) stack.push(i + 1);
      if (i >= this.width) stack.push(i - this.width);
      if (i < this.ids.length - this.width) stack.push(i + this.width);
    }
  }

  pixel(event) {
    const box = this.canvas.getBoundingClientRect();
    return [Math.min(this.width - 1, Math.floor(((event.clientX - box.left) / box.width) * this.width)),
      Math.min(this.height - 1, Math.floor(((event.clientY - box.top) / box.height) * this.height))];
  }

  sent() {
    let text = "";
    for (let i = 0; i < this.ids.length; i += 8192) text += String.fromCharCode(...this.ids.subarray(i, i + 8192));
    return { width: this.width, height: this.height, ids: btoa(text) };
  }
}

function painter(map, onDone) {
  const state = { id: 1, tool: "brush", size: 4, last: null };
  const palette = el("div", { class: "swatches" }, ...map.palette.map((rgb, id) => el("button", {
    type: "button", class: "swatch", "data-id": id, title: `label ${id}`, style: `background: rgb(${rgb.join(",")})`,
    onclick: (event) => { state.id = id; choose(event.currentTarget, ".swatch"); } }, String(id))));
  const tools = ["brush", "fill", "erase"].map((tool) => el("button", {
    type: "button", class: "tool", "data-tool": tool,
    onclick: (event) => { state.tool = tool; choose(event.currentTarget, ".tool"); } }, tool));
  const size = el("input", { type: "range", name: "brush", min: 1, max: 16, value: state.size,
    oninput: () => { state.size = Number(size.value); } });
  const box = el("div", {}, palette, el("div", { class: "controls" }, ...tools, el("label", {}, "brush size", size)));
  function choose(button, kind) {
    box.querySelectorAll(kind).forEach((b) => b.classList.toggle("chosen", b === button));
  }
  const label = () => (state.tool === "erase" ? 0 : state.id);  // erasing paints label 0, the background id
  map.canvas.addEventListener("pointerdown", (event) => {
    const at = map.pixel(event);
    if (state.tool === "fill") { map.fill(at[0], at[1], label()); map.draw(); onDone(); return; }
    map.canvas.setPointerCapture(event.pointerId);
    state.last = at;
    map.stamp(at[0], at[1], state.size, label());
    map.draw();
  });
  map.canvas.addEventListener("pointermove", (event) => {
    if (!state.last) return;
    const at = map.pixel(event);
    map.line(state.last, at, state.size, label());
    state.last = at;
    map.draw();
  });
  const end = () => { if (state.last) { state.last = null; onDone(); } };
  map.canvas.addEventListener("pointerup", end);
  map.canvas.addEventListener("pointercancel", end);
  choose(palette.children[Math.min(1, map.palette.length - 1)], ".swatch");
  choose(tools[0], ".tool");
  return box;
}

export function paintPanel(runId, info, panel) {
  const { node, run } = panel("Paint a label map", runId);
  const [height, width] = info.synthesize.size, styles = info.synthesize.styles;
  const map = new LabelMap(width, height, colours(info));
  const seed = el("input", { type: "number", name: "seed", value: 0, min: 0 });
  const count = el("input", { type: "number", name: "styles", value: styles ? 2 : 1, min: 1, max: 8,
    disabled: !styles });
  const photos = el("div", { class: "outputs" });
  let style = null;
  const show = (options) => (answer) => {
    photos.replaceChildren(...answer.images.map((src) => el("img", { class: "output-image photo", src,
      "data-options": JSON.stringify(options) })));
  };
  const common = () => ({ seed: Number(seed.value), styles: Number(count.value), style });
  let edits = 0;  // shown with the photos, so one can tell which map they are of
  const synthesize = latestOnly(() => {
    const options = common(), shown = { seed: options.seed, styles: options.styles, edits };
    return run("synthesize", { ...options, painted: map.sent() }, show(shown));
  });
  const save = el("a", { class: "save-map", download: "label_map.png", href: "#",
    onclick: () => { save.href = map.canvas.toDataURL("image/png"); } }, "Save the map (palette colours)");
  const upload = dropZone("Or drop a label map (ids, or the palette's colours)", async (file) => {
    const options = common();
    const labels = await readUpload(file);
    await run("synthesize", { ...options, labels }, show({ seed: options.seed, file: file.name }));
  });
  const styleZone = styles ? dropZone("Style photo (optional)", async (file) => {
    style = await readUpload(file);
    synthesize();
  }) : null;
  for (const input of [seed, count]) input.addEventListener("change", synthesize);
  map.draw();
  node.append(el("div", { class: "controls" }, painter(map, () => { edits += 1; synthesize(); })),
    el("div", { class: "outputs" }, el("div", {}, map.canvas, el("div", {}, save)), photos),
    el("div", { class: "controls" }, el("label", {}, "seed", seed), el("label", {}, "styles", count), styleZone, upload,
      el("button", { type: "button", onclick: synthesize }, "Synthesize")));
  node.refresh = synthesize;
  synthesize();
  return node;
}
