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
 * ```
 */
export function describeFailure(error: unknown): FailureInfo {
  if (!(error instanceof Error)) return { message: String(error) };
  const denial = /Requires (\w+) access to "?([^",]*)"?/.exec(error.message);
  if (error.name === "NotCapable" || (error.name === "PermissionDenied" && denial)) {
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
