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

/**
 * A numeric series over time, [[unixSeconds, value]] oldest first, as a line
 * with its first and last times and its range written out (so the figure reads
 * without the picture too).
 */
export function series(caption, points) {
  const w = 320, ht = 80;
  const vs = points.map(([, v]) => v);
  const lo = Math.min(...vs), hi = Math.max(...vs);
  const span = hi - lo || 1;
  const t0 = points.length ? points[0][0] : 0;
  const t1 = points.length ? points[points.length - 1][0] : 0;
  const x = (t, i) => (t1 > t0 ? ((t - t0) * w) / (t1 - t0) : (i * w) / Math.max(1, points.length - 1));
  const pts = points.map(([t, v], i) => `${x(t, i).toFixed(1)},${(ht - 4 - ((ht - 8) * (v - lo)) / span).toFixed(1)}`).join(" ");
  const last = vs.length ? vs[vs.length - 1] : 0;
  const label = `${caption}: latest ${last}, range ${lo} to ${hi} over ${points.length} messages`;
  const svg = s("svg", { width: w, height: ht, role: "img", "aria-label": label });
  if (points.length > 1) svg.append(s("polyline", { class: "line", points: pts }));
  else if (points.length === 1) svg.append(s("circle", { class: "dot", cx: w / 2, cy: ht / 2, r: 3 }));
  return h("figure", {}, h("figcaption", {}, `${caption}: ${last} (${lo} – ${hi})`), svg);
}
