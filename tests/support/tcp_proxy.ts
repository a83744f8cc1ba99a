/**
 * A loopback TCP proxy in front of a real server that injects connection faults: a connection closed before
 * any answer, an answer cut after some bytes, an answer that stalls, an answer with one byte flipped. It also records the HTTP request lines
 * that went through, so a test can count the requests an operation made.
 *
 * @example
 * ```ts ignore
 * await using proxy = startFaultProxy(7480, (n) => (n === 0 ? { closeAtOnce: true } : {}));
 * // talk to http://127.0.0.1:${proxy.port}
 * ```
 *
 * @module
 */

/** What happens to one connection (by its index, from 0). */
export interface ConnectionFault {
  /** Close the client's connection as soon as its request arrives, forwarding nothing. */
  closeAtOnce?: boolean;
  /** Close the connection after this many bytes of the server's answer. */
  cutAfter?: number;
  /** Stop forwarding (but keep the connection open) after this many bytes of the server's answer. */
  stallAfter?: number;
  /** Flip the bits of the byte at this offset of the server's answers (counted from the connection's start). */
  corruptAt?: number;
}

/** A running proxy. */
export interface FaultProxy extends AsyncDisposable {
  /** The loopback port it listens on. */
  port: number;
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** Connections accepted so far. */
  connections: number;
  /** Request lines seen so far (`"PUT /bucket/key HTTP/1.1"`), in order. */
  requests: string[];
}

const REQUEST_LINE = /^(GET|HEAD|PUT|POST|DELETE) \S+ HTTP\/1\.1$/gm;

/**
 * Starts a proxy on a free loopback port forwarding to `127.0.0.1:targetPort`, with `plan(index)` deciding
 * the fault of each connection (`{}`: none).
 */
export function startFaultProxy(
  targetPort: number,
  plan: (index: number) => ConnectionFault = () => ({}),
): FaultProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const decoder = new TextDecoder("latin1");
  const proxy: FaultProxy = {
    port: (listener.addr as Deno.NetAddr).port,
    endpoint: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    connections: 0,
    requests: [],
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of open) close(conn);
      await accepting.catch(() => {});
    },
  };
  const close = (conn: Deno.Conn) => {
    open.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  };

  const serve = async (client: Deno.Conn, fault: ConnectionFault) => {
    open.add(client);
    if (fault.closeAtOnce) {
      await client.read(new Uint8Array(65536)).catch(() => null);
      close(client);
      return;
    }
    const server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    open.add(server);
    const upstream = (async () => {
      const buffer = new Uint8Array(65536);
      while (true) {
        const n = await client.read(buffer).catch(() => null);
        if (n === null) break;
        for (const match of decoder.decode(buffer.subarray(0, n)).matchAll(REQUEST_LINE)) {
          proxy.requests.push(match[0]);
        }
        for (let at = 0; at < n;) at += await server.write(buffer.subarray(at, n));
      }
    })().catch(() => {});
    const downstream = (async () => {
      const buffer = new Uint8Array(65536);
      let sent = 0;
      const limit = fault.cutAfter ?? fault.stallAfter ?? Infinity;
      while (sent < limit) {
        const n = await server.read(buffer.subarray(0, Math.min(buffer.length, limit - sent)));
        if (n === null) break;
        const corrupt = fault.corruptAt;
        if (corrupt !== undefined && corrupt >= sent && corrupt < sent + n) buffer[corrupt - sent] ^= 0xff;
        for (let at = 0; at < n;) at += await client.write(buffer.subarray(at, n));
        sent += n;
      }
      if (fault.stallAfter !== undefined && sent >= fault.stallAfter) {
        await new Promise<void>((resolve) => {
          const poll = setInterval(() => {
            if (!open.has(client)) {
              clearInterval(poll);
              resolve();
            }
          }, 50);
        });
      }
    })().catch(() => {});
    await Promise.race([upstream, downstream]);
    close(client);
    close(server);
  };

  const accepting = (async () => {
    for await (const conn of listener) {
      serve(conn, plan(proxy.connections++)).catch(() => {});
    }
  })();
  return proxy;
}
