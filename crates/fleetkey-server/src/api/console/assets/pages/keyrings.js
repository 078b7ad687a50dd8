// Keyrings: the list, and one keyring's versions, its use against the rotation
// budget and the next rotation; rotate, revoke a version, disable and enable.
import { api, path } from "../api.js";
import { action, duration, h, table, when } from "../dom.js";

export async function keyringsPage() {
  const { keyrings } = await api("GET", "/v1/keyrings");
  return {
    node: h(
      "section",
      {},
      h("h1", {}, "Keyrings"),
      table(
        "Keyrings this token may see",
        [
          { label: "Keyring", cell: (k) => h("a", { href: `#/keyrings/${encodeURIComponent(k.name)}` }, k.name) },
          { label: "Type", cell: (k) => k.algorithm },
          { label: "State", cell: (k) => k.state },
          { label: "Primary", cell: (k) => `v${k.primary_version}` },
          { label: "Versions", cell: (k) => (k.versions || []).length },
        ],
        keyrings,
        "No keyrings yet. Create one with `fleetkey keys create NAME`.",
      ),
    ),
  };
}

export async function keyringPage(name) {
  const k = await api("GET", path`/v1/keyrings/${name}`);
  const status = h("p", { role: "status", class: "muted" });
  const reload = () => setTimeout(() => window.dispatchEvent(new HashChangeEvent("hashchange")), 600);
  const primary = (k.versions || []).find((v) => v.version === k.primary_version);
  const p = k.policy || {};
  const uses = primary ? primary.seal_count : 0;
  const next = primary && p.rotation_period_secs ? primary.created_at + p.rotation_period_secs : null;
  const actions = [
    action("Rotate", status, async () => {
      const r = await api("POST", path`/v1/keyrings/${name}/rotate`);
      reload();
      return `Rotated: the primary is v${r.version}`;
    }),
    k.state === "enabled"
      ? action("Disable", status, async () => {
          await api("POST", path`/v1/keyrings/${name}/disable`);
          reload();
          return "Disabled: it seals and opens nothing until enabled";
        }, { danger: true, confirm: `Disable ${name}? Every seal and unseal with it is refused until it is enabled.` })
      : k.state === "disabled"
        ? action("Enable", status, async () => {
            await api("POST", path`/v1/keyrings/${name}/enable`);
            reload();
            return "Enabled";
          })
        : null,
  ];
  return {
    node: h(
      "section",
      {},
      h("p", {}, h("a", { href: "#/keyrings" }, "← Keyrings")),
      h("h1", {}, `Keyring ${name}`),
      h(
        "table",
        {},
        h("caption", { class: "muted" }, "Its policy"),
        h(
          "tbody",
          {},
          [
            ["Type", k.algorithm],
            ["State", k.state],
            ["Primary version", `v${k.primary_version}`],
            ["Uses of the primary", p.max_uses ? `${uses} of ${p.max_uses} (${((100 * uses) / p.max_uses).toFixed(2)} %)` : String(uses)],
            ["Rotates every", p.rotation_period_secs ? duration(p.rotation_period_secs) : "never by age"],
            ["Next rotation by age", when(next)],
            ["Opens versions from", `v${k.min_decrypt_version || 1}`],
          ].map(([a, b]) => h("tr", {}, h("th", { scope: "row" }, a), h("td", {}, b))),
        ),
      ),
      h("div", { class: "row" }, actions),
      status,
      h("h2", {}, "Versions"),
      table(
        `Versions of ${name}`,
        [
          { label: "Version", cell: (v) => `v${v.version}${v.version === k.primary_version ? " (primary)" : ""}` },
          { label: "State", cell: (v) => h("span", { class: v.state === "revoked" ? "bad" : "" }, v.state) },
          { label: "Created", cell: (v) => when(v.created_at) },
          { label: "Seals", cell: (v) => v.seal_count },
          { label: "Revoked", cell: (v) => when(v.revoked_at) },
          {
            label: "Action",
            cell: (v) =>
              v.state === "revoked"
                ? "—"
                : action(`Revoke v${v.version}`, status, async () => {
                    await api("POST", path`/v1/keyrings/${name}/versions/${v.version}/revoke`);
                    reload();
                    return `v${v.version} revoked: nothing it sealed opens any more`;
                  }, {
                    danger: true,
                    confirm: `Revoke ${name} v${v.version}? Nothing it sealed will open again.${
                      v.version === k.primary_version ? " A new primary version is made first." : ""
                    }`,
                  }),
          },
        ],
        k.versions || [],
      ),
    ),
  };
}
