// One device: what it is, its life so far (the audit log's entries about it),
// its sessions, its latest telemetry as charts, its commands, and the
// operator's actions (suspend, resume, rotate, decommission), each through the API.
import { api, path } from "../api.js";
import { series } from "../charts.js";
import { action, ago, h, table, when } from "../dom.js";

/** Up to four numeric fields of the telemetry, each as [[time, value]]. */
function numericSeries(points) {
  const fields = new Map();
  for (const p of points) {
    if (!p.data || typeof p.data !== "object" || Array.isArray(p.data)) continue;
    for (const [k, v] of Object.entries(p.data)) {
      if (typeof v !== "number" || !Number.isFinite(v)) continue;
      if (!fields.has(k)) {
        if (fields.size >= 4) continue;
        fields.set(k, []);
      }
      fields.get(k).push([p.received_at, v]);
    }
  }
  return [...fields.entries()];
}

/** "device.state" → "device state", details summarised as key=value. */
function describe(e) {
  const what = e.action.replaceAll(".", " ").replaceAll("_", " ");
  const d = e.details && typeof e.details === "object" ? e.details : {};
  const parts = Object.entries(d)
    .filter(([, v]) => ["string", "number", "boolean"].includes(typeof v))
    .slice(0, 4)
    .map(([k, v]) => `${k}=${v}`);
  return parts.length ? `${what} (${parts.join(", ")})` : what;
}

export async function devicePage(fleet, id) {
  const [d, commands, history] = await Promise.all([
    api("GET", path`/v1/fleets/${fleet}/devices/${id}`),
    api("GET", path`/v1/fleets/${fleet}/devices/${id}/commands`),
    api("GET", path`/v1/fleets/${fleet}/devices/${id}/history?limit=50`),
  ]);
  const status = h("p", { role: "status", class: "muted" });
  const reload = () => {
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  };
  const stateTo = (state, label) =>
    action(label, status, async () => {
      await api("POST", path`/v1/fleets/${fleet}/devices/${id}/state`, { state });
      setTimeout(reload, 600);
      return `${label}: the device is ${state}`;
    });
  const actions = [];
  if (d.state === "active") actions.push(stateTo("suspended", "Suspend"));
  if (d.state === "suspended") actions.push(stateTo("active", "Resume"));
  if (["active", "rotating"].includes(d.state)) {
    actions.push(
      action("Rotate credentials", status, async () => {
        await api("POST", path`/v1/fleets/${fleet}/devices/${id}/rotate`, { reason: "console" });
        return "Rotation requested: the device rotates when it next connects";
      }),
    );
  }
  if (!["decommissioning", "decommissioned"].includes(d.state)) {
    actions.push(
      action(
        "Decommission",
        status,
        async () => {
          await api("POST", path`/v1/fleets/${fleet}/devices/${id}/decommission`, { reason: "console" });
          setTimeout(reload, 600);
          return "Decommissioning: the device is told to wipe itself";
        },
        { danger: true, confirm: `Decommission ${id}? It will be told to wipe its keys; this cannot be undone.` },
      ),
    );
  }
  const timeline = history.events.map((e) => [when(e.time), describe(e), e.actor]);
  const charts = numericSeries(history.telemetry).map(([k, pts]) => series(k, pts));
  const latest = history.telemetry.length ? history.telemetry[history.telemetry.length - 1] : null;
  return {
    node: h(
      "section",
      {},
      h("p", {}, h("a", { href: `#/fleets/${encodeURIComponent(fleet)}` }, `← Fleet ${fleet}`)),
      h("h1", {}, `Device ${id}`),
      h(
        "table",
        {},
        h("caption", { class: "muted" }, "What it is"),
        h(
          "tbody",
          {},
          [
            ["State", h("span", { class: `state-${d.state}` }, d.state)],
            ["Profile", d.profile],
            ["Model", d.model || "—"],
            ["Hardware id", h("code", {}, d.hardware_id)],
            ["Connected now", d.connected ? "yes" : "no"],
            ["Last heard from", `${ago(d.last_seen)} (${when(d.last_seen)})`],
            ["Claimed by", d.claimed_by || "—"],
          ].map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v))),
        ),
      ),
      h("div", { class: "row" }, actions.length ? actions : h("span", { class: "muted" }, "No actions in this state.")),
      status,
      h("h2", {}, "Timeline"),
      table(
        "What happened to it, newest first (from the audit log)",
        [
          { label: "When", cell: (r) => r[0] },
          { label: "What", cell: (r) => r[1] },
          { label: "By", cell: (r) => h("code", {}, r[2]) },
        ],
        timeline,
        "Nothing recorded about this device yet.",
      ),
      h("h2", {}, "Telemetry"),
      latest
        ? h(
            "div",
            {},
            h("div", { class: "charts" }, charts.length ? charts : h("p", { class: "muted" }, "No numeric fields to chart.")),
            h("p", { class: "muted" }, `Latest message (#${latest.seq}, ${when(latest.received_at)}):`),
            h("pre", {}, JSON.stringify(latest.data, null, 2)),
          )
        : h("p", { class: "empty" }, "No telemetry received by this instance lately."),
      h("h2", {}, "Sessions"),
      table(
        "Its sessions, newest first",
        [
          { label: "Started", cell: (x) => when(x.started_at) },
          { label: "Ended", cell: (x) => (x.ended_at ? when(x.ended_at) : "open") },
          { label: "Pattern", cell: (x) => x.pattern },
          { label: "From", cell: (x) => h("code", {}, x.peer) },
          { label: "Messages in / out", cell: (x) => `${x.messages_in} / ${x.messages_out}` },
        ],
        history.sessions,
        "No sessions recorded.",
      ),
      h("h2", {}, "Commands"),
      table(
        "Commands sent to the device, newest last",
        [
          { label: "Command", cell: (c) => c.kind },
          { label: "State", cell: (c) => c.state },
          { label: "Queued", cell: (c) => when(c.created_at) },
          { label: "Updated", cell: (c) => when(c.updated_at) },
          { label: "Id", cell: (c) => h("code", {}, c.id) },
        ],
        commands.commands || [],
        "No commands sent to this device.",
      ),
    ),
  };
}
