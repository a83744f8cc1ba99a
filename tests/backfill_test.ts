/**
 * Dated runs and backfills: `routines/retail_trade_survey_quarterly.json` run for one quarter and as a
 * backfill of several quarters against a loopback server serving each quarter's zip (a copy of the routine
 * with the host swapped); dates in order, month and quarter series keeping month ends, every date validated
 * before any runs, the first failed date stopping the backfill unless `--keep-going`, each date its own run
 * (its own run id, never the continuation of another date's failed run), exit 0 only when every date
 * succeeded.
 *
 * Run: `deno test -A tests/backfill_test.ts`
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { listRuns } from "../orchestrator/run/records.ts";
import { type FaultServer, type Route, startFaultServer } from "./support/fault_server.ts";
import { lakerun, ROOT, tempDir } from "./support/lakerun.ts";
import { buildZip } from "./support/zip_fixtures.ts";

const QUARTERLY = join(ROOT, "routines/retail_trade_survey_quarterly.json");
const PLUGINS = join(ROOT, "tests/fixtures/template_plugins");

/** The path Stats NZ publishes a quarter's CSV zip at, e.g. `June-2024`. */
function surveyPath(monthYear: string): string {
  return `/assets/Uploads/Retail-trade-survey/Retail-trade-survey-${monthYear}-quarter/Download-data/retail-trade-survey-${monthYear.toLowerCase()}-quarter-csv.zip`;
}

/** A quarter's archive: one CSV whose content names the quarter. */
function quarterRoute(monthYear: string): Route {
  const data = `quarter,sales\n${monthYear},${monthYear.length * 1000}\n`;
  return {
    body: buildZip([{ name: `retail-trade-survey-${monthYear.toLowerCase()}.csv`, data }]),
    contentType: "application/zip",
  };
}

/** The quarterly routine with its host replaced by the test server's, written to `dir/quarterly.json`. */
async function localQuarterly(dir: string, server: FaultServer): Promise<string> {
  const text = await Deno.readTextFile(QUARTERLY);
  assert.ok(text.includes("https://www.stats.govt.nz/"), "the routine downloads from Stats NZ");
  const local = JSON.parse(text.replaceAll("https://www.stats.govt.nz", server.origin));
  delete local.$schema;
  local.executors.DownloaderExecutor.params.retry_delay = 0.01;
  const file = join(dir, "quarterly.json");
  await Deno.writeTextFile(file, JSON.stringify(local, null, 2));
  return file;
}

async function readText(path: string): Promise<string | undefined> {
  return await Deno.readTextFile(path).catch(() => undefined);
}

/** The `── DATE (i/n) ──` headers a backfill printed, in order. */
function datesRun(stdout: string): string[] {
  return [...stdout.matchAll(/^── (\d{4}-\d{2}-\d{2}) \(\d+\/\d+\) ──$/gm)].map((match) => match[1]);
}

const QUARTERS = ["June-2024", "September-2024", "December-2024", "March-2025"];

Deno.test("the quarterly routine for one quarter: the dated URL, per-quarter landing and staging folders", async () => {
  await using server = await startFaultServer(
    Object.fromEntries(QUARTERS.map((q) => [surveyPath(q), quarterRoute(q)])),
  );
  await using dir = await tempDir();
  const file = await localQuarterly(dir.path, server);
  // any date in the quarter names the quarter
  const result = await lakerun(["run", file, "--date", "2024-05-17"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.deepEqual(server.requests.map((r) => r.path), [surveyPath("June-2024")]);
  assert.equal(
    await readText(join(dir.path, "data/staging/2024-06/retail-trade-survey-june-2024.csv")),
    "quarter,sales\nJune-2024,9000\n",
  );
  assert.ok(await readText(join(dir.path, "data/archive/2024-06/retail-trade-survey-june-2024.csv")));
  const [record] = await listRuns(join(dir.path, ".lakerun"), "retail_trade_survey_quarterly");
  assert.deepEqual([record.date, record.status], ["2024-05-17", "succeeded"]);
});

Deno.test("a quarterly backfill runs every quarter end in order, each its own run", async () => {
  await using server = await startFaultServer(
    Object.fromEntries(QUARTERS.map((q) => [surveyPath(q), quarterRoute(q)])),
  );
  await using dir = await tempDir();
  const file = await localQuarterly(dir.path, server);
  const result = await lakerun([
    "run",
    file,
    "--from",
    "2024-06-30",
    "--to",
    "2025-03-31",
    "--every",
    "quarter",
  ], {
    cwd: dir.path,
  });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.deepEqual(datesRun(result.stdout), ["2024-06-30", "2024-09-30", "2024-12-31", "2025-03-31"]);
  assert.deepEqual(server.requests.map((r) => r.path), QUARTERS.map(surveyPath), "downloaded in date order");
  assert.match(
    result.stdout,
    /^backfill 2024-06-30 → 2025-03-31 \(every quarter\): 4 dates, 4 succeeded, 0 failed$/m,
  );
  for (
    const [folder, quarter] of [["2024-06", "June-2024"], ["2024-09", "September-2024"], [
      "2024-12",
      "December-2024",
    ], ["2025-03", "March-2025"]]
  ) {
    const staged = await readText(
      join(dir.path, `data/staging/${folder}/retail-trade-survey-${quarter.toLowerCase()}.csv`),
    );
    assert.equal(staged, `quarter,sales\n${quarter},${quarter.length * 1000}\n`, folder);
  }
  const runs = await listRuns(join(dir.path, ".lakerun"), "retail_trade_survey_quarterly");
  assert.deepEqual(runs.map((run) => [run.date, run.status, run.attempt]).reverse(), [
    ["2024-06-30", "succeeded", 1],
    ["2024-09-30", "succeeded", 1],
    ["2024-12-31", "succeeded", 1],
    ["2025-03-31", "succeeded", 1],
  ]);
  assert.equal(new Set(runs.map((run) => run.runId)).size, 4, "a run id per date");
});

Deno.test("a backfill stops at the first failed date (exit 1); --keep-going runs the rest, each date a new run", async () => {
  const routes = Object.fromEntries(
    QUARTERS.filter((q) => q !== "September-2024").map((q) => [surveyPath(q), quarterRoute(q)]),
  );
  routes[surveyPath("September-2024")] = { status: 404, body: "not published" };
  await using server = await startFaultServer(routes);
  await using dir = await tempDir();
  const file = await localQuarterly(dir.path, server);
  const range = ["--from", "2024-06-30", "--to", "2025-03-31", "--every", "quarter"];

  const stopped = await lakerun(["run", file, ...range], { cwd: dir.path });
  assert.equal(stopped.code, 1, stopped.stdout + stopped.stderr);
  assert.deepEqual(datesRun(stopped.stdout), ["2024-06-30", "2024-09-30"]);
  assert.match(
    stopped.stdout,
    /^backfill 2024-06-30 → 2025-03-31 \(every quarter\): 4 dates, 1 succeeded, 1 failed, 2 not run \(stopped at 2024-09-30; --keep-going runs the rest\)$/m,
  );
  assert.match(stopped.stderr, /404/);
  assert.equal(server.hits(surveyPath("December-2024")), 0, "nothing after the failed date ran");
  assert.equal(server.hits(surveyPath("March-2025")), 0);

  const kept = await lakerun(["run", file, ...range, "--keep-going"], { cwd: dir.path });
  assert.equal(kept.code, 1, kept.stdout + kept.stderr);
  assert.deepEqual(datesRun(kept.stdout), ["2024-06-30", "2024-09-30", "2024-12-31", "2025-03-31"]);
  assert.match(kept.stdout, /^backfill .*: 4 dates, 3 succeeded, 1 failed \(2024-09-30\)$/m);
  assert.equal(server.hits(surveyPath("March-2025")), 1);
  assert.ok(await readText(join(dir.path, "data/staging/2025-03/retail-trade-survey-march-2025.csv")));

  const runs = (await listRuns(join(dir.path, ".lakerun"), "retail_trade_survey_quarterly")).reverse();
  const september = runs.filter((run) => run.date === "2024-09-30");
  assert.ok(september.length > 0 && september.every((run) => run.status === "failed"));
  const december = runs.find((run) => run.date === "2024-12-31")!;
  assert.ok(
    september.every((run) => run.runId !== december.runId),
    "the date after a failed one did not continue the failed run",
  );
  assert.deepEqual([december.status, december.attempt], ["succeeded", 1]);
});

/** A routine of one EchoExecutor step writing its params to `o/<run.date>.json`. */
async function echoRoutine(dir: string, params: Record<string, unknown> = {}): Promise<void> {
  const routine = {
    routine_name: "dated",
    executors_dir: PLUGINS,
    executors: {
      echo: {
        executor: "EchoExecutor",
        params: { out: "o/${{ run.date }}.json", ...params },
        tasks: ["echo"],
      },
    },
  };
  await Deno.writeTextFile(join(dir, "r.json"), JSON.stringify(routine, null, 2));
}

/** `lakerun run r.json --from FROM --to TO --every EVERY …` in `dir`. */
function backfill(dir: string, from: string, to: string, every: string, ...more: string[]) {
  return lakerun(["run", "r.json", "--from", from, "--to", to, "--every", every, ...more], { cwd: dir });
}

async function written(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(join(dir, "o")))).map((entry) => entry.name).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

Deno.test("month, quarter and day series: inclusive, in order, month ends kept, leap days included", async () => {
  await using dir = await tempDir();
  await echoRoutine(dir.path);
  const months = await backfill(dir.path, "2020-01-31", "2020-06-30", "month");
  assert.equal(months.code, 0, months.stdout + months.stderr);
  const monthEnds = ["2020-01-31", "2020-02-29", "2020-03-31", "2020-04-30", "2020-05-31", "2020-06-30"];
  assert.deepEqual(datesRun(months.stdout), monthEnds);
  assert.deepEqual(await written(dir.path), monthEnds.map((date) => `${date}.json`));

  const quarterEnds = await backfill(dir.path, "2019-11-30", "2020-08-31", "quarter");
  assert.deepEqual(datesRun(quarterEnds.stdout), ["2019-11-30", "2020-02-29", "2020-05-31", "2020-08-31"]);
  // not a month end: each date counts from the first, so February's clamping does not stick
  const mid = await backfill(dir.path, "2023-08-30", "2024-05-30", "quarter");
  assert.deepEqual(datesRun(mid.stdout), ["2023-08-30", "2023-11-30", "2024-02-29", "2024-05-30"]);

  const days = await backfill(dir.path, "2100-02-27", "2100-03-01", "day");
  assert.equal(days.code, 0, days.stdout + days.stderr);
  assert.deepEqual(
    datesRun(days.stdout),
    ["2100-02-27", "2100-02-28", "2100-03-01"],
    "2100 is not a leap year",
  );
  const leap = await backfill(dir.path, "2024-02-28", "2024-03-01", "day");
  assert.deepEqual(datesRun(leap.stdout), ["2024-02-28", "2024-02-29", "2024-03-01"]);
  const one = await backfill(dir.path, "2024-02-29", "2024-02-29", "month");
  assert.equal(one.code, 0);
  assert.deepEqual(datesRun(one.stdout), ["2024-02-29"]);
});

Deno.test("every date of a backfill is validated before any runs: one invalid date, exit 2, nothing ran", async () => {
  await using dir = await tempDir();
  // the step accepts quarters 1-3 only: the fourth date is invalid
  await echoRoutine(dir.path, { quarter: "${{ run.date | format('Q') }}" });
  const result = await backfill(dir.path, "2020-03-31", "2020-12-31", "quarter");
  assert.equal(result.code, 2, result.stdout + result.stderr);
  assert.match(result.stderr, /executors\.echo\.params\.quarter: .*"4".* \(for the date 2020-12-31\)$/m);
  assert.deepEqual(await written(dir.path), []);
  assert.equal(result.stdout, "");
});

Deno.test("a failed date: a re-run of it (alone or in a backfill) continues its run; the next date never does", async () => {
  await using dir = await tempDir();
  const stateRoot = join(dir.path, ".lakerun");
  const runsOf = async (date: string) =>
    (await listRuns(stateRoot, "dated")).filter((run) => run.date === date);
  await echoRoutine(dir.path, { text: "${{ run.date }}", fail_when: "2024-02-29" });
  const stopped = await backfill(dir.path, "2024-02-28", "2024-03-02", "day");
  assert.equal(stopped.code, 1);
  assert.deepEqual(datesRun(stopped.stdout), ["2024-02-28", "2024-02-29"]);
  assert.match(stopped.stderr, /refusing 2024-02-29/);
  const [failed] = await runsOf("2024-02-29");
  assert.deepEqual([failed.status, failed.attempt], ["failed", 1]);

  const again = await lakerun(["run", "r.json", "--date", "2024-02-29"], { cwd: dir.path });
  assert.equal(again.code, 1);
  const [retried] = await runsOf("2024-02-29");
  assert.deepEqual([retried.runId, retried.status, retried.attempt], [failed.runId, "failed", 2]);

  const kept = await backfill(dir.path, "2024-02-29", "2024-03-02", "day", "--keep-going");
  assert.equal(kept.code, 1);
  assert.deepEqual(datesRun(kept.stdout), ["2024-02-29", "2024-03-01", "2024-03-02"]);
  assert.match(kept.stdout, /^✗ 2024-02-29: .*refusing 2024-02-29/m);
  assert.match(
    kept.stdout,
    /^backfill 2024-02-29 → 2024-03-02 \(every day\): 3 dates, 2 succeeded, 1 failed \(2024-02-29\)$/m,
  );
  const [next] = await runsOf("2024-03-01");
  assert.deepEqual([next.status, next.attempt], ["succeeded", 1]);
  assert.ok((await runsOf("2024-02-29")).every((run) => run.runId !== next.runId));

  await echoRoutine(dir.path, { text: "${{ run.date }}", fail_when: "never" });
  const fine = await backfill(dir.path, "2024-02-28", "2024-03-02", "day", "--keep-going");
  assert.equal(fine.code, 0, fine.stdout + fine.stderr);
  assert.match(fine.stdout, /4 dates, 4 succeeded, 0 failed$/m);
  // the failed date was continued under its own run id, though other dates ran in between
  const finished = await runsOf("2024-02-29");
  assert.deepEqual(finished.map((run) => [run.runId, run.status]), [[failed.runId, "succeeded"]]);
});
