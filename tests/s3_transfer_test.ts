/**
 * S3TransferExecutor: copy, move and sync between local folders and S3 prefixes.
 *
 * - Local → local, each step in its real Worker: the logic (skip identical, move, sync with deletions, dry
 *   run, globs, symbolic links, refused params) and, through `transferFiles` with instrumented storages,
 *   what cannot be provoked from outside (bounded concurrency, a copy that fails verification, a failing
 *   write, an abort).
 * - Against a real S3 server (Ceph radosgw on loopback, tests/support/s3_server.ts): local → S3, S3 → local,
 *   S3 → S3 server-side, 0-byte objects, awkward keys, more than 1,000 objects, an interrupted move re-run.
 *
 * Every check is on the bytes (sha256), never on a status alone.
 *
 * Run: deno test -A tests/s3_transfer_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import definition from "../executors/s3_transfer/mod.ts";
import { transferFiles, type TransferOptions } from "../lib/transfer/transfer.ts";
import { globProblem, globToRegExp, pathFilter } from "../lib/glob.ts";
import type { Storage, StoredFile, WriteBatch, WriteOptions, WriteResult } from "../lib/storage/mod.ts";
import { LocalStorage } from "../lib/storage/local.ts";
import { parseRoutine } from "../orchestrator/routine/routine.ts";
import { lakerun, lakerunCommand, runRoutineJson, tempDir } from "./support/lakerun.ts";
import type { S3TestServer } from "./support/s3_server.ts";
import { startFaultProxy } from "./support/tcp_proxy.ts";
import { startHttpProxy } from "./support/http_proxy.ts";
import { openS3Location } from "../lib/aws/s3/storage.ts";
import { UploadRecords } from "../lib/aws/s3/upload_records.ts";
import { digests, s3Location, sha256Hex as sha256, stopS3TestServer, treeOf } from "./support/trees.ts";
import { randomBytes, streamOf } from "./support/zip_fixtures.ts";

// ---------------------------------------------------------------------------------------------------------
// helpers

type Tree = Record<string, Uint8Array | string>;

async function writeTree(dir: string, files: Tree) {
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    if (typeof content === "string") await Deno.writeTextFile(join(dir, path), content);
    else await Deno.writeFile(join(dir, path), content);
  }
}

/** Every file under a location with its sha256, temporary names included so that leftovers show. */
const ALL = { temporaries: true } as const;

function pick(files: Tree, paths: string[]): Tree {
  return Object.fromEntries(paths.map((path) => [path, files[path]]));
}

function routine(params: Record<string, unknown>, tasks: string[], s3?: Record<string, unknown>) {
  return {
    routine_name: "transfer",
    ...(s3 ? { s3 } : {}),
    executors: { S3TransferExecutor: { params: { source: "src", destination: "dst", ...params }, tasks } },
  };
}

async function run(
  cwd: string,
  params: Record<string, unknown>,
  tasks: string[],
  s3?: Record<string, unknown>,
) {
  return await runRoutineJson(routine(params, tasks, s3), { cwd });
}

/** Runs and fails the test, with the console lines, unless the routine succeeded. */
async function runOk(
  cwd: string,
  params: Record<string, unknown>,
  tasks: string[],
  s3?: Record<string, unknown>,
): Promise<string[]> {
  const { error, lines } = await run(cwd, params, tasks, s3);
  assert.equal(error, undefined, `${error?.message}\n${lines.join("\n")}`);
  return lines;
}

function hasLine(lines: string[], pattern: RegExp) {
  assert.ok(lines.some((line) => pattern.test(line)), `no line matches ${pattern}:\n${lines.join("\n")}`);
}

/**
 * A {@link Storage} that forwards to a local folder (and is not a `LocalStorage`, so a move copies, verifies
 * and deletes instead of renaming), with hooks to observe or break writes.
 */
class InstrumentedStorage implements Storage {
  readonly kind = "local" as const;
  inFlight = 0;
  maxInFlight = 0;
  writes: string[] = [];
  constructor(
    readonly inner: LocalStorage,
    readonly hooks: {
      /** Transforms the bytes written (keep the length, or the size check fires first). */
      mangle?: (path: string, chunk: Uint8Array) => Uint8Array;
      /** Runs before a write; throw to fail it. */
      beforeWrite?: (path: string, signal?: AbortSignal) => Promise<void> | void;
    } = {},
  ) {}
  get url() {
    return this.inner.url;
  }
  list(): AsyncIterable<StoredFile> {
    return this.inner.list();
  }
  stat(path: string) {
    return this.inner.stat(path);
  }
  read(path: string) {
    return this.inner.read(path);
  }
  async write(path: string, data: ReadableStream<Uint8Array>, options?: WriteOptions): Promise<WriteResult> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.writes.push(path);
    try {
      await this.hooks.beforeWrite?.(path, options?.signal);
      const mangle = this.hooks.mangle;
      const body = mangle
        ? data.pipeThrough(new TransformStream({ transform: (chunk, c) => c.enqueue(mangle(path, chunk)) }))
        : data;
      return await this.inner.write(path, body, options);
    } finally {
      this.inFlight--;
    }
  }
  batch(): Promise<WriteBatch> {
    return this.inner.batch();
  }
  remove(path: string) {
    return this.inner.remove(path);
  }
  sha256(path: string) {
    return this.inner.sha256(path);
  }
  removeTemporaries(options?: { recursive?: boolean }) {
    return this.inner.removeTemporaries(options);
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

const SAMPLE: Tree = {
  "a.csv": "id,amount\n1,10\n",
  "empty.csv": "",
  "nested/deeper/blob.bin": randomBytes(300_000 + 13, 1),
  "odd dir/ünïcødé ✓ a+b?c#d&e=f %20 (1).csv": "odd\n",
  "notes.txt": "not a csv\n",
};

// ---------------------------------------------------------------------------------------------------------
// globs

Deno.test("globs: *, **, ?, [abc], {a,b} and escapes match whole relative paths", () => {
  const cases: Array<[string, string, boolean]> = [
    ["*.csv", "a.csv", true],
    ["*.csv", "2024/a.csv", false], // `*` never crosses a folder
    ["*.csv", ".hidden.csv", true],
    ["**/*.csv", "a.csv", true], // `**/` is zero or more folders
    ["**/*.csv", "2024/01/a.csv", true],
    ["**/*.csv", "2024/01/a.csv.gz", false],
    ["2024/**", "2024/01/a.csv", true],
    ["2024/**", "2025/a.csv", false],
    ["2024/**", "2024", false],
    ["a/**/b.csv", "a/b.csv", true],
    ["a/**/b.csv", "a/x/y/b.csv", true],
    ["a/**/b.csv", "ab.csv", false],
    ["**", "any/thing/at/all", true],
    ["a**b", "axxb", true], // not a whole segment: like `*`
    ["a**b", "ax/xb", false],
    ["?.csv", "a.csv", true],
    ["?.csv", "ab.csv", false],
    ["?.csv", "é.csv", true], // one character, not one byte
    ["?", "/", false],
    ["[abc].csv", "b.csv", true],
    ["[abc].csv", "d.csv", false],
    ["[a-c][0-9].csv", "c7.csv", true],
    ["[!a-c].csv", "d.csv", true],
    ["[!a-c].csv", "a.csv", false],
    ["[^a-c].csv", "a.csv", false],
    ["[!a]", "/", false], // a class never matches a folder separator
    ["[]]x", "]x", true],
    ["[a-]", "-", true],
    ["*.{csv,tsv}", "a.tsv", true],
    ["*.{csv,tsv}", "a.json", false],
    ["{raw,clean}/**/*.csv", "clean/2024/a.csv", true],
    ["{raw,clean}/**/*.csv", "other/2024/a.csv", false],
    ["{**/*.csv,*.txt}", "x/y/z.csv", true],
    ["{a,{b,c}}.csv", "c.csv", true],
    ["{a,b[0-9]}.csv", "b7.csv", true],
    ["x{1}.csv", "x{1}.csv", true], // no comma: literal braces, as in the shell
    ["x{1.csv", "x{1.csv", true], // unclosed: literal
    ["x[1.csv", "x[1.csv", true],
    ["\\*.csv", "*.csv", true],
    ["\\*.csv", "a.csv", false],
    ["a+b(1)$.csv", "a+b(1)$.csv", true], // regular-expression characters are literal
    ["a.csv", "abcsv", false],
    ["ünï*/✓?", "ünïcødé/✓x", true],
  ];
  for (const [pattern, path, expected] of cases) {
    assert.equal(globToRegExp(pattern).test(path), expected, `${pattern} vs ${path}`);
  }
});

Deno.test("globs: invalid patterns are named; include and exclude combine", () => {
  assert.match(globProblem("/data/*.csv") ?? "", /leading '\/'/);
  assert.match(globProblem("[z-a].csv") ?? "", /out of order/i);
  assert.match(globProblem("a\\") ?? "", /lone '\\'/);
  assert.equal(globProblem(""), "empty pattern");
  assert.equal(globProblem("**/*.{csv,tsv}"), undefined);
  assert.throws(() => globToRegExp("[z-a]"), /invalid glob "\[z-a\]"/);

  const all = pathFilter([], []);
  assert.ok(all("x/y") && all("z"));
  const csvNotTmp = pathFilter(["**/*.csv"], ["tmp/**", "*.bak.csv"]);
  assert.deepEqual(
    ["a.csv", "x/b.csv", "tmp/c.csv", "d.bak.csv", "x/d.bak.csv", "e.txt"].filter(csvNotTmp),
    ["a.csv", "x/b.csv", "x/d.bak.csv"],
  );
});

// ---------------------------------------------------------------------------------------------------------
// local → local, each step in its Worker

Deno.test("copy: every file with its relative path and bytes; a re-run skips identical files, recopies changed ones", async () => {
  await using dir = await tempDir();
  const src = join(dir.path, "src");
  await writeTree(src, SAMPLE);

  let lines = await runOk(dir.path, {}, ["copy"]);
  assert.deepEqual(await treeOf(join(dir.path, "dst"), ALL), digests(SAMPLE));
  hasLine(lines, /✓ copy {2}5 files, 293\.0 KiB/);

  lines = await runOk(dir.path, {}, ["copy"]);
  hasLine(lines, /copied 0 files \(0 B\); 5 already identical/);

  // same size, other bytes: found by content (sha256), not by size
  const changed = { ...SAMPLE, "a.csv": "id,amount\n1,99\n" };
  assert.equal(String(changed["a.csv"]).length, String(SAMPLE["a.csv"]).length);
  await writeTree(src, { "a.csv": changed["a.csv"] });
  await writeTree(join(dir.path, "dst"), { "only-in-dst.csv": "kept" });
  lines = await runOk(dir.path, { concurrency: 1 }, ["copy"]);
  hasLine(lines, /copied 1 file \(15 B\); 4 already identical/);
  assert.deepEqual(
    await treeOf(join(dir.path, "dst"), ALL),
    digests({ ...changed, "only-in-dst.csv": "kept" }),
  );
  assert.deepEqual(await treeOf(src, ALL), digests(changed), "copy leaves the source alone");
});

Deno.test("move: selected files land byte-identical and leave the source; excluded and unselected files stay", async () => {
  await using dir = await tempDir();
  const files: Tree = {
    "a.csv": "a",
    "x/y/b.csv": randomBytes(70_000, 2),
    "keep/c.csv": "c",
    "d.txt": "d",
  };
  await writeTree(join(dir.path, "src"), files);
  const lines = await runOk(dir.path, { include: ["**/*.csv"], exclude: ["keep/**"] }, ["move"]);
  hasLine(lines, /moved 2 files/);
  assert.deepEqual(await treeOf(join(dir.path, "dst"), ALL), digests(pick(files, ["a.csv", "x/y/b.csv"])));
  assert.deepEqual(await treeOf(join(dir.path, "src"), ALL), digests(pick(files, ["keep/c.csv", "d.txt"])));
  await assert.rejects(Deno.stat(join(dir.path, "src/x")), Deno.errors.NotFound, "emptied folders go too");
});

Deno.test("move onto an identical copy deletes the source only; onto a different one replaces it", async () => {
  await using dir = await tempDir();
  await writeTree(join(dir.path, "src"), { "same.csv": "same", "new.csv": "newer" });
  await writeTree(join(dir.path, "dst"), { "same.csv": "same", "new.csv": "older" });
  const source = new InstrumentedStorage(new LocalStorage(join(dir.path, "src")));
  const destination = new InstrumentedStorage(new LocalStorage(join(dir.path, "dst")));
  const summary = await transferFiles(source, destination, { mode: "move" });
  assert.deepEqual(destination.writes, ["new.csv"], "the identical file is not written again");
  assert.equal(summary.files, 2);
  assert.deepEqual(
    await treeOf(join(dir.path, "dst"), ALL),
    digests({ "same.csv": "same", "new.csv": "newer" }),
  );
  assert.deepEqual(await treeOf(join(dir.path, "src"), ALL), {});
});

Deno.test("sync: copies only changed files; delete_extraneous removes selected extras, never excluded ones", async () => {
  await using dir = await tempDir();
  const files: Tree = { "a.csv": "same", "b.csv": "fresh content", "c/d.csv": "new" };
  await writeTree(join(dir.path, "src"), files);
  await writeTree(join(dir.path, "dst"), {
    "a.csv": "same",
    "b.csv": "stale",
    "extra.csv": "gone soon",
    "old/extra2.csv": "gone soon",
    "keep.log": "excluded, kept",
  });
  let lines = await runOk(dir.path, { exclude: ["*.log"] }, ["sync"]);
  hasLine(lines, /copied 2 files \(16 B\); 1 already identical/);
  assert.ok((await treeOf(join(dir.path, "dst"), ALL))["extra.csv"], "no deletion without delete_extraneous");
  lines = await runOk(dir.path, { exclude: ["*.log"], delete_extraneous: true }, ["copy"]);
  hasLine(lines, /delete_extraneous applies to sync only; copy deletes nothing/);
  assert.ok((await treeOf(join(dir.path, "dst"), ALL))["extra.csv"], "copy never deletes");

  lines = await runOk(dir.path, { exclude: ["*.log"], delete_extraneous: true }, ["sync"]);
  hasLine(lines, /copied 0 files \(0 B\); 3 already identical; deleted 2 extraneous/);
  assert.deepEqual(
    await treeOf(join(dir.path, "dst"), ALL),
    digests({ ...files, "keep.log": "excluded, kept" }),
  );
  await assert.rejects(Deno.stat(join(dir.path, "dst/old")), Deno.errors.NotFound);
});

Deno.test("sync with delete_extraneous refuses to empty the destination when the source has no selected file", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "src"));
  await writeTree(join(dir.path, "dst"), { "a.csv": "a", "b.csv": "b" });
  const { error } = await run(dir.path, { delete_extraneous: true }, ["sync"]);
  assert.match(error?.message ?? "", /src has no selected file: refusing to delete all 2 files of .*dst/);
  assert.deepEqual(await treeOf(join(dir.path, "dst"), ALL), digests({ "a.csv": "a", "b.csv": "b" }));
});

Deno.test("dry run logs one line per file and touches nothing (copy, move, sync with deletions)", async () => {
  await using dir = await tempDir();
  await writeTree(join(dir.path, "src"), {
    "a.csv": "x".repeat(12 * 1024),
    "same.csv": "same",
    "sub/b.csv": "b",
  });
  await writeTree(join(dir.path, "dst"), { "same.csv": "same", "extra.csv": "e", "b.csv": "not sub/b" });
  // a leftover temporary file: a real run would clean it, a dry run leaves it
  await writeTree(join(dir.path, "dst"), { ".lakerun-tmp-abc-a.csv": "half" });
  const before = {
    src: await treeOf(join(dir.path, "src"), ALL),
    dst: await treeOf(join(dir.path, "dst"), ALL),
  };

  let lines = await runOk(dir.path, { dry_run: true }, ["copy"]);
  hasLine(lines, /^ {4}copy a\.csv \(12\.0 KiB\)$/);
  hasLine(lines, /^ {4}copy sub\/b\.csv \(1 B\)$/);
  assert.ok(!lines.some((l) => /copy same\.csv/.test(l)), "identical files are not listed");
  hasLine(lines, /dry run: would copy 2 files \(12\.0 KiB\); 1 already identical; nothing was changed/);
  hasLine(lines, /✓ copy {2}\d/); // no "N files" summary: nothing moved

  lines = await runOk(dir.path, { dry_run: true, delete_extraneous: true }, ["sync"]);
  hasLine(lines, /^ {4}delete extra\.csv \(1 B\)$/);
  hasLine(lines, /^ {4}delete b\.csv \(9 B\)$/);
  hasLine(lines, /would delete 2 extraneous/);

  lines = await runOk(dir.path, { dry_run: true }, ["move"]);
  hasLine(lines, /^ {4}move a\.csv \(12\.0 KiB\)$/);

  assert.deepEqual(await treeOf(join(dir.path, "src"), ALL), before.src);
  assert.deepEqual(await treeOf(join(dir.path, "dst"), ALL), before.dst);
});

Deno.test("invalid params and overlapping locations are refused before anything runs", async () => {
  await using dir = await tempDir();
  const parse = (params: Record<string, unknown>) =>
    parseRoutine(JSON.stringify(routine(params, ["copy"])), {
      file: join(dir.path, "routine.json"),
      label: "routine.json",
      cwd: dir.path,
    });
  await assert.rejects(parse({ concurrency: 0 }), /params\.concurrency: .*>=1/);
  await assert.rejects(parse({ concurrency: 65 }), /params\.concurrency: .*<=64/);
  await assert.rejects(parse({ concurrency: 2.5 }), /params\.concurrency/);
  await assert.rejects(parse({ include: ["[z-a]"] }), /params\.include\[0\]: invalid glob: .*out of order/);
  await assert.rejects(parse({ exclude: ["/abs/*"] }), /params\.exclude\[0\]: invalid glob: .*leading/);
  await assert.rejects(parse({ delete: true }), /params\.delete: unknown param/);
  await assert.rejects(
    parse({ source: "/data/lake", destination: "/data/lake/archive" }),
    /params\.destination: source and destination overlap/,
  );
  await assert.rejects(
    parse({ source: "s3://lake/raw", destination: "s3://lake/raw/2024" }),
    /source and destination overlap/,
  );
  // one folder written two ways: compared as real paths, still before anything runs
  await assert.rejects(
    parse({ source: "src", destination: join(dir.path, "src", "copy") }),
    /params\.destination: source and destination overlap: one is inside the other: "src" and ".*\/src\/copy"/,
  );
  await assert.rejects(
    parse({ source: "src", destination: "gs://lake/raw" }),
    /params\.destination: "gs:\/\/lake\/raw" is neither a local folder nor an s3:\/\/ location/,
  );
  // a padded location is refused, named and quoted (not taken as the local folder "./ s3:/lake/x"); an empty
  // one is empty, not overlapping
  await assert.rejects(
    parse({ source: " s3://lake/x", destination: "dst" }),
    /params\.source: " s3:\/\/lake\/x" has leading or trailing whitespace/,
  );
  await assert.rejects(
    parse({ source: "src", destination: "dst\n" }),
    /params\.destination: "dst\\n" has leading or trailing whitespace/,
  );
  const empty = await parse({ source: "src", destination: "" }).catch((error) => error);
  assert.match(empty.message, /params\.destination: is empty/);
  assert.doesNotMatch(empty.message, /overlap/);
  await parse({ source: "s3://lake/raw", destination: "s3://lake/raw2" }); // a sibling prefix is fine
  await parse({ concurrency: 64, include: ["**/*.{csv,tsv}"] });

  // relative paths are compared after normalising, already when the routine is validated
  await writeTree(join(dir.path, "src"), { "a.csv": "a" });
  await assert.rejects(
    run(dir.path, { source: "src", destination: "./src/../src/copy" }, ["copy"]),
    /params\.destination: source and destination overlap/,
  );
  assert.deepEqual(await treeOf(join(dir.path, "src"), ALL), digests({ "a.csv": "a" }));

  // through a symbolic link (the QA report's sync deleted its own source): refused, nothing touched
  await writeTree(join(dir.path, "data"), { "keep.csv": "k", "sub/a.csv": "a" });
  await Deno.symlink(join(dir.path, "data/sub"), join(dir.path, "subl"));
  await Deno.symlink(join(dir.path, "data"), join(dir.path, "datal"));
  for (
    const [params, tasks] of [
      [{ source: "subl", destination: "data", delete_extraneous: true }, ["sync"]],
      [{ source: "datal", destination: "data/sub/moved" }, ["move"]],
      [{ source: "data/sub", destination: "datal/sub/copy" }, ["copy"]],
    ] as const
  ) {
    await assert.rejects(
      run(dir.path, params, [...tasks]),
      /params\.destination: source and destination overlap/,
      JSON.stringify(params),
    );
  }
  assert.deepEqual(await treeOf(join(dir.path, "data"), ALL), digests({ "keep.csv": "k", "sub/a.csv": "a" }));
});

Deno.test("permissions: the source is written only by move; the step's Worker enforces the scope", async () => {
  const context = (tasks?: string[]) => ({ cwd: "/w", resolve: (p: string) => join("/w", p), tasks });
  const params = definition.params((await import("zod")).z).parse({ source: "in", destination: "out" });
  const copy = definition.permissions(params, context(["copy", "sync"]));
  assert.deepEqual(copy.read, ["/w/in", "/w/out"]);
  assert.deepEqual(copy.write, ["/w/out"]);
  assert.deepEqual(definition.permissions(params, context(["move"])).write, ["/w/in", "/w/out"]);
  // without the task list (older orchestrator), move must still work
  assert.deepEqual(definition.permissions(params, context()).write, ["/w/in", "/w/out"]);
  const s3 = definition.permissions(
    definition.params((await import("zod")).z).parse({ source: "s3://lake/raw", destination: "out" }),
    { cwd: "/w", resolve: (p: string) => join("/w", p), s3: { endpoint: "http://127.0.0.1:7480" } },
  );
  assert.deepEqual(s3.net, ["127.0.0.1:7480"]);
  assert.ok(s3.env?.includes("AWS_*"));

  // a symbolic link in the source pointing outside the scope is not followed, so nothing is refused
  await using dir = await tempDir();
  await writeTree(join(dir.path, "src"), { "a.csv": "a" });
  await writeTree(join(dir.path, "outside"), { "secret.csv": "secret" });
  await Deno.symlink(join(dir.path, "outside/secret.csv"), join(dir.path, "src/link.csv"));
  await Deno.symlink(join(dir.path, "outside"), join(dir.path, "src/linked-dir"));
  const lines = await runOk(dir.path, {}, ["copy"]);
  hasLine(lines, /skipping symbolic link link\.csv \(never followed\)/);
  hasLine(lines, /skipping symbolic link linked-dir \(never followed\)/);
  assert.deepEqual(await treeOf(join(dir.path, "dst"), ALL), digests({ "a.csv": "a" }));
});

Deno.test("a symbolic link inside the destination is never written through; the error names the file", async () => {
  await using dir = await tempDir();
  await writeTree(join(dir.path, "src"), { "sub/b.csv": "b" });
  await Deno.mkdir(join(dir.path, "elsewhere"));
  await Deno.mkdir(join(dir.path, "dst"));
  await Deno.symlink(join(dir.path, "elsewhere"), join(dir.path, "dst/sub"));
  const { error } = await run(dir.path, {}, ["copy"]);
  assert.match(error?.message ?? "", /copy sub\/b\.csv: refusing to write through symbolic link .*dst\/sub/);
  assert.deepEqual(await treeOf(join(dir.path, "elsewhere"), ALL), {});
});

Deno.test("a missing source fails with its path; a missing destination is created", async () => {
  await using dir = await tempDir();
  const { error } = await run(dir.path, {}, ["copy"]);
  assert.match(error?.message ?? "", /src does not exist/);
  await writeTree(join(dir.path, "src"), { "a.csv": "a" });
  await runOk(dir.path, { destination: "new/deep/dst" }, ["sync"]);
  assert.deepEqual(await treeOf(join(dir.path, "new/deep/dst"), ALL), digests({ "a.csv": "a" }));
});

// ---------------------------------------------------------------------------------------------------------
// transferFiles with instrumented storages

Deno.test("move deletes nothing whose copy fails verification, and names the file", async () => {
  await using dir = await tempDir();
  const files: Tree = { "a.csv": "original bytes", "b.csv": "more bytes" };
  await writeTree(join(dir.path, "src"), files);
  const source = new LocalStorage(join(dir.path, "src"));
  // the destination silently corrupts what it stores (same length, so only the content check sees it)
  const destination = new InstrumentedStorage(new LocalStorage(join(dir.path, "dst")), {
    mangle: (path, chunk) => (path === "b.csv" ? chunk.map((byte) => byte ^ 1) : chunk),
  });
  await assert.rejects(
    transferFiles(source, destination, { mode: "move", concurrency: 1 }),
    /move b\.csv: b\.csv: copy differs from the source \(sha256\)/,
  );
  // a.csv was verified and moved; b.csv is still in the source, whole
  assert.deepEqual(await treeOf(join(dir.path, "src"), ALL), digests(pick(files, ["b.csv"])));
  assert.equal((await treeOf(join(dir.path, "dst"), ALL))["a.csv"], sha256("original bytes"));
});

Deno.test("a failing write stops the transfer, names the file, and sync deletes nothing", async () => {
  await using dir = await tempDir();
  const files: Tree = {};
  for (let i = 0; i < 20; i++) files[`f${String(i).padStart(2, "0")}.csv`] = `file ${i}`;
  await writeTree(join(dir.path, "src"), files);
  await writeTree(join(dir.path, "dst"), { "extraneous.csv": "e" });
  const destination = new InstrumentedStorage(new LocalStorage(join(dir.path, "dst")), {
    beforeWrite: (path) => {
      if (path === "f05.csv") throw new Error("disk full");
    },
  });
  await assert.rejects(
    transferFiles(new LocalStorage(join(dir.path, "src")), destination, {
      mode: "sync",
      deleteExtraneous: true,
      concurrency: 2,
    }),
    /copy f05\.csv: disk full/,
  );
  const after = await treeOf(join(dir.path, "dst"), ALL);
  assert.equal(after["extraneous.csv"], sha256("e"), "no deletion unless every copy succeeded");
  assert.ok(destination.writes.length < 20, "no new file started after the failure");
  for (const [path, hash] of Object.entries(after)) {
    if (path !== "extraneous.csv") assert.equal(hash, sha256(files[path]), `${path} is whole`);
  }
});

Deno.test("never more than `concurrency` files in flight, and exactly that many when there is work", async () => {
  await using dir = await tempDir();
  const files: Tree = {};
  for (let i = 0; i < 24; i++) files[`f${i}.bin`] = randomBytes(1000 + i, i + 1);
  await writeTree(join(dir.path, "src"), files);
  for (const concurrency of [1, 3, 8]) {
    const dst = join(dir.path, `dst-${concurrency}`);
    const destination = new InstrumentedStorage(new LocalStorage(dst), {
      beforeWrite: (_path, signal) => sleep(15, signal),
    });
    const summary = await transferFiles(new LocalStorage(join(dir.path, "src")), destination, {
      mode: "copy",
      concurrency,
    });
    assert.equal(destination.maxInFlight, concurrency, `concurrency ${concurrency}`);
    assert.equal(summary.files, 24);
    assert.deepEqual(await treeOf(dst, ALL), digests(files));
  }
});

Deno.test("an aborted transfer leaves no partial or temporary file; a re-run completes without duplicates", async () => {
  await using dir = await tempDir();
  const files: Tree = {};
  for (let i = 0; i < 12; i++) files[`part-${i}.bin`] = randomBytes(200_000 + i, 50 + i);
  await writeTree(join(dir.path, "src"), files);
  const source = new LocalStorage(join(dir.path, "src"));
  const controller = new AbortController();
  const slow = new InstrumentedStorage(new LocalStorage(join(dir.path, "dst")), {
    beforeWrite: async (_path, signal) => {
      if (slow.writes.length === 5) controller.abort(new Error("interrupted"));
      await sleep(10, signal);
    },
  });
  const options: TransferOptions = { mode: "move", concurrency: 2, signal: controller.signal };
  await assert.rejects(transferFiles(source, slow, options), /interrupted/);
  const midway = {
    src: await treeOf(join(dir.path, "src"), ALL),
    dst: await treeOf(join(dir.path, "dst"), ALL),
  };
  assert.ok(Object.keys(midway.src).length > 0 && Object.keys(midway.dst).length > 0, "stopped mid-way");
  for (const [path, hash] of Object.entries(digests(files))) {
    assert.ok(midway.src[path] === hash || midway.dst[path] === hash, `${path} exists whole somewhere`);
  }
  for (const path of Object.keys(midway.dst)) assert.ok(files[path], `unexpected ${path} in dst`);

  const summary = await transferFiles(source, new InstrumentedStorage(slow.inner), { mode: "move" });
  assert.equal(summary.files, Object.keys(midway.src).length);
  assert.deepEqual(await treeOf(join(dir.path, "dst"), ALL), digests(files));
  assert.deepEqual(await treeOf(join(dir.path, "src"), ALL), {});
});

// ---------------------------------------------------------------------------------------------------------
// against a real S3 server

/**
 * Runs a routine through lakerun's command line (`deno run -A main.ts run FILE`) with the server's credentials
 * in the child's environment, whatever this process's holds, and fails the test, with the output, unless it
 * succeeded. Returns the console lines.
 */
async function runCli(
  server: S3TestServer,
  cwd: string,
  params: Record<string, unknown>,
  tasks: string[],
): Promise<string[]> {
  const file = join(cwd, `routine-${crypto.randomUUID().slice(0, 8)}.json`);
  await Deno.writeTextFile(file, JSON.stringify(routine(params, tasks, { endpoint: server.endpoint })));
  const result = await lakerun(["run", file], { cwd, env: server.env });
  assert.equal(result.code, 0, `exit ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result.stdout.split("\n");
}

function spawnLakerun(cwd: string, server: S3TestServer): Deno.ChildProcess {
  return lakerunCommand(["run", "routine.json"], { cwd, env: server.env }).spawn();
}

Deno.test("a listing page truncated without a continuation token fails the sync; nothing is deleted", async () => {
  await using lake = await s3Location("transfer-truncated");
  const files: Tree = { "a.csv": "a\n", "b.csv": "b\n", "c.csv": "c\n" };
  for (const [path, text] of Object.entries(files)) {
    await lake.storage.write(path, new Blob([text as string]).stream());
  }
  await using dir = await tempDir();
  await writeTree(dir.path, files); // already synced
  // a server (or proxy) that pages after one key and drops the token that says where to go on
  let truncating = "list-type"; // ListObjectsV2, then ListMultipartUploads ("uploads")
  await using proxy = startHttpProxy(
    lake.server.endpoint,
    (request, body) =>
      request.query.has(truncating)
        ? body.replace(/<IsTruncated>false<\/IsTruncated>/, "<IsTruncated>true</IsTruncated>")
          .replace(/<NextContinuationToken>[^<]*<\/NextContinuationToken>/, "")
          .replace(/<Next(KeyMarker|UploadIdMarker)>[^<]*<\/Next\1>|<Next(KeyMarker|UploadIdMarker)\/>/g, "")
          .replace(/(<\/Contents>)[\s\S]*(<\/ListBucketResult>)/, "$1$2")
        : body,
  );
  const source = openS3Location(lake.url, { ...lake.settings, endpoint: proxy.endpoint });
  await assert.rejects(
    transferFiles(source, new LocalStorage(dir.path), { mode: "sync", deleteExtraneous: true }),
    {
      name: "IncompleteListingError",
      message:
        `${lake.url}: a ListObjectsV2 page says more follows (IsTruncated) but gives no marker to continue ` +
        "from; refusing an incomplete listing (is a proxy or an S3-compatible server dropping it?)",
    },
  );
  assert.deepEqual(await treeOf(dir.path, ALL), digests(files), "the destination keeps every file");
  // the same for the listing of unfinished uploads, which aborts the ones a killed run of the step recorded
  await using state = await tempDir();
  const killed = await lake.storage.batch(); // (a run killed with this batch open)
  await killed.write("d.csv", new Blob(["d\n"]).stream());
  await new UploadRecords(state.path, { session: "killed" }).started({
    endpoint: proxy.endpoint,
    bucket: lake.bucket,
    key: lake.key("d.csv"),
    uploadId: (await lake.client.send(new ListMultipartUploadsCommand({ Bucket: lake.bucket }))).Uploads![0]
      .UploadId!,
  });
  truncating = "uploads";
  const destination = openS3Location(lake.url, { ...lake.settings, endpoint: proxy.endpoint }, {
    stateDir: state.path,
  });
  await assert.rejects(destination.removeTemporaries(), {
    name: "IncompleteListingError",
    message: new RegExp(`^${lake.url}: a ListMultipartUploads page says more follows`),
  });
  await killed.abort();
  assert.ok(
    proxy.requests.some((r) => r.query.get("list-type") === "2"),
    "the listing went through the proxy",
  );
});

Deno.test("a re-run decides from both listings: one request per identical file to S3, not two", async () => {
  await using lake = await s3Location("transfer-rerun-heads");
  await using dir = await tempDir();
  const files: Tree = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}.csv`, `${i}\n`]));
  await writeTree(dir.path, files);
  await using proxy = startHttpProxy(lake.server.endpoint);
  const destination = openS3Location(lake.url, { ...lake.settings, endpoint: proxy.endpoint });
  const first = await transferFiles(new LocalStorage(dir.path), destination, { mode: "copy" });
  assert.equal(first.files, 20);
  const sent = proxy.requests.length;
  const again = await transferFiles(new LocalStorage(dir.path), destination, { mode: "copy" });
  assert.deepEqual([again.files, again.identical], [0, 20]);
  const heads = proxy.requests.slice(sent).filter((request) => request.method === "HEAD");
  // each object's sha256 (lakerun's metadata) is one HEAD; its size came with the listing
  assert.equal(heads.length, 20, proxy.requests.slice(sent).map((r) => `${r.method} ${r.path}`).join("\n"));
});

Deno.test("against a real S3 server (radosgw)", async (t) => {
  try {
    await using lake = await s3Location("transfer-lake");
    await using other = await s3Location("transfer-other");
    const { server } = lake;
    const s3 = { endpoint: server.endpoint };
    const runS3 = (cwd: string, params: Record<string, unknown>, tasks: string[]) =>
      runCli(server, cwd, params, tasks);
    await using dir = await tempDir();
    const files: Tree = {
      ...SAMPLE,
      "big/multipart.bin": randomBytes(12 * 1024 * 1024 + 7, 3), // over the multipart threshold
      "zero/also-empty.bin": new Uint8Array(),
    };
    await writeTree(join(dir.path, "src"), files);

    await t.step("local → S3 copy: bytes, 0-byte objects, keys with spaces, unicode and +?#&=", async () => {
      const lines = await runS3(dir.path, { destination: `${lake.url}/in` }, ["copy"]);
      hasLine(lines, /✓ copy {2}7 files, 12\.3 MiB/);
      assert.deepEqual(await treeOf(lake.open("in"), ALL), digests(files));
      const again = await runS3(dir.path, { destination: `${lake.url}/in` }, ["copy"]);
      hasLine(again, /copied 0 files \(0 B\); 7 already identical/);
    });

    await t.step("S3 → local copy", async () => {
      await runS3(dir.path, { source: `${lake.url}/in`, destination: "back" }, ["copy"]);
      assert.deepEqual(await treeOf(join(dir.path, "back"), ALL), digests(files));
    });

    await t.step("S3 → S3 copy is server-side: no byte passes through lakerun", async () => {
      // in-process, to count reads of the source: server-side copies read nothing through lakerun
      const source = lake.open("in");
      const destination = other.open("copy");
      let reads = 0;
      const read = source.read.bind(source);
      source.read = (...args) => {
        reads++;
        return read(...args);
      };
      const summary = await transferFiles(source, destination, { mode: "copy" });
      assert.equal(summary.files, 7);
      assert.equal(summary.serverSide, 7, "every object copied server-side");
      assert.equal(reads, 0, "no object was read through lakerun");
      assert.deepEqual(await treeOf(other.open("copy"), ALL), digests(files));

      // the same through a routine (the step's Worker), into another prefix of the same bucket
      const lines = await runS3(dir.path, { source: `${lake.url}/in`, destination: `${lake.url}/copy` }, [
        "copy",
      ]);
      hasLine(lines, /copied 7 files \(12\.3 MiB, 7 server-side\)/);
      assert.deepEqual(await treeOf(lake.open("copy"), ALL), digests(files));
    });

    await t.step("sync on S3 finds changes by size and content; delete_extraneous; globs", async () => {
      const prefix = `${other.url}/copy`;
      // change one object in place (same size, other bytes) and add an extraneous one at the destination
      const changed = "id,amount\n1,99\n";
      const put = (where: typeof lake, path: string, body: string) =>
        where.client.send(new PutObjectCommand({ Bucket: where.bucket, Key: where.key(path), Body: body }));
      await put(lake, "in/a.csv", changed);
      await put(other, "copy/stale.csv", "stale");
      await put(other, "copy/keep.log", "excluded");
      const lines = await runS3(
        dir.path,
        {
          source: `${lake.url}/in`,
          destination: prefix,
          delete_extraneous: true,
          exclude: ["*.log"],
        },
        ["sync"],
      );
      hasLine(lines, /copied 1 file \(15 B, 1 server-side\); 6 already identical; deleted 1 extraneous/);
      const expected = digests({ ...files, "a.csv": changed, "keep.log": "excluded" });
      assert.deepEqual(await treeOf(other.open("copy"), ALL), expected);
      files["a.csv"] = changed;

      const csvOnly = await runS3(
        dir.path,
        {
          source: `${lake.url}/in`,
          destination: "csv-only",
          include: ["**/*.csv"],
        },
        ["sync"],
      );
      hasLine(csvOnly, /copied 3 files/);
      assert.deepEqual(
        await treeOf(join(dir.path, "csv-only"), ALL),
        digests(pick(files, ["a.csv", "empty.csv", "odd dir/ünïcødé ✓ a+b?c#d&e=f %20 (1).csv"])),
      );
    });

    await t.step("dry run against S3 lists and changes nothing", async () => {
      const before = await treeOf(other.open("copy"), ALL);
      await other.client.send(
        new PutObjectCommand({ Bucket: other.bucket, Key: other.key("copy/extra.csv"), Body: "x" }),
      );
      const lines = await runS3(
        dir.path,
        {
          source: `${lake.url}/in`,
          destination: `${other.url}/copy`,
          dry_run: true,
          delete_extraneous: true,
        },
        ["sync"],
      );
      hasLine(lines, /^ {4}delete extra\.csv \(1 B\)$/);
      hasLine(lines, /^ {4}delete keep\.log \(8 B\)$/);
      assert.deepEqual(await treeOf(other.open("copy"), ALL), { ...before, "extra.csv": sha256("x") });
    });

    await t.step("move S3 → S3 and S3 → local: verified, then the source objects are gone", async () => {
      await runS3(
        dir.path,
        { source: `${other.url}/copy`, destination: `${lake.url}/moved` },
        ["move"],
      );
      assert.deepEqual(await treeOf(other.open("copy"), ALL), {});
      const moved = await treeOf(lake.open("moved"), ALL);
      assert.deepEqual(moved, digests({ ...files, "keep.log": "excluded", "extra.csv": "x" }));

      await runS3(dir.path, { source: `${lake.url}/moved`, destination: "moved-home" }, ["move"]);
      assert.deepEqual(await treeOf(lake.open("moved"), ALL), {});
      assert.deepEqual(await treeOf(join(dir.path, "moved-home"), ALL), moved);
    });

    await t.step(
      "S3 → local, a large multipart object: by ranges on the step's threads, its ETag checked",
      async () => {
        const MiB = 1024 * 1024;
        const big = randomBytes(130 * MiB + 5, 8); // over the 128 MiB from which downloads go by ranges
        await lake.open("large").write("large.bin", streamOf(big, MiB), {
          size: big.length,
        });
        // through a proxy that counts the requests: the step may reach only the proxy's port
        await using proxy = startFaultProxy(Number(new URL(server.endpoint).port));
        const file = join(dir.path, "routine-large.json");
        const params = { source: `${lake.url}/large`, destination: "large" };
        await Deno.writeTextFile(
          file,
          JSON.stringify(routine(params, ["copy"], { endpoint: proxy.endpoint })),
        );
        const result = await lakerun(["run", file], { cwd: dir.path, env: server.env });
        assert.equal(result.code, 0, `exit ${result.code}\n${result.stdout}\n${result.stderr}`);
        assert.deepEqual(await treeOf(join(dir.path, "large"), ALL), { "large.bin": sha256(big) });
        const gets = proxy.requests.filter((line) => line.startsWith("GET ") && line.includes("large.bin"));
        assert.equal(gets.length, 3, `64 MiB ranges: 3 GETs\n${gets.join("\n")}`);
        hasLine(result.stdout.split("\n"), /copied 1 file \(130\.0 MiB\)/);
      },
    );

    await t.step("more than 1,000 objects: local → S3, S3 → S3 sync twice, S3 → local", async () => {
      const many: Tree = {};
      for (let i = 0; i < 1_100; i++) {
        many[`day-${i % 7}/obj-${String(i).padStart(5, "0")}.csv`] = `row ${i}\n`;
      }
      await writeTree(join(dir.path, "many"), many);
      const expected = digests(many);
      await runS3(
        dir.path,
        { source: "many", destination: `${lake.url}/many`, concurrency: 16 },
        ["copy"],
      );
      assert.deepEqual(await treeOf(lake.open("many"), ALL), expected);

      const sync = { source: `${lake.url}/many`, destination: `${other.url}/many`, concurrency: 16 };
      hasLine(await runS3(dir.path, sync, ["sync"]), /copied 1100 files \(.*, 1100 server-side\)/);
      hasLine(await runS3(dir.path, sync, ["sync"]), /copied 0 files \(0 B\); 1100 already identical/);
      assert.deepEqual(await treeOf(other.open("many"), ALL), expected);

      await runS3(dir.path, { source: `${other.url}/many`, destination: "many-back", concurrency: 16 }, [
        "copy",
      ]);
      assert.deepEqual(await treeOf(join(dir.path, "many-back"), ALL), expected);
    });

    // killed early (the large files in flight), mid-way and late
    for (const killAt of [5, 60, 110]) {
      await t.step(
        `a move killed after ${killAt} objects loses and duplicates nothing; a re-run completes`,
        async () => {
          const work = join(dir.path, `interrupted-${killAt}`);
          const moving: Tree = {};
          for (let i = 0; i < 3; i++) moving[`big/part-${i}.bin`] = randomBytes(16 * 1024 * 1024 + i, 70 + i);
          for (let i = 0; i < 150; i++) moving[`small/${i % 5}/f-${i}.csv`] = `small ${i}\n`.repeat(i);
          await writeTree(join(work, "src"), moving);
          const expected = digests(moving);
          await using bucket = await s3Location("transfer-interrupted");
          await Deno.writeTextFile(
            join(work, "routine.json"),
            JSON.stringify(routine({ destination: `${bucket.url}/dst`, concurrency: 4 }, ["move"], s3)),
          );

          const child = spawnLakerun(work, server);
          // kill it once some objects have arrived, but not all
          let arrived = 0;
          const deadline = Date.now() + 60_000;
          while (Date.now() < deadline) {
            const page = await bucket.client.send(
              new ListObjectsV2Command({ Bucket: bucket.bucket, Prefix: bucket.key("dst/") }),
            );
            arrived = page.KeyCount ?? 0;
            if (arrived >= killAt) break;
            await sleep(10);
          }
          try {
            child.kill("SIGKILL");
          } catch {
            // it finished already: the assertions below fail
          }
          const status = await child.status;
          await child.stdout.cancel();
          await child.stderr.cancel();
          assert.ok(!status.success, "killed before it finished");
          assert.ok(arrived >= killAt, `killed after ${arrived} objects had arrived`);

          const midway = {
            src: await treeOf(join(work, "src"), ALL),
            dst: await treeOf(bucket.open("dst"), ALL),
          };
          assert.ok(Object.keys(midway.src).length > 0, "killed before the end");
          for (const [path, hash] of Object.entries(expected)) {
            assert.ok(
              midway.src[path] === hash || midway.dst[path] === hash,
              `${path} exists whole somewhere`,
            );
          }
          for (const [path, hash] of Object.entries(midway.dst)) {
            assert.equal(hash, expected[path], `dst/${path} is a whole copy of a source file`);
          }

          const rerun = spawnLakerun(work, server);
          const [rerunStatus, stdout, stderr] = await Promise.all([
            rerun.status,
            new Response(rerun.stdout).text(),
            new Response(rerun.stderr).text(),
          ]);
          assert.ok(rerunStatus.success, `the re-run failed:\n${stdout}\n${stderr}`);
          assert.deepEqual(await treeOf(bucket.open("dst"), ALL), expected, "every file once, whole");
          assert.deepEqual(
            await treeOf(`s3://${bucket.bucket}`, { ...ALL, s3 }),
            prefixed(bucket.key("dst/"), expected),
            "nothing else",
          );
          assert.deepEqual(await treeOf(join(work, "src"), ALL), {}, "the source is empty");
          assert.deepEqual(await bucket.unfinishedUploads(), [], "no unfinished multipart upload");
        },
      );
    }
  } finally {
    await stopS3TestServer();
  }
});

function prefixed(prefix: string, record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [prefix + key, value]));
}
