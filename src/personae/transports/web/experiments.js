// The dashboard's Experiments tab: each experiment with its variants, a ramp slider per
// variant, the kill switch and the report (docs/experiments.md). Every change is a PATCH of
// /api/admin/experiments/{id}; the server checks it whole and answers with the experiment.

import { api } from "./api.js";
import { $, h } from "./dom.js";

const BASE = "/api/admin/experiments";

export async function loadExperiments() {
  const experiments = await api(BASE);
  const reports = await Promise.all(experiments.map((e) => api(`${BASE}/${encodeURIComponent(e.id)}/report`)));
  $("#experiment-list").replaceChildren(
    ...(experiments.length ? [] : [h("p", { class: "hint" }, "No experiments. Create one with the API, a YAML file or personae release.")]),
    ...experiments.map((e, i) => experimentPanel(e, reports[i])),
  );
}

function experimentPanel(experiment, report) {
  const spec = experiment.spec;
  const cap = 100 / spec.variants.length; // each variant ramps within its own share of users
  const message = h("p", { class: "error", role: "alert" });
  const change = async (body, what) => {
    message.textContent = "";
    try {
      await api(`${BASE}/${encodeURIComponent(spec.id)}`, { method: "PATCH", json: body });
      await loadExperiments();
      $("#experiments-status").textContent = `${spec.id}: ${what}`;
    } catch (error) {
      message.textContent = error.message; // the server's reason; nothing changed
    }
  };
  return h(
    "article",
    { class: "panel experiment", "data-experiment": spec.id },
    h(
      "div",
      { class: "row" },
      h("h2", {}, spec.id),
      h("span", { class: spec.killed ? "bad" : "good" }, spec.killed ? "killed: everyone in control" : "running"),
      h(
        "button",
        {
          type: "button",
          class: spec.killed ? "" : "danger",
          "data-action": "kill",
          onclick: () => change({ killed: !spec.killed }, spec.killed ? "running again" : "killed"),
        },
        spec.killed ? "Resume" : "Kill switch",
      ),
      h("span", { class: "hint" }, `source: ${experiment.source}`),
    ),
    spec.description ? h("p", {}, spec.description) : null,
    h("div", { class: "hint" }, targeting(spec.targeting)),
    ...spec.variants.map((variant) => rampRow(spec, variant, cap, change)),
    message,
    reportTable(report),
  );
}

function targeting(target) {
  const parts = Object.entries(target)
    .filter(([, names]) => names.length)
    .map(([key, names]) => `${key}: ${names.join(", ")}`);
  return parts.length ? `targets ${parts.join("; ")}` : "targets everyone";
}

function rampRow(spec, variant, cap, change) {
  const id = `ramp-${spec.id}-${variant.name}`;
  const shown = h("output", { for: id }, `${variant.percent} %`);
  const slider = h("input", {
    id,
    type: "range",
    min: "0",
    max: String(cap),
    step: "0.5",
    value: String(variant.percent),
    "data-variant": variant.name,
    "aria-label": `Share of users in ${variant.name}, percent`,
  });
  slider.addEventListener("input", () => (shown.textContent = `${slider.value} %`));
  // Applied when the slider is let go (or a key is released), not at every step of a drag.
  slider.addEventListener("change", () =>
    change({ variants: { [variant.name]: { percent: Number(slider.value) } } }, `${variant.name} at ${slider.value} %`),
  );
  const overrides = ["character_version", "route", "instructions", "generation", "memory"]
    .filter((key) => key in variant)
    .map((key) => `${key}: ${short(variant[key])}`)
    .join("; ");
  return h(
    "div",
    { class: "row ramp" },
    h("label", { for: id }, h("strong", {}, variant.name)),
    slider,
    shown,
    h("span", { class: "hint" }, overrides || "as configured"),
  );
}

function short(value) {
  if (typeof value === "string") return value.length > 16 ? `${value.slice(0, 12)}…` : value;
  return JSON.stringify(value);
}

const percent = (rate) => `${(rate * 100).toFixed(1)} %`;
const interval = (i) => `${percent(i.rate)} [${percent(i.low)}–${percent(i.high)}]`;
const ms = (value) => `${Math.round(value)} ms`;

function reportTable(report) {
  const head = ["variant", "share", "turns", "users", "p50", "p90", "p99", "errors", "rated", "thumbs up", "tokens/turn"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "report" },
      h("caption", { class: "hint" }, "Rates with their 95 % Wilson interval"),
      h("thead", {}, h("tr", {}, ...head.map((name) => h("th", {}, name)))),
      h(
        "tbody",
        {},
        ...report.variants.map((row) =>
          h(
            "tr",
            { "data-variant": row.variant },
            h("td", {}, row.variant),
            h("td", {}, row.percent === null ? "rest" : `${row.percent} %`),
            h("td", { "data-field": "turns" }, String(row.turns)),
            h("td", { "data-field": "users" }, String(row.users)),
            h("td", {}, ms(row.latency_ms.p50)),
            h("td", {}, ms(row.latency_ms.p90)),
            h("td", {}, ms(row.latency_ms.p99)),
            h("td", {}, interval(row.error_rate)),
            h("td", {}, interval(row.feedback_rate)),
            h("td", { "data-field": "thumbs-up" }, interval(row.thumbs_up)),
            h("td", {}, row.tokens_per_turn.toFixed(1)),
          ),
        ),
      ),
    ),
  );
}
