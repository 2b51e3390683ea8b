// modelsat console: plain JavaScript over the proxy's JSON API (src/modelsat/serve/ui.py). No framework, no
// build step, nothing from the network: every request goes to this origin, with the client key from this
// tab's sessionStorage in the Authorization header.
"use strict";

const KEY = "modelsat-client-key";
const SVG = "http://www.w3.org/2000/svg";
// Okabe-Ito colours (told apart with colour-blindness) and a marker shape each, so colour is never the only cue
const SERIES = [["#0072B2", "circle"], ["#D55E00", "square"], ["#009E73", "diamond"], ["#CC79A7", "triangle"]];
const $ = (id) => document.getElementById(id);
const state = { explained: null, instruction: "", zoo: null, health: {}, compare: [], results: null };

// ---- small DOM helpers (text only: nothing from the server is ever parsed as HTML) --------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}
function say(id, text, isError) {
  const node = $(id);
  node.textContent = text || "";
  node.classList.toggle("error", Boolean(isError));
}
const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %");
const usd = (x) => (x === 0 ? "0" : x.toFixed(Math.max(2, 2 - Math.floor(Math.log10(x)))));   // 3 digits past the zeros
const pts = (x) => (x >= 0 ? "+" : "−") + Math.abs(100 * x).toFixed(1) + " pts";

// ---- the API ------------------------------------------------------------------------------------------------------
class ApiError extends Error {}
async function api(path, opts = {}) {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers.authorization = "Bearer " + key;
  let body;
  if (opts.json !== undefined) { headers["content-type"] = "application/json"; body = JSON.stringify(opts.json); }
  const r = await fetch(path, { method: opts.method || "GET", headers, body, cache: "no-store",
                                credentials: "omit", redirect: "error" });
  if (r.status === 401 && !opts.quiet401) { signOut("The proxy refused the key: sign in again."); }
  return r;
}
async function apiJson(path, opts) {
  const r = await api(path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new ApiError((data && data.error && data.error.message) || `HTTP ${r.status} from ${path}`);
  return data;
}

// ---- signing in ---------------------------------------------------------------------------------------------------
async function tryKey(key) {
  if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
  const r = await api("/v1/zoo", { quiet401: true });
  if (r.status === 401) { sessionStorage.removeItem(KEY); return false; }
  if (!r.ok) throw new ApiError(`the proxy answered HTTP ${r.status}`);
  state.zoo = await r.json();
  return true;
}
function signOut(message) {
  sessionStorage.removeItem(KEY);
  for (const p of ["route", "zoo", "results"]) $("page-" + p).hidden = true;
  $("nav").hidden = true; $("sign-out").hidden = true;
  $("page-login").hidden = false;
  say("login-status", message || "", Boolean(message));
  $("login-key").focus();
}
function signedIn() {
  $("page-login").hidden = true; $("nav").hidden = false; $("sign-out").hidden = false;
  say("login-status", "");
  show();
}

// ---- pages --------------------------------------------------------------------------------------------------------
function show() {
  if (!$("page-login").hidden) return;
  const page = (location.hash || "#route").slice(1);
  const name = ["route", "zoo", "results"].includes(page) ? page : "route";
  for (const p of ["route", "zoo", "results"]) $("page-" + p).hidden = p !== name;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (name === "zoo") loadZoo();
  if (name === "results") loadResultsList();
  if (name === "route") $("instruction").focus();
}

// ---- Route --------------------------------------------------------------------------------------------------------
// What a policy weighs: the expected cost in USD, 0 where the price is unknown (as modelsat.policies counts it)
const costOf = (c) => (c.expected_cost_usd === null ? 0 : c.expected_cost_usd);
// What is ranked: P(good answer), or the raw score of a router that gives no probabilities
const valueOf = (c) => (c.p === null ? c.score : c.p);
const figure = (c) => (c.p === null ? c.score.toFixed(3) : pct(c.p));
const shown = (c) => (c.p === null ? "score " : "P(good answer) ") + figure(c);
// The rule of modelsat.policies.tradeoff: the highest P − λ·cost; ties go to the cheaper, then the first listed.
function choose(p, cost, lam) {
  const obj = p.map((x, j) => x - lam * cost[j]);
  const top = Math.max(...obj);
  let best = -1;
  for (let j = 0; j < obj.length; j++) {
    if (obj[j] === top && (best < 0 || cost[j] < cost[best])) best = j;
  }
  return best;
}
// λ values at which one candidate overtakes another: the slider spans them on a log scale
function lambdaRange(p, cost) {
  const cuts = [];
  for (let i = 0; i < p.length; i++) for (let j = 0; j < p.length; j++) {
    if (cost[i] > cost[j] && p[i] > p[j]) cuts.push((p[i] - p[j]) / (cost[i] - cost[j]));
  }
  if (!cuts.length) return [0, 6];
  return [Math.floor(Math.log10(Math.min(...cuts))) - 1, Math.ceil(Math.log10(Math.max(...cuts))) + 1];
}
function sliderToLambda(pos) {
  if (pos <= 0) return 0;
  const [lo, hi] = state.range;
  return Number(Math.pow(10, lo + (hi - lo) * (pos - 1) / 199).toPrecision(3));
}
function lambdaToSlider(lam) {
  if (lam <= 0) return 0;
  const [lo, hi] = state.range;
  return Math.max(1, Math.min(200, Math.round(1 + 199 * (Math.log10(lam) - lo) / (hi - lo))));
}

async function routeInstruction(event) {
  if (event) event.preventDefault();
  const text = $("instruction").value;
  if (!text.trim()) { say("route-status", "Type an instruction first.", true); return; }
  const t0 = performance.now();
  say("route-status", "Routing…");
  $("route-button").disabled = true;
  try {
    const data = await apiJson("/v1/explain", { method: "POST", json: { instruction: text, lambda: 0 } });
    const t1 = performance.now();
    state.explained = data; state.instruction = text;
    state.range = lambdaRange(data.candidates.map(valueOf), data.candidates.map(costOf));
    $("lambda-slider").disabled = $("lambda-value").disabled = !data.probabilities;
    $("p-head").textContent = data.probabilities ? "P(good answer)" : "score (not a probability)";
    $("no-probabilities").hidden = data.probabilities;
    $("no-probabilities").textContent = data.probabilities ? "" : `The ${data.router} router gives scores, ` +
      "not probabilities (it is not calibrated), so it cannot weigh them against cost: it ranks by score alone.";
    $("lambda-slider").value = "0"; $("lambda-value").value = "0";
    $("route-result").hidden = false;
    renderRoute(0);
    $("reply").hidden = true; say("send-status", "");
    const t2 = performance.now(), ms = t2 - t0;
    $("route-status").dataset.drawMs = (t2 - t1).toFixed(1);     // read by scripts/ui_latency.py
    $("route-status").dataset.ms = ms.toFixed(1);
    say("route-status", `Answered in ${ms.toFixed(0)} ms (the router took ${data.ms.toFixed(0)} ms); ` +
        `${data.candidates.length} candidates, router ${data.router}` +
        (data.calibrated ? ", probabilities calibrated on held-out items." : "."));
  } catch (e) {
    say("route-status", e.message, true);
  } finally {
    $("route-button").disabled = false;
  }
}

function bar(x, width = 90) {
  const w = Math.max(0, Math.min(1, x)) * width;
  return svg("svg", { class: "bar", width: width, height: 10, "aria-hidden": "true" },
             svg("rect", { class: "track", x: 0, y: 0, width: width, height: 10 }),
             svg("rect", { class: "fill", x: 0, y: 0, width: w.toFixed(1), height: 10 }));
}

function renderRoute(lam) {
  const data = state.explained;
  const cands = data.candidates;
  const p = cands.map(valueOf), cost = cands.map(costOf);
  const chosen = choose(p, cost, lam);
  const order = cands.map((_, j) => j).sort((a, b) =>
    (p[b] - lam * cost[b]) - (p[a] - lam * cost[a]) || cost[a] - cost[b] || a - b);
  order.splice(order.indexOf(chosen), 1); order.unshift(chosen);
  const c = cands[chosen];
  const unknown = cands.filter((x) => x.expected_cost_usd === null).map((x) => x.model);
  $("chosen").textContent = `Chosen: ${c.model} — ${shown(c)}, expected cost $${usd(costOf(c))} ` +
    `per request (${lam === 0 ? "λ = 0: max quality" : "λ = " + lam})` +
    (unknown.length ? `. No price known for ${unknown.join(", ")}: counted as 0.` : "");
  $("chosen").dataset.model = c.model;
  const tbody = $("ranking").querySelector("tbody");
  tbody.replaceChildren(...order.map((j, rank) => {
    const x = cands[j];
    return el("tr", { class: j === chosen ? "pick" : null, "data-model": x.model },
      el("td", { class: "num", text: String(rank + 1) }),
      el("td", {}, x.model, j === chosen ? el("span", { text: " (chosen)" }) : null),
      el("td", { class: "num" }, figure(x), x.p === null ? null : bar(x.p)),
      el("td", { class: "num", text: x.expected_cost_usd === null ? "price unknown (0)" : usd(x.expected_cost_usd) }),
      el("td", { class: "num", text: (valueOf(x) - lam * costOf(x)).toFixed(4) }));
  }));
  $("send-button").textContent = `Send to ${c.model}`;
  renderWhy(chosen);
}

function renderWhy(chosen) {
  const data = state.explained;
  const cands = data.candidates;
  const others = cands.map((_, j) => j).filter((j) => j !== chosen);
  const cols = [chosen, ...others];
  const listed = data.subjects.filter((s, i) => i === 0 || s.weight >= 0.005);     // not the ones near 0
  const rest = 1 - listed.reduce((a, s) => a + s.weight, 0);
  const top = listed.map((s) => `${s.subject} (${(100 * s.weight).toFixed(0)} %)`).join(", ");
  $("why-subjects-intro").textContent = `The instruction was mapped to the aptitude test's subjects ${top}` +
    (rest > 0.005 ? `, and ${(100 * rest).toFixed(0)} % spread over the rest.` : ".");
  const subj = $("why-subjects");
  subj.querySelector("thead").replaceChildren(el("tr", {},
    el("th", { scope: "col", text: "subject" }), el("th", { scope: "col", class: "num", text: "weight" }),
    ...cols.map((j) => el("th", { scope: "col", class: j === chosen ? "num pick" : "num",
                                  text: cands[j].model + (j === chosen ? " (chosen)" : "") }))));
  subj.querySelector("tbody").replaceChildren(...listed.map((s) => el("tr", {},
    el("th", { scope: "row", text: s.subject }),
    el("td", { class: "num" }, pct(s.weight), bar(s.weight, 60)),
    ...cols.map((j) => {
      const m = cands[j].model, a = s.accuracy[m];
      return el("td", { class: j === chosen ? "num pick" : "num",
                        text: a === null ? "not on the test" : `${pct(a)} of ${s.n_items[m]}` });
    }))));
  const parts = $("why-parts");
  const has = data.correction.kind !== "unavailable";
  const last = data.probabilities ? "P(good answer)" : "score";
  const heads = has ? ["model", "profile prior", "records update", "learned correction", last] : ["model", last];
  parts.querySelector("thead").replaceChildren(el("tr", {}, ...heads.map((h, i) =>
    el("th", { scope: "col", class: i ? "num" : null, text: h }))));
  parts.querySelector("tbody").replaceChildren(...cols.map((j) => {
    const x = cands[j];
    const cells = has ? [pct(x.prior), pts(x.records_update),
                         data.correction.kind === "none" ? "0 (none)" : (x.correction >= 0 ? "+" : "") +
                         x.correction.toFixed(3) + " log-odds", figure(x)] : [figure(x)];
    return el("tr", { class: j === chosen ? "pick" : null },
      el("th", { scope: "row", text: x.model + (j === chosen ? " (chosen)" : "") }),
      ...cells.map((t) => el("td", { class: "num", text: t })));
  }));
  $("why-correction").textContent = "Learned correction: " + data.correction.text +
    (has ? ". Profile prior: the model's accuracy at these subjects, shrunk toward its mean; records update: how " +
           "much its results on the nearest training items moved that estimate; P(good answer): the score after " +
           (data.calibrated ? "calibration on held-out items." : "clipping to [0, 1] (the router is not calibrated).") : ".");
}

function onLambdaSlider() {
  const lam = sliderToLambda(Number($("lambda-slider").value));
  $("lambda-value").value = String(lam);
  if (state.explained) renderRoute(lam);
}
function onLambdaNumber() {
  const lam = Number($("lambda-value").value);
  if (!(lam >= 0) || !Number.isFinite(lam)) return;
  $("lambda-slider").value = String(lambdaToSlider(lam));
  if (state.explained) renderRoute(lam);
}

async function send() {
  const model = $("chosen").dataset.model;
  say("send-status", `Sending to ${model} through the proxy…`);
  $("send-button").disabled = true;
  const t0 = performance.now();
  try {
    const r = await api("/v1/chat/completions", { method: "POST", json: {
      model: model, messages: [{ role: "user", content: state.instruction }] } });
    const ms = performance.now() - t0;
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new ApiError((data && data.error && data.error.message) || `HTTP ${r.status}`);
    const text = data && data.choices && data.choices[0] && data.choices[0].message ?
      data.choices[0].message.content : JSON.stringify(data);
    const cost = r.headers.get("x-modelsat-cost-usd");
    say("send-status", `${r.headers.get("x-modelsat-model") || model} answered in ${ms.toFixed(0)} ms` +
        (cost ? `, cost $${Number(cost).toPrecision(3)}` : "") + ".");
    $("reply").textContent = text; $("reply").hidden = false;
  } catch (e) {
    say("send-status", e.message, true);
  } finally {
    $("send-button").disabled = false;
  }
}

// ---- Zoo ----------------------------------------------------------------------------------------------------------
async function loadZoo() {
  try {
    state.zoo = await apiJson("/v1/zoo");
  } catch (e) { say("zoo-status", e.message, true); return; }
  const names = state.zoo.models.filter((m) => m.routable).map((m) => m.name);
  state.compare = state.compare.filter((n) => names.includes(n));
  if (!state.compare.length) state.compare = names.slice(0, 2);
  renderZoo();
}

function renderZoo() {
  const zoo = state.zoo;
  say("zoo-status", `${zoo.models.length} models` + (zoo.folder ? ` in zoo folder ${zoo.folder}` : "") + ".");
  const full = state.compare.length >= 4;
  $("zoo-table").querySelector("tbody").replaceChildren(...zoo.models.map((m) => {
    const h = state.health[m.name];
    const ticked = state.compare.includes(m.name);
    const box = el("input", { type: "checkbox", id: "cmp-" + m.name, checked: ticked,
                              disabled: !m.routable || (full && !ticked), "aria-label": "compare " + m.name,
                              onchange: (e) => toggleCompare(m.name, e.target.checked) });
    const price = m.price ? `${m.price.input} / ${m.price.output}` : "unknown";
    const b = m.breaker.state;
    return el("tr", { "data-model": m.name },
      el("td", {}, box),
      el("th", { scope: "row", text: m.name }),
      el("td", { class: "num", text: m.routable ? pct(m.mean_accuracy) : "no profile" }),
      el("td", { class: "num", text: price }),
      el("td", { text: m.base_url + (m.upstream_model !== m.name ? ` (${m.upstream_model})` : "") }),
      el("td", { class: h ? (h.ok ? "ok" : "down") : null,
                 text: h ? (h.ok ? `answers (${h.ms} ms)` : `not answering: ${h.error}`) : "not checked" }),
      el("td", { class: b === "closed" ? "ok" : "down",
                 text: b === "closed" ? "closed (in use)" : `${b} after ${m.breaker.consecutive_failures} failures` }),
      el("td", {}, zoo.editable ? el("button", { type: "button", class: "plain", text: "Remove",
                                                 "aria-label": "remove " + m.name, onclick: () => removeModel(m.name) })
                                : null));
  }));
  renderChart();
  const form = $("add-form");
  for (const x of form.querySelectorAll("input, button")) x.disabled = !zoo.editable;
  $("add-disabled").hidden = zoo.editable;
  $("add-disabled").textContent = zoo.why_not_editable || "";
}

function toggleCompare(name, on) {
  state.compare = state.compare.filter((n) => n !== name);
  if (on) state.compare.push(name);
  renderZoo();
  const box = $("cmp-" + name); if (box) box.focus();
}

function marker(shape, x, y, color) {
  const r = 4.5;
  if (shape === "circle") return svg("circle", { cx: x, cy: y, r: r, fill: color });
  if (shape === "square") return svg("rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r, fill: color });
  if (shape === "diamond") return svg("path", { d: `M${x} ${y - r - 1}L${x + r + 1} ${y}L${x} ${y + r + 1}L${x - r - 1} ${y}Z`, fill: color });
  return svg("path", { d: `M${x} ${y - r - 1}L${x + r + 1} ${y + r}L${x - r - 1} ${y + r}Z`, fill: color });
}

// A dot plot: one row per subject, one marker per compared model (colour and shape), accuracy on the x axis
function renderChart() {
  const zoo = state.zoo;
  const models = state.compare.map((n) => zoo.models.find((m) => m.name === n)).filter(Boolean);
  const subjects = zoo.subjects;
  $("profile-caption").textContent = models.length
    ? `Aptitude-test accuracy per subject: ${models.map((m) => m.name).join(" vs ")}`
    : "Tick models in the table to compare their profiles";
  $("profile-legend").replaceChildren(...models.map((m, i) => el("span", {},
    svg("svg", { width: 14, height: 14, "aria-hidden": "true" }, marker(SERIES[i][1], 7, 7, SERIES[i][0])),
    `${m.name} (mean ${pct(m.mean_accuracy)})`)));
  const left = 230, width = 520, rowH = 16, top = 24;
  const height = top + rowH * subjects.length + 10;
  const x = (a) => left + a * width;
  const chart = svg("svg", { width: left + width + 20, height: height, role: "img",
                             "aria-label": `dot plot of per-subject accuracy for ${models.map((m) => m.name).join(", ")}; ` +
                                           "the same figures are in the table below it" });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: top - 6, y2: height - 6 }));
    chart.append(svg("text", { x: x(t), y: 12, "text-anchor": "middle" }, document.createTextNode(`${100 * t} %`)));
  }
  subjects.forEach((s, i) => {
    const y = top + i * rowH + rowH / 2;
    chart.append(svg("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, document.createTextNode(s)));
    chart.append(svg("line", { class: "grid", x1: left, x2: left + width, y1: y, y2: y }));
    models.forEach((m, k) => {
      const a = m.accuracy[s];
      if (a === undefined) return;
      const dot = marker(SERIES[k][1], x(a), y, SERIES[k][0]);
      dot.append(svg("title", {}, document.createTextNode(`${m.name}, ${s}: ${pct(a)} of ${m.n_items[s]} items`)));
      chart.append(dot);
    });
  });
  const table = el("table", { class: "data" }, el("caption", { text: "The same figures as a table" }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "subject" }),
       ...models.map((m) => el("th", { scope: "col", class: "num", text: m.name })))),
    el("tbody", {}, ...subjects.map((s) => el("tr", {}, el("th", { scope: "row", text: s }),
       ...models.map((m) => el("td", { class: "num", text: pct(m.accuracy[s]) }))))));
  $("profile-chart").replaceChildren(chart, el("details", {}, el("summary", { text: "Show the figures" }), table));
}

async function probeEndpoints() {
  say("zoo-status", "Checking every endpoint (GET /models)…");
  try {
    const data = await apiJson("/v1/zoo/health");
    state.health = Object.fromEntries(data.endpoints.map((h) => [h.name, h]));
    const down = data.endpoints.filter((h) => !h.ok).length;
    renderZoo();
    say("zoo-status", `${data.endpoints.length - down} of ${data.endpoints.length} endpoints answer.`, down > 0);
  } catch (e) { say("zoo-status", e.message, true); }
}

async function waitForZoo(test, what) {
  for (let i = 0; i < 20; i++) {
    await new Promise((ok) => setTimeout(ok, 250));
    state.zoo = await apiJson("/v1/zoo");
    if (test(state.zoo)) { renderZoo(); return true; }
  }
  renderZoo();
  say("add-status", `The index changed but the proxy did not take ${what} in: see its log.`, true);
  return false;
}

async function addModel(event) {
  event.preventDefault();
  const file = $("add-profile").files[0];
  if (!file) { say("add-status", "Choose a profile JSON file.", true); return; }
  let profile;
  try { profile = JSON.parse(await file.text()); } catch (e) {
    say("add-status", `${file.name} is not JSON: ${e.message}`, true); return;
  }
  say("add-status", `Adding ${file.name}…`);
  try {
    const data = await apiJson("/v1/zoo/models", { method: "POST", json: {
      profile: profile, filename: file.name, base_url: $("add-url").value, price: $("add-price").value,
      api_key_env: $("add-key-env").value || null, upstream_model: $("add-upstream").value || null,
      replace: $("add-replace").checked } });
    const name = data.added.name;
    say("add-status", `Added ${name} to the zoo's index; waiting for the proxy to take it in…`);
    if (await waitForZoo((z) => z.models.some((m) => m.name === name), name)) {
      if (state.compare.length < 4 && !state.compare.includes(name)) state.compare.push(name);
      renderZoo();
      say("add-status", `Added ${name}: the proxy routes to it now.`);
      $("add-form").reset();
    }
  } catch (e) { say("add-status", e.message, true); }
}

async function removeModel(name) {
  if (!window.confirm(`Remove ${name} from the zoo? Its profile file is deleted from the zoo folder.`)) return;
  say("add-status", `Removing ${name}…`);
  try {
    await apiJson("/v1/zoo/models/" + encodeURIComponent(name), { method: "DELETE" });
    if (await waitForZoo((z) => !z.models.some((m) => m.name === name), "the removal")) {
      say("add-status", `Removed ${name}: the proxy no longer routes to it.`);
    }
  } catch (e) { say("add-status", e.message, true); }
}

// ---- Results ------------------------------------------------------------------------------------------------------
async function loadResultsList() {
  let data;
  try { data = await apiJson("/v1/results"); } catch (e) { say("results-status", e.message, true); return; }
  const select = $("results-folder");
  const current = select.value;
  select.replaceChildren(...data.folders.map((f) => el("option", { value: String(f.id), text: f.name })));
  if (!data.folders.length) {
    say("results-status", "No benchmark folder was given to this console: " + data.hint + ".");
    $("results-body").replaceChildren(); $("results-plots").replaceChildren();
    return;
  }
  if (current && data.folders.some((f) => String(f.id) === current)) select.value = current;
  loadResults();
}

async function loadResults() {
  const id = $("results-folder").value;
  say("results-status", "Loading…");
  try {
    const data = await apiJson(`/v1/results/${id}`);
    $("results-body").replaceChildren(...(data.markdown ? markdown(data.markdown) : []));
    const figures = [];
    for (const name of data.plots) {
      const r = await api(`/v1/results/${id}/plots/${encodeURIComponent(name)}`);
      if (!r.ok) continue;
      const url = URL.createObjectURL(await r.blob());
      figures.push(el("figure", {}, el("img", { src: url, alt: `plot ${name} of ${data.name}` }),
                      el("figcaption", { text: name })));
    }
    $("results-plots").replaceChildren(el("h3", { text: figures.length ? "Plots" : "No plots" }), ...figures);
    say("results-status", data.note || `${data.name}: results.md and ${figures.length} plots.`);
  } catch (e) { say("results-status", e.message, true); }
}

// A small Markdown reader for results.md: headings, paragraphs, pipe tables, bullet lists, **bold** and `code`.
function inline(text) {
  const out = [];
  const re = /(\*\*[^*]+\*\*|`[^`]+`)/g;
  let last = 0, m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(m[0][0] === "`" ? el("code", { text: m[0].slice(1, -1) }) : el("strong", { text: m[0].slice(2, -2) }));
    last = re.lastIndex;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}
function markdown(src) {
  const lines = src.split("\n"), blocks = [];
  const cells = (line) => line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    const h = /^(#{1,4})\s+(.*)$/.exec(line);
    if (h) { blocks.push(el("h" + Math.min(6, h[1].length + 2), {}, ...inline(h[2]))); i++; continue; }
    if (line.trim().startsWith("|")) {
      const rows = [];
      while (i < lines.length && lines[i].trim().startsWith("|")) rows.push(lines[i++]);
      const head = cells(rows[0]);
      const body = rows.slice(1).filter((r) => !/^\s*\|[\s:|-]+\|\s*$/.test(r));
      blocks.push(el("div", { class: "scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, ...head.map((c) => el("th", { scope: "col" }, ...inline(c))))),
        el("tbody", {}, ...body.map((r) => el("tr", {}, ...cells(r).map((c) => el("td", {}, ...inline(c)))))))));
      continue;
    }
    if (/^\s*- /.test(line)) {
      const ul = el("ul");
      let sub = null;
      while (i < lines.length && /^\s*- /.test(lines[i])) {
        const nested = /^\s{2,}- /.test(lines[i]);
        const li = el("li", {}, ...inline(lines[i].replace(/^\s*- /, "")));
        if (nested && ul.lastChild) { if (!sub) { sub = el("ul"); ul.lastChild.append(sub); } sub.append(li); }
        else { ul.append(li); sub = null; }
        i++;
      }
      blocks.push(ul);
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !/^(#|\s*\||\s*- )/.test(lines[i])) para.push(lines[i++]);
    blocks.push(el("p", {}, ...inline(para.join(" "))));
  }
  return blocks;
}

// ---- start --------------------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    say("login-status", "Checking the key…");
    try {
      if (await tryKey($("login-key").value.trim())) { $("login-key").value = ""; signedIn(); }
      else say("login-status", "The proxy refused this key.", true);
    } catch (err) { say("login-status", err.message, true); }
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("route-form").addEventListener("submit", routeInstruction);
  $("instruction").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) routeInstruction(e);
  });
  $("lambda-slider").addEventListener("input", onLambdaSlider);
  $("lambda-value").addEventListener("input", onLambdaNumber);
  $("send-button").addEventListener("click", send);
  $("probe-button").addEventListener("click", probeEndpoints);
  $("add-form").addEventListener("submit", addModel);
  $("results-folder").addEventListener("change", loadResults);
  window.addEventListener("hashchange", show);
  // a key from earlier in this tab, or a proxy that asks for none (auth.allow_unauthenticated)
  try {
    if (await tryKey(sessionStorage.getItem(KEY))) { signedIn(); return; }
  } catch (err) { say("login-status", err.message, true); }
  signOut("");
});
