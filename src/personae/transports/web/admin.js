// The operator dashboard: live figures from /metrics, characters and card import, API keys,
// and the audit log. Everything goes through the admin API with the signed-in key.

import { ApiError, api, auth, blobUrl, signIn, whoami } from "./api.js";
import { format, lineChart } from "./chart.js";
import { $, h, show, when } from "./dom.js";
import { loadExperiments } from "./experiments.js";
import { buckets, minus, parseMetrics, quantile, sum } from "./metrics.js";

const POLL_MS = Number(new URLSearchParams(location.search).get("every")) || 2000;
const CHARACTERS_EVERY_MS = 3000;
const HISTORY = 60; // points kept per chart
const TABS = ["live", "characters", "experiments", "keys", "audit"];
let current = "live";

// ---- signing in ------------------------------------------------------------------------

async function boot() {
  wire();
  if (!auth.signedIn()) return signInView();
  try {
    if (!(await whoami()).admin) return signInView("This dashboard needs an admin key.");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signInView(error.message);
    return status(`Could not load: ${error.message}`);
  }
  show($("#signin"), false);
  show($("#dashboard"), true);
  show($("#nav"), true);
  select(location.hash.slice(1) || "live");
  poll();
  // Hot reload happens behind the page's back: keep the characters' load status current.
  setInterval(() => {
    if (current === "characters" && !document.hidden) loadCharacters().catch((error) => status(error.message));
  }, CHARACTERS_EVERY_MS);
}

function signInView(message = "") {
  auth.signOut();
  show($("#dashboard"), false);
  show($("#signin"), true);
  $("#signin-error").textContent = message;
  $("#api-key").focus();
}

function status(text) {
  $("#status").textContent = text;
}

function select(tab) {
  current = TABS.includes(tab) ? tab : "live";
  for (const name of TABS) {
    $(`#tab-${name}`).setAttribute("aria-selected", String(name === current));
    show($(`#${name}`), name === current);
  }
  history.replaceState(null, "", `#${current}`);
  const load = { characters: loadCharacters, experiments: loadExperiments, keys: loadKeys, audit: loadAudit }[current];
  load?.().catch((error) => status(error.message));
}

// ---- live ------------------------------------------------------------------------------------

const live = { previous: null, rate: [], p50: [], p95: [], ttft50: [], ttft95: [] };

function push(list, value) {
  list.push(value);
  if (list.length > HISTORY) list.shift();
}

async function poll() {
  try {
    const response = await fetch("/metrics");
    if (!response.ok) throw new Error(`/metrics answered ${response.status}: ${(await response.text()).trim()}`);
    sample(parseMetrics(await response.text()));
    show($("#live-error"), false);
  } catch (error) {
    $("#live-error").textContent = error.message;
    show($("#live-error"), true);
  }
  setTimeout(poll, POLL_MS);
}

function sample(samples) {
  const now = {
    at: performance.now(),
    turns: sum(samples, "personae_turns_total"),
    duration: buckets(samples, "personae_turn_duration_seconds"),
    ttft: buckets(samples, "personae_turn_first_token_seconds"),
  };
  const before = live.previous;
  live.previous = now;
  const seconds = before ? (now.at - before.at) / 1000 : 0;
  const turns = before ? now.turns - before.turns : 0;
  push(live.rate, seconds > 0 ? turns / seconds : 0);
  // Percentiles of the turns in this interval; none ran: a gap in the line.
  const duration = minus(now.duration, before?.duration);
  const ttft = minus(now.ttft, before?.ttft);
  push(live.p50, quantile(0.5, duration));
  push(live.p95, quantile(0.95, duration));
  push(live.ttft50, quantile(0.5, ttft));
  push(live.ttft95, quantile(0.95, ttft));

  tile("turns", now.turns);
  tile("rate", live.rate.at(-1));
  tile("connections", sum(samples, "personae_websocket_connections"));
  tile("sessions", sum(samples, "personae_conversation_sessions"));
  tile("running", sum(samples, "personae_turns_running"));
  tile("queued", sum(samples, "personae_turns_queued"));
  tile("errors", sum(samples, "personae_turns_total", (l) => l.outcome !== "ok"));
  tile("rejections", sum(samples, "personae_rejections_total"));
  lineChart($("#chart-rate"), [{ points: live.rate }], { unit: "/s" });
  lineChart($("#chart-latency"), [{ points: live.p50 }, { points: live.p95, cls: "second" }], { unit: "s" });
  lineChart($("#chart-ttft"), [{ points: live.ttft50 }, { points: live.ttft95, cls: "second" }], { unit: "s" });
  backends(samples);
}

function tile(name, value) {
  const el = $(`#m-${name}`);
  el.textContent = Number.isInteger(value) ? String(value) : format(value);
  el.dataset.value = String(value);
}

function backends(samples) {
  const names = new Set(samples.filter((s) => s.name === "personae_backend_circuit_state").map((s) => s.labels.backend));
  const of = (name, metric) => sum(samples, metric, (l) => l.backend === name);
  $("#backends").replaceChildren(
    ...[...names].sort().map((name) => {
      const open = samples.find(
        (s) => s.name === "personae_backend_circuit_state" && s.labels.backend === name && s.value === 1,
      );
      const circuit = open ? open.labels.state : "unknown";
      return h(
        "tr",
        {},
        h("td", {}, name),
        h("td", { class: circuit === "closed" ? "good" : "bad" }, circuit),
        h("td", {}, String(of(name, "personae_backend_consecutive_failures"))),
        h("td", {}, String(of(name, "personae_backend_in_flight"))),
      );
    }),
  );
}

// ---- characters ------------------------------------------------------------------------------

async function loadCharacters() {
  const characters = await api("/api/characters");
  $("#character-rows").replaceChildren(
    ...characters.map((c) =>
      h(
        "tr",
        { "data-character": c.id },
        h("td", {}, h("strong", {}, c.name), h("div", { class: "hint" }, c.id)),
        h("td", {}, c.version || "–"),
        h("td", { title: c.version_hash }, c.version_hash.slice(0, 12)),
        h("td", { class: c.load_status === "ok" ? "good" : "bad" }, c.load_status),
        h("td", { class: "bad" }, c.errors.join("\n")),
        h(
          "td",
          { class: "exports" },
          ...EXPORTS.map(([fmt, label]) =>
            h("button", { type: "button", onclick: () => exportCard(c.id, fmt), "aria-label": `Export ${c.name} as ${label}` }, label),
          ),
        ),
      ),
    ),
  );
}

const EXPORTS = [["v3", "JSON"], ["png", "PNG"], ["charx", "CHARX"]];

// Downloads the character's file, as the server writes it in that format.
async function exportCard(id, fmt) {
  const result = $("#import-result");
  result.className = "";
  try {
    const url = await blobUrl(`/api/characters/${encodeURIComponent(id)}/export?format=${fmt}`, { cache: false });
    const suffix = { v3: "json", png: "png", charx: "charx" }[fmt];
    const link = h("a", { href: url, download: `${id}.${suffix}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    result.textContent = `Exported ${id} as ${fmt}.`;
  } catch (error) {
    result.className = "error";
    result.textContent = `Not exported: ${error.message}`;
  }
}

async function importCard(file) {
  const result = $("#import-result");
  result.className = "";
  result.textContent = `Importing ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  const force = $("#card-force").checked ? "?force=true" : "";
  try {
    const character = await api(`/api/characters${force}`, { method: "POST", form });
    result.textContent = `Imported ${character.name} (${character.id}).`;
    await loadCharacters();
  } catch (error) {
    result.className = "error";
    result.textContent = `Not imported: ${error.message}`;
  }
}

// ---- keys ------------------------------------------------------------------------------------

async function loadKeys() {
  const keys = await api("/api/admin/keys");
  $("#key-rows").replaceChildren(
    ...keys.map((k) =>
      h(
        "tr",
        { "data-key": k.id },
        h("td", {}, k.id),
        h("td", {}, k.role),
        h("td", {}, k.subject),
        h("td", {}, k.tenant),
        h("td", {}, when(k.created_at)),
        h("td", {}, k.expires_at ? when(k.expires_at) : "never"),
        h("td", {}, k.revoked_at ? when(k.revoked_at) : ""),
        h(
          "td",
          {},
          k.revoked_at
            ? ""
            : h("button", { type: "button", class: "danger", onclick: () => revoke(k.id) }, `Revoke ${k.id}`),
        ),
      ),
    ),
  );
}

async function createKey(event) {
  event.preventDefault();
  const body = { role: $("#key-role").value, subject: $("#key-subject").value.trim(), tenant: $("#key-tenant").value.trim() };
  const expires = $("#key-expires").value;
  if (expires) body.expires_at = new Date(`${expires}T23:59:59Z`).toISOString();
  $("#key-error").textContent = "";
  try {
    const issued = await api("/api/admin/keys", { method: "POST", json: body });
    $("#new-key-token").textContent = issued.token;
    show($("#new-key"), true);
    $("#key-subject").value = "";
    await loadKeys();
  } catch (error) {
    $("#key-error").textContent = `Not created: ${error.message}`;
  }
}

async function revoke(id) {
  if (!confirm(`Revoke key ${id}? Clients using it stop working.`)) return;
  try {
    await api(`/api/admin/keys/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (error) {
    $("#key-error").textContent = `Not revoked: ${error.message}`;
  }
  await loadKeys();
}

// ---- audit -----------------------------------------------------------------------------------

async function loadAudit() {
  const query = new URLSearchParams({ limit: "200" });
  const action = $("#audit-action").value.trim();
  const actor = $("#audit-actor").value.trim();
  if (action) query.set("action", action);
  if (actor) query.set("actor", actor);
  const entries = await api(`/api/admin/audit?${query}`);
  $("#audit-rows").replaceChildren(
    ...entries.map((e) =>
      h(
        "tr",
        { "data-action": e.action },
        h("td", {}, when(e.at)),
        h("td", {}, e.action),
        h("td", {}, e.actor),
        h("td", { class: e.outcome === "ok" ? "" : "bad" }, e.outcome),
        h("td", {}, e.target ?? ""),
        h("td", {}, h("code", {}, JSON.stringify(e.details))),
      ),
    ),
  );
}

// ---- wiring ----------------------------------------------------------------------------------

function wire() {
  $("#signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const me = await signIn($("#api-key").value);
      if (!me.admin) return signInView("That key is not an admin's.");
      location.reload();
    } catch (error) {
      $("#signin-error").textContent = error.status === 401 ? "That key was not accepted." : error.message;
    }
  });
  $("#sign-out").addEventListener("click", () => {
    auth.signOut();
    location.reload();
  });
  for (const name of TABS) $(`#tab-${name}`).addEventListener("click", () => select(name));
  // Arrow keys move between tabs, as in any tab list.
  $("[role=tablist]").addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = TABS[(TABS.indexOf(current) + step + TABS.length) % TABS.length];
    select(next);
    $(`#tab-${next}`).focus();
  });
  $("#key-form").addEventListener("submit", createKey);
  $("#experiments-refresh").addEventListener("click", () => loadExperiments().catch((error) => status(error.message)));
  $("#audit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadAudit().catch((error) => status(error.message));
  });
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer?.files?.[0];
    if (file) importCard(file);
  });
  $("#card-file").addEventListener("change", (event) => {
    const file = event.target.files?.[0];
    if (file) importCard(file);
    event.target.value = "";
  });
}

boot();
