// The portal page: sign-in with a pasted token, then the operator's or the tenant's view of a
// billing period. Every figure comes from Tally's REST surface (api.js) and is shown as the API
// gives it; sums are exact (decimal.js). Text from the API is set as text, never as HTML.

import { ApiError, all, get, session } from "./api.js";
import { EXPORT_FORMATS, costPerMeter, downloadExport, money, statementOf, statementsOf } from "./billing.js";
import { barChart } from "./chart.js";
import {
  everySubscriberRows,
  perMeter,
  perSubscriptionAndMeter,
  periodOf,
  periodWindow,
  subscriptionRows,
} from "./usage.js";

const $ = (id) => document.getElementById(id);
const SCREENS = ["sign-in", "session-ended", "no-view", "portal"];

/** An element with attributes and children; strings become text nodes. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** "2026-11-02T06:00:00Z" as "2026-11-02 06:00:00 UTC". */
function utc(time) {
  return time ? `${time.slice(0, 19).replace("T", " ")} UTC` : "unknown";
}

function duration(seconds) {
  if (seconds <= 0) {
    return "0 s (caught up)";
  }
  const parts = [
    [Math.floor(seconds / 86400), "d"],
    [Math.floor((seconds % 86400) / 3600), "h"],
    [Math.floor((seconds % 3600) / 60), "min"],
    [seconds % 60, "s"],
  ].filter(([n]) => n > 0);
  return parts.slice(0, 2).map(([n, unit]) => `${n} ${unit}`).join(" ");
}

function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error?.message ?? error);
}

// ---- who is signed in, and the screens ------------------------------------------------------

let me = null;
// Each load takes a number; answers of a load that a newer one (or a sign-out) replaced are dropped.
let generation = 0;
// What the operator's tenant drill-down shows, from the last load.
let operatorData = null;
let openTenantId = null;

function showScreen(id, focus) {
  for (const screen of SCREENS) {
    $(screen).hidden = screen !== id;
  }
  $("who").hidden = me === null;
  if (focus) {
    $(focus).focus();
  }
}

function say(text) {
  $("status").textContent = text;
}

/** Shows `error` in words in the `<p class="error">` `where`, or ends the session if the token was refused. */
function fail(where, error) {
  if (error instanceof ApiError && error.signedOut) {
    sessionEnded(error);
    return;
  }
  where.textContent = `Could not load this: ${describe(error)}`;
  where.hidden = false;
}

function errorOf(section) {
  return section.querySelector(":scope > p.error");
}

function clearErrors() {
  for (const p of document.querySelectorAll("#portal p.error")) {
    p.hidden = true;
    p.textContent = "";
  }
}

/** Forgets everything shown, so the next person signing in sees nothing of the last one. */
function forgetPage() {
  generation += 1;
  me = null;
  operatorData = null;
  openTenantId = null;
  for (const node of document.querySelectorAll("#portal .meters, #portal tbody, #portal thead:not(#tenants-table thead)")) {
    node.replaceChildren();
  }
  for (const node of document.querySelectorAll("#pipeline dd, #bridge dd, #bridge-last-error, #period-note, #statements-note, #download-status")) {
    node.textContent = "";
  }
  for (const node of document.querySelectorAll("#portal .statement, #portal .statements-chart, #download-buttons")) {
    node.replaceChildren();
  }
  $("bridge-parked-table").hidden = true;
  $("tenant-detail").hidden = true;
  clearErrors();
  say("");
}

function sessionEnded(error) {
  session.forget();
  forgetPage();
  $("session-ended-message").textContent = `Tally no longer accepts your token: ${error.message} (${error.code}).`;
  showScreen("session-ended", "session-ended-title");
}

function signInError(text) {
  $("sign-in-error").textContent = text;
  $("sign-in-error").hidden = !text;
}

function isOperator() {
  return me?.roles.includes("Operator");
}

function showWho() {
  $("who-subject").textContent = me.subject;
  let role = me.roles.length ? me.roles.join(", ") : "Tenant";
  if (!isOperator() && me.tenantId) {
    role = `Tenant ${me.tenantDisplayName ?? me.tenantId}`;
  }
  $("who-role").textContent = role;
  $("who-expires").textContent = me.expiresTime ? `(token valid until ${utc(me.expiresTime)})` : "";
}

async function open({ signingIn = false } = {}) {
  say("Signing in…");
  let clock;
  try {
    me = await get("/tally/v1/whoami");
    clock = await get("/clock/v1/time");
  } catch (error) {
    me = null;
    say("");
    if (error instanceof ApiError && error.signedOut && !signingIn) {
      sessionEnded(error);
      return;
    }
    session.forget();
    signInError(
      error instanceof ApiError && error.signedOut
        ? `Tally refused this token: ${error.message} (${error.code}).`
        : `Could not sign in: ${describe(error)}`,
    );
    showScreen("sign-in", "token");
    return;
  }
  signInError("");
  showWho();
  if (!isOperator() && !me.tenantId) {
    $("no-view-message").textContent =
      `This token (${me.roles.join(", ") || "no role"}) has no view here: the portal is for operators and tenant users.`;
    showScreen("no-view", "no-view-title");
    say("");
    return;
  }
  $("operator-view").hidden = !isOperator();
  $("tenant-view").hidden = isOperator();
  if (!isOperator()) {
    $("tenant-title").textContent = `Usage of ${me.tenantDisplayName ?? `tenant ${me.tenantId}`}`;
  }
  $("period").value = periodOf(new Date(clock.now));
  showScreen("portal", isOperator() ? "operator-title" : "tenant-title");
  await load();
}

// ---- the period and its loading ------------------------------------------------------------

function windowNote(window, clock) {
  const clockText = `Tally's clock: ${utc(clock.now)}${clock.manual ? " (manual)" : ""}.`;
  const from = utc(window.start.toISOString());
  if (window.empty) {
    return `Nothing is reported in ${window.period} yet. ${clockText}`;
  }
  if (window.open) {
    return `Open period: usage reported from ${from} so far; figures can still grow. ${clockText}`;
  }
  return `Usage reported from ${from} to ${utc(window.periodEnd.toISOString())}. ${clockText}`;
}

async function load() {
  const mine = ++generation;
  const current = () => mine === generation;
  const period = $("period").value;
  clearErrors();
  if (!/^\d{4}-\d{2}$/.test(period)) {
    fail($("period-error"), new Error("choose a month, such as 2026-11"));
    return;
  }
  say(`Loading ${period}…`);
  $("portal").setAttribute("aria-busy", "true");
  try {
    let clock;
    try {
      clock = await get("/clock/v1/time");
    } catch (error) {
      fail($("period-error"), error);
      return;
    }
    if (!current()) {
      return;
    }
    const window = periodWindow(period, new Date(clock.now));
    $("period-note").textContent = windowNote(window, clock);
    await (isOperator() ? loadOperator(window, current) : loadTenant(window, current));
    if (current()) {
      say(`Showing ${period}.`);
    }
  } finally {
    if (current()) {
      $("portal").removeAttribute("aria-busy");
    }
  }
}

/** Resolves to { value } or { error }: sections load side by side and fail on their own. */
function settle(promise) {
  return promise.then(
    (value) => ({ value }),
    (error) => ({ error }),
  );
}

// ---- tables and charts ---------------------------------------------------------------------

function quantityCell(quantity) {
  return el("td", { class: "quantity num" }, quantity);
}

function fillTable(table, headings, rows) {
  table.tHead.replaceChildren(el("tr", {}, ...headings.map((h) => el("th", { scope: "col" }, h))));
  table.tBodies[0].replaceChildren(...rows);
}

function renderSubscriptions(table, subscriptions) {
  const sorted = [...subscriptions].sort((a, b) => a.displayName.localeCompare(b.displayName));
  fillTable(
    table,
    ["Subscription", "Subscription id", "State"],
    sorted.map((s) =>
      el(
        "tr",
        { "data-subscription-id": s.subscriptionId },
        el("th", { scope: "row" }, s.displayName || "(no name)"),
        el("td", {}, el("code", {}, s.subscriptionId)),
        el("td", { class: "state" }, s.state),
      ),
    ),
  );
  if (!sorted.length) {
    table.tBodies[0].append(el("tr", {}, el("td", { colspan: 3 }, "No subscriptions.")));
  }
}

function renderBySubscription(table, rows, subscriptions) {
  const names = new Map(subscriptions.map((s) => [s.subscriptionId.toLowerCase(), s.displayName]));
  const totals = perSubscriptionAndMeter(rows);
  fillTable(
    table,
    ["Subscription", "Meter", "Quantity", "Unit"],
    totals.map((t) =>
      el(
        "tr",
        { "data-subscription-id": t.subscriptionId, "data-meter-id": t.meterId },
        el("th", { scope: "row" }, names.get(t.subscriptionId.toLowerCase()) || t.subscriptionId),
        el("td", {}, t.name),
        quantityCell(t.total),
        el("td", {}, t.unit),
      ),
    ),
  );
  if (!totals.length) {
    table.tBodies[0].append(el("tr", {}, el("td", { colspan: 4 }, "No usage in this period.")));
  }
}

/** One card per meter: its exact total, a chart of its daily usage, and the daily figures. */
function renderMeters(container, rows, window, heading = "h3") {
  const meters = perMeter(rows, window);
  if (!meters.length) {
    container.replaceChildren(el("p", { class: "muted" }, "No usage reported in this period."));
    return;
  }
  container.replaceChildren(
    ...meters.map((meter) => {
      const reported = meter.days.filter((d) => d.reported);
      const chart = barChart({
        bars: meter.days.map((d) => ({
          label: d.day.slice(8),
          value: d.quantity,
          tip: `${d.day}: ${d.quantity} ${meter.unit}`,
        })),
        labelEvery: meter.days.length > 12 ? 5 : 1,
        description: `Daily ${meter.name} from ${meter.days[0].day} to ${meter.days.at(-1).day}, in ${meter.unit || "units"}; ${reported.length} days with usage.`,
      });
      const days = reported.map((d) =>
        el("tr", { "data-day": d.day }, el("th", { scope: "row" }, d.day), quantityCell(d.quantity)),
      );
      return el(
        "article",
        { class: "meter", "data-meter-id": meter.meterId },
        el(heading, {}, meter.name),
        el("p", { class: "total" }, "Total ", el("span", { class: "quantity" }, meter.total), ` ${meter.unit}`),
        chart,
        el(
          "details",
          {},
          el("summary", {}, `Daily figures (${reported.length} ${reported.length === 1 ? "day" : "days"})`),
          el(
            "div",
            { class: "table-wrap" },
            el(
              "table",
              {},
              el("caption", { class: "visually-hidden" }, `Daily ${meter.name}`),
              el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Usage day"), el("th", { scope: "col" }, `Quantity (${meter.unit})`))),
              el("tbody", {}, ...days),
            ),
          ),
        ),
      );
    }),
  );
}

// ---- statements ----------------------------------------------------------------------------

function finalBadge(statement) {
  return statement.final
    ? el("span", { class: "final yes" }, "Final")
    : el("span", { class: "final no" }, "Open: can still change");
}

function tenantName(tenantId) {
  if (!tenantId) {
    return "Subscriptions with no known owner";
  }
  const tenant = operatorData?.tenants.find((t) => t.tenantId.toLowerCase() === tenantId.toLowerCase());
  return tenant?.displayName ?? tenantId;
}

/** A statement: totals, whether it is final, its lines, and a chart of cost per meter. */
function renderStatement(container, statement, heading = "h3") {
  const currency = statement.currency;
  const lines = statement.lines ?? [];
  const meters = costPerMeter(statement);
  const rows = lines.map((line) =>
    el(
      "tr",
      { "data-kind": line.kind, "data-subscription-id": line.subscriptionId, "data-meter-id": line.meterId },
      el("th", { scope: "row" }, line.kind === "Usage" ? line.meterName || line.meterId : `Adjustment: ${line.description}`),
      el("td", {}, line.subscriptionId ? el("code", {}, line.subscriptionId) : "—"),
      el("td", { class: "quantity num" }, line.kind === "Usage" ? `${line.quantity} ${line.unit}` : ""),
      el("td", { class: "cost num", "data-cost": line.cost }, money(line.cost, currency)),
    ),
  );
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", { colspan: 4 }, "No charges in this period.")));
  }
  container.replaceChildren(
    el(
      heading,
      {},
      `Statement ${statement.billingPeriod} `,
      finalBadge(statement),
    ),
    el(
      "dl",
      { class: "facts" },
      el("div", {}, el("dt", {}, "Amount due"), el("dd", { class: "amount-due", "data-amount": statement.amountDue }, money(statement.amountDue, currency))),
      el("div", {}, el("dt", {}, "Exact total"), el("dd", { class: "total", "data-amount": statement.total }, money(statement.total, currency))),
      el("div", {}, el("dt", {}, "Currency"), el("dd", {}, currency || "—")),
      el("div", {}, el("dt", {}, "Period"), el("dd", {}, `${utc(statement.periodStart)} to ${utc(statement.periodEnd)}`)),
    ),
    meters.length
      ? barChart({
          bars: meters.map((m) => ({ label: m.name.slice(0, 10), value: m.cost, tip: `${m.name}: ${money(m.cost, currency)}` })),
          description: `Cost per meter in ${statement.billingPeriod}: ${meters.map((m) => `${m.name} ${money(m.cost, currency)}`).join("; ")}.`,
        })
      : null,
    el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "statement-lines" },
        el("caption", { class: "visually-hidden" }, `Lines of the statement for ${statement.billingPeriod}`),
        el(
          "thead",
          {},
          el("tr", {}, ...["Charge", "Subscription", "Quantity", "Cost"].map((h) => el("th", { scope: "col" }, h))),
        ),
        el("tbody", {}, ...rows),
      ),
    ),
  );
}

function renderStatements(statements, period) {
  const sorted = [...statements].sort((a, b) => tenantName(a.tenantId).localeCompare(tenantName(b.tenantId)));
  const currency = sorted.find((s) => s.currency)?.currency ?? "";
  const final = sorted.length > 0 && sorted.every((s) => s.final);
  $("statements-note").textContent = sorted.length
    ? `${sorted.length} ${sorted.length === 1 ? "statement" : "statements"}; ${final ? "final: the period is closed." : "the period is open: figures can still change."}`
    : "No statements for this period.";
  $("statements").querySelector(".statements-chart").replaceChildren(
    sorted.length
      ? barChart({
          bars: sorted.map((s) => ({ label: tenantName(s.tenantId).slice(0, 10), value: s.total, tip: `${tenantName(s.tenantId)}: ${money(s.total, s.currency)}` })),
          description: `Cost per tenant in ${period}: ${sorted.map((s) => `${tenantName(s.tenantId)} ${money(s.total, s.currency)}`).join("; ")}.`,
        })
      : "",
  );
  $("statements-table").tBodies[0].replaceChildren(
    ...sorted.map((s) =>
      el(
        "tr",
        { "data-tenant-id": s.tenantId },
        el("th", { scope: "row" }, tenantName(s.tenantId)),
        el("td", { class: "total num", "data-amount": s.total }, money(s.total, s.currency || currency)),
        el("td", { class: "amount-due num", "data-amount": s.amountDue }, money(s.amountDue, s.currency || currency)),
        el("td", {}, finalBadge(s)),
      ),
    ),
  );
}

// ---- the bridge ----------------------------------------------------------------------------

async function loadBridge(current) {
  const section = $("bridge");
  try {
    const status = await get("/bridge/v1/status");
    const parked = status.parkedBatches > 0 ? await parkedUploads() : [];
    if (!current()) {
      return;
    }
    $("bridge-state").textContent = status.state;
    $("bridge-sealed-through").textContent = utc(status.sealedThrough);
    $("bridge-acknowledged-through").textContent = utc(status.acknowledgedThrough);
    $("bridge-pending").textContent = String(status.pendingBatches);
    $("bridge-parked").textContent = String(status.parkedBatches);
    $("bridge-next-attempt").textContent = status.nextAttemptTime ? utc(status.nextAttemptTime) : "—";
    $("bridge-last-error").textContent = status.lastError ? `Last error: ${status.lastError}` : "No error.";
    const table = $("bridge-parked-table");
    table.tBodies[0].replaceChildren(
      ...parked.map((u) =>
        el(
          "tr",
          { "data-batch-id": u.batchId },
          el("th", { scope: "row" }, el("code", {}, u.batchId)),
          el("td", {}, utc(u.reportedStartTime).slice(0, 10)),
          el("td", { class: "num" }, String(u.records)),
          el("td", { class: "num" }, String(u.attempts)),
          el("td", {}, u.lastError),
        ),
      ),
    );
    table.hidden = parked.length === 0;
  } catch (error) {
    if (current()) {
      fail(errorOf(section), error);
    }
  }
}

async function parkedUploads() {
  return (await all("/bridge/v1/uploads?pageSize=1000", "uploads")).filter((u) => u.state === "Parked");
}

// ---- the operator's view -------------------------------------------------------------------

async function loadPipeline(current) {
  const section = $("pipeline");
  try {
    const status = await get("/usage/v1/pipeline");
    if (!current()) {
      return;
    }
    $("pipeline-complete-through").textContent = utc(status.completeThrough);
    $("pipeline-behind").textContent = duration(status.behindSeconds);
    $("pipeline-records-stored").textContent = String(status.recordsStored);
    $("pipeline-records-pending").textContent = String(status.recordsPendingFold);
    $("pipeline-now").textContent = utc(status.now);
  } catch (error) {
    if (current()) {
      fail(errorOf(section), error);
    }
  }
}

function ownedBy(tenantId, subscriptions) {
  return subscriptions.filter((s) => s.ownerTenantId.toLowerCase() === tenantId.toLowerCase());
}

function rowsOf(subscriptions, rows) {
  const ids = new Set(subscriptions.map((s) => s.subscriptionId.toLowerCase()));
  return rows.filter((r) => ids.has(r.properties.subscriptionId.toLowerCase()));
}

function renderTenants(tenants, subscriptions, rows) {
  const sorted = [...tenants].sort((a, b) => a.displayName.localeCompare(b.displayName));
  $("tenants-table").tBodies[0].replaceChildren(
    ...sorted.map((tenant) => {
      const owned = ownedBy(tenant.tenantId, subscriptions);
      const view = el("button", { type: "button", "aria-label": `View ${tenant.displayName}` }, "View");
      view.addEventListener("click", () => showTenant(tenant.tenantId));
      return el(
        "tr",
        { "data-tenant-id": tenant.tenantId },
        el("th", { scope: "row" }, tenant.displayName),
        el("td", {}, el("code", {}, tenant.tenantId)),
        el("td", { class: "num" }, String(owned.length)),
        el("td", { class: "num" }, String(rowsOf(owned, rows).length)),
        el("td", {}, view),
      );
    }),
  );
}

function showTenant(tenantId, { focus = true } = {}) {
  const tenant = operatorData?.tenants.find((t) => t.tenantId === tenantId);
  const section = $("tenant-detail");
  if (!tenant) {
    section.hidden = true;
    openTenantId = null;
    return;
  }
  openTenantId = tenantId;
  const owned = ownedBy(tenantId, operatorData.subscriptions);
  const rows = rowsOf(owned, operatorData.rows);
  $("tenant-detail-title").textContent = `${tenant.displayName} (tenant ${tenant.tenantId})`;
  renderSubscriptions(section.querySelector("table.subscriptions"), owned);
  renderBySubscription(section.querySelector("table.by-subscription"), rows, owned);
  renderMeters(section.querySelector(".meters"), rows, operatorData.window, "h4");
  const statement = operatorData.statements?.find((s) => s.tenantId.toLowerCase() === tenantId.toLowerCase());
  const statementBox = section.querySelector(".statement");
  if (statement) {
    renderStatement(statementBox, statement);
  } else {
    statementBox.replaceChildren(el("p", { class: "muted" }, "No statement for this tenant in the period."));
  }
  section.hidden = false;
  if (focus) {
    $("tenant-detail-title").focus();
  }
}

async function loadOperator(window, current) {
  const tenancy = settle(
    Promise.all([all("/tenancy/v1/tenants", "tenants"), all("/tenancy/v1/subscriptions?includeDeleted=true", "subscriptions")]),
  );
  const usage = settle(everySubscriberRows(window));
  const statements = settle(window.empty ? Promise.resolve([]) : statementsOf(window.period));
  const pipeline = loadPipeline(current);
  const bridge = loadBridge(current);
  const rows = await usage;
  if (!current()) {
    return;
  }
  if (rows.error) {
    fail(errorOf($("operator-usage")), rows.error);
  } else {
    renderMeters($("operator-usage").querySelector(".meters"), rows.value, window);
  }
  const listed = await tenancy;
  if (!current()) {
    return;
  }
  if (listed.error) {
    fail(errorOf($("tenants")), listed.error);
  } else {
    const [tenants, subscriptions] = listed.value;
    operatorData = { tenants, subscriptions, rows: rows.value ?? [], window, statements: [] };
    renderTenants(tenants, subscriptions, operatorData.rows);
  }
  const listedStatements = await statements;
  if (!current()) {
    return;
  }
  if (listedStatements.error) {
    fail(errorOf($("statements")), listedStatements.error);
  } else {
    if (operatorData) {
      operatorData.statements = listedStatements.value;
    }
    renderStatements(listedStatements.value, window.period);
  }
  if (operatorData && openTenantId) {
    showTenant(openTenantId, { focus: false });
  }
  await Promise.all([pipeline, bridge]);
}

// ---- the tenant's view ---------------------------------------------------------------------

async function loadTenant(window, current) {
  let subscriptions;
  try {
    subscriptions = await all("/tenancy/v1/subscriptions?includeDeleted=true", "subscriptions");
  } catch (error) {
    if (current()) {
      fail(errorOf($("my-subscriptions")), error);
    }
    return;
  }
  if (!current()) {
    return;
  }
  renderSubscriptions($("my-subscriptions").querySelector("table.subscriptions"), subscriptions);
  renderDownloads(window);
  const statement = loadMyStatement(window, current);
  const section = $("my-usage");
  try {
    const rows = (await Promise.all(subscriptions.map((s) => subscriptionRows(s.subscriptionId, window)))).flat();
    if (!current()) {
      return;
    }
    renderBySubscription(section.querySelector("table.by-subscription"), rows, subscriptions);
    renderMeters(section.querySelector(".meters"), rows, window, "h4");
  } catch (error) {
    if (current()) {
      fail(errorOf(section), error);
    }
  }
  await statement;
}

async function loadMyStatement(window, current) {
  const section = $("my-statement");
  const box = section.querySelector(".statement");
  if (window.empty) {
    box.replaceChildren(el("p", { class: "muted" }, `Nothing is reported in ${window.period} yet.`));
    return;
  }
  try {
    const statement = await statementOf(window.period, me.tenantId);
    if (current()) {
      renderStatement(box, statement);
    }
  } catch (error) {
    if (current()) {
      box.replaceChildren();
      fail(errorOf(section), error);
    }
  }
}

function renderDownloads(window) {
  const status = $("download-status");
  const section = $("downloads");
  $("download-buttons").replaceChildren(
    ...EXPORT_FORMATS.map(({ format, label }) => {
      const button = el(
        "button",
        { type: "button", "data-format": format, "aria-label": `Download ${window.period} as ${label}` },
        label,
      );
      button.disabled = window.empty;
      button.addEventListener("click", async () => {
        const error = errorOf(section);
        error.hidden = true;
        status.textContent = `Preparing the ${label} file for ${window.period}…`;
        try {
          const saved = await downloadExport(window.period, format, me.tenantId);
          status.textContent = `Saved ${saved.name} (${saved.bytes} bytes).`;
        } catch (failure) {
          status.textContent = "";
          fail(error, failure);
        }
      });
      return button;
    }),
  );
}

// ---- wiring --------------------------------------------------------------------------------

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const field = $("token");
  const token = field.value.trim().replace(/^bearer\s+/i, "");
  field.value = "";
  if (!token) {
    signInError("Paste a token first.");
    field.focus();
    return;
  }
  session.keep(token);
  open({ signingIn: true });
});

$("sign-out").addEventListener("click", () => {
  session.forget();
  forgetPage();
  signInError("");
  showScreen("sign-in", "token");
  say("Signed out.");
});

$("back-to-sign-in").addEventListener("click", () => {
  signInError("");
  showScreen("sign-in", "token");
});

$("period-form").addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
$("period").addEventListener("change", () => load());
$("refresh").addEventListener("click", () => load());
$("tenant-detail-close").addEventListener("click", () => {
  $("tenant-detail").hidden = true;
  openTenantId = null;
  $("tenants-title").focus();
});

window.addEventListener("unhandledrejection", (event) => {
  say(`Something went wrong: ${describe(event.reason)}`);
});

if (session.token()) {
  open();
} else {
  showScreen("sign-in");
}
