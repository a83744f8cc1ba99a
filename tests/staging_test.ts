/**
 * StagingExecutor on local folders: transfer copies keeping relative paths, post_staging archives or deletes
 * only verified files, transforms (py_exec and TypeScript) follow the notebook's contract.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lakerunCommand, ROOT, runRoutineJson, tempDir } from "./support/lakerun.ts";
import { TEMP_PREFIX } from "../lib/storage/mod.ts";
import { digests, sha256Hex, treeOf } from "./support/trees.ts";

async function landing(dir: string, files: Record<string, string>) {
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(join(dir, "data/landing", path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, "data/landing", path), text);
  }
}

function staging(params: Record<string, unknown>, tasks = ["transfer", "post_staging"]) {
  return {
    routine_name: "staging",
    executors: {
      StagingExecutor: {
        params: { parent_directory: "data/landing", dump_directory: "data/staging", ...params },
        tasks,
      },
    },
  };
}

Deno.test("transfer then post_staging archive: staged copies, landing emptied into archive, paths kept", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "a\n", "nested/deeper/b.csv": "b\n", "empty.csv": "" });
  const { error, lines } = await runRoutineJson(staging({ archive_or_delete: "archive" }), { cwd: dir.path });
  assert.equal(error, undefined, lines.join("\n"));
  const expected = { "a.csv": "a\n", "empty.csv": "", "nested/deeper/b.csv": "b\n" };
  assert.deepEqual(await treeOf(join(dir.path, "data/staging"), { temporaries: true }), digests(expected));
  assert.deepEqual(await treeOf(join(dir.path, "data/archive"), { temporaries: true }), digests(expected));
  assert.deepEqual(await treeOf(join(dir.path, "data/landing"), { temporaries: true }), {});
  assert.ok(lines.some((l) => /✓ transfer {2}3 files, 4 B/.test(l)), lines.join("\n"));
});

Deno.test("post_staging delete removes landing files; archive_directory is honoured", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "a" });
  assert.equal(
    (await runRoutineJson(staging({ archive_or_delete: "delete" }), { cwd: dir.path })).error,
    undefined,
  );
  assert.deepEqual(await treeOf(join(dir.path, "data/landing"), { temporaries: true }), {});
  await assert.rejects(Deno.stat(join(dir.path, "data/archive")), Deno.errors.NotFound);

  await landing(dir.path, { "b.csv": "b" });
  assert.equal(
    (await runRoutineJson(staging({ archive_directory: "old" }), { cwd: dir.path })).error,
    undefined,
  );
  assert.deepEqual(await treeOf(join(dir.path, "old"), { temporaries: true }), digests({ "b.csv": "b" }));
});

Deno.test("post_staging refuses to archive a file whose staged copy differs, and keeps it in landing", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "original" });
  assert.equal((await runRoutineJson(staging({}, ["transfer"]), { cwd: dir.path })).error, undefined);
  await Deno.writeTextFile(join(dir.path, "data/staging/a.csv"), "tampered"); // same size, other bytes
  const { error } = await runRoutineJson(staging({}, ["post_staging"]), { cwd: dir.path });
  assert.match(error?.message ?? "", /staged copy of a\.csv: copy differs from the source \(sha256\)/);
  assert.deepEqual(
    await treeOf(join(dir.path, "data/landing"), { temporaries: true }),
    digests({ "a.csv": "original" }),
  );
});

Deno.test("post_staging refuses a staged copy of another size and one that is a link to the landing file", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "original", "b.csv": "kept" });
  assert.equal((await runRoutineJson(staging({}, ["transfer"]), { cwd: dir.path })).error, undefined);
  await Deno.writeTextFile(join(dir.path, "data/staging/a.csv"), "short");
  let { error } = await runRoutineJson(staging({}, ["post_staging"]), { cwd: dir.path });
  assert.match(error?.message ?? "", /staged copy of a\.csv: copy is 5 bytes, source is 8/);
  // a link in staging to the landing file itself would compare the file with itself, then lose it on archiving
  await Deno.remove(join(dir.path, "data/staging/a.csv"));
  await Deno.symlink(join(dir.path, "data/landing/a.csv"), join(dir.path, "data/staging/a.csv"));
  ({ error } = await runRoutineJson(staging({}, ["post_staging"]), { cwd: dir.path }));
  assert.match(error?.message ?? "", /refusing to follow symbolic link .*data\/staging\/a\.csv/);
  assert.deepEqual(
    await treeOf(join(dir.path, "data/landing"), { temporaries: true }),
    digests({ "a.csv": "original", "b.csv": "kept" }),
  );
});

Deno.test("post_staging without a staged copy fails and deletes nothing", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "a" });
  const { error } = await runRoutineJson(staging({ archive_or_delete: "delete" }, ["post_staging"]), {
    cwd: dir.path,
  });
  assert.match(error?.message ?? "", /a\.csv has no staged copy .*run 'transfer' first/);
  assert.deepEqual(
    await treeOf(join(dir.path, "data/landing"), { temporaries: true }),
    digests({ "a.csv": "a" }),
  );
});

Deno.test("symbolic links in landing are never followed, copied or archived", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "a" });
  await Deno.writeTextFile(join(dir.path, "secret.txt"), "secret");
  await Deno.symlink(join(dir.path, "secret.txt"), join(dir.path, "data/landing/link.csv"));
  const { error, lines } = await runRoutineJson(staging({}), { cwd: dir.path });
  assert.equal(error, undefined);
  assert.ok(lines.some((l) => l.includes("skipping symbolic link link.csv")));
  assert.deepEqual(
    await treeOf(join(dir.path, "data/staging"), { temporaries: true }),
    digests({ "a.csv": "a" }),
  );
  assert.deepEqual(
    await treeOf(join(dir.path, "data/archive"), { temporaries: true }),
    digests({ "a.csv": "a" }),
  );
  assert.ok((await Deno.lstat(join(dir.path, "data/landing/link.csv"))).isSymlink);
});

Deno.test("archiving never overwrites an archived file with other content", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "monday" });
  assert.equal((await runRoutineJson(staging({}), { cwd: dir.path })).error, undefined);
  await landing(dir.path, { "a.csv": "tuesday" });
  assert.equal((await runRoutineJson(staging({}), { cwd: dir.path })).error, undefined);
  const archived = await treeOf(join(dir.path, "data/archive"), { temporaries: true });
  assert.equal(archived["a.csv"], sha256Hex("monday"));
  const renamed = Object.keys(archived).filter((k) => /^a\.\d{8}T\d{6}Z\.csv$/.test(k));
  assert.equal(renamed.length, 1, JSON.stringify(archived));
  assert.equal(archived[renamed[0]], sha256Hex("tuesday"));

  // several archives of a.csv in one second (a backfill): the stamped names the next seconds would take are
  // taken already, and each new file gets a name of its own, the stamp then a number
  const now = Date.now();
  const taken: Record<string, string> = {};
  for (let second = 0; second < 8; second++) {
    const stamp = new Date(now + second * 1000).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    taken[`a.${stamp}.csv`] = `archived at ${stamp}`;
  }
  for (const [name, text] of Object.entries(taken)) {
    await Deno.writeTextFile(join(dir.path, "data/archive", name), text);
  }
  await landing(dir.path, { "a.csv": "wednesday" });
  assert.equal((await runRoutineJson(staging({}), { cwd: dir.path })).error, undefined);
  const all = await treeOf(join(dir.path, "data/archive"), { temporaries: true });
  for (const [name, text] of Object.entries(taken)) assert.equal(all[name], sha256Hex(text), name);
  const wednesday = Object.keys(all).filter((k) => all[k] === sha256Hex("wednesday"));
  assert.equal(wednesday.length, 1, JSON.stringify(all));
  assert.match(wednesday[0], /^a\.\d{8}T\d{6}Z-2\.csv$/);
});

Deno.test("a re-run skips files already staged and finishes the work", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "a", "b.csv": "b" });
  assert.equal((await runRoutineJson(staging({}, ["transfer"]), { cwd: dir.path })).error, undefined);
  const { error, lines } = await runRoutineJson(staging({}), { cwd: dir.path });
  assert.equal(error, undefined);
  assert.ok(lines.some((l) => l.includes("2 files were already staged")), lines.join("\n"));
  assert.deepEqual(
    await treeOf(join(dir.path, "data/archive"), { temporaries: true }),
    digests({ "a.csv": "a", "b.csv": "b" }),
  );
});

Deno.test("py_exec transform runs the notebook's contract, with and without args", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "x\n" });
  await Deno.mkdir(join(dir.path, "tx"));
  await Deno.writeTextFile(
    join(dir.path, "tx/py_exec.py"),
    [
      "import os",
      "def main(parent, dump, suffix='-none'):",
      "    for name in os.listdir(parent):",
      "        with open(os.path.join(parent, name)) as f, open(os.path.join(dump, name + suffix), 'w') as out:",
      "            out.write(f.read().upper())",
      "    print('transformed', len(os.listdir(parent)))",
    ].join("\n"),
  );
  const withArgs = await runRoutineJson(staging({ py_exec_path: "tx", py_exec_args: { suffix: ".up" } }), {
    cwd: dir.path,
  });
  assert.equal(withArgs.error, undefined, withArgs.lines.join("\n"));
  assert.ok(withArgs.lines.some((l) => l.includes("py_exec: transformed 1")));
  assert.deepEqual(
    await treeOf(join(dir.path, "data/staging"), { temporaries: true }),
    digests({ "a.csv.up": "X\n" }),
  );
  assert.deepEqual(
    await treeOf(join(dir.path, "data/archive"), { temporaries: true }),
    digests({ "a.csv": "x\n" }),
  );

  await landing(dir.path, { "b.csv": "y\n" });
  const noArgs = await runRoutineJson(staging({ py_exec_path: "tx" }), { cwd: dir.path });
  assert.equal(noArgs.error, undefined, noArgs.lines.join("\n"));
  assert.equal(await Deno.readTextFile(join(dir.path, "data/staging/b.csv-none")), "Y\n");
});

Deno.test("a failing py_exec fails transfer with its last stderr lines, stages nothing and archives nothing", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "x" });
  await Deno.mkdir(join(dir.path, "tx"));
  await Deno.writeTextFile(
    join(dir.path, "tx/py_exec.py"),
    "def main(parent, dump):\n    open(dump + '/partial.csv', 'w').write('half')\n    raise ValueError('bad row 7')\n",
  );
  const { error } = await runRoutineJson(staging({ py_exec_path: "tx" }), { cwd: dir.path });
  assert.match(
    error?.message ?? "",
    /task 'transfer' failed: py_exec failed \(exit 1\): .*ValueError: bad row 7/,
  );
  assert.deepEqual(
    await treeOf(join(dir.path, "data/staging"), { temporaries: true }),
    {},
    "no partial output",
  );
  assert.deepEqual(
    await treeOf(join(dir.path, "data/landing"), { temporaries: true }),
    digests({ "a.csv": "x" }),
  );
});

Deno.test("post_staging after a transform needs the transform to have succeeded", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "x" });
  await Deno.mkdir(join(dir.path, "tx"));
  await Deno.writeTextFile(join(dir.path, "tx/py_exec.py"), "def main(parent, dump):\n    pass\n");
  const { error } = await runRoutineJson(staging({ py_exec_path: "tx" }, ["post_staging"]), {
    cwd: dir.path,
  });
  assert.match(error?.message ?? "", /a\.csv was not read by a successful transform; run 'transfer' first/);
  assert.deepEqual(
    await treeOf(join(dir.path, "data/landing"), { temporaries: true }),
    digests({ "a.csv": "x" }),
  );
});

Deno.test("transform_module: a sandboxed TypeScript transform with read on parent and write on dump", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "1,2\n" });
  await Deno.writeTextFile(
    join(dir.path, "transform.ts"),
    `export default async (parent: string, dump: string, args: { factor: number }) => {
      const text = await Deno.readTextFile(parent + "/a.csv");
      const out = text.trim().split(",").map((n) => Number(n) * args.factor).join(",");
      await Deno.writeTextFile(dump + "/a.json", JSON.stringify(out));
    };`,
  );
  const ok = await runRoutineJson(
    staging({ transform_module: "transform.ts", transform_args: { factor: 10 } }),
    { cwd: dir.path },
  );
  assert.equal(ok.error, undefined, ok.lines.join("\n"));
  assert.deepEqual(
    await treeOf(join(dir.path, "data/staging"), { temporaries: true }),
    digests({ "a.json": '"10,20"' }),
  );

  await landing(dir.path, { "b.csv": "1" });
  await Deno.writeTextFile(
    join(dir.path, "evil.ts"),
    `export default async () => { await Deno.readTextFile(${JSON.stringify(join(ROOT, "deno.json"))}); };`,
  );
  const evil = await runRoutineJson(staging({ transform_module: "evil.ts" }), { cwd: dir.path });
  assert.match(evil.error?.message ?? "", /permission denied: read access to .*deno\.json/);

  // a step that only transfers may read its landing folder, never change it nor the archive beside it
  await Deno.writeTextFile(
    join(dir.path, "remover.ts"),
    `export default async (parent: string) => { await Deno.remove(parent + "/b.csv"); };`,
  );
  const remover = await runRoutineJson(staging({ transform_module: "remover.ts" }, ["transfer"]), {
    cwd: dir.path,
  });
  assert.match(remover.error?.message ?? "", /permission denied: write access to .*data\/landing\/b\.csv/);
  assert.equal(await Deno.readTextFile(join(dir.path, "data/landing/b.csv")), "1");
});

Deno.test("landing, staging and archive folders apart: one inside another is refused before anything runs", async () => {
  await using dir = await tempDir();
  for (
    const [params, message] of [
      [{ parent_directory: ".", dump_directory: "staging" }, /dump_directory must not be parent_directory/],
      [{ parent_directory: "data/landing", dump_directory: "data/landing/" }, /dump_directory must not be/],
      [
        { parent_directory: "s3://lake", dump_directory: "s3://lake2/x" },
        /params\.archive_directory: the archive folder "s3:\/\/lake\/archive" would be inside parent_directory "s3:\/\/lake" \(or hold it\); set archive_directory to a folder outside it/,
      ],
      [
        { parent_directory: "data", dump_directory: "out", archive_directory: "data/old" },
        /archive folder "data\/old" would be inside/,
      ],
      // staging holding the landing folder, or the archive mixed with staging, written either way
      [
        { parent_directory: "out/landing", dump_directory: "out" },
        /params\.dump_directory: dump_directory must not be/,
      ],
      [
        { parent_directory: "data", dump_directory: "out", archive_directory: "out/archive" },
        /params\.archive_directory: the archive folder "out\/archive" and dump_directory "out" overlap/,
      ],
      [
        { parent_directory: "data", dump_directory: "out", archive_directory: join(dir.path, "out") },
        /params\.archive_directory: the archive folder .* and dump_directory "out" overlap/,
      ],
      [
        { parent_directory: "data", dump_directory: join(dir.path, "data", "x") },
        /params\.dump_directory: dump_directory must not be parent_directory/,
      ],
    ] as Array<[Record<string, unknown>, RegExp]>
  ) {
    await assert.rejects(runRoutineJson(staging(params), { cwd: dir.path }), message, JSON.stringify(params));
  }
  // deleting needs no archive folder, wherever the default would be
  await landing(dir.path, { "a.csv": "a" });
  const ok = await runRoutineJson(
    staging({ parent_directory: "data/landing", archive_or_delete: "delete" }),
    { cwd: dir.path },
  );
  assert.equal(ok.error, undefined);
});

Deno.test("a transform whose code is not there is refused before anything runs, naming where it was looked for", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "a" });
  await Deno.mkdir(join(dir.path, "transforms"));
  for (
    const [params, message] of [
      [
        { py_exec_path: "transforms" },
        /params\.py_exec_path: "transforms" holds no py_exec\.py \(looked for .*\/transforms\/py_exec\.py\)/,
      ],
      [{ transform_module: "transforms" }, /params\.transform_module: "transforms" is not a file/],
      [
        { transform_module: "nope.ts" },
        /params\.transform_module: "nope\.ts" is not a file \(looked for .*\/nope\.ts\)/,
      ],
    ] as Array<[Record<string, unknown>, RegExp]>
  ) {
    await assert.rejects(runRoutineJson(staging(params), { cwd: dir.path }), message, JSON.stringify(params));
  }
  await assert.rejects(Deno.stat(join(dir.path, "data/staging")), Deno.errors.NotFound);
});

Deno.test("names valid on Linux are staged and archived: a drive-letter look, a backslash, 255 bytes", async () => {
  await using dir = await tempDir();
  // the temporary name of a copy must fit whatever the file's name: it is a short one of its own
  const longest = `${"é".repeat(120)}${"x".repeat(11)}.csv`; // 255 bytes in UTF-8
  assert.equal(new TextEncoder().encode(longest).length, 255);
  const files = { "C:report.csv": "c\n", "back\\slash.csv": "b\n", [`deep/${longest}`]: "long\n" };
  await landing(dir.path, files);
  const { error, lines } = await runRoutineJson(staging({}), { cwd: dir.path });
  assert.equal(error, undefined, lines.join("\n"));
  assert.deepEqual(await treeOf(join(dir.path, "data/staging"), { temporaries: true }), digests(files));
  assert.deepEqual(await treeOf(join(dir.path, "data/archive"), { temporaries: true }), digests(files));
  assert.deepEqual(await treeOf(join(dir.path, "data/landing"), { temporaries: true }), {});
});

Deno.test("empty folders are staged as cp -r copies them, then archived with the files", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "2024/a.csv": "a\n" });
  for (const folder of ["2024/empty", "2025/q1/empty", "none"]) {
    await Deno.mkdir(join(dir.path, "data/landing", folder), { recursive: true });
  }
  const transfer = await runRoutineJson(staging({}, ["transfer"]), { cwd: dir.path });
  assert.equal(transfer.error, undefined, transfer.lines.join("\n"));
  const cp = await new Deno.Command("cp", {
    args: ["-r", join(dir.path, "data/landing"), join(dir.path, "cp-r")],
  }).output();
  assert.ok(cp.success);
  const folders = async (root: string) => {
    const found: string[] = [];
    const walk = async (path: string, prefix: string) => {
      for await (const entry of Deno.readDir(path)) {
        if (!entry.isDirectory) continue;
        found.push(`${prefix}${entry.name}/`);
        await walk(join(path, entry.name), `${prefix}${entry.name}/`);
      }
    };
    await walk(root, "");
    return found.sort();
  };
  const copied = await folders(join(dir.path, "cp-r"));
  assert.deepEqual(copied, ["2024/", "2024/empty/", "2025/", "2025/q1/", "2025/q1/empty/", "none/"]);
  assert.deepEqual(await folders(join(dir.path, "data/staging")), copied);
  assert.ok(transfer.lines.some((l) => l.includes("3 empty folders staged")), transfer.lines.join("\n"));

  // post_staging refuses while staging lacks one of them, then archives them all
  await Deno.remove(join(dir.path, "data/staging/none"));
  const refused = await runRoutineJson(staging({}, ["post_staging"]), { cwd: dir.path });
  assert.match(refused.error?.message ?? "", /none\/ \(an empty folder\) is not in .*; run 'transfer' first/);
  const again = await runRoutineJson(staging({}), { cwd: dir.path });
  assert.equal(again.error, undefined, again.lines.join("\n"));
  assert.deepEqual(await folders(join(dir.path, "data/archive")), copied);
  assert.deepEqual(await folders(join(dir.path, "data/landing")), []);
});

Deno.test("SIGINT during a py_exec transform: exit 130, the task failed as interrupted (not as the script's exit)", async () => {
  await using dir = await tempDir();
  await landing(dir.path, { "a.csv": "x\n" });
  await Deno.mkdir(join(dir.path, "tx"));
  await Deno.writeTextFile(
    join(dir.path, "tx/py_exec.py"),
    "import time\ndef main(parent, dump):\n    print('started', flush=True)\n    time.sleep(30)\n",
  );
  await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(staging({ py_exec_path: "tx" })));
  const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path, stdout: "piped", stderr: "piped" })
    .spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("py_exec: started")) {
    const { done, value } = await lines.read();
    if (done) break;
    seen += value;
  }
  child.kill("SIGINT");
  const { code } = await child.status;
  await lines.cancel();
  const last = (await stderr).trim().split("\n").at(-1);
  assert.equal(code, 130, seen);
  // as a failed task's last line is said
  assert.match(
    last ?? "",
    /^step "StagingExecutor" \(StagingExecutor\) task 'transfer' failed: interrupted$/,
  );
  assert.deepEqual(await treeOf(join(dir.path, "data/staging"), { temporaries: true }), {}, "nothing staged");
});

Deno.test("SIGINT during a transfer of many small files stops it: exit 130, nothing staged, no temporary left", async () => {
  await using dir = await tempDir();
  const landingDir = join(dir.path, "data/landing");
  for (let folder = 0; folder < 20; folder++) {
    await Deno.mkdir(join(landingDir, `f${folder}`), { recursive: true });
    for (let file = 0; file < 1000; file++) {
      Deno.writeTextFileSync(join(landingDir, `f${folder}`, `${file}.csv`), `${folder},${file}\n`);
    }
  }
  await Deno.writeTextFile(
    join(dir.path, "routine.json"),
    JSON.stringify(staging({ archive_or_delete: "delete" })),
  );
  const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path, stdout: "null", stderr: "null" })
    .spawn();
  // the copies have begun once the batch's temporary folders hold files
  const stagingDir = join(dir.path, "data/staging");
  const copying = async () => {
    for await (const entry of Deno.readDir(stagingDir)) {
      if (!entry.name.startsWith(TEMP_PREFIX)) continue;
      for await (const _ of Deno.readDir(join(stagingDir, entry.name))) return true;
    }
    return false;
  };
  while (!(await copying().catch(() => false))) await new Promise((resolve) => setTimeout(resolve, 10));
  child.kill("SIGINT");
  const { code } = await child.status;
  assert.equal(code, 130);
  // the loop saw the interruption and the batch was aborted: nothing landed, nothing left behind — or, on a
  // machine slow to deliver the signal, the batch had already begun its commit (all of it, never a part)
  const staged = await treeOf(stagingDir, { temporaries: true });
  const count = Object.keys(staged).length;
  assert.ok(count === 0 || count === 20_000, `${count} files staged: all or nothing`);
  assert.ok(!Object.keys(staged).some((path) => path.split("/").some((p) => p.startsWith(TEMP_PREFIX))));
  let landed = 0;
  for await (const folder of Deno.readDir(landingDir)) {
    for await (const _ of Deno.readDir(join(landingDir, folder.name))) landed++;
  }
  // a landing file goes only once its staged copy is verified: all stay unless all were staged
  if (count === 0) assert.equal(landed, 20_000, "no landing file was deleted");
});

/** Writes `text` into `file` and sets its modification time back: only the content says it changed. */
async function rewriteKeepingTime(file: string, text: string): Promise<void> {
  const { mtime } = await Deno.stat(file);
  await Deno.writeTextFile(file, text);
  await Deno.utime(file, mtime!, mtime!);
}

/** A TypeScript transform that upper-cases every top-level landing file into staging. */
const UPPER_TS = `export default async (parent: string, dump: string) => {
  for await (const entry of Deno.readDir(parent)) {
    if (!entry.isFile) continue;
    const text = await Deno.readTextFile(parent + "/" + entry.name);
    await Deno.writeTextFile(dump + "/" + entry.name, text.toUpperCase());
  }
};`;

Deno.test("a landing file rewritten with other bytes of the same size is transformed again, never deleted unread", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "upper.ts"), UPPER_TS);
  const params = { transform_module: "upper.ts", archive_or_delete: "delete" };
  await landing(dir.path, { "data.csv": "day1-data\n" });
  const day1 = await runRoutineJson(staging(params, ["transfer"]), { cwd: dir.path });
  assert.equal(day1.error, undefined, day1.lines.join("\n"));
  // same size, and the same modification time: only the content tells
  await rewriteKeepingTime(join(dir.path, "data/landing/data.csv"), "day2-DATA\n");
  const day2 = await runRoutineJson(staging(params), { cwd: dir.path });
  assert.equal(day2.error, undefined, day2.lines.join("\n"));
  assert.ok(!day2.lines.some((l) => l.includes("already transformed")), day2.lines.join("\n"));
  assert.deepEqual(
    await treeOf(join(dir.path, "data/staging"), { temporaries: true }),
    digests({ "data.csv": "DAY2-DATA\n" }),
  );
  assert.deepEqual(await treeOf(join(dir.path, "data/landing"), { temporaries: true }), {});

  // unchanged inputs are not transformed twice
  await landing(dir.path, { "data.csv": "day3-data\n" });
  const transformed = await runRoutineJson(staging(params, ["transfer"]), { cwd: dir.path });
  assert.equal(transformed.error, undefined, transformed.lines.join("\n"));
  const again = await runRoutineJson(staging(params), { cwd: dir.path });
  assert.equal(again.error, undefined, again.lines.join("\n"));
  assert.ok(again.lines.some((l) => l.includes("already transformed")), again.lines.join("\n"));
  assert.deepEqual(
    await treeOf(join(dir.path, "data/staging"), { temporaries: true }),
    digests({ "data.csv": "DAY3-DATA\n" }),
  );
});

Deno.test("post_staging never archives or deletes a landing file whose bytes changed since the transform read them", async () => {
  for (const archive_or_delete of ["archive", "delete"]) {
    await using dir = await tempDir();
    await Deno.writeTextFile(join(dir.path, "upper.ts"), UPPER_TS);
    const params = { transform_module: "upper.ts", archive_or_delete };
    await landing(dir.path, { "a.csv": "day1-a\n", "data.csv": "day1-data\n" });
    // day 1: the transform succeeds, post_staging does not run (failed or killed)
    const day1 = await runRoutineJson(staging(params, ["transfer"]), { cwd: dir.path });
    assert.equal(day1.error, undefined, day1.lines.join("\n"));
    // day 2: the same names and sizes, other bytes in one of them
    const file = join(dir.path, "data/landing/data.csv");
    await rewriteKeepingTime(file, "day2-DATA\n");
    const { error } = await runRoutineJson(staging(params, ["post_staging"]), { cwd: dir.path });
    assert.match(
      error?.message ?? "",
      /data\.csv changed since the transform read it; run 'transfer' again/,
      archive_or_delete,
    );
    assert.equal(await Deno.readTextFile(file), "day2-DATA\n", archive_or_delete);
    const archived = await treeOf(join(dir.path, "data/archive"), { temporaries: true });
    assert.ok(!("data.csv" in archived), archive_or_delete);
    // the next transfer transforms day 2, and post_staging then finishes
    const day2 = await runRoutineJson(staging(params), { cwd: dir.path });
    assert.equal(day2.error, undefined, day2.lines.join("\n"));
    assert.deepEqual(
      await treeOf(join(dir.path, "data/staging"), { temporaries: true }),
      digests({ "a.csv": "DAY1-A\n", "data.csv": "DAY2-DATA\n" }),
    );
    assert.deepEqual(await treeOf(join(dir.path, "data/landing"), { temporaries: true }), {});
  }
});
