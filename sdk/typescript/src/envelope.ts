// fk1 envelopes on the client (docs/formats.md, "The fk1 envelope"): the header
// parsed with every documented refusal, the canonical encryption context, and
// single-shot (mode 1) AES-256-GCM envelopes opened with WebCrypto. Other modes
// and algorithms are opened by the service (`unseal`).

import { fromBase64, toBase64Url } from "./base64.js";
import { EnvelopeError } from "./errors.js";

const MAGIC = [0x66, 0x6b, 0x65, 0x6e]; // "fken"
const KEY_ID = /^[A-Za-z0-9._\-:/@+]{1,64}$/;
const ALGORITHMS: Record<number, string> = {
  1: "aes-256-gcm",
  2: "chacha20-poly1305",
  3: "aes-256-gcm-siv",
};
const TAG = 16;

/** What an envelope's header says. */
export interface Header {
  /** 1 single, 2 stream, 3 recipient, 4 wrapped. */
  mode: number;
  algorithm: string;
  keyId: string;
  keyVersion: number;
  /** The header's length in bytes (the body follows). */
  length: number;
}

/** Parses an fk1 header (binary, or `fk1:` text armor), refusing as the format says. */
export function parseHeader(envelope: Uint8Array): Header {
  const b = envelope;
  const need = (n: number) => {
    if (b.length < n) throw new EnvelopeError("truncated");
  };
  need(8);
  if (!MAGIC.every((m, i) => b[i] === m)) throw new EnvelopeError("not an envelope");
  if (b[4] !== 1) throw new EnvelopeError(`unsupported version ${b[4]}`);
  const mode = b[5]!;
  const algorithm = ALGORITHMS[b[6]!];
  if (algorithm === undefined) throw new EnvelopeError("unknown algorithm");
  const n = b[7]!;
  need(8 + n + 4);
  const keyId = new TextDecoder().decode(b.subarray(8, 8 + n));
  if (!KEY_ID.test(keyId)) throw new EnvelopeError("bad key id");
  const keyVersion = new DataView(b.buffer, b.byteOffset + 8 + n, 4).getUint32(0);
  let p = 8 + n + 4;
  switch (mode) {
    case 1:
      p += 12;
      break;
    case 2:
    case 4: {
      need(p + 1);
      const s = b[p]!;
      if (s < 10 || s > 20) throw new EnvelopeError("segment size out of range");
      p += 1 + 32;
      if (mode === 4) {
        need(p + 2);
        const w = (b[p]! << 8) | b[p + 1]!;
        if (w < 1 || w > 1024) throw new EnvelopeError("bad wrapped key length");
        p += 2 + w;
      }
      break;
    }
    case 3: {
      need(p + 7);
      const s = b[p]!;
      if (s < 10 || s > 20) throw new EnvelopeError("segment size out of range");
      const kem = (b[p + 1]! << 8) | b[p + 2]!;
      const kdf = (b[p + 3]! << 8) | b[p + 4]!;
      const enc = (b[p + 5]! << 8) | b[p + 6]!;
      if (kem !== 0x647a || kdf !== 0x0001) throw new EnvelopeError("unknown KEM or KDF");
      if (enc !== 1120) throw new EnvelopeError("bad enc length");
      p += 7 + 1120;
      break;
    }
    default:
      throw new EnvelopeError("unknown mode");
  }
  need(p);
  return { mode, algorithm, keyId, keyVersion, length: p };
}

/** Decodes `fk1:` text armor (base64url, no padding; one trailing line ending). */
export function fromArmor(text: string): Uint8Array {
  let t = text.endsWith("\r\n") ? text.slice(0, -2) : text.endsWith("\n") ? text.slice(0, -1) : text;
  if (!t.startsWith("fk1:")) throw new EnvelopeError("not fk1 text armor");
  t = t.slice(4);
  if (!/^[A-Za-z0-9_-]*$/.test(t) || t.length % 4 === 1) throw new EnvelopeError("bad armor");
  const bytes = fromBase64(t);
  if (toBase64Url(bytes) !== t) throw new EnvelopeError("non-canonical armor");
  return bytes;
}

const utf8 = new TextEncoder();

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function scalars(s: string): number {
  return [...s].length;
}

/**
 * The canonical associated data of an encryption context (docs/formats.md,
 * "Encryption context"): pairs in ascending order of the key's UTF-8 bytes.
 */
export function encodeContext(context: Record<string, string>): Uint8Array {
  const pairs = Object.entries(context).map(([k, v]) => {
    if (k.length === 0) throw new EnvelopeError("empty context key");
    if (scalars(k) > 128) throw new EnvelopeError("context key over 128 characters");
    if (scalars(v) > 1024) throw new EnvelopeError("context value over 1,024 characters");
    return [utf8.encode(k), utf8.encode(v)] as const;
  });
  if (pairs.length > 64) throw new EnvelopeError("more than 64 context pairs");
  if (pairs.length === 0) return new Uint8Array();
  pairs.sort((a, b) => compareBytes(a[0], b[0]));
  const parts: number[] = [...utf8.encode("fk1-context"), pairs.length >> 8, pairs.length & 0xff];
  for (const [k, v] of pairs) {
    parts.push(k.length >> 8, k.length & 0xff, ...k, v.length >> 8, v.length & 0xff, ...v);
  }
  return Uint8Array.from(parts);
}

/** Associated data from either raw bytes or a context (not both). */
export function associatedData(opts: { aad?: Uint8Array; context?: Record<string, string> } = {}): Uint8Array {
  if (opts.aad !== undefined && opts.context !== undefined) {
    throw new EnvelopeError("give aad or context, not both");
  }
  return opts.context !== undefined ? encodeContext(opts.context) : (opts.aad ?? new Uint8Array());
}

/**
 * Opens a single-shot (mode 1) AES-256-GCM envelope with a 32-byte key, in
 * process through WebCrypto. Other modes and algorithms: the service's `unseal`.
 */
export async function openSingle(
  envelope: Uint8Array,
  key: Uint8Array,
  opts: { aad?: Uint8Array; context?: Record<string, string> } = {},
): Promise<Uint8Array> {
  const h = parseHeader(envelope);
  if (h.mode !== 1) throw new EnvelopeError("only single-shot (mode 1) envelopes open locally");
  if (h.algorithm !== "aes-256-gcm") {
    throw new EnvelopeError(`${h.algorithm} is not in WebCrypto: open it with the service`);
  }
  if (key.length !== 32) throw new EnvelopeError("the key must be 32 bytes");
  if (envelope.length - h.length < TAG) throw new EnvelopeError("truncated");
  const header = envelope.subarray(0, h.length);
  const a = associatedData(opts);
  const additionalData = new Uint8Array(header.length + a.length);
  additionalData.set(header);
  additionalData.set(a, header.length);
  const k = await globalThis.crypto.subtle.importKey("raw", key.slice(), "AES-GCM", false, ["decrypt"]);
  try {
    const pt = await globalThis.crypto.subtle.decrypt(
      { name: "AES-GCM", iv: header.slice(h.length - 12), additionalData, tagLength: 128 },
      k,
      envelope.slice(h.length),
    );
    return new Uint8Array(pt);
  } catch {
    throw new EnvelopeError("cannot open: tampered, another key, or other associated data");
  }
}
