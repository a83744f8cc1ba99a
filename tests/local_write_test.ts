/**
 * lib/storage/local.ts's writeFileFromStream, the low-level write every local landing uses, and the small
 * files of a write batch. writeFileFromStream creates its
 * file (never overwrites one) and, on failure, removes only what it created.
 *
 * Run: deno test -A tests/local_write_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FOLDERS_STAGED_APART, LocalStorage, writeFileFromStream } from "../lib/storage/local.ts";

/** Runs `body` with a new temporary folder, removed afterwards whatever happens. */
async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const bytes = (text: string) => new Blob([text]).stream();

Deno.test("writeFileFromStream never overwrites, and never removes, a file it did not create", () =>
  inTempDir(async (dir) => {
    const path = join(dir, "precious.csv");
    await Deno.writeTextFile(path, "precious");
    await assert.rejects(
      writeFileFromStream(path, bytes("other"), {}, "precious.csv"),
      Deno.errors.AlreadyExists,
    );
    assert.equal(await Deno.readTextFile(path), "precious");
    const aborted = AbortSignal.abort(new Error("stopped"));
    await assert.rejects(
      writeFileFromStream(path, bytes("other"), { signal: aborted }, "precious.csv"),
      /stopped/,
    );
    assert.equal(await Deno.readTextFile(path), "precious");
  }));

Deno.test("writeFileFromStream removes the file it created when the bytes are not what was announced", () =>
  inTempDir(async (dir) => {
    const path = join(dir, "short.csv");
    await assert.rejects(writeFileFromStream(path, bytes("abc"), { size: 10 }, "short.csv"), /short\.csv/);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    const result = await writeFileFromStream(path, bytes("abc"), { size: 3, sha256: true }, "short.csv");
    assert.equal(result.size, 3);
    assert.equal(await Deno.readTextFile(path), "abc");
  }));

Deno.test("a batch's small files (written in batches, some on a helper thread) land together, or not at all", () =>
  inTempDir(async (dir) => {
    const files = Array.from(
      { length: 3000 },
      (_, i) => [`d${i % 7}/f${i}.csv`, `${i},${"x".repeat(i % 500)}\n`],
    );
    const batch = await new LocalStorage(dir).batch();
    for (const [i, [path, text]] of files.entries()) {
      await batch.writeBytes(path, new TextEncoder().encode(text));
      // as an extraction waits for the network now and then: the helper thread's messages get through
      if (i % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    }
    // a path written again lands with its last bytes, even while its first write may still be going on
    await batch.writeBytes("d0/f0.csv", new TextEncoder().encode("again\n"));
    assert.deepEqual([...Deno.readDirSync(dir)].filter((e) => !e.name.startsWith(".lakerun-tmp-")), []);
    await batch.commit();
    for (const [path, text] of files.slice(1)) assert.equal(await Deno.readTextFile(join(dir, path)), text);
    assert.equal(await Deno.readTextFile(join(dir, "d0/f0.csv")), "again\n");

    // a failure names its file, whichever call reports it, and an abort leaves nothing
    const other = join(dir, "other");
    const failing = await new LocalStorage(other).batch();
    for (let i = 0; i < 2000; i++) {
      const name = i === 1500 ? `bad/${"n".repeat(300)}.csv` : `ok/${i}.csv`;
      try {
        await failing.writeBytes(name, new Uint8Array(10));
      } catch (error) {
        assert.match((error as { entry?: string }).entry ?? "", /^bad\/n{300}\.csv$/);
        assert.match((error as Error).message, /File name too long/);
        break;
      }
    }
    await assert.rejects(
      failing.flush(),
      (e) => (e as { entry?: string }).entry?.startsWith("bad/") === true,
    );
    await failing.abort();
    assert.deepEqual([...Deno.readDirSync(other)], []);
  }));

Deno.test("a batch stages each folder's files in a temporary folder of their own, and refuses a file and a folder of the same name, either way round", () =>
  inTempDir(async (dir) => {
    const bytes = new TextEncoder().encode("x\n");
    for (
      const [first, second, message] of [
        ["a", "a/b.csv", /: a is a file of this batch, not a folder$/],
        ["a/b.csv", "a", /: a is a folder of this batch, not a file$/],
        ["x/y", "x/y/z/w.csv", /: x\/y is a file of this batch, not a folder$/],
        ["x/y/z/w.csv", "x/y", /: x\/y is a folder of this batch, not a file$/],
      ] as const
    ) {
      const batch = await new LocalStorage(dir).batch();
      await batch.writeBytes(first, bytes);
      await assert.rejects(batch.writeBytes(second, bytes), message);
      await assert.rejects(batch.write(second, ReadableStream.from([bytes])), message);
      await batch.abort();
      assert.deepEqual([...Deno.readDirSync(dir)], []);
    }
    // what it stages otherwise lands as before: a top-level file beside folders of other names
    const batch = await new LocalStorage(dir).batch();
    await batch.writeBytes("a", bytes);
    await batch.writeBytes("b/a", bytes);
    await batch.writeBytes("c/d/e/f", bytes);
    await batch.flush();
    // each folder's files are staged directly in a temporary folder of its own in the landing folder, so that
    // a staged file's path is the landing folder's plus two components whatever its depth: a and b/a, c, c/d
    // (empty) and c/d/e/f
    const staged = [...Deno.readDirSync(dir)].map((entry) => [...Deno.readDirSync(join(dir, entry.name))]);
    assert.deepEqual(staged.map((entries) => entries.map((entry) => entry.name)).sort(), [[], [], ["a"], [
      "a",
    ], ["f"]]);
    assert.ok(staged.flat().every((entry) => entry.isFile));
    await batch.commit();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["a", "b", "c"]);
    assert.equal(await Deno.readTextFile(join(dir, "b/a")), "x\n");
    assert.equal(await Deno.readTextFile(join(dir, "c/d/e/f")), "x\n");
  }));

Deno.test("a batch whose commit meets a file where a folder goes, or a link, lands nothing", () =>
  inTempDir(async (dir) => {
    const bytes = new TextEncoder().encode("x\n");
    await Deno.writeTextFile(join(dir, "z"), "a file where the batch has a folder\n");
    await Deno.mkdir(join(dir, "linked"));
    await Deno.symlink(dir, join(dir, "linked/to-root"));
    for (
      const [conflict, message] of [["z/y.csv", /z is a file, not a folder/], [
        "linked/to-root/y.csv",
        /refusing to write through symbolic link/,
      ]] as const
    ) {
      const batch = await new LocalStorage(dir).batch();
      // folders and files that would land first, whichever order commit takes them in
      for (const path of ["a/new.csv", "m/deeper/new.csv", "top.csv", conflict, "zz/new.csv", "zz.csv"]) {
        await batch.writeBytes(path, bytes);
      }
      await assert.rejects(batch.commit(), message);
      await batch.abort();
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["linked", "z"], conflict);
      assert.deepEqual([...Deno.readDirSync(join(dir, "linked"))].map((e) => e.name), ["to-root"]);
    }
  }));

Deno.test(`a batch of more than ${FOLDERS_STAGED_APART} folders stages the others inside their parents': all land, the landing folder holds at most that many temporary folders meanwhile`, () =>
  inTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "old/f0"), { recursive: true }); // a folder already there, merged into
    await Deno.writeTextFile(join(dir, "old/f0/kept.csv"), "kept\n");
    const batch = await new LocalStorage(dir).batch();
    const files: string[] = [];
    for (let i = 0; i < FOLDERS_STAGED_APART + 200; i++) {
      // past the limit: new top-level folders, folders in folders staged apart, and in folders staged inside
      files.push(
        i % 3 === 0 ? `t${i}/f.csv` : i % 3 === 1 ? `old/f${i % 50}/s${i}/f.csv` : `n${i % 7}/m${i}/f.csv`,
      );
    }
    for (const path of files) await batch.writeBytes(path, new TextEncoder().encode(`${path}\n`));
    await batch.flush();
    assert.ok(
      [...Deno.readDirSync(dir)].length <= FOLDERS_STAGED_APART + 2,
      "staged apart, the batch's own, old",
    );
    await batch.commit();
    for (const path of files) assert.equal(await Deno.readTextFile(join(dir, path)), `${path}\n`, path);
    assert.equal(await Deno.readTextFile(join(dir, "old/f0/kept.csv")), "kept\n");
    assert.deepEqual([...Deno.readDirSync(dir)].filter((e) => e.name.startsWith(".lakerun-tmp-")), []);
  }));

Deno.test("a file written where a folder of its name is says so, whichever way round, and leaves no temporary", () =>
  inTempDir(async (dir) => {
    const storage = new LocalStorage(dir);
    const text = (value: string) => new Blob([value]).stream();
    await storage.write("cf/x/y", text("y\n"));
    await assert.rejects(
      storage.write("cf/x", text("x\n")),
      {
        message:
          "cf/x cannot be written: a folder of that name is there (a file and a folder cannot share a name; " +
          "files under cf/x/ were written first)",
      },
    );
    await storage.write("other/x", text("x\n"));
    await assert.rejects(storage.write("other/x/y", text("y\n")), /other\/x is a file, not a folder$/);
    const names = [...Deno.readDirSync(join(dir, "cf")), ...Deno.readDirSync(join(dir, "other"))].map((e) =>
      e.name
    );
    assert.deepEqual(names.sort(), ["x", "x"], "no temporary file left");
    assert.equal(await Deno.readTextFile(join(dir, "cf/x/y")), "y\n");
  }));

Deno.test("removeTemporaries takes a killed run's temporaries, never those a step of this process is writing", () =>
  inTempDir(async (dir) => {
    await Deno.mkdir(join(dir, ".lakerun-tmp-1s8h1bkzwo75m")); // left by a killed run (another process)
    await Deno.writeTextFile(join(dir, ".lakerun-tmp-1s8h1bkzwo75m/a.csv"), "a\n");
    // a step beside this one (depends_on) has a batch open in the same folder
    const writing = await new LocalStorage(dir).batch();
    await writing.writeBytes("b/b.csv", new TextEncoder().encode("b\n"));
    await writing.flush();
    assert.deepEqual(await new LocalStorage(dir).removeTemporaries({ recursive: true }), {
      temporaries: 1,
      uploads: 0,
    });
    await writing.commit();
    assert.equal(await Deno.readTextFile(join(dir, "b/b.csv")), "b\n");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["b"]);
  }));
