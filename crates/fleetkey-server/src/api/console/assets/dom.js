// DOM helpers: elements are built with createElement and text nodes only (no
// markup parsing), so nothing the API returns is ever parsed as markup.

/** An element: h("a", { href: "#/" }, "text", child, …). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An SVG element. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat()) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** A table: columns [{ label, cell(row) }], rows; an empty message when none. */
export function table(caption, columns, rows, empty = "Nothing here yet.") {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("caption", { class: "muted" }, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(r)))))),
  );
}

/** Unix seconds as a local date and time ("—" when absent). */
export function when(t) {
  if (t === undefined || t === null) return "—";
  return new Date(t * 1000).toLocaleString();
}

/** How long ago, in words. */
export function ago(t) {
  if (t === undefined || t === null) return "never";
  const d = Math.max(0, Date.now() / 1000 - t);
  if (d < 90) return `${Math.round(d)} s ago`;
  if (d < 5400) return `${Math.round(d / 60)} min ago`;
  if (d < 129600) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} days ago`;
}

/** Seconds as a duration in words. */
export function duration(secs) {
  if (secs >= 86400) return `${Math.round(secs / 86400)} days`;
  if (secs >= 3600) return `${Math.round(secs / 3600)} h`;
  if (secs >= 60) return `${Math.round(secs / 60)} min`;
  return `${secs} s`;
}

/** The page's error state. */
export function failure(e) {
  return h("p", { class: "error", role: "alert" }, `${e.code ? e.code + ": " : ""}${e.message || e}`);
}

/** A summary number. */
export function card(label, n) {
  return h("div", { class: "card" }, h("div", { class: "n" }, n), h("div", { class: "l" }, label));
}

/** A button that runs `action`, disabled while it runs, showing its outcome in `status`. */
export function action(label, status, run, { danger = false, confirm: question } = {}) {
  const b = h("button", { type: "button", class: danger ? "danger" : undefined }, label);
  b.addEventListener("click", async () => {
    if (question && !window.confirm(question)) return;
    b.disabled = true;
    status.textContent = `${label}…`;
    status.className = "muted";
    try {
      const msg = await run();
      status.textContent = msg || `${label}: done`;
      status.className = "ok";
    } catch (e) {
      status.textContent = `${label}: ${e.code ? e.code + ": " : ""}${e.message || e}`;
      status.className = "bad";
    } finally {
      b.disabled = false;
    }
  });
  return b;
}
