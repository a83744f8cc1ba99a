/**
 * How a run is logged: `--log-format text` (the console reporter, the default) or `--log-format json` (one JSON
 * object per line on standard output, for log collectors), `--quiet` (only errors and the last line), and,
 * when `GITHUB_ACTIONS=true`, GitHub Actions mode on top of either (see github.ts). {@link LogSession} puts
 * them together for one lakerun command.
 *
 * A JSON line holds `time` (ISO 8601), `level` (`info`, `warn`, `error`), `run_id`, `routine`, `step`, `task`
 * (when they apply), `event`, `message`, and the figures that apply: `ms`, `files`, `bytes`; some events add
 * fields of their own. Events: `run_started` (`date`, the run's logical date when it has one; `attempt` 2,
 * 3… when the run continues one that did not succeed), `step_started`, `task_started`, `log`, `output` (`name`, `value`), `task_finished`, `task_failed`,
 * `step_finished` (`status`: `succeeded`, or `failed` after `task_failed`, then maybe `step_retry`),
 * `step_retry` (`attempt`, `delay_ms`), `step_skipped`, `warning` (with `step` when it is about one), `invalid` (`file`, `line`,
 * `col`, `path`: a validation problem), `error`, and last `run_finished` (`status`: `succeeded`, `failed`,
 * `interrupted`, `invalid`: an invalid routine or command line, whatever exits 2, or `busy`: another run held
 * the routine's lock, exit 75). Progress is never logged
 * as JSON (it stays a live line on terminals in text mode). Secret values are masked in every string.
 *
 * @module
 */
import { formatBytes, formatDuration, plural } from "../../lib/format.ts";
import type { SecretMask } from "../../lib/mask.ts";
import { formatProblem, problemPlace, type RoutineProblem } from "../errors.ts";
import type { Routine, Step } from "../routine/routine.ts";
import { printable } from "../routine/json.ts";
import type { StepMessage } from "../run/step_runtime.ts";
import { failureStatus, GitHubRun } from "./github.ts";
import type { InnerReporter, Reporter, RunInfo } from "./reporter.ts";

/** The values of `--log-format`. */
export const LOG_FORMATS = ["text", "json"] as const;

/** A value of `--log-format`. */
export type LogFormat = typeof LOG_FORMATS[number];

/** How a run ended, as `run_finished` says it. */
export type FinalStatus = "succeeded" | "failed" | "interrupted" | "invalid" | "busy";

/** Options for {@link jsonLogReporter}. */
export interface JsonLogOptions {
  /** Where lines go. Default: standard output. */
  write?: (line: string) => void;
  /** Secret values, masked in every string of every line. */
  mask?: SecretMask;
  /** Only errors and the last line. */
  quiet?: boolean;
  /** Tells `interrupted` from `failed` in the last line. */
  signal?: AbortSignal;
  /** The clock (tests). */
  now?: () => Date;
  /** Called after the last line (`run_finished`). */
  onFinished?: () => void;
}

/** Fields of one JSON line besides `time`, `level`, `run_id` and `routine`. */
type Fields = Record<string, string | number | boolean | null | undefined>;

/**
 * A reporter that writes one JSON object per line (see the module documentation).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRoutine } from "../routine/routine.ts";
 * import { jsonLogReporter } from "./json_log.ts";
 *
 * const params = { parent_directory: "landing", dump_directory: "staging" };
 * const text = JSON.stringify({ routine_name: "staging", executors: { StagingExecutor: { params, tasks: ["transfer"] } } });
 * const routine = await parseRoutine(text, { file: "/work/staging.json", label: "staging.json" });
 * const [step] = routine.steps;
 *
 * const lines: string[] = [];
 * const reporter = jsonLogReporter({ write: (line) => lines.push(line), now: () => new Date(0) });
 * reporter.runStarted?.({ runId: "20260101T000000Z-1a2b3c4d" });
 * reporter.routineStarted(routine);
 * reporter.stepStarted(step, 1);
 * reporter.stepMessage(step, { type: "task-start", task: "transfer" });
 * reporter.stepMessage(step, { type: "event", task: "transfer", event: { type: "moved", files: 2, bytes: 2048 } });
 * reporter.stepMessage(step, { type: "task-end", task: "transfer", ms: 12 });
 * reporter.stepMessage(step, { type: "done" });
 * reporter.routineFinished(true, 20);
 * const events = lines.map((line) => JSON.parse(line));
 * assert.deepEqual(events.map((e) => e.event), [
 *   "run_started", "step_started", "task_started", "task_finished", "step_finished", "run_finished",
 * ]);
 * assert.deepEqual(events[3], {
 *   time: "1970-01-01T00:00:00.000Z",
 *   level: "info",
 *   run_id: "20260101T000000Z-1a2b3c4d",
 *   routine: "staging",
 *   step: "StagingExecutor",
 *   task: "transfer",
 *   event: "task_finished",
 *   message: "transfer: 2 files, 2.0 KiB in 12 ms",
 *   ms: 12,
 *   files: 2,
 *   bytes: 2048,
 * });
 * assert.equal(events.at(-1).status, "succeeded");
 * assert.equal(events[4].status, "succeeded"); // step_finished: "failed" when a task failed
 *
 * reporter.warning?.("step \"StagingExecutor\" failed; continue_on_error: the run goes on", step);
 * assert.equal(JSON.parse(lines.at(-1)!).step, "StagingExecutor"); // a warning about a step names it
 * ```
 */
export function jsonLogReporter(options: JsonLogOptions = {}): Reporter {
  const write = options.write ?? ((line: string) => console.log(line));
  const now = options.now ?? (() => new Date());
  const hide = (text: string) => options.mask?.mask(text) ?? text;
  let runId: string | undefined;
  let attempt: number | undefined;
  let date: string | undefined;
  let routineName: string | undefined;
  let total = 0;
  const moved = new Map<string, { files: number; bytes: number }>();
  const stepStarted = new Map<string, number>();

  const line = (level: "info" | "warn" | "error", event: string, message: string, fields: Fields = {}) => {
    if (options.quiet && level !== "error" && event !== "run_finished") return;
    const { step, task, ...rest } = fields;
    const entry: Record<string, unknown> = {
      time: now().toISOString(),
      level,
      run_id: runId,
      routine: routineName === undefined ? undefined : hide(routineName),
      step: typeof step === "string" ? hide(step) : undefined,
      task: typeof task === "string" ? hide(task) : undefined,
      event,
      message: hide(message),
    };
    for (const [key, value] of Object.entries(rest)) {
      if (value !== undefined) entry[key] = typeof value === "string" ? hide(value) : value;
    }
    // JSON.stringify escapes C0 controls only: C1 and bidirectional controls too, as \\u escapes (still JSON)
    write(printable(JSON.stringify(entry)));
  };

  return {
    runStarted(info: RunInfo) {
      runId = info.runId;
      attempt = info.attempt;
      date = info.date;
    },
    routineStarted(routine: Routine) {
      routineName = routine.name;
      total = routine.steps.length;
      line("info", "run_started", `routine ${JSON.stringify(routine.name)}: ${plural(total, "step")}`, {
        steps: total,
        // the run's logical date, when it has one (each date of a backfill is a run)
        date,
        // 2, 3…: this run continues one that did not succeed (what it completed is not done again)
        attempt: attempt !== undefined && attempt > 1 ? attempt : undefined,
      });
    },
    stepStarted(step: Step, stepTotal: number) {
      total = stepTotal;
      stepStarted.set(step.id, performance.now());
      line("info", "step_started", `[${step.index}/${total}] ${label(step)}`, {
        step: step.id,
        executor: step.executor.name,
      });
    },
    stepMessage(step: Step, message: StepMessage) {
      const at = { step: step.id };
      switch (message.type) {
        case "task-start":
          moved.set(`${step.id}\n${message.task}`, { files: 0, bytes: 0 });
          line("info", "task_started", message.task, { ...at, task: message.task });
          break;
        case "event": {
          const event = message.event;
          const here = { ...at, task: message.task };
          if (event.type === "moved") {
            const key = `${step.id}\n${message.task}`;
            const sum = moved.get(key) ?? { files: 0, bytes: 0 };
            moved.set(key, { files: sum.files + event.files, bytes: sum.bytes + event.bytes });
          } else if (event.type === "output") {
            line("info", "output", `${event.name} = ${JSON.stringify(event.value)}`, {
              ...here,
              name: event.name,
              value: event.value,
            });
          } else if (event.type === "log") {
            line("info", "log", event.message, here);
          }
          break;
        }
        case "task-end": {
          const sum = moved.get(`${step.id}\n${message.task}`) ?? { files: 0, bytes: 0 };
          const what = sum.files ? `${plural(sum.files, "file")}, ${formatBytes(sum.bytes)} in ` : "";
          line("info", "task_finished", `${message.task}: ${what}${formatDuration(message.ms)}`, {
            ...at,
            task: message.task,
            ms: Math.round(message.ms),
            files: sum.files || undefined,
            bytes: sum.files || sum.bytes ? sum.bytes : undefined,
          });
          break;
        }
        case "task-failed":
          line("error", "task_failed", `${message.task} failed: ${message.error.message}`, {
            ...at,
            task: message.task,
            ms: Math.round(message.ms),
          });
          // a failed task ends its step's attempt (a `step_retry` may follow); the error is task_failed's
          line("info", "step_finished", `${label(step)} failed`, {
            ...at,
            status: "failed",
            ms: Math.round(performance.now() - (stepStarted.get(step.id) ?? performance.now())),
          });
          break;
        case "done":
          line("info", "step_finished", `${label(step)} done`, {
            ...at,
            status: "succeeded",
            ms: Math.round(performance.now() - (stepStarted.get(step.id) ?? performance.now())),
          });
          break;
      }
    },
    stepRetry(step: Step, attempt: number, delayMs: number, error: Error) {
      line("warn", "step_retry", `${error.message}; attempt ${attempt} in ${formatDuration(delayMs)}`, {
        step: step.id,
        attempt,
        delay_ms: Math.round(delayMs),
      });
    },
    stepSkipped(step: Step, reason: string) {
      line("info", "step_skipped", reason, { step: step.id });
    },
    warning(message: string, step?: Step) {
      line("warn", "warning", message, { step: step?.id });
    },
    routineFinished(ok: boolean, ms: number) {
      const status: FinalStatus = ok ? "succeeded" : options.signal?.aborted ? "interrupted" : "failed";
      line(ok ? "info" : "error", "run_finished", `${status} in ${formatDuration(ms)}`, {
        status,
        ms: Math.round(ms),
      });
      options.onFinished?.();
    },
  };
}

function label(step: Step): string {
  return step.id === step.executor.name ? step.id : `${step.id} (${step.executor.name})`;
}

/**
 * The JSON lines for an error that ended a command before or outside a run: an `invalid` line per problem of
 * an invalid routine (with `file`, `line`, `col`, `path`), else one `error` line; then `run_finished`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonFailureLines } from "./json_log.ts";
 *
 * const problems = [{ where: "r.json:4:7", path: "executors.X.params.n", message: "expected number, received string (\"2\")" }];
 * const lines = jsonFailureLines(undefined, { problems, now: () => new Date(0) }).map((line) => JSON.parse(line));
 * assert.deepEqual(lines[0], {
 *   time: "1970-01-01T00:00:00.000Z",
 *   level: "error",
 *   event: "invalid",
 *   message: 'r.json:4:7: executors.X.params.n: expected number, received string ("2")',
 *   file: "r.json",
 *   line: 4,
 *   col: 7,
 *   path: "executors.X.params.n",
 * });
 * assert.deepEqual([lines[1].event, lines[1].status], ["run_finished", "invalid"]);
 * ```
 */
export function jsonFailureLines(
  error: unknown,
  context: {
    problems?: readonly RoutineProblem[];
    routine?: string;
    interrupted?: boolean;
    mask?: SecretMask;
    now?: () => Date;
  } = {},
): string[] {
  const now = context.now ?? (() => new Date());
  const hide = (text: string) => context.mask?.mask(text) ?? text;
  const base = () => ({ time: now().toISOString(), level: "error", routine: context.routine });
  const lines: string[] = [];
  if (context.problems) {
    for (const problem of context.problems) {
      const { file, line, col } = problemPlace(problem.where);
      lines.push(JSON.stringify({
        ...base(),
        event: "invalid",
        message: hide(formatProblem(problem)),
        file,
        line,
        col,
        path: problem.path || undefined,
      }));
    }
  } else {
    lines.push(
      JSON.stringify({
        ...base(),
        event: "error",
        message: hide(String((error as Error)?.message ?? error)),
      }),
    );
  }
  const status = failureStatus(error, context);
  lines.push(JSON.stringify({ ...base(), event: "run_finished", message: status, status }));
  return lines;
}

/**
 * `inner` with only what `--quiet` keeps: failed tasks, warnings and the last line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRoutine } from "../routine/routine.ts";
 * import { consoleReporter } from "./reporter.ts";
 * import { quietReporter } from "./json_log.ts";
 *
 * const params = { parent_directory: "landing", dump_directory: "staging" };
 * const text = JSON.stringify({ routine_name: "staging", executors: { StagingExecutor: { params, tasks: ["transfer"] } } });
 * const routine = await parseRoutine(text, { file: "/work/staging.json", label: "staging.json" });
 * const [step] = routine.steps;
 * const lines: string[] = [];
 * const reporter = quietReporter(consoleReporter({ write: (line) => lines.push(line) }));
 * reporter.routineStarted(routine);
 * reporter.stepStarted(step, 1);
 * reporter.stepMessage(step, { type: "task-start", task: "transfer" });
 * reporter.stepMessage(step, { type: "task-failed", task: "transfer", ms: 3, error: { message: "no landing" } });
 * reporter.routineFinished(false, 1234);
 * assert.deepEqual(lines, ["  ✗ transfer failed: no landing", "✗ failed after 1.2 s"]);
 * ```
 */
export function quietReporter(inner: Reporter): Reporter {
  return {
    runStarted: (info) => inner.runStarted?.(info),
    routineStarted: () => {},
    stepStarted: () => {},
    stepMessage: (step, message) => {
      if (message.type === "task-failed") inner.stepMessage(step, message);
    },
    warning: (message, step) => inner.warning?.(message, step),
    routineFinished: (ok, ms) => inner.routineFinished(ok, ms),
  };
}

/** What {@link LogSession} is made from. */
export interface LogSessionOptions {
  format?: LogFormat;
  quiet?: boolean;
  /** GitHub Actions mode. Default: when `GITHUB_ACTIONS=true`. */
  github?: boolean | GitHubRun;
  /** Where lines go. Default: standard output. */
  write?: (line: string) => void;
}

/**
 * The log format, `--quiet` and GitHub Actions mode of one lakerun command: makes the reporter of each run,
 * and reports what ended the command when no run did.
 */
export class LogSession {
  readonly format: LogFormat;
  readonly quiet: boolean;
  /** Set in GitHub Actions mode. */
  readonly github: GitHubRun | undefined;
  readonly #write: (line: string) => void;
  #finished = false;

  constructor(options: LogSessionOptions = {}) {
    this.format = options.format ?? "text";
    this.quiet = options.quiet ?? false;
    this.#write = options.write ?? ((line: string) => console.log(line));
    const github = options.github ?? Deno.env.get("GITHUB_ACTIONS") === "true";
    this.github = github instanceof GitHubRun ? github : github
      ? new GitHubRun({
        write: this.#write,
        // a JSON log keeps standard output to itself
        commands: this.format === "json" ? (line) => console.error(line) : this.#write,
      })
      : undefined;
  }

  /**
   * The reporter of one run. `console` makes the console reporter for text mode from a line writer; JSON
   * mode replaces it, `--quiet` filters it, GitHub mode wraps either.
   */
  reporter(options: {
    console: InnerReporter;
    mask?: SecretMask;
    signal?: AbortSignal;
    /** The routine file as named on the command line (job summary). */
    file?: string;
  }): Reporter {
    this.#finished = false;
    const onFinished = () => this.#finished = true;
    const inner: InnerReporter = (write, innerOptions) => {
      if (this.format === "json") {
        return jsonLogReporter({
          write,
          mask: options.mask,
          quiet: this.quiet,
          signal: options.signal,
          onFinished,
        });
      }
      const reporter = options.console(write, innerOptions);
      const finishing: Reporter = {
        ...reporter,
        routineFinished: (ok, ms) => {
          reporter.routineFinished(ok, ms);
          onFinished();
        },
      };
      return this.quiet ? quietReporter(finishing) : finishing;
    };
    if (!this.github) return inner(this.#write, { grouped: false });
    this.github.useMask(options.mask);
    return this.github.reporter({
      inner,
      groups: this.format === "text" && !this.quiet,
      signal: options.signal,
      file: options.file,
    });
  }

  /**
   * A writer for the lines a command prints between runs (a backfill's dates and its tally): `write` itself
   * in text mode (through GitHub mode's masking and defusing), a `note` JSON line in JSON mode.
   */
  noteWriter(write: (line: string) => void): (line: string) => void {
    if (this.format === "json") {
      const github = this.github;
      return (line) => {
        const json = JSON.stringify({
          time: new Date().toISOString(),
          level: "info",
          event: "note",
          message: line,
        });
        if (github) github.text(json);
        else this.#write(json);
      };
    }
    const github = this.github;
    return github ? (line) => github.text(line) : write;
  }

  /**
   * Reports an error that ended the command when no run reported it (an invalid routine, a routine already
   * running): in JSON mode as JSON lines, in GitHub mode as annotations, a job summary and outputs. The plain
   * message on standard error is main.ts's, as in every mode.
   */
  failed(
    error: unknown,
    context: {
      problems?: readonly RoutineProblem[];
      file?: string;
      interrupted?: boolean;
      mask?: SecretMask;
    } = {},
  ): void {
    const problems = context.problems ??
      ((error as { problems?: RoutineProblem[] })?.problems instanceof Array
        ? (error as { problems: RoutineProblem[] }).problems
        : undefined);
    if (this.github) {
      this.github.useMask(context.mask);
      this.github.failed(error, { problems, file: context.file, interrupted: context.interrupted });
    }
    if (this.format === "json" && (problems || !this.#finished)) {
      const lines = jsonFailureLines(error, {
        problems,
        interrupted: context.interrupted,
        mask: context.mask,
      });
      for (const line of lines) this.github ? this.github.text(line) : this.#write(line);
    }
  }
}
