import assert from "node:assert/strict";
import {
  type BodyInfo,
  fetchWithRetries,
  HttpError,
  type HttpEvents,
  netPermissionFor,
  redactUrl,
  type RequestSpec,
} from "../lib/http/mod.ts";
import { startFaultServer } from "./support/fault_server.ts";

// ---------------------------------------------------------------------------------------------------------
// helpers

function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function collect(body: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(body).arrayBuffer());
}

/** Runs fetchWithRetries with a consume that collects the body, recording every call. */
async function download(spec: RequestSpec, events: HttpEvents = {}) {
  const calls: BodyInfo[] = [];
  const retries: Array<{ attempt: number; delayMs: number; reason: string }> = [];
  const bytes = await fetchWithRetries(
    { retryDelay: 0.01, ...spec },
    (body, info) => {
      calls.push({ ...info });
      return collect(body);
    },
    { onRetry: (r) => retries.push(r), ...events },
  );
  return { bytes, calls, retries };
}

const FAST = { retryDelay: 0.01 } as const;

// ---------------------------------------------------------------------------------------------------------
// retries on status

Deno.test("503s then success", async () => {
  const body = randomBytes(200_000);
  await using server = await startFaultServer({ "/f": { body, failFirst: [503, 503] } });
  const { bytes, calls, retries } = await download({ url: server.url("/f") });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(server.hits("/f"), 3);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].attempt, 3);
  assert.equal(calls[0].contentLength, body.length);
  assert.deepEqual(retries.map((r) => [r.attempt, r.reason]), [
    [2, "HTTP 503 Service Unavailable"],
    [3, "HTTP 503 Service Unavailable"],
  ]);
  for (const r of retries) {
    assert.ok(r.delayMs >= 0 && r.delayMs <= 20, `full jitter within the cap: ${r.delayMs}`);
  }
});

Deno.test("408 and 500 are retried too", async () => {
  await using server = await startFaultServer({ "/f": { body: "ok", failFirst: [408, 500] } });
  const { bytes } = await download({ url: server.url("/f") });
  assert.equal(new TextDecoder().decode(bytes), "ok");
  assert.equal(server.hits("/f"), 3);
});

Deno.test("429 with Retry-After seconds is honoured", async () => {
  await using server = await startFaultServer({ "/r": { body: "fine", status429RetryAfter: 1 } });
  const { bytes, retries } = await download({ url: server.url("/r") });
  assert.equal(new TextDecoder().decode(bytes), "fine");
  assert.equal(retries.length, 1);
  assert.equal(retries[0].delayMs, 1000);
  assert.equal(retries[0].reason, "HTTP 429 Too Many Requests");
  const [a, b] = server.requestsFor("/r");
  assert.ok(b.time - a.time >= 950, `second request came ${b.time - a.time} ms after the first`);
});

Deno.test("429 with Retry-After as an HTTP-date is honoured", async () => {
  const when = new Date(Date.now() + 2500).toUTCString(); // second resolution: 1.5–2.5 s from now
  await using server = await startFaultServer({
    "/r": { body: "fine", failFirst: [{ status: 429, retryAfter: when }] },
  });
  const { retries } = await download({ url: server.url("/r") });
  assert.equal(retries.length, 1);
  assert.ok(retries[0].delayMs > 1000, `delay ${retries[0].delayMs}`);
  const [a, b] = server.requestsFor("/r");
  assert.ok(
    b.time - a.time >= retries[0].delayMs - 50,
    `second request came ${b.time - a.time} ms after the first`,
  );
});

Deno.test("Retry-After is capped at 120 s, and an abort interrupts the backoff sleep", async () => {
  await using server = await startFaultServer({ "/r": { body: "x", status429RetryAfter: 100_000 } });
  const ctrl = new AbortController();
  const delays: number[] = [];
  const started = performance.now();
  await assert.rejects(
    fetchWithRetries({ url: server.url("/r"), signal: ctrl.signal, ...FAST }, collect, {
      onRetry: ({ delayMs }) => {
        delays.push(delayMs);
        setTimeout(() => ctrl.abort(new Error("user gave up")), 50);
      },
    }),
    /user gave up/,
  );
  assert.deepEqual(delays, [120_000]);
  assert.ok(performance.now() - started < 10_000);
  assert.equal(server.hits("/r"), 1);
});

// ---------------------------------------------------------------------------------------------------------
// resume and restart

Deno.test("cut mid-body with range support: resumed into the same stream", async () => {
  const body = randomBytes(1_000_000);
  await using server = await startFaultServer({ "/z": { body, cutAfterBytes: 300_000, etag: '"v1"' } });
  const progress: number[] = [];
  const { bytes, calls, retries } = await download({ url: server.url("/z") }, {
    onProgress: (n) => progress.push(n),
  });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(calls.length, 1, "consume was called once");
  assert.equal(server.hits("/z"), 2);
  const resume = server.requestsFor("/z")[1].headers;
  assert.equal(resume.get("range"), "bytes=300000-");
  assert.equal(resume.get("if-range"), '"v1"');
  assert.equal(server.requestsFor("/z")[0].headers.get("range"), null);
  assert.equal(retries.length, 1);
  assert.match(retries[0].reason, /after 300000 of 1000000 bytes/);
  assert.equal(progress.at(-1), body.length);
});

Deno.test("resume uses Last-Modified when there is no ETag, and BodyInfo.resumedFrom is updated", async () => {
  const body = randomBytes(500_000);
  const lastModified = "Wed, 21 Oct 2015 07:28:00 GMT";
  await using server = await startFaultServer({
    "/lm": { body, cutAfterBytes: 123_456, etag: false, lastModified },
  });
  let info: BodyInfo | undefined;
  const bytes = await fetchWithRetries({ url: server.url("/lm"), ...FAST }, (b, i) => {
    info = i;
    return collect(b);
  });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(server.requestsFor("/lm")[1].headers.get("if-range"), lastModified);
  assert.equal(info?.resumedFrom, 123_456);
  assert.equal(info?.attempt, 1);
});

Deno.test("several cuts are resumed while the retry budget lasts", async () => {
  const body = randomBytes(400_000);
  await using server = await startFaultServer({ "/m": { body, cutAfterBytes: 50_000, cutTimes: 3 } });
  const { bytes, calls } = await download({ url: server.url("/m"), retries: 3 });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(calls.length, 1);
  assert.deepEqual(
    server.requestsFor("/m").map((r) => r.headers.get("range")),
    [null, "bytes=50000-", "bytes=100000-", "bytes=150000-"],
  );
});

Deno.test("the body is a byte stream: a reader's own buffer is filled and handed back, across cuts and resumes", async () => {
  const body = randomBytes(400_000);
  await using server = await startFaultServer({ "/b": { body, cutAfterBytes: 50_000, cutTimes: 3 } });
  const { bytes, sizes } = await fetchWithRetries(
    { url: server.url("/b"), retries: 3, ...FAST },
    async (stream) => {
      const reader = stream.getReader({ mode: "byob" }); // throws unless the body is a byte stream
      const parts: Uint8Array<ArrayBuffer>[] = [];
      const sizes = new Set<number>();
      let buffer = new Uint8Array(10_000);
      for (;;) {
        const { done, value } = await reader.read(buffer);
        if (done) break;
        parts.push(new Uint8Array(value));
        sizes.add(value.buffer.byteLength);
        buffer = new Uint8Array(value.buffer); // the same memory, read into again
      }
      return { bytes: new Uint8Array(await new Blob(parts).arrayBuffer()), sizes };
    },
  );
  assert.equal(await sha256(bytes), await sha256(body));
  assert.deepEqual([...sizes], [10_000], "every chunk came in the reader's own 10,000-byte buffer");
  assert.equal(server.hits("/b"), 4);
});

Deno.test("cuts beyond the retry budget fail with the attempts and the last reason", async () => {
  const body = randomBytes(400_000);
  await using server = await startFaultServer({ "/m": { body, cutAfterBytes: 50_000, cutTimes: Infinity } });
  let calls = 0;
  const err = await fetchWithRetries({ url: server.url("/m"), retries: 2, ...FAST }, (b) => {
    calls++;
    return collect(b);
  }).then(() => assert.fail("should have failed"), (e) => e);
  assert.ok(err instanceof HttpError, String(err));
  assert.match(
    err.message,
    /failed after 3 attempts; last error: connection error: .* after 150000 of 400000 bytes/,
  );
  assert.equal(err.attempts, 3);
  assert.equal(calls, 1);
  assert.equal(server.hits("/m"), 3);
});

Deno.test("cut mid-body without range support: consume restarted from scratch", async () => {
  const body = randomBytes(600_000);
  await using server = await startFaultServer({
    "/n": { body, cutAfterBytes: 200_000, acceptRanges: false },
  });
  const seen: number[] = [];
  const results: string[] = [];
  const bytes = await fetchWithRetries({ url: server.url("/n"), ...FAST }, async (b, info) => {
    seen.push(info.attempt);
    const out = await collect(b);
    results.push(await sha256(out));
    return out;
  });
  assert.deepEqual(seen, [1, 2], "consume was called twice");
  assert.equal(results.length, 1, "the first consume never completed");
  assert.equal(await sha256(bytes), await sha256(body));
  assert.ok(server.requestsFor("/n").every((r) => r.headers.get("range") === null));
  assert.equal(server.hits("/n"), 2);
});

Deno.test("restarts spend the same retry budget", async () => {
  const body = randomBytes(300_000);
  await using server = await startFaultServer({
    "/rb": { body, failFirst: [503], cutAfterBytes: 100_000, cutTimes: Infinity, acceptRanges: false },
  });
  let calls = 0;
  const err = await fetchWithRetries({ url: server.url("/rb"), retries: 3, ...FAST }, (b) => {
    calls++;
    return collect(b);
  }).then(() => assert.fail("should have failed"), (e) => e);
  assert.ok(err instanceof HttpError, String(err));
  assert.match(
    err.message,
    /failed after 4 attempts; last error: connection error: .* after 100000 of 300000 bytes$/,
  );
  assert.equal(calls, 3, "one 503, then three bodies cut");
  assert.equal(server.hits("/rb"), 4);
});

Deno.test("cancelling the body during a resume stops it: no further request, no stray timer", async () => {
  const body = randomBytes(300_000);
  await using server = await startFaultServer({ "/cx": { body, cutAfterBytes: 100_000 } });
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const n = await fetchWithRetries({ url: server.url("/cx"), ...FAST }, async (b) => {
    reader = b.getReader();
    let n = 0;
    while (true) {
      const { done, value } = await reader.read();
      if (done) return n;
      n += value.byteLength;
    }
  }, { onRetry: () => void reader!.cancel() });
  assert.equal(n, 100_000);
  await new Promise((r) => setTimeout(r, 300)); // the backoff (<= 10 ms) would be long over
  assert.equal(server.hits("/cx"), 1, "no resume request after the cancel");
});

Deno.test("ranges but no validator: restart instead of an unsafe resume", async () => {
  const body = randomBytes(300_000);
  await using server = await startFaultServer({ "/v": { body, cutAfterBytes: 100_000, etag: false } });
  const { bytes, calls } = await download({ url: server.url("/v") });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(calls.length, 2);
  assert.ok(server.requestsFor("/v").every((r) => r.headers.get("range") === null));
});

Deno.test("a weak ETag is not used for If-Range", async () => {
  const body = randomBytes(300_000);
  await using server = await startFaultServer({ "/w": { body, cutAfterBytes: 100_000, etag: 'W/"weak"' } });
  const { bytes, calls } = await download({ url: server.url("/w") });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(calls.length, 2);
});

Deno.test("a resume answered with 200 (resource changed) restarts consume with that reply", async () => {
  const v1 = randomBytes(300_000);
  const v2 = randomBytes(250_000);
  const route = { body: v1 as Uint8Array, cutAfterBytes: 100_000 };
  await using server = await startFaultServer({ "/c": route });
  const infos: BodyInfo[] = [];
  const bytes = await fetchWithRetries({ url: server.url("/c"), ...FAST }, async (b, info) => {
    infos.push({ ...info });
    const reader = b.getReader();
    const parts: Uint8Array[] = [];
    let first = true;
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      if (first) route.body = v2; // the resource is replaced while we download
      first = false;
    }
    return await collect(new Blob(parts as Uint8Array<ArrayBuffer>[]).stream());
  });
  assert.equal(await sha256(bytes), await sha256(v2));
  assert.deepEqual(infos.map((i) => [i.attempt, i.contentLength]), [[1, 300_000], [2, 250_000]]);
  assert.equal(server.hits("/c"), 2, "the 200 reply to the resume was used for the restart");
  assert.equal(server.requestsFor("/c")[1].headers.get("range"), "bytes=100000-");
});

Deno.test("short body vs Content-Length never looks complete", async () => {
  const body = randomBytes(100_000);
  await using server = await startFaultServer({
    "/s": { body, declaredLength: 150_000, acceptRanges: false },
    "/s-ranges": { body, declaredLength: 150_000 },
  });
  for (const path of ["/s", "/s-ranges"]) {
    let completed = 0;
    const err = await fetchWithRetries({ url: server.url(path), retries: 2, ...FAST }, async (b) => {
      const out = await collect(b);
      completed++;
      return out;
    }).then(() => assert.fail("a short body was accepted"), (e) => e);
    assert.equal(completed, 0, path);
    assert.ok(err instanceof HttpError, String(err));
    assert.match(err.message, /failed after 3 attempts; last error: .*100000 of 150000 bytes/);
  }
});

Deno.test("a consume that swallows the body error is not trusted: it runs again", async () => {
  const body = randomBytes(300_000);
  await using server = await startFaultServer({
    "/sw": { body, cutAfterBytes: 100_000, acceptRanges: false },
  });
  let calls = 0;
  const got = await fetchWithRetries({ url: server.url("/sw"), ...FAST }, async (b) => {
    calls++;
    let n = 0;
    try {
      for await (const chunk of b) n += chunk.byteLength;
    } catch {
      // a careless consumer
    }
    return n;
  });
  assert.equal(got, body.length);
  assert.equal(calls, 2);
});

Deno.test("a restartable error wrapped by consume (cause chain) still restarts", async () => {
  const body = randomBytes(300_000);
  await using server = await startFaultServer({
    "/wr": { body, cutAfterBytes: 100_000, acceptRanges: false },
  });
  let calls = 0;
  const got = await fetchWithRetries({ url: server.url("/wr"), ...FAST }, async (b) => {
    calls++;
    try {
      return (await collect(b)).length;
    } catch (e) {
      throw new Error("zip reader failed", { cause: e });
    }
  });
  assert.equal(got, body.length);
  assert.equal(calls, 2);
});

Deno.test("an error of consume's own is not retried", async () => {
  await using server = await startFaultServer({ "/own": { body: randomBytes(100_000) } });
  let calls = 0;
  await assert.rejects(
    fetchWithRetries({ url: server.url("/own"), ...FAST }, async (b) => {
      calls++;
      await b.getReader().read();
      throw new Error("disk full");
    }),
    /disk full/,
  );
  assert.equal(calls, 1);
  assert.equal(server.hits("/own"), 1);
});

// Scripted replies through the fault server's handler escape hatch: hit N gets replies[N - 1].
const E1 = '"e1"';
const full = (body: Uint8Array<ArrayBuffer>, cutAt?: number) => () => {
  let sent = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (!sent) c.enqueue(body.subarray(0, cutAt ?? body.length));
      else if (cutAt !== undefined) c.error(new Error("cut")); // the fault server cuts the connection
      else c.close();
      sent = true;
    },
  });
  return new Response(stream, {
    headers: { "content-length": String(body.length), etag: E1, "accept-ranges": "bytes" },
  });
};
const partial = (
  body: Uint8Array<ArrayBuffer>,
  start: number,
  end: number,
  total: number,
  send = body.subarray(start, end + 1),
) =>
() =>
  new Response(send, {
    status: 206,
    headers: {
      "content-range": `bytes ${start}-${end}/${total}`,
      "content-length": String(send.length),
      etag: E1,
      "accept-ranges": "bytes",
    },
  });

Deno.test("a 206 that ends cleanly before its Content-Range end is resumed again", async () => {
  const body = randomBytes(1000);
  await using server = await startFaultServer({
    "/p": {
      // framing-valid (Content-Length 400) but short of the promised bytes 100-999
      handler: (_req, { hit }) =>
        [
          full(body, 100),
          partial(body, 100, 999, 1000, body.subarray(100, 500)),
          partial(body, 500, 999, 1000),
        ][hit - 1](),
    },
  });
  const { bytes, calls } = await download({ url: server.url("/p") });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(calls.length, 1);
  assert.deepEqual(server.requestsFor("/p").map((r) => r.headers.get("range")), [
    null,
    "bytes=100-",
    "bytes=500-",
  ]);
});

Deno.test("an honest partial 206 (smaller range than asked) is continued", async () => {
  const body = randomBytes(1000);
  await using server = await startFaultServer({
    "/p": {
      handler: (_req, { hit }) =>
        [full(body, 100), partial(body, 100, 499, 1000), partial(body, 500, 999, 1000)][hit - 1](),
    },
  });
  const { bytes, calls } = await download({ url: server.url("/p") });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(calls.length, 1);
  assert.deepEqual(server.requestsFor("/p").map((r) => r.headers.get("range")), [
    null,
    "bytes=100-",
    "bytes=500-",
  ]);
});

Deno.test("a 206 at the wrong offset or with another total size is never spliced: restart", async () => {
  const body = randomBytes(1000);
  const bigger = randomBytes(1100);
  await using server = await startFaultServer({
    "/off": {
      handler: (_req, { hit }) => [full(body, 100), partial(body, 0, 999, 1000), full(body)][hit - 1](),
    },
    "/size": {
      handler: (_req, { hit }) => [full(body, 100), partial(bigger, 100, 1099, 1100), full(body)][hit - 1](),
    },
  });
  for (const path of ["/off", "/size"]) {
    const { bytes, calls, retries } = await download({ url: server.url(path) });
    assert.equal(await sha256(bytes), await sha256(body), path);
    assert.equal(calls.length, 2, path);
    assert.match(
      retries[1].reason,
      path === "/off" ? /asked for byte 100 and got 0/ : /changed size \(1000 -> 1100\)/,
    );
    assert.deepEqual(server.requestsFor(path).map((r) => r.headers.get("range")), [null, "bytes=100-", null]);
  }
});

// ---------------------------------------------------------------------------------------------------------
// timeouts and backpressure

Deno.test("a stall longer than the read timeout is resumed", async () => {
  const body = randomBytes(300_000);
  // a stall far longer than any run of this test, so that waiting it out cannot pass unnoticed
  await using server = await startFaultServer({ "/st": { body, stallAfterBytes: 100_000, stallMs: 60_000 } });
  const started = performance.now();
  const { bytes, retries } = await download({ url: server.url("/st"), timeout: [5, 0.2] });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(retries.length, 1);
  assert.match(retries[0].reason, /^read timeout \(no data for 0.2 s\) after 100000 of 300000 bytes$/);
  assert.equal(server.requestsFor("/st")[1].headers.get("range"), "bytes=100000-");
  assert.ok(performance.now() - started < 30_000, "did not wait for the stall (60 s) to end");
});

Deno.test("a stall with no retries left fails with the read timeout", async () => {
  await using server = await startFaultServer({
    "/st": { body: randomBytes(100_000), stallAfterBytes: 10, stallMs: 3000, acceptRanges: false },
  });
  await assert.rejects(
    download({ url: server.url("/st"), timeout: [5, 0.1], retries: 0 }),
    (e: unknown) => {
      assert.ok(e instanceof HttpError);
      assert.match(
        e.message,
        /failed after 1 attempt; last error: read timeout \(no data for 0.1 s\) after 10 of/,
      );
      return true;
    },
  );
});

Deno.test("slow but steady download does not hit the read timeout", async () => {
  const body = randomBytes(200_000);
  await using server = await startFaultServer({
    "/slow": { body, throttle: { chunkBytes: 10_000, intervalMs: 40 } }, // ~0.8 s in total
  });
  const { bytes, retries } = await download({ url: server.url("/slow"), timeout: 0.2 });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(retries.length, 0);
  assert.equal(server.hits("/slow"), 1);
});

Deno.test("a slow consumer does not count as a stall (read timeout is idle time while reading)", async () => {
  const body = randomBytes(300_000);
  await using server = await startFaultServer({ "/sc": { body } });
  const retries: string[] = [];
  const n = await fetchWithRetries({ url: server.url("/sc"), timeout: 0.1, ...FAST }, async (b) => {
    let n = 0;
    for await (const chunk of b) {
      n += chunk.byteLength;
      await new Promise((r) => setTimeout(r, 150));
    }
    return n;
  }, { onRetry: (r) => retries.push(r.reason) });
  assert.equal(n, body.length);
  assert.deepEqual(retries, []);
});

Deno.test("slow response headers hit the connect timeout and are retried", async () => {
  await using server = await startFaultServer({
    "/h": { body: "late", headerDelayMs: 1000, headerDelayTimes: 1 },
  });
  const { bytes, retries } = await download({ url: server.url("/h"), timeout: [0.2, 5] });
  assert.equal(new TextDecoder().decode(bytes), "late");
  assert.equal(retries.length, 1);
  assert.equal(retries[0].reason, "connect timeout (no response headers within 0.2 s)");
});

Deno.test("backpressure: a reader that stops reading stops the sender", async () => {
  const size = 64 * 1024 * 1024;
  await using server = await startFaultServer({ "/big": { body: new Uint8Array(size) } });
  await fetchWithRetries({ url: server.url("/big"), ...FAST }, async (b) => {
    const reader = b.getReader();
    await reader.read();
    await new Promise((r) => setTimeout(r, 400));
    const sent = server.bytesSent("/big");
    assert.ok(sent < size / 4, `server had sent ${sent} of ${size} bytes to a reader that read one chunk`);
    await reader.cancel();
  });
});

// ---------------------------------------------------------------------------------------------------------
// failures at once, auth, redaction

Deno.test("404 fails at once with one request only", async () => {
  await using server = await startFaultServer({ "/missing": { status: 404 } });
  let called = false;
  const err = await fetchWithRetries({ url: server.url("/missing?key=s3cret"), ...FAST }, () => {
    called = true;
    return Promise.resolve();
  }).then(() => assert.fail("should fail"), (e) => e);
  assert.ok(err instanceof HttpError);
  assert.equal(err.status, 404);
  assert.equal(err.message, `GET ${server.origin}/missing?key=***: HTTP 404 Not Found`);
  assert.equal(err.url, `${server.origin}/missing?key=***`);
  assert.equal(server.hits("/missing"), 1);
  assert.equal(called, false);
});

Deno.test("Basic auth is sent, and never appears in error messages", async () => {
  const [user, pass] = ["alice", "p@ss:wörd"];
  await using server = await startFaultServer({
    "/a": { body: "secret data", requireBasicAuth: [user, pass] },
    "/down": { body: "x", failFirst: [503, 503, 503, 503, 503] },
  });
  const { bytes } = await download({ url: server.url("/a"), auth: [user, pass] });
  assert.equal(new TextDecoder().decode(bytes), "secret data");
  const sent = server.requestsFor("/a")[0].headers.get("authorization")!;
  const b64 = sent.slice("Basic ".length);
  assert.equal(
    new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))),
    `${user}:${pass}`,
  );

  const errors: string[] = [];
  for (
    const spec of [
      { url: server.url("/a"), auth: [user, "wrong"] as [string, string] },
      { url: server.url("/down?token=tok123"), auth: [user, pass] as [string, string], retries: 1 },
      { url: server.url("/a").replace("//", `//${user}:${encodeURIComponent("wrong")}@`) },
    ]
  ) {
    const e = await download(spec).then(() => assert.fail("should fail"), (e) => e);
    assert.ok(e instanceof HttpError);
    errors.push(`${e.message} ${e.url} ${e.stack} ${JSON.stringify(e)}`);
  }
  assert.match(errors[0], /HTTP 401 Unauthorized/);
  assert.match(errors[1], /failed after 2 attempts; last error: HTTP 503 Service Unavailable/);
  for (const text of errors) {
    for (const secret of [pass, "wrong", b64, "tok123", btoa(`${user}:wrong`)]) {
      assert.ok(!text.includes(secret), `${JSON.stringify(secret)} leaked into ${text}`);
    }
  }
});

Deno.test("user info in the URL becomes Basic auth and is not sent in the URL", async () => {
  await using server = await startFaultServer({ "/a": { body: "ok", requireBasicAuth: ["bob", "pw d"] } });
  const url = server.url("/a").replace("//", "//bob:pw%20d@");
  const { bytes } = await download({ url });
  assert.equal(new TextDecoder().decode(bytes), "ok");
  assert.equal(server.requestsFor("/a")[0].target, "/a");
});

Deno.test("connection errors are retried; the message has no query values", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const err = await download({ url: `http://127.0.0.1:${port}/x?token=tok123`, retries: 1 })
    .then(() => assert.fail("should fail"), (e) => e);
  assert.ok(err instanceof HttpError);
  assert.match(
    err.message,
    /^GET http:\/\/127\.0\.0\.1:\d+\/x\?token=\*\*\*: failed after 2 attempts; last error: connection error: /,
  );
  assert.ok(!err.message.includes("tok123"), err.message);
});

Deno.test("retries exhausted on statuses: message names attempts and last status", async () => {
  await using server = await startFaultServer({ "/x": { body: "x", failFirst: Array(10).fill(502) } });
  const err = await download({ url: server.url("/x"), retries: 2 }).then(() => assert.fail("no"), (e) => e);
  assert.ok(err instanceof HttpError);
  assert.equal(
    err.message,
    `GET ${server.origin}/x: failed after 3 attempts; last error: HTTP 502 Bad Gateway`,
  );
  assert.equal(err.status, 502);
  assert.equal(err.attempts, 3);
  assert.equal(server.hits("/x"), 3);
});

Deno.test("default retries: 4 attempts in total", async () => {
  await using server = await startFaultServer({ "/x": { body: "x", failFirst: Array(10).fill(503) } });
  await assert.rejects(download({ url: server.url("/x") }), /failed after 4 attempts/);
  assert.equal(server.hits("/x"), 4);
});

// ---------------------------------------------------------------------------------------------------------
// request shape

Deno.test("query params are encoded as requests does and appended to an existing query", async () => {
  await using server = await startFaultServer({ "/q": { body: "ok" } });
  await download({
    url: server.url("/q?existing=1"),
    params: { a: "x y", b: [1, 2], c: null, d: true, e: false, "k&": "v=/?", f: "*~!'()é", empty: [] },
  });
  assert.equal(
    server.requestsFor("/q")[0].target,
    "/q?existing=1&a=x+y&b=1&b=2&d=True&e=False&k%26=v%3D%2F%3F&f=%2A~%21%27%28%29%C3%A9",
  );
  await download({ url: server.url("/q"), params: { only: "1" } });
  assert.equal(server.requestsFor("/q")[1].target, "/q?only=1");
});

Deno.test("default headers: User-Agent and identity encoding; caller headers pass through", async () => {
  await using server = await startFaultServer({ "/h": { body: "ok" } });
  await download({ url: server.url("/h") });
  await download({ url: server.url("/h"), headers: { "User-Agent": "custom/1", "X-Api-Key": "k" } });
  const [a, b] = server.requestsFor("/h");
  assert.equal(a.headers.get("user-agent"), "lakerun/0.1");
  assert.equal(a.headers.get("accept-encoding"), "identity");
  assert.equal(b.headers.get("user-agent"), "custom/1");
  assert.equal(b.headers.get("x-api-key"), "k");
});

Deno.test("chunked bodies without Content-Length stream fine", async () => {
  const body = randomBytes(150_000);
  await using server = await startFaultServer({ "/ch": { body, chunked: true } });
  const { bytes, calls } = await download({ url: server.url("/ch") });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(calls[0].contentLength, undefined);
});

async function gzip(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const out = new Blob([data]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(out).arrayBuffer());
}

Deno.test("a gzip reply (sent despite identity) is decoded as requests does", async () => {
  const body = new TextEncoder().encode("a,b\n".repeat(10_000));
  const gz = await gzip(body);
  await using server = await startFaultServer({
    "/gz": {
      handler: () =>
        new Response(gz, { headers: { "content-encoding": "gzip", "content-length": String(gz.length) } }),
    },
  });
  const progress: Array<[number, number | undefined]> = [];
  const { bytes, calls } = await download({ url: server.url("/gz") }, {
    onProgress: (n, t) => progress.push([n, t]),
  });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(calls[0].contentLength, undefined, "the decoded length is unknown");
  assert.deepEqual(progress.at(-1), [gz.length, gz.length], "progress counts the bytes on the wire");
});

Deno.test("Content-Encoding: deflate is decoded zlib-wrapped (RFC 9110) and raw (as some servers send it)", async () => {
  const body = new TextEncoder().encode("id,value\n".repeat(20_000));
  const { deflateRawSync, deflateSync } = await import("node:zlib");
  for (const [kind, encoded] of [["zlib", deflateSync(body)], ["raw", deflateRawSync(body)]] as const) {
    await using server = await startFaultServer({
      "/d": { body: new Uint8Array(encoded), headers: { "Content-Encoding": "deflate" } },
    });
    const { bytes } = await download({ url: server.url("/d") });
    assert.equal(await sha256(bytes), await sha256(body), kind);
  }
});

Deno.test("a cut gzip reply is resumed on the encoded bytes, then decoded", async () => {
  const body = randomBytes(200_000); // incompressible: the encoded body is about as large
  const gz = await gzip(body);
  await using server = await startFaultServer({
    "/gzc": { body: gz, headers: { "Content-Encoding": "gzip" }, cutAfterBytes: 100_000 },
  });
  const { bytes, calls } = await download({ url: server.url("/gzc") });
  assert.equal(await sha256(bytes), await sha256(body));
  assert.equal(calls.length, 1);
  assert.equal(server.requestsFor("/gzc")[1].headers.get("range"), "bytes=100000-");
});

// ---------------------------------------------------------------------------------------------------------
// abort

Deno.test("an already aborted signal rejects before any request", async () => {
  await using server = await startFaultServer({ "/x": { body: "x" } });
  const ctrl = new AbortController();
  ctrl.abort();
  await assert.rejects(download({ url: server.url("/x"), signal: ctrl.signal }), { name: "AbortError" });
  assert.equal(server.hits("/x"), 0);
});

Deno.test("abort mid-body rejects with the signal's reason and does not retry", async () => {
  await using server = await startFaultServer({
    "/x": { body: randomBytes(200_000), stallAfterBytes: 50_000, stallMs: 60_000 },
  });
  const ctrl = new AbortController();
  let calls = 0;
  const started = performance.now();
  await assert.rejects(
    fetchWithRetries({ url: server.url("/x"), signal: ctrl.signal, ...FAST }, async (b) => {
      calls++;
      let n = 0;
      for await (const chunk of b) {
        n += chunk.byteLength;
        if (n >= 50_000) setTimeout(() => ctrl.abort(new Error("stop now")), 10);
      }
    }),
    /stop now/,
  );
  assert.equal(calls, 1);
  assert.equal(server.hits("/x"), 1);
  assert.ok(performance.now() - started < 30_000, "did not wait for the stall (60 s) to end");
});

// ---------------------------------------------------------------------------------------------------------
// file: URLs

Deno.test("file:// URLs stream the local file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const body = randomBytes(300_000);
    const path = `${dir}/data file.bin`;
    await Deno.writeFile(path, body);
    const url = new URL(`file://${path}`).href;
    const { bytes, calls } = await download({ url });
    assert.equal(await sha256(bytes), await sha256(body));
    assert.equal(calls[0].contentLength, body.length);
    assert.equal(calls[0].status, 200);
    const err = await download({ url: new URL(`file://${dir}/nope.bin`).href }).then(
      () => assert.fail(),
      (e) => e,
    );
    assert.ok(err instanceof HttpError);
    assert.match(err.message, /^GET file:\/\/.*\/nope\.bin: file not found$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// pure helpers

Deno.test("redactUrl strips user info and query values", () => {
  assert.equal(redactUrl("https://u:p@host/x?token=abc&a=1"), "https://host/x?token=***&a=***");
  assert.equal(redactUrl("https://host/x"), "https://host/x");
  assert.equal(redactUrl("https://host/x?flag&k=v&&z="), "https://host/x?***&k=***&&z=***");
  assert.equal(redactUrl("https://host/x#access_token=abc"), "https://host/x#access_token=***");
  assert.equal(redactUrl("not a url?secret=1"), "not a url?***");
  assert.ok(!redactUrl("https://user:hunter2@h/").includes("hunter2"));
});

Deno.test("netPermissionFor makes default ports explicit", () => {
  assert.equal(netPermissionFor("https://example.com/data.zip"), "example.com:443");
  assert.equal(netPermissionFor("http://example.com/data.zip"), "example.com:80");
  assert.equal(netPermissionFor("http://user:pw@127.0.0.1:8123/x?y=1"), "127.0.0.1:8123");
  assert.equal(netPermissionFor("http://[::1]:8080/x"), "[::1]:8080");
  assert.equal(netPermissionFor("file:///tmp/x.zip"), undefined);
  assert.throws(() => netPermissionFor("ftp://host/x"), TypeError);
});

// ---------------------------------------------------------------------------------------------------------
// the fault server itself (other tests rely on it)

Deno.test("fault server: ranges, If-Range and 416", async () => {
  const body = new TextEncoder().encode("0123456789");
  await using server = await startFaultServer({ "/r": { body, etag: '"e1"' } });
  const get = async (headers: Record<string, string>) => {
    const res = await fetch(server.url("/r"), { headers });
    return [res.status, res.headers.get("content-range"), await res.text()];
  };
  assert.deepEqual(await get({}), [200, null, "0123456789"]);
  assert.deepEqual(await get({ range: "bytes=3-" }), [206, "bytes 3-9/10", "3456789"]);
  assert.deepEqual(await get({ range: "bytes=2-4" }), [206, "bytes 2-4/10", "234"]);
  assert.deepEqual(await get({ range: "bytes=-3" }), [206, "bytes 7-9/10", "789"]);
  assert.deepEqual(await get({ range: "bytes=3-", "if-range": '"e1"' }), [206, "bytes 3-9/10", "3456789"]);
  assert.deepEqual(await get({ range: "bytes=3-", "if-range": '"other"' }), [200, null, "0123456789"]);
  assert.deepEqual((await get({ range: "bytes=10-" })).slice(0, 2), [416, "bytes */10"]);
});

Deno.test("fault server: cut bodies error in fetch, handler escape hatch works", async () => {
  await using server = await startFaultServer({
    "/cut": { body: new Uint8Array(100_000), cutAfterBytes: 1000 },
    "/dyn": { handler: (req, { hit }) => new Response(`hit ${hit} ${new URL(req.url).search}`) },
  });
  const res = await fetch(server.url("/cut"));
  assert.equal(res.headers.get("content-length"), "100000");
  await assert.rejects(res.arrayBuffer());
  assert.equal(await (await fetch(server.url("/dyn?a=1"))).text(), "hit 1 ?a=1");
  assert.equal(await (await fetch(server.url("/nothing"))).status, 404);
});
