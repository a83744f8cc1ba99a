/**
 * How fast and how cheaply lakerun's poller notices that a cloud job ended, beside the defaults of the anchor
 * (Airflow: AthenaOperator polls every 30 s, GlueJobOperator every 6 s), all run by the same harness against
 * the fake of tests/support/aws_fake.ts with time-based transitions:
 *
 * - a 3-second Athena-like query (QUEUED 0 s, RUNNING 3 s, SUCCEEDED): lakerun's `pollUntil` with its defaults
 *   (first interval 0.5 s, a quarter of the time waited, at most 30 s) on GetQueryExecution, vs every 30 s;
 * - a 10-minute Glue-like job run (STARTING 20 s, RUNNING 580 s, SUCCEEDED): the GlueExecutor's own
 *   start_job_run task with its defaults (`poll_interval` 2 s, same growth and cap) on GetJobRun, vs every 6 s.
 *
 * Time is scaled so the 10-minute case does not take 10 minutes: the fake's injectable clock runs S times
 * faster than the wall clock and every poll interval is divided by S (the executor's `timeScale` option), so
 * each poller makes the calls it would make in real time. Figures are on the fake's clock. A call's round
 * trip (about 1–2 ms here) counts S times on that clock, which makes the scaled figures slightly pessimistic
 * for lateness and slightly optimistic for call counts.
 *
 * - **noticed after**: from the moment the job ended (the fake's `completedAt`) to the status call that saw
 *   it, median and worst of the runs;
 * - **status calls**: per job, and per minute of the job.
 *
 * Usage: deno run -A bench/cloud_poll.ts [--runs 3]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { AwsJsonClient } from "../lib/aws/json_client.ts";
import { pollUntil } from "../lib/cloud/poll.ts";
import { startJobRun } from "../executors/glue/job_run.ts";
import { paramsSchema } from "../executors/glue/params.ts";
import type { GlueParams } from "../executors/glue/params.ts";
import type { TaskContext } from "../sdk/executor.ts";
import { type AwsFake, startAwsFake } from "../tests/support/aws_fake.ts";
import { z } from "zod";
import { median } from "./measure.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const RUNS = Math.max(1, Number(values.runs));
const CREDENTIALS = () => Promise.resolve({ accessKeyId: "bench", secretAccessKey: "bench" });

interface Scenario {
  name: string;
  /** How long the job runs, on the fake's clock. */
  durationMs: number;
  /** Wall-clock speed-up of the fake's clock. */
  scale: number;
  /** Status operation polled. */
  operation: "GetQueryExecution" | "GetJobRun";
}

interface Measure {
  lateMs: number;
  calls: number;
}

/** A fake whose clock runs `scale` times faster than the wall clock. */
async function scaledFake(scale: number): Promise<AwsFake> {
  const t0 = Date.now();
  return await startAwsFake({ clock: () => t0 + (Date.now() - t0) * scale });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Starts the scenario's job at `fake`; returns a status check answering whether it is over. */
async function startJob(fake: AwsFake, scenario: Scenario): Promise<() => Promise<boolean>> {
  if (scenario.operation === "GetQueryExecution") {
    fake.athena.script("bench", { runningForMs: scenario.durationMs });
    const athena = new AwsJsonClient("athena", {
      settings: { region: "us-east-1", endpoints: { athena: fake.endpoint } },
      credentials: CREDENTIALS,
    });
    const { QueryExecutionId } = await athena.call<{ QueryExecutionId: string }>("StartQueryExecution", {
      QueryString: "SELECT 'bench'",
    });
    return async () => {
      const { QueryExecution } = await athena.call<{ QueryExecution: { Status: { State: string } } }>(
        "GetQueryExecution",
        { QueryExecutionId },
        { idempotent: true },
      );
      return ["SUCCEEDED", "FAILED", "CANCELLED"].includes(QueryExecution.Status.State);
    };
  }
  fake.glue.scriptJob("bench", { startingForMs: 20_000, runningForMs: scenario.durationMs - 20_000 });
  const glue = new AwsJsonClient("glue", {
    settings: { region: "us-east-1", endpoints: { glue: fake.endpoint } },
    credentials: CREDENTIALS,
  });
  const { JobRunId } = await glue.call<{ JobRunId: string }>("StartJobRun", { JobName: "bench" });
  return async () => {
    const { JobRun } = await glue.call<{ JobRun: { JobRunState: string } }>(
      "GetJobRun",
      { JobName: "bench", RunId: JobRunId },
      { idempotent: true },
    );
    return ["SUCCEEDED", "FAILED", "TIMEOUT", "ERROR", "STOPPED", "EXPIRED"].includes(JobRun.JobRunState);
  };
}

/** When the job ended and when the last status call came, on the fake's clock. */
function measure(fake: AwsFake, scenario: Scenario): Measure {
  const completedAt = scenario.operation === "GetQueryExecution"
    ? fake.athena.queries[0].completedAt!
    : fake.glue.runs("bench")[0].completedAt!;
  const calls = fake.callsOf(scenario.operation);
  return { lateMs: calls[calls.length - 1].at - completedAt, calls: calls.length };
}

/** A poller that checks every `intervalMs` (on the fake's clock), as Airflow's operators do. */
async function fixedInterval(scenario: Scenario, intervalMs: number): Promise<Measure> {
  await using fake = await scaledFake(scenario.scale);
  const done = await startJob(fake, scenario);
  while (!(await done())) await sleep(intervalMs / scenario.scale);
  return measure(fake, scenario);
}

/** lakerun's pollUntil with its defaults, as the Athena executor polls a query. */
async function lakerunPollUntil(scenario: Scenario): Promise<Measure> {
  await using fake = await scaledFake(scenario.scale);
  const done = await startJob(fake, scenario);
  await pollUntil(async () => {
    const over = await done();
    return { done: over, state: over ? "done" : "running", value: undefined };
  }, { firstIntervalMs: 500 / scenario.scale, maxIntervalMs: 30_000 / scenario.scale });
  return measure(fake, scenario);
}

/** The GlueExecutor's start_job_run task itself, with its default params. */
async function lakerunGlueTask(scenario: Scenario): Promise<Measure> {
  await using fake = await scaledFake(scenario.scale);
  fake.glue.scriptJob("bench", { startingForMs: 20_000, runningForMs: scenario.durationMs - 20_000 });
  const stateDir = await Deno.makeTempDir({ prefix: "lakerun-bench-" });
  try {
    const aws = { region: "us-east-1", endpoints: { glue: fake.endpoint } };
    const context: TaskContext<GlueParams> = {
      params: paramsSchema(z).parse({ job_name: "bench" }),
      stepId: "bench",
      routineName: "bench",
      runId: crypto.randomUUID(),
      cwd: stateDir,
      resolve: (path) => path,
      stateDir,
      aws,
      report: () => {},
      log: () => {},
      mask: (text) => text,
      signal: new AbortController().signal,
      shared: new Map(),
    };
    await startJobRun(context, {
      client: new AwsJsonClient("glue", { settings: aws, credentials: CREDENTIALS }),
      timeScale: scenario.scale,
    });
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
  return measure(fake, scenario);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

const athenaLike: Scenario = {
  name: "3-second Athena-like query",
  durationMs: 3_000,
  scale: 10,
  operation: "GetQueryExecution",
};
const glueLike: Scenario = {
  name: "10-minute Glue-like job run",
  durationMs: 600_000,
  scale: 100,
  operation: "GetJobRun",
};

const pollers: Array<{ scenario: Scenario; poller: string; run: () => Promise<Measure> }> = [
  {
    scenario: athenaLike,
    poller: "lakerun pollUntil (0.5 s, ×1.25, ≤30 s)",
    run: () => lakerunPollUntil(athenaLike),
  },
  {
    scenario: athenaLike,
    poller: "Airflow AthenaOperator (every 30 s)",
    run: () => fixedInterval(athenaLike, 30_000),
  },
  {
    scenario: glueLike,
    poller: "lakerun GlueExecutor (poll_interval 2 s, ×1.25, ≤30 s)",
    run: () => lakerunGlueTask(glueLike),
  },
  {
    scenario: glueLike,
    poller: "Airflow GlueJobOperator (every 6 s)",
    run: () => fixedInterval(glueLike, 6_000),
  },
];

const rows: string[][] = [];
for (const { scenario, poller, run } of pollers) {
  const measures: Measure[] = [];
  for (let i = 0; i < RUNS; i++) {
    console.error(`${scenario.name}: ${poller}, run ${i + 1} of ${RUNS}`);
    measures.push(await run());
  }
  const late = measures.map((m) => m.lateMs);
  const calls = median(measures.map((m) => m.calls));
  rows.push([
    scenario.name,
    poller,
    `${seconds(median(late))} (worst ${seconds(Math.max(...late))})`,
    String(calls),
    (calls / (scenario.durationMs / 60_000)).toFixed(1),
  ]);
}

const header = ["job", "poller", "noticed after (median, worst)", "status calls", "calls per minute of job"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
console.log(
  [
    `Against the fake (tests/support/aws_fake.ts), time-based transitions, ${RUNS} run(s) per row. Scaled time:`,
    `the fake's clock runs ${athenaLike.scale}× (query) and ${glueLike.scale}× (job run) faster than the wall clock,`,
    "and every poll interval is divided by the same factor; figures are on the fake's clock.",
    "",
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ].join("\n"),
);
