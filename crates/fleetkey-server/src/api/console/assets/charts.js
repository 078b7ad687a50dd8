// Small SVG charts drawn here (no chart library, nothing fetched).
import { h, s } from "./dom.js";

/** Horizontal bars: [[label, value]], with each value written beside its bar. */
export function bars(caption, pairs) {
  const max = Math.max(1, ...pairs.map(([, v]) => v));
  const row = 22;
  const svg = s("svg", { width: 360, height: Math.max(row, pairs.length * row), role: "img", "aria-label": caption });
  pairs.forEach(([label, v], i) => {
    const y = i * row;
    svg.append(
      s("text", { x: 0, y: y + 15 }, label),
      s("rect", { class: "bar", x: 130, y: y + 4, height: 14, width: Math.max(1, (180 * v) / max) }),
      s("text", { x: 136 + (180 * v) / max, y: y + 15 }, String(v)),
    );
  });
  if (pairs.length === 0) return h("figure", {}, h("figcaption", {}, caption), h("p", { class: "empty" }, "No data yet."));
  return h("figure", {}, h("figcaption", {}, caption), svg);
}

/** A line of the last samples (per-second rates), with the latest value. */
export function sparkline(caption, values, unit = "/s") {
  const w = 240, ht = 60;
  const max = Math.max(1e-9, ...values);
  const pts = values.map((v, i) => `${(i * w) / Math.max(1, values.length - 1)},${ht - 4 - ((ht - 8) * v) / max}`).join(" ");
  const last = values.length ? values[values.length - 1] : 0;
  const label = `${caption}: ${last.toFixed(1)}${unit}`;
  const svg = s("svg", { width: w, height: ht, role: "img", "aria-label": label });
  if (values.length > 1) svg.append(s("polyline", { class: "line", points: pts }));
  return h("figure", {}, h("figcaption", {}, label), svg);
}
