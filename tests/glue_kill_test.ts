/**
 * GlueExecutor never starts a job run or a crawl twice for one routine run: lakerun is SIGKILLed while a run
 * (moto) or a crawl (the fake) is in flight and run again; a StartJobRun whose reply is lost, then lakerun
 * gone before it recorded the run (simulated with the fake's lost-reply injection and a refused marker
 * search, no hook in lakerun's code); a later step that fails. Each time the routine is run again with the
 * lakerun CLI, and the service must have seen exactly one run, and the routine must finish.
 *
 * Run: deno test -A tests/glue_kill_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startAwsFake } from "./support/aws_fake.ts";
import { motoAuthorization, startMoto } from "./support/moto.ts";
import { lakerun, lakerunCommand, tempDir } from "./support/lakerun.ts";

const ENV = { AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing", AWS_REGION: "us-east-1" };

async function writeRoutine(
  dir: string,
  endpoint: string,
  steps: Record<string, { params: Record<string, unknown>; tasks: string[] }>,
): Promise<string> {
  const executors = Object.fromEntries(
    Object.entries(steps).map(([id, step]) => [id, { executor: "GlueExecutor", ...step }]),
  );
  await Deno.writeTextFile(
    join(dir, "routine.json"),
    JSON.stringify({
      routine_name: "glue kill",
      aws: { region: "us-east-1", endpoints: { glue: endpoint } },
      executors,
    }),
  );
  return "routine.json";
}

/** Runs lakerun until its output matches `pattern`, then SIGKILLs it; returns what it printed. */
async function killWhen(args: string[], cwd: string, pattern: RegExp): Promise<string> {
  const child = lakerunCommand(args, { cwd, env: ENV }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const pumped = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  }));
  const deadline = Date.now() + 20_000;
  while (!pattern.test(output)) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`no ${pattern} in the output:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  child.kill("SIGKILL");
  const status = await child.status;
  await pumped;
  assert.equal(status.signal, "SIGKILL");
  return output;
}

Deno.test("moto: lakerun SIGKILLed while a job run is in flight, run again: one run at Glue, the routine finishes", async () => {
  const moto = await startMoto();
  try {
    // STARTING for 2 s, RUNNING for 2 s, then SUCCEEDED
    await moto.setTransition("glue::job_run", { progression: "time", seconds: 2 });
    const glue = async (operation: string, body: unknown) => {
      const res = await fetch(moto.endpoint, {
        method: "POST",
        headers: { "x-amz-target": `AWSGlue.${operation}`, authorization: motoAuthorization("glue") },
        body: JSON.stringify(body),
      });
      assert.ok(res.ok, `${operation}: ${res.status}`);
      return await res.json();
    };
    await glue("CreateJob", {
      Name: "etl",
      Role: "arn:aws:iam::123456789012:role/glue",
      Command: { Name: "glueetl", ScriptLocation: "s3://scripts/etl.py" },
    });
    await using dir = await tempDir();
    const file = await writeRoutine(dir.path, moto.endpoint, {
      etl: { params: { job_name: "etl", poll_interval: 0.1 }, tasks: ["start_job_run"] },
    });
    const killed = await killWhen(["run", file], dir.path, /run (jr_\w+): STARTING/);
    const id = /started run (jr_\w+)/.exec(killed)![1];
    const again = await lakerun(["run", file], { cwd: dir.path, env: ENV });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(
      again.stdout,
      new RegExp(`reattaching to run ${id} of Glue job etl, started by an earlier attempt`),
    );
    assert.match(again.stdout, new RegExp(`run ${id} of Glue job etl SUCCEEDED`));
    assert.doesNotMatch(again.stdout, /started run/);
    const { JobRuns } = await glue("GetJobRuns", { JobName: "etl" });
    assert.deepEqual(JobRuns.map((r: { Id: string }) => r.Id), [id]);
  } finally {
    await moto.unsetAllTransitions();
    await moto.stop();
  }
});

Deno.test("fake: lakerun SIGKILLed while a crawl is in flight, run again: it waits for that crawl, one crawl in all", async () => {
  await using fake = await startAwsFake();
  fake.glue.createCrawler("raw", { databaseName: "lake" });
  // long enough that the re-run still finds it running on a loaded machine (it then waits for its end)
  fake.glue.scriptCrawl("raw", { runningForMs: 5_000, tables: [{ name: "sales" }] });
  await using dir = await tempDir();
  const file = await writeRoutine(dir.path, fake.endpoint, {
    crawl: { params: { crawler_name: "raw", poll_interval: 0.1 }, tasks: ["run_crawler"] },
  });
  await killWhen(["run", file], dir.path, /crawler raw: RUNNING/);
  const again = await lakerun(["run", file], { cwd: dir.path, env: ENV });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(
    again.stdout,
    /crawler raw is RUNNING: reattaching to the crawl an earlier attempt of this routine run started/,
  );
  assert.match(again.stdout, /created in lake: sales/);
  assert.equal(fake.glue.crawls("raw").length, 1);
  assert.equal(fake.callsOf("StartCrawler").length, 1);
});

Deno.test("fake: a run started but never recorded (reply lost, then lakerun gone) is found by its marker on the re-run", async () => {
  await using fake = await startAwsFake();
  fake.glue.scriptJob("etl", { runningForMs: 500 });
  // the reply of StartJobRun is lost after the run started; the marker search is refused, so this attempt
  // ends with the run unrecorded: the state lakerun leaves when it is killed between the two
  fake.fail("StartJobRun", 1, { type: "InternalServiceException", status: 500, applied: true });
  fake.fail("GetJobRuns", 1, { type: "AccessDeniedException", message: "not now" });
  await using dir = await tempDir();
  const file = await writeRoutine(dir.path, fake.endpoint, {
    etl: { params: { job_name: "etl", poll_interval: 0.1 }, tasks: ["start_job_run"] },
  });
  const first = await lakerun(["run", file], { cwd: dir.path, env: ENV });
  assert.equal(first.code, 1, first.stdout + first.stderr);
  assert.match(
    first.stdout,
    /StartJobRun got no clear answer .*: looking for a run carrying this step's marker/,
  );
  assert.equal(fake.glue.runs("etl").length, 1);
  const [run] = fake.glue.runs("etl");
  const again = await lakerun(["run", file], { cwd: dir.path, env: ENV });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, new RegExp(`found run ${run.id} of Glue job etl \\(\\w+\\) by its marker`));
  assert.equal(fake.glue.runs("etl").length, 1);
  assert.equal(fake.callsOf("StartJobRun").length, 1);
  assert.equal(run.state, "SUCCEEDED");
});

Deno.test("fake: after a later step failed, the re-run does not start the job again; after success, the next run does", async () => {
  await using fake = await startAwsFake();
  fake.glue.scriptJob("extract", { runningForMs: 200 });
  await using dir = await tempDir();
  const file = await writeRoutine(dir.path, fake.endpoint, {
    extract: { params: { job_name: "extract", poll_interval: 0.05 }, tasks: ["start_job_run"] },
    load: { params: { job_name: "load", poll_interval: 0.05 }, tasks: ["start_job_run"] },
  });
  const first = await lakerun(["run", file], { cwd: dir.path, env: ENV });
  assert.equal(first.code, 1, first.stdout + first.stderr);
  assert.match(first.stdout, /EntityNotFoundException: Job load not found/);
  fake.glue.scriptJob("load", { runningForMs: 200 });
  const again = await lakerun(["run", file], { cwd: dir.path, env: ENV });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(
    again.stdout,
    /run jr_\w+ of Glue job extract already SUCCEEDED in an earlier attempt of this routine run/,
  );
  assert.equal(fake.glue.runs("extract").length, 1);
  assert.equal(fake.glue.runs("load").length, 1);
  // the routine run succeeded: the next one is a new routine run, which starts fresh
  const next = await lakerun(["run", file], { cwd: dir.path, env: ENV });
  assert.equal(next.code, 0, next.stdout + next.stderr);
  assert.equal(fake.glue.runs("extract").length, 2);
  assert.equal(fake.glue.runs("load").length, 2);
});
