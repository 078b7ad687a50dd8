// The public API with the signed-in token: everything the console shows or
// does goes through it, so the token's scopes apply unchanged. The token lives in
// session storage (gone when the tab closes) and is sent only as a bearer header:
// never in a URL, a cookie or a log line.

const KEY = "fleetkey.token";

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An API error: its code, HTTP status and message. */
export class ApiError extends Error {
  constructor(code, status, message) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/**
 * Calls the API; the decoded JSON (null for 204). A 401 signs out, unless
 * `quiet` (the sign-in form checking a token it was just given).
 */
export async function api(method, path, body, { quiet = false } = {}) {
  const headers = { accept: "application/json" };
  const t = token.get();
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch (e) {
    throw new ApiError("unreachable", 0, `the service did not answer (${e.message})`);
  }
  if (r.status === 204) return null;
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const err = data && data.error ? data.error : { code: "unknown", message: r.statusText };
    if (r.status === 401 && !quiet) {
      token.clear();
      window.dispatchEvent(new CustomEvent("fleetkey-signed-out", { detail: err.message }));
    }
    throw new ApiError(err.code, r.status, err.message);
  }
  return data;
}

/** A path with its segments percent-encoded: path`/v1/fleets/${name}`. */
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ""), "");
}

/** The service's metrics as { "name{labels}": value } (the text format; no token needed). */
export async function metrics() {
  const r = await fetch("/metrics", { cache: "no-store", credentials: "omit" });
  if (!r.ok) throw new ApiError("unavailable", r.status, "metrics are unavailable");
  const out = new Map();
  for (const line of (await r.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    const v = Number(line.slice(i + 1));
    if (Number.isFinite(v)) out.set(line.slice(0, i), v);
  }
  return out;
}
