/**
 * `fetch` for AWS requests: a deadline for the response's headers, and network failures carrying the
 * Node-style codes the SDK's retry strategy (and lakerun's own retries) recognise as transient.
 *
 * @module
 */

/** How long a request may wait for the response's headers (the body has its own watchdog in reads). */
export const AWS_RESPONSE_TIMEOUT_MS = 120_000;

/** Node-style codes for fetch's network failures, which the SDK's retry strategy recognises as transient. */
const NETWORK_CODES: Array<[RegExp, string]> = [
  [/connection refused/i, "ECONNREFUSED"],
  [/dns error|failed to lookup|name or service not known|no address/i, "ENOTFOUND"],
  [/timed? ?out/i, "ETIMEDOUT"],
  [/unreachable/i, "EHOSTUNREACH"],
];

/**
 * `fetch` for AWS clients (the S3 SDK client and lakerun's JSON-protocol client): a response whose headers do not arrive within {@link AWS_RESPONSE_TIMEOUT_MS}
 * fails with a `TimeoutError`, and network failures carry a Node-style `code` (`ECONNREFUSED`, `ENOTFOUND`,
 * `ETIMEDOUT`, else `ECONNRESET`), so that the SDK retries them and error explanations can name them.
 * Permission refusals and aborts pass unchanged.
 *
 * @example A refused connection carries its code
 * ```ts
 * import assert from "node:assert/strict";
 * import { awsFetch } from "./fetch.ts";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * listener.close(); // nothing listens on that port any more
 * const error = await awsFetch(`http://127.0.0.1:${listener.addr.port}/`).catch((e) => e);
 * assert.equal(error.name, "NetworkError");
 * assert.equal(error.code, "ECONNREFUSED");
 * ```
 *
 * @example In an SDK client
 * ```ts
 * import { S3Client } from "@aws-sdk/client-s3";
 * import { FetchHttpHandler } from "@smithy/fetch-http-handler";
 * import { awsFetch } from "./fetch.ts";
 *
 * const client = new S3Client({
 *   region: "eu-west-1",
 *   requestHandler: new FetchHttpHandler({ customFetch: awsFetch }),
 * });
 * client.destroy();
 * ```
 */
export async function awsFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const request = new Request(input, init);
  const timeout = new AbortController();
  const timer = setTimeout(
    () => timeout.abort(Object.assign(new Error("no response in time"), { name: "TimeoutError" })),
    AWS_RESPONSE_TIMEOUT_MS,
  );
  try {
    return await fetch(request, { signal: AbortSignal.any([request.signal, timeout.signal]) });
  } catch (error) {
    if (timeout.signal.aborted) throw timeout.signal.reason;
    if (!(error instanceof TypeError)) throw error;
    const text = `${error.message} ${(error.cause as Error | undefined)?.message ?? ""}`;
    const code = NETWORK_CODES.find(([pattern]) => pattern.test(text))?.[1] ?? "ECONNRESET";
    throw Object.assign(new Error(error.message, { cause: error }), { name: "NetworkError", code });
  } finally {
    clearTimeout(timer);
  }
}
