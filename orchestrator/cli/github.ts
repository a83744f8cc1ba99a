/**
 * GitHub Actions mode (`GITHUB_ACTIONS=true`): what lakerun prints and writes so that a run reads well on
 * GitHub.
 *
 * - Every secret value is registered with `::add-mask::` before any other line is printed, and every line
 *   lakerun prints passes through the run's {@link SecretMask}.
 * - Each step's lines sit in a `::group::`; steps that run at the same time (`depends_on`) are printed one
 *   group after the other, never interleaved.
 * - Validation problems become `::error file=…,line=…,col=…::` annotations at the routine's own line, the file
 *   relative to `GITHUB_WORKSPACE`; a failed task an error annotation naming the step and the task. GitHub
 *   shows at most 10 error (and 10 warning) annotations per step: past 9, the rest stay plain log lines and one
 *   last annotation says how many more there are.
 * - A Markdown job summary is appended to `GITHUB_STEP_SUMMARY` (kept far below GitHub's 1 MiB), and `run-id`,
 *   `status` and `outputs` (the steps' outputs as JSON) are written to `GITHUB_OUTPUT`.
 * - A line of lakerun's own output that would read as a workflow command (`::…`, `##[…`) — a file name or a log
 *   line from a remote server — is defused with a zero-width space, and so is every line of a text that holds
 *   several (a message with a line break), as GitHub reads each line on its own.
 *
 * Workflow-command escaping is the toolkit's (`@actions/core` command.ts): in data `%`, `\r` and `\n`; in
 * property values also `:` and `,`.
 *
 * @module
 */
import { isAbsolute, relative, resolve } from "node:path";
import { formatBytes, formatDuration } from "../../lib/format.ts";
import type { SecretMask } from "../../lib/mask.ts";
import {
  EXIT_BUSY,
  EXIT_INVALID,
  exitCodeOf,
  formatProblem,
  problemPlace,
  type RoutineProblem,
  TaskFailedError,
} from "../errors.ts";
import type { Routine, Step } from "../routine/routine.ts";
import { printable, printableLines } from "../routine/json.ts";
import type { InnerReporter, Reporter, RunInfo } from "./reporter.ts";
import { defuseCommands } from "./workflow_commands.ts";

/** GitHub shows at most this many error (and as many warning) annotations per step. */
export const ANNOTATIONS_PER_KIND = 10;

/** What one job summary may add: far below GitHub's limit of 1 MiB per step. */
export const SUMMARY_MAX_BYTES = 64 * 1024;

/** Longest text in one cell of the summary's table. */
const CELL_MAX_CHARS = 200;

/**
 * The worse of two run statuses, for the `status` output of several runs: interrupted, then invalid, failed, busy,
 * running, succeeded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { worseStatus } from "./github.ts";
 *
 * assert.equal(worseStatus("failed", "succeeded"), "failed");
 * assert.equal(worseStatus(undefined, "succeeded"), "succeeded");
 * assert.equal(worseStatus("failed", "interrupted"), "interrupted");
 * ```
 */
export function worseStatus(
  a: RunTally["status"] | undefined,
  b: RunTally["status"],
): RunTally["status"] {
  const order: readonly string[] = ["succeeded", "running", "busy", "failed", "invalid", "interrupted"];
  return a !== undefined && order.indexOf(a) > order.indexOf(b) ? a : b;
}

/** Longest `outputs` value written to `GITHUB_OUTPUT` (GitHub allows 1 MiB per job, counted in UTF-16). */
const OUTPUTS_MAX_CHARS = 256 * 1024;

/** The environment files and folders of a GitHub Actions step. */
export interface GitHubEnvironment {
  /** `GITHUB_WORKSPACE`: annotation paths are relative to it. */
  workspace?: string;
  /** `GITHUB_STEP_SUMMARY`: the job summary is appended here. */
  summaryFile?: string;
  /** `GITHUB_OUTPUT`: the step's outputs are appended here. */
  outputFile?: string;
}

/**
 * True when lakerun runs in a GitHub Actions job.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isGitHubActions } from "./github.ts";
 *
 * assert.equal(isGitHubActions({ GITHUB_ACTIONS: "true" }), true);
 * assert.equal(isGitHubActions({}), false);
 * ```
 */
export function isGitHubActions(env: Record<string, string | undefined> = Deno.env.toObject()): boolean {
  return env.GITHUB_ACTIONS === "true";
}

/** The {@link GitHubEnvironment} of this process (empty names count as unset). */
export function gitHubEnvironment(
  env: Record<string, string | undefined> = Deno.env.toObject(),
): GitHubEnvironment {
  return {
    workspace: env.GITHUB_WORKSPACE || undefined,
    summaryFile: env.GITHUB_STEP_SUMMARY || undefined,
    outputFile: env.GITHUB_OUTPUT || undefined,
  };
}

/**
 * Escapes the message of a workflow command: `%`, `\r`, `\n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeData } from "./github.ts";
 *
 * assert.equal(escapeData("100% done\r\nnext: a,b"), "100%25 done%0D%0Anext: a,b");
 * ```
 */
export function escapeData(value: string): string {
  return value.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

/**
 * Escapes a property value of a workflow command: as {@link escapeData}, and `:` and `,`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeProperty } from "./github.ts";
 *
 * assert.equal(escapeProperty("step: a, b\n50%"), "step%3A a%2C b%0A50%25");
 * ```
 */
export function escapeProperty(value: string): string {
  return escapeData(value).replaceAll(":", "%3A").replaceAll(",", "%2C");
}

/**
 * A workflow command line: `::name key=value,…::message`, escaped; properties without a value are left out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { workflowCommand } from "./github.ts";
 *
 * assert.equal(
 *   workflowCommand("error", { file: "routines/a.json", line: 3, col: 7, title: "invalid routine" }, "x: 1\n2"),
 *   "::error file=routines/a.json,line=3,col=7,title=invalid routine::x: 1%0A2",
 * );
 * assert.equal(workflowCommand("endgroup"), "::endgroup::");
 * ```
 */
export function workflowCommand(
  name: string,
  properties: Record<string, string | number | undefined> = {},
  message = "",
): string {
  const list = Object.entries(properties)
    .filter(([, value]) => value !== undefined && value !== "")
    .map(([key, value]) => `${key}=${escapeProperty(printableLines(String(value)))}`);
  // a mask is the value as it is; any other message has its controls escaped (not its line breaks: %0A)
  const data = name === "add-mask" ? message : printableLines(message);
  return `::${name}${list.length ? ` ${list.join(",")}` : ""}::${escapeData(data)}`;
}

/**
 * `::add-mask::` lines for `values` not yet in `registered` (which they are then added to): the whole value,
 * and each line of a value of several lines (GitHub masks line by line) when that line has 4 characters or more.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maskCommands } from "./github.ts";
 *
 * const registered = new Set<string>();
 * assert.deepEqual(maskCommands(["s3cr3t%"], registered), ["::add-mask::s3cr3t%25"]);
 * assert.deepEqual(maskCommands(["s3cr3t%"], registered), []); // once per value
 * assert.deepEqual(maskCommands(["line one\nok\nline three"], registered), [
 *   "::add-mask::line one%0Aok%0Aline three",
 *   "::add-mask::line one",
 *   "::add-mask::line three",
 * ]);
 * ```
 */
export function maskCommands(values: readonly string[], registered: Set<string>): string[] {
  const lines: string[] = [];
  const add = (value: string) => {
    if (registered.has(value)) return;
    registered.add(value);
    lines.push(workflowCommand("add-mask", {}, value));
  };
  for (const value of values) {
    add(value);
    const parts = value.split(/\r?\n/);
    if (parts.length > 1) { for (const part of parts) if (part.trim().length >= 4) add(part); }
  }
  return lines;
}

/** Where an annotation points: a file relative to the workspace, a line and a column. */
interface AnnotationPlace {
  file?: string;
  line?: number;
  col?: number;
}

/** The place of a problem's `where` (`file:line:col` or `file`), relative to `workspace` when inside it. */
function placeOf(where: string, cwd: string, workspace?: string): AnnotationPlace {
  const { file, line, col } = problemPlace(where);
  const at: AnnotationPlace = line === undefined ? {} : { line, col };
  if (file === "") return at;
  const absolute = resolve(cwd, file);
  let shown = workspace ? absolute : file;
  if (workspace) {
    const inside = relative(resolve(workspace), absolute);
    if (inside !== "" && !inside.startsWith("..") && !isAbsolute(inside)) shown = inside;
  }
  return { file: shown.replaceAll("\\", "/"), ...at };
}

/** Counts annotations of one kind and holds back the ones past GitHub's per-step limit. */
class AnnotationBudget {
  #shown = 0;
  #held = 0;
  #last: string | undefined;

  constructor(readonly kind: "error" | "warning", readonly max = ANNOTATIONS_PER_KIND) {}

  /** The lines for one annotation: the command itself, or, past the limit, a plain line. */
  add(properties: Record<string, string | number | undefined>, message: string): string {
    if (this.#shown < this.max - 1) {
      this.#shown++;
      return workflowCommand(this.kind, properties, message);
    }
    this.#held++;
    this.#last = workflowCommand(this.kind, properties, message);
    return `${this.kind === "error" ? "Error" : "Warning"}: ${message.replace(/\s*\r?\n\s*/g, " ")}`;
  }

  /** The last annotation: the one held back when it is alone, else how many more there are (or nothing). */
  finish(): string[] {
    if (this.#held === 0) return [];
    const line = this.#held === 1 && this.#last !== undefined ? this.#last : workflowCommand(
      this.kind,
      { title: "lakerun" },
      `${this.#held} more ${this.kind === "error" ? "problems" : "warnings"}, see the log`,
    );
    this.#held = 0;
    this.#shown++;
    return [line];
  }
}

/**
 * The annotations for an invalid routine's problems: one `::error file=…,line=…,col=…::` per problem at the
 * routine's own line (the file relative to `workspace`), at most {@link ANNOTATIONS_PER_KIND}; past 9, one
 * last annotation says how many more problems the log lists (lakerun prints every problem on standard error).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { problemAnnotations } from "./github.ts";
 *
 * const problem = { where: "routines/r.json:3:38", path: "executors.X", message: 'unknown executor "X"' };
 * assert.deepEqual(problemAnnotations([problem], { cwd: "/w", workspace: "/w" }), [
 *   '::error file=routines/r.json,line=3,col=38,title=invalid routine::executors.X: unknown executor "X"',
 * ]);
 * const many = Array.from({ length: 12 }, (_, i) => ({ ...problem, path: `executors.X${i}` }));
 * const lines = problemAnnotations(many, { cwd: "/w", workspace: "/w" });
 * assert.equal(lines.filter((line) => line.startsWith("::error ")).length, 10);
 * assert.equal(lines.at(-1), "::error title=lakerun::3 more problems, see the log");
 * ```
 */
export function problemAnnotations(
  problems: readonly RoutineProblem[],
  options: { cwd: string; workspace?: string; mask?: SecretMask },
): string[] {
  const mask = (text: string) => options.mask?.mask(text) ?? text;
  const budget = new AnnotationBudget("error");
  const lines: string[] = [];
  for (const problem of problems) {
    const place = placeOf(problem.where, options.cwd, options.workspace);
    const message = mask(problem.path ? `${problem.path}: ${problem.message}` : problem.message);
    const line = budget.add({ ...place, title: "invalid routine" }, message);
    if (line.startsWith("::")) lines.push(line); // the others are on standard error already
  }
  return [...lines, ...budget.finish()];
}

/** How a run ended, as `status` says it. */
export type RunOutcome = "succeeded" | "failed" | "interrupted" | "invalid" | "busy";

/**
 * How an error that ended a command before or outside a run ends it: `invalid` for an invalid routine and for
 * every other error that exits 2 (a bad command line: a date that is no date, a run to resume that does not
 * exist, a bad option value), `busy` when another run held the routine's lock (exit 75: nothing ran),
 * `interrupted` after SIGINT or SIGTERM, else `failed`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RoutineBusyError, UsageError } from "../errors.ts";
 * import { failureStatus } from "./github.ts";
 *
 * assert.equal(failureStatus(new UsageError('--date: "2024-13-01" is not a date')), "invalid");
 * assert.equal(failureStatus(undefined, { problems: [] }), "invalid");
 * assert.equal(failureStatus(new RoutineBusyError("r", "/s/run.lock")), "busy");
 * assert.equal(failureStatus(new Error("a task failed")), "failed");
 * assert.equal(failureStatus(new Error("stopped"), { interrupted: true }), "interrupted");
 * ```
 */
export function failureStatus(
  error: unknown,
  context: { problems?: readonly RoutineProblem[]; interrupted?: boolean } = {},
): Exclude<RunOutcome, "succeeded"> {
  if (context.problems) return "invalid";
  if (context.interrupted) return "interrupted";
  const code = exitCodeOf(error);
  return code === EXIT_INVALID ? "invalid" : code === EXIT_BUSY ? "busy" : "failed";
}

/** One task of a step, as the summary shows it. */
export interface TaskTally {
  name: string;
  status: "pending" | "running" | "succeeded" | "failed";
  ms?: number;
  files: number;
  bytes: number;
  outputs: Array<[string, string | number | boolean]>;
  error?: string;
}

/** One step, as the summary shows it. */
export interface StepTally {
  id: string;
  executor: string;
  status: "pending" | "running" | "succeeded" | "failed" | "skipped";
  /** Why the step was skipped, or how it failed. */
  note?: string;
  continueOnError: boolean;
  started?: number;
  ms?: number;
  tries: number;
  tasks: TaskTally[];
  /** The outputs of a step `--resume` found done (its tasks did not run in this attempt). */
  resumedOutputs?: Array<[string, string | number | boolean]>;
}

/** Puts every task of a step back to pending, for the step's next attempt. */
function resetTasks(tally: StepTally): void {
  for (const task of tally.tasks) {
    Object.assign(task, {
      status: "pending",
      ms: undefined,
      files: 0,
      bytes: 0,
      outputs: [],
      error: undefined,
    });
  }
}

/** What a run did, as the job summary and the outputs say it. */
export interface RunTally {
  routine: string;
  /** The routine file as named on the command line. */
  file?: string;
  runId?: string;
  /** The run's logical date (`YYYY-MM-DD`). */
  date?: string;
  status: RunOutcome | "running";
  /** When the run started (ISO 8601). */
  started: string;
  ms?: number;
  steps: StepTally[];
  /** Validation problems or the error that stopped the run. */
  problems: string[];
}

/**
 * The run's job summary in GitHub-flavoured Markdown, at most `maxBytes` of UTF-8: routine, run id, date and
 * status, then a row per task (status, duration, files and bytes moved, outputs) and the problems; rows that do
 * not fit are counted in a last line. Values are escaped for Markdown and HTML, long cells shortened, secrets
 * masked.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatJobSummary } from "./github.ts";
 *
 * const task = { name: "query", status: "succeeded" as const, ms: 1500, files: 0, bytes: 0, outputs: [] };
 * const summary = formatJobSummary({
 *   routine: "sales",
 *   runId: "20260101T000000Z-1a2b3c4d",
 *   date: "2026-03-31",
 *   status: "succeeded",
 *   started: "2026-04-01T06:00:00.000Z",
 *   ms: 1500,
 *   problems: [],
 *   steps: [{
 *     id: "count",
 *     executor: "AthenaExecutor",
 *     status: "succeeded",
 *     continueOnError: false,
 *     tries: 1,
 *     tasks: [{ ...task, outputs: [["rows", 42], ["note", "a|b <c>"]] }],
 *   }],
 * });
 * assert.match(summary, /^### lakerun · sales · ✅ succeeded\n/);
 * assert.ok(summary.includes("| count (AthenaExecutor) | query | ✅ succeeded | 1.5 s |  |  | rows = 42<br>note = a&#124;b &lt;c&gt; |"));
 * ```
 */
export function formatJobSummary(
  run: RunTally,
  options: { maxBytes?: number; mask?: SecretMask } = {},
): string {
  const maxBytes = options.maxBytes ?? SUMMARY_MAX_BYTES;
  const mask = (text: string) => options.mask?.mask(text) ?? text;
  const cell = (text: string) => escapeCell(printable(shorten(mask(text), CELL_MAX_CHARS)));
  const icon = STATUS_ICONS[run.status] ?? "";
  const head = [
    `### lakerun · ${cell(run.routine)} · ${icon} ${run.status}`,
    "",
    [
      `**run** ${run.runId ? cell(run.runId) : "—"}`,
      `**date** ${run.date ? cell(run.date) : "—"}`,
      `**started** ${cell(run.started)}`,
      ...(run.ms !== undefined ? [`**duration** ${formatDuration(run.ms)}`] : []),
      ...(run.file ? [`**file** ${cell(run.file)}`] : []),
    ].join(" · "),
    "",
  ];
  const rows: string[] = [];
  for (const step of run.steps) {
    const label = step.id === step.executor ? step.id : `${step.id} (${step.executor})`;
    const stepStatus = step.status === "failed" && step.continueOnError
      ? "failed (continue_on_error)"
      : step.status;
    if (step.status === "skipped" || step.tasks.length === 0) {
      rows.push(
        row([label, "", `${STATUS_ICONS[step.status] ?? ""} ${stepStatus}`, "", "", "", step.note ?? ""]),
      );
      continue;
    }
    for (const task of step.tasks) {
      const status = task.status === "failed" && step.continueOnError
        ? "failed (continue_on_error)"
        : task.status;
      rows.push(row([
        label,
        task.name,
        `${STATUS_ICONS[task.status] ?? ""} ${status}${
          task.status === "failed" && step.tries > 1 ? ` (try ${step.tries})` : ""
        }`,
        task.ms !== undefined ? formatDuration(task.ms) : "",
        task.files ? String(task.files) : "",
        task.bytes ? formatBytes(task.bytes) : "",
        task.outputs.map(([name, value]) =>
          `${name} = ${typeof value === "string" ? value : JSON.stringify(value)}`
        )
          .join("\n"),
      ]));
    }
  }
  function row(cells: string[]): string {
    // masked whole before its lines are split: a secret may span lines
    return `| ${cells.map((text) => mask(text).split("\n").map(cell).join("<br>")).join(" | ")} |`;
  }
  const problems = run.problems.map((problem) => `- ${cell(problem)}`);
  const parts = run.steps.length === 0 ? head : [
    ...head,
    "| step | task | status | duration | files | bytes | outputs |",
    "| --- | --- | --- | ---: | ---: | ---: | --- |",
  ];
  const tail = problems.length ? ["", "**Problems**", ""] : [];
  const encoder = new TextEncoder();
  let size = encoder.encode(parts.join("\n")).length + 200; // the closing line and the newlines
  const lines = [...parts];
  let dropped = 0;
  for (const line of [...rows, ...(tail.length ? [...tail, ...problems] : [])]) {
    const bytes = encoder.encode(line).length + 1;
    if (dropped > 0 || size + bytes > maxBytes) {
      if (line.startsWith("| ") || line.startsWith("- ")) dropped++;
      continue;
    }
    size += bytes;
    lines.push(line);
  }
  if (dropped > 0) lines.push("", `_${dropped} more lines not shown: see the job's log._`);
  return `${lines.join("\n")}\n\n`;
}

const STATUS_ICONS: Record<string, string> = {
  succeeded: "✅",
  failed: "❌",
  interrupted: "⏹️",
  invalid: "⚠️",
  skipped: "⏭️",
  pending: "·",
  running: "…",
};

function shorten(text: string, max: number): string {
  const characters = [...text];
  return characters.length <= max ? text : `${characters.slice(0, max - 1).join("")}…`;
}

/** Text safe in a table cell: no line breaks, Markdown and HTML characters written as text. */
function escapeCell(text: string): string {
  return text
    .replace(/[\r\n\t]+/g, " ")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll("|", "&#124;")
    .replace(/([\\`*_[\]])/g, "\\$1");
}

/**
 * The `GITHUB_OUTPUT` text for `values`: each as `name<<DELIMITER`, the value, `DELIMITER`, with a random
 * delimiter that the value does not contain.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatOutputs } from "./github.ts";
 *
 * const text = formatOutputs({ status: "succeeded", outputs: '{"a":{"rows":1}}' }, () => "EOF_1");
 * assert.equal(text, 'status<<EOF_1\nsucceeded\nEOF_1\noutputs<<EOF_1\n{"a":{"rows":1}}\nEOF_1\n');
 * ```
 */
export function formatOutputs(
  values: Record<string, string>,
  delimiter: () => string = () => `ghadelimiter_${crypto.randomUUID()}`,
): string {
  let text = "";
  for (const [name, value] of Object.entries(values)) {
    let mark = delimiter();
    while (value.includes(mark) || name.includes(mark)) mark = delimiter();
    text += `${name}<<${mark}\n${value}\n${mark}\n`;
  }
  return text;
}

/**
 * The steps' outputs (`{ step: { name: value } }`) with secrets masked value by value, so that the JSON stays
 * valid and GitHub does not drop the output for holding a masked value.
 */
function maskedOutputs(
  steps: readonly StepTally[],
  mask?: SecretMask,
): Record<string, Record<string, unknown>> {
  const hide = (text: string) => mask?.mask(text) ?? text;
  const out: Record<string, Record<string, unknown>> = {};
  for (const step of steps) {
    const values: Record<string, unknown> = {};
    for (const outputs of [step.resumedOutputs ?? [], ...step.tasks.map((task) => task.outputs)]) {
      for (const [name, value] of outputs) {
        values[hide(name)] = typeof value === "string"
          ? hide(value)
          : hide(String(value)) === String(value)
          ? value
          : "***";
      }
    }
    if (Object.keys(values).length > 0) out[hide(step.id)] = values;
  }
  return out;
}

/** Options for {@link GitHubRun}. */
export interface GitHubRunOptions {
  /** Where lines go (standard output: GitHub reads workflow commands there). */
  write?: (line: string) => void;
  /**
   * Where workflow commands go, when not with the lines (`write`): standard error when standard output is a
   * JSON log (GitHub reads workflow commands on both).
   */
  commands?: (line: string) => void;
  env?: GitHubEnvironment;
  /** The run's secrets: registered with `::add-mask::` first, masked in every line, the summary and outputs. */
  mask?: SecretMask;
  /** The folder relative routine paths resolve against. Default: the current folder. */
  cwd?: string;
}

/**
 * One lakerun command in a GitHub Actions job: prints masks, annotations and groups, and writes the job summary
 * and the outputs. {@link GitHubRun.reporter} makes the reporter of a run; {@link GitHubRun.failed} reports an
 * error no run reported (an invalid routine, a routine already running).
 */
export class GitHubRun {
  readonly env: GitHubEnvironment;
  readonly #write: (line: string) => void;
  readonly #commands: (line: string) => void;
  readonly #cwd: string;
  #mask: SecretMask | undefined;
  readonly #registered = new Set<string>();
  /** Set once a run wrote its summary and outputs. */
  #reported = false;
  /** The worst status of the runs finished so far (a backfill runs one per date). */
  #worst: RunTally["status"] | undefined;

  constructor(options: GitHubRunOptions = {}) {
    this.env = options.env ?? gitHubEnvironment();
    this.#write = options.write ?? ((line) => console.log(line));
    this.#commands = options.commands ?? this.#write;
    this.#cwd = options.cwd ?? Deno.cwd();
    this.#mask = options.mask;
    this.flushMasks();
  }

  /** Uses `mask` from now on (its values are registered at once). */
  useMask(mask: SecretMask | undefined): void {
    if (mask) this.#mask = mask;
    this.flushMasks();
  }

  /** Prints `::add-mask::` for every secret value not yet registered. */
  flushMasks(): void {
    for (const line of maskCommands(this.#mask?.values ?? [], this.#registered)) this.#commands(line);
  }

  /** `text` with the secrets masked. */
  mask(text: string): string {
    return this.#mask?.mask(text) ?? text;
  }

  /** Prints a workflow command (masks first). */
  command(line: string): void {
    this.flushMasks();
    this.#commands(line);
  }

  /** Prints a line of lakerun's own output: masked, and defused if it would read as a workflow command. */
  text(line: string): void {
    this.flushMasks();
    this.#write(defuseCommands(this.mask(line)));
  }

  /** Whether a run already wrote the summary and outputs. */
  get reported(): boolean {
    return this.#reported;
  }

  /**
   * Appends the job summary and writes the outputs of `run` (the files named by the environment; a file that
   * cannot be written is a warning, never a failure).
   */
  finish(run: RunTally): void {
    this.#reported = true;
    const mask = this.#mask;
    if (this.env.summaryFile) {
      try {
        Deno.writeTextFileSync(this.env.summaryFile, formatJobSummary(run, { mask }), { append: true });
      } catch (error) {
        this.command(workflowCommand("warning", { title: "lakerun" }, `job summary not written: ${error}`));
      }
    }
    if (this.env.outputFile) {
      let outputs = JSON.stringify(maskedOutputs(run.steps, mask));
      if (outputs.length > OUTPUTS_MAX_CHARS) {
        this.command(workflowCommand(
          "warning",
          { title: "lakerun" },
          `the steps' outputs take ${outputs.length} characters, more than an output may hold: 'outputs' is {}`,
        ));
        outputs = "{}";
      }
      // a backfill writes these once per date, and GitHub keeps the last value of each: its `status` is the
      // worst of the dates so far (a failed date is not hidden by a later one that succeeded)
      this.#worst = worseStatus(this.#worst, run.status);
      const text = formatOutputs({ "run-id": this.mask(run.runId ?? ""), status: this.#worst, outputs });
      try {
        Deno.writeTextFileSync(this.env.outputFile, text, { append: true });
      } catch (error) {
        this.command(workflowCommand("warning", { title: "lakerun" }, `outputs not written: ${error}`));
      }
    }
  }

  /**
   * Reports an error that ended the command before or outside a run: the problems of an invalid routine as
   * annotations at their lines, any other error as one error annotation; then the summary and the outputs
   * (`status` `invalid` for an invalid routine or command line, else `failed` or `interrupted`), unless a run
   * wrote them already.
   */
  failed(
    error: unknown,
    context: {
      routine?: string;
      file?: string;
      problems?: readonly RoutineProblem[];
      interrupted?: boolean;
    } = {},
  ): void {
    this.flushMasks();
    const problems = context.problems;
    if (problems) {
      for (
        const line of problemAnnotations(problems, {
          cwd: this.#cwd,
          workspace: this.env.workspace,
          mask: this.#mask,
        })
      ) {
        this.#commands(line);
      }
    } else if (!this.#reported) {
      // a run that found the routine running (exit 75) did nothing wrong: a warning, not an error
      const level = exitCodeOf(error) === EXIT_BUSY ? "warning" : "error";
      this.command(
        workflowCommand(level, { title: "lakerun" }, this.mask(String((error as Error)?.message ?? error))),
      );
    }
    if (this.#reported) return;
    this.finish({
      routine: context.routine ?? context.file ??
        (problems?.[0] && placeOf(problems[0].where, this.#cwd, this.env.workspace).file) ?? "routine",
      file: context.file,
      status: failureStatus(error, { problems, interrupted: context.interrupted }),
      started: new Date().toISOString(),
      steps: [],
      problems: problems ? problems.map(formatProblem) : [String((error as Error)?.message ?? error)],
    });
  }

  /**
   * The reporter of one run: the lines of `inner` (the console reporter, given a writer that masks, defuses
   * and groups) plus annotations, and at the end the summary and outputs.
   */
  reporter(options: {
    inner?: InnerReporter;
    /** Group each step's lines (the default when there is an inner reporter). */
    groups?: boolean;
    signal?: AbortSignal;
    /** The routine file as named on the command line, for the summary. */
    file?: string;
  } = {}): Reporter {
    this.#reported = false;
    return new GitHubReporter(this, options);
  }
}

/** The reporter {@link GitHubRun.reporter} makes. */
class GitHubReporter implements Reporter {
  readonly #run: GitHubRun;
  readonly #inner: Reporter | undefined;
  readonly #groups: boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #errors = new AnnotationBudget("error");
  readonly #warnings = new AnnotationBudget("warning");
  readonly #steps = new Map<string, StepTally>();
  readonly #continueOnError = new Map<string, boolean>();
  readonly #failures = new Map<string, { task: string; message: string; executor: string }>();
  /** The step whose group is open, and the lines of other running steps, waiting for their turn. */
  #open: string | undefined;
  readonly #waiting = new Map<string, string[]>();
  /** Lines of no step, waiting for the open group to close. */
  readonly #loose: string[] = [];
  /** The step whose reporter call is under way: its lines go to its group. */
  #context: string | undefined;
  #tally: RunTally;

  constructor(
    run: GitHubRun,
    options: {
      inner?: InnerReporter;
      groups?: boolean;
      signal?: AbortSignal;
      file?: string;
    },
  ) {
    this.#run = run;
    this.#groups = options.groups ?? options.inner !== undefined;
    this.#inner = options.inner?.((line) => this.#line(line), { grouped: this.#groups });
    this.#signal = options.signal;
    this.#tally = {
      routine: "",
      file: options.file,
      status: "running",
      started: new Date().toISOString(),
      steps: [],
      problems: [],
    };
    run.flushMasks();
  }

  runStarted(info: RunInfo): void {
    this.#tally.runId = info.runId;
    if (info.date) this.#tally.date = info.date;
    this.#inner?.runStarted?.(info);
  }

  routineStarted(routine: Routine): void {
    this.#run.flushMasks();
    this.#tally.routine = routine.name;
    this.#tally.started = new Date().toISOString();
    for (const step of routine.steps) {
      this.#continueOnError.set(step.id, step.options?.continueOnError === true);
      this.#steps.set(step.id, {
        id: step.id,
        executor: step.executor.name,
        status: "pending",
        continueOnError: step.options?.continueOnError === true,
        tries: 0,
        tasks: step.tasks.map((name) => ({ name, status: "pending", files: 0, bytes: 0, outputs: [] })),
      });
    }
    this.#tally.steps = [...this.#steps.values()];
    this.#inner?.routineStarted(routine);
  }

  stepStarted(step: Step, total: number): void {
    const tally = this.#stepTally(step);
    if (tally.status !== "running") {
      tally.status = "running";
      tally.started = performance.now();
      tally.tries++;
      tally.note = undefined;
      resetTasks(tally);
    }
    this.#failures.delete(step.id);
    if (this.#open !== undefined && this.#steps.get(this.#open)?.status !== "running") this.#closeGroup();
    if (this.#open === undefined) this.#openGroup(step.id);
    this.#within(step.id, () => this.#inner?.stepStarted(step, total));
  }

  stepMessage(step: Step, message: Parameters<Reporter["stepMessage"]>[1]): void {
    const tally = this.#stepTally(step);
    const task = message.type === "done" ? undefined : this.#taskTally(tally, message.task);
    switch (message.type) {
      case "task-start":
        if (task) {
          Object.assign(task, { status: "running", files: 0, bytes: 0, outputs: [], error: undefined });
        }
        break;
      case "event":
        if (task && message.event.type === "moved") {
          task.files += message.event.files;
          task.bytes += message.event.bytes;
        } else if (task && message.event.type === "output") {
          task.outputs.push([message.event.name, message.event.value]);
        }
        break;
      case "task-end":
        if (task) Object.assign(task, { status: "succeeded", ms: message.ms });
        break;
      case "task-failed":
        if (task) Object.assign(task, { status: "failed", ms: message.ms, error: message.error.message });
        break;
    }
    this.#within(step.id, () => this.#inner?.stepMessage(step, message));
    if (message.type === "done" || message.type === "task-failed") {
      tally.status = message.type === "done" ? "succeeded" : "failed";
      tally.ms = performance.now() - (tally.started ?? performance.now());
      if (message.type === "task-failed") {
        tally.note = `${message.task}: ${message.error.message}`;
        this.#failures.set(step.id, {
          task: message.task,
          message: message.error.message,
          executor: step.executor.name,
        });
      } else {
        this.#failures.delete(step.id);
      }
      this.#stepEnded(step.id);
    }
  }

  stepRetry(step: Step, attempt: number, delayMs: number, error: Error): void {
    const tally = this.#stepTally(step);
    this.#failures.delete(step.id);
    // the next attempt's messages follow (without another stepStarted): a fresh row, a group of its own
    tally.status = "running";
    tally.tries = attempt;
    resetTasks(tally);
    // a failed task's error names the step already
    const failure = error instanceof TaskFailedError
      ? error.message
      : `step ${JSON.stringify(step.id)} (${step.executor.name}) failed: ${error.message}`;
    this.#annotate(
      "warning",
      `step ${step.id}: retrying`,
      `${failure}; attempt ${attempt} in ${formatDuration(delayMs)}`,
    );
    this.#within(undefined, () => this.#inner?.stepRetry?.(step, attempt, delayMs, error));
  }

  stepSkipped(
    step: Step,
    reason: string,
    outputs?: Readonly<Record<string, string | number | boolean>>,
  ): void {
    const tally = this.#stepTally(step);
    tally.status = "skipped";
    tally.note = reason;
    if (outputs) tally.resumedOutputs = Object.entries(outputs);
    this.#within(undefined, () => this.#inner?.stepSkipped?.(step, reason, outputs));
  }

  warning(message: string, step?: Step): void {
    // a continue_on_error failure is annotated with the others when the run ends
    const tolerated = step !== undefined && this.#failures.has(step.id) && this.#continueOnError.get(step.id);
    if (!tolerated) this.#annotate("warning", "lakerun", message);
    this.#within(undefined, () => this.#inner?.warning?.(message, step));
  }

  routineFinished(ok: boolean, ms: number): void {
    while (this.#open !== undefined || this.#waiting.size > 0) {
      if (this.#open !== undefined) this.#closeGroup();
      const next = this.#waiting.keys().next();
      if (!next.done) this.#openGroup(next.value);
    }
    this.#within(undefined, () => this.#inner?.routineFinished(ok, ms));
    for (const [stepId, failure] of this.#failures) {
      const allowed = this.#continueOnError.get(stepId) === true;
      this.#annotate(
        allowed ? "warning" : "error",
        `step ${stepId} failed`,
        `step ${
          JSON.stringify(stepId)
        } (${failure.executor}) task '${failure.task}' failed: ${failure.message}${
          allowed ? " (continue_on_error)" : ""
        }`,
      );
      this.#tally.problems.push(`step ${stepId}, task ${failure.task}: ${failure.message}`);
    }
    for (const line of [...this.#errors.finish(), ...this.#warnings.finish()]) this.#run.command(line);
    this.#tally.status = ok ? "succeeded" : this.#signal?.aborted ? "interrupted" : "failed";
    this.#tally.ms = ms;
    this.#run.finish(this.#tally);
  }

  #stepTally(step: Step): StepTally {
    let tally = this.#steps.get(step.id);
    if (!tally) {
      tally = {
        id: step.id,
        executor: step.executor.name,
        status: "pending",
        continueOnError: false,
        tries: 0,
        tasks: [],
      };
      this.#steps.set(step.id, tally);
      this.#tally.steps = [...this.#steps.values()];
    }
    return tally;
  }

  #taskTally(step: StepTally, name: string): TaskTally {
    let task = step.tasks.find((t) => t.name === name);
    if (!task) {
      task = { name, status: "pending", files: 0, bytes: 0, outputs: [] };
      step.tasks.push(task);
    }
    return task;
  }

  #annotate(kind: "error" | "warning", title: string, message: string): void {
    const budget = kind === "error" ? this.#errors : this.#warnings;
    const line = budget.add({ title: this.#run.mask(title) }, this.#run.mask(message));
    if (line.startsWith("::")) this.#run.command(line);
    else this.#line(line);
  }

  /** Runs `call` with the lines it writes attributed to step `stepId` (or to no step). */
  #within(stepId: string | undefined, call: () => void): void {
    const previous = this.#context;
    this.#context = stepId;
    try {
      call();
    } finally {
      this.#context = previous;
    }
  }

  /**
   * A line of the inner reporter: into the open group, held for its step's group, or straight out; a line of
   * no step while a group is open (a skipped step, a warning) waits for that group to close.
   */
  #line(line: string): void {
    const stepId = this.#context;
    if (this.#groups && stepId === undefined && this.#open !== undefined) {
      this.#loose.push(line);
      return;
    }
    if (!this.#groups || stepId === undefined || stepId === this.#open) return this.#run.text(line);
    if (this.#open === undefined) {
      this.#openGroup(stepId);
      return this.#run.text(line);
    }
    const waiting = this.#waiting.get(stepId) ?? [];
    waiting.push(line);
    this.#waiting.set(stepId, waiting);
  }

  #openGroup(stepId: string): void {
    if (!this.#groups) return;
    const tally = this.#steps.get(stepId);
    const label = tally && tally.executor !== stepId ? `${stepId} (${tally.executor})` : stepId;
    this.#run.command(
      workflowCommand(
        "group",
        {},
        this.#run.mask(tally && tally.tries > 1 ? `${label}, try ${tally.tries}` : label),
      ),
    );
    this.#open = stepId;
    for (const line of this.#waiting.get(stepId) ?? []) this.#run.text(line);
    this.#waiting.delete(stepId);
  }

  #closeGroup(): void {
    if (this.#open === undefined) return;
    this.#run.command(workflowCommand("endgroup"));
    this.#open = undefined;
    for (const line of this.#loose.splice(0)) this.#run.text(line);
  }

  /** A step ended: close its group, print the groups of steps that ended meanwhile, open a running one's. */
  #stepEnded(stepId: string): void {
    if (!this.#groups) return;
    if (this.#open === stepId) this.#closeGroup();
    if (this.#open !== undefined) return;
    for (const [waiting] of [...this.#waiting]) {
      if (this.#steps.get(waiting)?.status === "running") continue;
      this.#openGroup(waiting);
      this.#closeGroup();
    }
    const next = this.#waiting.keys().next();
    if (!next.done) this.#openGroup(next.value);
  }
}
