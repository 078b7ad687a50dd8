// The audit log: pages of entries (oldest first, from any sequence number), a
// filter over the page, the last signed checkpoint and the chain's verification
// in place (GET /v1/audit/verify).
import { api } from "../api.js";
import { h, table, when } from "../dom.js";

export async function auditPage(after = 0) {
  const [page, checkpoint] = await Promise.all([
    api("GET", `/v1/audit?limit=100&after=${after}`),
    api("GET", "/v1/audit/checkpoint").catch((e) => ({ error: e })),
  ]);
  // After the checkpoint (which signs the head now), so it is the one checked.
  const verified = await api("GET", "/v1/audit/verify").catch((e) => ({ error: e }));
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
  let chain;
  if (verified.error) {
    chain = h("p", { class: "muted" }, `Chain not verified (${verified.error.message}).`);
  } else if (verified.verdict === "invalid") {
    chain = h(
      "p",
      { class: "error", role: "alert" },
      `Chain INVALID at entry ${verified.problem.seq}: ${verified.problem.reason}. See docs/operations.md, "The audit log".`,
    );
  } else {
    const c = verified.checkpoint;
    chain = h(
      "p",
      { class: verified.verdict === "valid" ? "ok" : "muted" },
      verified.verdict === "valid"
        ? `Chain verified: ${verified.verified_entries} entries chain from the first`
        : `Chain verified so far: ${verified.verified_entries} entries (more to read; reload)`,
      c ? `; checkpoint ${c.seq}: signature ${c.signature_valid ? "valid" : "INVALID"}, ${c.matches_chain ? "matches the chain" : "does NOT match the chain"}.` : ".",
    );
  }
  return {
    node: h(
      "section",
      {},
      h("h1", {}, "Audit log"),
      chain,
      cp,
      h("div", { class: "row" }, h("label", { for: "audit-filter" }, "Filter this page"), filter),
      body,
      nav,
    ),
  };
}
