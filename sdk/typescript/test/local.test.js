// What the SDK does without a server: the golden fk1 and context vectors from
// docs/vectors, every header refusal, and the error table against docs/errors.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  ERROR_CODES, EnvelopeError, FleetKeyError, encodeContext, fromArmor, openSingle, parseHeader,
} from "../dist/index.js";

const root = new URL("../../../", import.meta.url);
const hex = (h) => Uint8Array.from(Buffer.from(h, "hex"));
const fk1 = JSON.parse(readFileSync(new URL("docs/vectors/fk1.json", root), "utf8")).vectors;
const contexts = JSON.parse(readFileSync(new URL("docs/vectors/context.json", root), "utf8"));

test("single-shot AES-256-GCM vectors open with WebCrypto; tampering is refused", async () => {
  const single = fk1.filter((v) => v.mode === "single" && v.algorithm === "aes-256-gcm");
  assert.ok(single.length >= 2);
  for (const v of single) {
    const env = hex(v.envelope);
    const h = parseHeader(env);
    assert.equal(h.keyId, v.key_id);
    assert.equal(h.keyVersion, Number(v.key_version));
    const pt = await openSingle(env, hex(v.key), { aad: hex(v.aad) });
    assert.deepEqual(Buffer.from(pt), Buffer.from(hex(v.plaintext)), v.name);
    if (v.armor) assert.deepEqual(fromArmor(v.armor + "\n"), env);
    for (let i = 0; i < env.length; i += 7) {
      const t = env.slice();
      t[i] ^= 1;
      await assert.rejects(openSingle(t, hex(v.key), { aad: hex(v.aad) }), EnvelopeError, `${v.name} byte ${i}`);
    }
    await assert.rejects(openSingle(env, hex(v.key), { aad: hex("ff") }), EnvelopeError);
  }
  // Other algorithms and modes say where they open.
  const chacha = fk1.find((v) => v.mode === "single" && v.algorithm === "chacha20-poly1305");
  await assert.rejects(openSingle(hex(chacha.envelope), hex(chacha.key)), /open it with the service/);
  const stream = fk1.find((v) => v.mode === "stream");
  await assert.rejects(openSingle(hex(stream.envelope), hex(stream.key)), /mode 1/);
});

test("every header of the vectors parses; malformed headers are refused", () => {
  for (const v of fk1) parseHeader(hex(v.envelope));
  const good = hex(fk1[0].envelope);
  const refuse = (bytes, why) => assert.throws(() => parseHeader(bytes), (e) => e instanceof EnvelopeError && why.test(e.message));
  refuse(good.slice(0, 3), /truncated/);
  refuse(Uint8Array.from([...good.slice(0, 4)].map((b) => b ^ 1).concat([...good.slice(4)])), /not an envelope/);
  const bad = (i, b) => { const t = good.slice(); t[i] = b; return t; };
  refuse(bad(4, 2), /version/);
  refuse(bad(5, 9), /mode/);
  refuse(bad(6, 9), /algorithm/);
  refuse(bad(7, 0), /key id/);
  refuse(bad(8, 0x20), /key id/);
  refuse(good.slice(0, 20), /truncated/);
  assert.throws(() => fromArmor("fk1:AAA="), EnvelopeError);
  assert.throws(() => fromArmor("fk1:ab cd"), EnvelopeError);
});

test("encryption contexts encode canonically, by UTF-8 bytes, and refuse what the format refuses", () => {
  for (const v of contexts.valid) {
    const got = Buffer.from(encodeContext(Object.fromEntries(v.pairs))).toString("hex");
    assert.equal(got, v.encoded, v.name);
  }
  for (const v of contexts.refused) {
    const keys = v.pairs.map(([k]) => k);
    if (new Set(keys).size !== keys.length) continue; // a JS object cannot hold a key twice
    assert.throws(() => encodeContext(Object.fromEntries(v.pairs)), EnvelopeError, v.name);
  }
});

test("the error table is docs/errors.md's", () => {
  const doc = readFileSync(new URL("docs/errors.md", root), "utf8");
  const rows = doc.split("\n").filter((l) => l.startsWith("| `"));
  const retry = { "yes, with backoff": "backoff", "after a change": "after_change", no: "never" };
  const fromDoc = Object.fromEntries(rows.map((r) => {
    const cells = r.split("|").map((c) => c.trim());
    return [cells[1].replaceAll("`", ""), retry[cells[4]]];
  }));
  assert.deepEqual(ERROR_CODES, fromDoc);
  const e = new FleetKeyError("rate_limited", 429, "slow down", 2);
  assert.equal(e.retry, "backoff");
  assert.equal(new FleetKeyError("something_new", 503, "x").code, "unknown");
  assert.equal(new FleetKeyError("something_new", 503, "x").retry, "backoff");
  assert.equal(new FleetKeyError("something_new", 400, "x").retry, "never");
});
