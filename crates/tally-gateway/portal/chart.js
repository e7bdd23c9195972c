// A small bar chart drawn as SVG, one bar per item. Bars are sized from exact decimals (see
// decimal.js); the exact figures are in the table beside each chart and in each bar's tooltip.

import { compare, fraction } from "./decimal.js";

const SVG = "http://www.w3.org/2000/svg";
// The drawing's own units; the SVG scales to the width of its card.
const WIDTH = 320;
const TOP = 14;
const HEIGHT = 120;
const AXIS = 16;
const SIDE = 4;
const WIDEST_BAR = 24;

function svg(name, attributes = {}, text = "") {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, String(value));
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

/**
 * An SVG bar chart of `bars` ([{ label, value, tip }], value an exact decimal string), described
 * for screen readers by `description`. Every `labelEvery`-th label is drawn under its bar, and
 * the highest value, exactly, above the bars.
 */
export function barChart({ bars, description, labelEvery = 1 }) {
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${TOP + HEIGHT + AXIS}`,
    role: "img",
    "aria-label": description,
    class: "chart",
  });
  const highest = bars.reduce((max, bar) => (compare(bar.value, max) > 0 ? bar.value : max), "0");
  const baseline = TOP + HEIGHT;
  chart.append(svg("text", { x: SIDE, y: 10, class: "scale" }, `highest ${highest}`));
  chart.append(svg("line", { x1: 0, y1: baseline + 0.5, x2: WIDTH, y2: baseline + 0.5, class: "axis" }));
  const slot = (WIDTH - 2 * SIDE) / Math.max(bars.length, 1);
  const width = Math.min(slot * 0.75, WIDEST_BAR);
  bars.forEach((bar, i) => {
    const x = SIDE + i * slot + (slot - width) / 2;
    const positive = compare(bar.value, "0") > 0;
    const height = positive ? Math.max(fraction(bar.value, highest) * (HEIGHT - 2), 1) : 0;
    const rect = svg("rect", { x, y: baseline - height, width, height, class: "bar" });
    rect.append(svg("title", {}, bar.tip));
    chart.append(rect);
    if (i % labelEvery === 0) {
      chart.append(svg("text", { x: x + width / 2, y: baseline + 12, class: "tick" }, bar.label));
    }
  });
  return chart;
}
