// The runs table and the chosen run (its recipe's panel, curves, sample grids, config), kept live by polling.
import { el, getJSON, showError } from "./dom.js";
import { buildPanel } from "./panels.js";

const $ = (id) => document.getElementById(id);
const view = { id: null, records: [], next: 0, grids: [], checkpoint: undefined, poll: 2 };

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.round(seconds), pad = (v) => String(v).padStart(2, "0");
  return `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
}

function runRow(row) {
  const best = row.best ? `${row.best.metric} ${Number(row.best.value).toPrecision(4)} @ ${row.best.step}` : "-";
  const status = row.status + (row.pid ? ` (pid ${row.pid})` : "");
  const tr = el("tr", { "data-run": row.id, title: row.message || "", onclick: () => { location.hash = encodeURIComponent(row.id); } },
    el("td", {}, row.id), el("td", {}, row.recipe || "-"),
    el("td", { class: `status status-${row.status}` }, status),
    el("td", { class: "step" }, row.step === undefined ? "-" : `${row.step} / ${row.steps}`),
    el("td", {}, best), el("td", {}, row.last_checkpoint === null || row.last_checkpoint === undefined ? "-"
      : `step ${row.last_checkpoint}`), el("td", {}, duration(row.wall_time_s)));
  tr.classList.toggle("selected", row.id === view.id);
  return tr;
}

function showRuns(answer) {
  $("runs-table").tBodies[0].replaceChildren(...answer.runs.map(runRow));
  $("runs-empty").hidden = answer.runs.length > 0;
  showError($("runs-problem"), answer.problem);
  const chosen = answer.runs.find((row) => row.id === view.id);
  if (!chosen) return;
  if (chosen.status === "missing") showError($("run-error"), chosen.message);
  if (view.checkpoint !== undefined && chosen.last_checkpoint !== view.checkpoint) {
    const panel = $("panel").firstChild;  // a new checkpoint: the panel's images follow it
    if (panel && panel.refresh) panel.refresh();
  }
  view.checkpoint = chosen.last_checkpoint;
}

// One small SVG chart of a logged quantity against the step.
function chart(name, points) {
  const W = 200, H = 96, pad = 14, ns = "http://www.w3.org/2000/svg";
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * pad);
  const sy = (y) => H - pad - ((y - y0) / (y1 - y0 || 1)) * (H - 2.5 * pad);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("data-key", name);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  add("polyline", { points: points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ") });
  add("text", { x: 4, y: 11, class: "name" }, name);
  add("text", { x: W - 4, y: 11, "text-anchor": "end" }, `${ys[ys.length - 1].toPrecision(4)} @ ${xs[xs.length - 1]}`);
  add("text", { x: 4, y: H - 3 }, `min ${y0.toPrecision(3)} · max ${y1.toPrecision(3)}`);
  return svg;
}

function showCurves() {
  const series = new Map();
  for (const record of view.records) {
    if (typeof record.step !== "number") continue;
    for (const [key, value] of Object.entries(record)) {
      if (["step", "time", "wall_time"].includes(key) || typeof value !== "number") continue;
      if (!series.has(key)) series.set(key, []);
      series.get(key).push([record.step, value]);
    }
  }
  $("curves").replaceChildren(...[...series].map(([key, points]) => chart(key, points)));
}

function showGrid() {
  const slider = $("sample-slider"), count = view.grids.length;
  $("no-samples").hidden = count > 0;
  $("sample-grid").hidden = count === 0;
  slider.hidden = count < 2;
  if (!count) return;
  const step = view.grids[Math.min(Number(slider.value), count - 1)];
  $("sample-step").textContent = `step ${step} (${count} grid${count > 1 ? "s" : ""})`;
  $("sample-grid").src = `/api/runs/${encodeURIComponent(view.id)}/samples/${step}.png`;
}

async function followRecords() {
  const id = view.id, start = view.next;
  const answer = await getJSON(`/api/runs/${encodeURIComponent(id)}/records?start=${start}`);
  if (view.id !== id || view.next !== start) return;  // another run was chosen, or another call took these records
  view.next = answer.next;
  if (answer.records.length) {
    view.records.push(...answer.records);
    showCurves();
  }
  if (answer.grids.length !== view.grids.length) {
    const slider = $("sample-slider"), atLast = Number(slider.value) >= view.grids.length - 1;
    view.grids = answer.grids;
    slider.max = Math.max(0, view.grids.length - 1);
    if (atLast) slider.value = slider.max;  // follow the newest grid unless the user went back
    showGrid();
  }
}

async function choose(id) {
  Object.assign(view, { id, records: [], next: 0, grids: [], checkpoint: undefined });
  $("run").hidden = !id;
  if (!id) return;
  $("run-title").textContent = id;
  showError($("run-error"), "");
  for (const row of document.querySelectorAll("#runs-table tbody tr")) {
    row.classList.toggle("selected", row.dataset.run === id);
  }
  $("curves").replaceChildren();
  $("panel").replaceChildren();
  showGrid();
  try {
    const info = await getJSON(`/api/runs/${encodeURIComponent(id)}`);
    if (view.id !== id) return;
    $("run-recipe").textContent = info.recipe;
    $("config-table").tBodies[0].replaceChildren(...Object.entries(info.config).map(([key, value]) =>
      el("tr", {}, el("td", {}, key), el("td", {}, JSON.stringify(value)))));
    $("panel").replaceChildren(buildPanel(id, info));
    await followRecords();
  } catch (error) {
    showError($("run-error"), error.message);
  }
}

async function poll() {
  try {
    const answer = await getJSON("/api/runs");
    view.poll = answer.poll_seconds;
    showRuns(answer);
    if (view.id) await followRecords().catch((error) => showError($("run-error"), error.message));
    const count = answer.runs.length, time = new Date().toLocaleTimeString();
    $("status").textContent = `${count} run${count === 1 ? "" : "s"} · updated ${time}`;
  } catch (error) {
    $("status").textContent = `not updated: ${error.message}`;
  }
  setTimeout(poll, view.poll * 1000);
}

$("sample-slider").addEventListener("input", showGrid);
window.addEventListener("hashchange", () => choose(decodeURIComponent(location.hash.slice(1))));
poll();
if (location.hash.length > 1) choose(decodeURIComponent(location.hash.slice(1)));
