// Exact decimals for display. Tally sends quantities and money as decimal strings (or JSON
// numbers kept as text, see api.js); the portal sums and compares them with BigInt and never
// turns them into floating-point numbers, except to size a bar in a chart.

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/** "12.340" as { units: 12340n, scale: 3 }; anything but a plain decimal throws. */
export function parse(text) {
  const match = DECIMAL.exec(String(text).trim());
  if (!match) {
    throw new Error(`not an exact decimal: ${JSON.stringify(text)}`);
  }
  const [, sign, whole, fraction = ""] = match;
  const units = BigInt(whole + fraction);
  return { units: sign ? -units : units, scale: fraction.length };
}

function atScale(value, scale) {
  return value.units * 10n ** BigInt(scale - value.scale);
}

/** { units, scale } back to text, with exactly `scale` fractional digits. */
export function format({ units, scale }) {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale);
  return (negative ? "-" : "") + whole + (scale > 0 ? `.${fraction}` : "");
}

/** The exact sum of decimal strings, with as many fractional digits as the longest; "0" for none. */
export function sum(values) {
  const parsed = [...values].map(parse);
  const scale = Math.max(0, ...parsed.map((v) => v.scale));
  const units = parsed.reduce((total, v) => total + atScale(v, scale), 0n);
  return format({ units, scale });
}

/** -1, 0 or 1 as `a` is less than, equal to or greater than `b` (exactly). */
export function compare(a, b) {
  const [x, y] = [parse(a), parse(b)];
  const scale = Math.max(x.scale, y.scale);
  const [ux, uy] = [atScale(x, scale), atScale(y, scale)];
  return ux < uy ? -1 : ux > uy ? 1 : 0;
}

/** a / b between 0 and 1, to size a bar; never used for a figure shown as text. */
export function fraction(a, b) {
  const [x, y] = [parse(a), parse(b)];
  const scale = Math.max(x.scale, y.scale);
  const [ux, uy] = [atScale(x, scale), atScale(y, scale)];
  if (uy <= 0n || ux <= 0n) {
    return 0;
  }
  return Math.min(1, Number((ux * 1_000_000n) / uy) / 1_000_000);
}
