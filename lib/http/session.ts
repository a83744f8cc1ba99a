/**
 * The retry budget and the request machinery ({@link Session}) shared by the first GET, resumes and
 * restarts of one `fetchWithRetries` call: backoff between attempts, the connect timeout, and the messages
 * (always redacted) of the failures.
 *
 * @module
 */

import { plural } from "../format.ts";
import type { HttpEvents } from "./callbacks.ts";
import { HttpError, TimeoutMark } from "./errors.ts";
import { Exchange, linkAbort } from "./exchange.ts";
import { type PreparedRequest, redactUrl, type RequestSpec, timeoutsMs } from "./request.ts";
import {
  DEFAULT_RETRIES,
  DEFAULT_RETRY_DELAY_S,
  isRetryableFetchError,
  isRetryableStatus,
  parseRetryAfter,
  retryDelayMs,
  sleep,
} from "./retry.ts";

/** The retry budget and the request machinery shared by the first GET, resumes and restarts. */
export class Session {
  /** `1 + retries`: the attempts allowed in total. */
  readonly maxAttempts: number;
  /** Attempts (requests) made so far. */
  used = 0;
  /** Connect timeout: the longest wait for the response headers (`Infinity`: none). */
  readonly connectMs: number;
  /** Read timeout: the longest wait between two body chunks (`Infinity`: none). */
  readonly readMs: number;
  /** The redacted URL, as messages and errors show it. */
  readonly redacted: string;
  private readonly baseDelayMs: number;

  /** Validates `spec.retries`, `spec.retryDelay` and `spec.timeout` (TypeError when invalid). */
  constructor(readonly spec: RequestSpec, readonly target: PreparedRequest, readonly events: HttpEvents) {
    const retries = spec.retries ?? DEFAULT_RETRIES;
    if (!Number.isInteger(retries) || retries < 0) throw new TypeError(`retries must be an integer >= 0`);
    this.maxAttempts = retries + 1;
    const delay = spec.retryDelay ?? DEFAULT_RETRY_DELAY_S;
    if (!(delay >= 0)) throw new TypeError(`retryDelay must be >= 0 seconds`);
    this.baseDelayMs = delay * 1000;
    [this.connectMs, this.readMs] = timeoutsMs(spec.timeout);
    this.redacted = redactUrl(target.url.href);
  }

  /** The caller's signal (`spec.signal`). */
  get signal(): AbortSignal | undefined {
    return this.spec.signal;
  }

  /** `GET <redacted url>: <what>` */
  message(what: string): string {
    return `GET ${this.redacted}: ${what}`;
  }

  /** The final error once the budget is spent: `GET <url>: failed after N attempts; last error: <reason>`. */
  exhausted(reason: string, status?: number): HttpError {
    const n = this.used;
    return new HttpError(
      this.message(`failed after ${plural(n, "attempt")}; last error: ${reason}`),
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

  /** A redacted one-line reason for a failed fetch or read: a read timeout, or the error's `cause` chain. */
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
        const delayMs = retryDelayMs(this.used, this.baseDelayMs, retryAfterMs);
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
      if (isRetryableStatus(res.status)) {
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
  private async request(
    range: { from: number; ifRange: string } | undefined,
    signal?: AbortSignal,
  ): Promise<Exchange> {
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
      if (ctrl.signal.aborted) throw ctrl.signal.reason;
      if (isPermissionError(err) && (this.spec.redirect ?? "follow") === "follow") {
        const blocked = await this.blockedRedirect(headers, signal).catch(() => undefined);
        if (blocked) {
          throw new HttpError(
            this.message(
              `redirected to ${
                redactUrl(blocked.url)
              }, a host this step may not reach (${blocked.host} is not in ` +
                `its net permission)`,
            ),
            { url: this.redacted, redirectedTo: blocked },
          );
        }
      }
      throw err;
    } finally {
      unlink();
      clearTimeout(timer);
    }
  }

  /**
   * After fetch was refused the network: follows the redirects one by one (without their bodies) to the
   * first target whose `host:port` this step may not reach, so that the error can name it; `undefined` when
   * there is none (the refusal was not about a redirect).
   */
  private async blockedRedirect(
    headers: Headers,
    signal?: AbortSignal,
  ): Promise<{ url: string; host: string } | undefined> {
    let url = this.target.url;
    for (let hop = 0; hop < 20; hop++) {
      const response = await fetch(url, { headers, redirect: "manual", signal });
      await response.body?.cancel();
      const location = response.headers.get("location");
      if (response.status < 300 || response.status >= 400 || !location) return undefined;
      const next = new URL(location, url);
      const port = next.port || (next.protocol === "https:" ? "443" : "80");
      const host = `${next.hostname}:${port}`;
      if ((await Deno.permissions.query({ name: "net", host })).state !== "granted") {
        return { url: next.href, host };
      }
      url = next;
    }
    return undefined;
  }
}

/** Deno's refusal of an operation the permissions do not allow. */
function isPermissionError(err: unknown): boolean {
  return err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied;
}
