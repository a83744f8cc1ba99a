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
import { runStepTasks, type StepMessage, type StepRequest } from "./step_runtime.ts";

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
  const emit = (message: StepMessage) => self.postMessage(message);
  self.onmessage = async (event: MessageEvent<{ type: "run"; request: StepRequest } | { type: "abort" }>) => {
    const data = event.data;
    if (data.type === "abort") {
      controller.abort(new Error("interrupted"));
      return;
    }
    await runStepTasks(definition, data.request, emit, controller.signal);
  };
}
