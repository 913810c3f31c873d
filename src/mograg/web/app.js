// mograg inspection page: plain JS, no build step. All untrusted text goes through
// textContent (never innerHTML).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = "mograg-api-key";
  let last = null; // last /api/inspect result
  let docCache = new Map(); // "generation|id" -> document

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function status(msg, isError) {
    const s = $("status");
    s.textContent = msg || "";
    s.classList.toggle("error", !!isError);
  }

  function headers() {
    const h = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) h["X-API-Key"] = key;
    return h;
  }

  async function getJSON(url) {
    const resp = await fetch(url, { headers: headers() });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const msg = (body && body.error) || `HTTP ${resp.status}`;
      const err = new Error(msg);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  const fmt = (x, d = 3) => (typeof x === "number" ? x.toFixed(d) : "–");

  // ---------------------------------------------------------------- index info
  async function loadInfo() {
    try {
      const info = await getJSON("/info");
      $("index-info").textContent =
        `Index “${info.name}”: ${info.documents} documents, levels ${info.levels.join(" / ")} tokens, ` +
        `generation ${info.generation}, routers: ${["entropy", ...(info.routers || [])].join(", ")}.`;
    } catch (e) {
      $("index-info").textContent = e.status === 401 || e.status === 403
        ? "This server is private: enter the API key under Options."
        : `Could not load index information (${e.message}).`;
    }
  }

  // ---------------------------------------------------------------- rendering
  function renderWeights(data) {
    const box = $("weights");
    box.replaceChildren();
    const routing = data.routing || {};
    $("router-name").textContent = routing.router
      ? `Router: ${routing.router}${routing.strategy ? `, strategy: ${routing.strategy}` : ""}. ` +
        `Chosen: ${(routing.chosen || []).join(", ") || "–"}.`
      : "";
    if (!data.weights.length) {
      box.append(el("p", { class: "muted", text: "A fixed level was requested: no router weights." }));
      return;
    }
    const max = Math.max(...data.weights.map((w) => w.weight || 0), 1e-9);
    for (const w of data.weights) {
      const fill = el("span", { class: "bar-fill" });
      fill.style.width = `${Math.max(0, (100 * (w.weight || 0)) / max).toFixed(1)}%`;
      const row = el("div", { class: "bar-row" + (w.chosen ? " chosen" : ""), "data-name": w.name },
        el("span", { class: "bar-label", text: w.name }),
        el("span", { class: "bar-track", role: "meter", "aria-valuemin": 0, "aria-valuemax": 1,
                     "aria-valuenow": fmt(w.weight, 4), "aria-label": `weight of ${w.name}` }, fill),
        el("span", { class: "bar-value", text: fmt(w.weight) }),
        w.chosen ? el("span", { class: "badge", text: "chosen" }) : el("span"));
      box.append(row);
    }
  }

  function hitButton(hit, label, text) {
    return el("button", {
      type: "button", class: "hit", "aria-pressed": "false",
      "data-doc": hit.doc_id, "data-start": hit.start, "data-end": hit.end,
      "aria-label": `${label}: ${hit.doc_id}, characters ${hit.start} to ${hit.end}, score ${fmt(hit.score)}`,
      onclick: (ev) => select(ev.currentTarget, hit),
    },
      el("span", { class: "hit-meta" },
        // the short name (last path part); the full id on hover
        el("span", { class: "hit-doc", text: hit.doc_id.split("/").pop() || hit.doc_id,
                     title: hit.doc_id }),
        el("span", { class: "hit-score", text: `${fmt(hit.score)} · ${hit.start}–${hit.end}` +
                     (hit.page ? ` · p. ${hit.page}` : "") })),
      el("span", { class: "hit-text", text }));
  }

  function renderLevels(data) {
    const box = $("levels");
    box.replaceChildren();
    for (const lv of data.levels) {
      const list = el("ol", { "aria-label": `top hits at ${lv.size} tokens` });
      lv.hits.forEach((h, i) => list.append(el("li", {}, hitButton(h, `${lv.name} hit ${i + 1}`, h.preview))));
      if (!lv.hits.length) list.append(el("li", { class: "empty", text: "no hits" }));
      box.append(el("section", { class: "level" + (lv.chosen ? " chosen" : ""), "data-level": lv.size,
                                 "aria-label": `level ${lv.size} tokens${lv.chosen ? ", chosen" : ""}` },
        el("div", { class: "level-head" },
          el("h3", { text: `${lv.size} tokens` }),
          el("span", { class: "level-weight", text: lv.weight === null || lv.weight === undefined ? "" : `w ${fmt(lv.weight)}` }),
          lv.chosen ? el("span", { class: "badge", text: "chosen" }) : null),
        list));
    }
  }

  function renderFinal(data) {
    const res = data.result;
    $("final-meta").textContent =
      `${res.hits.length} span(s), ${res.n_tokens} of ${res.budget} tokens. Highlighted in the document on the right.`;
    const box = $("final");
    box.replaceChildren();
    res.hits.forEach((h, i) => box.append(el("li", {},
      hitButton(h, `final span ${i + 1} from level ${h.level}`, h.text))));
    if (!res.hits.length) box.append(el("li", { class: "empty", text: "nothing retrieved" }));
  }

  // ---------------------------------------------------------------- the document view
  // Offsets from the server count Unicode code points; JS strings count UTF-16 units.
  function codePointSlicer(text) {
    if (!/[\uD800-\uDFFF]/.test(text)) return (a, b) => text.slice(a, b);
    const cps = Array.from(text);
    return (a, b) => cps.slice(a, b).join("");
  }

  function highlight(doc, spans) {
    // spans: [{start, end, cls}] possibly overlapping -> segments with combined classes
    const n = Array.from(doc.text).length;
    const cuts = new Set([0, n]);
    for (const s of spans) { cuts.add(Math.max(0, Math.min(n, s.start))); cuts.add(Math.max(0, Math.min(n, s.end))); }
    const points = [...cuts].sort((a, b) => a - b);
    const slice = codePointSlicer(doc.text);
    const frag = document.createDocumentFragment();
    let focusNode = null;
    for (let i = 0; i + 1 < points.length; i++) {
      const a = points[i], b = points[i + 1];
      const classes = new Set(spans.filter((s) => s.start <= a && s.end >= b).map((s) => s.cls));
      const piece = slice(a, b);
      if (!classes.size) { frag.append(document.createTextNode(piece)); continue; }
      const m = el("mark", { class: [...classes].join(" "), text: piece });
      if (classes.has("focus") && !focusNode) focusNode = m;
      frag.append(m);
    }
    return { frag, focusNode };
  }

  async function showDocument(docId, focus) {
    if (!last) return;
    const cacheKey = `${last.generation}|${docId}`;
    let doc = docCache.get(cacheKey);
    if (!doc) {
      doc = await getJSON(`/documents/${encodeURIComponent(docId)}`);
      docCache.set(cacheKey, doc);
    }
    const spans = last.result.hits.filter((h) => h.doc_id === docId)
      .map((h) => ({ start: h.start, end: h.end, cls: "kept" }));
    if (focus) spans.push({ start: focus.start, end: focus.end, cls: "focus" });
    const { frag, focusNode } = highlight(doc, spans);
    const view = $("doc");
    view.replaceChildren(frag);
    const title = (doc.metadata && doc.metadata.title) ? ` “${doc.metadata.title}”` : "";
    const kept = spans.filter((s) => s.cls === "kept").length;
    $("doc-meta").textContent = `${doc.id}${title}: ${kept} span(s) kept in the final context` +
      (focus ? `; selected characters ${focus.start}–${focus.end}.` : ".");
    // scroll the document box only (not the page) so the span is in view
    const target = focusNode || view.querySelector("mark");
    const top = target ? target.offsetTop - view.clientHeight / 4 : 0;  // .doc is the offsetParent
    view.scrollTop = Math.max(0, top);
  }

  async function select(button, hit) {
    document.querySelectorAll("button.hit[aria-pressed='true']")
      .forEach((b) => b.setAttribute("aria-pressed", "false"));
    button.setAttribute("aria-pressed", "true");
    try {
      await showDocument(hit.doc_id, hit);
      $("h-doc").focus({ preventScroll: true });
    } catch (e) {
      status(`Could not load document ${hit.doc_id}: ${e.message}`, true);
    }
  }

  // ---------------------------------------------------------------- the form
  async function inspect(ev) {
    ev.preventDefault();
    const query = $("q").value.trim();
    if (!query) { status("Type a question first.", true); $("q").focus(); return; }
    const key = $("key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE);
    const params = new URLSearchParams({ query, budget: $("budget").value || "256",
      mode: $("mode").value, strategy: $("strategy").value, top: $("top").value || "5" });
    const router = $("router").value.trim();
    if (router) params.set("router", router);
    $("go").disabled = true;
    status("Searching…");
    try {
      const data = await getJSON(`/api/inspect?${params}`);
      last = data;
      renderWeights(data);
      renderLevels(data);
      renderFinal(data);
      $("results").hidden = false;
      const t = data.timings_ms || {};
      status(`Routed “${data.query}” in ${fmt((t.encode || 0) + (t.search || 0), 1)} ms ` +
             `(generation ${data.generation}).`);
      const first = data.result.hits[0];
      if (first) {
        await showDocument(first.doc_id, null);
      } else {
        $("doc").replaceChildren();
        $("doc-meta").textContent = "Nothing was retrieved.";
      }
    } catch (e) {
      status(e.status === 401 || e.status === 403
        ? `Not allowed: ${e.message}. Enter the API key under Options.` : `Error: ${e.message}`, true);
    } finally {
      $("go").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("ask").addEventListener("submit", inspect);
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) $("key").value = key;
    $("key").addEventListener("change", () => {
      const v = $("key").value.trim();
      if (v) sessionStorage.setItem(KEY_STORE, v); else sessionStorage.removeItem(KEY_STORE);
      docCache = new Map();
      loadInfo();
    });
    const q = new URLSearchParams(location.search).get("q");
    loadInfo();
    if (q) { $("q").value = q; $("ask").requestSubmit(); }
    else $("q").focus();
  });
})();
