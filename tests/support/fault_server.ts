/**
 * A loopback HTTP/1.1 server for tests that can inject the faults a real download meets: 5xx/429 replies,
 * connections cut in the middle of a body, bodies shorter than their `Content-Length`, stalls, slow
 * transfers and slow response headers. It serves byte ranges (`206` + `Content-Range`) and honours
 * `If-Range`, so resume logic can be tested end to end.
 *
 * It is written on raw TCP (`Deno.listen`) rather than `Deno.serve` so that a fault is exactly what the
 * client sees: a "cut" really closes the socket after N body bytes while the headers promised more. Every
 * response carries `Connection: close` (one request per connection), which keeps the fault accounting per
 * request simple.
 *
 * ```ts ignore
 * import { startFaultServer } from "./support/fault_server.ts";
 *
 * await using server = await startFaultServer({
 *   "/data.zip": { body: bytes, failFirst: [503], cutAfterBytes: 1000 },
 * });
 * const res = await fetch(server.url("/data.zip")); // 503
 * await res.body?.cancel();
 * server.hits("/data.zip"); // 1
 * ```
 *
 * Counting rules, used by every "first N" option:
 * - **hits** count every request to a route path (query strings ignored), starting at 1.
 * - **body responses** count only the `200`/`206` replies that send the route's body. Faults that act on
 *   the body (`cutAfterBytes`, `stallAfterBytes`) count body responses, so `failFirst: [503]` followed by
 *   `cutAfterBytes` cuts the first *successful* reply, not the 503.
 * - Byte offsets in `cutAfterBytes` / `stallAfterBytes` are counted within the one response being sent
 *   (a `206` starting at offset 5000 that is cut "after 100 bytes" stops at resource offset 5100).
 *
 * Only loopback (`127.0.0.1`) is ever bound. Close the server (or use `await using`) at the end of a test
 * so that Deno's resource sanitizer stays happy.
 *
 * @module
 */

/** A reply used instead of the route's body for one of the first hits; see {@link Route.failFirst}. */
export interface FailReply {
  /** The status to reply with, e.g. 503. */
  status: number;
  /** Sent as the `Retry-After` header (seconds as a number, or any string such as an HTTP-date). */
  retryAfter?: number | string;
  /** Extra headers of the failure reply. */
  headers?: Record<string, string>;
  /** Body of the failure reply; the status text by default. */
  body?: string;
}

/** Context handed to a dynamic {@link Route.handler}. */
export interface HandlerContext {
  /** 1-based number of this request to the route's path. */
  hit: number;
  /** Aborted when the server closes. */
  signal: AbortSignal;
}

/**
 * How one path is served. Without `handler`, the route serves `body` (or `file`) with `status` 200,
 * honouring `Range` / `If-Range` unless `acceptRanges` is false, after applying the faults below in this
 * order: `headerDelayMs`, `requireBasicAuth`, `status429RetryAfter`, `failFirst`, then body faults.
 */
export interface Route {
  /** The resource bytes (a string is sent as UTF-8). Empty when neither `body` nor `file` is given. */
  body?: Uint8Array | string;
  /** Path of a local file to stream as the resource (for large bodies: never loaded into memory). */
  file?: string;
  /** Status of the normal reply, default 200. A non-2xx status is sent with `body` (or the status text)
   * and no range support: use it for 404s and friends. */
  status?: number;
  /** `Content-Type` of the normal reply, default `application/octet-stream`. */
  contentType?: string;
  /** Extra headers on every reply of this route (including failures). */
  headers?: Record<string, string>;
  /** Replies for the first hits: `failFirst: [503, 503]` answers the first two hits with 503 and serves the
   * body from the third. Entries may be objects to add `Retry-After`, headers or a body. */
  failFirst?: Array<number | FailReply>;
  /** Shorthand: answer the first hit with `429 Too Many Requests` and this `Retry-After` (seconds or an
   * HTTP-date string). Comes before any `failFirst` entries. */
  status429RetryAfter?: number | string;
  /** Advertise `Accept-Ranges: bytes` and honour `Range`; default true. When false, `Range` is ignored and
   * the full body is sent with 200. */
  acceptRanges?: boolean;
  /** Strong ETag to send (with its quotes, e.g. `"v1"`); default: derived from the content. `false`: none.
   * Read on every request, so a test may change it (or `body`) between requests to simulate a new version. */
  etag?: string | false;
  /** `Last-Modified` value to send; default none. */
  lastModified?: string | Date | false;
  /** Close the connection after this many body bytes of the first `cutTimes` body responses, while the
   * headers announced the full length: the client sees a truncated body / connection error. */
  cutAfterBytes?: number;
  /** How many body responses `cutAfterBytes` applies to; default 1. Use `Infinity` for every one. */
  cutTimes?: number;
  /** Announce this `Content-Length` on full (200) replies instead of the true size, then send the true body
   * and close: a persistent "short body" that never matches its header. */
  declaredLength?: number;
  /** Stop sending for `stallMs` after this many body bytes of the first `stallTimes` body responses. */
  stallAfterBytes?: number;
  /** Length of the stall in milliseconds; default 1000. */
  stallMs?: number;
  /** How many body responses stall; default 1. */
  stallTimes?: number;
  /** Send the body in chunks of `chunkBytes`, sleeping `intervalMs` between chunks (slow but steady). */
  throttle?: { chunkBytes: number; intervalMs: number };
  /** Wait this long before sending the status line and headers, for the first `headerDelayTimes` hits. */
  headerDelayMs?: number;
  /** How many hits `headerDelayMs` applies to; default every hit. */
  headerDelayTimes?: number;
  /** Require this HTTP Basic user and password; otherwise reply 401 with `WWW-Authenticate`. */
  requireBasicAuth?: [string, string];
  /** Use `Transfer-Encoding: chunked` instead of `Content-Length` for the body. */
  chunked?: boolean;
  /** Escape hatch: build the reply yourself. Runs after `headerDelayMs`, `requireBasicAuth`,
   * `status429RetryAfter` and `failFirst`; every other option is ignored. The response is sent with its own
   * `Content-Length` if it sets one, chunked otherwise. If its body stream errors, the connection is cut
   * there; if the handler throws, the connection is closed without a reply. */
  handler?: (req: Request, ctx: HandlerContext) => Response | Promise<Response>;
}

/** One request as the server received it. */
export interface RecordedRequest {
  /** `GET`, `HEAD`, ... */
  method: string;
  /** Path without the query string (what routes are keyed by). */
  path: string;
  /** The request target as sent: path plus query string. */
  target: string;
  /** The request headers as received. */
  headers: Headers;
  /** `performance.now()` when the request head had been read. */
  time: number;
  /** 1-based hit number of this request for its path. */
  hit: number;
}

/** A running fault server; see {@link startFaultServer}. */
export interface FaultServer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  /** The ephemeral port the server listens on. */
  port: number;
  /** Absolute URL for a path (which may include a query string). */
  url(path: string): string;
  /** How many requests reached this path (query strings ignored). */
  hits(path: string): number;
  /** Body bytes written to sockets so far for this path (all replies with the route's body; not failure
   * replies). Lets a test check that a slow reader really slows the sender down (backpressure). */
  bytesSent(path: string): number;
  /** Every request received, in order. */
  requests: RecordedRequest[];
  /** The requests received for one path, in order. */
  requestsFor(path: string): RecordedRequest[];
  /** Stops listening, cuts open connections and waits for the handlers to finish. Idempotent. */
  close(): Promise<void>;
  /** Same as {@link FaultServer.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  410: "Gone",
  416: "Range Not Satisfiable",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

const CHUNK = 64 * 1024;
const encoder = new TextEncoder();

/**
 * Starts a fault-injecting HTTP/1.1 server on 127.0.0.1 with an ephemeral port.
 *
 * @example
 * ```ts ignore
 * await using server = await startFaultServer({
 *   "/ok": { body: "hello" },
 *   "/flaky": { body: new Uint8Array(1 << 20), failFirst: [503, { status: 429, retryAfter: 1 }] },
 *   "/cut": { body: new Uint8Array(1 << 20), cutAfterBytes: 100_000, acceptRanges: false },
 *   "/dyn": { handler: (req, { hit }) => new Response(`hit ${hit} of ${new URL(req.url).search}`) },
 * });
 * const text = await (await fetch(server.url("/ok"))).text(); // "hello"
 * ```
 */
export function startFaultServer(routes: Record<string, Route>): Promise<FaultServer> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" });
  const port = (listener.addr as Deno.NetAddr).port;
  const origin = `http://127.0.0.1:${port}`;
  const closing = new AbortController();
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const hitCount = new Map<string, number>();
  const bodyCount = new Map<string, number>();
  const sentCount = new Map<string, number>();
  const requests: RecordedRequest[] = [];

  const bump = (map: Map<string, number>, key: string) => {
    const n = (map.get(key) ?? 0) + 1;
    map.set(key, n);
    return n;
  };

  async function handle(conn: Deno.Conn): Promise<void> {
    const head = await readHead(conn);
    if (!head) return;
    const target = new URL(head.target, origin);
    const path = target.pathname;
    const hit = bump(hitCount, path);
    requests.push({
      method: head.method,
      path,
      target: head.target,
      headers: head.headers,
      time: performance.now(),
      hit,
    });
    const route = routes[path];
    if (!route) {
      await sendSimple(conn, 404, {}, "Not Found");
      return;
    }
    const extra = route.headers ?? {};
    if (route.headerDelayMs && hit <= (route.headerDelayTimes ?? Infinity)) {
      await sleep(route.headerDelayMs, closing.signal);
    }
    if (route.requireBasicAuth) {
      const [user, pass] = route.requireBasicAuth;
      const expected = "Basic " + base64(encoder.encode(`${user}:${pass}`));
      if (head.headers.get("authorization") !== expected) {
        await sendSimple(conn, 401, { ...extra, "WWW-Authenticate": 'Basic realm="fault-server"' });
        return;
      }
    }
    const fails: FailReply[] = [];
    if (route.status429RetryAfter !== undefined) {
      fails.push({ status: 429, retryAfter: route.status429RetryAfter });
    }
    for (const f of route.failFirst ?? []) fails.push(typeof f === "number" ? { status: f } : f);
    if (hit <= fails.length) {
      const f = fails[hit - 1];
      const h: Record<string, string> = { ...extra, ...f.headers };
      if (f.retryAfter !== undefined) h["Retry-After"] = String(f.retryAfter);
      await sendSimple(conn, f.status, h, f.body);
      return;
    }
    if (route.handler) {
      const req = new Request(target, { method: head.method, headers: head.headers });
      const res = await route.handler(req, { hit, signal: closing.signal });
      await sendResponse(conn, res, head.method === "HEAD");
      return;
    }
    const status = route.status ?? 200;
    if (status < 200 || status > 299) {
      const h = route.contentType ? { "Content-Type": route.contentType, ...extra } : extra;
      const text = typeof route.body === "string" ? route.body : undefined;
      await sendSimple(conn, status, h, text, route.body instanceof Uint8Array ? route.body : undefined);
      return;
    }
    await serveBody(conn, route, head, path, extra);
  }

  async function serveBody(
    conn: Deno.Conn,
    route: Route,
    head: RequestHead,
    path: string,
    extra: Record<string, string>,
  ): Promise<void> {
    const source = await openSource(route);
    try {
      const size = source.size;
      const acceptRanges = route.acceptRanges ?? true;
      const etag = route.etag === false ? undefined : route.etag ?? source.etag;
      const lastModified = !route.lastModified
        ? undefined
        : route.lastModified instanceof Date
        ? route.lastModified.toUTCString()
        : route.lastModified;
      const headers: Record<string, string> = {
        "Content-Type": route.contentType ?? "application/octet-stream",
      };
      if (acceptRanges) headers["Accept-Ranges"] = "bytes";
      if (etag) headers["ETag"] = etag;
      if (lastModified) headers["Last-Modified"] = lastModified;
      Object.assign(headers, extra);

      let start = 0;
      let end = size - 1; // inclusive
      let status = 200;
      const rangeHeader = head.headers.get("range");
      if (rangeHeader && acceptRanges && head.method === "GET") {
        const ifRange = head.headers.get("if-range");
        let ifRangeOk = true;
        if (ifRange !== null) {
          if (ifRange.startsWith('"') || ifRange.startsWith("W/")) {
            // If-Range needs a strong comparison: weak tags never match.
            ifRangeOk = !!etag && !ifRange.startsWith("W/") && !etag.startsWith("W/") && ifRange === etag;
          } else {
            ifRangeOk = !!lastModified && ifRange === lastModified;
          }
        }
        if (ifRangeOk) {
          const range = parseRange(rangeHeader, size);
          if (range === "unsatisfiable") {
            await sendSimple(conn, 416, { ...headers, "Content-Range": `bytes */${size}` });
            return;
          }
          if (range) {
            [start, end] = range;
            status = 206;
            headers["Content-Range"] = `bytes ${start}-${end}/${size}`;
          }
        }
      }
      const length = Math.max(0, end - start + 1);
      if (route.chunked) {
        headers["Transfer-Encoding"] = "chunked";
      } else {
        headers["Content-Length"] = String(
          status === 200 && route.declaredLength !== undefined ? route.declaredLength : length,
        );
      }
      await writeAll(conn, encodeHead(status, headers));
      if (head.method === "HEAD") return;

      const n = bump(bodyCount, path);
      const cutAt = route.cutAfterBytes !== undefined && n <= (route.cutTimes ?? 1)
        ? route.cutAfterBytes
        : undefined;
      const stallAt = route.stallAfterBytes !== undefined && n <= (route.stallTimes ?? 1)
        ? route.stallAfterBytes
        : undefined;
      const chunkSize = route.throttle?.chunkBytes ?? CHUNK;
      let sent = 0;
      let stalled = false;
      let first = true;
      for await (let chunk of source.read(start, length, chunkSize)) {
        if (route.throttle && !first) await sleep(route.throttle.intervalMs, closing.signal);
        first = false;
        while (chunk.byteLength > 0) {
          let take = chunk.byteLength;
          if (stallAt !== undefined && !stalled) take = Math.min(take, stallAt - sent);
          if (cutAt !== undefined) take = Math.min(take, cutAt - sent);
          if (take > 0) {
            await writeChunk(conn, chunk.subarray(0, take), route.chunked);
            sent += take;
            sentCount.set(path, (sentCount.get(path) ?? 0) + take);
            chunk = chunk.subarray(take);
          }
          if (cutAt !== undefined && sent >= cutAt) return; // the caller closes the socket: a cut
          if (stallAt !== undefined && !stalled && sent >= stallAt) {
            stalled = true;
            await sleep(route.stallMs ?? 1000, closing.signal);
          }
        }
      }
      if (route.chunked) await writeAll(conn, encoder.encode("0\r\n\r\n"));
    } finally {
      source.close();
    }
  }

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        const task = handle(conn)
          .catch(() => {/* client went away, or the server is closing */})
          .finally(() => {
            conns.delete(conn);
            closeQuietly(conn);
          });
        tasks.add(task);
        task.finally(() => tasks.delete(task));
      }
    } catch {
      // listener closed
    }
  })();

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      closing.abort();
      closeQuietly(listener);
      for (const conn of conns) closeQuietly(conn);
      await accepting;
      await Promise.allSettled([...tasks]);
    })();

  return Promise.resolve({
    origin,
    port,
    url: (path: string) => origin + (path.startsWith("/") ? path : "/" + path),
    hits: (path: string) => hitCount.get(path) ?? 0,
    bytesSent: (path: string) => sentCount.get(path) ?? 0,
    requests,
    requestsFor: (path: string) => requests.filter((r) => r.path === path),
    close,
    [Symbol.asyncDispose]: close,
  });
}

interface RequestHead {
  method: string;
  target: string;
  headers: Headers;
}

interface Source {
  size: number;
  etag: string;
  read(start: number, length: number, chunkSize: number): AsyncIterable<Uint8Array>;
  close(): void;
}

async function openSource(route: Route): Promise<Source> {
  if (route.file !== undefined) {
    const file = await Deno.open(route.file, { read: true });
    const info = await file.stat();
    return {
      size: info.size,
      etag: `"f${info.size.toString(16)}-${(info.mtime?.getTime() ?? 0).toString(16)}"`,
      async *read(start, length, chunkSize) {
        await file.seek(start, Deno.SeekMode.Start);
        let left = length;
        while (left > 0) {
          const buf = new Uint8Array(Math.min(chunkSize, left));
          const n = await file.read(buf);
          if (n === null) return;
          left -= n;
          yield buf.subarray(0, n);
        }
      },
      close: () => closeQuietly(file),
    };
  }
  const bytes = typeof route.body === "string" ? encoder.encode(route.body) : route.body ?? new Uint8Array();
  return {
    size: bytes.byteLength,
    etag: contentTag(bytes),
    async *read(start, length, chunkSize) {
      for (let i = start; i < start + length; i += chunkSize) {
        yield bytes.subarray(i, Math.min(i + chunkSize, start + length));
      }
    },
    close: () => {},
  };
}

const tagCache = new WeakMap<Uint8Array, string>();

/** A strong ETag from the content (FNV-1a + length): changes when a test swaps the body. */
function contentTag(bytes: Uint8Array): string {
  let tag = tagCache.get(bytes);
  if (tag === undefined) {
    let h = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
    tag = `"b${bytes.length.toString(16)}-${(h >>> 0).toString(16)}"`;
    tagCache.set(bytes, tag);
  }
  return tag;
}

/** Parses a single `bytes=` range. `null` means "ignore the header" (serve 200). */
function parseRange(header: string, size: number): [number, number] | "unsatisfiable" | null {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return null; // malformed or multi-range: ignored
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return [start, end];
}

async function readHead(conn: Deno.Conn): Promise<RequestHead | null> {
  let buf = new Uint8Array(0);
  const tmp = new Uint8Array(8192);
  while (true) {
    const n = await conn.read(tmp);
    if (n === null) return null;
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(tmp.subarray(0, n), buf.length);
    buf = next;
    const text = new TextDecoder("latin1").decode(buf);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const [requestLine, ...lines] = text.slice(0, end).split("\r\n");
      const [method, target] = requestLine.split(" ");
      const headers = new Headers();
      for (const line of lines) {
        const i = line.indexOf(":");
        if (i > 0) headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
      }
      return { method, target, headers };
    }
    if (buf.length > 64 * 1024) return null;
  }
}

function encodeHead(status: number, headers: Record<string, string> | Headers): Uint8Array {
  let text = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Status"}\r\n`;
  const entries = headers instanceof Headers ? [...headers] : Object.entries(headers);
  for (const [k, v] of entries) text += `${k}: ${v}\r\n`;
  text += `Date: ${new Date().toUTCString()}\r\nConnection: close\r\n\r\n`;
  return encoder.encode(text);
}

async function sendSimple(
  conn: Deno.Conn,
  status: number,
  headers: Record<string, string>,
  text?: string,
  bytes?: Uint8Array,
): Promise<void> {
  const body = bytes ?? encoder.encode(text ?? STATUS_TEXT[status] ?? "");
  const h: Record<string, string> = { "Content-Type": "text/plain; charset=utf-8", ...headers };
  h["Content-Length"] = String(body.byteLength);
  await writeAll(conn, encodeHead(status, h));
  await writeAll(conn, body);
}

async function sendResponse(conn: Deno.Conn, res: Response, headOnly: boolean): Promise<void> {
  const headers = new Headers(res.headers);
  headers.delete("connection");
  headers.delete("transfer-encoding");
  const chunked = !headers.has("content-length");
  if (chunked) headers.set("Transfer-Encoding", "chunked");
  await writeAll(conn, encodeHead(res.status, headers));
  if (headOnly || !res.body) {
    await res.body?.cancel();
    if (chunked && !headOnly) await writeAll(conn, encoder.encode("0\r\n\r\n"));
    return;
  }
  const reader = res.body.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read(); // an error here cuts the connection
      if (done) break;
      if (value.byteLength) await writeChunk(conn, value, chunked);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  if (chunked) await writeAll(conn, encoder.encode("0\r\n\r\n"));
}

async function writeChunk(conn: Deno.Conn, data: Uint8Array, chunked?: boolean): Promise<void> {
  if (!chunked) return await writeAll(conn, data);
  await writeAll(conn, encoder.encode(data.byteLength.toString(16) + "\r\n"));
  await writeAll(conn, data);
  await writeAll(conn, encoder.encode("\r\n"));
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.byteLength) off += await conn.write(data.subarray(off));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}
