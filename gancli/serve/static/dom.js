// Small helpers shared by the page's modules: elements, the server's JSON, and files the user drops or picks.

// An element with attributes (on* are listeners) and children (strings become text, never HTML).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// The server's JSON answer; its one-sentence error becomes the Error's message.
export async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body;
  try {
    body = await response.json();
  } catch {
    body = { error: `The server answered ${response.status} without JSON.` };
  }
  if (!response.ok) throw new Error(body.error || `The server answered ${response.status}.`);
  return body;
}

// Call a verb of a run with JSON options (uploads inside as {name, data: base64}).
export function callVerb(runId, verb, options) {
  return getJSON(`/api/runs/${encodeURIComponent(runId)}/verbs/${verb}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(options),
  });
}

// A File as the {name, data} upload the server takes.
export function readUpload(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({ name: file.name, data: String(reader.result).split(",", 2)[1] || "" });
    reader.onerror = () => reject(new Error(`Cannot read '${file.name}'.`));
    reader.readAsDataURL(file);
  });
}

// A zone that takes a dropped file or opens the file picker; onFile(File) is called with it.
export function dropZone(text, onFile, accept = "image/*") {
  const input = el("input", { type: "file", accept, hidden: true,
    onchange: () => input.files[0] && onFile(input.files[0]) });
  const zone = el("div", { class: "drop", tabindex: 0, onclick: () => input.click(),
    ondragover: (event) => { event.preventDefault(); zone.classList.add("over"); },
    ondragleave: () => zone.classList.remove("over"),
    ondrop: (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer.files[0]) onFile(event.dataTransfer.files[0]);
    } }, text, input);
  return zone;
}

// Runs job() for the latest request only: a change made while one runs is served right after it, once.
export function latestOnly(job) {
  let running = false, again = false;
  return async function run() {
    if (running) { again = true; return; }
    running = true;
    try { await job(); } finally {
      running = false;
      if (again) { again = false; run(); }
    }
  };
}

// Shows an error sentence in a panel's error line, or hides it (message empty).
export function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}
