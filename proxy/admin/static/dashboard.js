// Tollgate dashboard: reads /admin/... with the admin key and draws it. No build step, no libraries.
//
// Text is only ever written with textContent or setAttribute, never as HTML: user, team, agent and
// thread ids come from request headers that any client of the proxy can set.
// Money is shown as the API's decimal strings. Number() is used only for bar heights and limit
// states, never to compute a sum or a price that is displayed.
"use strict";

const KEY_STORAGE = "tollgate-admin-key";
const TOP = 10;
const DAYS = 30;
const MONTHS = 12;
const GROUPS = ["user", "team", "agent", "model", "thread"];
const INVOICE_COLUMNS = ["id", "entity_type", "entity_id", "period", "total", "currency", "status"];
const SVG_NS = "http://www.w3.org/2000/svg";
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

function show(id, node) {
  document.getElementById(id).replaceChildren(node);
}

function nameOf(group) {
  return group === null || group === undefined ? el("span", { class: "muted" }, "(none)") : String(group);
}

// columns: [{ title, cell: row => string | Node, num?: boolean }]
function table(columns, rows, empty = "Nothing recorded yet.") {
  if (rows.length === 0) return el("p", { class: "muted" }, empty);
  const head = el("tr", {}, ...columns.map((c) => el("th", c.num ? { class: "num" } : {}, c.title)));
  const body = rows.map((row) => {
    const tr = el("tr", row.__class ? { class: row.__class } : {});
    for (const c of columns) tr.append(el("td", { class: c.num ? "num" : "name" }, c.cell(row)));
    return tr;
  });
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

// ---- the key and the API ---------------------------------------------------------------------

function adminKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

// Reads #key=...&user=... ; the key moves to sessionStorage and out of the address bar and history.
function readFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const key = params.get("key");
  if (key) {
    sessionStorage.setItem(KEY_STORAGE, key);
    params.delete("key");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  return params.get("user");
}

// Paths are relative to /dashboard, so the page also works behind a path prefix.
async function request(path) {
  return fetch(path, { headers: { Authorization: "Bearer " + adminKey() }, cache: "no-store" });
}

async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined));
  const search = query.toString();
  const response = await request(search ? `${path}?${search}` : path);
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

// /admin/invoices may not exist on this proxy yet: any answer but a 200 means "no invoices yet".
async function fetchInvoices() {
  try {
    const response = await request("admin/invoices");
    if (!response.ok) return [];
    const body = await response.json();
    return Array.isArray(body) ? body : Array.isArray(body.invoices) ? body.invoices : [];
  } catch {
    return [];
  }
}

// ---- dates (UTC, like the API's day and month groups) ----------------------------------------

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function lastDays(count) {
  const today = new Date();
  const days = [];
  for (let back = count - 1; back >= 0; back--) {
    days.push(isoDay(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - back))));
  }
  return days;
}

function lastMonths(count) {
  const today = new Date();
  const months = [];
  for (let back = count - 1; back >= 0; back--) {
    months.push(isoDay(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - back, 1))).slice(0, 7));
  }
  return months;
}

// ---- charts ----------------------------------------------------------------------------------

// One bar per period, periods without spend drawn as empty slots so the time axis stays even.
function barChart(periods, rows, kind) {
  const byPeriod = new Map(rows.map((r) => [r.group, r]));
  const series = periods.map((p) => byPeriod.get(p) || { group: p, cost_usd: "0", requests: 0 });
  const width = 960;
  const height = 180;
  const top = 16;
  const bottom = 20;
  const slot = width / series.length;
  const peak = series.reduce((best, r) => (Number(r.cost_usd) > Number(best.cost_usd) ? r : best), series[0]);
  const scale = Number(peak.cost_usd) > 0 ? (height - top - bottom) / Number(peak.cost_usd) : 0;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "data-kind": kind });
  chart.append(svg("title", {}, `Cost per ${kind} in USD; highest ${peak.group}: $${peak.cost_usd}`));
  chart.append(svg("line", { x1: 0, x2: width, y1: top, y2: top }));
  chart.append(svg("line", { x1: 0, x2: width, y1: height - bottom, y2: height - bottom }));
  chart.append(svg("text", { x: 2, y: top - 4 }, `$${peak.cost_usd}`));
  const labelEvery = Math.ceil(series.length / 10);
  series.forEach((row, i) => {
    const barHeight = Number(row.cost_usd) * scale;
    const bar = svg("rect", {
      class: "bar",
      x: i * slot + slot * 0.15,
      y: height - bottom - barHeight,
      width: slot * 0.7,
      height: barHeight,
      "data-period": row.group,
      "data-cost": row.cost_usd,
    });
    bar.append(svg("title", {}, `${row.group}: $${row.cost_usd} (${integers.format(row.requests)} requests)`));
    chart.append(bar);
    if ((series.length - 1 - i) % labelEvery === 0) {
      const label = kind === "day" ? row.group.slice(5) : row.group;
      chart.append(svg("text", { x: i * slot + slot / 2, y: height - 6, "text-anchor": "middle" }, label));
    }
  });
  return chart;
}

// ---- tables ----------------------------------------------------------------------------------

function costCell(row) {
  const cell = el("span", { class: "cost" }, row.cost_usd);
  if (row.unpriced_requests > 0) cell.setAttribute("title", `${row.unpriced_requests} requests had no price`);
  return cell;
}

const USAGE_COLUMNS = [
  { title: "requests", num: true, cell: (r) => integers.format(r.requests) },
  { title: "in tokens", num: true, cell: (r) => integers.format(r.input_tokens) },
  { title: "out tokens", num: true, cell: (r) => integers.format(r.output_tokens) },
  { title: "cost (USD)", num: true, cell: costCell },
];

function usageTable(group, rows) {
  const name =
    group === "user"
      ? (r) => (r.group === null ? nameOf(null) : el("a", { href: "#" + new URLSearchParams({ user: r.group }) }, r.group))
      : (r) => nameOf(r.group);
  return table([{ title: group, cell: name }, ...USAGE_COLUMNS], rows.slice(0, TOP));
}

// A state word for a limit; Number() here only compares, the money shown is the API's strings.
function limitState(limit) {
  const cap = Number(limit.limit_usd);
  const used = Number(limit.spent_usd) + Number(limit.held_usd);
  if (Number(limit.remaining_usd) <= 0) return limit.action === "block" ? "blocking" : "over";
  if (cap > 0 && used / cap >= 0.8) return "near";
  return "ok";
}

function limitsTable(limits) {
  const rows = limits.map((l) => ({ ...l, __class: { blocking: "over", over: "over", near: "near" }[limitState(l)] }));
  return table(
    [
      { title: "scope", cell: (l) => l.scope },
      { title: "id", cell: (l) => nameOf(l.id) },
      { title: "window", cell: (l) => l.window_label || l.window },
      { title: "action", cell: (l) => l.action },
      { title: "spent", num: true, cell: (l) => l.spent_usd },
      { title: "held", num: true, cell: (l) => l.held_usd },
      { title: "limit", num: true, cell: (l) => l.limit_usd },
      { title: "remaining", num: true, cell: (l) => l.remaining_usd },
      { title: "resets", cell: (l) => l.resets_at || "never" },
      { title: "state", cell: (l) => limitState(l) },
    ],
    rows,
    "No limit has spend in its window.",
  );
}

// Renders whatever fields the invoices carry: the known ones first, then any others.
// A list (an invoice's lines) shows its length; the page is an overview, GET /admin/invoices/{id} has the rest.
function invoicesTable(invoices) {
  const seen = new Set(invoices.flatMap((i) => Object.keys(i)));
  const names = [...INVOICE_COLUMNS.filter((n) => seen.has(n)), ...[...seen].filter((n) => !INVOICE_COLUMNS.includes(n))];
  const text = (v) =>
    v === null || v === undefined ? "" : Array.isArray(v) ? String(v.length) : typeof v === "object" ? JSON.stringify(v) : String(v);
  const numeric = (n) => invoices.every((i) => /^-?[0-9.]+$/.test(text(i[n])));
  const columns = names.map((n) => ({ title: n.replaceAll("_", " "), num: numeric(n), cell: (i) => text(i[n]) }));
  return table(columns, invoices, "No invoices yet.");
}

// ---- the user drill-down ---------------------------------------------------------------------

async function showUser(user, scroll = false) {
  const section = document.getElementById("user-detail");
  if (!user) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  section.dataset.state = "loading";
  document.getElementById("user-name").textContent = user;
  let summary, models, limits;
  try {
    // Any id a client sent, "/" and "?" included: encoded as one path segment, and as query values.
    [summary, models, limits] = await Promise.all([
      api(`admin/users/${encodeURIComponent(user)}/summary`),
      api("admin/usage", { group_by: "model", user }),
      api("admin/limits", { user }),
    ]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error; // the whole page asks for the key
    // One user's failure is shown in its own section, with the API's message; the board stays.
    section.dataset.state = "error";
    document.getElementById("user-summary").replaceChildren(el("p", { class: "error" }, error.message));
    document.getElementById("user-models").replaceChildren();
    return;
  }
  const month = summary.this_month;
  const all = summary.all_time;
  const facts = [
    ["cost this month (USD)", month ? month.cost_usd : "0"],
    ["requests this month", month ? integers.format(month.requests) : "0"],
    ["average daily cost this month (USD)", summary.average_daily_cost_usd_this_month],
    ["cost all time (USD)", all ? all.cost_usd : "0"],
    ["requests all time", all ? integers.format(all.requests) : "0"],
    ["limits", limits.limits.map((l) => `${l.window_label || l.window}: ${l.remaining_usd} of ${l.limit_usd} left`).join("; ") || "none"],
  ];
  document.getElementById("user-summary").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  show("user-models", table([{ title: "model", cell: (r) => nameOf(r.group) }, ...USAGE_COLUMNS], models.rows));
  section.dataset.state = "ready";
  if (scroll) section.scrollIntoView();
}

// ---- the whole board -------------------------------------------------------------------------

async function loadBoard() {
  const days = lastDays(DAYS);
  const months = lastMonths(MONTHS);
  const [perDay, perMonth, limits, invoices, ...tops] = await Promise.all([
    api("admin/usage", { group_by: "day", from: days[0] }),
    api("admin/usage", { group_by: "month", from: months[0] + "-01" }),
    api("admin/limits"),
    fetchInvoices(),
    ...GROUPS.map((group) => api("admin/usage", { group_by: group })),
  ]);
  show("chart-day", barChart(days, perDay.rows, "day"));
  show("chart-month", barChart(months, perMonth.rows, "month"));
  GROUPS.forEach((group, i) => show(`top-${group}`, usageTable(group, tops[i].rows)));
  show("limits", limitsTable(limits.limits));
  show("invoices", invoicesTable(invoices));
}

function setStatus(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

function askForKey(message = "") {
  document.body.dataset.state = "key";
  document.getElementById("board").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("key-form").hidden = false;
  document.getElementById("key-error").textContent = message;
  document.getElementById("key-input").focus();
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    sessionStorage.removeItem(KEY_STORAGE);
    askForKey("The proxy refused that admin key.");
    return;
  }
  // The API's own message says what is wrong (the admin API off, a bad value...): shown as it is.
  document.body.dataset.state = "error";
  setStatus(error.message, true);
}

async function start() {
  const user = readFragment();
  if (!adminKey()) {
    askForKey();
    return;
  }
  document.getElementById("key-form").hidden = true;
  document.getElementById("board").hidden = false;
  document.getElementById("sign-out").hidden = false;
  document.body.dataset.state = "loading";
  setStatus("Loading…");
  try {
    await Promise.all([loadBoard(), showUser(user)]);
    setStatus(`Updated ${new Date().toISOString().slice(0, 19).replace("T", " ")} UTC`);
    document.body.dataset.state = "ready";
  } catch (error) {
    failed(error);
  }
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
    history.replaceState(null, "", location.pathname + location.search);
    showUser(null);
  });
  // Clicking a user link changes the fragment; the drill-down follows it.
  window.addEventListener("hashchange", () => showUser(readFragment(), true).catch(failed));
  start();
});
