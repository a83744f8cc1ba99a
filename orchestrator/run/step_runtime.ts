/**
 * Runs the tasks of one step, in order, and reports what happens as plain messages. The same code runs
 * inside the step's Worker (the normal case) and in-process (only to measure the sandbox's cost).
 *
 * @module
 */
import type {
  AwsSettings,
  ExecutorDefinition,
  S3Settings,
  TaskContext,
  TaskEvent,
} from "../../sdk/executor.ts";
import { SecretMask } from "../../lib/mask.ts";

/** Least time between two progress events sent to the parent. */
const PROGRESS_INTERVAL_MS = 200;

/** What the parent sends to start a step. */
export interface StepRequest {
  moduleUrl: string;
  executor: string;
  stepId: string;
  routineName: string;
  params: Record<string, unknown>;
  tasks: string[];
  cwd: string;
  stateDir: string;
  /** The routine run (see run_state.ts). */
  runId: string;
  aws?: AwsSettings;
  s3?: S3Settings;
  /** The run's secret values that `params` hold, for {@link TaskContext.mask}. */
  secrets?: string[];
}

/** A failure as it crosses the Worker boundary. */
export interface FailureInfo {
  message: string;
  stack?: string;
  /** Set when the runtime refused an access outside the step's scope. */
  permission?: boolean;
}

/** Messages a running step sends to the parent. */
export type StepMessage =
  | { type: "task-start"; task: string }
  | { type: "task-end"; task: string; ms: number }
  | { type: "task-failed"; task: string; ms: number; error: FailureInfo }
  | { type: "event"; task: string; event: TaskEvent }
  | { type: "done" };

/** A step asking its host for a helper thread, or letting one go (see `lib/helper_threads.ts`). */
export type HelperRequest =
  | { type: "helper-start"; id: number; url: string; name: string }
  | { type: "helper-stop"; id: number };

/** The host's answers about helper threads. */
export type HelperReply =
  | { type: "helper-started"; id: number; port: MessagePort }
  | { type: "helper-refused"; id: number; message: string }
  | { type: "helper-failed"; id: number; message: string };

/**
 * Why the parent cannot take an event a step reported, or `undefined` when it can. A step's report crosses
 * the Worker boundary as a structured clone, so it may hold what the types forbid: an output must be a string,
 * a finite number or a boolean (as `TaskEvent` says; it is stored in the run record and put in templates); any
 * other event may hold only strings, numbers, booleans and null (a bigint or an object would break the
 * console, the JSON log and the record).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { eventProblem } from "./step_runtime.ts";
 *
 * assert.equal(eventProblem({ type: "output", name: "rows", value: 3 }), undefined);
 * assert.equal(eventProblem({ type: "moved", files: 1, bytes: 10 }), undefined);
 * assert.equal(
 *   eventProblem({ type: "output", name: "rows", value: 12345678901234567890n }),
 *   `output "rows" is a bigint (12345678901234567890n): an output is a string, a finite number or a boolean`,
 * );
 * const circular: Record<string, unknown> = {};
 * circular.self = circular;
 * assert.match(eventProblem({ type: "output", name: "rows", value: circular })!, /^output "rows" is an object:/);
 * assert.match(eventProblem({ type: "output", name: "rows", value: NaN })!, /^output "rows" is NaN:/);
 * assert.match(eventProblem({ type: "output", name: "", value: 1 })!, /^an output's name must be a non-empty string/);
 * assert.equal(
 *   eventProblem({ type: "moved", files: 1, bytes: 10n }),
 *   `a "moved" report's bytes is a bigint (10n): a report holds strings, numbers and booleans`,
 * );
 * ```
 */
export function eventProblem(event: unknown): string | undefined {
  if (typeof event !== "object" || event === null || typeof (event as { type?: unknown }).type !== "string") {
    return `a report must be an object with a type, got ${kindOf(event)}`;
  }
  const { type, name, value } = event as { type: string; name?: unknown; value?: unknown };
  if (type === "output") {
    if (typeof name !== "string" || name === "") {
      return `an output's name must be a non-empty string, got ${kindOf(name)}`;
    }
    const ok = typeof value === "string" || typeof value === "boolean" ||
      (typeof value === "number" && Number.isFinite(value));
    return ok
      ? undefined
      : `output ${JSON.stringify(name)} is ${
        kindOf(value)
      }: an output is a string, a finite number or a boolean`;
  }
  for (const [key, field] of Object.entries(event)) {
    if (field === null || ["string", "number", "boolean", "undefined"].includes(typeof field)) continue;
    return `a ${JSON.stringify(type)} report's ${key} is ${
      kindOf(field)
    }: a report holds strings, numbers and booleans`;
  }
  return undefined;
}

/** What `value` is, for an error message (never throws: a bigint, an object with cycles…). */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "bigint": {
      const text = `${value}n`;
      return `a bigint (${text.length > 40 ? `${text.slice(0, 37)}…` : text})`;
    }
    case "number":
      return String(value);
    case "string":
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}…` : value);
    case "undefined":
      return "undefined";
    case "object":
      return "an object";
    default:
      return `a ${typeof value}`;
  }
}

/**
 * Describes an error for the parent, rewording Deno's permission refusals to name the resource.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeFailure } from "./step_runtime.ts";
 *
 * const refusal = new Deno.errors.NotCapable(
 *   'Requires read access to "/etc/passwd", run again with the --allow-read flag',
 * );
 * const { message, permission } = describeFailure(new Error("cannot open the file", { cause: refusal }));
 * assert.equal(message, "permission denied: read access to /etc/passwd is outside this step's scope");
 * assert.equal(permission, true);
 * assert.equal(describeFailure(new Error("boom")).message, "boom");
 * const imported = new TypeError(
 *   'Requires read access to "/etc/os-release", run again with the --allow-read flag\n    at file:///t.ts:1:8',
 * );
 * assert.equal(describeFailure(imported).message, "permission denied: read access to /etc/os-release is outside this step's scope");
 * ```
 */
export function describeFailure(error: unknown): FailureInfo {
  if (!(error instanceof Error)) return { message: String(error) };
  const denial = /Requires (\w+) access to "?([^",]*)"?/.exec(error.message);
  // a module that may not be imported fails with a TypeError of that text, its importer's location on a
  // second line
  const importDenied = denial !== null && error.message.startsWith("Requires ");
  if (error.name === "NotCapable" || (error.name === "PermissionDenied" && denial) || importDenied) {
    const what = denial ? `${denial[1]} access to ${denial[2]}` : error.message;
    return {
      message: `permission denied: ${what} is outside this step's scope`,
      stack: error.stack,
      permission: true,
    };
  }
  const cause = error.cause instanceof Error ? describeFailure(error.cause) : undefined;
  if (cause?.permission) return { ...cause, stack: error.stack };
  return { message: error.message || error.name, stack: error.stack };
}

/**
 * Runs `request.tasks` of `definition` one after the other; stops at the first failure.
 * Returns true when every task succeeded.
 */
export async function runStepTasks(
  definition: ExecutorDefinition,
  request: StepRequest,
  emit: (message: StepMessage) => void,
  signal: AbortSignal,
): Promise<boolean> {
  const shared = new Map<string, unknown>();
  const secrets = new SecretMask();
  for (const value of request.secrets ?? []) secrets.add(value);
  for (const task of request.tasks) {
    const started = performance.now();
    if (!Object.hasOwn(definition.tasks, task)) {
      emit({
        type: "task-failed",
        task,
        ms: 0,
        error: { message: `${request.executor} has no task '${task}'` },
      });
      return false;
    }
    emit({ type: "task-start", task });
    let lastProgress = 0;
    const report = (event: TaskEvent) => {
      if (event.type === "progress") {
        // progress comes per chunk; the console needs a few updates a second
        const now = performance.now();
        if (now - lastProgress < PROGRESS_INTERVAL_MS && event.bytes !== event.total) return;
        lastProgress = now;
      }
      emit({ type: "event", task, event });
    };
    const context: TaskContext<Record<string, unknown>> = {
      params: request.params,
      stepId: request.stepId,
      routineName: request.routineName,
      cwd: request.cwd,
      resolve: (path) => resolvePath(request.cwd, path),
      stateDir: request.stateDir,
      runId: request.runId,
      aws: request.aws,
      s3: request.s3,
      report,
      log: (message) => report({ type: "log", message }),
      mask: (text) => secrets.mask(text),
      signal,
      shared,
    };
    try {
      await definition.tasks[task].run(context);
    } catch (error) {
      emit({ type: "task-failed", task, ms: performance.now() - started, error: describeFailure(error) });
      return false;
    }
    emit({ type: "task-end", task, ms: performance.now() - started });
  }
  emit({ type: "done" });
  return true;
}

/** Resolves `path` against `cwd` without touching the file system (POSIX and Windows-style absolute paths kept). */
function resolvePath(cwd: string, path: string): string {
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path)) return normalise(path);
  return normalise(`${cwd.replace(/\/+$/, "")}/${path}`);
}

function normalise(path: string): string {
  const out: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  return `/${out.join("/")}`;
}
