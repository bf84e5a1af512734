// brickwork dashboard: draws each served model's graph (SVG from /dashboard/api/graph) and
// polls /dashboard/api/stats, colouring each stage by its utilisation over the last interval.
// Plain JS, no framework, nothing loaded from elsewhere.
"use strict";

(function () {
  const INTERVAL_MS = 1000;
  const root = document.getElementById("models");
  const status = document.getElementById("status");
  const views = {};   // model name → {section, nodes: {stage: <g>}, tbody, ladders, ...}
  let previous = null; // the last stats answer, for rates over the interval

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function ms(s) {
    if (s === null || s === undefined) return "–";
    const v = s * 1000;
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  }

  function num(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
    return v.toFixed(digits === undefined ? 1 : digits);
  }

  function colour(u) {  // 0 → green, 0.5 → yellow, 1 → red
    const hue = Math.round(120 * (1 - Math.max(0, Math.min(1, u))));
    return `hsl(${hue},70%,${88 - 8 * Math.min(1, u)}%)`;
  }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401) { window.location.href = "/dashboard/login"; throw new Error("login needed"); }
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }

  const COLUMNS = ["stage", "worker", "replicas", "util", "queued", "batch (mean)", "batch sizes",
    "queue p50/p99 ms", "compute p50/p99 ms", "items/s", "errors", "retries", "restarts", "breaker"];

  function build(model) {
    const section = el("section", { class: "model", "data-model": model.name });
    const h2 = el("h2");
    h2.append(el("span", {}, model.name));
    const badge = el("span", { class: "badge" }, "…");
    const summary = el("span", { class: "summary" }, "");
    h2.append(badge, summary);
    const bottleneck = el("div", { class: "bottleneck-line" }, "");
    const graph = el("div", { class: "graph" });
    graph.innerHTML = model.svg;
    const nodes = {};
    graph.querySelectorAll("g.node.stage").forEach((g) => { nodes[g.dataset.stage] = g; });
    const table = el("table", { class: "stages" });
    const head = el("tr");
    COLUMNS.forEach((c) => head.append(el("th", {}, c)));
    table.append(el("thead"));
    table.tHead.append(head);
    const tbody = el("tbody");
    table.append(tbody);
    const rows = {};
    model.stages.forEach((s) => {
      if (rows[s]) return;
      const tr = el("tr", { "data-stage": s });
      COLUMNS.forEach((c, i) => tr.append(el("td", {}, i === 0 ? s : "–")));
      tbody.append(tr);
      rows[s] = tr;
    });
    section.append(h2, bottleneck, graph, table);
    let fallbacks = null;
    if (Object.keys(model.ladders).length) {
      section.append(el("h3", {}, "fallback ladders: answers per rung (last interval / total)"));
      fallbacks = el("table", { class: "fallbacks" });
      const fh = el("tr");
      ["ladder", "rungs"].forEach((c) => fh.append(el("th", {}, c)));
      fallbacks.append(fh);
      section.append(fallbacks);
    }
    root.append(section);
    views[model.name] = { section, badge, summary, bottleneck, nodes, rows, fallbacks, ladders: model.ladders };
  }

  function rate(now, before, key, dt) {
    if (!before || dt <= 0) return null;
    const d = now[key] - before[key];
    return d >= 0 ? d / dt : null;
  }

  function recentUtilisation(s, b) {
    // utilisation = busy / (elapsed * replicas): busy per replica over the interval
    if (!b || s.elapsed_s <= b.elapsed_s) return s.utilisation;
    const busy = s.utilisation * s.elapsed_s - b.utilisation * b.elapsed_s;
    return Math.max(0, Math.min(1, busy / (s.elapsed_s - b.elapsed_s)));
  }

  function update(stats) {
    const prevModels = previous ? previous.models : {};
    const dt = previous ? stats.time - previous.time : 0;
    for (const name in stats.models) {
      const view = views[name];
      if (!view) continue;
      const m = stats.models[name];
      const before = prevModels[name];
      view.badge.textContent = m.ready ? "ready" : "not ready: " + m.unready.join("; ");
      view.badge.className = "badge" + (m.ready ? "" : " unready");
      const req = m.requests;
      const rps = before ? rate(req, before.requests, "count", dt) : null;
      view.summary.textContent = `${req.count.toLocaleString("en")} requests · ${num(rps)} req/s · ` +
        `in flight ${req.in_flight} · latency p50 ${ms(req.p50_s)} ms, p99 ${req.p99_s === null ? "> 10 s" : ms(req.p99_s) + " ms"}` +
        ` · errors ${(req.count - req.ok).toLocaleString("en")}`;
      const stages = m.pipeline.stages;
      const beforeStages = before ? before.pipeline.stages : {};
      let worst = null;
      for (const s in stages) {
        const st = stages[s];
        const b = beforeStages[s];
        const u = recentUtilisation(st, b);
        const items = b ? rate(st, b, "items", st.elapsed_s - b.elapsed_s) : st.items_per_s;
        st._u = u;
        if ((b ? st.batches > b.batches : st.batches > 0) && (worst === null || u > stages[worst]._u)) worst = s;
        const g = view.nodes[s];
        if (g) {
          g.querySelector(".shape").setAttribute("fill", colour(u));
          const live = g.querySelector("text.live");
          if (live) live.textContent = `${Math.round(u * 100)}% · q ${st.queued} · b ${num(st.mean_batch_size)} · ${num(items, 0)}/s`;
          const open = st.breaker && st.breaker.state !== "closed";
          g.classList.toggle("breaker-open", Boolean(open));
        }
        const tr = view.rows[s];
        if (tr) {
          const sizes = Object.entries(st.batch_sizes).sort((x, y) => y[1] - x[1]).slice(0, 3)
            .map(([k, n]) => `${k}×${n}`).join(" ");
          const errors = Object.values(st.errors).reduce((a, n) => a + n, 0);
          const breaker = st.breaker ? `${st.breaker.state} (opened ${st.breaker.opened})` : "–";
          const cells = [s, st.worker, `${st.live_replicas}/${st.replicas}`, `${Math.round(u * 100)}%`,
            String(st.queued), num(st.mean_batch_size), sizes || "–",
            `${ms(st.queue_s.p50)} / ${ms(st.queue_s.p99)}`, `${ms(st.compute_s.p50)} / ${ms(st.compute_s.p99)}`,
            num(items), String(errors), String(st.retries), String(st.restarts || 0), breaker];
          cells.forEach((c, i) => { tr.children[i].textContent = c; });
          tr.children[10].className = errors ? "bad" : "";
          tr.children[12].className = st.restarts ? "bad" : "";
          tr.children[13].className = st.breaker && st.breaker.state !== "closed" ? "bad" : "";
        }
      }
      const bn = worst || m.pipeline.bottleneck;
      for (const s in view.nodes) view.nodes[s].classList.toggle("bottleneck", s === bn);
      for (const s in view.rows) view.rows[s].classList.toggle("bottleneck", s === bn);
      view.bottleneck.textContent = bn && stages[bn]
        ? `bottleneck: ${bn} (busy ${Math.round(stages[bn]._u * 100)}%, ${stages[bn].queued} queued, ` +
          `queue p50 ${ms(stages[bn].queue_s.p50)} ms)`
        : "no traffic yet";
      view.section.dataset.bottleneck = bn || "";
      updateFallbacks(view, m.pipeline.fallbacks, before ? before.pipeline.fallbacks : null);
    }
    previous = stats;
  }

  function updateFallbacks(view, fallbacks, before) {
    if (!view.fallbacks) return;
    const answering = new Set();
    for (const ladder in view.ladders) {
      let tr = view.fallbacks.querySelector(`tr[data-ladder="${ladder}"]`);
      if (!tr) {
        tr = el("tr", { "data-ladder": ladder });
        tr.append(el("td", {}, ladder), el("td"));
        view.fallbacks.append(tr);
      }
      const counts = fallbacks[ladder] || {};
      const prev = (before && before[ladder]) || {};
      const parts = view.ladders[ladder].map((rung, i) => {
        const total = counts[rung] || 0;
        const recent = total - (prev[rung] || 0);
        if (i > 0 && recent > 0) answering.add(rung);
        return `${rung}: ${recent} / ${total}`;
      });
      tr.children[1].textContent = parts.join(" · ");
      tr.children[1].style.textAlign = "left";
    }
    for (const s in view.nodes) view.nodes[s].classList.toggle("answering", answering.has(s));
  }

  async function poll() {
    try {
      const stats = await getJSON("/dashboard/api/stats");
      update(stats);
      status.textContent = "live · " + new Date(stats.time * 1000).toLocaleTimeString();
      status.dataset.state = "live";
    } catch (err) {
      status.textContent = "no answer from the server (" + err.message + "); retrying";
      status.dataset.state = "error";
    }
    setTimeout(poll, INTERVAL_MS);
  }

  async function start() {
    try {
      const graph = await getJSON("/dashboard/api/graph");
      graph.models.forEach(build);
    } catch (err) {
      status.textContent = "cannot load the graphs: " + err.message;
      status.dataset.state = "error";
      setTimeout(start, 2000);
      return;
    }
    poll();
  }

  start();
})();
