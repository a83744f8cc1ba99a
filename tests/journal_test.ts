/** The run journal: records survive between runs, are whole or absent, and keys cannot leave the folder. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Journal } from "../lib/journal.ts";
import { tempDir } from "./support/lakerun.ts";

Deno.test("a record put by one run is read by the next", async () => {
  await using dir = await tempDir();
  const first = await Journal.open(dir.path);
  await first.put("transform", { inputs: [{ path: "a.csv", size: 3 }] });
  const second = await Journal.open(dir.path);
  assert.deepEqual(await second.get("transform"), { inputs: [{ path: "a.csv", size: 3 }] });
  await second.delete("transform");
  assert.equal(await second.get("transform"), undefined);
  await second.delete("transform"); // deleting twice is fine
});

Deno.test("a torn temporary file never shadows a record, and leaves the record readable", async () => {
  await using dir = await tempDir();
  const journal = await Journal.open(dir.path);
  await journal.put("job", { id: 1 });
  // what a kill during put() leaves behind: a temporary file next to the record
  await Deno.writeTextFile(join(dir.path, "journal", "job.json.1234.tmp"), '{"id": 2');
  assert.deepEqual(await journal.get("job"), { id: 1 });
});

Deno.test("keys are names, not paths", async () => {
  await using dir = await tempDir();
  const journal = await Journal.open(dir.path);
  for (const key of ["../escape", "a/b", "__proto__", "", "UPPER"]) {
    await assert.rejects(journal.put(key, {}), /invalid journal key/, key);
  }
});
