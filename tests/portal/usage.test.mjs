// The portal's billing-period windows and grouping (crates/tally-gateway/portal/usage.js),
// checked in Node without a browser.

import assert from "node:assert/strict";
import { test } from "node:test";

import { perMeter, perSubscriptionAndMeter, periodOf, periodWindow } from "../../crates/tally-gateway/portal/usage.js";

const iso = (d) => d.toISOString();

test("a period is read up to its end, or to the midnight that ends today", () => {
  const open = periodWindow("2026-11", new Date("2026-11-02T06:00:00Z"));
  assert.deepEqual([iso(open.start), iso(open.end), open.open, open.empty], ["2026-11-01T00:00:00.000Z", "2026-11-03T00:00:00.000Z", true, false]);
  const closed = periodWindow("2026-10", new Date("2026-11-02T06:00:00Z"));
  assert.deepEqual([iso(closed.end), closed.open], ["2026-11-01T00:00:00.000Z", false]);
  const december = periodWindow("2026-12", new Date("2027-03-01T00:00:00Z"));
  assert.deepEqual([iso(december.start), iso(december.end)], ["2026-12-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"]);
  // At midnight, today has begun: its day can be watched.
  const midnight = periodWindow("2026-11", new Date("2026-11-01T00:00:00Z"));
  assert.deepEqual([iso(midnight.end), midnight.empty], ["2026-11-02T00:00:00.000Z", false]);
  assert.equal(periodWindow("2026-12", new Date("2026-11-30T23:59:59Z")).empty, true);
  assert.equal(periodOf(new Date("2026-12-31T23:59:59Z")), "2026-12");
});

test("rows are grouped per meter and day, and per subscription and meter, exactly", () => {
  const row = (subscriptionId, meterId, day, quantity) => ({
    properties: { subscriptionId, meterId, meterName: `meter ${meterId}`, unit: "Hours", usageStartTime: `${day}T00:00:00+00:00`, quantity },
  });
  const rows = [
    row("s1", "m1", "2026-11-01", "0.1"),
    row("s2", "m1", "2026-11-01", "0.2"),
    row("s1", "m1", "2026-10-31", "1"),
    row("s1", "m2", "2026-11-02", "9007199254740993"),
  ];
  const window = periodWindow("2026-11", new Date("2026-11-02T06:00:00Z"));
  const [m1, m2] = perMeter(rows, window);
  assert.equal(m1.total, "1.3");
  assert.deepEqual(m1.days, [
    { day: "2026-10-31", quantity: "1", reported: true },
    { day: "2026-11-01", quantity: "0.3", reported: true },
    { day: "2026-11-02", quantity: "0", reported: false },
  ]);
  assert.equal(m2.total, "9007199254740993");
  assert.deepEqual(
    perSubscriptionAndMeter(rows).map((g) => [g.subscriptionId, g.meterId, g.total]),
    [["s1", "m1", "1.1"], ["s1", "m2", "9007199254740993"], ["s2", "m1", "0.2"]],
  );
});
