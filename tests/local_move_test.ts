/**
 * LocalStorage.moveAllFrom (whole folders in one rename, the rest file by file) and what post_staging makes of
 * it: trees before and after, read from the file system (tests/support/trees.ts), including the cases where a
 * folder must not move whole (a file not asked for, a symbolic link, a folder the target already has) and a
 * move across file systems (/dev/shm is tmpfs), where nothing is renamed.
 *
 * Run: deno test -A tests/local_move_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LocalStorage } from "../lib/storage/local.ts";
import { runRoutineJson } from "./support/lakerun.ts";
import { digests, symlinkEntry, treeOf } from "./support/trees.ts";

/** A fresh folder holding `files` (path → content), removed by `await using`. */
async function folderWith(
  files: Record<string, string>,
  base?: string,
): Promise<{ root: string; storage: LocalStorage } & AsyncDisposable> {
  const root = await Deno.makeTempDir({ dir: base, prefix: "lakerun-move-" });
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(join(root, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, path), content);
  }
  return {
    root,
    storage: new LocalStorage(root),
    [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }),
  };
}

/** Every folder under `root` (relative, sorted), empty ones included. */
function foldersOf(root: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(join(root, prefix))) {
    if (!entry.isDirectory) continue;
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    out.push(path, ...foldersOf(root, path));
  }
  return out.sort();
}

const files = {
  "2024/01/a.csv": "a",
  "2024/01/b.csv": "b",
  "2024/02/c.csv": "c",
  "2024/02/deep/d.csv": "d",
  "top.csv": "top",
};

Deno.test("moveAllFrom: folders the target lacks move whole, with their empty folders; the rest file by file", async () => {
  await using source = await folderWith(files);
  await Deno.mkdir(join(source.root, "2024/01/empty"));
  await using target = await folderWith({ "2024/02/old.csv": "old", "top.csv": "already there" });
  const moved = await target.storage.moveAllFrom(source.storage, Object.keys(files));
  // 2024/01 went in one rename (its empty folder with it); 2024/02 exists in the target: merged file by file
  assert.deepEqual([...moved].sort(), [
    "2024/01/a.csv",
    "2024/01/b.csv",
    "2024/02/c.csv",
    "2024/02/deep/d.csv",
  ]);
  assert.deepEqual(await treeOf(source.storage), digests({ "top.csv": "top" }));
  assert.deepEqual(
    await treeOf(target.storage),
    digests({ ...files, "2024/02/old.csv": "old", "top.csv": "already there" }),
  );
  assert.ok(foldersOf(target.root).includes("2024/01/empty"));
});

Deno.test("moveAllFrom: a file not asked for, or a symbolic link, keeps its folder from moving whole and stays", async () => {
  await using source = await folderWith({ ...files, "2024/01/late.csv": "arrived after the listing" });
  await Deno.symlink("/etc/passwd", join(source.root, "2024/02/link.csv"));
  await using target = await folderWith({});
  const moved = await target.storage.moveAllFrom(source.storage, Object.keys(files));
  assert.deepEqual([...moved].sort(), Object.keys(files).sort());
  assert.deepEqual(
    await treeOf(source.storage),
    {
      ...digests({ "2024/01/late.csv": "arrived after the listing" }),
      "2024/02/link.csv": symlinkEntry("/etc/passwd"),
    },
  );
  assert.deepEqual(await treeOf(target.storage), digests(files));
});

Deno.test("moveAllFrom: across file systems nothing is renamed (the caller copies instead)", async () => {
  await using source = await folderWith(files, "/dev/shm");
  await using target = await folderWith({});
  const moved = await target.storage.moveAllFrom(source.storage, Object.keys(files));
  assert.deepEqual([...moved], []);
  assert.deepEqual(await treeOf(source.storage), digests(files));
});

Deno.test("post_staging archives whole folders: landing emptied, archive holds every file, conflicts kept apart", async () => {
  await using work = await folderWith({});
  const landing = join(work.root, "landing");
  for (const [path, content] of Object.entries(files)) {
    await Deno.mkdir(join(landing, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(landing, path), content);
  }
  await Deno.mkdir(join(landing, "2024/empty"));
  // the archive already has 2024/02: c.csv with other bytes (kept, the new one gets a timestamp) and d.csv
  // with the same bytes (the landing copy just goes)
  await Deno.mkdir(join(work.root, "archive/2024/02/deep"), { recursive: true });
  await Deno.writeTextFile(join(work.root, "archive/2024/02/c.csv"), "an older c");
  await Deno.writeTextFile(join(work.root, "archive/2024/02/deep/d.csv"), "d");
  const routine = {
    routine_name: "archive_folders",
    executors: {
      StagingExecutor: {
        params: { parent_directory: "landing", dump_directory: "staging", archive_directory: "archive" },
        tasks: ["transfer", "post_staging"],
      },
    },
  };
  const { error, lines } = await runRoutineJson(routine, { cwd: work.root });
  assert.equal(error, undefined, lines.join("\n"));
  assert.deepEqual(await treeOf(join(work.root, "landing")), {});
  assert.deepEqual(foldersOf(landing), []);
  assert.deepEqual(await treeOf(join(work.root, "staging")), digests(files));
  const archive = await treeOf(join(work.root, "archive"));
  const stamped = Object.keys(archive).filter((path) => /^2024\/02\/c\.\d{8}T\d{6}Z\.csv$/.test(path));
  assert.equal(stamped.length, 1, Object.keys(archive).join(", "));
  assert.deepEqual(
    archive,
    digests({ ...files, "2024/02/c.csv": "an older c", [stamped[0]]: "c" }),
  );
  assert.ok(foldersOf(join(work.root, "archive")).includes("2024/empty"));
});
