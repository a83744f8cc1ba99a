/**
 * Runs a step in its own Deno Worker whose permissions are exactly the step's scope. A refusal inside the
 * Worker fails that step only; the parent and the other steps go on unaffected.
 *
 * @module
 */
import { type ResolvedScope, workerPermissions } from "./permissions.ts";
import { describeFailure, type StepMessage, type StepRequest } from "./step_runtime.ts";

const STEP_WORKER_URL = new URL("./step_worker.ts", import.meta.url).href;

/** The source of a step's Worker: static imports only, so the executor is part of the Worker's module graph. */
export function stepWorkerSource(executorModuleUrl: string): string {
  return [
    `import definition from ${JSON.stringify(executorModuleUrl)};`,
    `import { serveStep } from ${JSON.stringify(STEP_WORKER_URL)};`,
    "serveStep(definition);",
  ].join("\n");
}

/** A Worker started for one step, ready to receive its request. */
export interface StepSandbox {
  /** Runs the step; resolves once it finished, failed or was aborted. Forwards every message to `onMessage`. */
  run(request: StepRequest, onMessage: (message: StepMessage) => void, signal?: AbortSignal): Promise<void>;
  /** Stops the Worker (idempotent). */
  close(): void;
}

/**
 * Starts a Worker for a step with `scope` as its permissions. Starting is separate from running so that
 * the next step's Worker can boot while the current step works.
 *
 * @example
 * ```ts
 * const sandbox = startStepSandbox(step.executor.moduleUrl, scope);
 * await sandbox.run(request, (message) => console.log(message));
 * sandbox.close();
 * ```
 */
export function startStepSandbox(executorModuleUrl: string, scope: ResolvedScope): StepSandbox {
  const source = URL.createObjectURL(
    new Blob([stepWorkerSource(executorModuleUrl)], { type: "text/javascript" }),
  );
  const worker = new Worker(source, {
    type: "module",
    name: "lakerun-step",
    deno: { permissions: workerPermissions(scope) },
  });
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      worker.terminate();
      URL.revokeObjectURL(source);
    }
  };
  return {
    close,
    run(request, onMessage, signal) {
      return new Promise<void>((resolvePromise) => {
        let currentTask = request.tasks[0];
        let settled = false;
        const finish = () => {
          if (settled) return;
          settled = true;
          signal?.removeEventListener("abort", onAbort);
          close();
          resolvePromise();
        };
        const fail = (message: StepMessage & { type: "task-failed" }) => {
          onMessage(message);
          finish();
        };
        const onAbort = () => {
          worker.postMessage({ type: "abort" });
          // give the task a moment to clean up its temporary files, then stop the Worker
          setTimeout(() => {
            if (!settled) {
              fail({ type: "task-failed", task: currentTask, ms: 0, error: { message: "interrupted" } });
            }
          }, 2000);
        };
        worker.onmessage = (event: MessageEvent<StepMessage>) => {
          const message = event.data;
          if (message.type === "task-start") currentTask = message.task;
          if (message.type === "task-failed") return fail(message);
          onMessage(message);
          if (message.type === "done") finish();
        };
        worker.onerror = (event: ErrorEvent) => {
          event.preventDefault();
          const error = event.error ?? new Error(event.message);
          fail({ type: "task-failed", task: currentTask, ms: 0, error: describeFailure(error) });
        };
        worker.onmessageerror = () => {
          fail({
            type: "task-failed",
            task: currentTask,
            ms: 0,
            error: { message: "a message from the step could not be read" },
          });
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
        worker.postMessage({ type: "run", request });
      });
    },
  };
}
