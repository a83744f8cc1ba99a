/**
 * Errors that map to lakerun's exit codes: 2 for an invalid routine or command line, 1 for a failed task, 75
 * for a routine another run holds (nothing ran: try again later).
 *
 * @module
 */

/** Exit code of a successful run. */
export const EXIT_OK = 0;
/** Exit code when a task failed. */
export const EXIT_TASK_FAILED = 1;
/** Exit code for an invalid routine or command line; nothing ran. */
export const EXIT_INVALID = 2;
/**
 * Exit code when another run of the routine holds its lock: nothing ran, nothing failed, the next try may
 * run. sysexits.h's EX_TEMPFAIL ("not really an error … the request should be reattempted later"), what
 * moreutils' `lckdo` exits with when its lock is held; flock(1) makes it its own with `-E 75`.
 */
export const EXIT_BUSY = 75;

/** A bad command line. */
export class UsageError extends Error {
  readonly exitCode = EXIT_INVALID;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One problem found in a routine, located by file and JSON path. */
export interface RoutineProblem {
  /** `file:line:column` or the file alone. */
  where: string;
  /** The JSON path, e.g. `executors.DownloaderExecutor.params.unzip`. */
  path: string;
  message: string;
}

/**
 * The file, line and column of a problem's `where` (`file:line:col`, or the file alone).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { problemPlace } from "./errors.ts";
 *
 * assert.deepEqual(problemPlace("r.json:4:7"), { file: "r.json", line: 4, col: 7 });
 * assert.deepEqual(problemPlace("r.json"), { file: "r.json" });
 * ```
 */
export function problemPlace(where: string): { file: string; line?: number; col?: number } {
  const match = /^(.*):(\d+):(\d+)$/.exec(where);
  return match ? { file: match[1], line: Number(match[2]), col: Number(match[3]) } : { file: where };
}

/** An invalid routine: every problem found, one line each. */
export class RoutineError extends Error {
  readonly exitCode = EXIT_INVALID;
  readonly problems: RoutineProblem[];
  /** `problems`, each said once (a template may repeat a mistake at one place), in the file's order. */
  constructor(problems: RoutineProblem[]) {
    const lines = problems.map(formatProblem);
    const unique = problems.filter((_, i) => lines.indexOf(lines[i]) === i);
    // by line and column where both are known; the others keep their place among them
    const place = (problem: RoutineProblem) => {
      const { line, col } = problemPlace(problem.where);
      return line === undefined ? undefined : line * 1e6 + col!;
    };
    const placed = unique.filter((problem) => place(problem) !== undefined)
      .sort((a, b) => place(a)! - place(b)!);
    let next = 0;
    for (let i = 0; i < unique.length; i++) {
      if (place(unique[i]) !== undefined) unique[i] = placed[next++];
    }
    super(unique.map(formatProblem).join("\n"));
    this.name = "RoutineError";
    this.problems = unique;
  }
}

/**
 * Formats one problem as a single line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatProblem } from "./errors.ts";
 *
 * assert.equal(
 *   formatProblem({ where: "r.json:4:7", path: "executors.X", message: "unknown executor 'X'" }),
 *   "r.json:4:7: executors.X: unknown executor 'X'",
 * );
 * const unreadable = { where: "r.json", path: "", message: "cannot read routine file: no such file" };
 * assert.equal(formatProblem(unreadable), "r.json: cannot read routine file: no such file");
 * ```
 */
export function formatProblem(problem: RoutineProblem): string {
  return problem.path
    ? `${problem.where}: ${problem.path}: ${problem.message}`
    : `${problem.where}: ${problem.message}`;
}

/** A task that failed; the run stopped there. */
export class TaskFailedError extends Error {
  readonly exitCode = EXIT_TASK_FAILED;
  constructor(
    readonly stepId: string,
    readonly executor: string,
    readonly task: string,
    readonly reason: string,
  ) {
    super(`step ${JSON.stringify(stepId)} (${executor}) task '${task}' failed: ${reason}`);
    this.name = "TaskFailedError";
  }
}

/** Another run of the routine holds its lock: this run did not start. */
export class RoutineBusyError extends Error {
  readonly exitCode = EXIT_BUSY;
  constructor(readonly routineName: string, readonly lockFile: string) {
    super(
      `routine ${
        JSON.stringify(routineName)
      } is already running (lock held on ${lockFile}); this run did not start`,
    );
    this.name = "RoutineBusyError";
  }
}

/**
 * Exit code for any error: 2 for an invalid routine or command line, 75 for a routine already running, else 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exitCodeOf, RoutineBusyError, TaskFailedError, UsageError } from "./errors.ts";
 *
 * assert.equal(exitCodeOf(new UsageError("no routine given")), 2);
 * assert.equal(exitCodeOf(new TaskFailedError("a", "X", "t", "boom")), 1);
 * assert.equal(exitCodeOf(new RoutineBusyError("daily", ".lakerun/daily/run.lock")), 75);
 * assert.equal(exitCodeOf(new Error("anything else")), 1);
 * ```
 */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError || error instanceof RoutineError) return EXIT_INVALID;
  if (error instanceof RoutineBusyError) return EXIT_BUSY;
  return EXIT_TASK_FAILED;
}

/** The one-line (or, with `debug`, full) text shown for an error. */
export function describeError(error: unknown, debug: boolean): string {
  if (!(error instanceof Error)) return String(error);
  if (debug) return error.stack ?? error.message;
  return error.message;
}

/**
 * The closest candidate to `name` within a small edit distance, for "did you mean" hints.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nearestName } from "./errors.ts";
 *
 * const names = ["DownloaderExecutor", "StagingExecutor"];
 * assert.equal(nearestName("DownloadExecutor", names), "DownloaderExecutor");
 * assert.equal(nearestName("Foo", names), undefined); // nothing close
 * ```
 */
export function nearestName(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}
