/**
 * lib/storage/local.ts's writeFileFromStream: the low-level write every local landing uses. It creates its
 * file (never overwrites one) and, on failure, removes only what it created.
 *
 * Run: deno test -A tests/local_write_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFileFromStream } from "../lib/storage/local.ts";

const bytes = (text: string) => new Blob([text]).stream();

Deno.test("writeFileFromStream never overwrites, and never removes, a file it did not create", async () => {
  const dir = await Deno.makeTempDir();
  try {
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
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileFromStream removes the file it created when the bytes are not what was announced", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "short.csv");
    await assert.rejects(writeFileFromStream(path, bytes("abc"), { size: 10 }, "short.csv"), /short\.csv/);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    const result = await writeFileFromStream(path, bytes("abc"), { size: 3, sha256: true }, "short.csv");
    assert.equal(result.size, 3);
    assert.equal(await Deno.readTextFile(path), "abc");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
