/**
 * S3 locations as Storage, against a real S3 server (Ceph radosgw on loopback, tests/support/s3_server.ts):
 * listings past 1,000 keys, awkward keys, prefixes, empty and multipart objects, atomic writes and batches,
 * interrupted transfers, server-side copies, ETag verification, clear errors, and the S3 permission scope.
 * Every success is checked on the stored bytes (sha256), not on status codes.
 *
 * Run: deno test -A tests/storage_s3_test.ts (set LAKERUN_TEST_S3_ENV to reuse a running server)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { closeS3Clients, createS3Client as clientFor, explainS3Error } from "../lib/aws/s3/client.ts";
import type { AwsCredentials } from "../lib/aws/credentials.ts";
import { IMDS_HOST, resolveS3Config, S3_ENV_VARS, s3Scope } from "../lib/aws/s3/scope.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import {
  openS3Location,
  PART_SIZE_METADATA,
  type S3Storage,
  type S3StorageOptions,
} from "../lib/aws/s3/storage.ts";
import { copyProblem, verifyCopy } from "../lib/storage/verify.ts";
import { removeLeftovers } from "../lib/transfer/copy.ts";
import { ROOT, tempDir } from "./support/lakerun.ts";
import { s3Test, stopS3ServerAfterTests } from "./support/s3_server.ts";
import { digests, s3Location, treeOf } from "./support/trees.ts";
import { type ConnectionFault, startFaultProxy } from "./support/tcp_proxy.ts";
import { randomBytes, sha256, streamOf } from "./support/zip_fixtures.ts";

const MiB = 1024 * 1024;
// fails the whole file, loudly, when no server can start: there is no skipping
const lake = await s3Location("storage-s3"); // removed by the file's last test but one
const { server, settings, client: raw, bucket } = lake;

/** A fresh location under its own prefix. */
function location(prefix: string, options: { partSize?: number; client?: S3Client } = {}): S3Storage {
  return lake.open(`${prefix}-${crypto.randomUUID().slice(0, 8)}`, options);
}

/** The paths `storage` lists. */
async function listedPaths(storage: S3Storage): Promise<string[]> {
  return (await Array.fromAsync(storage.list())).map((file) => file.path);
}

async function unfinishedUploads(prefix: string): Promise<string[]> {
  const res = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (res.Uploads ?? []).map((u) => u.Key!);
}

/** A stream of `bytes` that errors after `failAfter` bytes. */
function failingStream(bytes: Uint8Array, failAfter: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= failAfter) return controller.error(new Error("source broke"));
      const n = Math.min(256 * 1024, failAfter - at);
      controller.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

s3Test(
  "list paginates past 1,000 keys, relative and sorted; skips temporary names and folder markers",
  async () => {
    const storage = location("many");
    const paths = Array.from({ length: 1050 }, (_, i) => `part-${String(1049 - i).padStart(4, "0")}.txt`);
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < paths.length) {
        const path = paths[next++];
        await storage.write(path, streamOf(new TextEncoder().encode(path)));
      }
    }));
    await raw.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${storage.prefix}/folder/`, Body: new Uint8Array() }),
    );
    await raw.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${storage.prefix}/.lakerun-tmp-x/a`, Body: "t" }),
    );
    // a sibling prefix that merely starts with the same characters is not part of the location
    await raw.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${storage.prefix}2/outside.txt`, Body: "o" }),
    );

    const files = [];
    for await (const file of storage.list()) files.push(file);
    assert.equal(files.length, 1050);
    assert.deepEqual(files.map((f) => f.path), [...paths].sort());
    assert.ok(files.every((f) => f.kind === "file" && f.size === 13 && /^[0-9a-f]{32}$/.test(f.etag!)));
    assert.deepEqual(await storage.removeTemporaries(), { temporaries: 1, uploads: 0 });
    const left = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `${storage.prefix}/folder/` }));
    assert.equal(left.ContentLength, 0, "a folder marker is not lakerun's to remove");
  },
);

s3Test(
  "keys with spaces, unicode and +?#&= round-trip through write, list, stat, read, copy and remove",
  async () => {
    const storage = location("odd dir ü+?#&=");
    const target = location("odd copies");
    const names = [
      "a b/c d.txt",
      "ünïcødé ✓ 日本語/ファイル.csv",
      "q+u?e#r&y=v/a+b?c#d&e=f %20 (1)~'!$;,@.txt",
      "x/%2F%2e%2e/plain.txt",
    ];
    const files: Record<string, Uint8Array> = {};
    for (const [i, name] of names.entries()) {
      const body = files[name] = randomBytes(1000 + i, i);
      const written = await storage.write(name, streamOf(body), { sha256: true });
      assert.equal(written.sha256, sha256(body));
      assert.equal(
        (await storage.write(`${name}.again`, streamOf(body))).sha256,
        undefined,
        "only when asked",
      );
      await storage.remove(`${name}.again`);
      assert.equal((await storage.stat(name))?.size, body.length);
      assert.equal(await storage.sha256(name), sha256(body));
      assert.ok(await target.copyFrom(storage, name, name));
    }
    assert.deepEqual(await treeOf(storage), digests(files));
    assert.deepEqual(await treeOf(target), digests(files), "server-side copies");
    assert.deepEqual(await listedPaths(storage), [...names].sort());
    assert.deepEqual(await listedPaths(target), [...names].sort());
    for (const name of names) await storage.remove(name);
    await storage.remove(names[0]); // already gone: no error
    assert.deepEqual(await treeOf(storage), {});
  },
);

s3Test("a whole bucket (no prefix) and nested prefixes are locations", async () => {
  await using own = await s3Location("whole-bucket");
  const whole = openS3Location(`s3://${own.bucket}`, settings);
  const nested = openS3Location(`s3://${own.bucket}/a/b/c/`, settings);
  assert.equal(whole.url, `s3://${own.bucket}`);
  assert.equal(nested.url, `s3://${own.bucket}/a/b/c`);
  await whole.write("top.txt", streamOf(new TextEncoder().encode("top")));
  await nested.write("deep/leaf.txt", streamOf(new TextEncoder().encode("leaf")));
  assert.deepEqual(await treeOf(whole), digests({ "a/b/c/deep/leaf.txt": "leaf", "top.txt": "top" }));
  assert.deepEqual(await treeOf(nested), digests({ "deep/leaf.txt": "leaf" }));
  assert.deepEqual(await listedPaths(whole), ["a/b/c/deep/leaf.txt", "top.txt"]);
  assert.deepEqual(await listedPaths(nested), ["deep/leaf.txt"]);
  assert.equal((await whole.stat("a/b/c/deep/leaf.txt"))?.size, 4);
  assert.equal(await nested.stat("top.txt"), undefined);
  assert.throws(() => openS3Location(`s3://${own.bucket}/a//b`, settings), /empty, '.' or '..' segment/);
  assert.throws(() => openS3Location("s3://Bad_Bucket/x", settings), /invalid S3 location/);
});

s3Test("0-byte objects: write, batch, stat, read, sha256, copy and verification", async () => {
  const storage = location("zero");
  const empty = sha256(new Uint8Array());
  assert.equal(
    (await storage.write("empty.csv", streamOf(new Uint8Array()), { size: 0, sha256: true })).sha256,
    empty,
  );
  const batch = await storage.batch();
  await batch.write("batched/empty.csv", streamOf(new Uint8Array()));
  await batch.commit();
  for (const path of ["empty.csv", "batched/empty.csv"]) {
    assert.equal((await storage.stat(path))?.size, 0);
    assert.equal(await storage.sha256(path), empty);
  }
  assert.deepEqual(await treeOf(storage), digests({ "batched/empty.csv": "", "empty.csv": "" }));
  const copy = location("zero-copy");
  assert.deepEqual((await copy.copyFrom(storage, "batched/empty.csv", "e.csv"))?.size, 0);
  await verifyCopy(storage, "empty.csv", copy, "e.csv");
  await using dir = await tempDir();
  const local = new LocalStorage(dir.path);
  await local.write("e.csv", streamOf(new Uint8Array()));
  await verifyCopy(local, "e.csv", storage, "empty.csv");
  await verifyCopy(storage, "batched/empty.csv", local, "e.csv");
});

s3Test(
  "a 20 MB object goes up in 5 MiB parts, streams back byte for byte, and its ETag proves copies",
  async () => {
    const storage = location("multipart", { partSize: 5 * MiB });
    const body = randomBytes(20_000_000, 3);
    const written = await storage.write("big/data.bin", streamOf(body, 100_003), {
      size: body.length,
      sha256: true,
    });
    assert.equal(written.sha256, sha256(body));
    assert.match(written.etag!, /^[0-9a-f]{32}-4$/);
    const head = await raw.send(
      new HeadObjectCommand({ Bucket: bucket, Key: `${storage.prefix}/big/data.bin` }),
    );
    assert.equal(head.ContentLength, body.length);
    assert.equal(head.Metadata?.[PART_SIZE_METADATA], String(5 * MiB));
    assert.equal(await storage.sha256("big/data.bin"), sha256(body), "lakerun's read streams it back");
    assert.deepEqual(await treeOf(storage), digests({ "big/data.bin": body }));

    // verification of local ↔ S3 and S3 ↔ S3 copies decided by ETag: no download of the object
    await using dir = await tempDir();
    const local = new LocalStorage(dir.path);
    await local.write("data.bin", streamOf(body));
    const how: string[] = [];
    const decided = (h: string) => how.push(h);
    assert.equal(await copyProblem(local, "data.bin", storage, "big/data.bin", { decided }), undefined);
    assert.equal(await copyProblem(storage, "big/data.bin", local, "data.bin", { decided }), undefined);
    const copies = location("multipart-copy");
    const copied = await copies.copyFrom(storage, "big/data.bin", "data.bin", { size: body.length });
    assert.equal(copied?.etag, written.etag, "UploadPartCopy with the source's layout keeps the ETag");
    assert.equal(await copyProblem(storage, "big/data.bin", copies, "data.bin", { decided }), undefined);
    assert.deepEqual(how, ["etag", "etag", "etag"]);
    assert.deepEqual(await treeOf(copies), digests({ "data.bin": body }));

    // an object uploaded by another tool (5 MiB parts, no lakerun metadata): the layout is worked out
    const key = `${storage.prefix}/foreign.bin`;
    const { UploadId } = await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const parts = [];
    for (let i = 0; i * 5 * MiB < body.length; i++) {
      const res = await raw.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: i + 1,
          Body: body.subarray(i * 5 * MiB, (i + 1) * 5 * MiB),
        }),
      );
      parts.push({ PartNumber: i + 1, ETag: res.ETag });
    }
    const { CompleteMultipartUploadCommand } = await import("@aws-sdk/client-s3");
    await raw.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
    how.length = 0;
    assert.equal(await copyProblem(local, "data.bin", storage, "foreign.bin", { decided }), undefined);
    assert.deepEqual(how, ["etag"]);
  },
);

s3Test(
  "verification: a same-size copy with other bytes is caught (sha256 decides what ETags cannot)",
  async () => {
    const storage = location("tamper");
    await using dir = await tempDir();
    const local = new LocalStorage(dir.path);
    await local.write("a.csv", streamOf(new TextEncoder().encode("original")));
    await storage.write("a.csv", streamOf(new TextEncoder().encode("tampered")));
    const how: string[] = [];
    const problem = await copyProblem(local, "a.csv", storage, "a.csv", { decided: (h) => how.push(h) });
    assert.equal(problem?.kind, "content");
    assert.deepEqual(how, ["sha256"]);
    await storage.write("b.csv", streamOf(new TextEncoder().encode("longer body")));
    assert.equal((await copyProblem(local, "a.csv", storage, "b.csv"))?.kind, "size");
    assert.equal((await copyProblem(local, "a.csv", storage, "missing.csv"))?.kind, "missing");
    // a single-part object and a batch-written (one-part multipart) one with the same bytes: ETags decide
    const batch = await storage.batch();
    await batch.write("a-batched.csv", streamOf(new TextEncoder().encode("tampered")));
    await batch.commit();
    how.length = 0;
    assert.equal(
      await copyProblem(storage, "a.csv", storage, "a-batched.csv", { decided: (h) => how.push(h) }),
      undefined,
    );
    assert.deepEqual(how, ["etag"]);
  },
);

s3Test("the size option is enforced: a longer or shorter stream leaves no object and no upload", async () => {
  const storage = location("size", { partSize: 5 * MiB });
  const body = randomBytes(12 * MiB, 5);
  for (
    const [name, size] of [["short.bin", body.length + 1], ["long.bin", body.length - 1], ["tiny.bin", 10]]
  ) {
    await assert.rejects(
      storage.write(name as string, streamOf(body), { size: size as number }),
      /expected \d+ bytes/,
    );
    assert.equal(await storage.stat(name as string), undefined);
  }
  await assert.rejects(storage.write("broken.bin", failingStream(body, 11 * MiB)), /source broke/);
  assert.equal(await storage.stat("broken.bin"), undefined);
  assert.deepEqual(await unfinishedUploads(storage.prefix), []);
});

s3Test(
  "a batch shows nothing before commit; commit lands every file; abort and failures leave nothing",
  async () => {
    const storage = location("batch", { partSize: 5 * MiB });
    const big = randomBytes(11 * MiB, 9);
    const files = { "a.csv": new TextEncoder().encode("a\n"), "nested/deeper/b.bin": big };

    const batch = await storage.batch();
    for (const [path, bytes] of Object.entries(files)) await batch.write(path, streamOf(bytes));
    assert.deepEqual(await treeOf(storage, { temporaries: true }), {}, "nothing visible before commit");
    await batch.commit();
    assert.deepEqual(await treeOf(storage, { temporaries: true }), digests(files));
    assert.deepEqual(await unfinishedUploads(storage.prefix), []);

    const other = location("batch-abort", { partSize: 5 * MiB });
    const aborted = await other.batch();
    await aborted.write("x.csv", streamOf(new TextEncoder().encode("x")));
    await aborted.write("y.bin", streamOf(big));
    await assert.rejects(aborted.write("z.bin", failingStream(big, 6 * MiB)), /source broke/);
    await aborted.abort();
    await aborted.abort(); // twice is fine
    assert.deepEqual(await treeOf(other, { temporaries: true }), {});
    assert.deepEqual(await unfinishedUploads(other.prefix), []);
  },
);

s3Test(
  "an interrupted upload leaves nothing; a killed one is aborted by the next run, no other upload is; re-runs succeed",
  async () => {
    await using state = await tempDir();
    const name = `interrupted-${crypto.randomUUID().slice(0, 8)}`;
    const storage = lake.open(name, { partSize: 5 * MiB, stateDir: state.path });
    const body = randomBytes(20 * MiB, 11);

    // 1. aborted through its signal half-way: the multipart upload is aborted too
    const controller = new AbortController();
    let sent = 0;
    const slow = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (sent >= body.length) return c.close();
        if (sent >= 12 * MiB) controller.abort(new Error("interrupted"));
        await new Promise((r) => setTimeout(r, 1));
        c.enqueue(body.slice(sent, sent + MiB));
        sent += MiB;
      },
    });
    await assert.rejects(storage.write("big.bin", slow, { signal: controller.signal }), /interrupted/);
    assert.equal(await storage.stat("big.bin"), undefined);
    assert.deepEqual(await unfinishedUploads(storage.prefix), []);

    // 2. a process killed in the middle of an upload leaves an unfinished multipart upload with parts
    const script = [
      `import { openS3Location } from ${JSON.stringify(join(ROOT, "lib/aws/s3/storage.ts"))};`,
      `const s = openS3Location(${JSON.stringify(storage.url)}, ${
        JSON.stringify(settings)
      }, { partSize: 5 * 1024 * 1024, stateDir: ${JSON.stringify(state.path)} });`,
      "const chunk = new Uint8Array(1024 * 1024);",
      "await s.write('big.bin', new ReadableStream({ async pull(c) { await new Promise((r) => setTimeout(r, 5)); c.enqueue(chunk.slice()); } }));",
    ].join("\n");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--config", join(ROOT, "deno.json"), script],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let parts = 0;
    for (let i = 0; i < 300 && parts < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const res = await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: storage.prefix }));
      const upload = res.Uploads?.[0];
      if (upload) {
        const listing = await raw.send(
          new ListPartsCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }),
        );
        parts = listing.Parts?.length ?? 0;
      }
    }
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel();
    assert.ok(parts >= 2, "the killed upload had stored parts");
    assert.deepEqual(await unfinishedUploads(storage.prefix), [`${storage.prefix}/big.bin`]);
    assert.equal(await storage.stat("big.bin"), undefined, "nothing visible");

    // 3. uploads lakerun did not start, or that are still in use, under the same prefix: another program's,
    // a parallel step's (its own state folder), and a batch of this process not yet committed
    const foreign = await raw.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${storage.prefix}/other-tool.bin` }),
    );
    await using otherState = await tempDir();
    const parallel = lake.open(name, { stateDir: otherState.path });
    const parallelBatch = await parallel.batch();
    await parallelBatch.write("parallel.csv", streamOf(new TextEncoder().encode("parallel step")));
    const batch = await storage.batch();
    await batch.write("batched.csv", streamOf(new TextEncoder().encode("committed later")));
    assert.equal((await unfinishedUploads(storage.prefix)).length, 4);

    // the next run aborts the killed upload only, and says what it was
    const logged: string[] = [];
    assert.equal(await removeLeftovers(storage, (line) => logged.push(line)), 1);
    assert.deepEqual(logged, [
      `aborted 1 incomplete multipart upload left by an interrupted run in ${storage.url}`,
    ]);
    assert.deepEqual((await unfinishedUploads(storage.prefix)).sort(), [
      `${storage.prefix}/batched.csv`,
      `${storage.prefix}/other-tool.bin`,
      `${storage.prefix}/parallel.csv`,
    ]);
    assert.deepEqual(await parallel.removeTemporaries(), { temporaries: 0, uploads: 0 });
    assert.equal((await unfinishedUploads(storage.prefix)).length, 3);
    await batch.commit();
    await parallelBatch.commit();
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${state.path}/s3-uploads`)), [], "no record left");
    await raw.send(
      new AbortMultipartUploadCommand({
        Bucket: bucket,
        Key: `${storage.prefix}/other-tool.bin`,
        UploadId: foreign.UploadId,
      }),
    );
    assert.deepEqual(await unfinishedUploads(storage.prefix), []);
    const written = await storage.write("big.bin", streamOf(body), { size: body.length, sha256: true });
    assert.equal(written.sha256, sha256(body));
    assert.deepEqual(
      await treeOf(storage, { temporaries: true }),
      digests({ "big.bin": body, "batched.csv": "committed later", "parallel.csv": "parallel step" }),
    );
  },
);

s3Test(
  "copyFrom: CopyObject for single-part objects, nothing for local sources, size must match",
  async () => {
    const storage = location("copy-src");
    const target = location("copy-dst");
    const body = randomBytes(300_000, 13);
    await storage.write("a.bin", streamOf(body));
    const copied = await target.copyFrom(storage, "a.bin", "sub/a.bin", { size: body.length });
    assert.equal(copied?.size, body.length);
    assert.equal(copied?.etag, (await storage.stat("a.bin"))?.etag);
    assert.deepEqual(await treeOf(target), digests({ "sub/a.bin": body }));
    await assert.rejects(target.copyFrom(storage, "a.bin", "b.bin", { size: 1 }), /expected 1 bytes/);
    assert.equal(await target.stat("b.bin"), undefined);
    await using dir = await tempDir();
    assert.equal(await target.copyFrom(new LocalStorage(dir.path), "x", "x"), undefined);
  },
);

s3Test(
  "errors name the bucket and say what to do: missing bucket, wrong secret, unknown key, no credentials",
  async () => {
    const missing = openS3Location("s3://lakerun-no-such-bucket/x", settings);
    const noBucket = /bucket 'lakerun-no-such-bucket' does not exist at http:\/\/127\.0\.0\.1:\d+: create it/;
    await assert.rejects(Array.fromAsync(missing.list()), noBucket);
    await assert.rejects(missing.stat("a.csv"), noBucket);
    await assert.rejects(missing.write("a.csv", streamOf(new Uint8Array(3))), noBucket);

    const config = resolveS3Config(settings);
    const storage = location("errors");
    await storage.write("a.csv", streamOf(new TextEncoder().encode("a")));
    const secret = "not-the-secret-0123456789";
    const wrong = openS3Location(storage.url, settings, {
      client: clientFor(config, { accessKeyId: server.accessKeyId, secretAccessKey: secret }),
    });
    const listError = await Array.fromAsync(wrong.list()).then(() => undefined, (e: Error) => e);
    assert.match(listError?.message ?? "", /access denied to s3:\/\/.*secret access key does not match/);
    const statError = await wrong.stat("a.csv").then(() => undefined, (e: Error) => e);
    assert.match(
      statError?.message ?? "",
      /access denied to s3:\/\/.*\/a\.csv \(HeadObject\): wrong credentials/,
    );
    for (const message of [listError!.message, statError!.message]) {
      assert.ok(
        !message.includes(secret) && !message.includes(server.secretAccessKey),
        "no secret in messages",
      );
      assert.ok(!message.includes("\n"), "one line");
    }
    const unknown = openS3Location(storage.url, settings, {
      client: clientFor(config, { accessKeyId: "NOSUCHKEY", secretAccessKey: secret }),
    });
    await assert.rejects(Array.fromAsync(unknown.list()), /the access key ID is not known at http/);

    // no credentials anywhere: shared files absent (the provider reads the files named here; the test
    // process's environment, shared by every test file running in parallel, is never changed)
    await using dir = await tempDir();
    const { fromIni } = await import("@aws-sdk/credential-providers");
    const files = (credentials: string) => ({
      filepath: join(dir.path, credentials),
      configFilepath: join(dir.path, "config"),
    });
    const withProvider = (provider: unknown) => clientFor(config, provider as AwsCredentials);
    const anonymous = openS3Location(storage.url, settings, {
      client: withProvider(fromIni({ ...files("credentials"), profile: "default" })),
    });
    await assert.rejects(
      Array.fromAsync(anonymous.list()),
      /no AWS credentials for s3:\/\/storage-s3-.*: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE/,
    );
    // the same credentials in a named profile of a shared credentials file work
    await Deno.writeTextFile(
      join(dir.path, "credentials-2"),
      `[lakerun-test]\naws_access_key_id = ${server.accessKeyId}\naws_secret_access_key = ${server.secretAccessKey}\n`,
    );
    const profiled = openS3Location(storage.url, settings, {
      client: withProvider(fromIni({ ...files("credentials-2"), profile: "lakerun-test" })),
    });
    assert.deepEqual(await treeOf(profiled), digests({ "a.csv": "a" }));
  },
);

Deno.test("a wrong region is explained with the bucket's region (radosgw ignores regions, so the SDK error is built)", () => {
  const config = resolveS3Config({ region: "us-east-1" });
  const redirect = Object.assign(new Error("UnknownError"), {
    name: "PermanentRedirect",
    $metadata: { httpStatusCode: 301 },
    $response: { headers: { "x-amz-bucket-region": "eu-west-1" } },
  });
  assert.equal(
    explainS3Error(redirect, { bucket: "lake", key: "a.csv", operation: "GetObject", config }).message,
    `bucket 'lake' is in region eu-west-1, not us-east-1: set "s3": {"region": "eu-west-1"} in the routine or AWS_REGION=eu-west-1`,
  );
  const malformed = Object.assign(
    new Error(
      "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'ap-south-1'",
    ),
    { name: "AuthorizationHeaderMalformed", $metadata: { httpStatusCode: 400 } },
  );
  assert.match(
    explainS3Error(malformed, { bucket: "lake", operation: "ListObjectsV2", config }).message,
    /bucket 'lake' is in region ap-south-1, not us-east-1/,
  );
  const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
  assert.match(
    explainS3Error(refused, { bucket: "lake", operation: "ListObjectsV2", config: resolveS3Config(settings) })
      .message,
    /cannot reach S3 http:\/\/127\.0\.0\.1:\d+ for s3:\/\/lake \(ECONNREFUSED\)/,
  );
});

s3Test("an unreachable endpoint is reported as such", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const storage = openS3Location(`s3://${bucket}/x`, { endpoint: `http://127.0.0.1:${port}` });
  await assert.rejects(
    Array.fromAsync(storage.list()),
    /cannot reach S3 http:\/\/127\.0\.0\.1:\d+ .*ECONNREFUSED/,
  );
});

Deno.test("S3 scope: a custom endpoint is the only host; env and files are the credential chain's", () => {
  const scope = s3Scope(`s3://${bucket}/raw`, settings);
  const port = new URL(server.endpoint).port;
  assert.deepEqual(scope.net, [`127.0.0.1:${port}`]);
  assert.deepEqual(scope.env, S3_ENV_VARS);
  const home = Deno.env.get("HOME");
  assert.ok(scope.read!.includes(Deno.env.get("AWS_CONFIG_FILE") ?? `${home}/.aws/config`));
  assert.ok(scope.read!.includes(Deno.env.get("AWS_SHARED_CREDENTIALS_FILE") ?? `${home}/.aws/credentials`));
  const bundle = Deno.env.get("AWS_CA_BUNDLE");
  if (bundle) assert.ok(scope.read!.includes(bundle));
  assert.equal(scope.write, undefined);
  assert.equal(scope.run, undefined);
});

Deno.test("S3 scope on AWS: the hosts the SDK contacts are exactly the ones granted", async () => {
  const saved = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_EC2_METADATA_DISABLED"].map((k) =>
    [k, Deno.env.get(k)] as const
  );
  try {
    for (const [k] of saved) Deno.env.delete(k);
    for (const [url, region] of [["s3://lake/raw", "eu-west-1"], ["s3://lake.with.dots/x", "us-east-1"]]) {
      const scope = s3Scope(url, { region });
      const config = resolveS3Config({ region });
      const client = clientFor(config, { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" });
      client.middlewareStack.add(
        (() => (args: { request: { hostname: string; port?: number } }) => {
          throw new Error(`host ${args.request.hostname}:${args.request.port ?? 443}`);
        }) as never,
        { step: "finalizeRequest" },
      );
      const bucketName = url.slice(5).split("/")[0];
      const error = await client.send(new GetObjectCommand({ Bucket: bucketName, Key: "a" })).catch((e) => e);
      const host = /^host (.*)$/.exec(error.message)?.[1];
      assert.ok(host && scope.net!.includes(host), `${host} in ${scope.net}`);
      assert.ok(scope.net!.includes(`sts.${region}.amazonaws.com:443`), "STS for web identity");
      assert.ok(scope.net!.includes(IMDS_HOST), "instance metadata, the chain's last link");
      client.destroy();
    }
    Deno.env.set("AWS_EC2_METADATA_DISABLED", "true");
    assert.ok(!s3Scope("s3://lake/raw", { region: "eu-west-1" }).net!.includes(IMDS_HOST));
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
});

s3Test(
  "copyFrom with the listed ETag: one conditional CopyObject; a source changed since listed is copied as it is now",
  async () => {
    const storage = location("listed-src");
    const body = randomBytes(200_000, 21);
    await storage.write("a.bin", streamOf(body));
    const [listed] = await Array.fromAsync(storage.list());
    await using proxy = startFaultProxy(Number(new URL(server.endpoint).port));
    const viaProxy = { ...settings, endpoint: proxy.endpoint };
    const source = openS3Location(storage.url, viaProxy);
    const target = openS3Location(`${storage.url}-copy`, viaProxy);
    const copied = await target.copyFrom(source, "a.bin", "a.bin", { size: listed.size, etag: listed.etag });
    assert.deepEqual(copied, { size: body.length, etag: listed.etag, serverSide: true });
    assert.deepEqual(proxy.requests.map((line) => line.split(" ")[0]), ["PUT"]);
    assert.deepEqual(await treeOf(target), digests({ "a.bin": body }));

    const changed = randomBytes(body.length, 22); // same size, other bytes: only the ETag tells
    await storage.write("a.bin", streamOf(changed));
    const again = await target.copyFrom(source, "a.bin", "b.bin", { size: listed.size, etag: listed.etag });
    assert.notEqual(again?.etag, listed.etag);
    assert.deepEqual(await treeOf(target), digests({ "a.bin": body, "b.bin": changed }));
    closeS3Clients();
  },
);

/**
 * Downloads `name` from `storage` through a fault proxy into a new local folder: the write must fail (with
 * `error`, when given) and leave nothing in the folder.
 */
async function assertDownloadFailsLeavingNothing(
  storage: S3Storage,
  name: string,
  fault: ConnectionFault,
  error?: RegExp,
  options: S3StorageOptions = {},
): Promise<void> {
  await using proxy = startFaultProxy(Number(new URL(server.endpoint).port), () => fault);
  const viaProxy = openS3Location(storage.url, { ...settings, endpoint: proxy.endpoint }, options);
  await using dir = await tempDir();
  const local = new LocalStorage(dir.path);
  const writing = local.write(name, await viaProxy.read(name));
  await (error ? assert.rejects(writing, error) : assert.rejects(writing));
  assert.deepEqual(await treeOf(dir.path, { temporaries: true }), {}, "nothing lands");
  closeS3Clients();
}

s3Test(
  "a connection closed before any answer is retried; a download cut mid-body too often stores nothing",
  async () => {
    const storage = location("faults");
    const body = randomBytes(3 * MiB, 23);
    await storage.write("big.bin", streamOf(body));
    const port = Number(new URL(server.endpoint).port);
    {
      await using proxy = startFaultProxy(port, (n) => (n === 0 ? { closeAtOnce: true } : {}));
      const viaProxy = openS3Location(storage.url, { ...settings, endpoint: proxy.endpoint });
      assert.deepEqual((await Array.fromAsync(viaProxy.list())).map((f) => f.path), ["big.bin"]);
      assert.ok(proxy.connections >= 2, `${proxy.connections} connection(s)`);
      closeS3Clients();
    }
    // each cut body is asked for again from the byte reached, 3 times: 4 × 256 KiB of 3 MiB is not enough
    await assertDownloadFailsLeavingNothing(
      storage,
      "big.bin",
      { cutAfter: 256 * 1024 },
      /faults-[0-9a-f]+\/big\.bin: the body failed after \d+ bytes, asked again 3 times: /,
    );
  },
);

s3Test("a download whose body goes silent fails after the idle timeout, naming the object", async () => {
  const storage = location("silent");
  await storage.write("big.bin", streamOf(randomBytes(2 * MiB, 24)));
  await assertDownloadFailsLeavingNothing(
    storage,
    "big.bin",
    { stallAfter: 300_000 },
    /silent-[0-9a-f]+\/big\.bin: the server sent nothing for 0\.3 s/,
    { idleTimeoutMs: 300 },
  );
});

s3Test(
  "a body corrupted in transit fails its ETag check, single-part or multipart; nothing lands",
  async () => {
    const storage = location("corrupt");
    const small = randomBytes(3 * MiB, 25);
    const large = randomBytes(19 * MiB, 26);
    await storage.write("small.bin", streamOf(small));
    await storage.write("large.bin", streamOf(large, 1_000_003), { size: large.length });
    for (const [name, body] of [["small.bin", small], ["large.bin", large]] as const) {
      // one byte flipped deep in the body: same length, other bytes, so only the ETag can tell
      await assertDownloadFailsLeavingNothing(
        storage,
        name,
        { corruptAt: body.length - MiB },
        new RegExp(
          `corrupt-[0-9a-f]+/${name.replace(".", "\\.")}: the bytes received do not match the object's ETag`,
        ),
      );
      // the same object read directly is whole
      assert.equal(await storage.sha256(name), sha256(body));
    }
  },
);

s3Test(
  "a multipart copy keeps the source's Content-Type, -Encoding, -Disposition, -Language, Cache-Control, Expires",
  async () => {
    const storage = location("headers", { partSize: 5 * MiB });
    const body = randomBytes(11 * MiB, 60);
    const key = `${storage.prefix}/gz.csv`;
    const headers = {
      ContentType: "text/csv",
      ContentEncoding: "gzip",
      CacheControl: "max-age=60",
      ContentDisposition: 'attachment; filename="gz.csv"',
      ContentLanguage: "fr",
      Expires: new Date("2030-01-01T00:00:00Z"),
    };
    const { UploadId } = await raw.send(
      new CreateMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        // the part size recorded as lakerun does: the copy keeps the layout, part by part (UploadPartCopy)
        Metadata: { owner: "qa", [PART_SIZE_METADATA]: String(8 * MiB) },
        ...headers,
      }),
    );
    const parts = [];
    for (let n = 1, start = 0; start < body.length; n++, start += 8 * MiB) {
      const part = await raw.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: n,
          Body: body.subarray(start, start + 8 * MiB),
        }),
      );
      parts.push({ PartNumber: n, ETag: part.ETag });
    }
    const { CompleteMultipartUploadCommand } = await import("@aws-sdk/client-s3");
    await raw.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
    const copies = location("headers-copy");
    const copied = await copies.copyFrom(storage, "gz.csv", "gz.csv", { size: body.length });
    assert.match(copied!.etag!, /-2$/, "a multipart copy");
    const head = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: `${copies.prefix}/gz.csv` }));
    assert.deepEqual(
      {
        ContentType: head.ContentType,
        ContentEncoding: head.ContentEncoding,
        CacheControl: head.CacheControl,
        ContentDisposition: head.ContentDisposition,
        ContentLanguage: head.ContentLanguage,
        Expires: head.Expires,
      },
      headers,
    );
    assert.equal(head.Metadata?.owner, "qa");
  },
);

Deno.test({
  name: "(remove the test bucket)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => await lake[Symbol.asyncDispose](),
});
stopS3ServerAfterTests(server);
