/**
 * What a GET is: the caller's {@link RequestSpec}, turned into the URL and headers actually sent
 * ({@link prepareRequest}) and its timeouts in milliseconds ({@link timeoutsMs}); and the URL redaction that
 * keeps credentials and query values out of every message.
 *
 * @module
 */

/**
 * Query parameter values, as requests accepts them: lists repeat the key, `null` is omitted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ParamValue, prepareRequest } from "./request.ts";
 *
 * const params: Record<string, ParamValue> = { year: 2024, ids: [1, 2], debug: null, full: true };
 * const { url } = prepareRequest({ url: "https://example.com/export", params });
 * assert.equal(url.search, "?year=2024&ids=1&ids=2&full=True");
 * ```
 */
export type ParamValue = string | number | boolean | null | Array<string | number | boolean>;

/**
 * What to GET and how hard to try: the requests arguments the notebook used, plus retry knobs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { prepareRequest, type RequestSpec, timeoutsMs } from "./request.ts";
 *
 * const spec: RequestSpec = {
 *   url: "https://example.com/export",
 *   params: { format: "csv", region: ["eu", "us"] },
 *   headers: { Accept: "text/csv" },
 *   auth: ["user", Deno.env.get("EXPORT_PASSWORD") ?? ""],
 *   timeout: [10, 60], // 10 s for the headers, at most 60 s without a byte
 *   retries: 5,
 * };
 * const { url, headers } = prepareRequest(spec);
 * assert.equal(url.href, "https://example.com/export?format=csv&region=eu&region=us");
 * assert.match(headers.get("authorization")!, /^Basic /);
 * assert.equal(headers.get("user-agent"), "lakerun/0.1");
 * assert.deepEqual(timeoutsMs(spec.timeout), [10_000, 60_000]);
 * ```
 */
export interface RequestSpec {
  /** `http:`, `https:` or `file:`. User info in the URL (`https://user:pass@host/`) is used as Basic auth
   * when `auth` is not given (as requests does) and never sent in the URL. `file:` URLs stream the local
   * file: no retries, `params`/`headers`/`auth`/`timeout` are ignored. */
  url: string;
  /** Query parameters, appended to any query already in `url`, encoded as requests does
   * (`application/x-www-form-urlencoded`, space as `+`, lists repeat the key, `null` omitted). Booleans are
   * sent as Python prints them, `True` / `False`, to match what the notebook sent. */
  params?: Record<string, ParamValue>;
  /** Request headers, passed through. `User-Agent` defaults to `lakerun/0.1`; `Accept-Encoding` defaults
   * to `identity`. A reply that is content-encoded anyway (gzip, deflate, br) is decoded before `consume`
   * sees it, as requests does; lengths, resumes and progress then count the encoded bytes. */
  headers?: Record<string, string>;
  /** HTTP Basic credentials `[user, password]` (UTF-8), like requests' `auth` tuple. Overrides an
   * `Authorization` header. Never appears in error messages. */
  auth?: [string, string];
  /** Seconds, requests semantics: `[connect, read]` or one number for both. *connect* is the time allowed
   * until the response headers arrive; *read* is the longest allowed idle time between two body chunks (not
   * the total time: a slow but steady download never times out). Default: no timeout (as requests).
   * Values must be > 0; `Infinity` disables either. Both kinds of timeout are retried. */
  timeout?: number | [number, number];
  /** Additional attempts after the first; default 3, so 4 attempts in total. Shared by retries after errors,
   * resumes and restarts. */
  retries?: number;
  /** Base delay in seconds of the exponential backoff with full jitter: before retry *n* (1-based) the
   * delay is uniformly random in `[0, min(30, retryDelay * 2^(n-1))]`. Default 1. A `Retry-After` header
   * on a retried reply (429, 408, 5xx) replaces it: seconds or an HTTP-date, capped at 120 s. */
  retryDelay?: number;
  /** `"follow"` (default, as requests' `allow_redirects=True`) or `"manual"`: a redirect then fails with
   * an HttpError naming its status and target. */
  redirect?: "follow" | "manual";
  /** Aborts the request, any backoff sleep, and the body stream; the call rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * Removes user info from a URL and replaces every query (and fragment) value with `***`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redactUrl } from "./request.ts";
 *
 * assert.equal(redactUrl("https://u:p@host/x?token=abc&a=1"), "https://host/x?token=***&a=***");
 * ```
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url.replace(/\/\/[^/@?#]*@/, "//").replace(/[?#].*$/s, "?***");
  }
  u.username = "";
  u.password = "";
  const redact = (s: string) =>
    s.split("&").map((part) => {
      if (part === "") return part;
      const i = part.indexOf("=");
      return i < 0 ? "***" : `${part.slice(0, i)}=***`;
    }).join("&");
  if (u.search.length > 1) u.search = "?" + redact(u.search.slice(1));
  if (u.hash.length > 1) u.hash = "#" + redact(u.hash.slice(1));
  return u.href;
}

/**
 * Host:port that a Deno `net` permission must allow for this URL (default ports 80/443 made explicit), or
 * undefined for `file:` URLs (which need `read` instead).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { netPermissionFor } from "./request.ts";
 *
 * assert.equal(netPermissionFor("https://example.com/data.zip"), "example.com:443");
 * assert.equal(netPermissionFor("http://[::1]:8080/x"), "[::1]:8080");
 * assert.equal(netPermissionFor("file:///tmp/x.zip"), undefined);
 * assert.throws(() => netPermissionFor("ftp://example.com/x"), /unsupported URL scheme ftp:/);
 * ```
 */
export function netPermissionFor(url: string): string | undefined {
  const u = downloadUrl(url);
  if (u.protocol === "file:") return undefined;
  return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
}

/**
 * `url` parsed, when it is an http(s):// or file:// URL; otherwise a TypeError whose message shows the URL
 * redacted (see {@link redactUrl}: no user info or query values, which may be credentials).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { downloadUrl } from "./request.ts";
 *
 * assert.equal(downloadUrl("https://example.com/a.zip").host, "example.com");
 * assert.throws(
 *   () => downloadUrl("ftp://example.com/a.zip"),
 *   { message: "unsupported URL scheme ftp: in ftp://example.com/a.zip (http://, https:// and file:// are)" },
 * );
 * assert.throws(() => downloadUrl("http://exa mple.com/?token=s3cret"), {
 *   message: "not a valid URL: http://exa mple.com/?***",
 * });
 * // a file URL names no host: file://a.zip would read the folder / of a host "a.zip"
 * assert.equal(downloadUrl("file:///data/a.zip").pathname, "/data/a.zip");
 * assert.throws(() => downloadUrl("file://a.zip"), {
 *   message: 'file URL file://a.zip/ names the host "a.zip": a local file is file:///absolute/path (three slashes)',
 * });
 * ```
 */
export function downloadUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`not a valid URL: ${redactUrl(url)}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:" && u.protocol !== "file:") {
    throw new TypeError(
      `unsupported URL scheme ${u.protocol} in ${redactUrl(url)} (http://, https:// and file:// are)`,
    );
  }
  if (u.protocol === "file:" && u.hostname !== "" && u.hostname !== "localhost") {
    throw new TypeError(
      `file URL ${redactUrl(url)} names the host ${
        JSON.stringify(u.hostname)
      }: a local file is file:///absolute/path (three slashes)`,
    );
  }
  return u;
}

const USER_AGENT = "lakerun/0.1";

/** A {@link RequestSpec} made ready to send: see {@link prepareRequest}. */
export interface PreparedRequest {
  /** The URL to GET: params appended, user info removed. */
  url: URL;
  /** The URL as the user gave it (for redaction of error messages). */
  original: string;
  /** The headers of every request: the caller's, defaults and `Authorization`; no `Range` of ours. */
  headers: Headers;
}

/**
 * `text` percent-decoded, or as it is when a `%` in it is no percent-encoding (`%zz`, a lone `%`): a URL may
 * hold such text, and a Hive partition value too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { percentDecoded } from "./request.ts";
 *
 * assert.equal(percentDecoded("report%20q1.csv"), "report q1.csv");
 * assert.equal(percentDecoded("%zz.zip"), "%zz.zip");
 * ```
 */
export function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Builds the URL (params appended, user info moved to auth) and the request headers. */
export function prepareRequest(spec: RequestSpec): PreparedRequest {
  const url = downloadUrl(spec.url);
  let auth = spec.auth;
  if ((url.username || url.password) && !auth) {
    auth = [percentDecoded(url.username), percentDecoded(url.password)];
  }
  url.username = "";
  url.password = "";
  const query = encodeParams(spec.params ?? {});
  if (query) url.search = url.search.length > 1 ? `${url.search.slice(1)}&${query}` : query;
  const headers = new Headers(spec.headers);
  if (!headers.has("user-agent")) headers.set("user-agent", USER_AGENT);
  if (!headers.has("accept-encoding")) headers.set("accept-encoding", "identity");
  if (auth) {
    headers.set("authorization", "Basic " + base64(new TextEncoder().encode(`${auth[0]}:${auth[1]}`)));
  }
  return { url, original: spec.url, headers };
}

function encodeParams(params: Record<string, ParamValue>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === null || v === undefined) continue;
      const s = typeof v === "boolean" ? (v ? "True" : "False") : String(v);
      parts.push(`${quotePlus(key)}=${quotePlus(s)}`);
    }
  }
  return parts.join("&");
}

/** Python's `urllib.parse.quote_plus`: only `A-Za-z0-9_.-~` stay literal, space becomes `+`. */
function quotePlus(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%20/g, "+");
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * `timeout` (requests semantics, see {@link RequestSpec}) as `[connect, read]` milliseconds, `Infinity` when
 * not set; throws a TypeError unless each is a number > 0.
 */
export function timeoutsMs(timeout: RequestSpec["timeout"]): [connectMs: number, readMs: number] {
  const t = timeout === undefined ? Infinity : timeout;
  const [connect, read] = Array.isArray(t) ? t : [t, t];
  return [seconds(connect, "(connect)"), seconds(read, "(read)")];
}

function seconds(value: number, what: string): number {
  if (typeof value !== "number" || Number.isNaN(value) || value <= 0) {
    throw new TypeError(`timeout ${what} must be a positive number of seconds, got ${value}`);
  }
  return value * 1000;
}
