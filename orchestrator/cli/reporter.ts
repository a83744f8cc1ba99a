/**
 * Turns step messages into short console output: one line per task, a summary of files and bytes moved,
 * and download progress (a live line on a terminal, a line every few seconds in CI logs).
 *
 * @module
 */
import type { Routine, Step } from "../routine/routine.ts";
import { formatBytes, formatDuration } from "../../lib/format.ts";
import type { StepMessage } from "../run/step_runtime.ts";

/** Receives everything that happens during a run. */
export interface Reporter {
  routineStarted(routine: Routine): void;
  stepStarted(step: Step, total: number): void;
  stepMessage(step: Step, message: StepMessage): void;
  routineFinished(ok: boolean, ms: number): void;
}

/** Options for {@link consoleReporter}. */
export interface ConsoleReporterOptions {
  /** Where lines go. Default: standard output. */
  write?: (line: string) => void;
  /** Where the live progress line goes; `undefined` when output is not a terminal. */
  progressLine?: (text: string) => void;
  /** Seconds between progress lines when output is not a terminal. Default 5. */
  progressInterval?: number;
  /** Include the stack of failures. */
  debug?: boolean;
}

/**
 * A reporter that prints to the console.
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
  const write = options.write ?? ((line: string) => console.log(line));
  const progressLine = options.progressLine;
  const interval = (options.progressInterval ?? 5) * 1000;
  let moved = { files: 0, bytes: 0 };
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
    routineStarted(routine) {
      write(
        `lakerun · ${routine.name} · ${routine.steps.length} step${routine.steps.length === 1 ? "" : "s"}`,
      );
    },
    stepStarted(step, total) {
      const label = step.id === step.executor.name ? step.id : `${step.id} (${step.executor.name})`;
      write(`[${step.index}/${total}] ${label}`);
    },
    stepMessage(_step, message) {
      switch (message.type) {
        case "task-start":
          moved = { files: 0, bytes: 0 };
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
            write(`    output ${event.name} = ${JSON.stringify(event.value)}`);
          } else {
            clearLive();
            write(`    ${event.message}`);
          }
          break;
        }
        case "task-end": {
          clearLive();
          const what = moved.files
            ? `  ${moved.files} file${moved.files === 1 ? "" : "s"}, ${formatBytes(moved.bytes)}`
            : "";
          write(`  ✓ ${message.task}${what}  ${formatDuration(message.ms)}`);
          break;
        }
        case "task-failed":
          clearLive();
          write(`  ✗ ${message.task} failed: ${message.error.message}`);
          if (options.debug && message.error.stack) write(message.error.stack);
          break;
      }
    },
    routineFinished(ok, ms) {
      clearLive();
      write(ok ? `✓ done in ${formatDuration(ms)}` : `✗ failed after ${formatDuration(ms)}`);
    },
  };
}

/** A live progress line on standard error, or `undefined` when standard error is not a terminal. */
export function terminalProgressLine(): ((text: string) => void) | undefined {
  if (!Deno.stderr.isTerminal()) return undefined;
  const encoder = new TextEncoder();
  return (text) => Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${text}`));
}
