// The console's shell: sign-in, navigation and the hash router. Pages render into
// <main>; each returns an optional stop() for timers it started.
import { api, token } from "./api.js";
import { failure, h } from "./dom.js";
import { auditPage } from "./pages/audit.js";
import { devicePage } from "./pages/device.js";
import { fleetPage, fleetsPage } from "./pages/fleets.js";
import { keyringPage, keyringsPage } from "./pages/keyrings.js";
import { tokensPage } from "./pages/tokens.js";

const main = document.getElementById("main");
let stop = null;

const routes = [
  [/^#\/fleets\/([^/]+)\/devices\/([^/]+)$/, (m) => devicePage(m[1], m[2])],
  [/^#\/fleets\/([^/]+)$/, (m) => fleetPage(m[1])],
  [/^#\/keyrings\/([^/]+)$/, (m) => keyringPage(m[1])],
  [/^#\/keyrings$/, () => keyringsPage()],
  [/^#\/audit$/, () => auditPage()],
  [/^#\/tokens$/, () => tokensPage()],
  [/^(#\/?)?$/, () => fleetsPage()],
];

function signIn(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const status = h("p", { role: "status", class: message ? "bad" : "muted" }, message || "");
  const form = h(
    "form",
    { class: "signin" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste an API token. It is kept in this tab's session storage and sent only to this service."),
    h("label", { for: "token" }, "API token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    token.set(input.value.trim());
    input.value = "";
    try {
      await api("GET", "/v1/fleets?limit=1", undefined, { quiet: true });
      route();
    } catch (e) {
      token.clear();
      status.textContent = e.status === 401 ? "That token is not valid (unknown, expired or revoked)." : `${e.code}: ${e.message}`;
      status.className = "bad";
    }
  });
  main.replaceChildren(form);
  input.focus();
}

async function route() {
  if (stop) stop();
  stop = null;
  if (!token.get()) return signIn();
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  const hash = decodeURI(location.hash);
  for (const a of document.querySelectorAll("nav a")) {
    const here = a.getAttribute("href");
    a.toggleAttribute("aria-current", here === "#/" ? /^(#\/?|#\/fleets.*)?$/.test(hash) : hash.startsWith(here));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  const found = routes.find(([re]) => re.test(location.hash));
  main.replaceChildren(h("p", { class: "loading", role: "status" }, "Loading…"));
  try {
    const m = found ? location.hash.match(found[0]).map((x) => (x ? decodeURIComponent(x) : x)) : null;
    const page = found ? await found[1](m) : { node: h("p", { class: "empty" }, "No such page.") };
    main.replaceChildren(page.node);
    stop = page.stop || null;
    main.focus();
  } catch (e) {
    if (e.status === 401) return;
    main.replaceChildren(failure(e));
  }
}

// The skip link moves focus to the content without touching the hash (the router's).
document.querySelector(".skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", route);
window.addEventListener("fleetkey-signed-out", (e) => signIn(`Signed out: ${e.detail}`));
document.getElementById("signout").addEventListener("click", () => {
  token.clear();
  signIn("Signed out.");
});
route();
