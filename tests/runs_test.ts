/**
 * Run records, `lakerun runs`, `lakerun run --resume` and interruption, end to end through the command line:
 * a record written as the run progresses (so a SIGKILLed run leaves `running`, read as `interrupted`), resume
 * after a failure and after SIGKILL under the same run id with the succeeded steps skipped and their outputs
 * kept, a step whose params, tasks or executor changed re-run with a warning, a step whose outputs held a
 * secret re-run (the record has only `***`), the refusals, exit 75 for a routine another run holds, and
 * SIGINT / SIGTERM stopping a step mid-download (a loopback server that stalls) and one mid-transform within
 * 5 s, temporary files removed, exit 130 / 143.
 *
 * Uses the test plugin tests/fixtures/step_plugins/StepProbeExecutor.ts and the DownloaderExecutor.
 *
 * Run: deno test -A tests/runs_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SecretMask } from "../lib/mask.ts";
import { consoleReporter } from "../orchestrator/cli/reporter.ts";
import { parseRoutine } from "../orchestrator/routine/routine.ts";
import { listRuns, type RunRecord, runsDir } from "../orchestrator/run/records.ts";
import { runRoutine } from "../orchestrator/run/runner.ts";
import { lakerun, lakerunCommand, ROOT, tempDir } from "./support/lakerun.ts";

const PLUGINS = join(ROOT, "tests/fixtures/step_plugins");

function probe(params: Record<string, unknown> = {}, options: Record<string, unknown> = {}, task = "work") {
  return { executor: "StepProbeExecutor", params: { folder: "w", ...params }, tasks: [task], ...options };
}

async function writeRoutine(dir: string, executors: Record<string, unknown>, name = "r"): Promise<void> {
  await Deno.mkdir(join(dir, "w"), { recursive: true });
  await Deno.writeTextFile(join(dir, "r.json"), JSON.stringify({ routine_name: name, executors }, null, 2));
}

const run = (dir: string, ...args: string[]) =>
  lakerun(["run", "--executors", PLUGINS, ...args], { cwd: dir });

const records = (dir: string, name = "r") => listRuns(join(dir, ".lakerun"), name);

const attemptsOf = async (dir: string, step: string) =>
  Number(await Deno.readTextFile(join(dir, `w/${step}.attempts`)).catch(() => "0"));

async function timeline(dir: string): Promise<string[]> {
  const text = await Deno.readTextFile(join(dir, "w/timeline.log")).catch(() => "");
  return text.trim().split("\n").filter(Boolean).map((line) => line.split(" ").slice(0, 2).join(" "));
}

/** Polls `check` every 25 ms until it holds (at most `ms`). */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const statuses = (record: RunRecord) =>
  Object.fromEntries(Object.entries(record.steps).map(([id, step]) => [id, step.status]));

Deno.test("runs lists the routine's runs, newest first, as a table and as JSON", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, { a: probe(), b: probe({ fail_if: "fail.flag" }), c: probe() });
  const none = await lakerun(["runs", "r.json"], { cwd: dir.path });
  assert.equal(none.code, 0);
  assert.match(none.stdout, /^no runs of routine "r" recorded under .*\.lakerun\n$/);

  assert.equal((await run(dir.path, "r.json")).code, 0);
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  assert.equal((await run(dir.path, "--date", "2024-03-31", "r.json")).code, 1);

  const table = await lakerun(["runs", "r.json"], { cwd: dir.path });
  assert.equal(table.code, 0, table.stderr);
  const [header, failed, succeeded, ...rest] = table.stdout.trimEnd().split("\n");
  assert.deepEqual(rest, []);
  assert.match(header, /^RUN ID +DATE +STATUS +STARTED \(UTC\) +DURATION +STEPS OK\/FAILED\/SKIPPED$/);
  assert.match(
    failed,
    /^\d{8}T\d{6}Z-[0-9a-f]{8} {2}2024-03-31 {2}failed +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}[\d.]+ m?s +1\/1\/1$/,
  );
  // no --date and no templates: no date recorded
  assert.match(succeeded, /^\d{8}T\d{6}Z-[0-9a-f]{8} {2}- {11}succeeded +.* 3\/0\/0$/);

  const json = await lakerun(["runs", "--json", "r.json"], { cwd: dir.path });
  const runs = JSON.parse(json.stdout) as RunRecord[];
  assert.deepEqual(runs.map((r) => r.status), ["failed", "succeeded"]);
  assert.notEqual(runs[0].runId, runs[1].runId, "a run after a success has a new id");
  assert.deepEqual(statuses(runs[0]), { a: "succeeded", b: "failed", c: "skipped" });
  assert.match(runs[0].steps.b.error!, /failing on purpose \(fail\.flag exists\)/);
  assert.equal(runs[0].steps.b.tasks.work.status, "failed");
  assert.match(runs[0].routineHash, /^[0-9a-f]{64}$/);
  assert.match(runs[0].steps.a.paramsHash!, /^[0-9a-f]{64}$/);
  assert.equal(runs[0].date, "2024-03-31");
});

Deno.test("--resume after a failure: the succeeded steps are skipped, their outputs kept, the rest run under the same run id", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, {
    extract: probe({ outputs: { rows: 7 } }),
    load: probe({ fail_if: "fail.flag", note: "rows=${{ steps.extract.outputs.rows }}" }),
    report: probe(),
  });
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  const first = await run(dir.path, "--date", "2020-09-30", "r.json");
  assert.equal(first.code, 1, first.stdout + first.stderr);
  const [failed] = await records(dir.path);
  assert.deepEqual(statuses(failed), { extract: "succeeded", load: "failed", report: "skipped" });

  await Deno.remove(join(dir.path, "w/fail.flag"));
  const resumed = await run(dir.path, "--resume", "r.json");
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.match(
    resumed.stdout,
    new RegExp(
      `\\[1/3\\] extract \\(StepProbeExecutor\\) skipped: succeeded in attempt 1 of run ${failed.runId} \\(--resume\\)`,
    ),
  );
  assert.equal(await attemptsOf(dir.path, "extract"), 1, "extract did not run again");
  assert.equal(await attemptsOf(dir.path, "load"), 2);
  assert.equal(await Deno.readTextFile(join(dir.path, "w/load.note")), "rows=7", "the skipped step's output");
  const [record, ...others] = await records(dir.path);
  assert.deepEqual(others, [], "the same run, not a new one");
  assert.deepEqual([record.runId, record.attempt, record.status, record.date], [
    failed.runId,
    2,
    "succeeded",
    "2020-09-30",
  ]);
  assert.deepEqual(statuses(record), { extract: "succeeded", load: "succeeded", report: "succeeded" });
  assert.equal(record.steps.extract.attempt, 1, "the skipped step keeps the attempt it succeeded in");
  assert.deepEqual(record.steps.extract.outputs, { rows: 7 });

  // in GitHub Actions, the action's `outputs` hold the skipped step's too (QA: they were left out)
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  const failedAgain = await run(dir.path, "--new-run", "r.json");
  assert.equal(failedAgain.code, 1);
  await Deno.remove(join(dir.path, "w/fail.flag"));
  const outputFile = join(dir.path, "github_output");
  await Deno.writeTextFile(outputFile, "");
  const github = await lakerun(["run", "--executors", PLUGINS, "--resume", "r.json"], {
    cwd: dir.path,
    env: { GITHUB_ACTIONS: "true", GITHUB_OUTPUT: outputFile },
  });
  assert.equal(github.code, 0, github.stdout + github.stderr);
  const outputs = /outputs<<(\S+)\n([\s\S]*?)\n\1\n/.exec(await Deno.readTextFile(outputFile));
  assert.deepEqual(JSON.parse(outputs![2]).extract, { rows: 7 }, outputs![2]);

  // nothing left to resume; a run that succeeded cannot be resumed; an unknown id is named
  const again = await run(dir.path, "--resume", "r.json");
  assert.equal(again.code, 2);
  assert.match(again.stderr, /routine "r" has no failed or interrupted run to resume/);
  const succeeded = await run(dir.path, `--resume=${record.runId}`, "r.json");
  assert.equal(succeeded.code, 2);
  assert.match(succeeded.stderr, new RegExp(`run "${record.runId}" succeeded: there is nothing to resume`));
  const unknown = await run(dir.path, "--resume", "20200101T000000Z-00000000", "r.json");
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no run "20200101T000000Z-00000000" of routine "r"/);
});

Deno.test("two routine files with one routine_name: neither continues the other's failed run", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, { load: probe({ fail_if: "fail.flag" }) }, "nightly");
  await Deno.rename(join(dir.path, "r.json"), join(dir.path, "a.json"));
  await writeRoutine(dir.path, { other: probe() }, "nightly");
  await Deno.rename(join(dir.path, "r.json"), join(dir.path, "b.json"));
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  const first = await run(dir.path, "--date", "2024-01-01", "a.json");
  assert.equal(first.code, 1, first.stdout + first.stderr);
  const [failed] = await records(dir.path, "nightly");

  // b.json: a run of its own, not attempt 2 of a.json's
  const second = await run(dir.path, "--date", "2024-01-01", "b.json");
  assert.equal(second.code, 0, second.stdout + second.stderr);
  assert.doesNotMatch(second.stdout, /↻/);
  const [other] = await records(dir.path, "nightly");
  assert.notEqual(other.runId, failed.runId);

  // a.json again: continues its own failed run (what it completed is not done again)
  await Deno.remove(join(dir.path, "w/fail.flag"));
  const again = await run(dir.path, "--date", "2024-01-01", "a.json");
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, new RegExp(`↻ attempt 2 of run ${failed.runId}`));

  // a.json renamed c.json: the same routine, whose runs it continues
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  assert.equal((await run(dir.path, "--date", "2024-01-02", "a.json")).code, 1);
  const [failedAgain] = await records(dir.path, "nightly");
  await Deno.rename(join(dir.path, "a.json"), join(dir.path, "c.json"));
  await Deno.remove(join(dir.path, "w/fail.flag"));
  const renamed = await run(dir.path, "--date", "2024-01-02", "c.json");
  assert.equal(renamed.code, 0, renamed.stdout + renamed.stderr);
  assert.match(renamed.stdout, new RegExp(`↻ attempt 2 of run ${failedAgain.runId}`));
});

Deno.test("--resume re-runs, with a warning, a succeeded step whose resolved params changed", async () => {
  await using dir = await tempDir();
  const routine = (note: string) => ({ a: probe({ note }), b: probe({ fail_if: "fail.flag" }) });
  await writeRoutine(dir.path, routine("v1"));
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  assert.equal((await run(dir.path, "r.json")).code, 1);
  const [failed] = await records(dir.path);
  await Deno.remove(join(dir.path, "w/fail.flag"));
  await writeRoutine(dir.path, routine("v2"));
  const resumed = await run(dir.path, "--resume", "--run-id", failed.runId, "r.json");
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.ok(
    resumed.stdout.includes(
      `! step "a": its resolved params changed since it succeeded in run ${failed.runId}: running it again`,
    ),
    resumed.stdout,
  );
  assert.equal(await attemptsOf(dir.path, "a"), 2);
  assert.equal(await Deno.readTextFile(join(dir.path, "w/a.note")), "v2");
  const [record] = await records(dir.path);
  assert.notEqual(record.steps.a.paramsHash, failed.steps.a.paramsHash);
  assert.deepEqual([record.runId, record.status], [failed.runId, "succeeded"]);
});

Deno.test("--resume re-runs, with a warning, a succeeded step whose tasks or executor changed", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "landing"));
  await Deno.writeTextFile(join(dir.path, "landing/a.csv"), "a,b\n");
  const staging = (tasks: string[]) => ({
    executor: "StagingExecutor",
    params: { parent_directory: "landing", dump_directory: "staging" },
    tasks,
  });
  await writeRoutine(dir.path, { s: staging(["transfer"]), b: probe({ fail_if: "fail.flag" }) });
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  assert.equal((await run(dir.path, "r.json")).code, 1);
  const [failed] = await records(dir.path);
  assert.deepEqual(failed.steps.s.taskList, ["transfer"]);

  await Deno.remove(join(dir.path, "w/fail.flag"));
  await writeRoutine(dir.path, {
    s: staging(["transfer", "post_staging"]),
    b: probe({ fail_if: "fail.flag" }),
  });
  const resumed = await run(dir.path, "--resume", "r.json");
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.ok(
    resumed.stdout.includes(
      `! step "s": its tasks changed (transfer → transfer, post_staging) since it succeeded in run ${failed.runId}: running it again`,
    ),
    resumed.stdout,
  );
  assert.doesNotMatch(resumed.stdout, /skipped: succeeded in attempt/);
  assert.equal(await Deno.readTextFile(join(dir.path, "archive/a.csv")), "a,b\n", "post_staging ran");
  const [record] = await records(dir.path);
  assert.deepEqual([record.runId, record.status, record.steps.s.tasks.post_staging?.status], [
    failed.runId,
    "succeeded",
    "succeeded",
  ]);

  // another executor under the same step id
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  await writeRoutine(dir.path, { s: probe(), b: probe({ fail_if: "fail.flag" }) });
  assert.equal((await run(dir.path, "--date", "2024-05-01", "r.json")).code, 1);
  const [second] = await records(dir.path);
  await Deno.remove(join(dir.path, "w/fail.flag"));
  await writeRoutine(dir.path, { s: staging(["transfer"]), b: probe({ fail_if: "fail.flag" }) });
  const changed = await run(dir.path, "--resume", "r.json");
  assert.equal(changed.code, 0, changed.stdout + changed.stderr);
  assert.ok(
    changed.stdout.includes(
      `! step "s": its executor changed (StepProbeExecutor → StagingExecutor) and its tasks changed (work → transfer) and its resolved params changed since it succeeded in run ${second.runId}: running it again`,
    ),
    changed.stdout,
  );
});

Deno.test("--resume re-runs a succeeded step whose outputs held a secret: later steps get the value, never ***", async () => {
  await using dir = await tempDir();
  const secret = "topsecretvalue";
  await writeRoutine(dir.path, {
    a: probe({ outputs: { greeting: "v-${{ secrets.TOK }}-${{ run.date }}", rows: 3 } }),
    b: probe({ fail_if: "fail.flag", note: "got ${{ steps.a.outputs.greeting | upper }}" }),
    c: probe({ outputs: { plain: "no secret here" } }),
  });
  const env = { TOK: secret };
  const runWithSecret = (...args: string[]) =>
    lakerun(["run", "--executors", PLUGINS, ...args, "r.json"], { cwd: dir.path, env });
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  const first = await runWithSecret("--date", "2024-01-01");
  assert.equal(first.code, 1, first.stdout + first.stderr);
  assert.equal(await Deno.readTextFile(join(dir.path, "w/b.note")), "got V-TOPSECRETVALUE-2024-01-01");
  const [failed] = await records(dir.path);
  assert.deepEqual(failed.steps.a.outputs, { greeting: "v-***-2024-01-01", rows: 3 }, "the record is masked");

  await Deno.remove(join(dir.path, "w/fail.flag"));
  const resumed = await runWithSecret("--resume");
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.equal(
    await Deno.readTextFile(join(dir.path, "w/b.note")),
    "got V-TOPSECRETVALUE-2024-01-01",
    "the real value, not ***",
  );
  assert.ok(
    resumed.stdout.includes(
      `! step "a": its output "greeting" held a secret, which run records store only as ***: running it again rather than hand *** on`,
    ),
    resumed.stdout,
  );
  assert.equal(await attemptsOf(dir.path, "a"), 2, "a ran again");
  assert.ok(!resumed.stdout.includes(secret) && !resumed.stderr.includes(secret));
  const [record] = await records(dir.path);
  assert.deepEqual([record.runId, record.status], [failed.runId, "succeeded"]);
  const file = join(runsDir(join(dir.path, ".lakerun"), "r"), `${record.runId}.json`);
  assert.ok(!(await Deno.readTextFile(file)).includes(secret), "the record never holds the secret");

  // c succeeded without a secret in its outputs: a later resume skips it and hands its outputs on
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  await writeRoutine(dir.path, {
    a: probe({ outputs: { greeting: "v-${{ secrets.TOK }}-${{ run.date }}", rows: 3 } }),
    c: probe({ outputs: { plain: "no secret here" } }),
    d: probe({ fail_if: "fail.flag", note: "${{ steps.c.outputs.plain }}" }),
  });
  assert.equal((await runWithSecret("--date", "2024-01-02")).code, 1);
  await Deno.remove(join(dir.path, "w/fail.flag"));
  const again = await runWithSecret("--resume");
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /\[2\/3\] c \(StepProbeExecutor\) skipped: succeeded in attempt 1 of run /);
  assert.equal(await attemptsOf(dir.path, "c"), 2, "c ran for both dates, not again on resume");
  assert.equal(await Deno.readTextFile(join(dir.path, "w/d.note")), "no secret here");
});

Deno.test('a run record stays JSON when a numeric output equals a secret: the value is stored as "***"', async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, { a: probe({ outputs: { pin: 4242, rows: 3 } }) });
  const secrets = new SecretMask();
  secrets.add("4242");
  assert.equal(await runInProcess(dir.path, { secrets }), undefined);
  const [record] = await records(dir.path);
  assert.ok(record, "the record is readable");
  assert.deepEqual(record.steps.a.outputs, { pin: "***", rows: 3 });
});

Deno.test("--resume RUN_ID continues an older run of another date, with its id and its date", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, { a: probe(), b: probe({ fail_if: "fail.flag", note: "${{ run.date }}" }) });
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  assert.equal((await run(dir.path, "--date", "2020-03-31", "r.json")).code, 1);
  await Deno.remove(join(dir.path, "w/fail.flag"));
  assert.equal((await run(dir.path, "--date", "2020-06-30", "r.json")).code, 0);
  const [june, march] = await records(dir.path);
  assert.notEqual(june.runId, march.runId, "another date is another run");
  assert.deepEqual([march.date, march.status, june.date, june.status], [
    "2020-03-31",
    "failed",
    "2020-06-30",
    "succeeded",
  ]);

  const resumed = await run(dir.path, "--resume", march.runId, "r.json");
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.equal(await Deno.readTextFile(join(dir.path, "w/b.note")), "2020-03-31", "the run's own date");
  const after = await records(dir.path);
  const byId = Object.fromEntries(after.map((r) => [r.runId, r]));
  assert.deepEqual(Object.keys(byId).sort(), [march.runId, june.runId].sort(), "no new run");
  assert.deepEqual([byId[march.runId].status, byId[march.runId].attempt], ["succeeded", 2]);
  assert.equal(await attemptsOf(dir.path, "a"), 2, "a ran for March and June, not again on resume");
});

Deno.test("SIGKILL mid-run: the record says running while lakerun lives, interrupted after; --resume continues it", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, {
    a: probe({ outputs: { n: 1 } }),
    b: probe({ slow_if: "slow.flag" }),
    c: probe(),
  });
  await Deno.writeTextFile(join(dir.path, "w/slow.flag"), "");
  const child = lakerunCommand(["run", "--executors", PLUGINS, "r.json"], { cwd: dir.path, stdout: "null" })
    .spawn();
  await until("step b to start", async () => (await timeline(dir.path)).includes("start b"));
  const live = JSON.parse(
    (await lakerun(["runs", "--json", "r.json"], { cwd: dir.path })).stdout,
  ) as RunRecord[];
  assert.deepEqual([live[0].status, statuses(live[0])], ["running", {
    a: "succeeded",
    b: "running",
    c: "pending",
  }]);
  child.kill("SIGKILL");
  await child.status;
  await child.stderr.cancel();

  const [killed] = await records(dir.path);
  assert.deepEqual([killed.status, statuses(killed)], ["interrupted", {
    a: "succeeded",
    b: "failed",
    c: "pending",
  }]);
  assert.equal(killed.steps.b.error, "lakerun was killed while the step was running");
  const onDisk = JSON.parse(
    await Deno.readTextFile(
      join(
        dir.path,
        ".lakerun",
        (await Array.fromAsync(Deno.readDir(join(dir.path, ".lakerun"))))[0].name,
        "runs",
        `${killed.runId}.json`,
      ),
    ),
  );
  assert.equal(onDisk.status, "running", "what a killed process left");

  await Deno.remove(join(dir.path, "w/slow.flag"));
  const resumed = await run(dir.path, "--resume", "r.json");
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.deepEqual(await timeline(dir.path), [
    "start a",
    "end a",
    "start b",
    "start b",
    "end b",
    "start c",
    "end c",
  ]);
  const [record, ...others] = await records(dir.path);
  assert.deepEqual(others, []);
  assert.deepEqual([record.runId, record.attempt, record.status], [killed.runId, 2, "succeeded"]);
  const table = await lakerun(["runs", "r.json"], { cwd: dir.path });
  assert.match(table.stdout, new RegExp(`\\n${killed.runId} .* succeeded \\(#2\\) .* 3/0/0\\n$`));
});

Deno.test("a run of a routine another run holds exits 75 (EX_TEMPFAIL) in one line, nothing run or recorded", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, { a: probe({ slow_if: "slow.flag" }) });
  await Deno.writeTextFile(join(dir.path, "w/slow.flag"), "");
  const child = lakerunCommand(["run", "--executors", PLUGINS, "r.json"], { cwd: dir.path, stdout: "null" })
    .spawn();
  try {
    await until("step a to start", async () => (await timeline(dir.path)).includes("start a"));
    const busy = await run(dir.path, "r.json");
    assert.equal(busy.code, 75, busy.stdout + busy.stderr);
    assert.match(
      busy.stderr,
      /^routine "r" is already running \(lock held on .*\/\.lakerun\/r-[0-9a-f]+\/run\.lock\); this run did not start\n$/,
    );
    assert.doesNotMatch(busy.stdout + busy.stderr, / {4}at /);
    assert.deepEqual(await timeline(dir.path), ["start a"], "nothing ran");
    // --resume too: what it would continue is not settled while the routine runs
    const resume = await run(dir.path, "--resume", "r.json");
    assert.equal(resume.code, 75, resume.stderr);
    assert.match(resume.stderr, /routine "r" is already running/);
    // the JSON log and GitHub's status say busy, not failed
    const json = await run(dir.path, "--log-format", "json", "r.json");
    assert.equal(json.code, 75);
    const last = JSON.parse(json.stdout.trim().split("\n").at(-1)!);
    assert.deepEqual([last.event, last.status], ["run_finished", "busy"]);
    const output = join(dir.path, "github-output");
    const github = await lakerun(["run", "--executors", PLUGINS, "r.json"], {
      cwd: dir.path,
      env: { GITHUB_ACTIONS: "true", GITHUB_OUTPUT: output },
    });
    assert.equal(github.code, 75);
    assert.match(github.stdout + github.stderr, /::warning title=lakerun::routine "r" is already running/);
    assert.match(await Deno.readTextFile(output), /status<<.*\nbusy\n|status=busy/);
    const runs = await records(dir.path);
    assert.deepEqual(runs.map((r) => r.status), ["running"], "no record of its own");
    // a backfill stops at the first date that finds the lock held, --keep-going or not: so would every date
    const backfill = await run(
      dir.path,
      "r.json",
      "--from",
      "2024-01-01",
      "--to",
      "2024-01-03",
      "--every",
      "day",
      "--keep-going",
    );
    assert.equal(backfill.code, 75, backfill.stdout + backfill.stderr);
    assert.doesNotMatch(backfill.stdout, /2024-01-02/);
    assert.deepEqual(await timeline(dir.path), ["start a"], "nothing ran");
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel();
  }
});

/** Runs routine "r" of `dir`/r.json in-process (steps in Workers); returns the error, if any. */
async function runInProcess(dir: string, options: { secrets?: SecretMask } = {}): Promise<Error | undefined> {
  const routine = await parseRoutine(await Deno.readTextFile(join(dir, "r.json")), {
    file: join(dir, "r.json"),
    label: "r.json",
    cwd: dir,
    executorDirs: [PLUGINS],
  });
  try {
    await runRoutine(routine, { cwd: dir, reporter: consoleReporter({ write: () => {} }), ...options });
  } catch (error) {
    return error as Error;
  }
}

Deno.test("a run record never holds a secret value: outputs and errors are masked", async () => {
  await using dir = await tempDir();
  const secret = "s3cr3t-Pa55word";
  await writeRoutine(dir.path, {
    a: probe({ outputs: { token: `Bearer ${secret}`, rows: 3 } }),
    b: probe({ fail_if: secret }),
  });
  await Deno.writeTextFile(join(dir.path, "w", secret), "");
  const secrets = new SecretMask();
  secrets.add(secret);
  const error = await runInProcess(dir.path, { secrets });
  assert.match(
    error?.message ?? "",
    new RegExp(`failing on purpose \\(${secret} exists\\)`),
    "the error itself is not masked",
  );
  const [file] = await Array.fromAsync(Deno.readDir(runsDir(join(dir.path, ".lakerun"), "r")));
  const text = await Deno.readTextFile(join(runsDir(join(dir.path, ".lakerun"), "r"), file.name));
  assert.ok(!text.includes(secret), text);
  const record = JSON.parse(text) as RunRecord;
  assert.deepEqual(record.steps.a.outputs, { token: "Bearer ***", rows: 3 });
  assert.match(record.steps.b.error!, /failing on purpose \(\*\*\* exists\)$/);
  assert.match(record.steps.b.tasks.work.error!, /\(\*\*\* exists\)$/);
  assert.match(record.error!, /\(\*\*\* exists\)$/);
});

Deno.test("a run starting under the lock rewrites as interrupted the records killed runs left running", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, { a: probe() });
  const runs = runsDir(join(dir.path, ".lakerun"), "r");
  await Deno.mkdir(runs, { recursive: true });
  const killed = {
    version: 1,
    runId: "20200101T000000Z-0badf00d",
    routine: "r",
    routineHash: "",
    date: "2019-12-31", // another date's run: not the one this run continues
    status: "running",
    attempt: 1,
    started: "2020-01-01T00:00:00.000Z",
    firstStarted: "2020-01-01T00:00:00.000Z",
    maxParallel: 1,
    steps: {
      a: {
        status: "running",
        executor: "StepProbeExecutor",
        tasks: { work: { status: "running" } },
        outputs: {},
      },
    },
  };
  await Deno.writeTextFile(join(runs, `${killed.runId}.json`), JSON.stringify(killed));
  assert.equal(await runInProcess(dir.path), undefined);
  const onDisk = JSON.parse(await Deno.readTextFile(join(runs, `${killed.runId}.json`))) as RunRecord;
  assert.deepEqual([onDisk.status, onDisk.steps.a.status, onDisk.steps.a.tasks.work.status], [
    "interrupted",
    "failed",
    "failed",
  ]);
  assert.deepEqual((await records(dir.path)).map((r) => r.status), ["succeeded", "interrupted"]);
});

Deno.test("command line: --max-parallel and --run-id are checked, the value quoted", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, { a: probe() });
  const zero = await run(dir.path, "--max-parallel", "0", "r.json");
  assert.equal(zero.code, 2);
  assert.equal(zero.stderr.trim(), `lakerun: --max-parallel: "0" is not a whole number from 1 to 999`);
  const orphan = await run(dir.path, "--run-id", "x", "r.json");
  assert.equal(orphan.code, 2);
  assert.match(orphan.stderr, /--run-id goes with --resume/);
  const plan = await lakerun(["plan", "--resume", "r.json"], { cwd: dir.path });
  assert.equal(plan.code, 2);
  assert.match(plan.stderr, /--resume is an option of 'run', not 'plan'/);
});

/** A loopback server that sends the first 64 KiB of a 10 MB file, then nothing. */
function stallingServer() {
  const sent = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(65_536).fill(42));
        sent.resolve();
      },
    });
    return new Response(body, { headers: { "content-length": "10000000" } });
  });
  return { server, url: `http://127.0.0.1:${server.addr.port}/big.bin`, sent: sent.promise };
}

for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  Deno.test(`${signal} mid-download and mid-transform: both steps aborted, temporary files removed, record interrupted, exit ${code}, within 5 s`, async () => {
    await using dir = await tempDir();
    const stall = stallingServer();
    await writeRoutine(dir.path, {
      download: {
        executor: "DownloaderExecutor",
        params: { requests_arguments: { url: stall.url }, landing_directory: "landing/" },
        tasks: ["download"],
        depends_on: [],
      },
      transform: probe({ ms: 60_000 }, { depends_on: [] }, "transform"),
      load: probe({}, { depends_on: ["download", "transform"] }),
    });
    await Deno.mkdir(join(dir.path, "landing"));
    const child = lakerunCommand(["run", "--executors", PLUGINS, "r.json"], { cwd: dir.path }).spawn();
    const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
    await stall.sent;
    const entries = async (folder: string) =>
      (await Array.fromAsync(Deno.readDir(join(dir.path, folder))).catch(() => [])).map((e) => e.name);
    await until("a temporary file in landing/", async () => (await entries("landing")).length > 0);
    await until("the transform to start", async () => (await timeline(dir.path)).includes("start transform"));
    await until("a temporary file in w/out", async () => (await entries("w/out")).length > 0);

    const sentAt = performance.now();
    child.kill(signal);
    const late = setTimeout(() => child.kill("SIGKILL"), 10_000); // a hung lakerun fails the test, not the suite
    const status = await child.status;
    clearTimeout(late);
    const ms = performance.now() - sentAt;
    const [stdout, stderr] = await output;
    await stall.server.shutdown();

    assert.equal(status.code, code, stdout + stderr);
    assert.ok(ms < 5000, `exited ${Math.round(ms)} ms after ${signal}`);
    assert.deepEqual(await entries("landing"), [], "no temporary file left in landing/");
    assert.deepEqual(await entries("w/out"), [], "no temporary file left by the transform");
    assert.match(stdout, /removed \.lakerun-tmp-\w+-result\.csv/);
    assert.match(stderr, new RegExp(`interrupted \\(${signal}\\)`));
    const [record] = await records(dir.path);
    assert.equal(record.status, "interrupted");
    assert.deepEqual(statuses(record), { download: "failed", transform: "failed", load: "pending" });
    assert.ok(record.ended, "the record was finished before exit");
    assert.deepEqual(await timeline(dir.path), ["start transform", "aborted transform"]);
  });
}

Deno.test("a plain run continues the last unfinished run and says so; --new-run starts a new one", async () => {
  await using dir = await tempDir();
  await writeRoutine(dir.path, { a: probe({ fail_if: "fail.flag" }) });
  await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
  const first = await run(dir.path, "r.json");
  assert.equal(first.code, 1, first.stdout + first.stderr);
  assert.doesNotMatch(first.stdout, /↻/);
  const [failed] = await records(dir.path);

  const again = await run(dir.path, "r.json");
  assert.equal(again.code, 1, again.stdout + again.stderr);
  assert.match(
    again.stdout,
    new RegExp(
      `^lakerun · r · 1 step\\n↻ attempt 2 of run ${failed.runId}, which did not succeed: what it completed on AWS ` +
        `and in databases is not done again \\(--new-run starts a new run\\)\\n`,
    ),
  );
  assert.deepEqual((await records(dir.path)).map((r) => [r.runId, r.attempt]), [[failed.runId, 2]]);
  const json = await run(dir.path, "--log-format", "json", "r.json");
  const started = JSON.parse(json.stdout.split("\n")[0]);
  assert.deepEqual([started.event, started.run_id, started.attempt], ["run_started", failed.runId, 3]);

  await Deno.remove(join(dir.path, "w/fail.flag"));
  const fresh = await run(dir.path, "--new-run", "r.json");
  assert.equal(fresh.code, 0, fresh.stdout + fresh.stderr);
  assert.doesNotMatch(fresh.stdout, /↻/);
  const [newest, older] = await records(dir.path);
  assert.notEqual(newest.runId, failed.runId);
  assert.deepEqual([newest.attempt, newest.status, older.runId], [1, "succeeded", failed.runId]);

  const both = await run(dir.path, "--new-run", "--resume", "r.json");
  assert.equal(both.code, 2);
  assert.equal(both.stderr, "lakerun: --resume continues a run, --new-run starts one: give one of them\n");
  const elsewhere = await lakerun(["validate", "--new-run", "r.json"], { cwd: dir.path });
  assert.equal(elsewhere.code, 2);
  assert.match(elsewhere.stderr, /--new-run is an option of 'run', not 'validate'/);
});

Deno.test("outputs of the file executors: a later step uses what the downloader landed, staging staged and archived, a transfer copied; a re-run reports the same", async () => {
  await using dir = await tempDir();
  const root = await Deno.realPath(dir.path);
  await Deno.mkdir(join(root, "src"));
  const csv = "id,name\n1,Ada\n2,Bob\n";
  await Deno.writeTextFile(join(root, "src/data.csv"), csv);
  const bytes = new TextEncoder().encode(csv).length;
  const outputs: Record<string, string[]> = {
    download: ["files", "bytes", "path", "file"],
    stage: ["files", "bytes", "path", "archived_files", "archived_bytes"],
    copy: ["files", "bytes"],
  };
  const note = Object.entries(outputs).flatMap(([step, names]) =>
    names.map((name) => `${step}.${name}=\${{ steps.${step}.outputs.${name} }}`)
  ).join("|");
  await writeRoutine(root, {
    download: {
      executor: "DownloaderExecutor",
      params: { requests_arguments: { url: `file://${root}/src/data.csv` }, landing_directory: "land/" },
      tasks: ["download"],
    },
    stage: {
      executor: "StagingExecutor",
      params: { parent_directory: "land", dump_directory: "stage" },
      tasks: ["transfer", "post_staging"],
    },
    copy: {
      executor: "S3TransferExecutor",
      params: { source: "stage", destination: "copied" },
      tasks: ["copy"],
    },
    use: probe({ fail_if: "fail.flag", note }),
  });
  const expected = {
    download: { files: 1, bytes, path: join(root, "land"), file: join(root, "land/data.csv") },
    stage: { files: 1, bytes, path: join(root, "stage"), archived_files: 1, archived_bytes: bytes },
    copy: { files: 1, bytes },
  };
  const expectedNote = Object.entries(expected).flatMap(([step, values]) =>
    Object.entries(values).map(([name, value]) => `${step}.${name}=${value}`)
  ).join("|");

  await Deno.writeTextFile(join(root, "w/fail.flag"), "");
  const first = await run(root, "r.json");
  assert.equal(first.code, 1, first.stdout + first.stderr);
  assert.equal(await Deno.readTextFile(join(root, "w/use.note")), expectedNote);

  // the same run again: staged and copied files are there already (nothing copied), the outputs the same
  await Deno.remove(join(root, "w/fail.flag"));
  await Deno.remove(join(root, "w/use.note"));
  const again = await run(root, "r.json");
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /1 file was already staged/);
  assert.match(again.stdout, /copied 0 files \(0 B\); 1 already identical/);
  assert.equal(await Deno.readTextFile(join(root, "w/use.note")), expectedNote);
  const json = await lakerun(["runs", "--json", "r.json"], { cwd: root });
  const [record] = JSON.parse(json.stdout) as RunRecord[];
  assert.equal(record.attempt, 2);
  for (const [step, values] of Object.entries(expected)) assert.deepEqual(record.steps[step].outputs, values);
});
