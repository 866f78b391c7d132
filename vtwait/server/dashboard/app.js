// The vtwait simulator's live dashboard. Plain JavaScript, no build step, nothing from another host.
//
// Feeds: the event stream GET /events (EventSource resumes with Last-Event-ID after a drop) for
// the jobs, and GET /dashboard/summary every SUMMARY_MS for the counters; never a request per job.
// The jobs that exist when the page loads come from GET /jobs when the server has it, else from
// the event log's retained history (GET /events?last_event_id=<summary's replay_from>), else the page shows only the
// jobs that change after it loaded (and says so).
"use strict";

const SUMMARY_MS = 2000;        // counters (and the control API's panels) refresh period
const TICK_MS = 1000;           // progress, ETA and ages move on between events
const MAX_ROWS = 200;           // rows shown at most (newest first)
const MAX_JOBS = 5000;          // jobs remembered at most (the oldest finished ones go first)
const INITIAL_JOBS = 200;       // jobs asked of GET /jobs on load
const JOURNAL_ROWS = 20;        // request journal tail length
const PENDING = new Set(["queued", "running"]);

const jobs = new Map();         // job_id -> {doc, seen (ms, performance.now), row}
let clockOffset = 0;            // server Unix seconds minus this browser's
let lastEventId = null;         // the last event id received (the resume point)
let stream = null;
let streamFailures = 0;
let renderQueued = false;
let lastRequests = null;        // {total, at} of the previous summary, for requests/s
let controlApi = false;

const $ = (id) => document.getElementById(id);
// Absolute URLs on this origin: a page opened as http://user:password@host/ has a base URL with
// credentials, against which fetch() refuses to resolve a relative path. The browser still sends
// the HTTP Basic credentials it was given for the page.
const here = (path) => new URL(path, location.origin).href;
const nowSeconds = () => Date.now() / 1000 + clockOffset;

// ---- talking to the server -------------------------------------------------------------------

async function getJson(path, options = {}) {
  const response = await fetch(here(path), {credentials: "same-origin", cache: "no-store", ...options});
  let body = null;
  if (response.status !== 204) {
    try { body = await response.json(); } catch (_) { body = null; }
  }
  return {status: response.status, ok: response.ok, body};
}

function errorText(reply) {
  const error = reply.body && reply.body.error;
  return error ? `${reply.status} ${error.code}: ${error.message}` : `HTTP ${reply.status}`;
}

// ---- jobs ------------------------------------------------------------------------------------

function applyDoc(doc) {
  if (!doc || typeof doc.job_id !== "string") return;
  const job = jobs.get(doc.job_id);
  if (job) {
    if (!PENDING.has(job.doc.phase) && PENDING.has(doc.phase)) return;  // an old replayed change
    if (job.doc.phase === "queued" && doc.phase !== "queued") noteQueueDeparture(job.doc);
    job.doc = doc;
    job.seen = performance.now();
  } else {
    jobs.set(doc.job_id, {doc, seen: performance.now(), row: null, departures: 0});
    forgetOldJobs();
  }
  scheduleRender();
}

// A queued job ahead of another one left the queue: the one behind moves up one place.
function noteQueueDeparture(left) {
  for (const job of jobs.values()) {
    if (job.doc.phase === "queued" && job.doc !== left &&
        (job.doc.created_at ?? 0) >= (left.created_at ?? 0)) {
      job.departures += 1;
    }
  }
}

function forgetOldJobs() {
  if (jobs.size <= MAX_JOBS) return;
  const finished = [...jobs.values()].filter((j) => !PENDING.has(j.doc.phase))
    .sort((a, b) => (a.doc.created_at ?? 0) - (b.doc.created_at ?? 0));
  for (const job of finished.slice(0, jobs.size - MAX_JOBS)) {
    jobs.delete(job.doc.job_id);
    if (job.row) job.row.remove();
  }
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => { renderQueued = false; render(); }, 30);  // one render per burst of events
}

function matches(doc, text, phase) {
  if (text && !doc.job_id.toLowerCase().includes(text)) return false;
  if (phase === "pending") return PENDING.has(doc.phase);
  return !phase || doc.phase === phase;
}

function render() {
  const text = $("filter-text").value.trim().toLowerCase();
  const phase = $("filter-phase").value;
  const chosen = [...jobs.values()].filter((j) => matches(j.doc, text, phase))
    .sort((a, b) => (b.doc.created_at ?? 0) - (a.doc.created_at ?? 0));
  const shown = chosen.slice(0, MAX_ROWS);
  const body = $("jobs-body");
  const keep = new Set();
  shown.forEach((job, index) => {
    if (!job.row) job.row = makeRow(job.doc.job_id);
    updateRow(job);
    keep.add(job.row);
    if (body.children[index] !== job.row) body.insertBefore(job.row, body.children[index] || null);
  });
  for (const row of [...body.children]) if (!keep.has(row)) row.remove();
  $("jobs-shown").textContent = chosen.length > shown.length
    ? `${shown.length} newest of ${chosen.length} shown` : `${chosen.length} shown`;
}

function makeRow(jobId) {
  const row = document.createElement("tr");
  row.dataset.jobId = jobId;
  const cells = ["job", "phase", "progress", "eta opt", "queue opt", "age opt", "result", "actions"];
  for (const name of cells) {
    const cell = document.createElement(name === "job" ? "th" : "td");
    if (name === "job") cell.scope = "row";
    cell.className = name;
    row.appendChild(cell);
  }
  const id = document.createElement("code");
  id.textContent = jobId;
  id.title = jobId;
  row.cells[0].appendChild(id);
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.setAttribute("aria-label", `progress of job ${jobId}`);
  const percent = document.createElement("span");
  percent.className = "percent";
  row.cells[2].append(bar, percent);
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "cancel";
  cancel.textContent = "Cancel";
  cancel.setAttribute("aria-label", `Cancel job ${jobId}`);
  cancel.addEventListener("click", () => cancelJob(jobId, cancel));
  row.cells[7].appendChild(cancel);
  return row;
}

function updateRow(job) {
  const {doc, row} = job;
  const pending = PENDING.has(doc.phase);
  const elapsed = (performance.now() - job.seen) / 1000;
  const phaseCell = row.cells[1];
  if (phaseCell.textContent !== doc.phase) {
    phaseCell.textContent = doc.phase;
    phaseCell.dataset.phase = doc.phase;
  }
  row.dataset.phase = doc.phase;
  let progress = typeof doc.progress === "number" ? doc.progress : 0;
  let eta = typeof doc.eta_seconds === "number" ? doc.eta_seconds : null;
  if (doc.phase === "running" && eta !== null) {
    const left = eta;                   // seconds left when the document was written
    if (left > 0) progress += (1 - progress) * Math.min(elapsed / left, 1);
    progress = Math.min(progress, 0.999);
    eta = Math.max(left - elapsed, 0);
  } else if (doc.phase === "queued" && eta !== null) {
    eta = Math.max(eta - elapsed, 0);
  }
  const bar = row.cells[2].firstChild;
  bar.value = progress;
  row.cells[2].lastChild.textContent = `${Math.floor(progress * 100)}%`;
  row.cells[3].textContent = pending && eta !== null ? formatSeconds(eta) : "";
  row.cells[4].textContent = doc.phase === "queued" && typeof doc.queue_position === "number"
    ? String(Math.max(doc.queue_position - job.departures, 1)) : "";
  row.cells[5].textContent = typeof doc.created_at === "number"
    ? formatSeconds(Math.max(nowSeconds() - doc.created_at, 0)) : "";
  const result = row.cells[6];
  result.textContent = pending ? "" : doc.result + (doc.cancel_reason ? ` (${doc.cancel_reason})` : "");
  result.dataset.result = doc.result;
  result.title = doc.error || "";
  const cancel = row.cells[7].firstChild;
  cancel.hidden = !pending;
}

function formatSeconds(seconds) {
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

async function cancelJob(jobId, button) {
  button.disabled = true;
  try {
    const reply = await getJson(`/status/${encodeURIComponent(jobId)}/cancel`, {method: "POST"});
    if (reply.body && reply.body.job_id) applyDoc(reply.body);
    if (!reply.ok && reply.status !== 409) $("start-result").textContent = `Cancel: ${errorText(reply)}`;
  } catch (error) {
    $("start-result").textContent = `Cancel failed: ${error}`;
  } finally {
    button.disabled = false;
  }
}

async function startJob(event) {
  event.preventDefault();
  const body = {delay: Number($("start-delay").value)};
  const outcome = $("start-outcome").value;
  if (outcome) body.outcome = outcome;
  const out = $("start-result");
  try {
    const reply = await getJson("/start", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    if (reply.body && reply.body.job_id) {
      applyDoc(reply.body);
      out.textContent = `Started ${reply.body.job_id}`;
    } else {
      out.textContent = `Start: ${errorText(reply)}`;
    }
  } catch (error) {
    out.textContent = `Start failed: ${error}`;
  }
}

// ---- the event stream ------------------------------------------------------------------------

function setStreamState(state) {
  const label = $("stream-state");
  label.textContent = state;
  label.dataset.state = state;
}

function openStream(after) {
  if (stream) stream.close();
  const query = after === null ? "" : `?last_event_id=${after}`;
  const source = new EventSource(here(`/events${query}`));
  stream = source;
  let opened = false;
  source.addEventListener("open", () => {
    opened = true;
    streamFailures = 0;
    setStreamState("live");
  });
  source.addEventListener("status", (event) => {
    if (event.lastEventId) lastEventId = Number(event.lastEventId);
    try { applyDoc(JSON.parse(event.data)); } catch (_) { /* a malformed event: skip it */ }
  });
  source.addEventListener("error", () => {
    if (source !== stream) return;
    if (source.readyState === EventSource.CONNECTING) {
      setStreamState("reconnecting");  // the browser resumes by itself, with Last-Event-ID
      return;
    }
    // Closed: the server refused the stream (401, 429, 410 Gone after too long away, ...).
    setStreamState("disconnected");
    streamFailures += 1;
    const delay = Math.min(1000 * 2 ** streamFailures, 30000);
    if (opened || streamFailures === 1) {
      setTimeout(() => openStream(lastEventId ?? after), delay);  // resume where we were
    } else {
      setTimeout(resync, delay);  // resuming failed twice: start again from what the server has
    }
  });
}

// Reads what exists now, then streams every change after it.
async function resync() {
  const summary = await refreshSummary();
  if (!summary) { setTimeout(resync, 2000); return; }
  if (!summary.events) {
    setStreamState("off (EVENTS=0)");
    return;
  }
  const listed = await loadJobs();
  if (listed) {
    openStream(summary.last_event_id);
  } else if (lastEventId === null && streamFailures === 0) {
    openStream(summary.replay_from);  // no GET /jobs: replay the event log's retained history
  } else {
    showNote("Jobs that existed before this page loaded and have not changed since are not listed.");
    openStream(summary.last_event_id);
  }
}

async function loadJobs() {
  try {
    const reply = await getJson(`/jobs?limit=${INITIAL_JOBS}`);
    if (!reply.ok || !reply.body || !Array.isArray(reply.body.jobs)) return false;
    reply.body.jobs.forEach(applyDoc);
    return true;
  } catch (_) {
    return false;
  }
}

function showNote(text) {
  const note = $("jobs-note");
  note.textContent = text;
  note.hidden = false;
}

// ---- counters ---------------------------------------------------------------------------------

async function refreshSummary() {
  let reply;
  try { reply = await getJson("/dashboard/summary"); } catch (_) { return null; }
  if (!reply.ok || !reply.body) return null;
  const s = reply.body;
  clockOffset = s.time - Date.now() / 1000;
  for (const phase of ["queued", "running", "completed", "error", "canceled"]) {
    $(`count-${phase}`).textContent = String(s.jobs[phase] ?? 0);
  }
  $("count-long-polls").textContent = String(s.long_polls_held);
  $("count-streams").textContent = String(s.streams_open);
  const at = performance.now();
  if (lastRequests && at > lastRequests.at) {
    const rate = (s.requests_total - lastRequests.total) / ((at - lastRequests.at) / 1000);
    $("count-rps").textContent = rate.toFixed(1);
  }
  lastRequests = {total: s.requests_total, at};
  if (s.control_api !== controlApi) {
    controlApi = s.control_api;
    $("admin").hidden = !controlApi;
  }
  if (controlApi && adminToken()) refreshAdmin();
  return s;
}

// ---- the control API (/_admin/, when ADMIN_TOKEN is set on the server) ------------------------

function adminToken() { return sessionStorage.getItem("vtwait-admin-token") || ""; }

function admin(path, options = {}) {
  const headers = {...(options.headers || {}), Authorization: `Bearer ${adminToken()}`};
  return getJson(path, {...options, headers});
}

async function refreshAdmin() {
  try {
    const faults = await admin("/_admin/faults");
    if (faults.ok && faults.body) renderFaults(faults.body.rules || []);
    else $("admin-result").textContent = `Fault rules: ${errorText(faults)}`;
    const requests = await admin(`/_admin/requests?limit=${JOURNAL_ROWS}`);  // the last ones
    if (requests.ok && requests.body) renderJournal(requests.body.requests || []);
  } catch (error) {
    $("admin-result").textContent = `Control API: ${error}`;
  }
}

// Rows are kept by rule id and updated in place, so a focused Remove button keeps its focus.
function renderFaults(rules) {
  const body = $("faults-body");
  const rows = new Map([...body.rows].map((row) => [row.dataset.ruleId, row]));
  const keep = new Set();
  rules.forEach((rule, index) => {
    let row = rows.get(rule.id);
    if (!row) row = makeFaultRow(rule.id);
    const detail = [
      rule.status != null ? `status ${rule.status}` : "",
      rule.latency != null ? `latency ${rule.latency} s` : "",
      rule.retry_after != null ? `Retry-After ${rule.retry_after}` : "",
      rule.probability != null && rule.probability !== 1 ? `p ${rule.probability}` : "",
      rule.times != null ? `${rule.times}×` : "",
      rule.job_id ? `job ${rule.job_id}` : "",
    ].filter(Boolean).join(", ");
    [rule.id, rule.route, rule.method, rule.action, detail, rule.fired].forEach((value, i) => {
      const text = String(value ?? "");
      if (row.cells[i].textContent !== text) row.cells[i].textContent = text;
    });
    keep.add(row);
    if (body.rows[index] !== row) body.insertBefore(row, body.rows[index] || null);
  });
  for (const row of [...body.rows]) if (!keep.has(row)) row.remove();
}

function makeFaultRow(ruleId) {
  const row = document.createElement("tr");
  row.dataset.ruleId = ruleId;
  for (let i = 0; i < 6; i++) row.appendChild(document.createElement("td"));
  const cell = document.createElement("td");
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "Remove";
  remove.setAttribute("aria-label", `Remove fault rule ${ruleId}`);
  remove.addEventListener("click", async () => {
    remove.disabled = true;
    const reply = await admin(`/_admin/faults/${encodeURIComponent(ruleId)}`, {method: "DELETE"});
    $("admin-result").textContent = reply.ok ? `Removed rule ${ruleId}` : errorText(reply);
    remove.disabled = false;
    refreshAdmin();
  });
  cell.appendChild(remove);
  row.appendChild(cell);
  return row;
}

function renderJournal(entries) {
  const body = $("journal-body");
  body.replaceChildren();
  for (const entry of [...entries].reverse()) {  // newest first
    const row = document.createElement("tr");
    const time = new Date(entry.time * 1000).toLocaleTimeString();
    for (const [value, name] of [[time, ""], [entry.method, ""], [entry.path, ""],
                                 [entry.status, ""], [Number(entry.duration_ms).toFixed(1), "opt"]]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      if (name) cell.className = name;
      row.appendChild(cell);
    }
    body.appendChild(row);
  }
}

async function addFault(event) {
  event.preventDefault();
  const form = event.target;
  const rule = {route: form.route.value, method: form.method.value, action: form.action.value};
  for (const name of ["status", "retry_after", "latency", "probability", "times"]) {
    if (form[name].value !== "") rule[name] = Number(form[name].value);
  }
  if (rule.action !== "status") delete rule.status;
  if (form.job_id.value.trim()) rule.job_id = form.job_id.value.trim();
  const reply = await admin("/_admin/faults", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(rule)});
  $("admin-result").textContent = reply.ok ? `Added rule ${reply.body.id}` : errorText(reply);
  refreshAdmin();
}

// ---- start ------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("start-form").addEventListener("submit", startJob);
  $("filter-form").addEventListener("submit", (event) => event.preventDefault());
  $("filter-text").addEventListener("input", scheduleRender);
  $("filter-phase").addEventListener("change", scheduleRender);
  $("admin-token").value = adminToken();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("vtwait-admin-token", $("admin-token").value);
    $("admin-result").textContent = "Token set for this tab";
    refreshAdmin();
  });
  $("fault-form").addEventListener("submit", addFault);
  setInterval(refreshSummary, SUMMARY_MS);
  setInterval(render, TICK_MS);
  resync();
});
