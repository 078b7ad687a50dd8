// The audit log: pages of entries (oldest first, from any sequence number), a
// filter over the page, and the last signed checkpoint.
import { api } from "../api.js";
import { h, table, when } from "../dom.js";

export async function auditPage(after = 0) {
  const [page, checkpoint] = await Promise.all([
    api("GET", `/v1/audit?limit=100&after=${after}`),
    api("GET", "/v1/audit/checkpoint").catch((e) => ({ error: e })),
  ]);
  const filter = h("input", { id: "audit-filter", type: "search", placeholder: "action, actor or subject" });
  const body = h("div", {});
  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = page.entries.filter((e) => !q || [e.action, e.actor, e.subject].some((f) => String(f).toLowerCase().includes(q)));
    body.replaceChildren(
      table(
        `Entries after ${after}`,
        [
          { label: "#", cell: (e) => e.seq },
          { label: "When", cell: (e) => when(e.time) },
          { label: "Actor", cell: (e) => e.actor },
          { label: "Action", cell: (e) => e.action },
          { label: "Subject", cell: (e) => e.subject },
        ],
        rows,
        q ? "No entry on this page matches." : "The audit log is empty.",
      ),
    );
  };
  filter.addEventListener("input", render);
  render();
  const nav = h("div", { class: "row" });
  const go = async (to) => {
    const p = await auditPage(to);
    document.getElementById("main").replaceChildren(p.node);
  };
  if (after > 0) nav.append(h("button", { type: "button", onclick: () => go(Math.max(0, after - 100)) }, "Previous page"));
  if (page.next_after) nav.append(h("button", { type: "button", onclick: () => go(page.next_after) }, "Next page"));
  const cp = checkpoint.error
    ? h("p", { class: "muted" }, `No signed checkpoint yet (${checkpoint.error.message}).`)
    : h(
        "p",
        { class: "ok" },
        `Last signed checkpoint: entry ${checkpoint.seq ?? "?"} at ${when(checkpoint.time)}. `,
        "Verify the whole chain offline with `fleetkey audit export` and `fleetkey audit verify`.",
      );
  return {
    node: h(
      "section",
      {},
      h("h1", {}, "Audit log"),
      cp,
      h("div", { class: "row" }, h("label", { for: "audit-filter" }, "Filter this page"), filter),
      body,
      nav,
    ),
  };
}
