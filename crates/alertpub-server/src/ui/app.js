// alertpub's status page: reads the API, and writes through it with the bearer token given
// (kept for this tab only). No framework, no external resource.
"use strict";

const $ = (selector) => document.querySelector(selector);

function token() {
  return sessionStorage.getItem("alertpub-token") || "";
}

async function api(method, path, body) {
  const headers = {};
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!response.ok) {
    const message = json && json.error ? json.error.kind + ": " + json.error.message : response.status + " " + text;
    throw new Error(message);
  }
  return json;
}

function notice(text, error) {
  const element = $("#notice");
  element.textContent = text;
  element.className = error ? "error" : "";
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "–" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(row, label, className, onClick) {
  const td = document.createElement("td");
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = className;
  b.addEventListener("click", onClick);
  td.appendChild(b);
  row.appendChild(td);
}

function alertName(labels) {
  if (!labels) return "–";
  return labels.alertname || Object.entries(labels).map(([k, v]) => k + "=" + v).join(", ");
}

async function sendTest(target) {
  notice("Sending a test notification to " + target + "…");
  try {
    const result = await api("POST", "/api/v1/publish/parallel", {
      alert: {
        labels: { alertname: "AlertpubTestNotification", severity: "info", alertpub_test: "true" },
        annotations: { summary: "A test notification from the alertpub status page" },
      },
      targets: [target],
    });
    const one = (result.results || [])[0] || {};
    if (one.outcome === "success") {
      notice("Test notification delivered to " + target + " (HTTP " + one.status_code + ", " + one.duration_ms + " ms).");
    } else {
      notice("Test notification to " + target + " failed: " + (one.error ? one.error.kind + " " + (one.status_code || "") : one.outcome), true);
    }
  } catch (e) {
    notice("Test notification to " + target + " failed: " + e.message, true);
  }
  refresh();
}

async function deadLetter(action, id) {
  try {
    if (action === "replay") {
      await api("POST", "/api/v1/dlq/" + encodeURIComponent(id) + "/replay");
      notice("Dead letter " + id + " replayed.");
    } else {
      await api("DELETE", "/api/v1/dlq/" + encodeURIComponent(id));
      notice("Dead letter " + id + " deleted.");
    }
  } catch (e) {
    notice("The dead letter could not be " + (action === "replay" ? "replayed" : "deleted") + ": " + e.message, true);
  }
  refresh();
}

function renderTargets(targets, queue) {
  const body = $("#targets tbody");
  body.replaceChildren();
  const byTarget = {};
  for (const t of (queue && queue.targets) || []) byTarget[t.target] = t;
  const lanes = {};
  for (const l of (queue && queue.lanes) || []) lanes[l.name] = l;
  for (const target of targets.targets || []) {
    const row = document.createElement("tr");
    row.dataset.target = target.name;
    const jobs = byTarget[target.name] || {};
    const lane = lanes[target.name] || {};
    cell(row, target.name);
    cell(row, target.kind);
    cell(row, target.enabled ? target.health.status : "disabled", target.enabled ? target.health.status : "unknown");
    cell(row, target.circuit.state, target.circuit.state);
    cell(row, jobs.paused || lane.reason || "running", jobs.paused || lane.reason ? "paused" : "ok");
    cell(row, jobs.pending || 0, "num");
    cell(row, jobs.in_flight || 0, "num");
    button(row, "Send a test notification", "test", () => sendTest(target.name));
    body.appendChild(row);
  }
}

function renderDlq(page, queue) {
  const body = $("#dlq tbody");
  body.replaceChildren();
  const entries = (page && page.entries) || [];
  $("#dlq-count").textContent = "(" + (queue ? queue.dead_letters : entries.length) + ")";
  $("#depth").textContent = "(" + (queue ? queue.depth : "–") + " waiting)";
  for (const entry of entries) {
    const row = document.createElement("tr");
    row.dataset.id = entry.id;
    const alert = entry.alert && (entry.alert.alert || entry.alert);
    cell(row, entry.dead_at);
    cell(row, entry.target);
    cell(row, alertName(alert && alert.labels));
    cell(row, entry.reason, "failed");
    cell(row, entry.attempts, "num");
    cell(row, entry.last_error ? entry.last_error.kind + (entry.last_error.status_code ? " " + entry.last_error.status_code : "") : "");
    const actions = document.createElement("td");
    for (const [label, action] of [["Replay", "replay"], ["Delete", "delete"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.className = action;
      b.addEventListener("click", () => deadLetter(action, entry.id));
      actions.appendChild(b);
    }
    row.appendChild(actions);
    body.appendChild(row);
  }
}

function renderDeliveries(page) {
  const body = $("#deliveries tbody");
  body.replaceChildren();
  for (const d of (page && page.entries) || []) {
    const row = document.createElement("tr");
    row.dataset.id = d.id;
    cell(row, d.at);
    cell(row, d.target);
    cell(row, alertName(d.labels));
    cell(row, d.status);
    cell(row, d.attempt, "num");
    cell(row, d.outcome, d.outcome);
    cell(row, d.status_code || d.error_kind || "");
    cell(row, d.latency_ms + " ms", "num");
    body.appendChild(row);
  }
}

function deliveriesQuery() {
  const params = new URLSearchParams({ limit: "50" });
  const matcher = $("#matcher").value.trim();
  const target = $("#target-filter").value.trim();
  if (matcher) params.append("matcher", matcher);
  if (target) params.append("target", target);
  return "/api/v1/deliveries?" + params.toString();
}

async function refresh() {
  try {
    const [targets, queue, dlq, deliveries] = await Promise.all([
      api("GET", "/api/v1/targets"),
      api("GET", "/api/v1/queue"),
      api("GET", "/api/v1/dlq?limit=50"),
      api("GET", deliveriesQuery()),
    ]);
    renderTargets(targets, queue);
    renderDlq(dlq, queue);
    renderDeliveries(deliveries);
    document.body.dataset.loaded = "true";
  } catch (e) {
    notice("Could not read the API: " + e.message, true);
  }
}

async function version() {
  try {
    const status = await api("GET", "/api/v2/status");
    const v = status.versionInfo;
    $("#version").textContent = "version " + v.version + " (" + v.revision + ")";
  } catch (_) { /* the page works without it */ }
}

document.addEventListener("DOMContentLoaded", () => {
  const input = $("#token");
  input.value = token();
  input.addEventListener("change", () => {
    sessionStorage.setItem("alertpub-token", input.value);
    refresh();
  });
  $("#search").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  version();
  refresh();
  setInterval(refresh, 5000);
});
