// Checks that need no server: an Ed25519 signature (a firmware image signed by an
// `ed25519` keyring) verified with the keyring's public key through WebCrypto.

import { fromBase64 } from "./base64.js";
import type { FleetKey } from "./client.js";

/** The raw 32-byte Ed25519 public key of a keyring's primary (or given) version. */
export async function ed25519PublicKey(client: FleetKey, keyring: string, version?: number): Promise<Uint8Array> {
  const r = await client.call("public_key", { path: { name: keyring }, query: { format: "raw", version } });
  if (r.algorithm !== "ed25519") throw new Error(`keyring ${keyring} is ${r.algorithm}, not ed25519`);
  return fromBase64(r.public_key as unknown as string);
}

/** Whether `signature` is a valid Ed25519 signature of `message` under `publicKey` (offline). */
export async function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const key = await globalThis.crypto.subtle.importKey("raw", publicKey.slice(), { name: "Ed25519" }, false, ["verify"]);
  return globalThis.crypto.subtle.verify({ name: "Ed25519" }, key, signature.slice(), message.slice());
}
