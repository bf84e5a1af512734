// brickwork studio: the YAML is checked by the server's compile() as you type (debounced), each
// error marked at its line with its fix, the compiled graph redrawn; Run runs one request; Save
// writes the file. Plain JS, nothing loaded from elsewhere.
"use strict";

(function () {
  const yaml = document.getElementById("yaml");
  const gutter = document.getElementById("gutter");
  const errors = document.getElementById("errors");
  const graph = document.getElementById("graph");
  const state = document.getElementById("state");
  const result = document.getElementById("result");
  const request = document.getElementById("request");
  const saved = document.getElementById("saved");
  let badLines = new Set();
  let timer = null;
  let generation = 0;

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function post(url, body) {
    const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(body), cache: "no-store" });
    return r.json();
  }

  function drawGutter() {
    const n = yaml.value.split("\n").length;
    gutter.textContent = "";
    for (let i = 1; i <= n; i++) {
      const span = el("span", { "data-line": String(i) }, String(i));
      if (badLines.has(i)) span.className = "err";
      gutter.append(span, "\n");
    }
    gutter.scrollTop = yaml.scrollTop;
  }

  function showErrors(list) {
    errors.textContent = "";
    badLines = new Set();
    list.forEach((e) => {
      const li = el("li", { "data-line": e.line === null ? "" : String(e.line) });
      li.append(el("span", { class: "where" }, e.line === null ? "error" : `line ${e.line}`));
      li.append(el("span", { class: "message" }, e.message));
      if (e.fix) li.append(el("span", { class: "fix" }, "fix: " + e.fix));
      if (e.line !== null) {
        badLines.add(e.line);
        li.addEventListener("click", () => goTo(e.line));
      }
      errors.append(li);
    });
    drawGutter();
  }

  function goTo(line) {
    const lines = yaml.value.split("\n");
    let pos = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
    yaml.focus();
    yaml.setSelectionRange(pos, pos + (lines[line - 1] || "").length);
  }

  async function check() {
    const mine = ++generation;
    state.textContent = "checking…";
    state.dataset.state = "checking";
    let answer;
    try {
      answer = await post("/api/check", { text: yaml.value });
    } catch (err) {
      state.textContent = "the studio server does not answer";
      state.dataset.state = "error";
      return;
    }
    if (mine !== generation) return;  // a newer edit is being checked
    if (answer.ok) {
      showErrors([]);
      graph.innerHTML = answer.svg;
      graph.classList.remove("stale");
      state.textContent = "compiles";
      state.dataset.state = "ok";
    } else {
      showErrors(answer.errors);
      graph.classList.add("stale");  // the last good graph, greyed
      state.textContent = `${answer.errors.length} error${answer.errors.length === 1 ? "" : "s"}`;
      state.dataset.state = "error";
    }
  }

  function edited() {
    drawGutter();
    saved.textContent = "";
    clearTimeout(timer);
    timer = setTimeout(check, 350);
  }

  async function run() {
    result.textContent = "running…";
    let inputs = null;
    if (request.value.trim()) {
      try { inputs = JSON.parse(request.value); } catch (err) {
        result.textContent = "";
        result.append(el("p", { class: "bad" }, "the request is not JSON: " + err.message));
        return;
      }
    }
    const answer = await post("/api/run", { text: yaml.value, inputs });
    result.textContent = "";
    if (!answer.ok) {
      answer.errors.forEach((e) => result.append(el("p", { class: "bad" },
        (e.line === null ? "" : `line ${e.line}: `) + e.message + (e.fix ? " — fix: " + e.fix : ""))));
      return;
    }
    const outputs = Object.assign({}, answer.outputs);
    if (Object.keys(answer.rungs).length) outputs._rungs = answer.rungs;
    result.append(el("h2", {}, `outputs (${answer.latency_ms.toFixed(1)} ms; start ${answer.start_ms.toFixed(0)} ms)`));
    result.append(el("pre", { id: "outputs" }, JSON.stringify(outputs, null, 2)));
    const table = el("table", { id: "timings" });
    const head = el("tr");
    ["stage", "worker", "batches", "items", "queue ms", "compute ms"].forEach((c) => head.append(el("th", {}, c)));
    table.append(head);
    for (const name in answer.stages) {
      const s = answer.stages[name];
      const tr = el("tr", { "data-stage": name });
      [name, s.worker || "", s.batches, s.items, s.queue_ms.toFixed(2), s.compute_ms.toFixed(2)]
        .forEach((c) => tr.append(el("td", {}, String(c))));
      table.append(tr);
    }
    result.append(el("h2", {}, "per stage"), table);
  }

  async function save() {
    const answer = await post("/api/save", { text: yaml.value });
    saved.textContent = "saved" + (answer.check.ok ? "" : " (does not compile)");
  }

  async function start() {
    const r = await fetch("/api/file", { cache: "no-store" });
    const file = await r.json();
    document.getElementById("path").textContent = file.path;
    yaml.value = file.text;
    drawGutter();
    check();
  }

  yaml.addEventListener("input", edited);
  yaml.addEventListener("scroll", () => { gutter.scrollTop = yaml.scrollTop; });
  yaml.addEventListener("keydown", (ev) => {  // Tab inserts two spaces (YAML has no tabs)
    if (ev.key === "Tab") {
      ev.preventDefault();
      const s = yaml.selectionStart;
      yaml.setRangeText("  ", s, yaml.selectionEnd, "end");
      edited();
    }
  });
  document.getElementById("run").addEventListener("click", run);
  document.getElementById("save").addEventListener("click", save);
  start();
})();
