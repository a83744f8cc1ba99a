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
