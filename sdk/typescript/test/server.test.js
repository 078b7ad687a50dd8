// The SDK against a real `fleetkey serve` (zero-config, in a temporary directory):
// keyrings, seal/unseal with a context, batches, data keys, signatures, MACs,
// typed errors, paging through devices, and the token never in errors or output.
// The binary: FLEETKEY_BIN, or the workspace's release or debug build; without
// one the test is skipped (never passed).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FleetKey, FleetKeyError, ConnectionError, ed25519PublicKey, verifyEd25519 } from "../dist/index.js";

const root = new URL("../../../", import.meta.url).pathname;
const bin = [process.env.FLEETKEY_BIN, join(root, "target/release/fleetkey"), join(root, "target/debug/fleetkey")]
  .find((p) => p && existsSync(p));

const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});

let server, dir, fk, token;

before(async () => {
  if (!bin) return;
  dir = mkdtempSync(join(tmpdir(), "fleetkey-sdk-"));
  const [http, dev, udp] = [await freePort(), await freePort(), await freePort()];
  server = spawn(bin, ["serve"], {
    cwd: dir,
    env: {
      ...process.env, HOME: dir, FLEETKEY_LISTEN: `127.0.0.1:${http}`,
      FLEETKEY_DEVICE_LISTEN: `127.0.0.1:${dev}`, FLEETKEY_DEVICE_UDP_LISTEN: `127.0.0.1:${udp}`, FLEETKEY_GRPC_LISTEN: "off",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const addr = `http://127.0.0.1:${http}`;
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`${addr}/healthz`)).ok) break; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  token = readFileSync(join(dir, "fleetkey-data/admin.token"), "utf8").trim();
  fk = new FleetKey({ addr, token });
});

after(() => {
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const skip = bin ? false : "no fleetkey binary (set FLEETKEY_BIN or build the workspace)";

test("seal, unseal, rewrap and batches through the keyring", { skip }, async () => {
  await fk.call("create_keyring", { body: { name: "app" } });
  const context = { tenant: "acme", app: "billing" };
  const { ciphertext, keyVersion } = await fk.seal("app", "hello fleet", { context });
  assert.equal(keyVersion, 1);
  assert.equal(new TextDecoder().decode(await fk.unseal("app", ciphertext, { context })), "hello fleet");
  // Another context, or a flipped byte: cannot_open, not retried, never shows the token.
  for (const [ct, ctx] of [[ciphertext, { tenant: "other", app: "billing" }], [ciphertext.map((b, i) => (i === ciphertext.length - 1 ? b ^ 1 : b)), context]]) {
    const e = await fk.unseal("app", ct, { context: ctx }).catch((e) => e);
    assert.ok(e instanceof FleetKeyError, String(e));
    assert.equal(e.code, "cannot_open");
    assert.equal(e.status, 422);
    assert.equal(e.retry, "never");
    assert.ok(!String(e).includes(token) && !e.stack.includes(token));
  }
  await fk.call("rotate_keyring", { path: { name: "app" } });
  const re = await fk.rewrap("app", ciphertext, { context });
  assert.equal(re.keyVersion, 2);
  const items = await fk.sealBatch("app", [{ data: "a" }, { data: "b", aad: new Uint8Array([1]) }]);
  assert.ok(items.every((i) => i.ok));
  const opened = await fk.unsealBatch("app", [
    { ciphertext: items[0].value.ciphertext },
    { ciphertext: items[1].value.ciphertext },
  ]);
  assert.equal(new TextDecoder().decode(opened[0].value), "a");
  // The second needs its aad: that item fails on its own.
  assert.equal(opened[1].ok, false);
  assert.equal(opened[1].error.code, "cannot_open");
  assert.ok(String(fk).includes("127.0.0.1") && !String(fk).includes(token));
});

test("data keys, signatures and MACs", { skip }, async () => {
  const dk = await fk.dataKey("app", { context: { file: "report.pdf" } });
  assert.equal(dk.plaintext.length, 32);
  const again = await fk.unseal("app", dk.ciphertext, { context: { file: "report.pdf" } });
  assert.deepEqual(again, dk.plaintext);
  const hidden = await fk.dataKey("app", { withoutPlaintext: true });
  assert.equal(hidden.plaintext, undefined);

  await fk.call("create_keyring", { body: { name: "firmware", algorithm: "ed25519" } });
  const image = new Uint8Array(4096).map((_, i) => i % 251);
  const { signature } = await fk.sign("firmware", image);
  assert.equal(signature.length, 64);
  assert.equal(await fk.verify("firmware", image, signature), true);
  // Offline: the public key once, then WebCrypto.
  const pk = await ed25519PublicKey(fk, "firmware");
  assert.equal(await verifyEd25519(pk, image, signature), true);
  image[0] ^= 1;
  assert.equal(await verifyEd25519(pk, image, signature), false);
  assert.equal(await fk.verify("firmware", image, signature), false);
  // A signing keyring does not seal.
  const e = await fk.seal("firmware", "x").catch((e) => e);
  assert.equal(e.code, "wrong_key_type");

  await fk.call("create_keyring", { body: { name: "tags", algorithm: "hmac-sha256" } });
  const { tag } = await fk.mac("tags", "message");
  assert.equal(tag.length, 32);
  assert.equal(await fk.verifyMac("tags", "message", tag), true);
  assert.equal(await fk.verifyMac("tags", "massage", tag), false);
});

test("typed errors: unknown keyring, no token, bad token, nothing listening", { skip }, async () => {
  const nf = await fk.seal("missing", "x").catch((e) => e);
  assert.equal(nf.code, "not_found");
  const anon = new FleetKey({ addr: fk.addr, token: "" });
  assert.equal((await anon.seal("app", "x").catch((e) => e)).code, "unauthenticated");
  const bad = new FleetKey({ addr: fk.addr, token: "fk_tok_nope" });
  const e = await bad.seal("app", "x").catch((e) => e);
  assert.equal(e.code, "unauthenticated");
  assert.ok(!e.message.includes("fk_tok_nope"));
  const gone = new FleetKey({ addr: `http://127.0.0.1:${await freePort()}`, token, attempts: 2 });
  assert.ok((await gone.call("list_keyrings").catch((e) => e)) instanceof ConnectionError);
});

test("devices page by page", { skip }, async () => {
  await fk.call("create_fleet", { body: { name: "empty" } });
  const seen = [];
  for await (const d of fk.devices("empty", { limit: 10 })) seen.push(d);
  assert.deepEqual(seen, []);
  const page = await fk.call("list_fleets", { query: { limit: 10 } });
  assert.ok(page.fleets.some((f) => f.name === "empty"));
});
