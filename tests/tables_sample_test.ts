/**
 * lib/tables/sample.ts, the sampling the Athena, PostgreSQL and Redshift executors infer columns from: a
 * sample reads no further than its bytes (the stream is cancelled), a listing is read only as far as the
 * samples need, empty files and symbolic links are never sampled, and a file that is not gzip data is named.
 * The happy paths (skipping, gzip, the `whole` flag) are the module's doc examples.
 *
 * Run: deno test -A tests/tables_sample_test.ts
 */
import assert from "node:assert/strict";
import type { Storage, StoredFile } from "../lib/storage/mod.ts";
import { sampleFile, sampleFiles } from "../lib/tables/sample.ts";

const CHUNK = 16 * 1024;

/** A storage whose files are `chunks` chunks of CHUNK bytes of `x`; counts the chunks read and the cancels. */
function fakeStorage(files: Record<string, number>) {
  const seen = { chunks: 0, cancelled: [] as string[], opened: [] as string[] };
  const storage = {
    kind: "s3",
    url: "s3://bucket/staging",
    async *list() {
      for (const [path, chunks] of Object.entries(files)) {
        yield { path, size: chunks * CHUNK, kind: "file" } satisfies StoredFile;
      }
    },
    read(path: string): Promise<ReadableStream<Uint8Array>> {
      seen.opened.push(path);
      let left = files[path];
      return Promise.resolve(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (left-- === 0) return controller.close();
            seen.chunks++;
            controller.enqueue(new Uint8Array(CHUNK).fill(0x78));
          },
          cancel() {
            seen.cancelled.push(path);
          },
        }, { highWaterMark: 0 }),
      );
    },
  } as unknown as Storage;
  return { storage, seen };
}

Deno.test("sampleFile reads no further than maxBytes and cancels the rest of the stream", async () => {
  const { storage, seen } = fakeStorage({ "big.csv": 1000 });
  const sample = await sampleFile(storage, "big.csv", { maxBytes: CHUNK + 1 });
  assert.equal(sample.text.length, CHUNK + 1);
  assert.equal(sample.whole, false);
  assert.equal(seen.chunks, 2);
  assert.deepEqual(seen.cancelled, ["big.csv"]);
});

Deno.test("sampleFiles reads a listing only as far as the samples need", async () => {
  const { storage, seen } = fakeStorage({ "a.csv": 1, "b.csv": 1 });
  let listed = 0;
  async function* listing(): AsyncGenerator<StoredFile> {
    for (let i = 0; i < 1000; i++) {
      listed++;
      yield { path: i % 2 ? "b.csv" : "a.csv", size: CHUNK, kind: "file" };
    }
  }
  const samples = await sampleFiles(storage, { maxFiles: 2, maxBytes: 10, files: listing() });
  assert.deepEqual(samples.map((s) => s.path), ["a.csv", "b.csv"]);
  assert.equal(listed, 2);
  assert.equal(seen.chunks, 2);
});

Deno.test("sampleFiles never opens an empty file or a symbolic link", async () => {
  const { storage, seen } = fakeStorage({ "a.csv": 1 });
  const files: StoredFile[] = [
    { path: "empty.csv", size: 0, kind: "file" },
    { path: "link.csv", size: 10, kind: "symlink" },
    { path: "a.csv", size: CHUNK, kind: "file" },
  ];
  const samples = await sampleFiles(storage, { maxFiles: 3, maxBytes: 10, files });
  assert.deepEqual(samples.map((s) => s.path), ["a.csv"]);
  assert.deepEqual(seen.opened, ["a.csv"]);
});

Deno.test("a file that is not gzip data fails its sample, naming the file", async () => {
  const { storage } = fakeStorage({ "part-0.csv.gz": 1 });
  await assert.rejects(
    sampleFiles(storage, { maxFiles: 1, maxBytes: 10, decompress: () => "gzip" }),
    /^Error: part-0\.csv\.gz is not gzip data: /,
  );
});
