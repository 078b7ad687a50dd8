// A fetch-based client for the fleetkey REST API (Node >= 20 and browsers).
// `call` reaches every operation of the OpenAPI document by its operationId, typed
// from the document; the methods below it are the common ones with bytes in and
// out. Errors are `FleetKeyError` with the API's code; requests are retried only
// where docs/errors.md says retrying is safe.

import { fromBase64, toBase64 } from "./base64.js";
import { ConnectionError, FleetKeyError } from "./errors.js";
import { OPERATIONS } from "./operations.js";
import type { components, operations } from "./schema.js";

/** The API's schemas (request and response bodies). */
export type Schemas = components["schemas"];
/** An operation's id. */
export type OperationId = keyof typeof OPERATIONS & keyof operations;

type Json<T> = T extends { content: { "application/json": infer J } } ? J : never;
type Ok<R> = R extends { 200: infer A } ? Json<A> : R extends { 201: infer A } ? Json<A> : R extends { 202: infer A } ? Json<A> : unknown;

/** The JSON body an operation takes. */
export type RequestBody<O extends OperationId> = operations[O] extends { requestBody: infer B }
  ? Json<B>
  : operations[O] extends { requestBody?: infer B }
    ? Json<NonNullable<B>>
    : never;
/** The path parameters of an operation. */
export type PathParams<O extends OperationId> = operations[O] extends { parameters: { path: infer P } } ? P : never;
/** The query parameters of an operation. */
export type QueryParams<O extends OperationId> = operations[O] extends { parameters: { query?: infer Q } } ? Q : never;
/** What an operation answers with on success. */
export type Response<O extends OperationId> = operations[O] extends { responses: infer R } ? Ok<R> : unknown;

/** How to reach the service. */
export interface ClientOptions {
  /** Base URL; default `FLEETKEY_ADDR` from the environment (Node). */
  addr?: string;
  /** API token; default `FLEETKEY_TOKEN` from the environment (Node). */
  token?: string;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Attempts for retryable failures (docs/errors.md "yes, with backoff"); default 3. */
  attempts?: number;
  /** Per-request timeout in milliseconds; default 30,000. */
  timeoutMs?: number;
}

/** Associated data for seal/unseal/rewrap/data keys: raw bytes or a context. */
export interface Binding {
  aad?: Uint8Array;
  context?: Record<string, string>;
}

function env(name: string): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.[name];
}

const text = new TextEncoder();

function bytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? text.encode(data) : data;
}

function binding(b: Binding = {}): { aad?: string; context?: Record<string, string> } {
  const out: { aad?: string; context?: Record<string, string> } = {};
  if (b.aad !== undefined) out.aad = toBase64(b.aad);
  if (b.context !== undefined) out.context = b.context;
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One item of a batch: its value, or the error the service gave for it. */
export type Item<T> = { ok: true; value: T } | { ok: false; error: FleetKeyError };

/** The fleetkey REST API. */
export class FleetKey {
  readonly addr: string;
  readonly #token: string | undefined;
  readonly #fetch: typeof fetch;
  readonly #attempts: number;
  readonly #timeoutMs: number;

  constructor(options: ClientOptions = {}) {
    const addr = options.addr ?? env("FLEETKEY_ADDR");
    if (!addr) throw new Error("no service address: pass addr or set FLEETKEY_ADDR");
    this.addr = addr.replace(/\/+$/, "");
    this.#token = options.token ?? env("FLEETKEY_TOKEN");
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#attempts = Math.max(1, options.attempts ?? 3);
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Never shows the token. */
  toString(): string {
    return `FleetKey(${this.addr})`;
  }

  /**
   * Any operation of the API by its operationId (see `/v1/openapi.json`), typed
   * from the document: `call("seal", { path: { name: "app" }, body: { plaintext } })`.
   */
  async call<O extends OperationId>(
    operation: O,
    args: { path?: PathParams<O>; query?: QueryParams<O>; body?: RequestBody<O> } = {},
  ): Promise<Response<O>> {
    const [method, template] = OPERATIONS[operation];
    const params = (args.path ?? {}) as Record<string, string | number>;
    let path: string = template.replace(/\{(\w+)\}/g, (_, k: string) => {
      const v = params[k];
      if (v === undefined) throw new Error(`${operation}: missing path parameter ${k}`);
      return encodeURIComponent(String(v));
    });
    const query = Object.entries((args.query ?? {}) as Record<string, unknown>).filter(
      ([, v]) => v !== undefined && v !== null,
    );
    if (query.length > 0) {
      path += "?" + new URLSearchParams(query.map(([k, v]) => [k, String(v)])).toString();
    }
    return (await this.#request(method, path, args.body)) as Response<O>;
  }

  async #request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    for (let attempt = 1; ; attempt++) {
      let r: globalThis.Response;
      try {
        r = await this.#fetch(this.addr + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
      } catch (cause) {
        // Only reads are retried when nothing answered: a write may have landed.
        if (method === "GET" && attempt < this.#attempts) {
          await sleep(this.#backoff(attempt));
          continue;
        }
        throw new ConnectionError(`${method} ${path}: ${String(cause)}`, { cause });
      }
      if (r.ok) {
        return r.status === 204 ? undefined : r.json();
      }
      const error = await FleetKey.#error(r);
      if (error.retry === "backoff" && attempt < this.#attempts) {
        await sleep(error.retryAfter !== undefined ? error.retryAfter * 1000 : this.#backoff(attempt));
        continue;
      }
      throw error;
    }
  }

  #backoff(attempt: number): number {
    return Math.min(2000, 100 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
  }

  static async #error(r: globalThis.Response): Promise<FleetKeyError> {
    const after = Number(r.headers.get("retry-after"));
    const retryAfter = Number.isFinite(after) && after >= 0 && r.headers.has("retry-after") ? after : undefined;
    try {
      const b = (await r.json()) as { error?: { code?: string; message?: string } };
      return new FleetKeyError(b.error?.code ?? "unknown", r.status, b.error?.message ?? r.statusText, retryAfter);
    } catch {
      return new FleetKeyError("unknown", r.status, r.statusText, retryAfter);
    }
  }

  static #item<T>(i: Schemas["BatchItem"], value: (i: Schemas["BatchItem"]) => T): Item<T> {
    if (i.error) return { ok: false, error: new FleetKeyError(i.error.code, 0, i.error.message) };
    return { ok: true, value: value(i) };
  }

  // Keyrings and what they do.

  /** Seals `data` with the keyring's primary version; the fk1 envelope's bytes. */
  async seal(keyring: string, data: Uint8Array | string, b?: Binding): Promise<{ ciphertext: Uint8Array; keyVersion: number }> {
    const r = await this.call("seal", { path: { name: keyring }, body: { plaintext: toBase64(bytes(data)), ...binding(b) } });
    return { ciphertext: fromBase64(r.ciphertext), keyVersion: r.key_version };
  }

  /** Opens an envelope the keyring sealed (with the same aad or context). */
  async unseal(keyring: string, ciphertext: Uint8Array, b?: Binding): Promise<Uint8Array> {
    const r = await this.call("unseal", { path: { name: keyring }, body: { ciphertext: toBase64(ciphertext), ...binding(b) } });
    return fromBase64(r.plaintext);
  }

  /** Reseals under the primary version without the plaintext leaving the service. */
  async rewrap(keyring: string, ciphertext: Uint8Array, b?: Binding): Promise<{ ciphertext: Uint8Array; keyVersion: number }> {
    const r = await this.call("rewrap", { path: { name: keyring }, body: { ciphertext: toBase64(ciphertext), ...binding(b) } });
    return { ciphertext: fromBase64(r.ciphertext), keyVersion: r.key_version };
  }

  /** Seals many items in one request; each answers on its own. */
  async sealBatch(
    keyring: string,
    items: Array<{ data: Uint8Array | string } & Binding>,
  ): Promise<Array<Item<{ ciphertext: Uint8Array; keyVersion: number }>>> {
    const r = await this.call("seal_batch", {
      path: { name: keyring },
      body: { items: items.map((i) => ({ plaintext: toBase64(bytes(i.data)), ...binding(i) })) },
    });
    return r.results.map((i) =>
      FleetKey.#item(i, (v) => ({ ciphertext: fromBase64(v.ciphertext ?? ""), keyVersion: v.key_version ?? 0 })),
    );
  }

  /** Opens many envelopes in one request; each answers on its own. */
  async unsealBatch(keyring: string, items: Array<{ ciphertext: Uint8Array } & Binding>): Promise<Array<Item<Uint8Array>>> {
    const r = await this.call("unseal_batch", {
      path: { name: keyring },
      body: { items: items.map((i) => ({ ciphertext: toBase64(i.ciphertext), ...binding(i) })) },
    });
    return r.results.map((i) => FleetKey.#item(i, (v) => fromBase64(v.plaintext ?? "")));
  }

  /**
   * A data key for envelope encryption: 32 random bytes (`plaintext`, unless
   * `withoutPlaintext`) and the same key sealed by the keyring (`ciphertext`,
   * to store beside the data; `unseal` with the same binding returns the key).
   */
  async dataKey(
    keyring: string,
    b: Binding & { withoutPlaintext?: boolean } = {},
  ): Promise<{ plaintext?: Uint8Array; ciphertext: Uint8Array; keyVersion: number }> {
    const r = await this.call("datakey", {
      path: { name: keyring },
      body: { ...binding(b), return_plaintext: !b.withoutPlaintext },
    });
    const out: { plaintext?: Uint8Array; ciphertext: Uint8Array; keyVersion: number } = {
      ciphertext: fromBase64(r.ciphertext),
      keyVersion: r.key_version,
    };
    if (r.plaintext) out.plaintext = fromBase64(r.plaintext);
    return out;
  }

  /** Signs a message with a signing keyring. */
  async sign(keyring: string, message: Uint8Array | string): Promise<{ signature: Uint8Array; keyVersion: number }> {
    const r = await this.call("sign", { path: { name: keyring }, body: { message: toBase64(bytes(message)) } });
    return { signature: fromBase64(r.signature), keyVersion: r.key_version };
  }

  /** Whether a signature over `message` verifies under the keyring. */
  async verify(keyring: string, message: Uint8Array | string, signature: Uint8Array): Promise<boolean> {
    const r = await this.call("verify", {
      path: { name: keyring },
      body: { message: toBase64(bytes(message)), signature: toBase64(signature) },
    });
    return r.valid;
  }

  /** The MAC of a message under a MAC keyring (HMAC-SHA-256 or -512). */
  async mac(keyring: string, message: Uint8Array | string): Promise<{ tag: Uint8Array; keyVersion: number }> {
    const r = await this.call("mac", { path: { name: keyring }, body: { message: toBase64(bytes(message)) } });
    return { tag: fromBase64(r.signature), keyVersion: r.key_version };
  }

  /** Whether a MAC tag over `message` verifies under the keyring. */
  async verifyMac(keyring: string, message: Uint8Array | string, tag: Uint8Array): Promise<boolean> {
    const r = await this.call("mac_verify", {
      path: { name: keyring },
      body: { message: toBase64(bytes(message)), signature: toBase64(tag) },
    });
    return r.valid;
  }

  // Fleets and devices.

  /** Every device of a fleet matching `filter`, page by page (cursor paging). */
  async *devices(
    fleet: string,
    filter: Omit<NonNullable<QueryParams<"list_devices">>, "after"> = {},
  ): AsyncGenerator<Schemas["DeviceInfo"]> {
    let after: string | undefined;
    do {
      const page: Schemas["DeviceList"] = await this.call("list_devices", {
        path: { fleet },
        query: { ...filter, after },
      });
      yield* page.devices;
      after = page.next_after ?? undefined;
    } while (after);
  }
}
