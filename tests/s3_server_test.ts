/**
 * Proves the test S3 server (tests/support/s3_server.sh: Ceph radosgw) behaves like a real S3:
 * bytes round-trip through PutObject and a streamed multipart Upload, listings paginate past 1000
 * keys, awkward keys survive PUT/GET/LIST/COPY.
 *
 * Run: deno test -A tests/s3_server_test.ts
 */
import { createHash } from "node:crypto";
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createS3Client, createTestBucket, startS3Server } from "./support/s3_server.ts";

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function assertEquals<T>(actual: T, expected: T, msg: string): void {
  if (actual !== expected) {
    throw new Error(`${msg}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Deterministic pseudo-random bytes (xorshift32), so a failure can be reproduced. */
function pseudoRandom(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A stream of `total` bytes in `chunk`-sized pieces, hashed as it is read. */
function hashedStream(total: number, chunk: number, seed: number) {
  const hash = createHash("sha256");
  let sent = 0;
  let piece = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) {
        controller.close();
        return;
      }
      const n = Math.min(chunk, total - sent);
      const bytes = pseudoRandom(n, seed + piece++);
      hash.update(bytes);
      sent += n;
      controller.enqueue(bytes);
    },
  });
  return { stream, digest: () => hash.digest("hex"), sent: () => sent };
}

/** Reads an object fully, streaming it through sha256; returns size and digest. */
async function getDigest(client: S3Client, bucket: string, key: string) {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  assert(res.Body, `GetObject ${key} has a body`);
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of res.Body.transformToWebStream()) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { size, sha256: hash.digest("hex"), contentLength: res.ContentLength, etag: res.ETag };
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      await work(item);
    }
  });
  await Promise.all(runners);
}

async function listAll(client: S3Client, bucket: string, prefix?: string) {
  const keys: string[] = [];
  let pages = 0;
  let token: string | undefined;
  do {
    const res = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    pages++;
    for (const o of res.Contents ?? []) keys.push(o.Key!);
    token = res.IsTruncated ? res.NextContinuationToken : undefined;
    assert(!res.IsTruncated || token, "a truncated page carries a continuation token");
  } while (token);
  return { keys, pages };
}

/** S3's CopySource: bucket and key, URL-encoded except for the slashes. */
function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
}

Deno.test("the test S3 server is a real S3 (radosgw)", async (t) => {
  const t0 = performance.now();
  const server = await startS3Server();
  console.log(`S3 server ${server.endpoint} ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const client = createS3Client(server);
  try {
    const bucket = await createTestBucket(server, "s3-server-test");

    await t.step("PutObject of a few KB round-trips byte for byte", async () => {
      const body = pseudoRandom(5 * 1024 + 17, 42);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: "small/blob.bin", Body: body }));
      const got = await getDigest(client, bucket, "small/blob.bin");
      assertEquals(got.size, body.byteLength, "size read back");
      assertEquals(got.contentLength, body.byteLength, "ContentLength");
      assertEquals(got.sha256, sha256(body), "sha256");
    });

    await t.step("streamed multipart Upload of ~12 MB round-trips", async () => {
      const total = 12 * 1024 * 1024 + 12345;
      const src = hashedStream(total, 64 * 1024 + 3, 7);
      const upload = new Upload({
        client,
        params: { Bucket: bucket, Key: "big/stream.bin", Body: src.stream },
        partSize: 5 * 1024 * 1024,
        queueSize: 2,
      });
      const res = await upload.done();
      assertEquals(src.sent(), total, "bytes produced");
      // radosgw 16.2 answers CompleteMultipartUpload with an empty <ETag></ETag> (Red Hat BZ 2266579),
      // so Upload's result has ETag "": read the ETag with HeadObject instead.
      assert(res.ETag === "" || /-3"$/.test(res.ETag ?? ""), `Upload ETag: ${res.ETag}`);
      // A multipart ETag is "<md5 of the part md5s>-<number of parts>"
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: "big/stream.bin" }));
      assertEquals(head.ContentLength, total, "HeadObject ContentLength");
      // A multipart ETag is "<md5 of the parts' md5s>-<number of parts>"
      assert(/^"[0-9a-f]{32}-3"$/.test(head.ETag ?? ""), `multipart ETag with 3 parts, got ${head.ETag}`);
      const got = await getDigest(client, bucket, "big/stream.bin");
      assertEquals(got.size, total, "size read back");
      assertEquals(got.sha256, src.digest(), "sha256");
    });

    await t.step("ListObjectsV2 paginates over 1,050 keys", async () => {
      const keys = Array.from({ length: 1050 }, (_, i) => `many/key-${String(i).padStart(5, "0")}.txt`);
      const tPut = performance.now();
      await pool(keys, 32, async (key) => {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `body of ${key}` }));
      });
      console.log(`  1,050 PutObject (32 at a time): ${((performance.now() - tPut) / 1000).toFixed(1)} s`);
      const { keys: listed, pages } = await listAll(client, bucket, "many/");
      assertEquals(listed.length, 1050, "keys listed");
      assert(pages >= 2, `more than one page (got ${pages})`);
      assertEquals(new Set(listed).size, 1050, "distinct keys");
      assertEquals(JSON.stringify(listed), JSON.stringify([...keys].sort()), "listing is the sorted key set");
    });

    const oddKey = "odd dir/ünïcødé ✓ 日本語/a+b?c#d&e=f %20 (1)~'!$;,@.txt";
    const oddBody = new TextEncoder().encode("odd key body ✓\n".repeat(100));

    await t.step("a key with spaces, unicode and +?#&= round-trips", async () => {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: oddKey, Body: oddBody }));
      const got = await getDigest(client, bucket, oddKey);
      assertEquals(got.sha256, sha256(oddBody), "sha256");
      const { keys } = await listAll(client, bucket, "odd dir/");
      assertEquals(JSON.stringify(keys), JSON.stringify([oddKey]), "listed key");
      // "+" must not have become " " (a classic form-decoding bug)
      const { keys: plus } = await listAll(client, bucket, "odd dir/ünïcødé ✓ 日本語/a+b");
      assertEquals(plus.length, 1, "prefix with '+' matches");
    });

    await t.step("a 1,024-byte key (S3's maximum) round-trips", async () => {
      const key = `long/${"k".repeat(1024 - "long/".length - 4)}.bin`;
      assertEquals(new TextEncoder().encode(key).byteLength, 1024, "key length");
      const body = pseudoRandom(3000, 99);
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
      assertEquals((await getDigest(client, bucket, key)).sha256, sha256(body), "sha256");
      assertEquals(
        JSON.stringify((await listAll(client, bucket, "long/")).keys),
        JSON.stringify([key]),
        "listed",
      );
    });

    await t.step("CopyObject of the odd key works", async () => {
      const dest = `copies/${oddKey}`;
      const res = await client.send(
        new CopyObjectCommand({ Bucket: bucket, Key: dest, CopySource: copySource(bucket, oddKey) }),
      );
      assert(res.CopyObjectResult?.ETag, "CopyObject returns an ETag");
      const got = await getDigest(client, bucket, dest);
      assertEquals(got.sha256, sha256(oddBody), "sha256 of the copy");
      // and into a second bucket
      const other = await createTestBucket(server, "s3-server-test-copy");
      await client.send(
        new CopyObjectCommand({ Bucket: other, Key: oddKey, CopySource: copySource(bucket, oddKey) }),
      );
      assertEquals((await getDigest(client, other, oddKey)).sha256, sha256(oddBody), "sha256 across buckets");
    });

    await t.step("DeleteObjects removes a batch of keys", async () => {
      const { keys } = await listAll(client, bucket, "many/");
      const batch = keys.slice(0, 1000);
      const res = await client.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      assertEquals(res.Errors?.length ?? 0, 0, "DeleteObjects errors");
      assertEquals((await listAll(client, bucket, "many/")).keys.length, 50, "keys left");
    });
  } finally {
    client.destroy();
    await server.stop();
  }
});
