// Tokens: the list, a new token with scopes (shown once), and revocation.
import { api, path } from "../api.js";
import { action, h, table, when } from "../dom.js";

export async function tokensPage() {
  const { tokens } = await api("GET", "/v1/tokens");
  const status = h("p", { role: "status", class: "muted" });
  const name = h("input", { id: "token-name", required: true, autocomplete: "off" });
  const scopes = h("input", { id: "token-scopes", required: true, autocomplete: "off", placeholder: "seal:app, unseal:app" });
  const ttl = h("input", { id: "token-ttl", type: "number", min: 60, placeholder: "seconds (empty: no expiry)" });
  const shown = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "signin" },
    h("h2", {}, "New token"),
    h("label", { for: "token-name" }, "Name"),
    name,
    h("label", { for: "token-scopes" }, "Scopes (comma-separated)"),
    scopes,
    h("label", { for: "token-ttl" }, "Lifetime"),
    ttl,
    h("button", { type: "submit" }, "Create token"),
    shown,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const body = { name: name.value.trim(), scopes: scopes.value.split(",").map((s) => s.trim()).filter(Boolean) };
      if (ttl.value) body.ttl_secs = Number(ttl.value);
      const t = await api("POST", "/v1/tokens", body);
      shown.replaceChildren(
        h("p", { class: "ok" }, `Token ${t.id} created. Copy it now: it is not shown again.`),
        h("p", { class: "secret" }, t.token),
      );
    } catch (e) {
      shown.replaceChildren(h("p", { class: "bad" }, `${e.code}: ${e.message}`));
    }
  });
  return {
    node: h(
      "section",
      {},
      h("h1", {}, "Tokens"),
      table(
        "API tokens (never the secrets)",
        [
          { label: "Id", cell: (t) => h("code", {}, t.id) },
          { label: "Name", cell: (t) => t.name },
          { label: "Scopes", cell: (t) => t.scopes.join(", ") },
          { label: "Created", cell: (t) => when(t.created_at) },
          { label: "Expires", cell: (t) => when(t.expires_at) },
          { label: "Revoked", cell: (t) => (t.revoked_at ? when(t.revoked_at) : "") },
          {
            label: "Action",
            cell: (t) =>
              t.revoked_at
                ? "—"
                : action(`Revoke ${t.name}`, status, async () => {
                    await api("POST", path`/v1/tokens/${t.id}/revoke`);
                    setTimeout(() => window.dispatchEvent(new HashChangeEvent("hashchange")), 600);
                    return `${t.name} revoked`;
                  }, { danger: true, confirm: `Revoke token ${t.name}? Clients using it are refused at once.` }),
          },
        ],
        tokens,
      ),
      status,
      form,
    ),
  };
}
