/**
 * The identity of a routine run, kept in `<state>/<routine>/run.json` under the run lock: a run that did not
 * succeed (it failed, was interrupted, or was killed) is continued by the next one, which keeps its id; a run
 * that succeeded is followed by a new id. Tasks that start cloud jobs key their records on this id
 * (`lib/cloud/ledger.ts`), so a re-run reattaches to the jobs of the run it continues instead of starting
 * them again, and a routine run after a success starts fresh.
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
}

const FILE = "run.json";

/** A new run id: the start time, then random characters (sortable, unique). */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return `${stamp}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Starts an attempt: continues the recorded run unless it succeeded, else begins a new one; records it as
 * `running`. Call it under the routine's run lock.
 */
export async function beginRun(routineDir: string): Promise<RunState> {
  const previous = await readRunState(routineDir);
  const now = new Date();
  const state: RunState = previous && previous.status !== "succeeded"
    ? { ...previous, attempt: previous.attempt + 1, status: "running", attemptStarted: now.toISOString() }
    : {
      runId: newRunId(now),
      attempt: 1,
      status: "running",
      started: now.toISOString(),
      attemptStarted: now.toISOString(),
    };
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
