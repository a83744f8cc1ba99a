/**
 * {@link fetchWithRetries}: the GET loop that hands bodies to `consume` and starts over when a body must be
 * restarted.
 *
 * @module
 */

import type { BodyInfo, HttpEvents } from "./callbacks.ts";
import type { Exchange } from "./exchange.ts";
import { fetchFile } from "./file_url.ts";
import { prepareRequest, type RequestSpec } from "./request.ts";
import { ResumableBody } from "./resumable_body.ts";
import { Session } from "./session.ts";

/**
 * GETs `spec.url` and hands the body to `consume`; retries, resumes and restarts as described in the
 * `lib/http/mod.ts` module documentation; returns what `consume` returns.
 *
 * Failures: HTTP 5xx, 408 and 429, connection errors and timeouts are retried with backoff; any other
 * non-2xx status fails at once with an {@link HttpError} carrying `status`. After the last attempt it
 * fails with an {@link HttpError} like `GET <url>: failed after 4 attempts; last error: HTTP 503 ...`.
 * An abort through `spec.signal` rejects with `signal.reason`.
 *
 * `consume` must be restartable: it may be called again with a fresh body after the previous body errored
 * (see the `lib/http/mod.ts` module documentation); it must let errors from the body propagate. A
 * rejection of `consume` while its body had not errored (its own failure) is passed through without retry.
 * Failures that happen while the body is being read (retries exhausted during a resume, a 404 on a resume,
 * an abort) error the body stream, so they reach the caller through `consume`'s rejection, as `consume`
 * rethrew them.
 *
 * @example Downloading to a file that every (re)start truncates
 * ```ts ignore
 * import { fetchWithRetries } from "./fetch_with_retries.ts";
 *
 * const tmp = await Deno.makeTempFile();
 * const size = await fetchWithRetries(
 *   { url: "https://example.com/data.zip", params: { year: 2024 }, timeout: [10, 60] },
 *   async (body, info) => {
 *     const file = await Deno.open(tmp, { write: true, truncate: true }); // restart-safe
 *     await body.pipeTo(file.writable);
 *     return info.contentLength;
 *   },
 *   { onRetry: ({ attempt, reason }) => console.error(`retry ${attempt}: ${reason}`) },
 * );
 * ```
 *
 * @example Reading a local `file:` URL, with the same contract
 * ```ts
 * import assert from "node:assert/strict";
 * import { pathToFileURL } from "node:url";
 * import { fetchWithRetries } from "./fetch_with_retries.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.csv`, "a,b\n");
 * const url = pathToFileURL(`${dir}/a.csv`).href;
 * const size = await fetchWithRetries({ url }, async (body, info) => {
 *   await body.pipeTo(new WritableStream());
 *   return info.contentLength;
 * });
 * assert.equal(size, 4);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function fetchWithRetries<T>(
  spec: RequestSpec,
  consume: (body: ReadableStream<Uint8Array>, info: BodyInfo) => Promise<T>,
  events: HttpEvents = {},
): Promise<T> {
  spec.signal?.throwIfAborted();
  const target = prepareRequest(spec);
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
