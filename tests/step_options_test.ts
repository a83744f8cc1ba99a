/**
 * Step options: `retries` (a fresh Worker per attempt, the same run id), `retry_delay`, `timeout` (the step
 * aborted, its temporary file removed, "timed out after N s"), `continue_on_error` (exit 0 with a warning),
 * `depends_on` (dependents of a failed step skipped, never more than --max-parallel steps at once, measured
 * from the timestamps a plugin writes), their validation (unknown ids, self-dependency, cycles, bad values:
 * exit 2, one line each quoting the value) and how `plan` shows them; outputs (handed on, recorded, and a value
 * the SDK's types forbid — a bigint, an object, NaN — failing its task in one line).
 *
 * Steps run in their Workers (in-process runner, or the CLI where the exit code matters), with the test plugin
 * tests/fixtures/step_plugins/StepProbeExecutor.ts.
 *
 * Run: deno test -A tests/step_options_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { consoleReporter } from "../orchestrator/cli/reporter.ts";
import { parseRoutine } from "../orchestrator/routine/routine.ts";
import { listRuns, type RunRecord } from "../orchestrator/run/records.ts";
import { type RunOptions, runRoutine } from "../orchestrator/run/runner.ts";
import { lakerun, ROOT, tempDir } from "./support/lakerun.ts";

const PLUGINS = join(ROOT, "tests/fixtures/step_plugins");
const PROBE_PLUGINS = join(ROOT, "tests/fixtures/plugins");

/** A step of the test plugin working in folder `w`. */
function probe(params: Record<string, unknown> = {}, options: Record<string, unknown> = {}, task = "work") {
  return { executor: "StepProbeExecutor", params: { folder: "w", ...params }, tasks: [task], ...options };
}

interface Outcome {
  lines: string[];
  error?: Error;
  record: RunRecord;
  timeline: Array<{ event: string; step: string; at: number; runId: string; inWorker: number }>;
  ms: number;
}

/** Runs `executors` as routine "t" in `dir` (steps in Workers); returns the console lines, record, timeline. */
async function runSteps(
  dir: string,
  executors: Record<string, unknown>,
  options: Partial<RunOptions> = {},
): Promise<Outcome> {
  await Deno.mkdir(join(dir, "w"), { recursive: true });
  const routine = await parseRoutine(JSON.stringify({ routine_name: "t", executors }), {
    file: join(dir, "routine.json"),
    label: "routine.json",
    cwd: dir,
    executorDirs: [PLUGINS, PROBE_PLUGINS],
  });
  const lines: string[] = [];
  const started = performance.now();
  let error: Error | undefined;
  try {
    await runRoutine(routine, {
      cwd: dir,
      reporter: consoleReporter({ write: (l) => lines.push(l) }),
      ...options,
    });
  } catch (e) {
    error = e as Error;
  }
  const ms = performance.now() - started;
  const [record] = await listRuns(join(dir, ".lakerun"), "t");
  return { lines, error, record, timeline: await timelineOf(dir), ms };
}

async function timelineOf(dir: string): Promise<Outcome["timeline"]> {
  const text = await Deno.readTextFile(join(dir, "w/timeline.log")).catch(() => "");
  return text.trim().split("\n").filter(Boolean).map((line) => {
    const [event, step, at, runId, inWorker] = line.split(" ");
    return { event, step, at: Number(at), runId, inWorker: Number(inWorker) };
  });
}

/** The most steps working at the same moment, from the start/end lines the plugin wrote. */
function mostAtOnce(timeline: Outcome["timeline"]): number {
  const changes = timeline.map((e) => ({ at: e.at, delta: e.event === "start" ? 1 : -1 }))
    .sort((a, b) => a.at - b.at || a.delta - b.delta); // an end and a start in the same ms did not overlap
  let now = 0;
  let most = 0;
  for (const { delta } of changes) most = Math.max(most, now += delta);
  return most;
}

const attemptsOf = async (dir: string, step: string) =>
  Number(await Deno.readTextFile(join(dir, `w/${step}.attempts`)).catch(() => "0"));

async function writeRoutine(dir: string, executors: Record<string, unknown>): Promise<void> {
  await Deno.mkdir(join(dir, "w"), { recursive: true });
  await Deno.writeTextFile(
    join(dir, "r.json"),
    JSON.stringify({ routine_name: "t", executors }, null, 2) + "\n",
  );
}

Deno.test("retries: a step that fails twice then succeeds runs 3 times, each in a fresh Worker, under one run id", async () => {
  await using dir = await tempDir();
  const { error, lines, record, timeline } = await runSteps(dir.path, {
    flaky: probe({ fail_times: 2, outputs: { rows: 3 } }, { retries: 2, retry_delay: 0.05 }),
    after: probe(),
  });
  assert.equal(error, undefined, lines.join("\n"));
  assert.equal(await attemptsOf(dir.path, "flaky"), 3);
  const starts = timeline.filter((e) => e.step === "flaky" && e.event === "start");
  assert.deepEqual(starts.map((e) => e.inWorker), [1, 1, 1], "each attempt in a fresh Worker");
  assert.deepEqual(
    new Set(starts.map((e) => e.runId)),
    new Set([record.runId]),
    "one run id for every attempt",
  );
  assert.deepEqual(lines.filter((l) => l.includes("↻")).map((l) => l.replace(/in [\d.]+ m?s/, "in …")), [
    "  ↻ retry: attempt 2 of 3 in …",
    "  ↻ retry: attempt 3 of 3 in …",
  ]);
  assert.equal(lines.filter((l) => l.startsWith("  ✗ work failed: failing on purpose")).length, 2);
  const flaky = record.steps.flaky;
  assert.deepEqual([flaky.status, flaky.tries, flaky.outputs], ["succeeded", 3, { rows: 3 }]);
  assert.equal(record.steps.after.status, "succeeded");
  assert.equal(record.status, "succeeded");
});

Deno.test("retries: the waits grow exponentially with full jitter, bounded by retry_delay × 2^(n-1)", async () => {
  await using dir = await tempDir();
  const { error, timeline } = await runSteps(dir.path, {
    flaky: probe({ fail_times: 3 }, { retries: 3, retry_delay: 0.2 }),
  });
  assert.equal(error, undefined);
  const starts = timeline.filter((e) => e.event === "start").map((e) => e.at);
  const gaps = starts.slice(1).map((at, i) => at - starts[i]);
  // a gap is the wait plus a Worker's start (well under 1 s here); the wait is at most 0.2, 0.4, 0.8 s
  gaps.forEach((gap, i) => assert.ok(gap < 200 * 2 ** i + 1000, `gap ${i + 1}: ${gap} ms`));
});

Deno.test("retries exhausted: the step fails after 1 + retries attempts and the run fails", async () => {
  await using dir = await tempDir();
  const { error, record } = await runSteps(dir.path, {
    flaky: probe({ fail_times: 5 }, { retries: 2, retry_delay: 0 }),
    after: probe(),
  });
  assert.match(
    error?.message ?? "",
    /step "flaky" \(StepProbeExecutor\) task 'work' failed: failing on purpose \(attempt 3\)/,
  );
  assert.equal(await attemptsOf(dir.path, "flaky"), 3);
  assert.deepEqual([record.steps.flaky.status, record.steps.flaky.tries], ["failed", 3]);
  assert.deepEqual([record.steps.after.status, record.steps.after.error], ["skipped", 'step "flaky" failed']);
  assert.equal(record.status, "failed");
});

Deno.test("retries: a permission refusal is not retried (it would fail the same way)", async () => {
  await using dir = await tempDir();
  const secret = join(dir.path, "secret.txt");
  await Deno.writeTextFile(secret, "no\n");
  const { error, lines } = await runSteps(dir.path, {
    ProbeExecutor: {
      params: { folder: "w", target: secret },
      tasks: ["read_target"],
      retries: 3,
      retry_delay: 0,
    },
  });
  assert.match(
    error?.message ?? "",
    /permission denied: read access to .*secret\.txt is outside this step's scope/,
  );
  assert.equal(lines.filter((l) => l.includes("↻")).length, 0);
});

Deno.test("timeout: the step is aborted mid-transform, removes its temporary file, and fails with 'timed out after 0.4 s'", async () => {
  await using dir = await tempDir();
  const { error, record, lines, timeline, ms } = await runSteps(dir.path, {
    slow: probe({ ms: 30_000 }, { timeout: 0.4 }, "transform"),
    after: probe(),
  });
  assert.match(
    error?.message ?? "",
    /step "slow" \(StepProbeExecutor\) task 'transform' failed: timed out after 0\.4 s$/,
  );
  assert.ok(ms < 3000, `took ${ms} ms`);
  assert.deepEqual(timeline.map((e) => e.event), ["start", "aborted"]);
  assert.deepEqual([...Deno.readDirSync(join(dir.path, "w/out"))], [], "no temporary file left");
  assert.ok(lines.some((l) => /^ {4}removed \.lakerun-tmp-\w+-result\.csv$/.test(l)), lines.join("\n"));
  assert.ok(lines.includes("  ✗ transform failed: timed out after 0.4 s"), lines.join("\n"));
  assert.equal(
    record.steps.slow.error,
    "step \"slow\" (StepProbeExecutor) task 'transform' failed: timed out after 0.4 s",
  );
  assert.equal(record.steps.slow.tasks.transform.error, "timed out after 0.4 s");
  assert.equal(record.steps.after.status, "skipped");
});

Deno.test("timeout: a task that ignores the abort is stopped with its Worker after the grace period", async () => {
  await using dir = await tempDir();
  const { error, ms, timeline } = await runSteps(dir.path, {
    stubborn: probe({ ms: 60_000, ignore_abort: true }, { timeout: 0.2 }),
  });
  assert.match(error?.message ?? "", /failed: timed out after 0\.2 s$/);
  assert.ok(ms > 4000 && ms < 7000, `took ${ms} ms (0.2 s + 4 s of grace)`);
  assert.deepEqual(timeline.map((e) => e.event), ["start"], "the Worker was stopped: the task never ended");
});

Deno.test("timeout: each attempt gets its own; a timed-out attempt is retried", async () => {
  await using dir = await tempDir();
  const { error, record, timeline } = await runSteps(dir.path, {
    s: probe({ slow_times: 1, ms: 10 }, { timeout: 1.5, retries: 1, retry_delay: 0 }), // room for a loaded machine
  });
  assert.equal(error, undefined);
  assert.deepEqual(timeline.map((e) => e.event), ["start", "aborted", "start", "end"]);
  assert.deepEqual([record.steps.s.status, record.steps.s.tries], ["succeeded", 2]);
});

Deno.test("continue_on_error (CLI): the run goes on, exits 0 with a warning, and the record says which step failed", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, {
    optional: probe({ fail_times: 9 }, { continue_on_error: true }),
    next: probe(),
  });
  const result = await lakerun(["run", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const lines = result.stdout.trim().split("\n");
  assert.ok(lines.includes("  ✗ work failed: failing on purpose (attempt 1)"), result.stdout);
  assert.ok(
    lines.includes(
      `! step "optional" failed; continue_on_error: the run goes on (step "optional" (StepProbeExecutor) task 'work' failed: failing on purpose (attempt 1))`,
    ),
    result.stdout,
  );
  assert.equal(lines.at(-2), `! 1 step failed ("optional"), but with continue_on_error: the run succeeds`);
  assert.match(lines.at(-1)!, /^✓ done in /);
  assert.equal(await attemptsOf(dir.path, "next"), 1, "the next step ran");
  const [record] = await listRuns(join(dir.path, ".lakerun"), "t");
  assert.equal(record.status, "succeeded");
  assert.deepEqual(
    [record.steps.optional.status, record.steps.optional.continueOnError, record.steps.next.status],
    ["failed", true, "succeeded"],
  );
  // the same routine without continue_on_error: exit 1, the next step skipped
  await writeRoutine(dir.path, { optional: probe({ fail_times: 99 }), next: probe() });
  const failing = await lakerun(["run", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
  assert.equal(failing.code, 1);
  assert.match(failing.stdout, /\n\[2\/2\] next \(StepProbeExecutor\) skipped: step "optional" failed\n/);
});

Deno.test("depends_on: dependents of a failed step are skipped, independent steps still run, exit 1", async () => {
  await using dir = await tempDir();
  const { error, record, lines } = await runSteps(dir.path, {
    broken: probe({ fail_times: 9 }, { depends_on: [] }),
    child: probe({}, { depends_on: ["broken"] }),
    grandchild: probe({}, { depends_on: ["child"] }),
    tolerant: probe({ fail_times: 9 }, { depends_on: [], continue_on_error: true }),
    after_tolerant: probe({}, { depends_on: ["tolerant"] }),
    independent: probe({ ms: 200 }, { depends_on: [] }),
  });
  assert.match(error?.message ?? "", /step "broken"/);
  const statuses = Object.fromEntries(Object.entries(record.steps).map(([id, s]) => [id, s.status]));
  assert.deepEqual(statuses, {
    broken: "failed",
    child: "skipped",
    grandchild: "skipped",
    tolerant: "failed",
    after_tolerant: "succeeded",
    independent: "succeeded",
  });
  assert.equal(record.steps.grandchild.error, 'step "child" was skipped');
  assert.ok(
    lines.includes('[3/6] grandchild (StepProbeExecutor) skipped: step "child" was skipped'),
    lines.join("\n"),
  );
  assert.equal(record.status, "failed");
  assert.equal(record.maxParallel, 2);
});

Deno.test("depends_on: never more than --max-parallel steps at once, each after what it depends on", async () => {
  for (const maxParallel of [2, 3]) {
    await using dir = await tempDir();
    const executors: Record<string, unknown> = {};
    for (let i = 1; i <= 6; i++) executors[`s${i}`] = probe({ ms: 300 }, { depends_on: [] });
    executors.join = probe({ ms: 10 }, { depends_on: ["s5", "s6"] });
    const { error, timeline } = await runSteps(dir.path, executors, { maxParallel });
    assert.equal(error, undefined);
    assert.equal(mostAtOnce(timeline), maxParallel, `--max-parallel ${maxParallel}`);
    const at = (step: string, event: string) =>
      timeline.find((e) => e.step === step && e.event === event)!.at;
    assert.ok(at("join", "start") >= Math.max(at("s5", "end"), at("s6", "end")), "join waited for s5 and s6");
  }
});

Deno.test("without depends_on, steps run in file order, one at a time", async () => {
  await using dir = await tempDir();
  const { error, timeline, record } = await runSteps(dir.path, {
    c: probe({ ms: 50 }),
    a: probe({ ms: 50 }),
    b: probe({ ms: 50 }),
  }, { maxParallel: 5 });
  assert.equal(error, undefined);
  assert.equal(mostAtOnce(timeline), 1);
  assert.deepEqual(timeline.filter((e) => e.event === "start").map((e) => e.step), ["c", "a", "b"]);
  assert.equal(record.maxParallel, 1);
});

Deno.test("outputs are collected per step, handed to prepareStep of later steps, and recorded", async () => {
  await using dir = await tempDir();
  const seen: Array<{ step: string; outputs: unknown; runId: string }> = [];
  const { error, record } = await runSteps(dir.path, {
    extract: probe({ outputs: { file: "q3.csv", rows: 42, complete: true } }),
    load: probe(),
  }, {
    prepareStep: (step, outputs, run) => {
      seen.push({ step: step.id, outputs, runId: run.runId });
      return step.id === "load"
        ? { ...step, params: { ...step.params, note: `rows=${outputs.extract.rows}` } }
        : step;
    },
  });
  assert.equal(error, undefined);
  assert.deepEqual(seen.map((s) => [s.step, s.outputs]), [
    ["extract", {}],
    ["load", { extract: { file: "q3.csv", rows: 42, complete: true } }],
  ]);
  assert.equal(seen[0].runId, record.runId);
  assert.equal(await Deno.readTextFile(join(dir.path, "w/load.note")), "rows=42", "the prepared params ran");
  assert.deepEqual(record.steps.extract.outputs, { file: "q3.csv", rows: 42, complete: true });
  assert.notEqual(record.steps.load.paramsHash, undefined);
});

for (
  const [odd, what] of [
    ["bigint", `output "rows" is a bigint (12345678901234567890n)`],
    ["circular", `output "rows" is an object`],
    ["nan", `output "rows" is NaN`],
  ]
) {
  Deno.test(`an output that is ${what.split(" is ")[1]} fails its task, naming step and output; the step is stopped`, async () => {
    await using dir = await tempDir();
    const { error, record, lines, ms } = await runSteps(dir.path, {
      a: probe({ odd_output: odd, ms: 60_000 }),
      b: probe(),
    });
    const reason = `${what}: an output is a string, a finite number or a boolean`;
    assert.equal(error?.message, `step "a" (StepProbeExecutor) task 'work' failed: ${reason}`);
    assert.ok(ms < 20_000, `the step was stopped, not left to work 60 s (${ms} ms)`);
    assert.deepEqual([record.status, record.steps.a.status, record.steps.b.status], [
      "failed",
      "failed",
      "skipped",
    ]);
    assert.equal(record.steps.a.tasks.work.error, reason);
    assert.deepEqual(record.steps.a.outputs, {});
    assert.ok(lines.includes(`  ✗ work failed: ${reason}`), lines.join("\n"));
  });
}

Deno.test("the command line: a bigint output is one line and exit 1, no stack trace; the record is not left running", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, {
    a: probe({ odd_output: "bigint" }),
    b: probe({ odd_output: "moved_bigint" }),
  });
  const result = await lakerun(["run", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.equal(
    result.stderr,
    `step "a" (StepProbeExecutor) task 'work' failed: output "rows" is a bigint (12345678901234567890n): an output is a string, a finite number or a boolean\n`,
  );
  assert.doesNotMatch(result.stdout + result.stderr, / {4}at |Uncaught/);
  const [record] = await listRuns(join(dir.path, ".lakerun"), "t");
  assert.equal(record.status, "failed");
  // a moved event with a bigint fails its task too, with --log-format json
  await writeRoutine(dir.path, { b: probe({ odd_output: "moved_bigint" }) });
  const json = await lakerun(["run", "--log-format", "json", "--executors", PLUGINS, "r.json"], {
    cwd: dir.path,
  });
  assert.equal(json.code, 1, json.stdout + json.stderr);
  assert.match(json.stdout + json.stderr, /a \\?"moved\\?" report's bytes is a bigint \(10n\)/);
  assert.doesNotMatch(json.stdout + json.stderr, / {4}at |Uncaught/);
});

Deno.test("a step prepareStep refuses fails like a task, and continue_on_error applies to it", async () => {
  await using dir = await tempDir();
  const { error, record } = await runSteps(dir.path, {
    a: probe({}, { continue_on_error: true }),
    b: probe(),
  }, {
    prepareStep: (step) => {
      if (step.id === "a") throw new Error("steps.x.outputs.y: no such output");
      return step;
    },
  });
  assert.equal(error, undefined);
  assert.deepEqual([record.steps.a.status, record.steps.a.error], [
    "failed",
    "steps.x.outputs.y: no such output",
  ]);
  assert.equal(record.steps.b.status, "succeeded");
});

Deno.test("validate refuses unknown ids, self-dependency, cycles and bad values: one line each, quoting the value, exit 2", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, {
    a: probe({}, { depends_on: ["c"] }),
    b: probe({}, { depends_on: ["a", "b", "lod"] }),
    c: probe({}, { depends_on: ["b"] }),
    load: probe({}, {
      retries: -1,
      timeout: "10m",
      continue_on_error: "yes",
      depends_on: "a",
      retry_delay: 9999,
    }),
  });
  const result = await lakerun(["validate", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
  assert.equal(result.code, 2);
  const lines = result.stderr.trim().split("\n").map((l) => l.replace(/^lakerun: /, ""));
  assert.deepEqual(lines.sort(), [
    `r.json:12:21: executors.a.depends_on: "a" → "c" → "b" → "a" is a cycle: these steps would wait for each other forever`,
    `r.json:26:9: executors.b.depends_on[1]: "b" is this step: a step cannot depend on itself`,
    `r.json:27:9: executors.b.depends_on[2]: "lod" is not a step of this routine (did you mean 'load'?); steps: a, b, c, load`,
    `r.json:50:18: executors.load.retries: -1 is not a whole number from 0 to 100`,
    `r.json:51:18: executors.load.timeout: "10m" is not a number of seconds greater than 0 (at most 604800, 7 days)`,
    `r.json:52:28: executors.load.continue_on_error: "yes" is not true or false`,
    `r.json:53:21: executors.load.depends_on: "a" is not a list of step ids (write ["a"])`,
    `r.json:54:22: executors.load.retry_delay: 9999 is not a number of seconds from 0 to 3600`,
  ]);
});

Deno.test("plan shows each step's depends_on and options; plan --json has them under their file names", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, {
    download: probe({}, { depends_on: [], retries: 2, retry_delay: 5, timeout: 600 }),
    load: probe({}, { depends_on: ["download"], continue_on_error: true }),
    // without the key: starts at once as well, and says so
    other: probe({}),
  });
  const text = await lakerun(["plan", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
  assert.equal(text.code, 0, text.stderr);
  const lines = text.stdout.split("\n");
  assert.match(
    lines[0],
    /3 steps, each run once the steps in its depends_on are done, at most --max-parallel/,
  );
  assert.deepEqual(lines.filter((l) => /^ {3}(depends on|options):/.test(l)), [
    "   depends on: nothing (starts at once)",
    "   options: retries 2 (first wait up to 5 s, doubling) · timeout 600 s",
    "   depends on: download",
    "   options: continue_on_error",
    "   depends on: nothing (starts at once)",
  ]);
  const json = await lakerun(["plan", "--json", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
  const [download, load, other] = JSON.parse(json.stdout).steps;
  assert.deepEqual(other.depends_on, [], "starts at once, as download does");
  assert.deepEqual(
    [
      download.retries,
      download.retry_delay,
      download.timeout,
      download.continue_on_error,
      download.depends_on,
    ],
    [2, 5, 600, false, []],
  );
  assert.deepEqual([load.retries, load.timeout, load.continue_on_error, load.depends_on], [0, null, true, [
    "download",
  ]]);
});

Deno.test("a routine built in memory with a cycle fails the run instead of hanging or succeeding", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "w"));
  const routine = await parseRoutine(
    JSON.stringify({ routine_name: "t", executors: { a: probe(), b: probe({}, { depends_on: ["a"] }) } }),
    { file: join(dir.path, "routine.json"), label: "routine.json", cwd: dir.path, executorDirs: [PLUGINS] },
  );
  routine.steps[0].options.dependsOn = ["b"]; // what validation refuses
  await assert.rejects(
    runRoutine(routine, { cwd: dir.path, reporter: consoleReporter({ write: () => {} }) }),
    /"a", "b" never started: their depends_on name unknown steps or form a cycle/,
  );
  const [record] = await listRuns(join(dir.path, ".lakerun"), "t");
  assert.deepEqual([record.status, record.steps.a.status], ["failed", "pending"]);
});
