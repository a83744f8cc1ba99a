/**
 * Turns step messages into short console output: one line per task, a summary of files and bytes moved,
 * and download progress (a live line on a terminal, a line every few seconds in CI logs).
 *
 * @module
 */
import type { Routine, Step } from "../routine/routine.ts";
import { formatBytes, formatDuration, plural } from "../../lib/format.ts";
import type { StepMessage } from "../run/step_runtime.ts";
import type { SecretMask } from "../../lib/mask.ts";
import { printable, printableLines } from "../routine/json.ts";
import { defuseCommands } from "./workflow_commands.ts";

/** Receives everything that happens during a run. */
export interface Reporter {
  routineStarted(routine: Routine): void;
  stepStarted(step: Step, total: number): void;
  stepMessage(step: Step, message: StepMessage): void;
  routineFinished(ok: boolean, ms: number): void;
  /** A failed attempt of `step` will be retried: attempt `attempt` (2, 3…) starts in `delayMs`. */
  stepRetry?(step: Step, attempt: number, delayMs: number, error: Error): void;
  /**
   * `step` does not run: a step it depends on failed or was skipped, or `--resume` found it done — then with
   * the outputs it reported when it ran, which later steps get.
   */
  stepSkipped?(
    step: Step,
    reason: string,
    outputs?: Readonly<Record<string, string | number | boolean>>,
  ): void;
  /** Something the user should know that does not fail the run (a `continue_on_error` failure, a changed step on `--resume`). */
  warning?(message: string, step?: Step): void;
  /** The run has its id (and logical date): called before {@link Reporter.routineStarted}. */
  runStarted?(run: RunInfo): void;
}

/** The identity of a run, for reporters that print or write it (JSON logs, the GitHub job summary). */
export interface RunInfo {
  /** The run id (kept across the attempts of one run). */
  runId: string;
  /** 1, then 2, 3… for each re-run of a run that did not succeed. */
  attempt?: number;
  /** The run's logical date (`YYYY-MM-DD`). */
  date?: string;
}

/**
 * The line saying that a run continues one that did not succeed (attempt 2, 3…), and what that means: the
 * cloud jobs and loads it completed are found in its journals and not done again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { continuedLine } from "./reporter.ts";
 *
 * assert.equal(
 *   continuedLine({ runId: "20261201T020000Z-1a2b3c4d", attempt: 2, date: "2026-11-30" }),
 *   "↻ attempt 2 of run 20261201T020000Z-1a2b3c4d (2026-11-30), which did not succeed: what it completed on " +
 *     "AWS and in databases is not done again (--new-run starts a new run)",
 * );
 * ```
 */
export function continuedLine(run: RunInfo): string {
  return `↻ attempt ${run.attempt} of run ${run.runId}${run.date ? ` (${run.date})` : ""}, which did not ` +
    "succeed: what it completed on AWS and in databases is not done again (--new-run starts a new run)";
}

/** `text` with every line but its first starting with `indent`, so that it reads as one item under the first. */
function indented(text: string, indent: string): string {
  return text.replaceAll("\n", `\n${indent}`);
}

/**
 * Makes the reporter whose lines another reporter places (GitHub mode's groups): `grouped` when each step's
 * lines are shown apart from other steps'.
 */
export type InnerReporter = (write: (line: string) => void, options: { grouped: boolean }) => Reporter;

/** Options for {@link consoleReporter}. */
export interface ConsoleReporterOptions {
  /** Where lines go. Default: standard output. */
  write?: (line: string) => void;
  /**
   * Each step's lines are shown apart (GitHub groups): a line of a step is not preceded by its header again
   * when another step's lines came between.
   */
  grouped?: boolean;
  /** Where the live progress line goes; `undefined` when output is not a terminal. */
  progressLine?: (text: string) => void;
  /** Seconds between progress lines when output is not a terminal. Default 5. */
  progressInterval?: number;
  /** Include the stack of failures. */
  debug?: boolean;
  /** Secret values to replace with `***` in every line (progress lines included). */
  mask?: SecretMask;
  /** The run's signal: a run that ends once it is aborted (SIGINT, SIGTERM) ends `interrupted`, not `failed`. */
  signal?: AbortSignal;
}

/**
 * A reporter that prints to the console. Names (routine, steps, tasks, outputs) are printed with their control
 * characters escaped (they are refused in routines), and no line it prints can start a workflow command.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRoutine } from "../routine/routine.ts";
 * import { consoleReporter } from "./reporter.ts";
 *
 * const params = { parent_directory: "landing", dump_directory: "staging" };
 * const text = JSON.stringify({
 *   routine_name: "staging",
 *   executors: { StagingExecutor: { params, tasks: ["transfer"] } },
 * });
 * const routine = await parseRoutine(text, { file: "/work/staging.json", label: "staging.json" });
 * const [step] = routine.steps;
 *
 * const lines: string[] = [];
 * const reporter = consoleReporter({ write: (line) => lines.push(line) });
 * reporter.routineStarted(routine);
 * reporter.stepStarted(step, 1);
 * reporter.stepMessage(step, { type: "task-start", task: "transfer" });
 * reporter.stepMessage(step, { type: "task-end", task: "transfer", ms: 12 });
 * reporter.routineFinished(true, 1234);
 * assert.deepEqual(lines, [
 *   "lakerun · staging · 1 step",
 *   "[1/1] StagingExecutor",
 *   "  ✓ transfer  12 ms",
 *   "✓ done in 1.2 s",
 * ]);
 * ```
 */
export function consoleReporter(options: ConsoleReporterOptions = {}): Reporter {
  const mask = options.mask;
  const print = options.write ?? ((line: string) => console.log(line));
  const write = (line: string) => print(defuseCommands(mask ? mask.mask(line) : line));
  const rawProgressLine = options.progressLine;
  const progressLine = rawProgressLine && mask
    ? (text: string) => rawProgressLine(mask.mask(text))
    : rawProgressLine;
  const interval = (options.progressInterval ?? 5) * 1000;
  let moved = { files: 0, bytes: 0 };
  // steps that run at the same time (depends_on) interleave: a line of another step than the last one shown
  // is preceded by that step's header again, and each step counts what it moved
  const movedBy = new Map<string, typeof moved>();
  let continued: RunInfo | undefined; // the run this one continues, said under the header
  // the step whose lines were the last ones shown; null after a skip line (whatever comes next is headed)
  let shownStep: string | null | undefined;
  let stepCount = 0;
  const stepLabel = (step: Step) =>
    step.id === step.executor.name
      ? printable(step.id)
      : `${printable(step.id)} (${printable(step.executor.name)})`;
  const stepHeader = (step: Step) => `[${step.index}/${stepCount}] ${stepLabel(step)}`;
  const showStep = (step: Step) => {
    if (shownStep !== undefined && shownStep !== step.id && !options.grouped) write(`${stepHeader(step)} …`);
    shownStep = step.id;
  };
  let progress: { started: number; lastLine: number; lastDraw: number } | undefined;
  let liveLineShown = false;

  const clearLive = () => {
    if (liveLineShown && progressLine) {
      progressLine("");
      liveLineShown = false;
    }
  };
  const showProgress = (bytes: number, total: number | undefined, label: string | undefined) => {
    const now = performance.now();
    progress ??= { started: now, lastLine: now, lastDraw: -Infinity };
    const seconds = Math.max((now - progress.started) / 1000, 0.001);
    const rate = bytes / seconds;
    const parts = [
      `    ${label ?? "progress"}: ${formatBytes(bytes)}${total ? ` of ${formatBytes(total)}` : ""}`,
    ];
    parts.push(`${formatBytes(rate)}/s`);
    if (total && rate > 0 && bytes < total) {
      parts.push(`ETA ${formatDuration(((total - bytes) / rate) * 1000)}`);
    }
    const text = parts.join("  ");
    if (progressLine) {
      if (now - progress.lastDraw > 100) {
        progressLine(text);
        liveLineShown = true;
        progress.lastDraw = now;
      }
    } else if (now - progress.lastLine >= interval) {
      write(text);
      progress.lastLine = now;
    }
  };

  return {
    runStarted(run) {
      continued = (run.attempt ?? 1) > 1 ? run : undefined;
    },
    routineStarted(routine) {
      stepCount = routine.steps.length;
      write(`lakerun · ${printable(routine.name)} · ${plural(routine.steps.length, "step")}`);
      if (continued) write(continuedLine(continued));
    },
    stepStarted(step, total) {
      stepCount = total;
      shownStep = step.id;
      write(stepHeader(step));
    },
    stepMessage(step, message) {
      const event = message.type === "event" ? message.event.type : undefined;
      const writes = message.type === "task-end" || message.type === "task-failed" || event === "log" ||
        event === "output";
      if (writes) {
        clearLive();
        showStep(step);
      }
      moved = movedBy.get(step.id) ?? moved;
      switch (message.type) {
        case "task-start":
          moved = { files: 0, bytes: 0 };
          movedBy.set(step.id, moved);
          progress = undefined;
          break;
        case "event": {
          const event = message.event;
          if (event.type === "progress") showProgress(event.bytes, event.total, event.label);
          else if (event.type === "moved") {
            moved.files += event.files;
            moved.bytes += event.bytes;
          } else if (event.type === "output") {
            clearLive();
            write(`    output ${printable(event.name)} = ${JSON.stringify(event.value)}`);
          } else {
            clearLive();
            write(`    ${indented(printableLines(event.message), "    ")}`);
          }
          break;
        }
        case "task-end": {
          clearLive();
          const what = moved.files
            ? `  ${moved.files} file${moved.files === 1 ? "" : "s"}, ${formatBytes(moved.bytes)}`
            : "";
          write(`  ✓ ${printable(message.task)}${what}  ${formatDuration(message.ms)}`);
          break;
        }
        case "task-failed":
          clearLive();
          // a message may quote data (a database's error quoting a value): its controls are escaped
          // its other lines (a database's DETAIL and HINT) indented under it
          write(
            `  ✗ ${printable(message.task)} failed: ${
              indented(printableLines(message.error.message), "      ")
            }`,
          );
          if (options.debug && message.error.stack) write(printableLines(message.error.stack));
          break;
      }
    },
    routineFinished(ok, ms) {
      clearLive();
      const how = ok ? "done in" : options.signal?.aborted ? "interrupted after" : "failed after";
      write(`${ok ? "✓" : "✗"} ${how} ${formatDuration(ms)}`);
    },
    stepRetry(step, attempt, delayMs) {
      clearLive();
      showStep(step);
      write(`  ↻ retry: attempt ${attempt} of ${step.options.retries + 1} in ${formatDuration(delayMs)}`);
    },
    stepSkipped(step, reason) {
      clearLive();
      stepCount ||= step.index;
      shownStep = null;
      write(`${stepHeader(step)} skipped: ${indented(printableLines(reason), "    ")}`);
    },
    warning(message) {
      clearLive();
      write(`! ${indented(printableLines(message), "  ")}`);
    },
  };
}

/** A live progress line on standard error, or `undefined` when standard error is not a terminal. */
export function terminalProgressLine(): ((text: string) => void) | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  const encoder = new TextEncoder();
  return (text) => Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${text}`));
}
