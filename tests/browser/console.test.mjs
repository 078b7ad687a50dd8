// The web console in a real browser: Debian's chromium driven by playwright-core,
// against a real `fleetkey serve` that `fleetkey demo` has filled with a fleet.
// Signs in, sees the demo's fleet, suspends a device, revokes a keyring version
// and sees the API refuse what it sealed, walks the audit log and the tokens;
// checks keyboard navigation, labels and contrast (axe-core), that no Content
// Security Policy violation happens, and that the token never reaches a URL or a
// cookie. Screenshots go to SCREENSHOTS (default target/console-screenshots).
//
//   FLEETKEY_BIN=target/release/fleetkey node tests/browser/console.test.mjs

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const bin = resolve(root, process.env.FLEETKEY_BIN || "target/release/fleetkey");
const shots = resolve(root, process.env.SCREENSHOTS || "target/console-screenshots");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(shots, { recursive: true });

const freePort = () =>
  new Promise((ok) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => ok(p));
    });
  });

const dir = mkdtempSync(join(tmpdir(), "fleetkey-console-"));
const [http, dev, udp] = [await freePort(), await freePort(), await freePort()];
const addr = `http://127.0.0.1:${http}`;
const env = {
  ...process.env,
  HOME: dir,
  FLEETKEY_LISTEN: `127.0.0.1:${http}`,
  FLEETKEY_DEVICE_LISTEN: `127.0.0.1:${dev}`,
  FLEETKEY_DEVICE_UDP_LISTEN: `127.0.0.1:${udp}`,
  FLEETKEY_GRPC_LISTEN: "off",
};
delete env.FLEETKEY_ADDR;
delete env.FLEETKEY_TOKEN;
const server = spawn(bin, ["serve"], { cwd: dir, env, stdio: ["ignore", "ignore", "pipe"] });
let serverLog = "";
server.stderr.on("data", (d) => {
  serverLog = (serverLog + d).slice(-20_000);
});
let browser;

async function api(method, path, body, token) {
  const r = await fetch(addr + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = r.status === 204 ? null : await r.json();
  return { status: r.status, data };
}

try {
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(`${addr}/healthz`)).ok) break;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const token = readFileSync(join(dir, "fleetkey-data/admin.token"), "utf8").trim();

  // A fleet the demo made, with devices in several states.
  // Asynchronously: the event loop must keep draining the server's log pipe.
  const demo = await new Promise((ok) => {
    const c = spawn(bin, ["demo", "--full", "8", "--constrained", "4"], {
      cwd: dir,
      env: {
        ...env,
        FLEETKEY_ADDR: addr,
        FLEETKEY_TOKEN: token,
        FLEETKEY_DEVICE_ADDR: `127.0.0.1:${dev}`,
        FLEETKEY_DEVICE_UDP_ADDR: `127.0.0.1:${udp}`,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => c.kill("SIGKILL"), 180_000);
    c.on("close", (status) => {
      clearTimeout(timer);
      ok({ status, out });
    });
  });
  assert.equal(demo.status, 0, `fleetkey demo failed:\n${demo.out}`);
  // Devices' last-heard times reach the store within a flush (5 s).
  await new Promise((r) => setTimeout(r, 6000));
  const fleets = (await api("GET", "/v1/fleets", undefined, token)).data.fleets;
  const fleet = fleets.find((f) => f.name.startsWith("demo-")).name;
  const devices = (await api("GET", `/v1/fleets/${fleet}/devices?state=active`, undefined, token)).data.devices;
  assert.ok(devices.length > 0, "the demo left no active device");
  // A keyring with an envelope under v1, then v2 as the primary.
  await api("POST", "/v1/keyrings", { name: "console-test" }, token);
  const sealed = (await api("POST", "/v1/keyrings/console-test/seal", { plaintext: "aGVsbG8=" }, token)).data;
  await api("POST", "/v1/keyrings/console-test/rotate", undefined, token);
  assert.equal((await api("POST", "/v1/keyrings/console-test/unseal", { ciphertext: sealed.ciphertext }, token)).status, 200);

  browser = await chromium.launch({ executablePath: browserPath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const violations = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
  page.on("pageerror", (e) => violations.push(`page error: ${e.message}`));
  page.on("dialog", (d) => d.accept());

  // The console's own headers.
  const first = await page.goto(`${addr}/ui/`);
  const csp = first.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(first.headers()["x-content-type-options"], "nosniff");

  // Sign-in: a wrong token is refused, the right one is kept in session storage only.
  await page.getByLabel("API token").fill("fkt_not_a_token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That token is not valid").waitFor();
  await page.screenshot({ path: join(shots, "00-sign-in-refused.png") });
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Fleets" }).waitFor();
  await page.getByRole("link", { name: fleet }).waitFor();
  assert.ok(!page.url().includes(token), "the token is in the URL");
  assert.equal((await context.cookies()).length, 0, "the console set a cookie");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("fleetkey.token")), token);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  await page.screenshot({ path: join(shots, "01-fleets.png"), fullPage: true });

  // The demo's fleet: real numbers and the live charts.
  await page.getByRole("link", { name: fleet }).click();
  await page.getByRole("heading", { name: `Fleet ${fleet}` }).waitFor();
  const total = await page.locator(".card .n").first().textContent();
  assert.ok(Number(total) >= 12, `the fleet shows ${total} devices`);
  const heard = await page.locator(".card .n").nth(4).textContent();
  assert.ok(Number(heard) > 0, `the fleet shows ${heard} devices heard from in the last day`);
  await page.getByText("Devices by state").waitFor();
  await page.waitForTimeout(5500); // one live refresh: rates drawn
  await page.getByRole("img", { name: /Handshakes \(all fleets\)/ }).waitFor();
  await page.screenshot({ path: join(shots, "02-fleet.png"), fullPage: true });

  // A device with sessions and telemetry (the demo's devices sent some): its
  // timeline from the audit log, its sessions, its telemetry as charts; then
  // suspend it, and the API agrees.
  let id = null;
  for (const d of devices) {
    const hist = (await api("GET", `/v1/fleets/${fleet}/devices/${d.id}/history`, undefined, token)).data;
    if (hist.telemetry.length > 0 && hist.sessions.length > 0 && hist.events.length > 0) {
      id = d.id;
      break;
    }
  }
  assert.ok(id, "no active device of the demo has sessions, telemetry and events in its history");
  await page.getByRole("link", { name: id, exact: true }).click();
  await page.getByRole("heading", { name: `Device ${id}` }).waitFor();
  await page.getByRole("img", { name: /^temp_c: latest \d/ }).waitFor();
  await page.getByText("Its sessions, newest first").waitFor();
  await page.getByText("What happened to it, newest first").waitFor();
  assert.ok((await page.locator("td", { hasText: /onboard/ }).count()) > 0, "the timeline shows no onboarding");
  await page.screenshot({ path: join(shots, "03-device-history.png"), fullPage: true });
  await page.getByRole("button", { name: "Suspend" }).click();
  await page.getByText("the device is suspended").waitFor();
  const after = (await api("GET", `/v1/fleets/${fleet}/devices/${id}`, undefined, token)).data;
  assert.equal(after.state, "suspended");
  await page.getByRole("button", { name: "Resume" }).waitFor();
  await page.screenshot({ path: join(shots, "03-device.png"), fullPage: true });

  // A keyring: revoke v1, and what it sealed is refused.
  await page.getByRole("link", { name: "Keyrings" }).click();
  await page.getByRole("link", { name: "console-test" }).click();
  await page.getByRole("heading", { name: "Keyring console-test" }).waitFor();
  await page.getByRole("button", { name: "Revoke v1" }).click();
  await page.getByText("v1 revoked").waitFor();
  const refused = await api("POST", "/v1/keyrings/console-test/unseal", { ciphertext: sealed.ciphertext }, token);
  assert.equal(refused.status, 422);
  assert.equal(refused.data.error.code, "revoked");
  await page.waitForTimeout(800);
  await page.screenshot({ path: join(shots, "04-keyring.png"), fullPage: true });

  // The audit log shows what the console did; the tokens page never a secret.
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  await page.getByText(/Last signed checkpoint|No signed checkpoint yet/).waitFor();
  await page.getByText(/^Chain verified: \d+ entries chain from the first; checkpoint \d+: signature valid, matches the chain\.$/).waitFor();
  await page.screenshot({ path: join(shots, "05-audit.png"), fullPage: true });
  await page.getByRole("link", { name: "Tokens" }).click();
  await page.getByRole("heading", { name: "Tokens" }).waitFor();
  assert.ok(!(await page.content()).includes(token), "the tokens page shows a token's secret");
  await page.screenshot({ path: join(shots, "06-tokens.png"), fullPage: true });

  // Keyboard: the skip link comes first, then the sections; the skip link moves
  // focus to the content (and leaves the page where it is); after navigating,
  // focus is on the content, so the next Tab reaches its first link.
  await page.goto(`${addr}/ui/#/keyrings`);
  await page.getByRole("heading", { name: "Keyrings" }).waitFor();
  const firstFocusable = await page.evaluate(
    () => document.querySelector("a[href], button:not([hidden]), input, select")?.textContent,
  );
  assert.equal(firstFocusable, "Skip to content");
  await page.focus("a.skip");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute("href")), "#/");
  await page.keyboard.press("Shift+Tab");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "main");
  assert.ok(page.url().endsWith("#/keyrings"), page.url());
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "console-test");

  // Accessibility (axe-core, evaluated over the devtools protocol, outside the page's CSP).
  const axeSource = readFileSync(join(here, "node_modules/axe-core/axe.min.js"), "utf8");
  for (const hash of ["#/", `#/fleets/${fleet}`, "#/keyrings/console-test", "#/audit", "#/tokens"]) {
    await page.goto(`${addr}/ui/${hash}`);
    await page.locator("main h1").waitFor();
    await page.evaluate(axeSource);
    const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ["violations"] }));
    const serious = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
    assert.deepEqual(
      serious.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
      [],
      `accessibility violations on ${hash}`,
    );
  }

  // Sign out: the token is gone from the tab.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("fleetkey.token")), null);

  assert.deepEqual(violations, [], "CSP violations or page errors");
  console.log(`console in chromium: ok (screenshots in ${shots})`);
} catch (e) {
  console.error(`server log (last lines):\n${serverLog.split("\n").slice(-30).join("\n")}`);
  throw e;
} finally {
  await browser?.close();
  server.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
}
