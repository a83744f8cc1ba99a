/**
 * AthenaExecutor never starts a query twice for one routine run: lakerun is SIGKILLed while a query is in
 * flight at the Athena fake (tests/support/aws_fake.ts, time-based scripts) and run again; the re-run
 * reattaches to the query, recorded in the step's journal, instead of starting another. Also: a query whose
 * id was never recorded is found again by its ClientRequestToken, a failed later step re-runs only what
 * failed, and a run after a successful one starts fresh.
 *
 * Run: deno test -A tests/athena_kill_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startAwsFake } from "./support/aws_fake.ts";
import { lakerun, lakerunCommand, tempDir } from "./support/lakerun.ts";

const fakeKeys = { AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing" };

async function writeRoutine(dir: string, athena: string, steps: Record<string, Record<string, unknown>>) {
  const executors = Object.fromEntries(
    Object.entries(steps).map((
      [id, params],
    ) => [id, { executor: "AthenaExecutor", params, tasks: ["query"] }]),
  );
  const routine = {
    routine_name: "athena-kill",
    aws: { region: "us-east-1", endpoints: { athena } },
    executors,
  };
  await Deno.writeTextFile(join(dir, "routine.json"), JSON.stringify(routine, null, 2));
}

async function run(dir: string) {
  const result = await lakerun(["run", "routine.json"], { cwd: dir, env: fakeKeys });
  return { ...result, output: `${result.stdout}\n${result.stderr}` };
}

/** Starts lakerun, waits until its query is being polled (its id is recorded by then), and SIGKILLs it. */
async function killWhilePolling(dir: string, polls: () => number): Promise<void> {
  const child = lakerunCommand(["run", "routine.json"], {
    cwd: dir,
    env: fakeKeys,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 10_000;
  while (polls() === 0) {
    if (Date.now() > deadline) throw new Error("lakerun never polled its query");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill("SIGKILL");
  assert.equal((await child.status).signal, "SIGKILL");
}

/** The cloud-run journal files under `dir`'s state folder. */
async function journalFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const child = join(path, entry.name);
      if (entry.isDirectory) await walk(child);
      else if (/^cloud-[0-9a-f]+\.json$/.test(entry.name)) files.push(child);
    }
  };
  await walk(join(dir, ".lakerun"));
  return files;
}

Deno.test("SIGKILL while a query is in flight: the re-run reattaches to it, one query in total", async () => {
  await using fake = await startAwsFake();
  fake.athena.script("FROM big", { runningForMs: 2500, columns: ["n"], rows: [["42"]], times: 1 });
  await using dir = await tempDir();
  await writeRoutine(dir.path, fake.endpoint, {
    count: { query: "SELECT count(*) AS n FROM big", results_to: "out/n.csv" },
  });
  await killWhilePolling(dir.path, () => fake.callsOf("GetQueryExecution").length);
  assert.equal(fake.athena.queries.length, 1);
  assert.equal(fake.athena.queries[0].state, "RUNNING", "still in flight at the service");

  const again = await run(dir.path);
  assert.equal(again.code, 0, again.output);
  const [query] = fake.athena.queries;
  assert.equal(fake.athena.queries.length, 1, "one query in total");
  assert.equal(fake.callsOf("StartQueryExecution").length, 1, "never asked to start it again");
  assert.equal(query.state, "SUCCEEDED");
  assert.match(again.output, new RegExp(`reattaching to query ${query.id}, started by an earlier attempt`));
  assert.equal(await Deno.readTextFile(join(dir.path, "out/n.csv")), '"n"\n"42"\n');

  // that run completed normally: the next one starts fresh, with a new token
  const next = await run(dir.path);
  assert.equal(next.code, 0, next.output);
  assert.equal(fake.athena.queries.length, 2);
  assert.notEqual(fake.athena.queries[1].clientRequestToken, query.clientRequestToken);
});

Deno.test("killed before the query id was recorded: the same ClientRequestToken finds the query again", async () => {
  await using fake = await startAwsFake();
  fake.athena.script("FROM big", { runningForMs: 2500 });
  await using dir = await tempDir();
  await writeRoutine(dir.path, fake.endpoint, { count: { query: "SELECT count(*) FROM big" } });
  await killWhilePolling(dir.path, () => fake.callsOf("GetQueryExecution").length);
  // lakerun dies between Athena's answer and the journal write: the entry has a token but no id
  const [file] = await journalFiles(dir.path);
  const entry = JSON.parse(await Deno.readTextFile(file));
  assert.equal(entry.id, fake.athena.queries[0].id);
  delete entry.id;
  await Deno.writeTextFile(file, JSON.stringify({ ...entry, state: "starting" }));

  const again = await run(dir.path);
  assert.equal(again.code, 0, again.output);
  assert.equal(fake.athena.queries.length, 1, "one query in total");
  assert.equal(
    fake.athena.queries[0].starts,
    2,
    "the second StartQueryExecution was answered with the first id",
  );
  assert.equal(fake.athena.queries[0].clientRequestToken, entry.token);
  assert.match(again.output, /asking Athena again with the same ClientRequestToken/);
});

Deno.test("a failed later step: the re-run reattaches to the earlier step's finished query, retries the failed one", async () => {
  await using fake = await startAwsFake();
  fake.athena.script("FROM a", { columns: ["x"], rows: [["1"]] });
  fake.athena.script("FROM b", {
    states: ["QUEUED", "FAILED"],
    error: { ErrorCategory: 1, ErrorMessage: "Query exhausted resources" },
    times: 1,
  });
  await using dir = await tempDir();
  await writeRoutine(dir.path, fake.endpoint, {
    first: { query: "SELECT x FROM a" },
    second: { query: "SELECT y FROM b" },
  });
  const failed = await run(dir.path);
  assert.equal(failed.code, 1, failed.output);
  assert.match(failed.output, /FAILED: system error \(type 1000\): Query exhausted resources/);

  const again = await run(dir.path);
  assert.equal(again.code, 0, again.output);
  const started = fake.callsOf("StartQueryExecution").map((call) => String(call.body.QueryString));
  assert.deepEqual(started, ["SELECT x FROM a", "SELECT y FROM b", "SELECT y FROM b"]);
  assert.match(again.output, /already SUCCEEDED in an earlier attempt of this run/);
  assert.deepEqual(fake.athena.queries.map((q) => q.state), ["SUCCEEDED", "FAILED", "SUCCEEDED"]);
});
