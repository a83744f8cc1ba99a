/**
 * The Storage contract (lib/storage/mod.ts): one suite, {@link storageContract}, run against every backend, as
 * rclone's fstests run one suite against every remote. Each backend is opened the way routines open it,
 * through `openLocation` (lib/storage/locations.ts): `LocalStorage` on a temporary folder, `S3Storage` on a
 * fresh bucket of the test S3 server (a real Ceph radosgw on loopback, tests/support/s3_server.ts).
 *
 * Every case makes the same assertions for every backend. Where backends legitimately differ, the suite says
 * so in one place, {@link CAPABILITIES}, and asserts what each backend promises there; nothing is skipped.
 * What a location holds is read from outside the Storage under test: `treeOf` (tests/support/trees.ts) for the
 * files and their sha256, and each backend's `leftovers()` for what must not be left behind (temporary names,
 * empty folders or folder markers, unfinished multipart uploads).
 *
 * Cases: list (sorted, recursive, temporaries skipped, a missing location), stat, read, write (atomic; a failed,
 * aborted or wrongly sized write stores nothing and keeps the file it would have replaced; the sha256 option),
 * batch (nothing visible before commit; abort removes all; a path written twice), copyFrom and moveFrom for
 * every pair of backends, remove (idempotent, emptied folders pruned), sha256, removeTemporaries (top level
 * and recursive), unsafe paths, awkward names, 0-byte files and a file of a few MiB.
 *
 * Run: deno test -A tests/storage_contract_test.ts (set LAKERUN_TEST_S3_ENV to reuse a running S3 server)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { DEFAULT_PART_SIZE, openS3Location, RANGED_DOWNLOAD_MIN } from "../lib/aws/s3/storage.ts";
import { openLocation } from "../lib/storage/locations.ts";
import { isTemporaryName, type Storage, TEMP_PREFIX } from "../lib/storage/mod.ts";
import { stopS3ServerAfterTests } from "./support/s3_server.ts";
import { digests, s3Location, s3TestServer, sha256Hex, type Tree, treeOf } from "./support/trees.ts";
import { randomBytes, streamOf } from "./support/zip_fixtures.ts";

const MiB = 1024 * 1024;
type Kind = Storage["kind"];

// ------------------------------------------------------------------------------------------------ capabilities

/** What `target.copyFrom(source, …)` does for one pair of backends. */
type CopyCapability =
  /** Resolves to `undefined` and writes nothing: the caller streams. */
  | "none"
  /** Copies every file with the operating system's file copy (`serverSide: false`): two local folders. */
  | "file-copy"
  /** Copies every file without its bytes passing through lakerun (`serverSide: true`). */
  | "server-side"
  /**
   * Copies files of at least `RANGED_DOWNLOAD_MIN` bytes (multipart objects) by ranges on several threads
   * (`serverSide: false`); resolves to `undefined` for smaller ones, which one stream checks better.
   */
  | "ranged";

/** What one backend does where backends legitimately differ. */
interface Capabilities {
  /** `copyFrom` with a source of each kind. */
  copyFrom: Record<Kind, CopyCapability>;
  /** `moveFrom` with a source of each kind: `"rename"` takes the file; `"none"` is absent or answers false. */
  moveFrom: Record<Kind, "rename" | "none">;
  /**
   * Whether folders are made before the bytes arrive, and stay when none land (a failed or aborted write, a
   * copyFrom that declines): empty local folders, which listings and trees never show. S3 has no folders.
   */
  foldersBeforeBytes: boolean;
  /** Whether its batch offers `open`, a writer for data produced into a reused buffer. */
  batchOpen: boolean;
  /** How `removeTemporaries` counts a temporary folder: as one entry (local) or each object in it (S3). */
  temporaryFolderCounts: "once" | "per file";
}

/** Where the backends differ: the one place the suite says so. */
const CAPABILITIES: Record<Kind, Capabilities> = {
  local: {
    copyFrom: { local: "file-copy", s3: "ranged" },
    moveFrom: { local: "rename", s3: "none" },
    foldersBeforeBytes: true,
    batchOpen: true,
    temporaryFolderCounts: "once",
  },
  s3: {
    copyFrom: { local: "none", s3: "server-side" },
    moveFrom: { local: "none", s3: "none" },
    foldersBeforeBytes: false,
    batchOpen: false,
    temporaryFolderCounts: "per file",
  },
};

// ------------------------------------------------------------------------------------------------ backends

/** A fresh, empty location of one backend, and views of it from outside the Storage. */
interface Place extends AsyncDisposable {
  storage: Storage;
  /**
   * What lakerun must not leave behind, sorted: temporary names (a local temporary folder once, by its name),
   * empty local folders and S3 folder markers (`dir/`), unfinished S3 multipart uploads (`key (upload)`).
   */
  leftovers(): Promise<string[]>;
  /** Stores `bytes` at `path` without the Storage (to plant what a killed run leaves). */
  plant(path: string, bytes: Uint8Array): Promise<void>;
  /** A location of this backend that does not exist. */
  missing(): Promise<Storage>;
}

/** Opens a fresh {@link Place}. */
type Open = () => Promise<Place>;

async function openLocalPlace(): Promise<Place> {
  const dir = await Deno.makeTempDir({ prefix: "lakerun-contract-" });
  const root = join(dir, "location");
  await Deno.mkdir(root);
  return {
    storage: await openLocation("location", { cwd: dir }),
    async leftovers() {
      const found: string[] = [];
      const walk = async (folder: string, prefix: string) => {
        let empty = true;
        for await (const entry of Deno.readDir(folder)) {
          empty = false;
          if (isTemporaryName(entry.name)) found.push(prefix + entry.name);
          else if (entry.isDirectory) await walk(join(folder, entry.name), `${prefix}${entry.name}/`);
        }
        if (empty && prefix !== "") found.push(prefix);
      };
      await walk(root, "");
      return found.sort();
    },
    async plant(path, bytes) {
      await Deno.mkdir(join(root, path, ".."), { recursive: true });
      await Deno.writeFile(join(root, path), bytes);
    },
    missing: () => openLocation("no-such-folder", { cwd: dir }),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

async function openS3Place(): Promise<Place> {
  const s3 = await s3Location("contract");
  const prefix = `${s3.prefix}/`;
  return {
    storage: await openLocation(s3.url, { cwd: Deno.cwd(), s3: s3.settings }),
    async leftovers() {
      const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
      const found: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.client.send(
          new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const { Key } of page.Contents ?? []) {
          const path = Key!.slice(prefix.length);
          // a folder marker, or a temporary name
          if (path.endsWith("/") || path.split("/").some(isTemporaryName)) found.push(path);
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      for (const key of await s3.unfinishedUploads()) found.push(`${key.slice(prefix.length)} (upload)`);
      return found.sort();
    },
    async plant(path, bytes) {
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: prefix + path, Body: bytes }));
    },
    missing: () =>
      Promise.resolve(openS3Location(`s3://lakerun-no-such-bucket-${crypto.randomUUID()}/x`, s3.settings)),
    [Symbol.asyncDispose]: () => s3[Symbol.asyncDispose](),
  };
}

/**
 * Every backend: each gets the whole suite, and is the source of the copyFrom and moveFrom cases of each.
 * `sanitize`: whether Deno's op and resource sanitizers can watch it (S3 clients keep sockets open).
 */
const BACKENDS: Record<string, { open: Open; sanitize: boolean }> = {
  LocalStorage: { open: openLocalPlace, sanitize: true },
  S3Storage: { open: openS3Place, sanitize: false },
};

// ------------------------------------------------------------------------------------------------ helpers

const encoder = new TextEncoder();
const text = (s: string) => encoder.encode(s);
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A stream of `bytes` that errors after `failAfter` bytes. */
function failingStream(bytes: Uint8Array, failAfter: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= failAfter) return controller.error(new Error("source broke"));
      const n = Math.min(MiB, failAfter - at);
      controller.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

/**
 * A stream of `bytes` that stops after `pauseAt` bytes: `paused` resolves once the reader has taken them all
 * and asks for more; `resume()` sends the rest.
 */
function pausingStream(bytes: Uint8Array, pauseAt: number) {
  let sent = 0;
  let resume!: () => void;
  let onPause!: () => void;
  const resumed = new Promise<void>((resolve) => resume = resolve);
  const paused = new Promise<void>((resolve) => onPause = resolve);
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent === pauseAt) {
        onPause();
        await resumed;
      }
      if (sent >= bytes.length) return controller.close();
      const n = Math.min(MiB, (sent < pauseAt ? pauseAt : bytes.length) - sent);
      controller.enqueue(bytes.slice(sent, sent + n));
      sent += n;
    },
  }, { highWaterMark: 0 });
  return { stream, paused, resume };
}

/** `moveFrom` as a caller sees it: a backend without the method cannot move. */
function tryMove(target: Storage, source: Storage, sourcePath: string, path: string): Promise<boolean> {
  return target.moveFrom ? target.moveFrom(source, sourcePath, path) : Promise.resolve(false);
}

/**
 * {@link Place.leftovers} after writes to nested paths stored nothing: empty folders are allowed where
 * {@link Capabilities.foldersBeforeBytes} says the backend makes them first.
 */
async function leftoversOfNothing(place: Place): Promise<string[]> {
  const all = await place.leftovers();
  return CAPABILITIES[place.storage.kind].foldersBeforeBytes
    ? all.filter((name) => !name.endsWith("/"))
    : all;
}

async function writeAll(storage: Storage, files: Record<string, Uint8Array | string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await storage.write(path, streamOf(typeof content === "string" ? text(content) : content));
  }
}

/** Lists `storage` as paths. */
async function paths(storage: Storage): Promise<string[]> {
  return (await Array.fromAsync(storage.list())).map((file) => file.path);
}

/** 9 MiB + 7: over one S3 part (8 MiB), so a multipart upload, an UploadPartCopy, a multipart ETag. */
const FEW_MIB = randomBytes(DEFAULT_PART_SIZE + MiB + 7, 41);

// ------------------------------------------------------------------------------------------------ the suite

/**
 * Registers the contract's cases for one backend, each on a fresh location from `open`. The copyFrom and
 * moveFrom cases take a source from each of {@link BACKENDS} in turn.
 * `sanitize`: whether Deno's op and resource sanitizers can watch the backend (an S3 client keeps sockets).
 */
function storageContract(name: string, open: Open, { sanitize = true } = {}): void {
  const test = (title: string, fn: (place: Place) => Promise<void>, others = false) =>
    Deno.test({
      name: `${name}: ${title}`,
      sanitizeOps: sanitize && !others,
      sanitizeResources: sanitize && !others,
      fn: async () => {
        await using place = await open();
        await fn(place);
      },
    });

  test("list: nothing in a new location; every file, recursively, by path in code-unit order", async (place) => {
    const { storage } = place;
    assert.deepEqual(await Array.fromAsync(storage.list()), []);
    const files = {
      "b.csv": "b",
      "B.csv": "B!",
      "a-b.csv": "dash",
      "a.b": "dot",
      "a/b.csv": "slash",
      "z/y/x/w.csv": "deep",
      "0.csv": "",
      "ü.csv": "u",
      "！full-width.csv": "ff01",
      "🦆.csv": "astral", // UTF-16 puts it before U+FF01, UTF-8 after: lakerun sorts as JavaScript does
      ".hidden.csv": "not a temporary name",
    };
    await writeAll(storage, files);
    const listed = await Array.fromAsync(storage.list());
    assert.deepEqual(listed.map((file) => file.path), Object.keys(files).sort());
    for (const file of listed) {
      assert.equal(file.kind, "file");
      assert.equal(file.size, text(files[file.path as keyof typeof files]).length, file.path);
      assert.ok(file.mtime instanceof Date, `${file.path}: mtime`);
      // list and stat agree
      const stat = await storage.stat(file.path);
      assert.deepEqual([stat?.path, stat?.size, stat?.kind], [file.path, file.size, file.kind]);
      if (file.etag !== undefined && stat?.etag !== undefined) assert.equal(stat.etag, file.etag);
    }
    assert.deepEqual(await treeOf(storage), digests(files));
  });

  test("list skips temporary names: files, folders and nested ones", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "a.csv": "a", "sub/b.csv": "b" });
    await place.plant(`${TEMP_PREFIX}x-a.csv`, text("half"));
    await place.plant(`${TEMP_PREFIX}y-batch/c.csv`, text("staged"));
    await place.plant(`sub/${TEMP_PREFIX}z-b.csv`, text("half"));
    await place.plant(`sub/${TEMP_PREFIX}w/deeper/d.csv`, text("staged"));
    assert.deepEqual(await paths(storage), ["a.csv", "sub/b.csv"]);
    assert.deepEqual(await treeOf(storage), digests({ "a.csv": "a", "sub/b.csv": "b" }));
  });

  test("list of a location that does not exist fails, saying so", async (place) => {
    await assert.rejects(Array.fromAsync((await place.missing()).list()), /does not exist/);
  });

  test("stat: a file's path, size and kind; undefined for a missing file and for a folder", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "dir/a.csv": "abc" });
    const stat = await storage.stat("dir/a.csv");
    assert.deepEqual([stat?.path, stat?.size, stat?.kind], ["dir/a.csv", 3, "file"]);
    assert.ok(stat?.mtime instanceof Date);
    assert.equal(await storage.stat("dir/missing.csv"), undefined);
    assert.equal(await storage.stat("no/such/folder.csv"), undefined);
    assert.equal(await storage.stat("dir"), undefined, "a folder is not a file");
  });

  test("read: the bytes as stored; a missing file fails naming it; a read may be cancelled", async (place) => {
    const { storage } = place;
    await storage.write("few.bin", streamOf(FEW_MIB));
    assert.equal(sha256Hex(await bytesOf(await storage.read("few.bin"))), sha256Hex(FEW_MIB));
    await assert.rejects(storage.read("missing.csv"), /missing\.csv/);
    const reader = (await storage.read("few.bin")).getReader();
    assert.ok((await reader.read()).value!.length > 0);
    await reader.cancel();
    await storage.write("few.bin", streamOf(text("replaced")));
    assert.deepEqual(await treeOf(storage), digests({ "few.bin": "replaced" }));
  });

  test("write: size, sha256 only when asked, nested folders made, an existing file replaced", async (place) => {
    const { storage } = place;
    const written = await storage.write("a/b/c.csv", streamOf(text("abc")), { size: 3, sha256: true });
    assert.deepEqual([written.size, written.sha256], [3, sha256Hex("abc")]);
    const plain = await storage.write("a/b/c.csv", streamOf(text("longer")));
    assert.deepEqual([plain.size, plain.sha256], [6, undefined], "sha256 only when asked");
    assert.deepEqual(await treeOf(storage), digests({ "a/b/c.csv": "longer" }));
    assert.deepEqual(await place.leftovers(), []);
  });

  test("write is atomic: nothing at the path until the last byte is stored", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "in/progress.bin": "the old bytes" });
    const { stream, paused, resume } = pausingStream(FEW_MIB, DEFAULT_PART_SIZE + MiB);
    const writing = storage.write("in/progress.bin", stream, { size: FEW_MIB.length });
    writing.catch(() => {}); // asserted below
    await paused; // every byte but the last 7 taken (on S3: a multipart upload, its first part sent)
    assert.deepEqual(await treeOf(storage), digests({ "in/progress.bin": "the old bytes" }));
    assert.equal((await storage.stat("in/progress.bin"))?.size, 13);
    assert.deepEqual(await paths(storage), ["in/progress.bin"]);
    resume();
    assert.equal((await writing).size, FEW_MIB.length);
    assert.deepEqual(await treeOf(storage), digests({ "in/progress.bin": FEW_MIB }));
    assert.deepEqual(await place.leftovers(), []);
  });

  test("write of another size than announced fails, stores nothing, keeps the file it would replace", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "in/keep.bin": "the old bytes" });
    for (
      const [bytes, size] of [[FEW_MIB, FEW_MIB.length + 1], [FEW_MIB, FEW_MIB.length - 1], [text("abc"), 10]]
    ) {
      for (const path of ["in/keep.bin", "in/new/file.bin"]) {
        await assert.rejects(storage.write(path, streamOf(bytes as Uint8Array), { size: size as number }), {
          name: "SizeMismatchError",
          message: new RegExp(`expected ${size} bytes`),
        });
      }
    }
    assert.deepEqual(
      await treeOf(storage, { temporaries: true }),
      digests({ "in/keep.bin": "the old bytes" }),
    );
    assert.deepEqual(await leftoversOfNothing(place), []);
  });

  test("write from a stream that fails stores nothing and keeps the file it would replace", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "in/keep.bin": "the old bytes" });
    for (const failAfter of [0, 1000, DEFAULT_PART_SIZE + 1000]) {
      for (const path of ["in/keep.bin", "in/new/file.bin"]) {
        await assert.rejects(storage.write(path, failingStream(FEW_MIB, failAfter)), /source broke/);
      }
    }
    assert.deepEqual(
      await treeOf(storage, { temporaries: true }),
      digests({ "in/keep.bin": "the old bytes" }),
    );
    assert.deepEqual(await leftoversOfNothing(place), []);
  });

  test("write aborted through its signal, mid-way or before it starts, stores nothing", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "in/keep.bin": "the old bytes" });
    for (const path of ["in/keep.bin", "in/new/file.bin"]) {
      const controller = new AbortController();
      const { stream, paused, resume } = pausingStream(FEW_MIB, DEFAULT_PART_SIZE + MiB);
      const writing = storage.write(path, stream, { signal: controller.signal });
      writing.catch(() => {}); // asserted below
      await paused;
      controller.abort(new Error("interrupted"));
      await assert.rejects(writing, /interrupted/);
      resume();
      const early = storage.write(path, streamOf(text("x")), {
        signal: AbortSignal.abort(new Error("too late")),
      });
      await assert.rejects(early, /too late/);
    }
    assert.deepEqual(
      await treeOf(storage, { temporaries: true }),
      digests({ "in/keep.bin": "the old bytes" }),
    );
    assert.deepEqual(await leftoversOfNothing(place), []);
  });

  test("batch: nothing visible before commit; commit lands every file and leaves nothing else", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "replaced.csv": "the old bytes" });
    const files = { "a.csv": text("a\n"), "nested/deeper/few.bin": FEW_MIB, "zero.csv": new Uint8Array() };
    const batch = await storage.batch();
    for (const [path, bytes] of Object.entries(files)) {
      const written = await batch.write(path, streamOf(bytes), { size: bytes.length, sha256: true });
      assert.deepEqual([written.size, written.sha256], [bytes.length, sha256Hex(bytes)]);
    }
    await batch.write("replaced.csv", streamOf(text("the new bytes")));
    assert.deepEqual(await treeOf(storage), digests({ "replaced.csv": "the old bytes" }));
    assert.deepEqual(await paths(storage), ["replaced.csv"]);
    assert.equal(await storage.stat("a.csv"), undefined);
    await batch.commit();
    assert.deepEqual(
      await treeOf(storage, { temporaries: true }),
      digests({ ...files, "replaced.csv": "the new bytes" }),
    );
    assert.deepEqual(await place.leftovers(), []);
  });

  test("batch: files go into folders already there beside what they hold; new folders land whole", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "in/keep.csv": "kept", "in/deeper/keep.csv": "kept too" });
    const files = {
      "in/new.csv": "new",
      "in/deeper/new.csv": "new, deeper",
      "in/other/new.csv": "new folder in an old one",
      "fresh/a/b.csv": "a new folder",
      "fresh/c.csv": "beside it",
      "top.csv": "at the top",
    };
    const batch = await storage.batch();
    for (const [path, content] of Object.entries(files)) await batch.write(path, streamOf(text(content)));
    assert.deepEqual(
      await paths(storage),
      ["in/deeper/keep.csv", "in/keep.csv"],
      "nothing visible before commit",
    );
    await batch.commit();
    assert.deepEqual(
      await treeOf(storage, { temporaries: true }),
      digests({ ...files, "in/keep.csv": "kept", "in/deeper/keep.csv": "kept too" }),
    );
    assert.deepEqual(await place.leftovers(), []);
  });

  test("batch: abort removes everything staged, also after a failed write; twice is fine", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "kept.csv": "kept" });
    const batch = await storage.batch();
    await batch.write("x.csv", streamOf(text("x")));
    await batch.write("kept.csv", streamOf(text("never")));
    await batch.write("y/few.bin", streamOf(FEW_MIB));
    await assert.rejects(
      batch.write("z.bin", failingStream(FEW_MIB, DEFAULT_PART_SIZE + 1000)),
      /source broke/,
    );
    await batch.abort();
    await batch.abort();
    assert.deepEqual(await treeOf(storage, { temporaries: true }), digests({ "kept.csv": "kept" }));
    assert.deepEqual(await place.leftovers(), []);
    const empty = await storage.batch();
    await empty.commit();
    assert.deepEqual(await place.leftovers(), [], "an empty batch leaves nothing either");
  });

  test("batch: a path written twice lands once, with the last bytes", async (place) => {
    const { storage } = place;
    const batch = await storage.batch();
    await batch.write("twice.csv", streamOf(text("first")));
    await batch.write("twice.csv", streamOf(text("second")));
    await batch.commit();
    assert.deepEqual(await treeOf(storage, { temporaries: true }), digests({ "twice.csv": "second" }));
    assert.deepEqual(await place.leftovers(), []);
  });

  test("batch: open, per CAPABILITIES: a writer whose caller reuses its buffer; aborted writers leave nothing", async (place) => {
    const { storage } = place;
    const batch = await storage.batch();
    assert.equal(typeof batch.open === "function", CAPABILITIES[storage.kind].batchOpen);
    if (!batch.open) return await batch.abort();
    await writeAll(storage, { "kept.csv": "kept" });
    const buffer = new Uint8Array(3);
    const writer = await batch.open("nested/reused.csv", { size: 9, sha256: true });
    for (const part of ["abc", "def", "ghi"]) {
      buffer.set(text(part));
      await writer.write(buffer); // then overwritten: the writer must be done with it
    }
    assert.deepEqual(await writer.close(), { size: 9, sha256: sha256Hex(text("abcdefghi")) });
    // large chunks (which a local writer writes on another thread), from one buffer refilled after each write
    const large = new Uint8Array(MiB);
    const big = await batch.open("big.bin", { size: 3 * MiB });
    for (const fill of [1, 2, 3]) {
      large.fill(fill);
      await big.write(large);
    }
    await big.close();
    writer.abort(); // after a successful close: nothing happens
    const short = await batch.open("short.csv", { size: 10 });
    short.write(text("abc"));
    await assert.rejects(short.close(), /short\.csv/);
    const dropped = await batch.open("kept.csv");
    dropped.write(text("never"));
    dropped.abort();
    const twice = await batch.open("nested/reused.csv");
    twice.write(text("second"));
    await twice.close();
    assert.deepEqual(await paths(storage), ["kept.csv"]);
    await batch.commit();
    assert.deepEqual(
      await treeOf(storage, { temporaries: true }),
      digests({
        "kept.csv": "kept",
        "nested/reused.csv": "second",
        "big.bin": new Uint8Array(3 * MiB).map((_, i) => 1 + Math.floor(i / MiB)),
      }),
    );
    assert.deepEqual(await place.leftovers(), []);
  });

  for (const [sourceName, source] of Object.entries(BACKENDS)) {
    const others = !source.sanitize;
    test(
      `copyFrom with a ${sourceName} source: per CAPABILITIES, and nothing stored when it cannot`,
      async (place) => {
        await using from = await source.open();
        const capability = CAPABILITIES[place.storage.kind].copyFrom[from.storage.kind];
        const large = randomBytes(RANGED_DOWNLOAD_MIN + MiB + 7, 43);
        const files = {
          "small.csv": text("id\n1\n"),
          "zero.csv": new Uint8Array(),
          "odd dir/ü +%20.csv": text("odd"),
          "few.bin": FEW_MIB,
          "large.bin": large, // from which S3 → local goes by ranges
        };
        await writeAll(from.storage, files);
        const copied: Record<string, Uint8Array> = {};
        for (const [path, bytes] of Object.entries(files)) {
          const listed = await from.storage.stat(path);
          const result = await place.storage.copyFrom?.(from.storage, path, `copies/${path}`, {
            size: listed?.size,
            etag: listed?.etag,
          });
          const copies = capability === "server-side" || capability === "file-copy" ||
            (capability === "ranged" && bytes.length >= RANGED_DOWNLOAD_MIN);
          if (!copies) {
            assert.equal(result, undefined, `${path}: ${capability}`);
            continue;
          }
          assert.deepEqual(
            [result?.size, result?.serverSide],
            [bytes.length, capability === "server-side"],
            path,
          );
          copied[`copies/${path}`] = bytes;
        }
        assert.deepEqual(await treeOf(place.storage, { temporaries: true }), digests(copied));

        // a source of another size than announced, or none at all: nothing stored
        for (const [path, size] of [["large.bin", large.length + 1], ["missing.bin", undefined]] as const) {
          const copy = place.storage.copyFrom?.(from.storage, path, "wrong.bin", { size });
          if (capability === "none") assert.equal(await copy, undefined);
          else if (path === "large.bin") await assert.rejects(copy!, /expected \d+ bytes/);
          else await copy?.catch(() => undefined); // rejects, or leaves the caller's read to fail
        }
        assert.deepEqual(await treeOf(place.storage, { temporaries: true }), digests(copied));
        assert.deepEqual(await leftoversOfNothing(place), [], "a declined or failed copy leaves nothing");
        assert.deepEqual(
          await treeOf(from.storage, { temporaries: true }),
          digests(files),
          "the source as it was",
        );
      },
      others,
    );

    test(
      `moveFrom with a ${sourceName} source: per CAPABILITIES, and nothing changed when it cannot`,
      async (place) => {
        await using from = await source.open();
        const capability = CAPABILITIES[place.storage.kind].moveFrom[from.storage.kind];
        const files = { "a/b/moved.csv": "moved", "a/kept.csv": "kept", "replacing.csv": "new" };
        await writeAll(from.storage, files);
        await writeAll(place.storage, { "x/replaced.csv": "old" });
        const moved = await tryMove(place.storage, from.storage, "a/b/moved.csv", "x/y/moved.csv");
        const replaced = await tryMove(place.storage, from.storage, "replacing.csv", "x/replaced.csv");
        if (capability === "rename") {
          assert.deepEqual([moved, replaced], [true, true]);
          assert.deepEqual(
            await treeOf(place.storage, { temporaries: true }),
            digests({ "x/y/moved.csv": "moved", "x/replaced.csv": "new" }),
          );
          assert.deepEqual(
            await treeOf(from.storage, { temporaries: true }),
            digests({ "a/kept.csv": "kept" }),
          );
        } else {
          assert.deepEqual([moved, replaced], [false, false]);
          assert.deepEqual(
            await treeOf(place.storage, { temporaries: true }),
            digests({ "x/replaced.csv": "old" }),
          );
          assert.deepEqual(await treeOf(from.storage, { temporaries: true }), digests(files));
        }
        assert.deepEqual(await place.leftovers(), []);
        assert.deepEqual(await from.leftovers(), [], "emptied folders of the source go too");
      },
      others,
    );
  }

  test("remove: the file goes, emptied folders with it, never the location; twice is fine", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "a/b/c.txt": "c", "a/d.txt": "d", "top.txt": "top" });
    await storage.remove("a/b/c.txt");
    assert.deepEqual(await treeOf(storage), digests({ "a/d.txt": "d", "top.txt": "top" }));
    assert.deepEqual(await place.leftovers(), [], "a/b/ is pruned");
    await storage.remove("a/b/c.txt");
    await storage.remove("never/was/there.txt");
    await storage.remove("a/d.txt");
    await storage.remove("top.txt");
    assert.deepEqual(await treeOf(storage, { temporaries: true }), {});
    assert.deepEqual(await place.leftovers(), []);
    assert.deepEqual(await Array.fromAsync(storage.list()), [], "the location itself is still there");
  });

  test("sha256: of the stored bytes, 0-byte files included; a missing file fails naming it", async (place) => {
    const { storage } = place;
    await writeAll(storage, { "a.csv": "a", "zero.csv": "", "nested/few.bin": FEW_MIB });
    assert.equal(await storage.sha256("a.csv"), sha256Hex("a"));
    assert.equal(await storage.sha256("zero.csv"), EMPTY_SHA256);
    assert.equal(await storage.sha256("nested/few.bin"), sha256Hex(FEW_MIB));
    await assert.rejects(storage.sha256("missing.csv"), /missing\.csv/);
  });

  test("removeTemporaries: the top level by default, every level with recursive; real files stay", async (place) => {
    const { storage } = place;
    const real = { "real.csv": "real", "sub/real.csv": "real" };
    await writeAll(storage, real);
    await place.plant(`${TEMP_PREFIX}a-x.csv`, text("half"));
    await place.plant(`${TEMP_PREFIX}b-batch/one.csv`, text("staged"));
    await place.plant(`${TEMP_PREFIX}b-batch/deeper/two.csv`, text("staged"));
    await place.plant(`sub/${TEMP_PREFIX}c-y.csv`, text("half"));
    await place.plant(`sub/${TEMP_PREFIX}d/z.csv`, text("staged"));
    const perFolder = CAPABILITIES[storage.kind].temporaryFolderCounts === "once" ? 1 : 2;

    // (a killed run's S3 uploads: tests/storage_s3_test.ts, with the step's records of them)
    assert.deepEqual(await storage.removeTemporaries(), { temporaries: 1 + perFolder, uploads: 0 });
    assert.deepEqual(
      await treeOf(storage, { temporaries: true }),
      digests({ ...real, [`sub/${TEMP_PREFIX}c-y.csv`]: "half", [`sub/${TEMP_PREFIX}d/z.csv`]: "staged" }),
    );
    assert.deepEqual(await storage.removeTemporaries({ recursive: true }), { temporaries: 2, uploads: 0 });
    assert.deepEqual(await treeOf(storage, { temporaries: true }), digests(real));
    assert.deepEqual(await place.leftovers(), []);
    assert.deepEqual(await storage.removeTemporaries({ recursive: true }), { temporaries: 0, uploads: 0 });
  });

  test("unsafe paths are refused by every method, and nothing is stored", async (place) => {
    const { storage } = place;
    // a backslash or a drive letter is an ordinary character of a Linux file name and an S3 key (see the
    // awkward names); only Windows refuses them
    const windows = Deno.build.os === "windows" ? ["a\\b.csv", "C:x.csv"] : [];
    for (const path of ["../escape.csv", "/abs.csv", "a//b.csv", "a/./b.csv", "a/../b.csv", "", ...windows]) {
      const unsafe = { name: "UnsafePathError" };
      await assert.rejects(storage.write(path, streamOf(text("x"))), unsafe, `write ${path}`);
      await assert.rejects(storage.stat(path), unsafe, `stat ${path}`);
      await assert.rejects(storage.read(path), unsafe, `read ${path}`);
      await assert.rejects(storage.sha256(path), unsafe, `sha256 ${path}`);
      await assert.rejects(storage.remove(path), unsafe, `remove ${path}`);
      const batch = await storage.batch();
      await assert.rejects(batch.write(path, streamOf(text("x"))), unsafe, `batch.write ${path}`);
      await batch.abort();
    }
    assert.deepEqual(await treeOf(storage, { temporaries: true }), {});
    assert.deepEqual(await place.leftovers(), []);
  });

  test("awkward names: spaces, unicode, + % ? # & =, deep nesting — every operation round-trips", async (place) => {
    const { storage } = place;
    const names = [
      "a b/c d.txt",
      "ünïcødé ✓ 日本語/ファイル.csv",
      "q+u?e#r&y=v/a+b?c#d&e=f %20 (1)~'!$;,@.txt",
      "x/%2F%2e%2e/plain.txt",
      "100% +plus+ .csv",
      ...(Deno.build.os === "windows" ? [] : ["back\\slash.csv", "C:report.csv"]),
      "🦆/emoji 🦆.csv",
      `${Array.from({ length: 24 }, (_, i) => `level-${i}`).join("/")}/leaf.txt`,
    ];
    const files = Object.fromEntries(names.map((name, i) => [name, randomBytes(100 + i, 50 + i)]));
    for (const [name, bytes] of Object.entries(files)) {
      const written = await storage.write(name, streamOf(bytes), { size: bytes.length, sha256: true });
      assert.equal(written.sha256, sha256Hex(bytes), name);
      assert.equal((await storage.stat(name))?.size, bytes.length, name);
      assert.equal(sha256Hex(await bytesOf(await storage.read(name))), sha256Hex(bytes), name);
      assert.equal(await storage.sha256(name), sha256Hex(bytes), name);
    }
    const batch = await storage.batch();
    for (const [name, bytes] of Object.entries(files)) await batch.write(`batched/${name}`, streamOf(bytes));
    await batch.commit();
    const batched = Object.fromEntries(
      Object.entries(files).map(([name, bytes]) => [`batched/${name}`, bytes]),
    );
    assert.deepEqual(await paths(storage), Object.keys({ ...files, ...batched }).sort());
    assert.deepEqual(await treeOf(storage, { temporaries: true }), digests({ ...files, ...batched }));
    for (const name of names) {
      const copy = await storage.copyFrom?.(storage, name, `copies/${name}`);
      if (!copy) await storage.write(`copies/${name}`, await storage.read(name));
      assert.equal(await storage.sha256(`copies/${name}`), sha256Hex(files[name]), `copy of ${name}`);
    }
    for (const name of await paths(storage)) await storage.remove(name);
    assert.deepEqual(await treeOf(storage, { temporaries: true }), {});
    assert.deepEqual(await place.leftovers(), []);
  });

  test("0-byte files: write, batch, stat, list, read, sha256, overwrite and remove", async (place) => {
    const { storage } = place;
    const written = await storage.write("zero.csv", streamOf(new Uint8Array()), { size: 0, sha256: true });
    assert.deepEqual([written.size, written.sha256], [0, EMPTY_SHA256]);
    const batch = await storage.batch();
    await batch.write("batched/zero.csv", streamOf(new Uint8Array()), { size: 0 });
    await batch.commit();
    await writeAll(storage, { "was-full.csv": "full" });
    await storage.write("was-full.csv", streamOf(new Uint8Array()));
    for (const path of ["batched/zero.csv", "was-full.csv", "zero.csv"]) {
      assert.equal((await storage.stat(path))?.size, 0, path);
      assert.equal((await bytesOf(await storage.read(path))).length, 0, path);
      assert.equal(await storage.sha256(path), EMPTY_SHA256, path);
    }
    assert.deepEqual((await Array.fromAsync(storage.list())).map((file) => [file.path, file.size]), [
      ["batched/zero.csv", 0],
      ["was-full.csv", 0],
      ["zero.csv", 0],
    ]);
    assert.deepEqual(
      await treeOf(storage, { temporaries: true }),
      digests({ "batched/zero.csv": "", "was-full.csv": "", "zero.csv": "" }),
    );
    for (const path of await paths(storage)) await storage.remove(path);
    assert.deepEqual(await place.leftovers(), []);
  });

  test(`a file of a few MiB (${(FEW_MIB.length / MiB).toFixed(1)} MiB) in odd chunks: write, batch, read back`, async (place) => {
    const { storage } = place;
    const chunks = [1, 65_537, 1_000_003, 7];
    const written = await storage.write("few.bin", streamOf(FEW_MIB, chunks), {
      size: FEW_MIB.length,
      sha256: true,
    });
    assert.deepEqual([written.size, written.sha256], [FEW_MIB.length, sha256Hex(FEW_MIB)]);
    const batch = await storage.batch();
    await batch.write("batched/few.bin", streamOf(FEW_MIB, chunks), { size: FEW_MIB.length });
    await batch.commit();
    for (const path of ["few.bin", "batched/few.bin"]) {
      assert.equal((await storage.stat(path))?.size, FEW_MIB.length, path);
      assert.equal(sha256Hex(await bytesOf(await storage.read(path))), sha256Hex(FEW_MIB), path);
    }
    const tree: Tree = digests({ "few.bin": FEW_MIB, "batched/few.bin": FEW_MIB });
    assert.deepEqual(await treeOf(storage, { temporaries: true }), tree);
    assert.deepEqual(await place.leftovers(), []);
  });
}

for (const [name, { open, sanitize }] of Object.entries(BACKENDS)) storageContract(name, open, { sanitize });
stopS3ServerAfterTests(await s3TestServer());
