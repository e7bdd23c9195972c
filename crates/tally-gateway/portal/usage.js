// Usage over a billing period, read from the Azure-compatible usage routes (daily rows, the
// open part of the period included) and grouped for display: per meter and usage day, and per
// subscription and meter, every sum exact.

import { allAzure } from "./api.js";
import { sum } from "./decimal.js";

const API_VERSION = "2015-06-01-preview";
const DAY_MS = 86_400_000;
// ARM addresses the provider usage API under a provider subscription; an operator may name any,
// and sees every subscriber whichever it names.
const EVERY_SUBSCRIBER =
  "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates";

/** "2026-11" for the month `time` falls in (UTC). */
export function periodOf(time) {
  return time.toISOString().slice(0, 7);
}

/**
 * The reported window of billing period `period` ("2026-11", a UTC month) that can be read at
 * `now`: from the month's start to its end, or to the midnight that ends today if that is
 * earlier (an open period shows what is reported so far). `empty` when it has not started.
 */
export function periodWindow(period, now) {
  const [year, month] = period.split("-").map(Number);
  const start = new Date(Date.UTC(year, month - 1, 1));
  const periodEnd = new Date(Date.UTC(year, month, 1));
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const readable = new Date(today + DAY_MS);
  const end = periodEnd < readable ? periodEnd : readable;
  return { period, start, end, periodEnd, open: now < periodEnd, empty: end <= start };
}

function windowQuery(window) {
  const time = (t) => t.toISOString().replace(".000Z", "Z");
  return new URLSearchParams({
    "api-version": API_VERSION,
    reportedStartTime: time(window.start),
    reportedEndTime: time(window.end),
    aggregationGranularity: "Daily",
    allowIncomplete: "true",
  }).toString();
}

/** Every subscriber's daily rows of the window (operators). */
export function everySubscriberRows(window) {
  return window.empty ? Promise.resolve([]) : allAzure(`${EVERY_SUBSCRIBER}?${windowQuery(window)}`);
}

/** One subscription's daily rows of the window (its owner, or an operator). */
export function subscriptionRows(subscriptionId, window) {
  if (window.empty) {
    return Promise.resolve([]);
  }
  const path = `/subscriptions/${encodeURIComponent(subscriptionId)}/providers/Microsoft.Commerce/UsageAggregates`;
  return allAzure(`${path}?${windowQuery(window)}`);
}

/** The usage days of the window, plus any earlier day that late rows belong to. */
function daysOf(window, rowDays) {
  const days = new Set(rowDays);
  for (let t = window.start.getTime(); t < window.end.getTime(); t += DAY_MS) {
    days.add(new Date(t).toISOString().slice(0, 10));
  }
  return [...days].sort();
}

/**
 * Rows per meter, by name: { meterId, name, unit, total, days: [{ day, quantity, reported }] }
 * with a day for every day of the window (quantity "0" and `reported` false when it has no row)
 * and exact sums.
 */
export function perMeter(rows, window) {
  const meters = new Map();
  for (const { properties: row } of rows) {
    let meter = meters.get(row.meterId);
    if (!meter) {
      meter = { meterId: row.meterId, name: row.meterName || row.meterId, unit: row.unit || "", byDay: new Map() };
      meters.set(row.meterId, meter);
    }
    const day = row.usageStartTime.slice(0, 10);
    meter.byDay.set(day, [...(meter.byDay.get(day) ?? []), row.quantity]);
  }
  return [...meters.values()]
    .map(({ byDay, ...meter }) => ({
      ...meter,
      total: sum([...byDay.values()].flat()),
      days: daysOf(window, byDay.keys()).map((day) => ({
        day,
        quantity: sum(byDay.get(day) ?? []),
        reported: byDay.has(day),
      })),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Exact totals per subscription and meter: [{ subscriptionId, meterId, name, unit, total }]. */
export function perSubscriptionAndMeter(rows) {
  const groups = new Map();
  for (const { properties: row } of rows) {
    const key = `${row.subscriptionId} ${row.meterId}`;
    const group = groups.get(key) ?? {
      subscriptionId: row.subscriptionId,
      meterId: row.meterId,
      name: row.meterName || row.meterId,
      unit: row.unit || "",
      quantities: [],
    };
    group.quantities.push(row.quantity);
    groups.set(key, group);
  }
  return [...groups.values()]
    .map(({ quantities, ...group }) => ({ ...group, total: sum(quantities) }))
    .sort((a, b) => a.subscriptionId.localeCompare(b.subscriptionId) || a.name.localeCompare(b.name));
}
