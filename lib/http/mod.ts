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

export type { BodyInfo, HttpEvents } from "./callbacks.ts";
export { HttpError } from "./errors.ts";
export { fetchWithRetries } from "./fetch_with_retries.ts";
export { netPermissionFor, type ParamValue, percentDecoded, redactUrl, type RequestSpec } from "./request.ts";
