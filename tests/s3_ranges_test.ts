/**
 * Large S3 objects downloaded into local files by ranges on several threads (lib/s3_ranges.ts, through
 * `LocalStorage.copyFrom` and `S3Storage.downloadInto`), against a real S3 server (Ceph radosgw on loopback)
 * and a fault-injecting proxy: part-aligned ranges whose MD5s check the multipart ETag, a layout the server
 * does not tell, what is left to the stream, a corrupted, cut or silent range, an object changed since it
 * was listed, and an abort. Every success is checked on the bytes (sha256).
 *
 * Run: deno test -A tests/s3_ranges_test.ts (set LAKERUN_TEST_S3_ENV to reuse a running server)
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { closeS3Clients } from "../lib/aws/s3/client.ts";
import { fetchRangeInto, planRanges } from "../lib/aws/s3/ranges.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import { openS3Location, type S3Storage, type S3StorageOptions } from "../lib/aws/s3/storage.ts";
import { UNKNOWN_PART_SIZE } from "../lib/aws/s3/etag.ts";
import { transferFiles } from "../lib/transfer/transfer.ts";
import { readTree, tempDir } from "./support/lakerun.ts";
import {
  createS3Client,
  createTestBucket,
  s3Test,
  startS3ServerForLakerun,
  stopS3ServerAfterTests,
} from "./support/s3_server.ts";
import { type ConnectionFault, startFaultProxy } from "./support/tcp_proxy.ts";
import { randomBytes, sha256, streamOf } from "./support/zip_fixtures.ts";

const MiB = 1024 * 1024;

Deno.test("planRanges: whole parts per range when hashed, plain byte ranges otherwise", () => {
  assert.deepEqual(planRanges(20 * MiB + 7, 5 * MiB, 10 * MiB), [
    { start: 0, end: 10 * MiB, partSize: 5 * MiB },
    { start: 10 * MiB, end: 20 * MiB, partSize: 5 * MiB },
    { start: 20 * MiB, end: 20 * MiB + 7, partSize: 5 * MiB },
  ]);
  // a range is never less than one part, and the part size rounds the range size
  assert.deepEqual(planRanges(12 * MiB, 8 * MiB, 5 * MiB).map((r) => [r.start, r.end]), [
    [0, 8 * MiB],
    [8 * MiB, 12 * MiB],
  ]);
  assert.deepEqual(planRanges(10 * MiB, 0, 4 * MiB).map((r) => [r.start, r.end, r.partSize]), [
    [0, 4 * MiB, 0],
    [4 * MiB, 8 * MiB, 0],
    [8 * MiB, 10 * MiB, 0],
  ]);
  assert.deepEqual(planRanges(0, 5 * MiB), []);
});

// fails the whole file, loudly, when no server can start: there is no skipping
const server = await startS3ServerForLakerun();
const settings = { endpoint: server.endpoint, region: server.region };
const raw: S3Client = createS3Client(server);
const bucket = await createTestBucket(server, "ranges");
const serverPort = Number(new URL(server.endpoint).port);

/** Ranged downloads from the first byte, 5 MiB per range (one part of the objects below). */
const RANGED: S3StorageOptions = { rangedDownloadMin: 1, rangeBytes: 5 * MiB, partSize: 5 * MiB };

/** A fresh location under its own prefix. */
function location(prefix: string, options: S3StorageOptions = RANGED, endpoint = server.endpoint): S3Storage {
  return openS3Location(`s3://${bucket}/${prefix}`, { ...settings, endpoint }, options);
}

function freshPrefix(name: string): string {
  return `${name}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Stores `body` at `prefix/name` as lakerun does: 5 MiB parts, the part size in the object's metadata. */
async function storeMultipart(prefix: string, name: string, body: Uint8Array): Promise<void> {
  await location(prefix).write(name, streamOf(body, 1_000_003), { size: body.length });
}

/** Stores `body` at `key` as another tool does: parts of `partSize` bytes, no part size in the metadata. */
async function storeAsAnotherTool(key: string, body: Uint8Array, partSize: number): Promise<void> {
  const { UploadId } = await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const parts = [];
  for (let start = 0, n = 1; start < body.length; start += partSize, n++) {
    const part = await raw.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        PartNumber: n,
        Body: body.subarray(start, start + partSize),
      }),
    );
    parts.push({ ETag: part.ETag, PartNumber: n });
  }
  await raw.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId,
      MultipartUpload: { Parts: parts },
    }),
  );
}

const sha256OfFile = async (path: string) =>
  createHash("sha256").update(await Deno.readFile(path)).digest("hex");

s3Test("a multipart object lands whole by part-aligned ranges; the parts' MD5s check its ETag", async () => {
  const prefix = freshPrefix("aligned");
  const name = "odd dir ü/q+u?e#r&y=v %20 (1).bin";
  const body = randomBytes(19 * MiB + 7, 41);
  await storeMultipart(prefix, name, body);
  await using proxy = startFaultProxy(serverPort);
  await using dir = await tempDir();
  const source = location(prefix, RANGED, proxy.endpoint);
  const result = await new LocalStorage(dir.path).copyFrom(source, name, name, { size: body.length });
  assert.deepEqual(result?.serverSide, false, "downloaded by ranges, not streamed");
  assert.equal(result?.size, body.length);
  assert.match(result!.etag!, /^[0-9a-f]{32}-4$/);
  assert.equal(await sha256OfFile(join(dir.path, name)), sha256(body));
  const gets = proxy.requests.filter((line) => line.startsWith("GET "));
  assert.equal(gets.length, 4, `one GET per 5 MiB range:\n${gets.join("\n")}`);
  assert.deepEqual(Object.keys(await readTree(dir.path)), [name], "no temporary file left");
  closeS3Clients();
});

s3Test(
  "parts that end inside what one read returns are hashed apart: several odd-sized parts per range",
  async () => {
    const prefix = freshPrefix("odd-parts");
    const partSize = 5 * MiB + 3; // no part boundary falls where a read starts or ends
    const options: S3StorageOptions = { rangedDownloadMin: 1, rangeBytes: 2 * partSize, partSize };
    const body = randomBytes(5 * partSize + 11, 48);
    await location(prefix, options).write("odd.bin", streamOf(body, 999_983), { size: body.length });
    await using proxy = startFaultProxy(serverPort);
    await using dir = await tempDir();
    const source = location(prefix, options, proxy.endpoint);
    const result = await new LocalStorage(dir.path).copyFrom(source, "odd.bin", "odd.bin", {
      size: body.length,
    });
    assert.equal(result?.serverSide, false, "downloaded by ranges, not streamed");
    assert.match(result!.etag!, /^[0-9a-f]{32}-6$/);
    assert.equal(await sha256OfFile(join(dir.path, "odd.bin")), sha256(body));
    const gets = proxy.requests.filter((line) => line.startsWith("GET "));
    assert.equal(gets.length, 3, `one GET per two parts:\n${gets.join("\n")}`);
    closeS3Clients();
  },
);

s3Test(
  "a multipart object whose part size the server does not tell lands whole, its size checked",
  async () => {
    // uploaded by another tool: no part size in the metadata, and radosgw ignores HeadObject's partNumber
    const prefix = freshPrefix("layout");
    // 6 parts of 6 MiB: no common part size (5, 8, …) gives 6 parts, so only the size can be checked
    const body = randomBytes(31 * MiB + 3, 42);
    await storeAsAnotherTool(`${prefix}/other-tool.bin`, body, 6 * MiB);
    await using dir = await tempDir();
    const told: string[] = [];
    const result = await new LocalStorage(dir.path).copyFrom(location(prefix), "other-tool.bin", "copy.bin", {
      unverified: (where, why) => told.push(`${where}: ${why}`),
    });
    assert.equal(result?.serverSide, false);
    assert.equal(await sha256OfFile(join(dir.path, "copy.bin")), sha256(body));
    assert.deepEqual(told, [`${location(prefix).url}/other-tool.bin: ${UNKNOWN_PART_SIZE}`]);
  },
);

s3Test(
  "small files and single-part objects are left to the stream: nothing is created, no request for the small",
  async () => {
    const prefix = freshPrefix("streamed");
    const single = randomBytes(6 * MiB, 43);
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/single.bin`, Body: single }));
    await storeMultipart(prefix, "multi.bin", randomBytes(11 * MiB, 44));
    await using proxy = startFaultProxy(serverPort);
    await using dir = await tempDir();
    const local = new LocalStorage(dir.path);
    // a plain MD5 ETag: one stream checks it as the bytes arrive, which ranges cannot
    assert.equal(
      await local.copyFrom(location(prefix, RANGED, proxy.endpoint), "single.bin", "single.bin"),
      undefined,
    );
    // under the threshold, by the listed size: decided without a request
    const before = proxy.requests.length;
    const big = location(prefix, { rangedDownloadMin: 64 * MiB }, proxy.endpoint);
    assert.equal(await local.copyFrom(big, "multi.bin", "multi.bin", { size: 11 * MiB }), undefined);
    assert.equal(proxy.requests.length, before, "no request for a file the listing shows is small");
    assert.deepEqual(await readTree(dir.path), {}, "nothing created");
    closeS3Clients();
  },
);

/** Downloads `name` of `prefix` through a proxy with `plan`; the rejection must match `error`. */
async function assertRangedDownloadFails(
  prefix: string,
  name: string,
  plan: (index: number) => ConnectionFault,
  error: RegExp,
  options: S3StorageOptions = RANGED,
): Promise<void> {
  await using proxy = startFaultProxy(serverPort, plan);
  await using dir = await tempDir();
  const copying = new LocalStorage(dir.path).copyFrom(location(prefix, options, proxy.endpoint), name, name);
  await assert.rejects(copying, error);
  assert.deepEqual(await readTree(dir.path), {}, "nothing lands, not even a temporary file");
  closeS3Clients();
}

s3Test(
  "a byte corrupted in transit fails the ETag check: nothing lands, the object itself is whole",
  async () => {
    const prefix = freshPrefix("corrupt");
    const body = randomBytes(16 * MiB, 45);
    await storeMultipart(prefix, "big.bin", body);
    // every connection flips one byte of its first answer's body: some range receives it
    await assertRangedDownloadFails(
      prefix,
      "big.bin",
      () => ({ corruptAt: 100_000 }),
      /corrupt-[0-9a-f]+\/big\.bin: the bytes received do not match the object's ETag/,
    );
    await using dir = await tempDir();
    await new LocalStorage(dir.path).copyFrom(location(prefix), "big.bin", "big.bin");
    assert.equal(await sha256OfFile(join(dir.path, "big.bin")), sha256(body));
  },
);

s3Test("a range cut mid-body or gone silent is fetched again; the file lands whole", async () => {
  const prefix = freshPrefix("retried");
  const body = randomBytes(16 * MiB, 46);
  await storeMultipart(prefix, "big.bin", body);
  for (const fault of [{ cutAfter: 2 * MiB }, { stallAfter: 2 * MiB }]) {
    await using proxy = startFaultProxy(serverPort, (n) => (n < 2 ? fault : {}));
    await using dir = await tempDir();
    const source = location(prefix, { ...RANGED, idleTimeoutMs: 300 }, proxy.endpoint);
    const result = await new LocalStorage(dir.path).copyFrom(source, "big.bin", "big.bin");
    assert.equal(result?.size, body.length);
    assert.equal(await sha256OfFile(join(dir.path, "big.bin")), sha256(body), JSON.stringify(fault));
    const gets = proxy.requests.filter((line) => line.startsWith("GET ")).length;
    assert.ok(
      gets > 4,
      `${gets} GETs for 4 ranges: the broken ones were asked again (${JSON.stringify(fault)})`,
    );
    assert.deepEqual(Object.keys(await readTree(dir.path)), ["big.bin"]);
    closeS3Clients();
  }
});

s3Test("a range that keeps failing fails the download, naming the object and the bytes", async () => {
  const prefix = freshPrefix("broken");
  await storeMultipart(prefix, "big.bin", randomBytes(11 * MiB, 47));
  await assertRangedDownloadFails(
    prefix,
    "big.bin",
    (n) => (n === 0 ? {} : { cutAfter: 1 * MiB }), // connection 0: the HeadObject
    /broken-[0-9a-f]+\/big\.bin: bytes \d+-\d+: (the answer was cut|\d+ bytes received of \d+)/,
  );
});

s3Test(
  "an object changed since it was listed is not downloaded; a stale signed range is refused",
  async () => {
    const prefix = freshPrefix("changed");
    await storeMultipart(prefix, "big.bin", randomBytes(11 * MiB, 48));
    const source = location(prefix);
    const [listed] = await Array.fromAsync(source.list());
    await storeMultipart(prefix, "big.bin", randomBytes(11 * MiB, 49));
    await using dir = await tempDir();
    await assert.rejects(
      new LocalStorage(dir.path).copyFrom(source, "big.bin", "big.bin", {
        size: listed.size,
        etag: listed.etag,
      }),
      /changed-[0-9a-f]+\/big\.bin: the object changed since it was listed/,
    );
    assert.deepEqual(await readTree(dir.path), {});
    // each range is conditional on the ETag: the server refuses one signed for the old version
    const get = await source.signedGet("big.bin", { start: 0, end: MiB, partSize: 0 }, listed.etag!);
    const file = join(dir.path, "range.bin");
    await Deno.writeFile(file, new Uint8Array());
    const job = {
      ...get,
      start: 0,
      end: MiB,
      partSize: 0,
      file,
      idleTimeoutMs: 5_000,
      responseTimeoutMs: 5_000,
    };
    const refused = await fetchRangeInto(job, createHash).catch((error) => error);
    assert.match(String(refused.message), /the object changed while it was being downloaded \(HTTP 412/);
    assert.equal(refused.retryable, false);
    closeS3Clients();
  },
);

s3Test("an abort stops every range at once and leaves nothing", async () => {
  const prefix = freshPrefix("aborted");
  await storeMultipart(prefix, "big.bin", randomBytes(16 * MiB, 50));
  await using proxy = startFaultProxy(serverPort, (n) => (n === 0 ? {} : { stallAfter: MiB }));
  await using dir = await tempDir();
  const controller = new AbortController();
  const reason = new Error("stopped by the test");
  const started = performance.now();
  setTimeout(() => controller.abort(reason), 500);
  const source = location(prefix, { ...RANGED, idleTimeoutMs: 60_000 }, proxy.endpoint);
  const copying = new LocalStorage(dir.path).copyFrom(source, "big.bin", "x", {
    signal: controller.signal,
  });
  await assert.rejects(copying, (error) => error === reason);
  assert.ok(performance.now() - started < 30_000, "the abort did not wait for the 60 s idle timeout");
  assert.deepEqual(await readTree(dir.path), {});
  closeS3Clients();
});

s3Test(
  "another tool's multipart object (aws s3 cp: 8 MiB parts, no recorded part size): whole, it is checked " +
    "against the common sizes; a byte flipped in transit is no likely size's ETag, and the log says so",
  async () => {
    const prefix = freshPrefix("aws-cli");
    const body = randomBytes(12 * MiB, 51);
    await storeAsAnotherTool(`${prefix}/f1.bin`, body, 8 * MiB);
    const streamed: S3StorageOptions = {}; // under the ranged threshold: one stream
    await using dir = await tempDir();
    const logs: string[] = [];
    const summary = await transferFiles(location(prefix, streamed), new LocalStorage(dir.path), {
      mode: "copy",
      log: (line) => logs.push(line),
    });
    assert.equal(summary.files, 1);
    assert.equal(await sha256OfFile(join(dir.path, "f1.bin")), sha256(body));
    assert.ok(!logs.some((line) => line.includes("not verified")), logs.join("\n"));

    // the ETag cannot tell a corrupted byte from a custom part size that gives 2 parts too (say 7 MiB): the
    // copy is not refused for good, but never said verified either
    await using proxy = startFaultProxy(serverPort, () => ({ corruptAt: 200_000 }));
    await using other = await tempDir();
    const flagged: string[] = [];
    await transferFiles(location(prefix, streamed, proxy.endpoint), new LocalStorage(other.path), {
      mode: "copy",
      log: (line) => flagged.push(line),
    });
    assert.deepEqual(
      flagged.filter((line) => line.startsWith("not verified")).map((line) => line.replace(/s3:\S+/, "…")),
      [
        "not verified: its ETag is none of the likely part sizes' (8 MiB, 10 MiB): uploaded in parts of " +
        "another size, or corrupted in transit: … was checked by its size only",
      ],
    );
    closeS3Clients();
  },
);

s3Test(
  "by ranges, a multipart object of unknown part size is checked against every common size that fits, a part " +
    "spanning two ranges included: whole, it lands verified; corrupted, the copy is flagged",
  async () => {
    // 17 MiB in 15 MiB parts: 16, 15 and 10 MiB all give 2 parts; ranges are whole 16 MiB parts, so the
    // first 15 MiB part ends inside the first range and the second spans both
    const prefix = freshPrefix("guessed");
    const body = randomBytes(17 * MiB + 5, 52);
    await storeAsAnotherTool(`${prefix}/s3cmd.bin`, body, 15 * MiB);
    await using dir = await tempDir();
    const told: string[] = [];
    const result = await new LocalStorage(dir.path).copyFrom(location(prefix), "s3cmd.bin", "s3cmd.bin", {
      unverified: (where) => told.push(where),
    });
    assert.equal(result?.serverSide, false, "downloaded by ranges");
    assert.match(result!.etag!, /-2$/);
    assert.equal(await sha256OfFile(join(dir.path, "s3cmd.bin")), sha256(body));
    assert.deepEqual(told, [], "verified");
    closeS3Clients();

    await using proxy = startFaultProxy(serverPort, () => ({ corruptAt: 300_000 }));
    await using other = await tempDir();
    const why: string[] = [];
    await new LocalStorage(other.path).copyFrom(location(prefix, RANGED, proxy.endpoint), "s3cmd.bin", "x", {
      unverified: (_where, reason) => why.push(reason),
    });
    assert.deepEqual(why, [
      "its ETag is none of the likely part sizes' (16 MiB, 15 MiB, 10 MiB): uploaded in parts of another size, " +
      "or corrupted in transit",
    ]);
    closeS3Clients();
  },
);

s3Test(
  "a copy whose multipart ETag fits no known or common part size says so once in the transfer's log",
  async () => {
    const prefix = freshPrefix("unverified");
    await storeAsAnotherTool(`${prefix}/a.bin`, randomBytes(31 * MiB, 53), 6 * MiB);
    await storeAsAnotherTool(`${prefix}/b.bin`, randomBytes(31 * MiB, 54), 6 * MiB);
    for (const options of [RANGED, {}]) {
      await using dir = await tempDir();
      const logs: string[] = [];
      await transferFiles(location(prefix, options), new LocalStorage(dir.path), {
        mode: "copy",
        log: (line) => logs.push(line),
      });
      const said = logs.filter((line) => line.startsWith("not verified"));
      assert.equal(said.length, 1, logs.join("\n"));
      assert.match(
        said[0],
        /^not verified: part size unknown \(.*\): s3:\/\/.*unverified-[0-9a-f]+\/[ab]\.bin \(and 1 other file\) was checked by its size only$/,
      );
    }
    closeS3Clients();
  },
);

s3Test(
  "a streamed body cut midway is asked for again from the byte reached (If-Match: the same object); cut " +
    "too often, the copy fails naming the object",
  async () => {
    const prefix = freshPrefix("cut");
    const body = randomBytes(10 * MiB + 7, 55);
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/one.bin`, Body: body }));
    const streamed: S3StorageOptions = {}; // a single-part object under the ranged threshold: one stream
    {
      // the QA report's proxy: every connection cut after 4,000,000 bytes
      await using proxy = startFaultProxy(serverPort, () => ({ cutAfter: 4_000_000 }));
      await using dir = await tempDir();
      const summary = await transferFiles(
        location(prefix, streamed, proxy.endpoint),
        new LocalStorage(dir.path),
        {
          mode: "copy",
          log: () => {},
        },
      );
      assert.equal(summary.files, 1);
      assert.equal(await sha256OfFile(join(dir.path, "one.bin")), sha256(body));
      closeS3Clients();
    }
    {
      await using proxy = startFaultProxy(serverPort, () => ({ cutAfter: 1_000_000 }));
      await using dir = await tempDir();
      const copying = transferFiles(location(prefix, streamed, proxy.endpoint), new LocalStorage(dir.path), {
        mode: "copy",
        log: () => {},
      });
      await assert.rejects(
        copying,
        /s3:\/\/ranges-[^/]+\/cut-[0-9a-f]+\/one\.bin: the body failed after \d+ bytes, asked again 3 times: /,
      );
      assert.deepEqual(await readTree(dir.path), {}, "nothing lands, not even a temporary file");
      closeS3Clients();
    }
  },
);

stopS3ServerAfterTests(server, raw);
