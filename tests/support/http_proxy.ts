/**
 * A loopback HTTP proxy in front of a real S3 server that can rewrite answers (to drop a listing's
 * continuation token, say) and records every request that went through. Requests are forwarded with their
 * own `Host` header, so SigV4 signatures made for the proxy's address still verify at the server.
 * (tests/support/tcp_proxy.ts injects connection faults instead.)
 *
 * @example
 * ```ts ignore
 * await using proxy = await startHttpProxy(server.endpoint, (request, body) =>
 *   request.query.has("list-type") ? body.replace(/<NextContinuationToken>[^<]*<\/NextContinuationToken>/, "") : body
 * );
 * // talk to proxy.endpoint; proxy.requests lists "GET /bucket?list-type=2…" and so on
 * ```
 *
 * @module
 */
import { request as httpRequest } from "node:http";

/** A request the proxy forwarded. */
export interface ProxiedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  query: URLSearchParams;
}

/** A running proxy. */
export interface HttpProxy extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** Every request forwarded so far, in order. */
  requests: ProxiedRequest[];
}

/**
 * Starts a proxy on a free loopback port forwarding to `target` (`http://127.0.0.1:PORT`); `rewrite`, when
 * given, gets each answer's body as text and returns the body to send instead.
 */
export function startHttpProxy(
  target: string,
  rewrite?: (request: ProxiedRequest, body: string) => string,
): HttpProxy {
  const to = new URL(target);
  const requests: ProxiedRequest[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const proxied = { method: req.method, path: url.pathname + url.search, query: url.searchParams };
    requests.push(proxied);
    const body = new Uint8Array(await req.arrayBuffer());
    const answer = await new Promise<{ status: number; headers: Headers; body: Uint8Array<ArrayBuffer> }>(
      (resolve, reject) => {
        const out = httpRequest({
          host: to.hostname,
          port: Number(to.port),
          method: req.method,
          path: proxied.path,
          headers: Object.fromEntries(req.headers),
        }, (res) => {
          const chunks: Uint8Array<ArrayBuffer>[] = [];
          res.on("data", (chunk: Uint8Array) => chunks.push(new Uint8Array(chunk)));
          res.on("error", reject);
          res.on("end", async () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
            }
            resolve({
              status: res.statusCode ?? 502,
              headers,
              body: new Uint8Array(await new Blob(chunks).arrayBuffer()),
            });
          });
        });
        out.on("error", reject);
        out.end(body);
      },
    );
    let sent: Uint8Array<ArrayBuffer> | null = answer.body;
    if (rewrite && answer.body.byteLength > 0) {
      sent = new TextEncoder().encode(rewrite(proxied, new TextDecoder().decode(answer.body)));
      answer.headers.set("content-length", String(sent.byteLength));
    }
    if (req.method === "HEAD" || answer.status === 204 || answer.status === 304) sent = null;
    answer.headers.delete("transfer-encoding");
    return new Response(sent, { status: answer.status, headers: answer.headers });
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}
