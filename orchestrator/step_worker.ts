/**
 * The Worker side of a step. The parent starts each Worker from a two-line module that statically imports
 * the step's executor module (a URL from the registry or a plugin folder, never from the routine) and calls
 * {@link serveStep}; the executor's code is thereby part of the Worker's module graph and needs no read
 * permission of its own. The tasks then run under the Worker's permissions.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { ExecutorDefinition } from "./contract.ts";
import { describeFailure, runStepTasks, type StepMessage, type StepRequest } from "./step_runtime.ts";

/**
 * Waits for the parent's request and runs it with `definition`.
 *
 * @example
 * ```ts
 * import definition from "../executors/staging.ts";
 * serveStep(definition);
 * ```
 */
export function serveStep(definition: ExecutorDefinition): void {
  const controller = new AbortController();
  let currentTask = "";
  const emit = (message: StepMessage) => {
    if (message.type === "task-start") currentTask = message.task;
    self.postMessage(message);
  };
  // an error thrown outside the task's own promise (a timer, a stray rejection) fails the running task
  const failUncaught = (error: unknown) =>
    self.postMessage(
      { type: "task-failed", task: currentTask, ms: 0, error: describeFailure(error) } satisfies StepMessage,
    );
  self.addEventListener("error", (event) => {
    event.preventDefault();
    failUncaught(event.error ?? new Error(event.message));
  });
  self.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    failUncaught(event.reason);
  });
  self.onmessage = async (event: MessageEvent<{ type: "run"; request: StepRequest } | { type: "abort" }>) => {
    const data = event.data;
    if (data.type === "abort") {
      controller.abort(new Error("interrupted"));
      return;
    }
    currentTask = data.request.tasks[0];
    await runStepTasks(definition, data.request, emit, controller.signal);
  };
}
