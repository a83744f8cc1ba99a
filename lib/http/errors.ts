/**
 * The errors of `lib/http`: {@link HttpError}, the one callers see, and `TimeoutMark`, the internal abort
 * reason by which a connect or read timeout is recognised.
 *
 * @module
 */

/**
 * A failed GET. The message names the method, the redacted URL and the reason, e.g.
 * `GET https://host/path?key=***: HTTP 404 Not Found`; it never contains credentials or query values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pathToFileURL } from "node:url";
 * import { HttpError } from "./errors.ts";
 * import { fetchWithRetries } from "./fetch_with_retries.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const url = pathToFileURL(`${dir}/missing.csv`).href;
 * const error = await fetchWithRetries({ url }, (body) => body.cancel()).catch((e) => e);
 * assert.ok(error instanceof HttpError);
 * assert.equal(error.status, 404);
 * assert.equal(error.message, `GET ${url}: file not found`);
 * await Deno.remove(dir);
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
  /**
   * A redirect the step may not follow: its target (not redacted: redact before showing it) and the
   * `host:port` missing from the step's net permission.
   */
  redirectedTo?: { url: string; host: string };

  /** `message` must already be redacted; `options.url` too. */
  constructor(
    message: string,
    options: {
      url: string;
      status?: number;
      attempts?: number;
      redirectedTo?: { url: string; host: string };
    },
  ) {
    super(message);
    this.url = options.url;
    this.status = options.status;
    this.attempts = options.attempts;
    this.redirectedTo = options.redirectedTo;
  }
}

/** A timeout, used as an AbortController reason so that it can be recognised. */
export class TimeoutMark extends Error {
  /** Always `"TimeoutError"`. */
  override name = "TimeoutError";
}
