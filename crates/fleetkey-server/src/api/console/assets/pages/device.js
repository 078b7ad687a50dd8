// One device: what it is, its life so far, its commands, and the operator's
// actions (suspend, resume, rotate, decommission), each through the API.
import { api, path } from "../api.js";
import { action, ago, h, table, when } from "../dom.js";

export async function devicePage(fleet, id) {
  const [d, commands] = await Promise.all([
    api("GET", path`/v1/fleets/${fleet}/devices/${id}`),
    api("GET", path`/v1/fleets/${fleet}/devices/${id}/commands`),
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
  const timeline = [
    ["registered at the factory", d.created_at],
    ["credential issued", d.credential_issued_at],
    ["last heard from", d.last_seen],
  ]
    .filter(([, t]) => t !== undefined && t !== null)
    .sort((a, b) => a[1] - b[1]);
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
      table("Its life so far", [
        { label: "When", cell: (r) => when(r[1]) },
        { label: "What", cell: (r) => r[0] },
      ], timeline),
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
