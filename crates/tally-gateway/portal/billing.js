// Statements, money and exports as the portal shows them: statements read from the billing REST
// routes, amounts formatted in the statement's currency from their exact text, costs grouped per
// meter exactly, and a period's export downloaded with the caller's token.

import { all, fetchWithToken, get } from "./api.js";
import { parse, sum } from "./decimal.js";

/** Every tenant's statement for `period` (operators). */
export function statementsOf(period) {
  return all(`/billing/v1/periods/${encodeURIComponent(period)}/statements`, "statements");
}

/** One tenant's statement for `period` (an operator, or that tenant). */
export function statementOf(period, tenantId) {
  return get(
    `/billing/v1/periods/${encodeURIComponent(period)}/statements/${encodeURIComponent(tenantId)}`,
  );
}

/** "1234567.891" as "1,234,567.891": digits grouped, none changed. */
function grouped(text) {
  const { units } = parse(text);
  const negative = units < 0n;
  const plain = negative ? text.trim().slice(1) : text.trim();
  const [whole, fraction] = plain.split(".");
  const wholeGrouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}${wholeGrouped}${fraction !== undefined ? `.${fraction}` : ""}`;
}

/** The currency's symbol in English ("$" for USD, "¥" for JPY), or its code. */
function symbol(currency) {
  try {
    const parts = new Intl.NumberFormat("en", { style: "currency", currency }).formatToParts(0);
    return parts.find((p) => p.type === "currency")?.value ?? currency;
  } catch {
    return currency;
  }
}

/**
 * `amount` (an exact decimal string) in `currency`: "USD 1,234.50" style with the symbol, every
 * digit as the API gave it. Costs keep all their digits; `amountDue` is already rounded by Tally.
 */
export function money(amount, currency) {
  if (!currency) {
    return grouped(amount);
  }
  const sign = symbol(currency);
  const text = grouped(amount);
  const negative = text.startsWith("-");
  const magnitude = negative ? text.slice(1) : text;
  const shown = sign === currency ? `${magnitude} ${currency}` : `${sign}${magnitude} ${currency}`;
  return negative ? `-${shown}` : shown;
}

/** Usage cost per meter of a statement's lines ([{ meterId, name, cost }]), exact, largest first. */
export function costPerMeter(statement) {
  const meters = new Map();
  for (const line of statement.lines ?? []) {
    if (line.kind !== "Usage") {
      continue;
    }
    const entry = meters.get(line.meterId) ?? { meterId: line.meterId, name: line.meterName || line.meterId, costs: [] };
    entry.costs.push(line.cost);
    meters.set(line.meterId, entry);
  }
  return [...meters.values()]
    .map(({ meterId, name, costs }) => ({ meterId, name, cost: sum(costs) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export const EXPORT_FORMATS = [
  { format: "csv", label: "CSV", extension: "csv" },
  { format: "focus", label: "FOCUS 1.0 (CSV)", extension: "focus.csv" },
  { format: "parquet", label: "Parquet", extension: "parquet" },
];

/** The file name in a Content-Disposition header, if any. */
function fileNameOf(disposition) {
  const match = /filename="?([^";]+)"?/i.exec(disposition ?? "");
  return match ? match[1] : null;
}

/**
 * Downloads the period's export in `format` through the REST export route with the caller's
 * token (a link cannot carry it), and saves it under the server's file name.
 */
export async function downloadExport(period, format, tenantId) {
  const query = new URLSearchParams({ format });
  if (tenantId) {
    query.set("tenantId", tenantId);
  }
  const response = await fetchWithToken(
    `/billing/v1/periods/${encodeURIComponent(period)}/charges?${query}`,
    "*/*",
  );
  const blob = await response.blob();
  const name =
    fileNameOf(response.headers.get("Content-Disposition")) ??
    `tally-${period}.${EXPORT_FORMATS.find((f) => f.format === format)?.extension ?? format}`;
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { name, bytes: blob.size };
}
