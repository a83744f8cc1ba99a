/**
 * Run records: what happened in each run of a routine, one JSON file per run id at
 * `<state>/<routine>/runs/<runId>.json`, rewritten atomically (a temporary file renamed over it) each time a
 * step or task starts or ends and each time a task reports an output. A run killed with SIGKILL thus leaves a
 * record that says `running`; {@link listRuns} and {@link findResumableRun} report such a record as
 * `interrupted` once no process holds the routine's run lock, and the next run rewrites it so on disk.
 *
 * A record holds the run id (kept across the attempts of a run, see run_state.ts), a hash of the routine, the
 * logical date, and per step: its status, times, the hash of its resolved params, its tasks, its outputs and
 * its error. Secret values are never stored: the whole text passes through the run's {@link SecretMask}
 * before it is written, and the params are hashed with their secrets masked (so rotating a password does not
 * count as a change of params). An output that held a secret is thus stored as `***`, which is not its value:
 * `--resume` runs such a step again rather than hand `***` on ({@link resumeRerunReasons}).
 *
 * @module
 */
import { join } from "node:path";
import { formatDuration } from "../../lib/format.ts";
import type { SecretMask } from "../../lib/mask.ts";
import { RoutineBusyError, UsageError } from "../errors.ts";
import type { Routine } from "../routine/routine.ts";
import { routineStateDir, runLockFile } from "./permissions.ts";
import { sha256Hex } from "../../lib/sha256.ts";
import { canonicalJson } from "../../lib/canonical_json.ts";

/** How a run ended, or `running` while it runs (and after it was killed, until {@link listRuns} reads it). */
export type RunStatus = "running" | "succeeded" | "failed" | "interrupted";

/** Where a step stands. */
export type StepStatus = "pending" | "running" | "succeeded" | "failed" | "skipped";

/** Where a task stands (tasks after a failed one stay `pending`). */
export type TaskStatus = "pending" | "running" | "succeeded" | "failed";

/** One task of a step, in its last try. */
export interface TaskRecord {
  status: TaskStatus;
  /** ISO 8601. */
  started?: string;
  ended?: string;
  /** Why it failed (masked). */
  error?: string;
}

/** A value a task reported for later steps (`{ type: "output" }`). */
export type OutputValue = string | number | boolean;

/** One step of a run. */
export interface StepRecord {
  status: StepStatus;
  /** The executor the step ran. */
  executor: string;
  /** The step's tasks as listed in the routine, in order (older records lack it: their `tasks` keys serve). */
  taskList?: string[];
  /** sha256 of the step's resolved params (canonical JSON, secrets masked), set once the step started. */
  paramsHash?: string;
  started?: string;
  ended?: string;
  /** How many times the step ran in its attempt (1, then 2… with `retries`). */
  tries?: number;
  /** The attempt of the run this result comes from: a step skipped by `--resume` keeps the earlier one. */
  attempt?: number;
  tasks: Record<string, TaskRecord>;
  outputs: Record<string, OutputValue>;
  /** Why it failed or was skipped (masked). */
  error?: string;
  /** Set on a failed step whose failure did not fail the run. */
  continueOnError?: boolean;
}

/** One run of a routine. */
export interface RunRecord {
  /** Format of the record. */
  version: 1;
  runId: string;
  /** The routine's name. */
  routine: string;
  /** The routine file the run was started from, as named on the command line. */
  routineFile?: string;
  /** The same, as an absolute path. */
  routinePath?: string;
  /** sha256 of the routine as validated (steps, executors, params before templates, tasks, options). */
  routineHash: string;
  /** The run's logical date (`YYYY-MM-DD`), when it has one. */
  date?: string;
  status: RunStatus;
  /** 1 for the first attempt of the run, 2, 3… for each re-run or `--resume` of it. */
  attempt: number;
  /** When this attempt started (ISO 8601). */
  started: string;
  /** When the run's first attempt started. */
  firstStarted: string;
  /** When this attempt ended. */
  ended?: string;
  /** The most steps the attempt ran at once (`--max-parallel`, 1 in file order). */
  maxParallel: number;
  steps: Record<string, StepRecord>;
  /** Why the run failed or stopped (masked). */
  error?: string;
}

/** What `--resume` compares a succeeded step's record with: the step as it would run now. */
export interface StepNow {
  /** sha256 of its resolved params ({@link hashOf}, secrets masked). */
  paramsHash: string;
  /** Its executor's name. */
  executor: string;
  /** Its tasks, in order. */
  tasks: readonly string[];
}

/**
 * Why `--resume` must run again a step that succeeded in the run it continues (`previous`), or `[]` when
 * the step may be skipped, its recorded outputs handed on. `changed` are changes since then (its executor, its
 * tasks or their order, its resolved params): its record says nothing of what the step would do now;
 * `secretOutputs` names the outputs whose record was masked — a value that held a secret is stored
 * as `***` and cannot be handed on. Masking is seen in the record itself: any `***` in an output's name or
 * value (a value that really holds `***` costs a needless re-run, never a wrong value).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resumeRerunReasons } from "./records.ts";
 *
 * const previous = {
 *   status: "succeeded" as const, executor: "X", taskList: ["transfer"], paramsHash: "p1",
 *   tasks: { transfer: { status: "succeeded" as const } }, outputs: { rows: 3, url: "https://h/a" },
 * };
 * const now = { executor: "X", tasks: ["transfer"], paramsHash: "p1" };
 * assert.deepEqual(resumeRerunReasons(previous, now), { changed: [], secretOutputs: [] });
 * assert.deepEqual(resumeRerunReasons(previous, { ...now, paramsHash: "p2" }).changed, ["its resolved params changed"]);
 * assert.deepEqual(resumeRerunReasons(previous, { ...now, tasks: ["transfer", "post_staging"] }).changed, [
 *   "its tasks changed (transfer → transfer, post_staging)",
 * ]);
 * assert.deepEqual(resumeRerunReasons(previous, { ...now, executor: "Y" }).changed, ["its executor changed (X → Y)"]);
 * const masked = { ...previous, outputs: { rows: 3, token: "Bearer ***" } };
 * assert.deepEqual(resumeRerunReasons(masked, now).secretOutputs, ["token"]);
 * ```
 */
export function resumeRerunReasons(
  previous: StepRecord,
  now: StepNow,
): { changed: string[]; secretOutputs: string[] } {
  const changed: string[] = [];
  if (previous.executor !== now.executor) {
    changed.push(`its executor changed (${previous.executor} → ${now.executor})`);
  }
  // records from before taskList: the tasks' keys, in the order the step listed them
  const before = previous.taskList ?? Object.keys(previous.tasks ?? {});
  if (before.join("\n") !== now.tasks.join("\n")) {
    changed.push(`its tasks changed (${before.join(", ") || "none"} → ${now.tasks.join(", ")})`);
  }
  if (previous.paramsHash !== now.paramsHash) changed.push("its resolved params changed");
  const secretOutputs = Object.entries(previous.outputs ?? {})
    .filter(([name, value]) => name.includes(MASKED) || String(value).includes(MASKED))
    .map(([name]) => name);
  return { changed, secretOutputs };
}

/** What a {@link SecretMask} puts in place of a secret. */
const MASKED = "***";

/**
 * The outputs as the run record stores them: a value that holds a secret becomes its masked text, a string
 * even where the value was a number or a boolean (so that the record stays JSON).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SecretMask } from "../../lib/mask.ts";
 * import { recordedOutputs } from "./records.ts";
 *
 * const mask = new SecretMask();
 * mask.add("4242");
 * assert.deepEqual(
 *   recordedOutputs({ pin: 4242, url: "https://h/?key=4242", rows: 3, ok: true }, mask),
 *   { pin: "***", url: "https://h/?key=***", rows: 3, ok: true },
 * );
 * ```
 */
export function recordedOutputs(
  outputs: Readonly<Record<string, OutputValue>>,
  mask?: SecretMask,
): Record<string, OutputValue> {
  if (!mask) return { ...outputs };
  return Object.fromEntries(
    Object.entries(outputs).map(([name, value]) => {
      const text = String(value);
      const masked = mask.mask(text);
      return [mask.mask(name), masked === text ? value : masked];
    }),
  );
}

/** The folder of a routine's run records. */
export function runsDir(stateRoot: string, routineName: string): string {
  return join(routineStateDir(stateRoot, routineName), "runs");
}

/** The shape of a run id: letters, digits, `-` and `_` (never a path). */
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

/**
 * sha256 (hex) of `value` as canonical JSON (object keys sorted), after `mask` replaced its secret values.
 *
 * @example The order of keys does not matter; values do; secrets are masked before hashing
 * ```ts
 * import assert from "node:assert/strict";
 * import { SecretMask } from "../../lib/mask.ts";
 * import { hashOf } from "./records.ts";
 *
 * assert.equal(hashOf({ a: 1, b: [2, { c: 3 }] }), hashOf({ b: [2, { c: 3 }], a: 1 }));
 * assert.notEqual(hashOf({ a: 1 }), hashOf({ a: 2 }));
 * const mask = new SecretMask();
 * mask.add("hunter2-old");
 * mask.add("hunter2-new");
 * assert.equal(hashOf({ password: "hunter2-old" }, mask), hashOf({ password: "hunter2-new" }, mask));
 * assert.match(hashOf({}), /^[0-9a-f]{64}$/);
 * ```
 */
export function hashOf(value: unknown, mask?: SecretMask): string {
  const text = canonicalJson(value);
  return sha256Hex(mask ? mask.mask(text) : text);
}

/** The hash of a routine as validated: what its steps are, run with which params, tasks and options. */
export function routineHash(routine: Routine, mask?: SecretMask): string {
  return hashOf(
    {
      name: routine.name,
      aws: routine.aws ?? null,
      s3: routine.s3 ?? null,
      steps: routine.steps.map((step) => ({
        id: step.id,
        executor: step.executor.name,
        params: step.params,
        tasks: step.tasks,
        options: step.options,
      })),
    },
    mask,
  );
}

/**
 * Keeps a run's record on disk while the run changes it: each {@link RunRecorder.update} schedules an atomic
 * rewrite; writes never overlap, and changes made while one is in flight are written by the next.
 */
export class RunRecorder {
  readonly #file: string;
  readonly #mask?: SecretMask;
  #writing: Promise<void> = Promise.resolve();
  #dirty = false;
  #busy = false;
  #error: unknown;

  private constructor(readonly record: RunRecord, file: string, mask?: SecretMask) {
    this.#file = file;
    this.#mask = mask;
  }

  /** Writes `record` as the run's record under `stateRoot` and returns the recorder that keeps it. */
  static async start(stateRoot: string, record: RunRecord, mask?: SecretMask): Promise<RunRecorder> {
    if (!RUN_ID.test(record.runId)) throw new Error(`invalid run id ${JSON.stringify(record.runId)}`);
    const dir = runsDir(stateRoot, record.routine);
    await Deno.mkdir(dir, { recursive: true });
    const recorder = new RunRecorder(record, join(dir, `${record.runId}.json`), mask);
    recorder.update(() => {});
    await recorder.flush();
    return recorder;
  }

  /** Changes the record and schedules its rewrite. */
  update(change: (record: RunRecord) => void): void {
    change(this.record);
    this.#dirty = true;
    if (!this.#busy) this.#writing = this.#drain();
  }

  /** Waits until every change is on disk; throws the last write error, if any. */
  async flush(): Promise<void> {
    await this.#writing;
    if (this.#error !== undefined) {
      const error = this.#error;
      this.#error = undefined;
      throw error;
    }
  }

  async #drain(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#dirty) {
        this.#dirty = false;
        const text = JSON.stringify(this.record, null, 2) + "\n";
        try {
          await writeAtomically(this.#file, this.#mask ? this.#mask.mask(text) : text);
        } catch (error) {
          this.#error = error;
        }
      }
    } finally {
      this.#busy = false;
    }
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeTextFile(temporary, text);
    await Deno.rename(temporary, file);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/**
 * Every run record of the routine, newest attempt first. A record still marked `running` whose run no process
 * holds (lakerun was killed) is returned as `interrupted`; unreadable files are left out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listRuns, runsDir } from "./records.ts";
 *
 * const stateRoot = await Deno.makeTempDir();
 * assert.deepEqual(await listRuns(stateRoot, "daily"), []);
 * const record = {
 *   version: 1, runId: "20260101T000000Z-0123abcd", routine: "daily", routineHash: "0".repeat(64),
 *   status: "running", attempt: 1, started: "2026-01-01T00:00:00.000Z", firstStarted: "2026-01-01T00:00:00.000Z",
 *   maxParallel: 1, steps: {},
 * };
 * await Deno.mkdir(runsDir(stateRoot, "daily"), { recursive: true });
 * await Deno.writeTextFile(`${runsDir(stateRoot, "daily")}/${record.runId}.json`, JSON.stringify(record));
 * const [run] = await listRuns(stateRoot, "daily");
 * assert.equal(run.status, "interrupted"); // no process runs it: it was killed
 * await Deno.remove(stateRoot, { recursive: true });
 * ```
 */
export async function listRuns(stateRoot: string, routineName: string): Promise<RunRecord[]> {
  const dir = runsDir(stateRoot, routineName);
  const records: RunRecord[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const record = await readRecord(join(dir, entry.name));
      if (record && record.routine === routineName) records.push(record);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (
    records.some((record) => record.status === "running") && !(await routineIsRunning(stateRoot, routineName))
  ) {
    for (const record of records) if (record.status === "running") markKilled(record);
  }
  return records.sort((a, b) => b.started.localeCompare(a.started) || b.runId.localeCompare(a.runId));
}

/**
 * Whether `record` is of a run started from the routine file `path` (absolute), so one a plain run of that file
 * may continue: recorded from that path, or from a path where no file is any more (the file was moved or
 * renamed), or recorded before records named their file. Another file that uses the same `routine_name` (a
 * copy edited for a test) shares the routine's lock and history, but never continues its runs: a failed run of
 * one "completed" by the other would leave its loads to be done again, twice, on its next run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startedFrom } from "./records.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.json`, "{}");
 * assert.ok(startedFrom({ routinePath: `${dir}/a.json` }, `${dir}/a.json`));
 * assert.ok(!startedFrom({ routinePath: `${dir}/a.json` }, `${dir}/b.json`)); // a.json is another routine file
 * assert.ok(startedFrom({ routinePath: `${dir}/gone.json` }, `${dir}/b.json`)); // gone.json was renamed b.json
 * assert.ok(startedFrom({}, `${dir}/b.json`)); // an older record
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function startedFrom(record: Pick<RunRecord, "routinePath">, path: string): boolean {
  if (record.routinePath === undefined || record.routinePath === path) return true;
  try {
    Deno.statSync(record.routinePath);
    return false;
  } catch {
    return true;
  }
}

/**
 * The run `--resume` continues: the run `runId` (which must exist and not have succeeded), or without
 * `runId` the newest failed or interrupted run (`undefined` when there is none).
 *
 * @throws {UsageError} `runId` names no run of the routine, or a run that succeeded.
 * @throws {RoutineBusyError} the routine is running (its records are not settled; exit 75).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findResumableRun } from "./records.ts";
 *
 * const stateRoot = await Deno.makeTempDir();
 * assert.equal(await findResumableRun(stateRoot, "daily"), undefined);
 * await assert.rejects(findResumableRun(stateRoot, "daily", "20260101T000000Z-0123abcd"), /no run/);
 * await Deno.remove(stateRoot, { recursive: true });
 * ```
 */
export async function findResumableRun(
  stateRoot: string,
  routineName: string,
  runId?: string,
): Promise<RunRecord | undefined> {
  // while the routine runs, its newest record says `running` and what it continues is not settled: exit 75
  if (await routineIsRunning(stateRoot, routineName)) {
    throw new RoutineBusyError(routineName, runLockFile(stateRoot, routineName));
  }
  const runs = await listRuns(stateRoot, routineName);
  if (runId === undefined) {
    return runs.find((run) => run.status === "failed" || run.status === "interrupted");
  }
  const run = RUN_ID.test(runId) ? runs.find((candidate) => candidate.runId === runId) : undefined;
  const list = `see 'lakerun runs' for the routine's runs`;
  if (!run) {
    throw new UsageError(
      `no run ${JSON.stringify(runId)} of routine ${JSON.stringify(routineName)} (${list})`,
    );
  }
  if (run.status === "succeeded") {
    throw new UsageError(`run ${JSON.stringify(runId)} succeeded: there is nothing to resume (${list})`);
  }
  return run;
}

/**
 * The run `lakerun run --resume [RUN_ID]` continues: {@link findResumableRun}, or a {@link UsageError} (exit 2)
 * when the routine has no failed or interrupted run.
 */
export async function runToResume(
  stateRoot: string,
  routineName: string,
  runId?: string,
): Promise<RunRecord> {
  const run = await findResumableRun(stateRoot, routineName, runId);
  if (!run) {
    throw new UsageError(
      `routine ${
        JSON.stringify(routineName)
      } has no failed or interrupted run to resume (see 'lakerun runs')`,
    );
  }
  return run;
}

/** The record at `file`, or `undefined` when it is unreadable or not a run record. */
async function readRecord(file: string): Promise<RunRecord | undefined> {
  try {
    const value = JSON.parse(await Deno.readTextFile(file));
    const ok = value?.version === 1 && typeof value.runId === "string" && typeof value.routine === "string" &&
      typeof value.started === "string" && typeof value.steps === "object" && value.steps !== null;
    return ok ? value as RunRecord : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a process holds the routine's run lock. Probed with a shared lock, held for an instant: a run that
 * starts in that instant is told the routine is busy.
 */
async function routineIsRunning(stateRoot: string, routineName: string): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(runLockFile(stateRoot, routineName), {
      read: true,
      write: true,
    });
  } catch {
    return false;
  }
  try {
    if (!(await file.tryLock(false))) return true;
    await file.unlock();
    return false;
  } finally {
    file.close();
  }
}

/** Rewrites as `interrupted` every record of the routine still marked `running` except `current`'s. */
export async function markKilledRuns(stateRoot: string, routineName: string, current: string): Promise<void> {
  const dir = runsDir(stateRoot, routineName);
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!entry.isFile || !entry.name.endsWith(".json")) continue;
    const file = join(dir, entry.name);
    const record = await readRecord(file);
    if (record?.status !== "running" || record.runId === current) continue;
    markKilled(record);
    await writeAtomically(file, JSON.stringify(record, null, 2) + "\n").catch(() => {});
  }
}

/** A record left `running` by a killed lakerun, as `interrupted`, its running steps and tasks failed. */
function markKilled(record: RunRecord): void {
  record.status = "interrupted";
  record.error ??= "lakerun was killed while the run was running";
  for (const step of Object.values(record.steps)) {
    if (step.status !== "running") continue;
    step.status = "failed";
    step.error ??= "lakerun was killed while the step was running";
    for (const task of Object.values(step.tasks)) {
      if (task.status === "running") Object.assign(task, { status: "failed", error: "lakerun was killed" });
    }
  }
}

/** How many steps of a run succeeded, failed, were skipped, and never ran. */
export function stepCounts(
  record: RunRecord,
): { ok: number; failed: number; skipped: number; pending: number } {
  const counts = { ok: 0, failed: 0, skipped: 0, pending: 0 };
  for (const step of Object.values(record.steps)) {
    if (step.status === "succeeded") counts.ok++;
    else if (step.status === "failed") counts.failed++;
    else if (step.status === "skipped") counts.skipped++;
    else counts.pending++;
  }
  return counts;
}

/**
 * The lines of `lakerun runs`: a table of runs, newest first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runsTable } from "./records.ts";
 *
 * const step = (status: "succeeded" | "failed" | "skipped") => ({ status, executor: "X", tasks: {}, outputs: {} });
 * const lines = runsTable([{
 *   version: 1, runId: "20260101T000000Z-0123abcd", routine: "daily", routineHash: "", date: "2025-12-31",
 *   status: "failed", attempt: 2, started: "2026-01-01T00:00:00.000Z", firstStarted: "2026-01-01T00:00:00.000Z",
 *   ended: "2026-01-01T00:00:01.500Z", maxParallel: 1,
 *   steps: { a: step("succeeded"), b: step("failed"), c: step("skipped") },
 * }]);
 * assert.deepEqual(lines, [
 *   "RUN ID                     DATE        STATUS       STARTED (UTC)        DURATION  STEPS OK/FAILED/SKIPPED",
 *   "20260101T000000Z-0123abcd  2025-12-31  failed (#2)  2026-01-01 00:00:00  1.5 s     1/1/1",
 * ]);
 * ```
 */
export function runsTable(records: readonly RunRecord[]): string[] {
  const rows = records.map((record) => {
    const counts = stepCounts(record);
    const ended = record.ended ? Date.parse(record.ended) : undefined;
    return [
      record.runId,
      record.date ?? "-",
      record.attempt > 1 ? `${record.status} (#${record.attempt})` : record.status,
      record.started.replace("T", " ").replace(/\.\d+Z$|Z$/, ""),
      ended === undefined ? "-" : formatDuration(ended - Date.parse(record.started)),
      `${counts.ok}/${counts.failed}/${counts.skipped}${
        counts.pending ? ` (${counts.pending} not run)` : ""
      }`,
    ];
  });
  const header = ["RUN ID", "DATE", "STATUS", "STARTED (UTC)", "DURATION", "STEPS OK/FAILED/SKIPPED"];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  return [header, ...rows].map((row) =>
    row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join("  ")
  );
}
