/**
 * The notebook's routine files run unchanged: the shipped examples, with only the download URL pointed at a
 * loopback server (the machines here reach no other host), run through the command line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startFaultServer } from "./support/fault_server.ts";
import { lakerun, ROOT, tempDir } from "./support/lakerun.ts";
import { treeOf } from "./support/trees.ts";

const sampleZip = await Deno.readFile(join(ROOT, "routines/demo/retail_trade_survey.zip"));

async function routineWithUrl(file: string, url: string): Promise<string> {
  const doc = JSON.parse(await Deno.readTextFile(join(ROOT, file)));
  doc.executors.DownloaderExecutor.params.requests_arguments.url = url;
  return JSON.stringify(doc, null, 2);
}

Deno.test("the notebook's retail_trade_survey routine: download + unzip, transfer, post_staging archive", async () => {
  await using server = await startFaultServer({ "/survey.zip": { body: sampleZip } });
  await using dir = await tempDir();
  await Deno.writeTextFile(
    join(dir.path, "routine_config.json"),
    await routineWithUrl("routines/retail_trade_survey.json", server.url("/survey.zip")),
  );
  const result = await lakerun(["run", "routine_config.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const staged = await treeOf(join(dir.path, "data/staging"), { temporaries: true });
  assert.deepEqual(Object.keys(staged), [
    "regional/retail-trade-survey-by-region.csv",
    "retail-trade-survey-inventories.csv",
    "retail-trade-survey-sales.csv",
  ]);
  assert.deepEqual(await treeOf(join(dir.path, "data/archive"), { temporaries: true }), staged);
  assert.deepEqual(await treeOf(join(dir.path, "data/landing"), { temporaries: true }), {});
});

Deno.test("the notebook's routine with a py_exec transform folder runs unchanged", async () => {
  await using server = await startFaultServer({ "/survey.zip": { body: sampleZip } });
  await using dir = await tempDir();
  // the routine names its transform folder relative to the current folder, as the notebook did
  await Deno.mkdir(join(dir.path, "routines/transforms/retail"), { recursive: true });
  await Deno.copyFile(
    join(ROOT, "routines/transforms/retail/py_exec.py"),
    join(dir.path, "routines/transforms/retail/py_exec.py"),
  );
  await Deno.writeTextFile(
    join(dir.path, "routine_config.json"),
    await routineWithUrl("routines/retail_trade_survey_transform.json", server.url("/survey.zip")),
  );

  const result = await lakerun(["run", "routine_config.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /py_exec: retail-trade-survey-sales\.csv: kept \d+ rows/);

  const staged = await treeOf(join(dir.path, "data/staging"), { temporaries: true });
  assert.deepEqual(Object.keys(staged), [
    "regional/retail-trade-survey-by-region.filtered.csv",
    "retail-trade-survey-inventories.filtered.csv",
    "retail-trade-survey-sales.filtered.csv",
  ]);
  for (const path of Object.keys(staged)) {
    const text = await Deno.readTextFile(join(dir.path, "data/staging", path));
    const periods = text.trim().split("\n").slice(1).map((line) => line.split(",")[1]);
    assert.ok(periods.length > 0 && periods.every((p) => p >= "2020.03"), "min_period applied");
  }
  const archived = await treeOf(join(dir.path, "data/archive"), { temporaries: true });
  assert.equal(Object.keys(archived).length, 3);
  for (const path of Object.keys(archived)) {
    const text = await Deno.readTextFile(join(dir.path, "data/archive", path));
    assert.ok(text.startsWith("Series_reference,Period"), `original archived: ${path}`);
  }
  assert.notEqual(
    archived["retail-trade-survey-sales.csv"],
    staged["retail-trade-survey-sales.filtered.csv"],
  );
  assert.deepEqual(await treeOf(join(dir.path, "data/landing"), { temporaries: true }), {});

  const plan = await lakerun(["plan", "--json", "routine_config.json"], { cwd: dir.path });
  const staging = JSON.parse(plan.stdout).steps[1];
  assert.deepEqual(staging.permissions.run, ["python3"], "python3 may run only because py_exec_path is set");
});

Deno.test("the demo command runs offline and leaves staged and archived files", async () => {
  await using dir = await tempDir();
  const result = await lakerun(["demo", "--dir", join(dir.path, "demo")], { cwd: dir.path });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /✓ done in/);
  const staged = await treeOf(join(dir.path, "demo/data/staging"), { temporaries: true });
  assert.equal(Object.keys(staged).length, 3);
  assert.deepEqual(await treeOf(join(dir.path, "demo/data/archive"), { temporaries: true }), staged);
});
