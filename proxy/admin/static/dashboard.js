// Tollgate dashboard: reads /admin/... with the admin key and draws it. No build step, no libraries.
//
// Text is only ever written with textContent or setAttribute, never as HTML: user, team, agent and
// thread ids come from request headers that any client of the proxy can set.
// Money is the API's decimal strings, rounded for display as strings (BigInt), never summed as
// floats. Number() is used only for the geometry of bars and charts.
"use strict";

const KEY_STORAGE = "tollgate-admin-key";
const TOP = 10;
const STACKED = 5; // models or providers drawn on their own in the spend chart; the rest are "other"
const STACKS = ["model", "provider"];
const SVG_NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#3767d6", "#e0833a", "#2e8b57", "#9b59b6", "#c0392b", "#8a94a6"];
const integers = new Intl.NumberFormat("en-US");

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---- small DOM builders ----------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children); // strings become text nodes, so nothing is parsed as HTML
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function show(id, ...nodes) {
  document.getElementById(id).replaceChildren(...nodes);
}

function nameOf(group) {
  return group === null || group === undefined ? el("span", { class: "muted" }, "(none)") : String(group);
}

function empty(text) {
  return el("p", { class: "empty" }, text);
}

// columns: [{ title, cell: row => string | Node, num?: boolean, opt?: boolean (hidden on a phone),
//             money?: boolean (wraps rather than being cut short), width?: CSS width of the column }]
function table(columns, rows, emptyText) {
  if (rows.length === 0) return empty(emptyText);
  const cls = (c) => [c.num ? "num" : "name", c.opt ? "opt" : "", c.money ? "money" : ""].join(" ").trim();
  const heading = (c) => {
    const th = el("th", { class: cls(c) }, c.title);
    if (c.width) th.style.width = c.width; // through the CSSOM, which the page's CSP allows
    return th;
  };
  const head = el("tr", {}, ...columns.map(heading));
  const body = rows.map((row) => el("tr", {}, ...columns.map((c) => el("td", { class: cls(c) }, c.cell(row)))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

// ---- money: decimal strings in, "$0.000021" out ---------------------------------------------

// Places that show a decimal string with two significant digits, from 2 to 12 (as proxy/money.py).
function placesFor(text) {
  const [whole, frac = ""] = text.replace("-", "").split(".");
  if (/[1-9]/.test(whole)) return 2;
  const first = frac.search(/[1-9]/);
  return first < 0 ? 2 : Math.max(2, Math.min(12, first + 2));
}

function columnPlaces(texts) {
  return Math.max(2, ...texts.filter((t) => /[1-9]/.test(t)).map(placesFor));
}

function usd(text, places = placesFor(text)) {
  const negative = text.startsWith("-");
  const [whole, frac = ""] = text.replace("-", "").split(".");
  const digits = BigInt(whole + frac.padEnd(places + 1, "0").slice(0, places));
  const rounded = frac.padEnd(places + 1, "0")[places] >= "5" ? digits + 1n : digits;
  const padded = rounded.toString().padStart(places + 1, "0");
  const intPart = padded.slice(0, padded.length - places);
  const fracPart = padded.slice(padded.length - places);
  const grouped = intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (negative && rounded !== 0n ? "-$" : "$") + grouped + (places ? "." + fracPart : "");
}

// A cost as a person should read it: unpriced usage is never shown as $0.
function costText(row, places) {
  const priced = /[1-9]/.test(row.cost_usd);
  if (!priced && row.unpriced_requests > 0) return el("span", { class: "unpriced" }, "unpriced");
  const text = usd(row.cost_usd, places);
  return row.unpriced_requests > 0 ? `${text} + ${row.unpriced_requests} unpriced` : text;
}

function addDecimals(a, b) {
  const places = Math.max((a.split(".")[1] || "").length, (b.split(".")[1] || "").length);
  const scaled = (t) => BigInt(t.split(".")[0] + (t.split(".")[1] || "").padEnd(places, "0"));
  const sum = (scaled(a) + scaled(b)).toString().padStart(places + 1, "0");
  return places ? sum.slice(0, sum.length - places) + "." + sum.slice(sum.length - places) : sum;
}

// ---- the key and the API ---------------------------------------------------------------------

function adminKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

// Reads #key=...&user=...&period=... (or team, agent, thread); the key moves to sessionStorage and out of
// the address bar.
function readFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const key = params.get("key");
  if (key) {
    sessionStorage.setItem(KEY_STORAGE, key);
    params.delete("key");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  return params;
}

function setFragment(changes) {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const [name, value] of Object.entries(changes)) {
    if (value === null) params.delete(name);
    else params.set(name, value);
  }
  location.hash = params.toString();
}

// Paths are relative to /dashboard, so the page also works behind a path prefix.
async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined));
  const search = query.toString();
  const response = await fetch(search ? `${path}?${search}` : path, {
    headers: { Authorization: "Bearer " + adminKey() },
    cache: "no-store",
  });
  if (!response.ok) {
    let message = `${response.status} from ${path}`;
    try {
      message = (await response.json()).error.message || message;
    } catch {
      // not the OpenAI error shape: keep the status line
    }
    throw new ApiError(response.status, message);
  }
  return response.json();
}

// ---- the period every panel follows (UTC days; until is exclusive) ---------------------------

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function utcDay(y, m, d) {
  return new Date(Date.UTC(y, m, d));
}

function periodOf(params) {
  const now = new Date();
  const [y, m, d] = [now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()];
  const name = params.get("period") || "month";
  if (name === "today") return { name, since: utcDay(y, m, d), until: utcDay(y, m, d + 1), label: "today" };
  if (name === "7d") return { name, since: utcDay(y, m, d - 6), until: utcDay(y, m, d + 1), label: "the last 7 days" };
  if (name === "last-month") return { name, since: utcDay(y, m - 1, 1), until: utcDay(y, m, 1), label: "last month" };
  if (name === "custom" && params.get("since") && params.get("until")) {
    const since = new Date(params.get("since") + "T00:00:00Z");
    const last = new Date(params.get("until") + "T00:00:00Z");
    const until = utcDay(last.getUTCFullYear(), last.getUTCMonth(), last.getUTCDate() + 1);
    if (!isNaN(since) && !isNaN(until) && since < until) return { name, since, until, label: "a custom period" };
  }
  return { name: "month", since: utcDay(y, m, 1), until: utcDay(y, m + 1, 1), label: "this month" };
}

function windowParams(period) {
  return { since: isoDay(period.since), until: isoDay(period.until) };
}

function daysOf(period) {
  const days = [];
  for (let t = period.since.getTime(); t < period.until.getTime(); t += 86400000) days.push(isoDay(new Date(t)));
  return days;
}

// ---- charts: hand-written SVG with axes, labels and hover values -----------------------------

// The chart is drawn at the width it is shown at (one SVG unit is one CSS pixel), so its text keeps
// its CSS size on a phone as on a wide screen, instead of shrinking with a scaled-down drawing.
function chartWidth(id) {
  return Math.max(280, Math.round(document.getElementById(id).clientWidth || 960));
}

// series: [{ name, colour, values: Map(day -> number), texts: Map(day -> string) }], stacked.
function stackedChart(kind, days, series, axisText, width) {
  const [height, bottom, top, ticks] = [220, 24, 10, 4];
  const totals = days.map((day) => series.reduce((sum, s) => sum + (s.values.get(day) || 0), 0));
  const peak = Math.max(...totals, 0);
  const axis = Array.from({ length: ticks + 1 }, (_, i) => axisText((peak * i) / ticks, peak));
  const left = Math.max(36, 10 + 7 * Math.max(...axis.map((t) => t.length))); // about 7 px per character at 12 px
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "data-kind": kind });
  chart.append(svg("title", {}, `${kind} per day`));
  const plot = height - top - bottom;
  axis.forEach((text, i) => {
    const y = top + plot - (plot * i) / ticks;
    chart.append(svg("line", { x1: left, x2: width, y1: y, y2: y }));
    chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, text));
  });
  const slot = (width - left) / Math.max(days.length, 1);
  const labelEvery = Math.ceil(days.length / Math.max(2, Math.floor((width - left) / 52))); // labels 52 px apart
  days.forEach((day, i) => {
    let base = top + plot;
    for (const s of series) {
      const value = s.values.get(day) || 0;
      if (value <= 0 || peak <= 0) continue;
      const h = (value / peak) * plot;
      base -= h;
      const seg = svg("rect", {
        class: "seg",
        x: left + i * slot + slot * 0.15,
        y: base,
        width: Math.max(slot * 0.7, 1),
        height: h,
        fill: s.colour,
        "data-day": day,
        "data-series": s.name,
      });
      seg.append(svg("title", {}, `${day} · ${s.name}: ${s.texts.get(day)}`));
      chart.append(seg);
    }
    if ((days.length - 1 - i) % labelEvery === 0) {
      const label = days.length > 31 ? day.slice(2) : day.slice(5);
      chart.append(svg("text", { x: left + i * slot + slot / 2, y: height - 6, "text-anchor": "middle" }, label));
    }
  });
  const legend = el("div", { class: "legend" });
  for (const s of series) {
    const swatch = el("i");
    swatch.style.background = s.colour;
    legend.append(el("span", {}, swatch, s.name));
  }
  return [chart, legend];
}

function dollarsAxis(value, peak) {
  if (value === 0) return "$0";
  const places = peak >= 10 ? 0 : peak >= 0.1 ? 2 : Math.min(12, 1 - Math.floor(Math.log10(peak)) + 1);
  return "$" + value.toFixed(places);
}

function countAxis(value) {
  return value >= 1e6 ? `${(value / 1e6).toFixed(1)}M` : value >= 1e3 ? `${(value / 1e3).toFixed(1)}k` : `${Math.round(value)}`;
}

function seriesOf(name, colour, rows, value, text) {
  return {
    name,
    colour,
    values: new Map(rows.map((r) => [r.group, value(r)])),
    texts: new Map(rows.map((r) => [r.group, text(r)])),
  };
}

// The spend chart is stacked by model or by provider (``stack``): the top few each get a colour.
async function drawCharts(period, perDay, groups, stack) {
  const top = groups.slice(0, STACKED).filter((g) => g.group !== null);
  const perGroup = await Promise.all(
    top.map((g) => api("admin/usage", { group_by: "day", [stack]: g.group, ...windowParams(period) })),
  );
  lastCharts = { days: daysOf(period), perDay, top, perGroup, others: groups.length > top.length, stack };
  renderCharts(lastCharts);
}

let lastCharts = null; // what the charts show, to draw them again at a new width

function renderCharts({ days, perDay, top, perGroup, others, stack }) {
  const series = top.map((g, i) =>
    seriesOf(g.group, COLOURS[i], perGroup[i].rows, (r) => Number(r.cost_usd), (r) => costTextPlain(r)),
  );
  // Whatever the top groups leave: the day's total minus theirs, exactly, as a decimal string.
  const rest = perDay.rows.map((day) => {
    let left = day.cost_usd;
    for (const s of perGroup) {
      const found = s.rows.find((r) => r.group === day.group);
      if (found) left = addDecimals(left, "-" + found.cost_usd.replace("-", ""));
    }
    return { group: day.group, cost_usd: left, unpriced_requests: 0 };
  });
  if (others) {
    const name = `other ${stack}s`;
    series.push(seriesOf(name, COLOURS[5], rest, (r) => Math.max(Number(r.cost_usd), 0), (r) => usd(r.cost_usd)));
  }
  document.getElementById("chart-spend").dataset.stack = stack;
  show("chart-spend", ...stackedChart("spend", days, series, dollarsAxis, chartWidth("chart-spend")));
  const requests = [seriesOf("requests", COLOURS[0], perDay.rows, (r) => r.requests, (r) => integers.format(r.requests))];
  show("chart-requests", ...stackedChart("requests", days, requests, countAxis, chartWidth("chart-requests")));
  const tokens = [
    seriesOf("input tokens", COLOURS[0], perDay.rows, (r) => r.input_tokens, (r) => integers.format(r.input_tokens)),
    seriesOf("output tokens", COLOURS[1], perDay.rows, (r) => r.output_tokens, (r) => integers.format(r.output_tokens)),
  ];
  show("chart-tokens", ...stackedChart("tokens", days, tokens, countAxis, chartWidth("chart-tokens")));
}

// The smallest chart text as drawn, in CSS pixels: for the tests, and for anyone checking a phone.
function smallestChartText() {
  let smallest = Infinity;
  for (const chart of document.querySelectorAll(".chart svg")) {
    const scale = chart.getBoundingClientRect().width / chart.viewBox.baseVal.width;
    for (const text of chart.querySelectorAll("text")) {
      smallest = Math.min(smallest, scale * parseFloat(getComputedStyle(text).fontSize));
    }
  }
  return smallest === Infinity ? null : Math.round(smallest * 10) / 10;
}

function costTextPlain(row) {
  const node = costText(row);
  return typeof node === "string" ? node : node.textContent;
}

// ---- tables ----------------------------------------------------------------------------------

function usageColumns(rows) {
  const places = columnPlaces(rows.map((r) => r.cost_usd));
  return [
    { title: "requests", num: true, cell: (r) => integers.format(r.requests) },
    { title: "in tokens", num: true, opt: true, cell: (r) => integers.format(r.input_tokens) },
    { title: "out tokens", num: true, opt: true, cell: (r) => integers.format(r.output_tokens) },
    { title: "cost", num: true, money: true, cell: (r) => costText(r, places) },
  ];
}

function linkTo(kind, id) {
  return id === null ? nameOf(null) : el("a", { href: "#" + new URLSearchParams({ ...currentView(), [kind]: id }) }, id);
}

function currentView() {
  const params = new URLSearchParams(location.hash.slice(1));
  const view = {};
  for (const name of ["period", "since", "until", "stack"]) if (params.get(name)) view[name] = params.get(name);
  return view;
}

function usageTable(group, rows, emptyText) {
  const shown = rows.slice(0, TOP);
  const name = DRILL_DOWNS[group] ? (r) => linkTo(group, r.group) : (r) => nameOf(r.group);
  return table([{ title: group, cell: name }, ...usageColumns(shown)], shown, emptyText);
}

function limitRow(limit) {
  const cap = Number(limit.limit_usd);
  const used = Number(limit.spent_usd) + Number(limit.held_usd);
  const percent = cap > 0 ? Math.min(100, (used / cap) * 100) : 100;
  const fill = el("span");
  fill.style.width = `${percent.toFixed(1)}%`;
  const places = columnPlaces([limit.spent_usd, limit.limit_usd]);
  const window = limit.window === "total" ? "in total" : `${limit.window} ${limit.window_label}`;
  const row = el(
    "div",
    { class: "limit", "data-state": limit.state || "ok", "data-scope": limit.scope, "data-id": limit.id },
    el("span", { class: "what", title: `${limit.source || "config"} limit` }, `${limit.scope} ${limit.id} · ${window}`),
    el("div", { class: "bar", role: "progressbar", "aria-valuenow": percent.toFixed(0) }, fill),
    el(
      "span",
      { class: "nums" },
      `${usd(limit.spent_usd, places)} of ${usd(limit.limit_usd, places)} `,
      el("span", { class: "state" }, limit.state || "ok"),
    ),
  );
  if (limit.reached_at) {
    const when = `at this rate, reached about ${limit.reached_at.slice(0, 16).replace("T", " ")} UTC`;
    row.append(el("span", { class: "reached muted" }, when));
  }
  return row;
}

const limitKey = (l) => [l.scope, l.id, l.window, l.window_label].join("\u0000");

// Each limit with the date GET /admin/forecast says it will be reached at the current rate, if any.
function limitsPanel(limits, forecasts) {
  if (limits.length === 0) return [empty("No spend limits configured. Add [[limits]] to config.toml to cap spend.")];
  const dates = new Map(forecasts.filter((f) => f.reached_at && !f.already_reached).map((f) => [limitKey(f), f.reached_at]));
  return limits.map((limit) => limitRow({ ...limit, reached_at: dates.get(limitKey(limit)) || null }));
}

function invoiceTable(invoices, emptyText) {
  return table(
    [
      { title: "entity", cell: (i) => `${i.entity_type} ${i.entity_id}` },
      { title: "period", opt: true, cell: (i) => i.period },
      { title: "requests", num: true, opt: true, cell: (i) => integers.format(i.requests) },
      { title: "status", cell: (i) => i.status },
      {
        title: "total",
        num: true,
        cell: (i) => `${i.total} ${i.currency}` + (i.unpriced_requests ? ` + ${i.unpriced_requests} unpriced` : ""),
      },
    ],
    invoices,
    emptyText,
  );
}

// ---- anomalies and alerts: what GET /admin/alerts lists, in the period --------------------------

function alertsTable(alerts, period) {
  const places = columnPlaces(alerts.map((a) => a.cost_usd));
  const who = (a) => (DRILL_DOWNS[a.scope] ? linkTo(a.scope, a.id) : nameOf(a.id));
  return table(
    [
      { title: "when (UTC)", width: "11em", cell: (a) => a.time.slice(0, 16).replace("T", " ") },
      { title: "kind", width: "6em", cell: (a) => el("span", { class: `alert-kind ${a.kind}` }, a.kind) },
      { title: "scope", width: "5em", opt: true, cell: (a) => a.scope },
      { title: "who", cell: who },
      { title: "cost", num: true, money: true, width: "7em", cell: (a) => usd(a.cost_usd, places) },
      { title: "detail", opt: true, width: "40%", cell: (a) => a.detail || "" },
    ],
    alerts,
    `No anomalies or alerts in ${period.label}. Each hour's spend per user, team, agent and thread is checked ` +
      "against its own history, and each thread's requests per minute ([anomalies] in config.toml).",
  );
}

// ---- drill-downs: a user's, team's, agent's or thread's usage broken down by the others ----------

// What each drill-down breaks its usage down by (the alert emails link to these views too).
const DRILL_DOWNS = {
  user: ["thread", "agent", "model"],
  team: ["user", "model"],
  agent: ["user", "thread", "model"],
  thread: ["user", "agent", "model"],
};
const PLURALS = { user: "Users", thread: "Threads", agent: "Agents", model: "Models" };
const PANES = ["detail-a", "detail-b", "detail-c"];

async function userFacts(user) {
  // Any id a client sent, "/" and "?" included: encoded as one path segment.
  const summary = await api(`admin/users/${encodeURIComponent(user)}/summary`);
  const month = summary.this_month;
  const facts = [
    ["cost this month", month ? costTextPlain(month) : "$0.00"],
    ["average daily cost this month", usd(summary.average_daily_cost_usd_this_month)],
    ["cost all time", summary.all_time ? costTextPlain(summary.all_time) : "$0.00"],
  ];
  if (summary.forecast) facts.push(["projected month end", usd(summary.forecast.projected_month_end_usd)]);
  return facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]);
}

async function teamFacts(team) {
  const forecast = await api("admin/forecast", { team });
  const [projection] = forecast.teams;
  if (!projection) return [];
  const facts = [
    ["cost this month", usd(projection.month_so_far_usd)],
    ["recent daily cost", usd(projection.daily_rate_usd)],
    ["projected month end", usd(projection.projected_month_end_usd)],
  ];
  return facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]);
}

async function showDetail(params, period) {
  const section = document.getElementById("user-detail");
  const kind = Object.keys(DRILL_DOWNS).find((name) => params.get(name));
  if (!kind) {
    section.hidden = true;
    return;
  }
  const id = params.get(kind);
  section.hidden = false;
  section.dataset.state = "loading";
  section.dataset.kind = kind;
  document.getElementById("detail-kind").textContent = kind[0].toUpperCase() + kind.slice(1);
  document.getElementById("user-name").textContent = id;
  const w = windowParams(period);
  try {
    const groups = DRILL_DOWNS[kind];
    // The id goes as a query value, whatever it holds.
    const [facts, ...breakdowns] = await Promise.all([
      kind === "user" ? userFacts(id) : kind === "team" ? teamFacts(id) : Promise.resolve([]),
      ...groups.map((group) => api("admin/usage", { group_by: group, [kind]: id, ...w })),
    ]);
    show("user-summary", ...facts);
    PANES.forEach((pane, i) => {
      const group = groups[i];
      if (!group) return show(pane);
      const none = group === "model" ? "No usage in this period." : `No ${PLURALS[group].toLowerCase()} in this period.`;
      show(pane, el("h3", {}, PLURALS[group]), usageTable(group, breakdowns[i].rows, none));
    });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error; // the whole page asks for the key
    // One drill-down's failure is shown in its own section, with the API's message; the board stays.
    section.dataset.state = "error";
    show("user-summary", el("p", { class: "error" }, error.message));
    PANES.forEach((pane) => show(pane));
    return;
  }
  section.dataset.state = "ready";
}

// ---- the whole board -------------------------------------------------------------------------

async function loadBoard(period, stack) {
  const w = windowParams(period);
  const [perDay, total, limits, forecast, preview, invoices, alerts, users, teams, models, agents, providers] = await Promise.all([
    api("admin/usage", { group_by: "day", ...w }),
    api("admin/usage", w),
    api("admin/limits"),
    api("admin/forecast"),
    api("admin/invoices/preview"),
    api("admin/invoices"),
    api("admin/alerts", { since: w.since }),
    ...["user", "team", "model", "agent", "provider"].map((group) => api("admin/usage", { group_by: group, ...w })),
  ]);
  const all = total.rows[0] || { requests: 0, input_tokens: 0, output_tokens: 0, cost_usd: "0", unpriced_requests: 0 };
  const card = (label, value) => el("div", { class: "card" }, label, el("b", {}, value));
  show(
    "totals",
    card("spend", costText(all)),
    card("requests", integers.format(all.requests)),
    card("tokens in / out", `${integers.format(all.input_tokens)} / ${integers.format(all.output_tokens)}`),
    card("unpriced requests", integers.format(all.unpriced_requests)),
    // The running month, whatever the period: month so far + the recent daily rate x the days left.
    card("this month's projected end", forecast.total ? usd(forecast.total.projected_month_end_usd) : "$0.00"),
  );
  document.getElementById("totals").dataset.cost = all.cost_usd;
  const none = `No usage in ${period.label}. Point an app's OPENAI_BASE_URL at this proxy's /v1, or choose another period.`;
  if (all.requests === 0) {
    lastCharts = null;
    show("chart-spend", empty(none));
    show("chart-requests");
    show("chart-tokens");
  } else {
    await drawCharts(period, perDay, stack === "provider" ? providers.rows : models.rows, stack);
  }
  show("top-user", usageTable("user", users.rows, "No users in this period."));
  show("top-team", usageTable("team", teams.rows, "No teams in this period."));
  show("top-model", usageTable("model", models.rows, "No models in this period."));
  show("top-agent", usageTable("agent", agents.rows, "No agents in this period."));
  show("limits", ...limitsPanel(limits.limits, forecast.limits));
  const inPeriod = alerts.alerts.filter((a) => new Date(a.time) < period.until);
  show("anomalies", alertsTable(inPeriod, period));
  show("preview", invoiceTable(preview.invoices, `No usage to invoice in ${preview.period} yet.`));
  show("invoices", invoiceTable(invoices.invoices, "No invoices yet: the server invoices each month early in the next."));
}

function setStatus(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

function askForKey(message = "") {
  document.body.dataset.state = "key";
  setStatus(""); // never leave "Loading…" behind the key form
  document.getElementById("board").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("key-form").hidden = false;
  document.getElementById("key-error").textContent = message;
  document.getElementById("key-input").focus();
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    sessionStorage.removeItem(KEY_STORAGE);
    askForKey("The proxy refused that admin key: check $TOLLGATE_ADMIN_KEY and try again.");
    return;
  }
  // The API's own message says what is wrong and what to do (the admin API off, ...): shown once, as it is.
  document.body.dataset.state = "error";
  document.getElementById("board").hidden = true;
  setStatus(error.message, true);
}

function markStack(stack) {
  for (const button of document.querySelectorAll("#stack button")) {
    button.setAttribute("aria-pressed", String(button.dataset.stack === stack));
  }
  document.getElementById("stack-label").textContent = `by ${stack}`;
}

function markPeriod(period) {
  for (const button of document.querySelectorAll("nav#periods button")) {
    button.setAttribute("aria-pressed", String(button.dataset.period === period.name));
  }
  const last = new Date(period.until.getTime() - 86400000);
  document.getElementById("period-label").textContent = `${isoDay(period.since)} to ${isoDay(last)} (UTC)`;
  document.getElementById("custom-since").value = isoDay(period.since);
  document.getElementById("custom-until").value = isoDay(last);
}

async function start() {
  const params = readFragment();
  if (!adminKey()) {
    askForKey();
    return;
  }
  const period = periodOf(params);
  const stack = STACKS.includes(params.get("stack")) ? params.get("stack") : "model";
  document.getElementById("key-form").hidden = true;
  document.getElementById("board").hidden = false;
  document.getElementById("sign-out").hidden = false;
  document.body.dataset.state = "loading";
  document.body.dataset.period = period.name;
  markPeriod(period);
  markStack(stack);
  setStatus("Loading…");
  try {
    await Promise.all([loadBoard(period, stack), showDetail(params, period)]);
    setStatus(`Updated ${new Date().toISOString().slice(0, 19).replace("T", " ")} UTC`);
    document.body.dataset.state = "ready";
  } catch (error) {
    failed(error);
  }
  // For the tests and for anyone checking a narrow screen: does anything stick out sideways?
  document.body.dataset.overflow = String(document.documentElement.scrollWidth > window.innerWidth);
  document.body.dataset.chartText = String(smallestChartText());
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, document.getElementById("key-input").value);
    document.getElementById("key-input").value = "";
    start();
  });
  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    askForKey();
  });
  document.getElementById("user-close").addEventListener("click", (event) => {
    event.preventDefault();
    setFragment({ user: null, team: null, agent: null, thread: null });
  });
  for (const button of document.querySelectorAll("nav#periods button")) {
    button.addEventListener("click", () => {
      const custom = button.dataset.period === "custom";
      setFragment({
        period: button.dataset.period,
        since: custom ? document.getElementById("custom-since").value : null,
        until: custom ? document.getElementById("custom-until").value : null,
      });
    });
  }
  for (const button of document.querySelectorAll("#stack button")) {
    button.addEventListener("click", () => setFragment({ stack: button.dataset.stack }));
  }
  // A new width (a window resized, a phone turned) draws the charts again at it, from what was fetched.
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => lastCharts && renderCharts(lastCharts), 150);
  });
  // Every change of the fragment (a period, a user or team link) redraws what follows it.
  window.addEventListener("hashchange", () => start());
  start();
});
