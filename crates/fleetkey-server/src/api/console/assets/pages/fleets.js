// Fleets: the list, and one fleet's overview (devices by state and profile,
// connected now, last heard from, live handshake, frame and refusal rates, and
// its devices page by page).
import { api, metrics, path } from "../api.js";
import { bars, sparkline } from "../charts.js";
import { ago, card, h, table } from "../dom.js";

export async function fleetsPage() {
  const fleets = [];
  let after;
  do {
    const page = await api("GET", `/v1/fleets?limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    fleets.push(...page.fleets);
    after = page.next_after;
  } while (after && fleets.length < 5000);
  return {
    node: h(
      "section",
      {},
      h("h1", {}, "Fleets"),
      table(
        "Fleets this token holds a scope on",
        [
          { label: "Fleet", cell: (f) => h("a", { href: `#/fleets/${encodeURIComponent(f.name)}` }, f.name) },
          { label: "Created", cell: (f) => ago(f.created_at) },
          { label: "Credential lifetime", cell: (f) => `${Math.round(f.credential_ttl_secs / 86400)} days` },
        ],
        fleets,
        "No fleets visible to this token. Create one with `fleetkey fleets create NAME`.",
      ),
    ),
  };
}

const SERIES = [
  ["Handshakes", (k) => k.startsWith("fleetkey_device_handshakes_total")],
  ["Frames", (k) => k.startsWith("fleetkey_device_frames_total")],
  ["Refusals", (k) => k.startsWith("fleetkey_device_refusals_total")],
];

function total(m, pick) {
  let t = 0;
  for (const [k, v] of m) if (pick(k)) t += v;
  return t;
}

function refusalsByReason(m) {
  const out = new Map();
  for (const [k, v] of m) {
    const r = k.match(/^fleetkey_device_refusals_total\{reason="([^"]*)"\}$/);
    if (r) out.set(r[1], (out.get(r[1]) || 0) + v);
  }
  return out;
}

export async function fleetPage(fleet) {
  const [summary, firstPage] = await Promise.all([
    api("GET", path`/v1/fleets/${fleet}/summary`),
    api("GET", path`/v1/fleets/${fleet}/devices` + "?limit=50"),
  ]);
  const live = h("div", { class: "charts", "aria-live": "off" });
  const refusals = h("div", { class: "charts" });
  const history = SERIES.map(() => []);
  let prev = null;
  async function tick() {
    try {
      const m = await metrics();
      const now = Date.now() / 1000;
      if (prev) {
        const dt = Math.max(0.5, now - prev.at);
        SERIES.forEach(([, pick], i) => {
          history[i].push(Math.max(0, (total(m, pick) - total(prev.m, pick)) / dt));
          if (history[i].length > 60) history[i].shift();
        });
        const before = refusalsByReason(prev.m);
        const pairs = [...refusalsByReason(m)].map(([r, v]) => [r, Math.round(v - (before.get(r) || 0))]);
        refusals.replaceChildren(bars("Refusals by reason since the last refresh", pairs.filter(([, v]) => v > 0)));
      }
      prev = { m, at: now };
      live.replaceChildren(...SERIES.map(([name], i) => sparkline(`${name} (all fleets)`, history[i])));
    } catch (e) {
      live.replaceChildren(h("p", { class: "error" }, `live rates unavailable: ${e.message}`));
    }
  }
  await tick();
  const timer = setInterval(tick, 5000);
  const heard = summary.heard;
  const devices = h("div", {});
  renderDevices(devices, fleet, firstPage, "");
  return {
    stop: () => clearInterval(timer),
    node: h(
      "section",
      {},
      h("h1", {}, `Fleet ${fleet}`),
      h(
        "div",
        { class: "cards" },
        card("devices", summary.devices),
        card("connected now", summary.connected),
        card("heard from in 5 min", heard["5m"] || 0),
        card("in the last hour", heard["1h"] || 0),
        card("in the last day", heard["24h"] || 0),
        card("never heard from", heard.never || 0),
      ),
      h(
        "div",
        { class: "charts" },
        bars("Devices by state", Object.entries(summary.by_state)),
        bars("Devices by profile", Object.entries(summary.by_profile)),
        bars("Last heard from", [
          ["within 5 min", heard["5m"] || 0],
          ["5 min – 1 h", (heard["1h"] || 0) - (heard["5m"] || 0)],
          ["1 h – 24 h", (heard["24h"] || 0) - (heard["1h"] || 0)],
          ["over a day", summary.devices - (heard["24h"] || 0) - (heard.never || 0)],
          ["never", heard.never || 0],
        ]),
      ),
      h("h2", {}, "Live (refreshed every 5 s)"),
      live,
      refusals,
      h("h2", {}, "Devices"),
      devices,
    ),
  };
}

function renderDevices(container, fleet, page, state) {
  const select = h(
    "select",
    { id: "state-filter" },
    ["", "manufactured", "onboarded", "active", "rotating", "suspended", "decommissioning", "decommissioned"].map((s) =>
      h("option", { value: s, selected: s === state }, s || "any state"),
    ),
  );
  select.addEventListener("change", async () => {
    const q = select.value ? `&state=${select.value}` : "";
    renderDevices(container, fleet, await api("GET", path`/v1/fleets/${fleet}/devices` + `?limit=50${q}`), select.value);
  });
  const next = page.next_after
    ? h("button", { type: "button" }, "Next page")
    : null;
  next?.addEventListener("click", async () => {
    const q = (state ? `&state=${state}` : "") + `&after=${encodeURIComponent(page.next_after)}`;
    renderDevices(container, fleet, await api("GET", path`/v1/fleets/${fleet}/devices` + `?limit=50${q}`), state);
  });
  container.replaceChildren(
    h("div", { class: "row" }, h("label", { for: "state-filter" }, "State"), select),
    table(
      `Devices of ${fleet}`,
      [
        { label: "Device", cell: (d) => h("a", { href: `#/fleets/${encodeURIComponent(fleet)}/devices/${encodeURIComponent(d.id)}` }, d.id) },
        { label: "State", cell: (d) => h("span", { class: `state-${d.state}` }, d.state) },
        { label: "Profile", cell: (d) => d.profile },
        { label: "Model", cell: (d) => d.model || "—" },
        { label: "Connected", cell: (d) => (d.connected ? "yes" : "no") },
        { label: "Last heard from", cell: (d) => ago(d.last_seen) },
      ],
      page.devices,
      "No devices match.",
    ),
    ...(next ? [next] : []),
  );
}
