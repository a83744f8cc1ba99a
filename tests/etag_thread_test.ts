/**
 * ETags hashed on a second thread (lib/etag_thread.ts): the same ETag as on the calling thread, whatever the
 * chunking; a bounded number of buffers; a clean stop; and a Worker that works inside a step's sandbox, which
 * grants no read access to lakerun's own files.
 */
import assert from "node:assert/strict";
import { ETAG_THREAD_MIN_BYTES, etagDigester, EtagThread, InlineEtag } from "../lib/etag_thread.ts";
import { EtagHasher } from "../lib/verify.ts";
import { randomBytes } from "./support/zip_fixtures.ts";

/** `bytes` cut into chunks of the given sizes, in turn. */
function* chunksOf(bytes: Uint8Array, sizes: number[]): Generator<Uint8Array> {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length];
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

/** The ETag computed on this thread, for comparison. */
function etagHere(bytes: Uint8Array, partSize: number): string {
  const hasher = new EtagHasher(partSize);
  hasher.update(bytes);
  return hasher.digest();
}

Deno.test("EtagThread gives the ETag EtagHasher gives, single-part and multipart, whatever the chunking", async () => {
  const body = randomBytes(3 * 1024 * 1024 + 17, 1);
  for (const partSize of [0, 1024 * 1024, 700_001]) {
    // small buffers, few of them: the producer has to wait for the Worker again and again
    const etag = new EtagThread(partSize, { buffers: 2, bufferSize: 65_536 });
    let waited = 0;
    for (const chunk of chunksOf(body, [1, 100_000, 65_536, 3, 250_000])) {
      const pending = etag.update(chunk);
      if (pending) {
        waited++;
        await pending;
      }
    }
    assert.equal(await etag.digest(), etagHere(body, partSize), `part size ${partSize}`);
    assert.ok(waited > 0, "with 2 buffers of 64 KiB, update() made the producer wait");
  }
});

Deno.test("EtagThread of nothing is the ETag of an empty body", async () => {
  assert.equal(await new EtagThread(0).digest(), "d41d8cd98f00b204e9800998ecf8427e");
  assert.equal(await new EtagThread(5 * 1024 * 1024).digest(), etagHere(new Uint8Array(), 5 * 1024 * 1024));
});

Deno.test("EtagThread stopped before its digest: the digest rejects and a waiting producer is released", async () => {
  const etag = new EtagThread(0, { buffers: 1, bufferSize: 1024 });
  const waiting = etag.update(randomBytes(64 * 1024, 2)); // needs the one buffer back 63 times
  assert.ok(waiting, "the producer waits");
  etag.close();
  await assert.rejects(Promise.resolve(waiting), /ETag hashing stopped/);
  await assert.rejects(etag.digest(), /ETag hashing stopped/);
  etag.close(); // idempotent
});

Deno.test("etagDigester hashes small bodies inline and large ones on a Worker", async () => {
  const small = etagDigester(0, ETAG_THREAD_MIN_BYTES - 1);
  const unknown = etagDigester(0, undefined);
  const large = etagDigester(0, ETAG_THREAD_MIN_BYTES);
  assert.ok(small instanceof InlineEtag);
  assert.ok(unknown instanceof InlineEtag);
  assert.ok(large instanceof EtagThread);
  const body = randomBytes(100_000, 3);
  for (const digester of [small, unknown, large]) {
    await digester.update(body);
    assert.equal(await digester.digest(), etagHere(body, 0));
  }
});

Deno.test("EtagThread works inside a Worker without any permission, as in a step's sandbox", async () => {
  // the outer Worker stands for a step: started by this process (which may read lakerun's modules), it gets
  // no permission at all, so its own Worker can load nothing from lakerun's files
  const source = [
    `import { EtagThread } from ${JSON.stringify(new URL("../lib/etag_thread.ts", import.meta.url).href)};`,
    "self.onmessage = async (event) => {",
    "  const etag = new EtagThread(event.data.partSize);",
    "  await etag.update(event.data.body);",
    "  self.postMessage(await etag.digest().catch((error) => `failed: ${error.message}`));",
    "};",
  ].join("\n");
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const step = new Worker(url, { type: "module", deno: { permissions: "none" } });
  try {
    const body = randomBytes(2 * 1024 * 1024, 4);
    const answer = new Promise<string>((resolve, reject) => {
      step.onmessage = (event) => resolve(event.data);
      step.onerror = (event) => {
        event.preventDefault();
        reject(new Error(event.message));
      };
    });
    step.postMessage({ partSize: 1024 * 1024, body });
    assert.equal(await answer, etagHere(body, 1024 * 1024));
  } finally {
    step.terminate();
    URL.revokeObjectURL(url);
  }
});
