/**
 * HTTP(S) GET with retries, transparent resume and requests-style timeouts, plus `file:` URLs.
 *
 * This is the port of the notebook's `requests.get(**requests_arguments)`: {@link RequestSpec} mirrors the
 * requests arguments that matter (`url`, `params`, `headers`, `auth`, `timeout`), and
 * {@link fetchWithRetries} adds what the notebook lacked: retries with backoff, resuming a cut download
 * with `Range`, and a guarantee that a truncated body never looks complete.
 *
 * The body is streamed, never buffered: it is handed to a `consume` callback as a `ReadableStream`, and
 * backpressure flows from `consume` to the socket.
 *
 * ## The resume / restart contract
 *
 * If the connection breaks mid-body, stalls longer than the read timeout, or the body ends before its
 * `Content-Length`:
 *
 * 1. **Resume** (invisible to `consume`): when the first reply advertised `Accept-Ranges: bytes` and had a
 *    strong `ETag` or a `Last-Modified`, a new GET is sent with
 *    `Range: bytes=N-` and `If-Range`. A `206` whose `Content-Range` starts at N (and whose total size, if
 *    given, is unchanged) is spliced into the *same* stream, so `consume` just sees more bytes.
 * 2. **Restart**: otherwise (no range support, a `200` or `416` reply to the resume meaning the resource
 *    changed, or a mismatched `Content-Range`), the stream handed to `consume` errors with an internal
 *    restartable error. `consume` must let that rejection propagate (possibly wrapped: a `cause` chain is
 *    followed). {@link fetchWithRetries} then calls `consume` **again, from scratch**, with a fresh body and
 *    a higher `BodyInfo.attempt`. So `consume` must be restartable: it must not assume it runs once, and
 *    whatever it wrote from the failed body must be discarded or overwritten by the caller (e.g. write to a
 *    temporary file, truncate it on restart, remove it on final failure).
 *
 *    Once the body stream has errored with the restartable error, *any* rejection of `consume` is treated
 *    as caused by it (a parser that turned the error into "unexpected end of data" without `cause` still
 *    leads to a restart), and so is a `consume` that swallowed the error and resolved: a truncated body is
 *    never accepted.
 *
 * Every request (first GET, resume GET, restart GET, retry after a 5xx) spends one attempt of the same
 * budget: `1 + retries` attempts in total. When it is exhausted, the stream (or the call) fails with an
 * {@link HttpError} naming the attempts and the last reason.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/**
 * Query parameter values, as requests accepts them: lists repeat the key, `null` is omitted.
 *
 * @example
 * ```ts
 * const params: Record<string, ParamValue> = { year: 2024, ids: [1, 2], debug: null }; // ?year=2024&ids=1&ids=2
 * ```
 */
export type ParamValue = string | number | boolean | null | Array<string | number | boolean>;

/**
 * What to GET and how hard to try: the requests arguments the notebook used, plus retry knobs.
 *
 * @example
 * ```ts
 * const spec: RequestSpec = {
 *   url: "https://example.com/export",
 *   params: { format: "csv", region: ["eu", "us"] },
 *   headers: { Accept: "text/csv" },
 *   auth: ["user", Deno.env.get("EXPORT_PASSWORD")!],
 *   timeout: [10, 60], // 10 s for the headers, at most 60 s without a byte
 *   retries: 5,
 * };
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
 * What is known about the body handed to `consume`.
 *
 * @example
 * ```ts
 * await fetchWithRetries({ url }, async (body, info: BodyInfo) => {
 *   console.error(`attempt ${info.attempt}: ${info.contentLength ?? "unknown"} bytes`);
 *   await body.pipeTo(sink);
 * });
 * ```
 */
export interface BodyInfo {
  /** Final URL after redirects. Not redacted: use {@link redactUrl} before logging it. */
  url: string;
  /** Status of the reply that started this body (200 for http, 200 for file:). */
  status: number;
  /** Headers of the reply that started this body. */
  headers: Headers;
  /** Length in bytes of the body `consume` gets, when the server announced it (undefined when the reply is
   * content-encoded and decoded here). */
  contentLength?: number;
  /** 1-based attempt number of the request that started this body. */
  attempt: number;
  /** Offset of the latest transparent resume; updated live on this object while the stream is read. */
  resumedFrom?: number;
}

/**
 * Optional callbacks reporting what {@link fetchWithRetries} is doing.
 *
 * @example
 * ```ts
 * const events: HttpEvents = {
 *   onRetry: ({ attempt, delayMs, reason }) => console.error(`attempt ${attempt} in ${delayMs} ms: ${reason}`),
 *   onProgress: (bytes, total) => console.error(`${bytes}/${total ?? "?"}`),
 * };
 * ```
 */
export interface HttpEvents {
  /** Before every sleep that precedes another attempt. `attempt` is the attempt about to be made. */
  onRetry?(info: { attempt: number; delayMs: number; reason: string }): void;
  /** After every chunk received: bytes received so far in this body (reset on restart; counted before
   * content decoding, like `total`, which is the announced length). */
  onProgress?(bytes: number, total?: number): void;
}

/**
 * A failed GET. The message names the method, the redacted URL and the reason, e.g.
 * `GET https://host/path?key=***: HTTP 404 Not Found`; it never contains credentials or query values.
 *
 * @example
 * ```ts
 * try {
 *   await fetchWithRetries({ url }, (body) => body.cancel());
 * } catch (e) {
 *   if (e instanceof HttpError && e.status === 404) console.error("missing:", e.url);
 * }
 * ```
 */
export class HttpError extends Error {
  /** Always `"HttpError"`. */
  override name = "HttpError";
  /** HTTP status of the (last) failing reply, if the failure was an HTTP status. */
  status?: number;
  /** The redacted URL. */
  url: string;
  /** Attempts made, when the failure came after retries. */
  attempts?: number;

  /** `message` must already be redacted; `options.url` too. */
  constructor(message: string, options: { url: string; status?: number; attempts?: number }) {
    super(message);
    this.url = options.url;
    this.status = options.status;
    this.attempts = options.attempts;
  }
}

/**
 * Removes user info from a URL and replaces every query (and fragment) value with `***`.
 *
 * @example
 * ```ts
 * redactUrl("https://u:p@host/x?token=abc&a=1"); // "https://host/x?token=***&a=***"
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
 * netPermissionFor("https://example.com/data.zip"); // "example.com:443"
 * netPermissionFor("http://[::1]:8080/x"); // "[::1]:8080"
 * netPermissionFor("file:///tmp/x.zip"); // undefined
 * ```
 */
export function netPermissionFor(url: string): string | undefined {
  const u = new URL(url);
  if (u.protocol === "file:") return undefined;
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new TypeError(`unsupported URL scheme ${u.protocol} in ${redactUrl(url)}`);
  }
  return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
}

/**
 * GETs `spec.url` and hands the body to `consume`; retries, resumes and restarts as described in the
 * module documentation; returns what `consume` returns.
 *
 * Failures: HTTP 5xx, 408 and 429, connection errors and timeouts are retried with backoff; any other
 * non-2xx status fails at once with an {@link HttpError} carrying `status`. After the last attempt it
 * fails with an {@link HttpError} like `GET <url>: failed after 4 attempts; last error: HTTP 503 ...`.
 * An abort through `spec.signal` rejects with `signal.reason`.
 *
 * `consume` must be restartable: it may be called again with a fresh body after the previous body errored
 * (see the module documentation); it must let errors from the body propagate. A rejection of `consume`
 * while its body had not errored (its own failure) is passed through without retry. Failures that happen
 * while the body is being read (retries exhausted during a resume, a 404 on a resume, an abort) error the
 * body stream, so they reach the caller through `consume`'s rejection, as `consume` rethrew them.
 *
 * @example
 * ```ts
 * const size = await fetchWithRetries(
 *   { url: "https://example.com/data.zip", params: { year: 2024 }, timeout: [10, 60] },
 *   async (body, info) => {
 *     const file = await Deno.open(tmp, { write: true, create: true, truncate: true }); // restart-safe
 *     await body.pipeTo(file.writable);
 *     return info.contentLength;
 *   },
 *   { onRetry: ({ attempt, reason }) => console.error(`retry ${attempt}: ${reason}`) },
 * );
 * ```
 */
export async function fetchWithRetries<T>(
  spec: RequestSpec,
  consume: (body: ReadableStream<Uint8Array>, info: BodyInfo) => Promise<T>,
  events: HttpEvents = {},
): Promise<T> {
  spec.signal?.throwIfAborted();
  const target = prepare(spec);
  if (target.url.protocol === "file:") return await fetchFile(target.url, spec, consume, events);
  const session = new Session(spec, target, events);
  let fresh: Exchange | undefined;
  let reason: string | undefined;
  while (true) {
    const exchange = fresh ?? await session.open({ reason });
    fresh = undefined;
    const body = new ResumableBody(session, exchange);
    let result: T;
    try {
      result = await consume(body.stream, body.info);
    } catch (err) {
      body.dispose();
      // The rejection is `body.restart` itself, wraps it (cause chain), or followed from it: start over.
      if (body.restart) {
        ({ fresh, reason } = body.restart);
        continue;
      }
      throw err;
    }
    body.dispose();
    if (body.restart) {
      ({ fresh, reason } = body.restart); // consume swallowed the error: a cut body is never accepted
      continue;
    }
    return result;
  }
}

// ---------------------------------------------------------------------------------------------------------

const USER_AGENT = "lakerun/0.1";
const DEFAULT_RETRIES = 3;
const DEFAULT_RETRY_DELAY_S = 1;
const MAX_BACKOFF_S = 30;
const MAX_RETRY_AFTER_S = 120;
const RETRYABLE_STATUS = new Set([408, 429]);

interface Target {
  url: URL;
  /** The URL as the user gave it (for redaction of error messages). */
  original: string;
  headers: Headers;
}

/** Builds the URL (params appended, user info moved to auth) and the request headers. */
function prepare(spec: RequestSpec): Target {
  const url = new URL(spec.url);
  if (url.protocol !== "http:" && url.protocol !== "https:" && url.protocol !== "file:") {
    throw new TypeError(`unsupported URL scheme ${url.protocol} in ${redactUrl(spec.url)}`);
  }
  let auth = spec.auth;
  if ((url.username || url.password) && !auth) {
    const decode = (v: string) => {
      try {
        return decodeURIComponent(v);
      } catch {
        return v;
      }
    };
    auth = [decode(url.username), decode(url.password)];
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

function seconds(value: number, what: string): number {
  if (typeof value !== "number" || Number.isNaN(value) || value <= 0) {
    throw new TypeError(`timeout ${what} must be a positive number of seconds, got ${value}`);
  }
  return value * 1000;
}

/** Raised inside the body stream when the download must start over; see the module documentation. */
class RestartRequired extends Error {
  override name = "RestartRequired";
  constructor(message: string, readonly reason: string, readonly fresh?: Exchange) {
    super(message);
  }
}

/** A timeout, used as an AbortController reason so that it can be recognised. */
class TimeoutMark extends Error {
  override name = "TimeoutError";
}

/** One request and its response; owns the AbortController that tears down its connection. */
class Exchange {
  private reader?: ReadableStreamDefaultReader<Uint8Array>;
  private disposed = false;

  private readonly unlink: () => void;

  constructor(
    readonly response: Response,
    readonly attempt: number,
    private readonly ctrl: AbortController,
    signal: AbortSignal | undefined,
  ) {
    this.unlink = linkAbort(signal, ctrl);
  }

  /** Reads one chunk; rejects with a TimeoutMark after `idleMs` without data, or with the abort reason. */
  async read(idleMs: number): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (!this.response.body) return { done: true, value: undefined };
    this.reader ??= this.response.body.getReader();
    const signal = this.ctrl.signal;
    signal.throwIfAborted();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const read = this.reader.read();
    const stop = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      if (Number.isFinite(idleMs)) {
        timer = setTimeout(() => this.ctrl.abort(new TimeoutMark(`no data for ${idleMs / 1000} s`)), idleMs);
      }
    });
    read.catch(() => {}); // may reject after `stop` won the race
    try {
      return await Promise.race([read, stop]);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort!);
    }
  }

  /** Drops the response and its connection. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.unlink();
    if (this.reader) this.reader.cancel().catch(() => {});
    else this.response.body?.cancel().catch(() => {});
    this.ctrl.abort();
  }
}

/** The retry budget and the request machinery shared by the first GET, resumes and restarts. */
class Session {
  readonly maxAttempts: number;
  used = 0;
  readonly connectMs: number;
  readonly readMs: number;
  readonly redacted: string;
  private readonly baseDelayMs: number;

  constructor(readonly spec: RequestSpec, readonly target: Target, readonly events: HttpEvents) {
    const retries = spec.retries ?? DEFAULT_RETRIES;
    if (!Number.isInteger(retries) || retries < 0) throw new TypeError(`retries must be an integer >= 0`);
    this.maxAttempts = retries + 1;
    const delay = spec.retryDelay ?? DEFAULT_RETRY_DELAY_S;
    if (!(delay >= 0)) throw new TypeError(`retryDelay must be >= 0 seconds`);
    this.baseDelayMs = delay * 1000;
    const t = spec.timeout;
    const [c, r] = t === undefined ? [Infinity, Infinity] : Array.isArray(t) ? t : [t, t];
    this.connectMs = seconds(c, "(connect)");
    this.readMs = seconds(r, "(read)");
    this.redacted = redactUrl(target.url.href);
  }

  get signal(): AbortSignal | undefined {
    return this.spec.signal;
  }

  /** `GET <redacted url>: <what>` */
  message(what: string): string {
    return `GET ${this.redacted}: ${what}`;
  }

  exhausted(reason: string, status?: number): HttpError {
    const n = this.used;
    return new HttpError(
      this.message(`failed after ${n} attempt${n === 1 ? "" : "s"}; last error: ${reason}`),
      {
        url: this.redacted,
        status,
        attempts: n,
      },
    );
  }

  /** Replaces any URL in a message (e.g. Deno's "error sending request for url (...)") by its redaction. */
  sanitize(text: string): string {
    return text
      .replaceAll(this.target.original, redactUrl(this.target.original))
      .replaceAll(this.target.url.href, this.redacted)
      .replace(/\b(?:https?|file):\/\/[^\s)"'<>]+/g, (m) => redactUrl(m));
  }

  describe(err: unknown): string {
    if (err instanceof TimeoutMark) return `read timeout (${err.message})`;
    const parts: string[] = [];
    for (let e: unknown = err, i = 0; e && i < 5; i++, e = (e as { cause?: unknown }).cause) {
      parts.push(e instanceof Error ? e.message : String(e));
    }
    return `connection error: ${this.sanitize(parts.join(": "))}`;
  }

  /**
   * Makes requests until one is acceptable, spending the retry budget. Before every attempt but the very
   * first it sleeps (backoff or Retry-After) and reports `onRetry` with `reason`.
   * `range`: send `Range: bytes=<from>-` and `If-Range`; then 2xx and 416 are returned for the caller to
   * judge. Otherwise only 2xx is returned. Other failures are retried or thrown as described above.
   * `signal` (default: the caller's) interrupts the backoff sleep and the wait for headers; the returned
   * exchange is tied to the caller's signal only.
   */
  async open(
    opts: { reason?: string; range?: { from: number; ifRange: string }; signal?: AbortSignal },
  ): Promise<Exchange> {
    const signal = opts.signal ?? this.signal;
    let reason = opts.reason ?? "unknown error";
    let status: number | undefined;
    let retryAfterMs: number | undefined;
    while (true) {
      if (this.used > 0) {
        if (this.used >= this.maxAttempts) throw this.exhausted(reason, status);
        const ceiling = Math.min(MAX_BACKOFF_S * 1000, this.baseDelayMs * 2 ** (this.used - 1));
        const delayMs = Math.round(retryAfterMs ?? Math.random() * ceiling);
        this.events.onRetry?.({ attempt: this.used + 1, delayMs, reason });
        await sleep(delayMs, signal);
      }
      this.used++;
      status = undefined;
      retryAfterMs = undefined;
      let exchange: Exchange;
      try {
        exchange = await this.request(opts.range, signal);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof TimeoutMark) {
          reason = `connect timeout (no response headers within ${this.connectMs / 1000} s)`;
          continue;
        }
        if (!isRetryableFetchError(err)) throw err;
        reason = this.describe(err);
        continue;
      }
      const res = exchange.response;
      if (res.ok || (opts.range && res.status === 416)) return exchange;
      exchange.dispose();
      status = res.status;
      let text = `HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}`;
      if (res.status >= 300 && res.status < 400 && res.headers.has("location")) {
        text += ` (redirect to ${
          redactUrl(new URL(res.headers.get("location")!, this.target.url).href)
        } not followed)`;
      }
      if (res.status >= 500 || RETRYABLE_STATUS.has(res.status)) {
        reason = text;
        retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
        continue;
      }
      throw new HttpError(this.message(text), {
        url: this.redacted,
        status: res.status,
        attempts: this.used,
      });
    }
  }

  /** One fetch; rejects with a TimeoutMark on connect timeout, with the signal's reason on abort. */
  private async request(range: { from: number; ifRange: string } | undefined, signal?: AbortSignal) {
    const ctrl = new AbortController();
    const unlink = linkAbort(signal, ctrl);
    const headers = new Headers(this.target.headers);
    if (range) {
      headers.set("range", `bytes=${range.from}-`);
      headers.set("if-range", range.ifRange);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (Number.isFinite(this.connectMs)) {
      timer = setTimeout(() => ctrl.abort(new TimeoutMark("connect")), this.connectMs);
    }
    try {
      const response = await fetch(this.target.url, {
        headers,
        signal: ctrl.signal,
        redirect: this.spec.redirect ?? "follow",
      });
      return new Exchange(response, this.used, ctrl, this.signal);
    } catch (err) {
      throw ctrl.signal.aborted ? ctrl.signal.reason : err;
    } finally {
      unlink();
      clearTimeout(timer);
    }
  }
}

/** Aborts `ctrl` (with the same reason) when `signal` aborts; returns the function that stops that. */
function linkAbort(signal: AbortSignal | undefined, ctrl: AbortController): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    ctrl.abort(signal.reason);
    return () => {};
  }
  const onAbort = () => ctrl.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

/**
 * Decoders for a `Content-Encoding` the way requests decodes it (gzip, deflate, br), outermost last;
 * empty for identity or when any coding is unknown (the bytes are then handed over as received).
 * Deno's fetch does not decode when the request sets `Accept-Encoding` itself, which this module does.
 */
function contentDecoders(header: string | null): DecompressionStream[] {
  const codings = (header ?? "").split(",").map((c) => c.trim().toLowerCase()).filter((c) =>
    c && c !== "identity"
  );
  const formats: Record<string, string> = {
    gzip: "gzip",
    "x-gzip": "gzip",
    deflate: "deflate",
    br: "brotli",
  };
  if (!codings.every((c) => c in formats)) return [];
  return codings.reverse().map((c) => new DecompressionStream(formats[c] as CompressionFormat));
}

function isRetryableFetchError(err: unknown): boolean {
  if (!(err instanceof TypeError)) return false; // permission errors and the like
  return !/are blocked|invalid url|unsupported|certificate/i.test(err.message);
}

/** `Retry-After` as milliseconds (seconds or HTTP-date), capped; undefined if absent or invalid. */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    const date = Date.parse(v);
    if (Number.isNaN(date)) return undefined;
    ms = Math.max(0, date - Date.now());
  }
  return Math.min(ms, MAX_RETRY_AFTER_S * 1000);
}

function parseContentRange(value: string | null): { start: number; end: number; total?: number } | undefined {
  const m = value && /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === "*" ? undefined : Number(m[3]) };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The stream handed to `consume`: pulls from the current exchange, resumes or restarts on truncation. */
class ResumableBody {
  readonly stream: ReadableStream<Uint8Array>;
  readonly info: BodyInfo;
  /** Set when the stream errored with a restartable error. */
  restart?: RestartRequired;
  private exchange: Exchange;
  private received = 0;
  /** Bytes expected in total, when known (from the first reply, or learned from a Content-Range). */
  private total?: number;
  /** End offset (exclusive) of the current segment, when known. */
  private segmentEnd?: number;
  private readonly validator?: string;
  private readonly validatorIsEtag: boolean;
  private readonly resumable: boolean;
  /** Aborted when the stream is cancelled or disposed: stops a resume in progress. */
  private readonly lifetime = new AbortController();
  private readonly waitSignal: AbortSignal;

  constructor(private readonly session: Session, first: Exchange) {
    this.exchange = first;
    const res = first.response;
    const h = res.headers;
    // Lengths, ranges and validators refer to the bytes on the wire (before content decoding).
    const length = h.get("content-length");
    if (length !== null && /^\s*\d+\s*$/.test(length)) this.total = Number(length);
    this.segmentEnd = this.total;
    const etag = h.get("etag")?.trim();
    const strongEtag = etag && !etag.startsWith("W/") ? etag : undefined;
    this.validator = strongEtag ?? h.get("last-modified")?.trim() ?? undefined;
    this.validatorIsEtag = strongEtag !== undefined;
    // A 206 here only answers a Range header the caller set: served as is, never resumed.
    this.resumable = res.status === 200 && !!this.validator &&
      /\bbytes\b/i.test(h.get("accept-ranges") ?? "") && !session.target.headers.has("range");
    this.info = {
      url: res.url || session.target.url.href,
      status: res.status,
      headers: h,
      contentLength: this.total,
      attempt: first.attempt,
    };
    const user = session.signal;
    this.waitSignal = user ? AbortSignal.any([user, this.lifetime.signal]) : this.lifetime.signal;
    const raw = new ReadableStream<Uint8Array>({
      pull: (controller) => this.pull(controller),
      cancel: () => this.dispose(),
    }, { highWaterMark: 0 });
    const decoders = contentDecoders(h.get("content-encoding"));
    if (decoders.length) this.info.contentLength = undefined; // the decoded length is unknown
    this.stream = decoders.reduce(
      (stream, d) => stream.pipeThrough(d as unknown as TransformStream<Uint8Array, Uint8Array>),
      raw,
    );
  }

  /** Stops everything: the current connection and any resume in progress. Idempotent. */
  dispose(): void {
    this.lifetime.abort(new Error("body disposed"));
    this.exchange.dispose();
  }

  private get disposed(): boolean {
    return this.lifetime.signal.aborted;
  }

  private async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    try {
      while (!this.disposed) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await this.exchange.read(this.session.readMs);
        } catch (err) {
          if (this.session.signal?.aborted) throw this.session.signal.reason;
          if (this.disposed) return;
          await this.recover(this.session.describe(err) + ` after ${this.received}${this.of()} bytes`);
          continue;
        }
        if (this.disposed) return;
        if (!chunk.done) {
          const n = chunk.value.byteLength;
          if (n === 0) continue;
          if (this.segmentEnd !== undefined && this.received + n > this.segmentEnd) {
            throw this.restartOrFail(`body longer than announced (${this.segmentEnd} bytes)`);
          }
          this.received += n;
          controller.enqueue(chunk.value);
          this.session.events.onProgress?.(this.received, this.total);
          return;
        }
        // A clean end: complete only if every announced byte arrived (a short body never looks complete).
        const expected = Math.max(this.segmentEnd ?? 0, this.total ?? 0);
        if (this.received < expected) {
          await this.recover(`body ended after ${this.received}${this.of()} bytes`);
          continue;
        }
        this.exchange.dispose();
        controller.close();
        return;
      }
    } catch (err) {
      this.exchange.dispose();
      if (this.disposed && !this.session.signal?.aborted) return; // cancelled: nobody is listening
      if (err instanceof RestartRequired) this.restart = err;
      controller.error(err);
    }
  }

  private of(): string {
    return this.total === undefined ? "" : ` of ${this.total}`;
  }

  /** A RestartRequired if budget remains (or a fresh 200 is at hand), else the final HttpError. */
  private restartOrFail(reason: string, fresh?: Exchange): Error {
    if (!fresh && this.session.used >= this.session.maxAttempts) return this.session.exhausted(reason);
    return new RestartRequired(this.session.message(`${reason}; restarting the download`), reason, fresh);
  }

  /** Swaps in a resumed exchange, or throws RestartRequired / a final error. */
  private async recover(reason: string): Promise<void> {
    this.exchange.dispose();
    if (!this.resumable) throw this.restartOrFail(reason);
    const from = this.received;
    const next = await this.session.open({
      reason,
      range: { from, ifRange: this.validator! },
      signal: this.waitSignal,
    });
    const res = next.response;
    if (res.status === 200) {
      // The resource changed (If-Range failed) or the server ignored Range: this reply is a new download.
      throw this.restartOrFail(`${reason}; the resource changed, a resume got HTTP 200`, next);
    }
    const cr = parseContentRange(res.headers.get("content-range"));
    const etag = res.headers.get("etag")?.trim();
    let problem: string | undefined;
    if (res.status !== 206) problem = `a resume got HTTP ${res.status}`;
    else if (!cr) problem = "a resume got 206 without a valid Content-Range";
    else if (cr.start !== from) problem = `a resume asked for byte ${from} and got ${cr.start}`;
    else if (cr.total !== undefined && this.total !== undefined && cr.total !== this.total) {
      problem = `the resource changed size (${this.total} -> ${cr.total})`;
    } else if (cr.total !== undefined && cr.end >= cr.total) {
      problem = "a resume got an invalid Content-Range";
    } else if (this.validatorIsEtag && etag && etag !== this.validator) {
      problem = "the resource changed (ETag)";
    }
    if (problem) {
      next.dispose();
      throw this.restartOrFail(`${reason}; ${problem}`);
    }
    this.exchange = next;
    this.segmentEnd = cr!.end + 1;
    this.total ??= cr!.total;
    this.info.resumedFrom = from;
  }
}

/** `file:` URLs: streams the local file once; open errors fail at once. */
async function fetchFile<T>(
  url: URL,
  spec: RequestSpec,
  consume: (body: ReadableStream<Uint8Array>, info: BodyInfo) => Promise<T>,
  events: HttpEvents,
): Promise<T> {
  const shown = redactUrl(url.href);
  const path = fileURLToPath(url);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    const what = err instanceof Deno.errors.NotFound ? "file not found" : (err as Error).message;
    const status = err instanceof Deno.errors.NotFound ? 404 : undefined;
    throw new HttpError(`GET ${shown}: ${what}`, { url: shown, status, attempts: 1 });
  }
  let size: number;
  try {
    const st = await file.stat();
    if (!st.isFile) throw new HttpError(`GET ${shown}: not a regular file`, { url: shown, attempts: 1 });
    size = st.size;
  } catch (err) {
    file.close();
    throw err;
  }
  const signal = spec.signal;
  let received = 0;
  let open = true;
  const closeFile = () => {
    if (open) {
      open = false;
      file.close();
    }
  };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        signal?.throwIfAborted();
        const buf = new Uint8Array(64 * 1024);
        const n = await file.read(buf);
        signal?.throwIfAborted();
        if (n === null) {
          closeFile();
          if (received !== size) {
            throw new HttpError(`GET ${shown}: file changed while reading (${received} of ${size} bytes)`, {
              url: shown,
            });
          }
          controller.close();
          return;
        }
        received += n;
        controller.enqueue(buf.subarray(0, n));
        events.onProgress?.(received, size);
      } catch (err) {
        closeFile();
        controller.error(err);
      }
    },
    cancel: closeFile,
  }, { highWaterMark: 0 });
  const headers = new Headers({ "content-length": String(size) });
  try {
    return await consume(stream, { url: url.href, status: 200, headers, contentLength: size, attempt: 1 });
  } finally {
    closeFile();
  }
}
