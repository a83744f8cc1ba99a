/**
 * GlueExecutor: `start_job_run` and `run_crawler` against moto (the happy paths: a job run held in STARTING
 * and RUNNING by moto's transitions, ConcurrentRunsExceededException, crawls under time-based and immediate
 * transitions, moto's "COMPLETED") and against the fake of tests/support/aws_fake.ts (what moto lacks: FAILED,
 * TIMEOUT and ERROR runs with their ErrorMessage, BatchStopJobRun on interruption and timeout, the marker
 * search over several GetJobRuns pages, throttled polls, GetCrawlerMetrics, time-based runs on a scaled
 * clock). End-to-end tests run the lakerun CLI on small routine files, so the step runs in its sandbox, and
 * send it SIGINT and SIGTERM. The kill-and-re-run tests are in tests/glue_kill_test.ts.
 *
 * Run: deno test -A tests/glue_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import glueExecutor, { glueStatements } from "../executors/glue/mod.ts";
import { runCrawler } from "../executors/glue/crawler.ts";
import { olderRunsFollow, RUN_MARKER_ARGUMENT, startJobRun } from "../executors/glue/job_run.ts";
import { type GlueParams, paramsSchema } from "../executors/glue/params.ts";
import type { GlueTaskOptions } from "../executors/glue/common.ts";
import type { TaskContext } from "../sdk/executor.ts";
import { AwsJsonClient, AwsServiceError } from "../lib/aws/json_client.ts";
import { CloudRunLedger } from "../lib/cloud/ledger.ts";
import { type AwsFake, startAwsFake } from "./support/aws_fake.ts";
import { motoAuthorization, type MotoServer, startMoto } from "./support/moto.ts";
import { lakerun, lakerunCommand, ROOT, tempDir } from "./support/lakerun.ts";

const CREDENTIALS = () => Promise.resolve({ accessKeyId: "testing", secretAccessKey: "testing" });
/** Fake credentials for lakerun processes: the routine's endpoint takes the place of AWS. */
const ENV = { AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing", AWS_REGION: "us-east-1" };
/** The test plugins: StepProbeExecutor writes a param (with the templates resolved) to a file. */
const PLUGINS = join(ROOT, "tests/fixtures/step_plugins");

// ------------------------------------------------------------------------------------------------ helpers

/** The fake, with a clock tests may move (`clockOffset`): one server for the whole file. */
let clockOffset = 0;
const fake: AwsFake = await startAwsFake({ clock: () => Date.now() + clockOffset });

/** One moto server for the file, started on first use. */
let motoServer: MotoServer | undefined;
async function moto(): Promise<MotoServer> {
  motoServer ??= await startMoto();
  return motoServer;
}

/** A raw Glue call to moto (CreateJob, StartJobRun, …), failing the test on an error answer. */
async function motoGlue(operation: string, body: unknown): Promise<any> {
  const server = await moto();
  const res = await fetch(server.endpoint, {
    method: "POST",
    headers: {
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": `AWSGlue.${operation}`,
      authorization: motoAuthorization("glue"),
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`moto ${operation} answered ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

async function motoJob(name: string): Promise<void> {
  await motoGlue("CreateJob", {
    Name: name,
    Role: "arn:aws:iam::123456789012:role/glue",
    Command: { Name: "glueetl", ScriptLocation: "s3://scripts/etl.py" },
  });
}

async function motoCrawler(name: string): Promise<void> {
  await motoGlue("CreateCrawler", {
    Name: name,
    Role: "arn:aws:iam::123456789012:role/glue",
    DatabaseName: "raw",
    Targets: { S3Targets: [{ Path: "s3://lake/raw/" }] },
  });
}

/** A task's context, run in this process (no Worker), with its log lines collected. */
interface Harness {
  context: TaskContext<GlueParams>;
  options: GlueTaskOptions;
  lines: string[];
  controller: AbortController;
}

function harness(
  endpoint: string,
  raw: Record<string, unknown>,
  setup: { stateDir: string; runId?: string; options?: GlueTaskOptions },
): Harness {
  const params = paramsSchema(z).parse(raw);
  const lines: string[] = [];
  const log = (message: string) => lines.push(message);
  const controller = new AbortController();
  const aws = { region: "us-east-1", endpoints: { glue: endpoint } };
  const client = new AwsJsonClient("glue", {
    settings: aws,
    credentials: CREDENTIALS,
    baseDelayMs: 5,
    onRetry: ({ operation, code }) => log(`retry ${operation}: ${code}`),
  });
  const context: TaskContext<GlueParams> = {
    params,
    stepId: "glue",
    routineName: "glue test",
    runId: setup.runId ?? "run-1",
    cwd: setup.stateDir,
    resolve: (path) => path,
    stateDir: setup.stateDir,
    aws,
    report: (event) => event.type === "log" && log(event.message),
    log,
    mask: (text) => text,
    signal: controller.signal,
    shared: new Map(),
  };
  return { context, options: { client, ...setup.options }, lines, controller };
}

/** Resolves once `condition` holds (checked every 10 ms), or fails after `ms`. */
async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Calls of `operation` at the fake made after `from` calls in total. */
function callsSince(from: number, operation: string) {
  return fake.calls.slice(from).filter((call) => call.operation === operation);
}

async function withStateDir(fn: (stateDir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lakerun-glue-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes a routine of GlueExecutor steps pointed at `endpoint`; returns its file name. */
async function writeRoutine(
  dir: string,
  endpoint: string,
  steps: Record<string, { params: Record<string, unknown>; tasks: string[] }>,
): Promise<string> {
  const executors = Object.fromEntries(
    Object.entries(steps).map(([id, step]) => [id, { executor: "GlueExecutor", ...step }]),
  );
  const routine = {
    routine_name: "glue routine",
    aws: { region: "us-east-1", endpoints: { glue: endpoint } },
    executors,
  };
  await Deno.writeTextFile(join(dir, "routine.json"), JSON.stringify(routine, null, 2));
  return "routine.json";
}

/** A lakerun process whose output is read as it comes. */
function spawnLakerun(args: string[], cwd: string) {
  const child = lakerunCommand(args, { cwd, env: ENV }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  };
  const pumped = Promise.all([pump(child.stdout), pump(child.stderr)]);
  return {
    child,
    get output() {
      return output;
    },
    async waitFor(pattern: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
      await until(() => pattern.test(output), `${pattern} in the output:\n${output}`, ms);
      return output.match(pattern)!;
    },
    async finish(): Promise<{ code: number; output: string }> {
      const status = await child.status;
      await pumped;
      return { code: status.code, output };
    },
  };
}

// ------------------------------------------------------------------------------------------------ moto

Deno.test("moto: start_job_run starts one run with the arguments and the marker, logs its states, succeeds", async () => {
  const server = await moto();
  await server.setTransition("glue::job_run", { progression: "manual", times: 2 });
  try {
    await motoJob("clean-sales");
    await using dir = await tempDir();
    const file = await writeRoutine(dir.path, server.endpoint, {
      clean: {
        params: {
          job_name: "clean-sales",
          arguments: { day: "2024-05-01", "--mode": "full", workers: 4 },
          poll_interval: 0.1,
        },
        tasks: ["start_job_run"],
      },
    });
    const result = await lakerun(["run", file], { cwd: dir.path, env: ENV });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const { JobRuns } = await motoGlue("GetJobRuns", { JobName: "clean-sales" });
    assert.equal(JobRuns.length, 1);
    const [run] = JobRuns;
    assert.equal(run.Arguments["--day"], "2024-05-01");
    assert.equal(run.Arguments["--mode"], "full");
    assert.equal(run.Arguments["--workers"], "4");
    assert.match(run.Arguments[RUN_MARKER_ARGUMENT], /^[0-9a-f]{64}$/);
    const out = result.stdout;
    // the id at once, then every state change, then the end
    const started = out.indexOf(`started run ${run.Id} of Glue job clean-sales`);
    assert.ok(started >= 0, out);
    assert.ok(started < out.indexOf(`run ${run.Id}: STARTING`), out);
    assert.ok(out.indexOf(`run ${run.Id}: STARTING`) < out.indexOf(`run ${run.Id}: RUNNING`), out);
    assert.ok(out.indexOf(`run ${run.Id}: RUNNING`) < out.indexOf(`run ${run.Id}: SUCCEEDED`), out);
    assert.match(out, new RegExp(`run ${run.Id} of Glue job clean-sales SUCCEEDED: execution time`));
  } finally {
    await server.unsetAllTransitions();
    await server.reset();
  }
});

Deno.test("moto: ConcurrentRunsExceededException is a clear error naming the job and the run already going", async () => {
  const server = await moto();
  await server.setTransition("glue::job_run", { progression: "manual", times: 1000 });
  try {
    await motoJob("nightly");
    const { JobRunId } = await motoGlue("StartJobRun", { JobName: "nightly" });
    await using dir = await tempDir();
    const file = await writeRoutine(dir.path, server.endpoint, {
      nightly: { params: { job_name: "nightly", poll_interval: 0.1 }, tasks: ["start_job_run"] },
    });
    const result = await lakerun(["run", file], { cwd: dir.path, env: ENV });
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      new RegExp(
        `Glue job nightly is already running and allows no more concurrent runs \\(ConcurrentRunsExceededException: Job with name nightly already running\\); running: ${JobRunId} \\(STARTING, started [0-9T:.-]+Z\\)`,
      ),
    );
    assert.equal((await motoGlue("GetJobRuns", { JobName: "nightly" })).JobRuns.length, 1);
  } finally {
    await server.unsetAllTransitions();
    await server.reset();
  }
});

Deno.test("moto: run_crawler joins a crawl already running, accepts moto's COMPLETED and says the table figures are unavailable", async () => {
  const server = await moto();
  // GetCrawler never advances a crawl under moto's default transition: time-based here
  await server.setTransition("glue::crawl", { progression: "time", seconds: 1 });
  try {
    await motoCrawler("raw-sales");
    await motoGlue("StartCrawler", { Name: "raw-sales" });
    await using dir = await tempDir();
    const file = await writeRoutine(dir.path, server.endpoint, {
      crawl: { params: { crawler_name: "raw-sales", poll_interval: 0.1 }, tasks: ["run_crawler"] },
    });
    const result = await lakerun(["run", file], { cwd: dir.path, env: ENV });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const out = result.stdout;
    assert.match(out, /crawler raw-sales is already running \(started elsewhere\): joining that crawl/);
    assert.match(out, /crawler raw-sales: RUNNING\n.*crawler raw-sales: READY/s);
    assert.match(out, /crawl of raw-sales COMPLETED/);
    assert.match(
      out,
      /tables created\/updated: figure unavailable \(GetCrawlerMetrics: Glue GetCrawlerMetrics failed: HTTP 500\); LastCrawl says COMPLETED, log \/aws-glue\/crawlers\/raw-sales/,
    );
    assert.match(out, /no table of database raw was created or updated by this crawl/);
  } finally {
    await server.unsetAllTransitions();
    await server.reset();
  }
});

Deno.test("moto: run_crawler starts an idle crawler (immediate transition) and finishes", async () => {
  const server = await moto();
  await server.setTransition("glue::crawl", { progression: "immediate" });
  try {
    await motoCrawler("events");
    await withStateDir(async (stateDir) => {
      const h = harness(server.endpoint, { crawler_name: "events", poll_interval: 0.05 }, { stateDir });
      await runCrawler(h.context, h.options);
      assert.ok(h.lines.includes("started crawler events"), h.lines.join("\n"));
      assert.ok(h.lines.some((l) => l.startsWith("crawl of events COMPLETED")), h.lines.join("\n"));
    });
  } finally {
    await server.unsetAllTransitions();
    await server.reset();
  }
});

Deno.test("moto: outputs: a later step uses the job run's id, state and time and the crawl's status; a re-run reports the same", async () => {
  const server = await moto();
  await server.setTransition("glue::job_run", { progression: "manual", times: 1 });
  await server.setTransition("glue::crawl", { progression: "immediate" });
  try {
    await motoJob("clean-sales");
    await motoCrawler("raw-sales");
    await using dir = await tempDir();
    await Deno.mkdir(join(dir.path, "w"));
    const file = await writeRoutine(dir.path, server.endpoint, {
      glue: {
        params: { job_name: "clean-sales", crawler_name: "raw-sales", poll_interval: 0.1 },
        tasks: ["start_job_run", "run_crawler"],
      },
    });
    // a consumer step, after the Glue step
    const routine = JSON.parse(await Deno.readTextFile(join(dir.path, file)));
    const names = ["job_run_id", "job_run_state", "execution_time_seconds", "crawl_status"];
    routine.executors.use = {
      executor: "StepProbeExecutor",
      params: {
        folder: "w",
        fail_if: "fail.flag",
        note: names.map((name) => `${name}=\${{ steps.glue.outputs.${name} }}`).join("|"),
      },
      tasks: ["work"],
    };
    await Deno.writeTextFile(join(dir.path, file), JSON.stringify(routine));
    const run = () => lakerun(["run", "--executors", PLUGINS, file], { cwd: dir.path, env: ENV });

    await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
    const first = await run();
    assert.equal(first.code, 1, first.stdout + first.stderr);
    const { JobRuns: [jobRun] } = await motoGlue("GetJobRuns", { JobName: "clean-sales" });
    // moto: ExecutionTime 123, no DPUSeconds, no GetCrawlerMetrics, a crawl "COMPLETED"
    const expected = {
      job_run_id: jobRun.Id,
      job_run_state: "SUCCEEDED",
      execution_time_seconds: 123,
      crawl_status: "COMPLETED",
    };
    const note = names.map((name) => `${name}=${expected[name as keyof typeof expected]}`).join("|");
    assert.equal(await Deno.readTextFile(join(dir.path, "w/use.note")), note);

    // the same routine run again: the run and the crawl are over, not started again; the same outputs
    await Deno.remove(join(dir.path, "w/fail.flag"));
    await Deno.remove(join(dir.path, "w/use.note"));
    const again = await run();
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /already SUCCEEDED in an earlier attempt of this routine run/);
    assert.match(again.stdout, /already crawled in an earlier attempt of this routine run/);
    assert.equal((await motoGlue("GetJobRuns", { JobName: "clean-sales" })).JobRuns.length, 1);
    assert.equal(await Deno.readTextFile(join(dir.path, "w/use.note")), note);
    const runs = await lakerun(["runs", "--json", file], { cwd: dir.path });
    const [record] = JSON.parse(runs.stdout);
    assert.equal(record.attempt, 2);
    assert.deepEqual(record.steps.glue.outputs, expected);
  } finally {
    await server.unsetAllTransitions();
    await server.reset();
  }
});

/** A Glue client whose first StartJobRun reply is lost after Glue carried the call out. */
class ReplyLosingClient extends AwsJsonClient {
  #lost = false;
  override async call<T = Record<string, unknown>>(
    operation: string,
    input: Record<string, unknown>,
    options?: { signal?: AbortSignal; idempotent?: boolean },
  ): Promise<T> {
    const answer = await super.call<T>(operation, input, options);
    if (operation === "StartJobRun" && !this.#lost) {
      this.#lost = true;
      throw new AwsServiceError("Glue", operation, "NetworkError", "connection reset (test: reply lost)");
    }
    return answer;
  }
}

Deno.test("moto: a lost StartJobRun reply: the marker search reads moto's oldest-first pages and finds the run", async () => {
  const server = await moto();
  await server.setTransition("glue::job_run", { progression: "time", seconds: 1 });
  try {
    await motoGlue("CreateJob", {
      Name: "paged",
      Role: "arn:aws:iam::123456789012:role/glue",
      Command: { Name: "glueetl", ScriptLocation: "s3://scripts/etl.py" },
      ExecutionProperty: { MaxConcurrentRuns: 10 },
    });
    for (let i = 0; i < 5; i++) await motoGlue("StartJobRun", { JobName: "paged" });
    await withStateDir(async (stateDir) => {
      const settings = { region: "us-east-1", endpoints: { glue: server.endpoint } };
      const h = harness(server.endpoint, { job_name: "paged", poll_interval: 0.1 }, {
        stateDir,
        options: {
          client: new ReplyLosingClient("glue", { settings, credentials: CREDENTIALS }),
          pageSize: 2,
        },
      });
      await startJobRun(h.context, h.options);
      const { JobRuns } = await motoGlue("GetJobRuns", { JobName: "paged" });
      assert.equal(JobRuns.length, 6);
      const ours = JobRuns.filter((r: { Arguments?: Record<string, string> }) =>
        r.Arguments?.[RUN_MARKER_ARGUMENT]
      );
      assert.equal(ours.length, 1);
      assert.ok(
        h.lines.includes(
          `found run ${
            ours[0].Id
          } of Glue job paged by its marker: StartJobRun had started it; not starting another`,
        ),
        h.lines.join("\n"),
      );
      assert.match(h.lines.at(-1)!, new RegExp(`run ${ours[0].Id} of Glue job paged SUCCEEDED`));
    });
  } finally {
    await server.unsetAllTransitions();
    await server.reset();
  }
});

// ------------------------------------------------------------------------------------------------ fake: job runs

for (const state of ["FAILED", "TIMEOUT", "ERROR"] as const) {
  Deno.test(`fake: a run that ends ${state} fails the task with Glue's ErrorMessage and the run id; the next attempt starts a new run`, async () => {
    const job = `ends-${state.toLowerCase()}`;
    fake.glue.scriptJob(job, {
      states: ["STARTING", "RUNNING", state],
      errorMessage: `${state.toLowerCase()}: s3://lake/raw/day=1 is empty`,
      times: 1,
    });
    fake.glue.scriptJob(job, { states: ["RUNNING", "SUCCEEDED"] });
    await withStateDir(async (stateDir) => {
      const h = harness(fake.endpoint, { job_name: job, poll_interval: 0.05 }, { stateDir });
      await assert.rejects(
        startJobRun(h.context, h.options),
        new RegExp(
          `^Error: Glue job ${job} run (jr_\\w+) ended ${state}: ${state.toLowerCase()}: s3://lake/raw/day=1 is empty$`,
        ),
      );
      const failed = fake.glue.runs(job)[0];
      assert.ok(h.lines.includes(`run ${failed.id}: ${state}`), h.lines.join("\n"));
      // the same routine run again (a retried step): a run that ended badly is not reattached to
      const again = harness(fake.endpoint, { job_name: job, poll_interval: 0.05 }, { stateDir });
      await startJobRun(again.context, again.options);
      assert.equal(fake.glue.runs(job).length, 2);
      assert.notEqual(
        fake.glue.runs(job)[1].arguments[RUN_MARKER_ARGUMENT],
        failed.arguments[RUN_MARKER_ARGUMENT],
      );
    });
  });
}

Deno.test("fake: Ctrl-C while waiting stops the run (BatchStopJobRun), says so, and rethrows", async () => {
  fake.glue.scriptJob("long", { startingForMs: 100, runningForMs: 60_000 });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { job_name: "long", poll_interval: 0.05 }, { stateDir });
    const task = startJobRun(h.context, h.options);
    await until(() => h.lines.some((l) => l.endsWith(": RUNNING")), "RUNNING");
    h.controller.abort(new DOMException("interrupted by SIGINT", "AbortError"));
    await assert.rejects(task, /interrupted by SIGINT/);
    const [run] = fake.glue.runs("long");
    assert.notEqual(run.stopRequestedAt, undefined);
    assert.equal(
      fake.callsOf("BatchStopJobRun").filter((c) => (c.body.JobRunIds as string[])[0] === run.id).length,
      1,
    );
    assert.ok(
      h.lines.includes(
        `interrupted by SIGINT: stopped run ${run.id} of Glue job long (BatchStopJobRun accepted: STOPPING, then STOPPED)`,
      ),
      h.lines.join("\n"),
    );
    // stopped by us: the entry ended badly, so a re-run starts a new run
    const entry = await (await CloudRunLedger.open(stateDir, "run-1", "glue")).get("start_job_run");
    assert.equal(entry?.state, "failed");
  });
});

/** A Glue client whose StartJobRun reply never comes back: it waits until the call is aborted. */
class ReplyHoldingClient extends AwsJsonClient {
  started = false;
  override async call<T = Record<string, unknown>>(
    operation: string,
    input: Record<string, unknown>,
    options?: { signal?: AbortSignal; idempotent?: boolean },
  ): Promise<T> {
    const answer = await super.call<T>(operation, input, options);
    if (operation !== "StartJobRun") return answer;
    this.started = true;
    return await new Promise<T>((_, reject) => {
      options?.signal?.addEventListener("abort", () => reject(options.signal!.reason), { once: true });
    });
  }
}

Deno.test("fake: Ctrl-C while StartJobRun's reply is awaited finds the run by its marker and stops it", async () => {
  fake.glue.scriptJob("starting", { runningForMs: 60_000 });
  await withStateDir(async (stateDir) => {
    const settings = { region: "us-east-1", endpoints: { glue: fake.endpoint } };
    const client = new ReplyHoldingClient("glue", { settings, credentials: CREDENTIALS });
    const h = harness(fake.endpoint, { job_name: "starting" }, { stateDir, options: { client } });
    const task = startJobRun(h.context, h.options);
    await until(() => client.started, "StartJobRun");
    h.controller.abort(new DOMException("interrupted by SIGINT", "AbortError"));
    await assert.rejects(task, /interrupted by SIGINT/);
    const [run] = fake.glue.runs("starting");
    assert.notEqual(run.stopRequestedAt, undefined);
    assert.ok(
      h.lines.includes(
        `interrupted while starting: stopped run ${run.id} of Glue job starting (BatchStopJobRun accepted: STOPPING, then STOPPED)`,
      ),
      h.lines.join("\n"),
    );
  });
});

Deno.test("fake: the step's timeout stops the run and fails the task; the run also gets it as its Glue Timeout", async () => {
  fake.glue.scriptJob("slow", { runningForMs: 60_000 });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { job_name: "slow", poll_interval: 0.05, timeout: 0.5 }, { stateDir });
    const started = performance.now();
    await assert.rejects(
      startJobRun(h.context, h.options),
      /^Error: Glue job slow run jr_\w+ still RUNNING after 0\.5 s \(the step's timeout\): stopped it$/,
    );
    assert.ok(performance.now() - started < 30_000, "did not wait for the run (60 s) to end");
    const [run] = fake.glue.runs("slow");
    assert.notEqual(run.stopRequestedAt, undefined);
    assert.equal(run.timeout, 1); // minutes, rounded up
    assert.ok(
      h.lines.some((l) => l.startsWith(`timeout (0.5 s): stopped run ${run.id}`)),
      h.lines.join("\n"),
    );
  });
});

Deno.test("fake: a lost StartJobRun reply is not answered by a second start: the run is found by its marker", async () => {
  fake.glue.scriptJob("lost", { runningForMs: 200 });
  fake.fail("StartJobRun", 1, { type: "InternalServiceException", status: 500, applied: true });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { job_name: "lost", poll_interval: 0.05 }, { stateDir });
    const from = fake.calls.length;
    await startJobRun(h.context, h.options);
    const runs = fake.glue.runs("lost");
    assert.equal(runs.length, 1);
    assert.equal(callsSince(from, "StartJobRun").length, 1);
    assert.ok(
      h.lines.includes(
        `found run ${
          runs[0].id
        } of Glue job lost by its marker: StartJobRun had started it; not starting another`,
      ),
      h.lines.join("\n"),
    );
    assert.ok(h.lines.some((l) => l.startsWith(`run ${runs[0].id} of Glue job lost SUCCEEDED`)));
  });
});

Deno.test("fake: an unrecorded run is found by its marker across GetJobRuns pages; the search stops at runs older than the entry", async () => {
  const job = "busy";
  fake.glue.createJob(job, { maxConcurrentRuns: 10_000 });
  const client = new AwsJsonClient("glue", {
    settings: { region: "us-east-1", endpoints: { glue: fake.endpoint } },
    credentials: CREDENTIALS,
  });
  const othersStart = async (count: number) => {
    for (let i = 0; i < count; i++) await client.call("StartJobRun", { JobName: job });
  };
  // 250 runs of other people an hour ago
  fake.glue.scriptJob(job, { runningForMs: 3_600_000, times: 250 });
  clockOffset = -3_600_000;
  try {
    await othersStart(250);
  } finally {
    clockOffset = 0;
  }
  await withStateDir(async (stateDir) => {
    // attempt 1 dies between StartJobRun and recording the id: the reply is lost, and so is lakerun
    // (simulated: its marker search is refused, so the attempt ends with the entry still "starting")
    // (ours runs until the test moves the fake's clock on: still running when attempt 2 finds it, however
    // long starting 450 other runs takes)
    fake.glue.scriptJob(job, { runningForMs: 600_000, times: 1 });
    fake.fail("StartJobRun", 1, { type: "InternalServiceException", status: 500, applied: true });
    fake.fail("GetJobRuns", 1, { type: "AccessDeniedException", message: "not now" });
    const first = harness(fake.endpoint, { job_name: job, poll_interval: 0.05 }, { stateDir });
    await assert.rejects(startJobRun(first.context, first.options), /AccessDeniedException: not now/);
    const entry = await (await CloudRunLedger.open(stateDir, "run-1", "glue")).get("start_job_run");
    assert.equal(entry?.state, "starting");
    const ours = fake.glue.runs(job).find((r) => r.arguments[RUN_MARKER_ARGUMENT] === entry?.token);
    assert.ok(ours);
    // then 450 runs of other people start
    fake.glue.scriptJob(job, { runningForMs: 3_600_000, times: 450 });
    await othersStart(450);
    // attempt 2 of the same routine run: newest first, 200 a page, the marked run is on page 3
    const from = fake.calls.length;
    const second = harness(fake.endpoint, { job_name: job, poll_interval: 0.05 }, { stateDir });
    const reattached = startJobRun(second.context, second.options);
    await until(
      () => second.lines.some((line) => line.startsWith(`found run ${ours.id}`)),
      "the marker search",
    );
    clockOffset = 600_000; // ours ends
    try {
      await reattached;
    } finally {
      clockOffset = 0;
    }
    assert.equal(callsSince(from, "StartJobRun").length, 0);
    assert.equal(callsSince(from, "GetJobRuns").length, 3);
    assert.ok(
      second.lines.includes(
        `found run ${ours.id} of Glue job ${job} (RUNNING) by its marker: an earlier attempt started it without ` +
          "recording it; reattaching",
      ),
      second.lines.join("\n"),
    );
    assert.equal(fake.glue.runs(job).length, 701);
  });
  await withStateDir(async (stateDir) => {
    // an attempt that died before its StartJobRun reached Glue: no run carries the marker; the search reads
    // the 451 runs newer than the entry and stops at the first older one (3 pages, not all 4)
    fake.fail("StartJobRun", 1, { type: "InternalServiceException", status: 500 });
    fake.fail("GetJobRuns", 1, { type: "AccessDeniedException", message: "not now" });
    const first = harness(fake.endpoint, { job_name: job, poll_interval: 0.05 }, {
      stateDir,
      runId: "run-2",
    });
    await assert.rejects(startJobRun(first.context, first.options), /AccessDeniedException/);
    assert.equal(fake.glue.runs(job).length, 701);
    fake.glue.scriptJob(job, { runningForMs: 100, times: 1 });
    const from = fake.calls.length;
    const second = harness(fake.endpoint, { job_name: job, poll_interval: 0.05 }, {
      stateDir,
      runId: "run-2",
    });
    await startJobRun(second.context, second.options);
    assert.equal(callsSince(from, "GetJobRuns").length, 3);
    assert.equal(callsSince(from, "StartJobRun").length, 1);
    assert.equal(fake.glue.runs(job).length, 702);
  });
});

Deno.test("the marker search stops only at a newest-first page reaching older runs (moto lists oldest first)", () => {
  const since = Date.parse("2024-05-01T12:00:00Z");
  const at = (...times: string[]) => times.map((time) => ({ StartedOn: Date.parse(time) / 1000 }));
  assert.equal(olderRunsFollow(at("2024-05-01T12:30:00Z", "2024-05-01T11:00:00Z"), since), true);
  assert.equal(olderRunsFollow(at("2024-05-01T11:00:00Z", "2024-05-01T10:00:00Z"), since), true);
  // oldest first: the newer runs, ours perhaps, are on later pages
  assert.equal(olderRunsFollow(at("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"), since), false);
  assert.equal(olderRunsFollow(at("2024-05-01T12:30:00Z", "2024-05-01T12:10:00Z"), since), false);
  assert.equal(olderRunsFollow([{}, ...at("2024-05-01T11:00:00Z")], since), false);
});

Deno.test("fake: ConcurrentRunsExceededException when the running run is ours (marker): reattach, even with a skewed clock", async () => {
  // Glue's clock an hour behind ours: the marker search takes every run for an old one and stops at once…
  clockOffset = -3_600_000;
  try {
    fake.glue.createJob("skewed", { maxConcurrentRuns: 2 });
    fake.glue.scriptJob("skewed", { runningForMs: 1_500, times: 1 });
    fake.glue.scriptJob("skewed", { runningForMs: 60_000, times: 1 });
    await withStateDir(async (stateDir) => {
      fake.fail("StartJobRun", 1, { type: "InternalServiceException", status: 500, applied: true });
      fake.fail("GetJobRuns", 1, { type: "AccessDeniedException", message: "not now" });
      const first = harness(fake.endpoint, { job_name: "skewed", poll_interval: 0.05 }, { stateDir });
      await assert.rejects(startJobRun(first.context, first.options), /AccessDeniedException/);
      // someone else's run starts after ours: the newest, and (on Glue's clock) older than the entry
      await fetch(fake.endpoint, {
        method: "POST",
        headers: { "x-amz-target": "AWSGlue.StartJobRun" },
        body: JSON.stringify({ JobName: "skewed" }),
      }).then((r) => r.body?.cancel());
      // …so StartJobRun is tried, refused (two concurrent runs), and the running run is recognised as ours
      const from = fake.calls.length;
      // (one run a page: the marker search stops after the first page, someone else's "old" run)
      const second = harness(fake.endpoint, { job_name: "skewed", poll_interval: 0.05 }, {
        stateDir,
        options: { pageSize: 1 },
      });
      await startJobRun(second.context, second.options);
      const [ours, theirs] = fake.glue.runs("skewed");
      assert.equal(fake.glue.runs("skewed").length, 2);
      assert.deepEqual(callsSince(from, "StartJobRun").map((c) => c.errorType), [
        "ConcurrentRunsExceededException",
      ]);
      assert.ok(
        second.lines.includes(
          `Glue job skewed is already running run ${ours.id}, which carries this step's marker: reattaching`,
        ),
        second.lines.join("\n"),
      );
      assert.equal(ours.state, "SUCCEEDED");
      assert.equal(theirs.state, "RUNNING");
    });
  } finally {
    clockOffset = 0;
  }
});

Deno.test("fake: throttled StartJobRun and GetJobRun calls are retried, never fatal; one run", async () => {
  fake.glue.scriptJob("throttled", { states: ["STARTING", "RUNNING", "RUNNING", "SUCCEEDED"] });
  fake.throttle("StartJobRun", 2);
  fake.throttle("GetJobRun", 4);
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { job_name: "throttled", poll_interval: 0.05 }, { stateDir });
    await startJobRun(h.context, h.options);
    assert.equal(fake.glue.runs("throttled").length, 1);
    assert.equal(h.lines.filter((l) => l === "retry GetJobRun: ThrottlingException").length, 4);
    assert.equal(h.lines.filter((l) => l === "retry StartJobRun: ThrottlingException").length, 2);
  });
});

Deno.test("fake: a 10-minute job (time-based, on a clock 120× fast) costs at most 40 status calls and is noticed within 30 s", async () => {
  const scale = 120;
  const t0 = Date.now();
  await using scaled = await startAwsFake({ clock: () => t0 + (Date.now() - t0) * scale });
  scaled.glue.scriptJob("ten-minutes", { startingForMs: 20_000, runningForMs: 580_000 });
  await withStateDir(async (stateDir) => {
    // the default poll_interval and cap, scaled like the fake's clock
    const h = harness(scaled.endpoint, { job_name: "ten-minutes" }, {
      stateDir,
      options: { timeScale: scale },
    });
    await startJobRun(h.context, h.options);
    const [run] = scaled.glue.runs("ten-minutes");
    const polls = scaled.callsOf("GetJobRun");
    assert.ok(polls.length <= 40, `${polls.length} GetJobRun calls`);
    const noticed = polls[polls.length - 1].at - run.completedAt!;
    assert.ok(noticed >= 0 && noticed <= 30_000 + 5 * scale, `noticed ${noticed} ms (fake clock) late`);
    assert.deepEqual(h.lines.slice(1, 4).map((l) => l.replace(/^run \S+: /, "")), [
      "STARTING",
      "RUNNING",
      "SUCCEEDED",
    ]);
  });
});

Deno.test("fake: wait: false records the run, reports its id and returns; a re-run of the routine run does not start another", async () => {
  fake.glue.scriptJob("fire-and-forget", { runningForMs: 2_000, DPUSeconds: 7.5 });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { job_name: "fire-and-forget", wait: false }, { stateDir });
    const from = fake.calls.length;
    await startJobRun(h.context, h.options);
    const [run] = fake.glue.runs("fire-and-forget");
    assert.deepEqual(h.lines, [
      `started run ${run.id} of Glue job fire-and-forget`,
      `not waiting (wait: false): run ${run.id} goes on by itself, and lakerun will not stop it`,
    ]);
    assert.equal(callsSince(from, "GetJobRun").length, 0);
    assert.equal(h.context.shared.get("glue.job_run_id"), run.id);
    // a later step failed; the routine run is run again, now waiting for the job
    const again = harness(fake.endpoint, { job_name: "fire-and-forget", poll_interval: 0.05 }, { stateDir });
    await startJobRun(again.context, again.options);
    assert.equal(fake.glue.runs("fire-and-forget").length, 1);
    assert.equal(
      again.lines[0],
      `reattaching to run ${run.id} of Glue job fire-and-forget, started by an earlier attempt of this routine run`,
    );
    assert.match(again.lines.at(-1)!, /SUCCEEDED: execution time 2\.0 s, 7\.5 DPU-seconds$/);
    // … and once more: already succeeded, nothing is called
    const third = harness(fake.endpoint, { job_name: "fire-and-forget" }, { stateDir });
    const before = fake.calls.length;
    await startJobRun(third.context, third.options);
    assert.equal(fake.calls.length, before);
    // a new routine run (the previous one succeeded) starts fresh
    const next = harness(fake.endpoint, { job_name: "fire-and-forget", wait: false }, {
      stateDir,
      runId: "run-2",
    });
    await startJobRun(next.context, next.options);
    assert.equal(fake.glue.runs("fire-and-forget").length, 2);
  });
});

Deno.test("fake: a re-run of the routine run with other arguments stops the earlier attempt's run before starting its own", async () => {
  fake.glue.scriptJob("changed", { runningForMs: 60_000 });
  await withStateDir(async (stateDir) => {
    const params = (day: string) => ({ job_name: "changed", arguments: { day }, wait: false });
    const first = harness(fake.endpoint, params("2024-01-01"), { stateDir });
    await startJobRun(first.context, first.options);
    const [earlier] = fake.glue.runs("changed");
    // lakerun was killed; the routine was edited; the same routine run goes on
    const again = harness(fake.endpoint, params("2024-01-02"), { stateDir });
    await startJobRun(again.context, again.options);
    const runs = fake.glue.runs("changed");
    assert.equal(runs.length, 2);
    assert.notEqual(runs[0].stopRequestedAt, undefined, "the earlier run was stopped");
    assert.equal(runs[1].arguments["--day"], "2024-01-02");
    assert.equal(runs[1].stopRequestedAt, undefined);
    assert.equal(
      again.lines[0],
      `an earlier attempt of this routine run started it with other arguments: stopped run ${earlier.id} of Glue job changed (BatchStopJobRun accepted: STOPPING, then STOPPED)`,
    );
    // a third attempt with the same arguments as the second: reattached, nothing stopped
    const third = harness(fake.endpoint, params("2024-01-02"), { stateDir });
    const stops = fake.callsOf("BatchStopJobRun").length;
    await startJobRun(third.context, third.options);
    assert.equal(fake.callsOf("BatchStopJobRun").length, stops);
    assert.equal(fake.glue.runs("changed").length, 2);
  });
});

Deno.test("fake: worker_type and number_of_workers go with the run; an unknown job is a clear error", async () => {
  fake.glue.scriptJob("sized", { runningForMs: 50 });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, {
      job_name: "sized",
      worker_type: "G.2X",
      number_of_workers: 10,
      poll_interval: 0.05,
    }, { stateDir });
    await startJobRun(h.context, h.options);
    const [run] = fake.glue.runs("sized");
    assert.deepEqual([run.workerType, run.numberOfWorkers], ["G.2X", 10]);
    const missing = harness(fake.endpoint, { job_name: "no-such-job" }, { stateDir });
    await assert.rejects(
      startJobRun(missing.context, missing.options),
      /^AwsServiceError: Glue StartJobRun failed: EntityNotFoundException: Job no-such-job not found$/,
    );
    const noJob = harness(fake.endpoint, { crawler_name: "c" }, { stateDir });
    await assert.rejects(
      startJobRun(noJob.context, noJob.options),
      /^Error: start_job_run needs job_name \(the Glue job to run\); this step has none$/,
    );
  });
});

Deno.test("fake: a StartJobRun Glue refused (or never sent) ends the entry failed: the next attempt starts afresh, with no marker search", async () => {
  /** Attempt 1 fails with `expected`; attempt 2 of the same routine run starts one run without GetJobRuns. */
  const refusedThenStarted = async (
    job: string,
    expected: RegExp,
    setup: {
      before?: () => void | Promise<void>;
      between?: () => void | Promise<void>;
      client?: AwsJsonClient;
    },
  ) => {
    await withStateDir(async (stateDir) => {
      await setup.before?.();
      const first = harness(fake.endpoint, { job_name: job, poll_interval: 0.05 }, {
        stateDir,
        options: setup.client ? { client: setup.client } : {},
      });
      await assert.rejects(startJobRun(first.context, first.options), expected);
      const entry = await (await CloudRunLedger.open(stateDir, "run-1", "glue")).get("start_job_run");
      assert.equal(entry?.state, "failed", `${job}: the refused start is not left "starting"`);
      await setup.between?.();
      const runs = fake.glue.runs(job).length;
      const from = fake.calls.length;
      const second = harness(fake.endpoint, { job_name: job, poll_interval: 0.05 }, { stateDir });
      await startJobRun(second.context, second.options);
      assert.equal(callsSince(from, "GetJobRuns").length, 0, `${job}: no marker search`);
      assert.equal(callsSince(from, "StartJobRun").length, 1);
      assert.equal(fake.glue.runs(job).length, runs + 1);
      assert.ok(second.lines.some((line) => line.startsWith("started run ")), second.lines.join("\n"));
    });
  };
  // the job does not exist yet
  await refusedThenStarted("created-later", /EntityNotFoundException: Job created-later not found/, {
    between: () => fake.glue.scriptJob("created-later", { runningForMs: 50 }),
  });
  // access denied
  fake.glue.scriptJob("denied", { runningForMs: 50, times: 1 });
  await refusedThenStarted("denied", /AccessDeniedException: not allowed/, {
    before: () => fake.fail("StartJobRun", 1, { type: "AccessDeniedException", message: "not allowed" }),
  });
  // someone else's run holds the job's only slot
  fake.glue.createJob("one-slot", { maxConcurrentRuns: 1 });
  fake.glue.scriptJob("one-slot", { runningForMs: 300, times: 1 });
  fake.glue.scriptJob("one-slot", { runningForMs: 50, times: 1 });
  await refusedThenStarted(
    "one-slot",
    /Glue job one-slot is already running and allows no more concurrent runs/,
    {
      before: async () => {
        await fetch(fake.endpoint, {
          method: "POST",
          headers: { "x-amz-target": "AWSGlue.StartJobRun" },
          body: JSON.stringify({ JobName: "one-slot" }),
        }).then((r) => r.body?.cancel());
      },
      between: () => until(() => fake.glue.runs("one-slot")[0].state === "SUCCEEDED", "their run's end"),
    },
  );
  // no credentials: the request never left
  fake.glue.scriptJob("unsigned", { runningForMs: 50, times: 1 });
  const noCredentials = new AwsJsonClient("glue", {
    settings: { region: "us-east-1", endpoints: { glue: fake.endpoint } },
    credentials: () =>
      Promise.reject(Object.assign(new Error("Could not load credentials from any providers"), {
        name: "CredentialsProviderError",
      })),
  });
  await refusedThenStarted("unsigned", /NoCredentials: no AWS credentials for Glue StartJobRun/, {
    client: noCredentials,
  });
});

// ------------------------------------------------------------------------------------------------ fake: crawlers
Deno.test("fake: a StartCrawler Glue refused ends the entry failed: a crawl running later is joined, not taken for ours", async () => {
  fake.glue.createCrawler("refused-crawler", { databaseName: "lake" });
  fake.glue.scriptCrawl("refused-crawler", { runningForMs: 300 });
  await withStateDir(async (stateDir) => {
    fake.fail("StartCrawler", 1, { type: "AccessDeniedException", message: "not allowed" });
    const first = harness(fake.endpoint, { crawler_name: "refused-crawler", poll_interval: 0.05 }, {
      stateDir,
    });
    await assert.rejects(runCrawler(first.context, first.options), /AccessDeniedException: not allowed/);
    const entry = await (await CloudRunLedger.open(stateDir, "run-1", "glue")).get("run_crawler");
    assert.equal(entry?.state, "failed", 'the refused start is not left "starting"');
    // someone else starts the crawler; the next attempt of this routine run joins that crawl
    await fetch(fake.endpoint, {
      method: "POST",
      headers: { "x-amz-target": "AWSGlue.StartCrawler" },
      body: JSON.stringify({ Name: "refused-crawler" }),
    }).then((r) => r.body?.cancel());
    const second = harness(fake.endpoint, { crawler_name: "refused-crawler", poll_interval: 0.05 }, {
      stateDir,
    });
    await runCrawler(second.context, second.options);
    assert.ok(
      second.lines.some((line) => /already running \(started elsewhere\): joining that crawl/.test(line)),
      second.lines.join("\n"),
    );
  });
});

Deno.test("fake: run_crawler reports the tables the crawl created and updated (GetCrawlerMetrics, GetTables)", async () => {
  fake.glue.createCrawler("sales-crawler", { databaseName: "lake" });
  fake.glue.addTable("lake", { name: "items" });
  fake.glue.addTable("lake", { name: "untouched" });
  fake.glue.scriptCrawl("sales-crawler", {
    runningForMs: 300,
    tables: [{ name: "sales" }, { name: "items" }],
  });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { crawler_name: "sales-crawler", poll_interval: 0.05 }, { stateDir });
    await runCrawler(h.context, h.options);
    assert.ok(h.lines.includes("tables: 1 created, 1 updated, 0 deleted"), h.lines.join("\n"));
    assert.ok(h.lines.includes("created in lake: sales"), h.lines.join("\n"));
    assert.ok(h.lines.includes("updated in lake: items"), h.lines.join("\n"));
    assert.deepEqual(h.context.shared.get("glue.crawl"), {
      crawler: "sales-crawler",
      status: "SUCCEEDED",
      tablesCreated: 1,
      tablesUpdated: 1,
      tablesDeleted: 0,
      created: ["sales"],
      updated: ["items"],
    });
    // the same routine run again: already crawled, nothing started
    const again = harness(fake.endpoint, { crawler_name: "sales-crawler" }, { stateDir });
    await runCrawler(again.context, again.options);
    assert.equal(fake.glue.crawls("sales-crawler").length, 1);
    assert.match(
      again.lines[0],
      /already crawled in an earlier attempt of this routine run: not crawling again \(1 table created, 1 updated; created: sales; updated: items\)/,
    );
  });
});

Deno.test("fake: a FAILED crawl fails the task with its ErrorMessage; a CANCELLED one says it was stopped elsewhere", async () => {
  fake.glue.scriptCrawl("broken", {
    states: ["RUNNING", "READY"],
    outcome: "FAILED",
    errorMessage: "no access to s3://lake/raw",
    times: 1,
  });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { crawler_name: "broken", poll_interval: 0.05 }, { stateDir });
    await assert.rejects(
      runCrawler(h.context, h.options),
      /^Error: the crawl of Glue crawler broken ended FAILED: no access to s3:\/\/lake\/raw$/,
    );
  });
  fake.glue.scriptCrawl("cancelled", { runningForMs: 30_000, times: 1 });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { crawler_name: "cancelled", poll_interval: 0.05 }, { stateDir });
    const task = runCrawler(h.context, h.options);
    await until(() => h.lines.includes("crawler cancelled: RUNNING"), "RUNNING");
    await fetch(fake.endpoint, {
      method: "POST",
      headers: { "x-amz-target": "AWSGlue.StopCrawler" },
      body: JSON.stringify({ Name: "cancelled" }),
    }).then((r) => r.body?.cancel());
    await assert.rejects(
      task,
      /^Error: the crawl of Glue crawler cancelled was CANCELLED \(stopped outside this step\)$/,
    );
  });
});

Deno.test("fake: a crawl this step started is stopped on Ctrl-C and at the timeout; a crawl it joined is left running", async () => {
  fake.glue.scriptCrawl("ours", { runningForMs: 30_000 });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { crawler_name: "ours", poll_interval: 0.05 }, { stateDir });
    const task = runCrawler(h.context, h.options);
    await until(() => h.lines.includes("crawler ours: RUNNING"), "RUNNING");
    h.controller.abort(new DOMException("interrupted by SIGTERM", "AbortError"));
    await assert.rejects(task, /interrupted by SIGTERM/);
    assert.notEqual(fake.glue.crawls("ours")[0].stopRequestedAt, undefined);
    assert.ok(
      h.lines.includes(
        "interrupted by SIGTERM: stopped crawler ours (StopCrawler accepted: STOPPING, then READY)",
      ),
    );
  });
  fake.glue.scriptCrawl("ours-timeout", { runningForMs: 30_000 });
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { crawler_name: "ours-timeout", poll_interval: 0.05, timeout: 0.3 }, {
      stateDir,
    });
    await assert.rejects(
      runCrawler(h.context, h.options),
      /^Error: Glue crawler ours-timeout still RUNNING after 0\.3 s \(the step's timeout\): stopped it$/,
    );
    assert.notEqual(fake.glue.crawls("ours-timeout")[0].stopRequestedAt, undefined);
  });
  fake.glue.scriptCrawl("theirs", { runningForMs: 30_000 });
  await fetch(fake.endpoint, {
    method: "POST",
    headers: { "x-amz-target": "AWSGlue.StartCrawler" },
    body: JSON.stringify({ Name: "theirs" }),
  }).then((r) => r.body?.cancel());
  await withStateDir(async (stateDir) => {
    const h = harness(fake.endpoint, { crawler_name: "theirs", poll_interval: 0.05 }, { stateDir });
    const task = runCrawler(h.context, h.options);
    await until(() => h.lines.includes("crawler theirs: RUNNING"), "RUNNING");
    h.controller.abort(new DOMException("interrupted by SIGINT", "AbortError"));
    await assert.rejects(task, /interrupted by SIGINT/);
    assert.equal(fake.glue.crawls("theirs")[0].stopRequestedAt, undefined);
    assert.ok(
      h.lines.includes(
        "interrupted by SIGINT: left crawler theirs running: this step joined a crawl it did not start",
      ),
    );
  });
});

Deno.test("fake: throttled GetCrawler polls are retried, never fatal (Airflow #23475); a re-run reattaches to the crawl", async () => {
  // long enough to be running still when attempt 2 starts, on a loaded machine too
  fake.glue.scriptCrawl("throttled-crawler", { runningForMs: 2_000, tables: [{ name: "t1" }] });
  fake.throttle("GetCrawler", 3);
  await withStateDir(async (stateDir) => {
    // attempt 1 starts the crawl and does not wait
    const first = harness(fake.endpoint, { crawler_name: "throttled-crawler", wait: false }, { stateDir });
    await runCrawler(first.context, first.options);
    // attempt 2 of the same routine run reattaches to that crawl through throttled polls
    const h = harness(fake.endpoint, { crawler_name: "throttled-crawler", poll_interval: 0.05 }, {
      stateDir,
    });
    await runCrawler(h.context, h.options);
    assert.equal(fake.glue.crawls("throttled-crawler").length, 1);
    assert.equal(fake.callsOf("StartCrawler").filter((c) => c.body.Name === "throttled-crawler").length, 1);
    assert.equal(h.lines.filter((l) => l === "retry GetCrawler: ThrottlingException").length, 3);
    assert.ok(
      h.lines.some((l) => /reattaching to the crawl an earlier attempt of this routine run started/.test(l)),
    );
    assert.ok(h.lines.includes("created in default: t1"), h.lines.join("\n"));
  });
});

Deno.test("fake: a crawl that ended while lakerun was away is reported on the re-run, not started again", async () => {
  fake.glue.createCrawler("away", { databaseName: "lake" });
  fake.glue.scriptCrawl("away", { runningForMs: 200, tables: [{ name: "returns" }] });
  await withStateDir(async (stateDir) => {
    const first = harness(fake.endpoint, { crawler_name: "away", wait: false }, { stateDir });
    await runCrawler(first.context, first.options);
    await until(() => fake.glue.crawls("away")[0].state === "READY", "the crawl's end");
    const again = harness(fake.endpoint, { crawler_name: "away", poll_interval: 0.05 }, { stateDir });
    await runCrawler(again.context, again.options);
    assert.equal(fake.callsOf("StartCrawler").filter((c) => c.body.Name === "away").length, 1);
    assert.equal(again.lines[0], "the crawl of away an earlier attempt of this routine run started is over");
    assert.ok(again.lines.includes("created in lake: returns"), again.lines.join("\n"));
  });
});

// ------------------------------------------------------------------------------------------------ CLI

Deno.test("cli: SIGINT while a job run is in flight stops it at the service, says so, and exits 130", async () => {
  fake.glue.scriptJob("interrupted", { runningForMs: 60_000 });
  await using dir = await tempDir();
  const file = await writeRoutine(dir.path, fake.endpoint, {
    etl: { params: { job_name: "interrupted", poll_interval: 0.1 }, tasks: ["start_job_run"] },
  });
  const lakerunProcess = spawnLakerun(["run", file], dir.path);
  await lakerunProcess.waitFor(/run jr_\w+: RUNNING/);
  lakerunProcess.child.kill("SIGINT");
  const { code, output } = await lakerunProcess.finish();
  assert.equal(code, 130, output);
  const [run] = fake.glue.runs("interrupted");
  assert.notEqual(run.stopRequestedAt, undefined);
  assert.match(
    output,
    new RegExp(`interrupted: stopped run ${run.id} of Glue job interrupted \\(BatchStopJobRun accepted`),
  );
  assert.ok(["STOPPING", "STOPPED"].includes(run.state), run.state);
});

Deno.test("cli: SIGTERM while a crawl is in flight stops the crawler, says so, and exits 143", async () => {
  fake.glue.scriptCrawl("terminated", { runningForMs: 60_000 });
  await using dir = await tempDir();
  const file = await writeRoutine(dir.path, fake.endpoint, {
    crawl: { params: { crawler_name: "terminated", poll_interval: 0.1 }, tasks: ["run_crawler"] },
  });
  const lakerunProcess = spawnLakerun(["run", file], dir.path);
  await lakerunProcess.waitFor(/crawler terminated: RUNNING/);
  lakerunProcess.child.kill("SIGTERM");
  const { code, output } = await lakerunProcess.finish();
  assert.equal(code, 143, output);
  assert.notEqual(fake.glue.crawls("terminated")[0].stopRequestedAt, undefined);
  assert.match(output, /interrupted: stopped crawler terminated \(StopCrawler accepted/);
});

Deno.test("cli: lakerun plan shows the sandbox: Glue's endpoint only, the AWS environment, the step's state folder", async () => {
  await using dir = await tempDir();
  const file = await writeRoutine(dir.path, fake.endpoint, {
    etl: { params: { job_name: "etl", crawler_name: "raw" }, tasks: ["start_job_run", "run_crawler"] },
  });
  const result = await lakerun(["plan", "--json", file], { cwd: dir.path, env: ENV });
  assert.equal(result.code, 0, result.stderr);
  const [step] = JSON.parse(result.stdout).steps;
  assert.deepEqual(step.permissions.net, [new URL(fake.endpoint).host]);
  assert.ok(step.permissions.env.includes("AWS_*"));
  assert.deepEqual(step.permissions.run, []);
  assert.equal(step.permissions.write.length, 1);
  assert.match(step.permissions.write[0], /\.lakerun\//);
  // without a custom endpoint: Glue's regional endpoint and the credential chain's hosts
  const scope = glueExecutor.permissions(paramsSchema(z).parse({ job_name: "etl" }), {
    cwd: dir.path,
    resolve: (p) => p,
    aws: { region: "eu-west-1" },
  });
  assert.equal(scope.net?.[0], "glue.eu-west-1.amazonaws.com:443");
  assert.ok(scope.net?.includes("sts.eu-west-1.amazonaws.com:443"));
});

Deno.test("cli: bad params are one-line errors naming the param and quoting the value", async () => {
  await using dir = await tempDir();
  const file = await writeRoutine(dir.path, fake.endpoint, {
    a: {
      params: { job_name: "etl", arguments: { "bad key": 1, [RUN_MARKER_ARGUMENT]: "x" } },
      tasks: ["start_job_run"],
    },
    b: {
      params: { job_name: "etl", arguments: { day: "1", "--day": "2" }, worker_type: "huge" },
      tasks: ["start_job_run"],
    },
    c: { params: { poll_interval: 0 }, tasks: ["start_job_run"] },
    d: { params: { job_name: "two\nlines", arguments: { x: [1] } }, tasks: ["start_job_run"] },
  });
  const result = await lakerun(["validate", file], { cwd: dir.path, env: ENV });
  assert.equal(result.code, 2, result.stdout);
  const text = result.stderr;
  for (
    const expected of [
      /executors\.a\.params\.arguments\["bad key"\]: argument name "bad key" must be a word such as "day" or "--day" \(no spaces\)$/m,
      /executors\.a\.params\.arguments\["--lakerun-run-marker"\]: "--lakerun-run-marker" is the argument lakerun adds to find its runs again; choose another name$/m,
      /executors\.b\.params\.arguments\["--day"\]: "--day" and "day" are the same argument --day$/m,
      /executors\.b\.params\.worker_type: must be a Glue worker type such as G\.1X or G\.2X, not "huge"/,
      /executors\.c\.params\.poll_interval: /,
      /executors\.d\.params\.job_name: must be a Glue job name \(1–255 characters on one line\), not "two\\nlines"/,
      /executors\.d\.params\.arguments\.x: must be a string, number or boolean, not \[1\]/,
    ]
  ) assert.match(text, expected);
  assert.ok(text.split("\n").every((line) => line.length < 300));
});

Deno.test("iam: the statements name the job and the crawler, only for the tasks the step runs", () => {
  const context = { aws: { region: "eu-west-1" }, cwd: "/", resolve: (p: string) => p };
  const params = paramsSchema(z).parse({ job_name: "clean-sales", crawler_name: "raw-sales" });
  assert.deepEqual(glueExecutor.iam!(params, { ...context, tasks: ["start_job_run"] }), [{
    Effect: "Allow",
    Action: ["glue:BatchStopJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:StartJobRun"],
    Resource: ["arn:aws:glue:eu-west-1:*:job/clean-sales"],
  }]);
  assert.deepEqual(glueStatements(params, { ...context, tasks: ["run_crawler"] }), [
    {
      Effect: "Allow",
      Action: ["glue:GetCrawler", "glue:GetCrawlerMetrics", "glue:StartCrawler", "glue:StopCrawler"],
      Resource: ["arn:aws:glue:eu-west-1:*:crawler/raw-sales"],
    },
    {
      Effect: "Allow",
      Action: ["glue:GetTables"],
      Resource: [
        "arn:aws:glue:eu-west-1:*:catalog",
        "arn:aws:glue:eu-west-1:*:database/*",
        "arn:aws:glue:eu-west-1:*:table/*/*",
      ],
    },
  ]);
  // the catalog-wide GetTables is said, with how to narrow it; a step that only runs the job has no note
  assert.match(
    glueExecutor.iamNotes!(params, { ...context, tasks: ["run_crawler"] }).join(),
    /^the database of crawler "raw-sales", known only when it runs: glue:GetTables is granted on every database/,
  );
  assert.deepEqual(glueExecutor.iamNotes!(params, { ...context, tasks: ["start_job_run"] }), []);
  assert.equal(glueStatements(params, { aws: { region: "cn-north-1" } }).length, 3);
  assert.match(
    glueStatements(params, { aws: { region: "cn-north-1" } })[0].Resource[0],
    /^arn:aws-cn:glue:cn-north-1:/,
  );
});

Deno.test({
  name: "(stop the test servers)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await fake.stop();
    await motoServer?.stop();
  },
});
