/**
 * The identity of a routine run, kept in `<state>/<routine>/run.json` under the run lock: a run that did not
 * succeed (it failed, was interrupted, or was killed) is continued by the next one, which keeps its id; a run
 * that succeeded is followed by a new id. Tasks that start cloud jobs key their records on this id
 * (`lib/cloud/ledger.ts`), so a re-run reattaches to the jobs of the run it continues instead of starting
 * them again, and a routine run after a success starts fresh. A run for another logical date (`--date`) is
 * another run: it starts fresh too. `--resume RUN_ID` continues the run it names, whichever run is recorded;
 * `--new-run` (`fresh`) begins a new one whatever run is recorded.
 *
 * @module
 */
import { join } from "node:path";

/** How a run ended, or `running` while it runs (and after it was killed). */
export type RunStatus = "running" | "succeeded" | "failed" | "interrupted";

/** The routine's current run. */
export interface RunState {
  /** Stays the same across the attempts of one run. */
  runId: string;
  /** 1 for a new run, then 2, 3… for each re-run of an unfinished one. */
  attempt: number;
  status: RunStatus;
  /** When the run's first attempt started (ISO 8601). */
  started: string;
  /** When this attempt started. */
  attemptStarted: string;
  /** The run's logical date (`YYYY-MM-DD`), when it has one. */
  date?: string;
}

/** Options for {@link beginRun}. */
export interface BeginRunOptions {
  /** The logical date of the run: a recorded run for another date is not continued. */
  date?: string;
  /** Begin a new run whatever run is recorded (`--new-run`). */
  fresh?: boolean;
  /** Continue this run (`--resume`), whatever run is recorded. */
  resume?: { runId: string; attempt: number; firstStarted: string; date?: string };
}

const FILE = "run.json";

/** A new run id: the start time, then random characters (sortable, unique). */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return `${stamp}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Starts an attempt: continues the recorded run unless it succeeded or was for another date, else begins a
 * new one (with `resume`: continues that run); records it as `running`. Call it under the routine's run lock.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { beginRun, endRun } from "./run_state.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const first = await beginRun(dir, { date: "2026-03-31" });
 * await endRun(dir, first, "failed");
 * const again = await beginRun(dir, { date: "2026-03-31" });
 * assert.deepEqual([again.runId, again.attempt], [first.runId, 2]); // the unfinished run continues
 * await endRun(dir, again, "failed");
 * const otherDate = await beginRun(dir, { date: "2026-06-30" });
 * assert.notEqual(otherDate.runId, first.runId); // another date is another run
 * await endRun(dir, otherDate, "succeeded");
 * const resumed = await beginRun(dir, { resume: { ...first, attempt: 2, firstStarted: first.started } });
 * assert.deepEqual([resumed.runId, resumed.attempt, resumed.date], [first.runId, 3, "2026-03-31"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function beginRun(routineDir: string, options: BeginRunOptions = {}): Promise<RunState> {
  const previous = await readRunState(routineDir);
  const now = new Date();
  const resume = options.resume;
  const date = resume ? resume.date : options.date;
  const state: RunState = resume
    ? {
      runId: resume.runId,
      attempt: Math.max(resume.attempt, previous?.runId === resume.runId ? previous.attempt : 0) + 1,
      status: "running",
      started: resume.firstStarted,
      attemptStarted: now.toISOString(),
    }
    : previous && !options.fresh && previous.status !== "succeeded" && previous.date === date
    ? { ...previous, attempt: previous.attempt + 1, status: "running", attemptStarted: now.toISOString() }
    : {
      runId: newRunId(now),
      attempt: 1,
      status: "running",
      started: now.toISOString(),
      attemptStarted: now.toISOString(),
    };
  if (date !== undefined) state.date = date;
  else delete state.date;
  await writeRunState(routineDir, state);
  return state;
}

/** Records how an attempt ended. */
export async function endRun(routineDir: string, state: RunState, status: RunStatus): Promise<void> {
  await writeRunState(routineDir, { ...state, status });
}

/** The recorded run, or `undefined` when there is none (or the file is unreadable). */
export async function readRunState(routineDir: string): Promise<RunState | undefined> {
  try {
    const value = JSON.parse(await Deno.readTextFile(join(routineDir, FILE)));
    return typeof value?.runId === "string" && typeof value?.attempt === "number"
      ? value as RunState
      : undefined;
  } catch {
    return undefined;
  }
}

async function writeRunState(routineDir: string, state: RunState): Promise<void> {
  const file = join(routineDir, FILE);
  const temporary = `${file}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(temporary, JSON.stringify(state, null, 2) + "\n");
  await Deno.rename(temporary, file);
}
