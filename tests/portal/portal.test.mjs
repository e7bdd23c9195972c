// The portal in a real browser: Debian's headless Chromium driven by playwright-core, against a
// real `tally serve` on a manual clock. Data is set up through the public gRPC API (a month
// closes on the way), and every figure the page shows is checked against what the gRPC API
// returns for the same data. Screenshots of each view go to target/portal/.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { ROOT, Tally, units } from "./tally.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Without the background-networking flags Chromium's start-up traffic meets a closed network.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const SHOTS = join(ROOT, "target/portal");
const TOKEN_KEY = "tally.portal.token";

const CONTOSO = { id: "c0a1b2c3-d4e5-4f60-8172-839405162738", name: "Contoso" };
const FABRIKAM = { id: "fa0b1c2d-3e4f-4a5b-9c6d-7e8f90a1b2c3", name: "Fabrikam" };
const WEB = { id: "6b1f8c2e-3d4a-4e5b-9c6d-7e8f9a0b1c2d", name: "Contoso Web", tenant: CONTOSO };
const DATA = { id: "7c2a9d3f-4e5b-4f6c-8d7e-8f9a0b1c2d3e", name: "Contoso Data", tenant: CONTOSO };
const LOGS = { id: "8d3b0e4a-5f6c-4a7d-9e8f-9a0b1c2d3e4f", name: "Fabrikam Logs", tenant: FABRIKAM };
const VM_HOURS = "fab6eb84-500b-4a09-a8ca-7358f8bbaea5";
const BLOB_CAPACITY = "09f8879e-87e9-4305-a572-4b7be209f857";
const BLOB_TRANSACTIONS = "43daf82b-4618-444a-b994-40c23f7cd438";

/** The clock: October's usage is reported on the 27th and 29th; November's on the 2nd. */
const START = "2026-10-27T00:00:00Z";
const NOW = "2026-11-02T06:00:00Z";

let tally;
let browser;
let userDataDir;
const tokens = {};

function record(event, subscription, meter, resource, quantity, start) {
  const end = new Date(Date.parse(start) + 3_600_000).toISOString().replace(".000Z", "Z");
  return {
    event_id: event,
    subscription_id: subscription.id,
    meter_id: meter,
    resource_uri: `/subscriptions/${subscription.id}/resourceGroups/portal/providers/Microsoft.Compute/virtualMachines/${resource}`,
    location: "local",
    quantity,
    usage_start_time: start,
    usage_end_time: end,
  };
}

/** Two tenants, three subscriptions, and usage reported in October (closed) and November (open). */
async function setUp() {
  const op = tokens.operator;
  for (const tenant of [CONTOSO, FABRIKAM]) {
    tally.grpc(op, "tally.registration.v1.Tenancy/CreateTenant", {
      tenant: { tenant_id: tenant.id, display_name: tenant.name },
    });
  }
  for (const s of [WEB, DATA, LOGS]) {
    tally.grpc(op, "tally.registration.v1.Tenancy/CreateSubscription", {
      subscription: { subscription_id: s.id, display_name: s.name, owner_tenant_id: s.tenant.id },
    });
  }
  // Prices from October 1st: a default sheet, and Fabrikam's own, with graduated tiers.
  tally.grpc(op, "tally.billing.v1.Billing/CreatePriceSheet", {
    price_sheet: {
      name: "List prices",
      currency: "USD",
      effective_from: "2026-10-01T00:00:00Z",
      prices: [
        { meter_id: VM_HOURS, unit_price: "0.25" },
        { meter_id: BLOB_CAPACITY, unit_price: "0.0000000003" },
      ],
    },
  });
  tally.grpc(op, "tally.billing.v1.Billing/CreatePriceSheet", {
    price_sheet: {
      name: "Fabrikam's contract",
      currency: "USD",
      tenant_id: FABRIKAM.id,
      effective_from: "2026-10-01T00:00:00Z",
      prices: [
        { meter_id: VM_HOURS, tiers: [{ from_quantity: "0", unit_price: "0.5" }, { from_quantity: "5", unit_price: "0.1" }] },
        { meter_id: BLOB_TRANSACTIONS, unit_price: "0.0001" },
      ],
    },
  });
  const post = (records) => tally.grpc(op, "tally.usage.v1.UsageIngestion/PostUsage", { records });
  // Reported 2026-10-27. 0.1 + 0.2 is not 0.3 in floating point; 2^53 + 1 is not a double.
  post([
    record("oct-1", WEB, VM_HOURS, "web-01", "0.1", "2026-10-26T10:00:00Z"),
    record("oct-2", WEB, VM_HOURS, "web-02", "0.2", "2026-10-26T10:00:00Z"),
    record("oct-3", DATA, BLOB_CAPACITY, "store", "9007199254740993.0000000001", "2026-10-26T11:00:00Z"),
    record("oct-4", LOGS, VM_HOURS, "logs-01", "7", "2026-10-26T12:00:00Z"),
  ]);
  await tally.advanceTo(op, "2026-10-29T12:00:00Z");
  post([
    record("oct-5", WEB, VM_HOURS, "web-01", "4.1234567891", "2026-10-29T09:00:00Z"),
    record("oct-6", LOGS, BLOB_TRANSACTIONS, "logs-01", "42", "2026-10-29T10:00:00Z"),
  ]);
  // October closes; its last day's usage arrives late, in November.
  await tally.advanceTo(op, NOW);
  post([
    record("nov-1", WEB, VM_HOURS, "web-01", "1.5", "2026-10-31T23:00:00Z"),
    record("nov-2", WEB, VM_HOURS, "web-01", "2.25", "2026-11-01T05:00:00Z"),
    record("nov-3", WEB, VM_HOURS, "web-02", "0.75", "2026-11-01T06:00:00Z"),
    record("nov-4", DATA, BLOB_CAPACITY, "store", "0.0000000001", "2026-11-02T01:00:00Z"),
    record("nov-5", LOGS, VM_HOURS, "logs-01", "3", "2026-11-01T12:00:00Z"),
    record("nov-6", LOGS, BLOB_TRANSACTIONS, "logs-01", "5", "2026-11-02T02:00:00Z"),
  ]);
  tally.grpc(op, "tally.billing.v1.Billing/CreateAdjustment", {
    adjustment: { tenant_id: CONTOSO.id, billing_period: "2026-11", amount: "-1.25", reason: "Goodwill credit, ticket 4711" },
  });
  await tally.settled(op);
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  tally = await Tally.start(START);
  tokens.operator = tally.token("--role", "operator", "--subject", "ops@example");
  tokens.contoso = tally.token("--role", "tenant", "--tenant-id", CONTOSO.id, "--subject", "alice@contoso");
  tokens.fabrikam = tally.token("--role", "tenant", "--tenant-id", FABRIKAM.id, "--subject", "bob@fabrikam");
  tokens.provider = tally.token("--role", "resource-provider", "--subject", "compute-rp");
  tokens.expired = tally.token("--role", "operator", "--hours=-1");
  await setUp();
  userDataDir = mkdtempSync(join(tmpdir(), "tally-portal-chromium-"));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
  });
});

after(async () => {
  await browser?.close();
  await tally?.stop();
  if (userDataDir) {
    rmSync(userDataDir, { recursive: true, force: true });
  }
});

/** A new tab (its own sessionStorage) that records every request and every script error. */
async function newPage({ width = 1280, height = 900 } = {}) {
  const page = await browser.newPage();
  await page.setViewportSize({ width, height });
  page.requests = [];
  page.problems = [];
  page.on("request", (request) => page.requests.push(request.url()));
  page.on("pageerror", (error) => page.problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    if (/Content.Security.Policy|Refused to/i.test(message.text())) {
      page.problems.push(`console: ${message.text()}`);
    }
  });
  return page;
}

/** Checks what every page must hold to: nothing fetched from elsewhere, no token in a URL, no script error. */
function assertWellBehaved(page) {
  for (const url of page.requests) {
    assert.ok(url.startsWith(`${tally.base}/`), `the page fetched ${url}, outside Tally`);
    for (const token of Object.values(tokens)) {
      assert.ok(!url.includes(token), `a token travelled in the URL ${url}`);
    }
  }
  assert.deepEqual(page.problems, []);
}

/** Signs in with the keyboard: the labelled token field, Tab to the button, Enter. */
async function signIn(page, token) {
  await page.goto(`${tally.base}/portal`);
  assert.equal(page.url(), `${tally.base}/portal/`);
  await page.getByLabel("Bearer token").focus();
  await page.keyboard.insertText(token);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Sign in");
  await page.keyboard.press("Enter");
}

async function shown(page, period) {
  await page.locator("#status", { hasText: `Showing ${period}.` }).waitFor();
}

async function choosePeriod(page, period) {
  await page.getByLabel("Billing period", { exact: true }).fill(period);
  await page.getByRole("button", { name: "Show", exact: true }).click();
  await shown(page, period);
}

/** The reported window the page reads for a period at NOW: November is open until the next midnight. */
function window(period) {
  return period === "2026-10"
    ? { reported_start_time: "2026-10-01T00:00:00Z", reported_end_time: "2026-11-01T00:00:00Z" }
    : { reported_start_time: "2026-11-01T00:00:00Z", reported_end_time: "2026-11-03T00:00:00Z" };
}

/** Every page of a usage listing over gRPC. */
function grpcRows(token, method, request) {
  const rows = [];
  let continuation_token = "";
  do {
    const page = tally.grpc(token, method, { ...request, continuation_token });
    rows.push(...page.usageAggregates);
    continuation_token = page.continuationToken;
  } while (continuation_token);
  return rows;
}

function daily(period) {
  return { ...window(period), aggregation_granularity: "AGGREGATION_GRANULARITY_DAILY", allow_incomplete: true };
}

function operatorRows(period, subscriber_id = "") {
  return grpcRows(tokens.operator, "tally.usage.v1.ProviderUsage/ListSubscriberUsageAggregates", {
    ...daily(period),
    subscriber_id,
  });
}

function tenantRows(token, subscriptionId, period) {
  return grpcRows(token, "tally.usage.v1.TenantUsage/ListUsageAggregates", {
    ...daily(period),
    subscription_id: subscriptionId,
  });
}

/** gRPC rows as the page should show them: per meter, its exact total and each usage day's sum. */
function perMeter(rows) {
  const meters = {};
  for (const row of rows) {
    const meter = (meters[row.meterId] ??= { total: 0n, days: {} });
    const day = row.usageStartTime.slice(0, 10);
    meter.total += units(row.quantity);
    meter.days[day] = (meter.days[day] ?? 0n) + units(row.quantity);
  }
  return meters;
}

/** The meter cards in `scope`, read from the page, figures as exact units. */
async function pageMeters(scope) {
  const cards = await scope.locator("article.meter").evaluateAll((articles) =>
    articles.map((a) => ({
      meterId: a.dataset.meterId,
      name: a.querySelector("h3, h4").textContent,
      total: a.querySelector(".total .quantity").textContent,
      days: [...a.querySelectorAll("tbody tr")].map((tr) => [tr.dataset.day, tr.querySelector("td.quantity").textContent]),
      chartBars: a.querySelectorAll("svg rect.bar").length,
      chartLabel: a.querySelector("svg").getAttribute("aria-label"),
    })),
  );
  return Object.fromEntries(
    cards.map((card) => [
      card.meterId,
      { ...card, total: units(card.total), days: Object.fromEntries(card.days.map(([d, q]) => [d, units(q)])) },
    ]),
  );
}

async function assertMetersMatch(scope, rows, what) {
  const expected = perMeter(rows);
  const shown = await pageMeters(scope);
  assert.deepEqual(Object.keys(shown).sort(), Object.keys(expected).sort(), `${what}: meters`);
  assert.ok(Object.keys(expected).length > 0, `${what}: the data has usage`);
  const names = Object.fromEntries(
    tally.grpc(tokens.operator, "tally.usage.v1.UsageAdmin/ListMeters", { include_deprecated: true }).meters.map((m) => [m.meterId, m.name]),
  );
  for (const [meterId, meter] of Object.entries(expected)) {
    const card = shown[meterId];
    assert.equal(card.name, names[meterId], `${what}: meter name`);
    assert.equal(card.total, meter.total, `${what}: total of ${card.name}`);
    assert.deepEqual(card.days, meter.days, `${what}: daily ${card.name}`);
    assert.ok(card.chartBars >= Object.keys(meter.days).length, `${what}: a bar for every day`);
    assert.ok(card.chartLabel.startsWith(`Daily ${card.name}`), `${what}: the chart is described`);
  }
}

/** The subscriptions a table lists, by id. */
async function tableSubscriptions(table) {
  return (await table.locator("tbody tr[data-subscription-id]").evaluateAll((trs) => trs.map((tr) => tr.dataset.subscriptionId))).sort();
}

/** Every input and button is labelled, and every chart described. */
async function assertLabelled(page) {
  const unlabelled = await page.evaluate(() => {
    const visible = (el) => el.getClientRects().length > 0;
    const missing = [];
    for (const el of document.querySelectorAll("input, textarea, select")) {
      if (visible(el) && el.labels.length === 0 && !el.getAttribute("aria-label")) {
        missing.push(el.outerHTML);
      }
    }
    for (const el of document.querySelectorAll("button")) {
      if (visible(el) && !el.textContent.trim() && !el.getAttribute("aria-label")) {
        missing.push(el.outerHTML);
      }
    }
    for (const el of document.querySelectorAll("svg.chart")) {
      if (el.getAttribute("role") !== "img" || !el.getAttribute("aria-label")) {
        missing.push(el.outerHTML.slice(0, 80));
      }
    }
    return missing;
  });
  assert.deepEqual(unlabelled, []);
}

test("the portal's files are served without a token, with their types, and nothing else is", async () => {
  const redirect = await fetch(`${tally.base}/portal`, { redirect: "manual" });
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.get("location"), "/portal/");
  for (const [path, type] of [
    ["/portal/", "text/html; charset=utf-8"],
    ["/portal/app.js", "text/javascript; charset=utf-8"],
    ["/portal/portal.css", "text/css; charset=utf-8"],
    ["/portal/icon.svg", "image/svg+xml"],
  ]) {
    const { status, headers } = await tally.rest(null, path);
    assert.equal(status, 200, path);
    assert.equal(headers.get("content-type"), type, path);
    assert.match(headers.get("content-security-policy"), /default-src 'none'/, path);
  }
  assert.equal((await tally.rest(null, "/portal/secrets.txt")).status, 404);
  // The data calls are not public.
  const whoami = await tally.rest(null, "/tally/v1/whoami");
  assert.equal(whoami.status, 401);
  assert.equal(whoami.body.error.code, "MissingCredentials");
});

test("an operator sees the pipeline, every tenant's usage, and one tenant in detail", async () => {
  const page = await newPage();
  await signIn(page, tokens.operator);
  await shown(page, "2026-11");
  assert.equal(await page.locator("#who-subject").textContent(), "ops@example");
  assert.equal(await page.locator("#who-role").textContent(), "Operator");
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY), tokens.operator);

  // The pipeline, as GetPipelineStatus and the clock say.
  const status = tally.grpc(tokens.operator, "tally.usage.v1.UsageAdmin/GetPipelineStatus");
  const text = (id) => page.locator(`#${id}`).textContent();
  assert.equal(await text("pipeline-complete-through"), `${status.completeThrough.slice(0, 19).replace("T", " ")} UTC`);
  assert.equal(await text("pipeline-records-stored"), status.recordsStored);
  assert.equal(await text("pipeline-records-pending"), status.recordsPendingFold);
  assert.equal(await text("pipeline-now"), "2026-11-02 06:00:00 UTC");
  assert.equal(await text("pipeline-behind"), "0 s (caught up)");
  assert.equal(status.recordsStored, "12");

  // November, open: every subscriber's usage per meter and day, late October usage included.
  const usage = page.locator("#operator-usage");
  await assertMetersMatch(usage, operatorRows("2026-11"), "operator, November");
  assert.match(await text("period-note"), /^Open period/);
  await assertLabelled(page);
  await page.screenshot({ path: join(SHOTS, "operator.png"), fullPage: true });

  // The tenants, with their subscriptions, as ListTenants and ListSubscriptions say.
  const tenants = tally.grpc(tokens.operator, "tally.registration.v1.Tenancy/ListTenants").tenants;
  const subscriptions = tally.grpc(tokens.operator, "tally.registration.v1.Tenancy/ListSubscriptions", { include_deleted: true }).subscriptions;
  const rows = await page.locator("#tenants-table tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [tr.dataset.tenantId, tr.querySelector("th").textContent, tr.children[2].textContent]),
  );
  assert.deepEqual(
    rows.sort(),
    tenants
      .map((t) => [t.tenantId, t.displayName, String(subscriptions.filter((s) => s.ownerTenantId === t.tenantId).length)])
      .sort(),
  );

  // October, closed: the exact figures floating point cannot hold.
  await choosePeriod(page, "2026-10");
  await assertMetersMatch(usage, operatorRows("2026-10"), "operator, October");
  assert.match(await text("period-note"), /^Usage reported from 2026-10-01 00:00:00 UTC to 2026-11-01 00:00:00 UTC/);
  const blob = usage.locator(`article[data-meter-id="${BLOB_CAPACITY}"]`);
  assert.equal(await blob.locator(".total .quantity").textContent(), "9007199254740993.0000000001");
  const vm = usage.locator(`article[data-meter-id="${VM_HOURS}"]`);
  assert.equal(await vm.locator('tr[data-day="2026-10-26"] td.quantity').textContent(), "7.3");

  // Drill-down into Contoso, with the keyboard: only its subscriptions and its usage.
  await page.getByRole("button", { name: "View Contoso" }).focus();
  await page.keyboard.press("Enter");
  const detail = page.locator("#tenant-detail");
  await detail.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "tenant-detail-title");
  assert.equal(await page.locator("#tenant-detail-title").textContent(), `Contoso (tenant ${CONTOSO.id})`);
  const contosos = tally.grpc(tokens.operator, "tally.registration.v1.Tenancy/ListSubscriptions", {
    owner_tenant_id: CONTOSO.id,
    include_deleted: true,
  }).subscriptions;
  assert.deepEqual(await tableSubscriptions(detail.locator("table.subscriptions")), contosos.map((s) => s.subscriptionId).sort());
  const contosoRows = contosos.flatMap((s) => operatorRows("2026-10", s.subscriptionId));
  await assertMetersMatch(detail, contosoRows, "Contoso in detail, October");
  assert.equal(await detail.locator(`article[data-meter-id="${VM_HOURS}"] tr[data-day="2026-10-26"] td.quantity`).textContent(), "0.3");
  assert.equal(await detail.locator(`[data-subscription-id="${LOGS.id}"]`).count(), 0);
  await detail.screenshot({ path: join(SHOTS, "operator-tenant.png") });

  assertWellBehaved(page);
  await page.close();
});

test("a tenant sees its own subscriptions and usage, and nothing of another tenant", async () => {
  const page = await newPage();
  await signIn(page, tokens.contoso);
  await shown(page, "2026-11");
  assert.equal(await page.locator("#who-subject").textContent(), "alice@contoso");
  assert.equal(await page.locator("#who-role").textContent(), "Tenant Contoso");
  assert.equal(await page.locator("#operator-view").isHidden(), true);

  // Its subscriptions, as ListSubscriptions answers the tenant.
  const own = tally.grpc(tokens.contoso, "tally.registration.v1.Tenancy/ListSubscriptions", { include_deleted: true }).subscriptions;
  assert.deepEqual(own.map((s) => s.subscriptionId).sort(), [WEB.id, DATA.id].sort());
  assert.deepEqual(await tableSubscriptions(page.locator("#my-subscriptions table")), own.map((s) => s.subscriptionId).sort());

  for (const period of ["2026-11", "2026-10"]) {
    if (period !== "2026-11") {
      await choosePeriod(page, period);
    }
    const rows = own.flatMap((s) => tenantRows(tokens.contoso, s.subscriptionId, period));
    await assertMetersMatch(page.locator("#my-usage"), rows, `Contoso, ${period}`);
    // Per subscription and meter, as ListUsageAggregates sums them.
    const bySubscription = await page.locator("#my-usage table.by-subscription tbody tr").evaluateAll((trs) =>
      trs.map((tr) => [tr.dataset.subscriptionId, tr.dataset.meterId, tr.querySelector("td.quantity").textContent]),
    );
    const expected = {};
    for (const row of rows) {
      const key = `${row.subscriptionId} ${row.meterId}`;
      expected[key] = (expected[key] ?? 0n) + units(row.quantity);
    }
    assert.deepEqual(Object.fromEntries(bySubscription.map(([s, m, q]) => [`${s} ${m}`, units(q)])), expected, period);
    if (period === "2026-11") {
      await assertLabelled(page);
      await page.screenshot({ path: join(SHOTS, "tenant.png"), fullPage: true });
    }
  }

  // Nothing of Fabrikam anywhere on the page.
  const html = await page.content();
  for (const secret of [FABRIKAM.id, FABRIKAM.name, LOGS.id, LOGS.name]) {
    assert.ok(!html.includes(secret), `the tenant's page shows ${secret}`);
  }
  // And the REST surface refuses it, whatever the tenant asks for.
  const refused = [
    [`/subscriptions/${LOGS.id}/providers/Microsoft.Commerce/UsageAggregates?api-version=2015-06-01-preview&reportedStartTime=2026-10-01T00:00:00Z&reportedEndTime=2026-11-01T00:00:00Z`, 403, "NotSubscriptionOwner"],
    ["/tenancy/v1/tenants", 403, "RoleRequired"],
    ["/usage/v1/pipeline", 403, "RoleRequired"],
    [`/billing/v1/periods/2026-10/statements/${FABRIKAM.id}`, 403, "StatementNotVisible"],
    [`/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?api-version=2015-06-01-preview&reportedStartTime=2026-10-01T00:00:00Z&reportedEndTime=2026-11-01T00:00:00Z`, 403, "RoleRequired"],
  ];
  for (const [path, status, code] of refused) {
    const answer = await tally.rest(tokens.contoso, path);
    assert.deepEqual([answer.status, answer.body.error?.code], [status, code], path);
  }
  const asked = await tally.rest(tokens.contoso, `/tenancy/v1/subscriptions?ownerTenantId=${FABRIKAM.id}`);
  assert.deepEqual(asked.body.subscriptions.map((s) => s.ownerTenantId), [CONTOSO.id, CONTOSO.id]);

  // Sign-out forgets the token and everything shown.
  await page.getByRole("button", { name: "Sign out" }).click();
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY), null);
  assert.equal(await page.getByLabel("Bearer token").isVisible(), true);
  assert.equal(await page.evaluate(() => document.activeElement.id), "token");
  assert.ok(!(await page.content()).includes(WEB.id), "signed out, the page still shows a subscription");
  assertWellBehaved(page);
  await page.close();
});

/** Statements over gRPC, by tenant id. */
function grpcStatements(period) {
  const statements = [];
  let page_token = "";
  do {
    const page = tally.grpc(tokens.operator, "tally.billing.v1.Billing/ListStatements", { billing_period: period, page_token });
    statements.push(...page.statements);
    page_token = page.nextPageToken;
  } while (page_token);
  return Object.fromEntries(statements.map((s) => [s.tenantId, s]));
}

/** A statement's lines as the page shows them: kind, subscription, meter and exact cost. */
async function pageLines(scope) {
  return (
    await scope.locator("table.statement-lines tbody tr[data-kind]").evaluateAll((trs) =>
      trs.map((tr) => [tr.dataset.kind, tr.dataset.subscriptionId ?? "", tr.dataset.meterId ?? "", tr.querySelector("td.cost").dataset.cost]),
    )
  ).sort();
}

function grpcLines(statement) {
  return statement.lines.map((l) => [l.kind, l.subscriptionId, l.meterId, l.cost]).sort();
}

test("an operator sees the bridge and every tenant's statement, open and final", async () => {
  const page = await newPage();
  await signIn(page, tokens.operator);
  await shown(page, "2026-11");
  const text = (id) => page.locator(`#${id}`).textContent();

  // The bridge, as GetBridgeStatus says (this installation reports to no commerce endpoint).
  const bridge = tally.grpc(tokens.operator, "tally.bridge.v1.UsageBridge/GetBridgeStatus");
  await page.locator("#bridge-state", { hasText: bridge.state }).waitFor();
  assert.equal(await text("bridge-pending"), String(bridge.pendingBatches));
  assert.equal(await text("bridge-parked"), String(bridge.parkedBatches));

  for (const [period, final] of [
    ["2026-11", false],
    ["2026-10", true],
  ]) {
    if (period !== "2026-11") {
      await choosePeriod(page, period);
    }
    const expected = grpcStatements(period);
    assert.ok(Object.keys(expected).length >= 2, `${period}: statements to show`);
    const shown = await page.locator("#statements-table tbody tr").evaluateAll((trs) =>
      trs.map((tr) => [
        tr.dataset.tenantId,
        tr.querySelector("td.total").dataset.amount,
        tr.querySelector("td.amount-due").dataset.amount,
        tr.querySelector(".final").textContent,
      ]),
    );
    assert.deepEqual(
      shown.sort(),
      Object.values(expected)
        .map((s) => [s.tenantId, s.total, s.amountDue, s.final ? "Final" : "Open: can still change"])
        .sort(),
      `${period}: every tenant's statement`,
    );
    assert.equal(Object.values(expected).every((s) => s.final), final, `${period}: final`);
    assert.equal(await page.locator("#statements .statements-chart svg rect.bar").count(), Object.keys(expected).length);
    assert.match(await page.locator("#statements .statements-chart svg").getAttribute("aria-label"), new RegExp(`^Cost per tenant in ${period}`));
    if (period === "2026-10") {
      // Fabrikam's tiers: 7 VM hours at 0.5 up to 5, then 0.1; 42 transactions at 0.0001.
      assert.equal(expected[FABRIKAM.id].total.replace(/0+$/, ""), "2.7042");
      await page.screenshot({ path: join(SHOTS, "operator-statements.png"), fullPage: true });
      // The drill-down shows the tenant's statement.
      await page.getByRole("button", { name: "View Fabrikam" }).click();
      const detail = page.locator("#tenant-detail");
      await detail.waitFor();
      assert.deepEqual(await pageLines(detail), grpcLines(expected[FABRIKAM.id]));
    }
  }
  await assertLabelled(page);
  assertWellBehaved(page);
  await page.close();
});

test("a tenant reads its statement and downloads the period's charges as the REST export gives them", async () => {
  const page = await newPage();
  await signIn(page, tokens.contoso);
  await shown(page, "2026-11");
  const box = page.locator("#my-statement .statement");
  for (const period of ["2026-11", "2026-10"]) {
    if (period !== "2026-11") {
      await choosePeriod(page, period);
    }
    const statement = tally.grpc(tokens.contoso, "tally.billing.v1.Billing/GetStatement", { tenant_id: CONTOSO.id, billing_period: period });
    await box.locator("table.statement-lines").waitFor();
    assert.deepEqual(await pageLines(box), grpcLines(statement), `${period}: the lines`);
    assert.equal(await box.locator("dd.amount-due").getAttribute("data-amount"), statement.amountDue);
    assert.equal(await box.locator("dd.total").getAttribute("data-amount"), statement.total);
    assert.match(await box.locator("dd.amount-due").textContent(), /^-?\$[\d,]+\.\d{2} USD$/);
    assert.equal(await box.locator(".final").textContent(), statement.final ? "Final" : "Open: can still change");
    if (period === "2026-11") {
      // The credit is a line of its own, with its reason.
      assert.ok(statement.lines.some((l) => l.kind === "Adjustment" && l.cost.startsWith("-1.25")));
      assert.equal(await box.locator('tr[data-kind="Adjustment"] th').textContent(), "Adjustment: Goodwill credit, ticket 4711");
    } else {
      assert.equal(statement.final, true);
      assert.ok((await box.locator("svg.chart").getAttribute("aria-label")).startsWith("Cost per meter in 2026-10"));
    }
  }
  await page.screenshot({ path: join(SHOTS, "tenant-statement.png"), fullPage: true });

  // Each download button saves what the REST export route answers for the same period.
  for (const [label, format] of [
    ["CSV", "csv"],
    ["FOCUS 1.0 (CSV)", "focus"],
    ["Parquet", "parquet"],
  ]) {
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: `Download 2026-10 as ${label}` }).click(),
    ]);
    const saved = await readFile(await download.path());
    const response = await fetch(`${tally.base}/billing/v1/periods/2026-10/charges?format=${format}&tenantId=${CONTOSO.id}`, {
      headers: { authorization: `Bearer ${tokens.contoso}` },
    });
    assert.equal(response.status, 200, format);
    const expected = Buffer.from(await response.arrayBuffer());
    assert.ok(expected.length > 0, `${format}: an export`);
    assert.ok(saved.equals(expected), `${format}: the saved file is the REST export`);
    const disposition = response.headers.get("content-disposition");
    assert.ok(disposition.includes(download.suggestedFilename()), `${format}: saved as ${download.suggestedFilename()} (${disposition})`);
    await page.locator("#download-status", { hasText: `Saved ${download.suggestedFilename()}` }).waitFor();
  }
  const html = await page.content();
  for (const secret of [FABRIKAM.id, FABRIKAM.name, LOGS.id]) {
    assert.ok(!html.includes(secret), `the tenant's statement shows ${secret}`);
  }
  assertWellBehaved(page);
  await page.close();
});

test("bad and expired tokens get a clear message and a way back to sign-in", async () => {
  const page = await newPage();
  await signIn(page, "not-a-token");
  const error = page.locator("#sign-in-error");
  await error.waitFor();
  assert.match(await error.textContent(), /^Tally refused this token: the bearer token is invalid: .+ \(InvalidToken\)\.$/);
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY), null);
  await signIn(page, tokens.expired);
  await page.locator("#sign-in-error", { hasText: "ExpiredSignature" }).waitFor();
  await page.screenshot({ path: join(SHOTS, "sign-in-refused.png") });

  // A token that expires while signed in: the next call ends the session, in words.
  await signIn(page, tokens.operator);
  await shown(page, "2026-11");
  await page.evaluate(([key, expired]) => sessionStorage.setItem(key, expired), [TOKEN_KEY, tokens.expired]);
  await page.getByRole("button", { name: "Refresh" }).click();
  const ended = page.locator("#session-ended");
  await ended.waitFor();
  assert.match(await page.locator("#session-ended-message").textContent(), /^Tally no longer accepts your token: .*ExpiredSignature \(InvalidToken\)\.$/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "session-ended-title");
  assert.equal(await page.locator("#operator-view article.meter").count(), 0, "what was shown is gone");
  await page.screenshot({ path: join(SHOTS, "session-ended.png") });
  await page.getByRole("button", { name: "Sign in again" }).click();
  assert.equal(await page.getByLabel("Bearer token").isVisible(), true);
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY), null);

  // A token the portal has no view for says so.
  await signIn(page, tokens.provider);
  await page.locator("#no-view-message", { hasText: "ResourceProvider" }).waitFor();
  assertWellBehaved(page);
  await page.close();
});

test("an API error is shown in words where it happened, and the rest of the page still works", async () => {
  const page = await newPage();
  await page.route("**/usage/v1/pipeline", (route) =>
    route.fulfill({
      status: 503,
      contentType: "application/json",
      body: JSON.stringify({ error: { code: "ServiceUnavailable", message: "the usage service is not answering" } }),
    }),
  );
  await signIn(page, tokens.operator);
  await shown(page, "2026-11");
  const error = page.locator("#pipeline p.error");
  assert.equal(await error.textContent(), "Could not load this: the usage service is not answering (ServiceUnavailable, HTTP 503)");
  assert.equal(await error.getAttribute("role"), "alert");
  await assertMetersMatch(page.locator("#operator-usage"), operatorRows("2026-11"), "operator, beside the error");
  await page.close();
});

test("on a narrow screen nothing scrolls sideways", async () => {
  for (const [who, token] of [
    ["operator", tokens.operator],
    ["tenant", tokens.contoso],
  ]) {
    const page = await newPage({ width: 360, height: 780 });
    await signIn(page, token);
    await shown(page, "2026-11");
    const { overflow, wide } = await page.evaluate(() => {
      const width = document.documentElement.clientWidth;
      const wide = [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > width + 0.5 && !e.closest(".table-wrap"))
        .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`);
      return { overflow: document.documentElement.scrollWidth - width, wide: wide.slice(0, 5) };
    });
    assert.ok(overflow <= 0, `${who}: the page is ${overflow}px wider than a 360px screen: ${wide.join(", ")}`);
    await page.screenshot({ path: join(SHOTS, `${who}-narrow.png`), fullPage: true });
    assertWellBehaved(page);
    await page.close();
  }
});
