/**
 * What `fetchWithRetries` tells its callbacks: the {@link BodyInfo} handed to `consume` with each body, and
 * the optional {@link HttpEvents}.
 *
 * @module
 */

/**
 * What is known about the body handed to `consume`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pathToFileURL } from "node:url";
 * import type { BodyInfo } from "./callbacks.ts";
 * import { fetchWithRetries } from "./fetch_with_retries.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.csv`, "a,b\n1,2\n");
 * const infos: BodyInfo[] = [];
 * const url = pathToFileURL(`${dir}/a.csv`).href;
 * const text = await fetchWithRetries({ url }, (body, info: BodyInfo) => {
 *   infos.push(info);
 *   return new Response(body).text();
 * });
 * assert.equal(text, "a,b\n1,2\n");
 * assert.deepEqual(infos.map(({ status, contentLength, attempt }) => ({ status, contentLength, attempt })), [
 *   { status: 200, contentLength: 8, attempt: 1 },
 * ]);
 * await Deno.remove(dir, { recursive: true });
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
 * import assert from "node:assert/strict";
 * import { pathToFileURL } from "node:url";
 * import type { HttpEvents } from "./callbacks.ts";
 * import { fetchWithRetries } from "./fetch_with_retries.ts";
 *
 * const progress: string[] = [];
 * const events: HttpEvents = {
 *   onRetry: ({ attempt, delayMs, reason }) => console.error(`attempt ${attempt} in ${delayMs} ms: ${reason}`),
 *   onProgress: (bytes, total) => progress.push(`${bytes}/${total ?? "?"}`),
 * };
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.csv`, "a,b\n1,2\n");
 * const url = pathToFileURL(`${dir}/a.csv`).href;
 * await fetchWithRetries({ url }, (body) => body.pipeTo(new WritableStream()), events);
 * assert.deepEqual(progress, ["8/8"]); // a `file:` URL is read once: never a retry
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface HttpEvents {
  /** Before every sleep that precedes another attempt. `attempt` is the attempt about to be made. */
  onRetry?(info: { attempt: number; delayMs: number; reason: string }): void;
  /** After every chunk received: bytes received so far in this body (reset on restart; counted before
   * content decoding, like `total`, which is the announced length). */
  onProgress?(bytes: number, total?: number): void;
}
