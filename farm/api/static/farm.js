// The live farm page: polls the farm's API with the token the user gave (kept in this tab's sessionStorage only).
// Every value shown comes from other people's job files: text is always set with textContent, never as HTML.
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";
let selected = null;

function token() {
  const fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromFragment) {
    sessionStorage.setItem("farm-token", fromFragment);
    history.replaceState(null, "", location.pathname);  // the token leaves the address bar and the history
  }
  return sessionStorage.getItem("farm-token");
}

async function api(path, options = {}) {
  const resp = await fetch(path, { ...options, headers: { Authorization: "Bearer " + token() } });
  if (resp.status === 401) {
    sessionStorage.removeItem("farm-token");
    showLogin("the token was refused");
    throw new Error("unauthorized");
  }
  if (!resp.ok) throw new Error(path + ": " + resp.status);
  return resp;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function stateCell(state) {
  return el("td", state, "state state-" + state);
}

function bar(done, total) {
  const td = el("td");
  const outer = el("div", null, "bar");
  const fill = el("div");
  fill.style.width = (total ? (100 * done) / total : 0) + "%";
  outer.append(fill, el("span", done + " / " + total));
  td.append(outer);
  return td;
}

function renderDevices(devices) {
  const body = document.querySelector("#devices tbody");
  body.replaceChildren(...devices.map((d) => {
    const tr = row([d.device_id, d.kind, d.node, stateCell(d.state),
      d.temperature_c === null ? "" : d.temperature_c.toFixed(1) + " °C", d.current_run, d.holder, d.reason]);
    tr.dataset.deviceId = d.device_id;
    return tr;
  }));
}

function renderJobs(jobs) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(...jobs.slice().reverse().map((j) => {
    const counts = Object.entries(j.statuses).sort().map(([s, n]) => s + " " + n).join(", ");
    const show = el("button", "details", "link");
    show.addEventListener("click", () => select(j.job_id));
    const actions = el("td");
    actions.append(show);
    if (j.state === "running") {
      const cancel = el("button", "cancel", "link");
      cancel.addEventListener("click", () => api("/api/jobs/" + encodeURIComponent(j.job_id) + "/cancel",
        { method: "POST" }).then(refresh).catch(report));
      actions.append(" · ", cancel);
    }
    const tr = row([j.job_id, stateCell(j.state), bar(j.done, j.total), counts,
      new Date(j.submitted_at * 1000).toLocaleTimeString(), actions]);
    tr.dataset.jobId = j.job_id;
    tr.dataset.done = j.done;
    tr.dataset.total = j.total;
    tr.dataset.state = j.state;
    if (j.job_id === selected) tr.classList.add("selected");
    return tr;
  }));
}

function chart(allRows, metric) {
  const box = document.getElementById("chart");
  // measurements only: ok runs that are not warm-ups (a failed run's figures say nothing about the model)
  const rows = allRows.filter((r) => r.status === "ok" && !r.warmup && typeof r[metric] === "number");
  const points = rows.map((r, i) => [i, r[metric]]);
  document.getElementById("chart-title").textContent = points.length ? metric + " per run" : "no measurement yet";
  if (!points.length) { box.replaceChildren(); return; }
  const W = 640, H = 220, L = 60, B = 24;
  const ys = points.map(([, v]) => v);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (lo === hi) { lo -= 1; hi += 1; }
  const x = (i) => L + ((W - L - 10) * i) / Math.max(1, rows.length - 1);
  const y = (v) => H - B - ((H - B - 10) * (v - lo)) / (hi - lo);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("role", "img");
  const line = (x1, y1, x2, y2) => {
    const l = document.createElementNS(SVG, "line");
    Object.entries({ x1, y1, x2, y2, stroke: "#8c959f" }).forEach(([k, v]) => l.setAttribute(k, v));
    svg.append(l);
  };
  const label = (tx, ty, text, anchor) => {
    const t = document.createElementNS(SVG, "text");
    Object.entries({ x: tx, y: ty, "text-anchor": anchor }).forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = text;
    svg.append(t);
  };
  line(L, 10, L, H - B);
  line(L, H - B, W - 10, H - B);
  label(L - 4, y(hi) + 4, hi.toPrecision(4), "end");
  label(L - 4, y(lo) + 4, lo.toPrecision(4), "end");
  label((L + W) / 2, H - 6, "run (in start order)", "middle");
  for (const [i, v] of points) {
    const c = document.createElementNS(SVG, "circle");
    Object.entries({ cx: x(i), cy: y(v), r: 3, fill: "#0969da" }).forEach(([k, val]) => c.setAttribute(k, val));
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = rows[i].run_id + " on " + rows[i].device_id + ": " + v;
    c.append(tip);
    svg.append(c);
  }
  box.replaceChildren(svg);
}

async function showLog(jobId, runId, attempt) {
  const q = new URLSearchParams({ run_id: runId, attempt: String(attempt) });
  const resp = await api("/api/jobs/" + encodeURIComponent(jobId) + "/log?" + q);
  const pre = document.getElementById("log");
  pre.textContent = await resp.text();
  pre.hidden = false;
}

async function renderDetail() {
  const jobId = selected;
  if (!jobId) return;
  const base = "/api/jobs/" + encodeURIComponent(jobId) + "/rows?limit=2000";
  const [all, failed] = await Promise.all([api(base).then((r) => r.json()),
    api(base + "&failures=true").then((r) => r.json())]);
  if (jobId !== selected) return;  // another job was picked meanwhile: its own refresh shows it
  chart(all.rows, all.headline_metric);
  document.querySelector("#failures tbody").replaceChildren(...failed.rows.map((r) => {
    const open = el("button", "log", "link");
    open.addEventListener("click", () => showLog(jobId, r.run_id, r.attempt).catch(report));
    const cell = el("td");
    cell.append(open);
    return row([r.run_id, r.attempt, r.device_id, stateCell(r.status), r.error, cell]);
  }));
}

function select(jobId) {
  selected = jobId;
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-id").textContent = jobId;
  document.getElementById("log").hidden = true;
  refresh();
}

function report(err) {
  if (err.message === "unauthorized") return;
  const box = document.getElementById("error");
  box.textContent = String(err.message || err);
  box.hidden = false;
}

let refreshing = false;
let refreshAgain = false;

async function refresh() {
  if (!token()) return;
  if (refreshing) { refreshAgain = true; return; }  // one refresh at a time, in order
  refreshing = true;
  try {
    const [devices, jobs] = await Promise.all([api("/api/devices").then((r) => r.json()),
      api("/api/jobs").then((r) => r.json())]);
    renderDevices(devices);
    renderJobs(jobs);
    await renderDetail();
    document.getElementById("farm").hidden = false;
    document.getElementById("error").hidden = true;
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    report(err);
  } finally {
    refreshing = false;
    if (refreshAgain) { refreshAgain = false; refresh(); }
  }
}

function showLogin(why) {
  document.getElementById("login").hidden = false;
  document.getElementById("farm").hidden = true;
  if (why) report(new Error(why));
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("farm-token", document.getElementById("token").value);
  document.getElementById("login").hidden = true;
  refresh();
});

if (token()) refresh(); else showLogin();
setInterval(refresh, POLL_MS);
