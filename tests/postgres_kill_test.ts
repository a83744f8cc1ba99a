/**
 * All or nothing under SIGKILL: PostgresExecutor's `load` is killed at moments spread over its whole run
 * (starting, streaming files into COPY, moving rows, committing, after the commit), and each time:
 *
 * - right after the kill, the table holds its old rows or the complete new load, never a part (row count and
 *   a checksum of its sorted rows);
 * - the re-run (lakerun continues the interrupted run, with the same run id) finishes the load exactly once:
 *   an `append` whose transaction committed just before the kill is not appended again.
 *
 * Ten `append` trials, then three `replace` trials that swap between two different data sets.
 *
 * Run: deno test -A tests/postgres_kill_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lakerun, lakerunCommand, tempDir } from "./support/lakerun.ts";
import { startPostgres } from "./support/postgres.ts";
import { listRuns } from "../orchestrator/run/records.ts";

const pg = await startPostgres();
const PASSWORD_ENV = "LAKERUN_KILL_TEST_PG_SECRET";
const env = { [PASSWORD_ENV]: pg.password };
const FILES = 3;
const ROWS_PER_FILE = 60_000;

function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
}

/** Three CSV files of ~2.7 MiB, their rows depending on `seed`. */
async function writeStaging(dir: string, seed: number): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  for (let file = 0; file < FILES; file++) {
    const lines = ["id,region,amount,label"];
    for (let i = 0; i < ROWS_PER_FILE; i++) {
      const id = file * ROWS_PER_FILE + i;
      lines.push(
        `${id},R${(id * 7 + seed) % 50},${((id * 37 + seed) % 100000) / 100},"item ${seed}-${id}, ok"`,
      );
    }
    await Deno.writeTextFile(join(dir, `part-${file}.csv`), `${lines.join("\n")}\n`);
  }
}

/** Row count and md5 of the sorted rows of `query`'s result. */
async function checksum(query: string): Promise<string> {
  return (await pg.psql(
    `SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '-') FROM (${query}) t`,
  )).trim();
}

function routine(mode: "append" | "replace") {
  return {
    routine_name: `pg-kill-${mode}`,
    executors: {
      PostgresExecutor: {
        params: {
          host: pg.host,
          port: pg.port,
          database: pg.database,
          user: pg.user,
          password_env: PASSWORD_ENV,
          table: "public.kill_target",
          source: "staging",
          mode,
        },
        tasks: ["load"],
      },
    },
  };
}

/** Runs the routine and kills it with SIGKILL after `delayMs`; true when it was still running then. */
async function runAndKill(dir: string, delayMs: number): Promise<boolean> {
  const child = lakerunCommand(["run", "routine.json"], { cwd: dir, env, stdout: "null", stderr: "null" })
    .spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  if (!exited) {
    try {
      child.kill("SIGKILL");
    } catch {
      // it ended just now
    }
  }
  const { signal } = await status;
  return signal === "SIGKILL";
}

/** Trial `i` of `n` kills at a moment spread over [20 %, 120 %] of a normal run, with some jitter. */
function killMoment(i: number, n: number, runMs: number): number {
  const share = 0.2 + (i + Math.random() * 0.8) / n;
  return Math.round(runMs * share);
}

/** True when the routine's last run ended as succeeded (lakerun's run state). */
/**
 * Whether the routine's last run is recorded as succeeded: its run record (what the next run reads to decide
 * whether to continue it), written after the run's end, so a kill while it ends leaves the run to continue.
 */
async function runFinished(dir: string, mode: string): Promise<boolean> {
  const [newest] = await listRuns(join(dir, ".lakerun"), `pg-kill-${mode}`);
  return newest?.status === "succeeded";
}

async function timedRun(dir: string): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  const result = await lakerun(["run", "routine.json"], { cwd: dir, env });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.ok(!(result.stdout + result.stderr).includes(pg.password));
  return { ms: performance.now() - started, stdout: result.stdout };
}

test("append killed with SIGKILL at 10 moments: old rows or the whole load, and a re-run loads it exactly once", async () => {
  await using dir = await tempDir();
  await pg.psql("DROP TABLE IF EXISTS kill_target, kill_reference");
  await pg.psql("CREATE TABLE kill_target (id bigint, region text, amount numeric, label text)");
  await writeStaging(join(dir.path, "staging"), 1);
  await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(routine("append")));
  // what one complete load adds, for the checksums: the same files copied by psql into another table
  await pg.psql("CREATE TABLE kill_reference (LIKE kill_target)");
  for (let file = 0; file < FILES; file++) {
    await pg.psql(`\\copy kill_reference FROM '${join(dir.path, "staging", `part-${file}.csv`)}' CSV HEADER`);
  }
  const before = "SELECT -1::bigint, 'before', 0::numeric, 'a row from before'";
  const old = await checksum(before);
  const loaded = (times: number) =>
    checksum(`${before} UNION ALL SELECT r.* FROM kill_reference r, generate_series(1, ${times})`);
  const complete = await loaded(1);
  const reset = () => pg.psql(`TRUNCATE kill_target; INSERT INTO kill_target ${before}`);

  // one run that is not killed: how long a load takes here
  await reset();
  const { ms: runMs } = await timedRun(dir.path);
  assert.equal(await checksum("SELECT * FROM kill_target"), complete);

  const trials = 10;
  const outcomes: string[] = [];
  for (let i = 0; i < trials; i++) {
    await reset();
    const delay = killMoment(i, trials, runMs);
    await runAndKill(dir.path, delay);
    const after = await checksum("SELECT * FROM kill_target");
    assert.ok(
      after === old || after === complete,
      `trial ${i} (killed at ${delay} ms): ${after} is neither ${old} nor ${complete}`,
    );
    // a run that got to its end (or was killed before it began one) is over: the next run is a new one,
    // which appends the files again
    const ended = await runFinished(dir.path, "append") && after === complete;
    const rerun = await timedRun(dir.path);
    assert.equal(
      await checksum("SELECT * FROM kill_target"),
      ended ? await loaded(2) : complete,
      `trial ${i}: after the re-run`,
    );
    const how = ended
      ? "the run had ended"
      : after === old
      ? "killed before COMMIT; the re-run loaded the files"
      : "killed after COMMIT; the re-run skipped the load";
    if (!ended && after === complete) {
      assert.match(rerun.stdout, /load skipped: this run already committed it/);
    }
    outcomes.push(`${delay} ms: ${how}`);
  }
  console.log(`a load takes ~${Math.round(runMs)} ms; kills:\n  ${outcomes.join("\n  ")}`);
  // the trials are spread so that most kills land while the load runs
  assert.ok(outcomes.filter((o) => o.includes("before COMMIT")).length >= 3, outcomes.join("\n"));
});

test("replace killed with SIGKILL: the old data set or the whole new one, never a mix, never empty", async () => {
  await using dir = await tempDir();
  await pg.psql(
    "DROP TABLE IF EXISTS kill_target; CREATE TABLE kill_target (id bigint, region text, amount numeric, label text)",
  );
  await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(routine("replace")));
  const sets: string[] = [];
  for (const seed of [1, 2]) {
    await writeStaging(join(dir.path, "staging"), seed);
    await timedRun(dir.path);
    sets.push(await checksum("SELECT * FROM kill_target"));
  }
  assert.notEqual(sets[0], sets[1]);
  const { ms: runMs } = await timedRun(dir.path); // set 2 again: the same rows
  const trials = 3;
  let current = 1; // index of the data set the table holds
  for (let i = 0; i < trials; i++) {
    const next = 1 - current;
    await writeStaging(join(dir.path, "staging"), next + 1);
    const delay = killMoment(i, trials, runMs);
    await runAndKill(dir.path, delay);
    const after = await checksum("SELECT * FROM kill_target");
    assert.ok(
      after === sets[current] || after === sets[next],
      `trial ${i} (killed at ${delay} ms): ${after}`,
    );
    await timedRun(dir.path);
    assert.equal(await checksum("SELECT * FROM kill_target"), sets[next]);
    current = next;
  }
});

Deno.test({
  name: "(stop the PostgreSQL server)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => pg.stop(),
});
