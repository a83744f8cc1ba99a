/**
 * The Worker side of a step. The parent starts each Worker from a two-line module that statically imports
 * the step's executor module (a URL from the registry or a plugin folder, never from the routine) and calls
 * {@link serveStep}; the executor's code is thereby part of the Worker's module graph and needs no read
 * permission of its own. The tasks then run under the Worker's permissions.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type HelperThread, setHelperThreadStarter } from "../../lib/helper_threads.ts";
import type { ExecutorDefinition } from "../../sdk/executor.ts";
import {
  describeFailure,
  type HelperReply,
  type HelperRequest,
  runStepTasks,
  type StepMessage,
  type StepRequest,
} from "./step_runtime.ts";

/**
 * Waits for the parent's request and runs it with `definition`.
 *
 * @example The whole module a step's Worker runs (see `stepWorkerSource` in sandbox.ts)
 * ```ts ignore
 * import definition from "../../executors/staging/mod.ts";
 * import { serveStep } from "./step_worker.ts";
 *
 * serveStep(definition); // then answers the parent's { type: "run", request } with StepMessages
 * ```
 */
export function serveStep(definition: ExecutorDefinition): void {
  const lifelines: MessagePort[] = [];
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
  const onHelperReply = askHostForHelperThreads();
  self.onmessage = async (
    event: MessageEvent<
      { type: "run"; request: StepRequest; lifeline?: MessagePort } | { type: "abort" } | HelperReply
    >,
  ) => {
    const data = event.data;
    if (data.type === "helper-started" || data.type === "helper-refused" || data.type === "helper-failed") {
      return onHelperReply(data);
    }
    if (data.type === "abort") {
      controller.abort(new Error("interrupted"));
      return;
    }
    // held while the Worker lives: the host sees this port go when the Worker ends (see sandbox.ts)
    if (data.lifeline) lifelines.push(data.lifeline);
    currentTask = data.request.tasks[0];
    await runStepTasks(definition, data.request, emit, controller.signal);
  };
}

/**
 * Makes `startHelperThread` (lib/helper_threads.ts) ask the host, which starts helper threads with this step's
 * permissions far sooner than this Worker could; returns the handler for the host's answers.
 */
function askHostForHelperThreads(): (reply: HelperReply) => void {
  const waiting = new Map<
    number,
    { resolve: (helper: HelperThread) => void; reject: (error: Error) => void }
  >();
  const running = new Map<number, HelperThread>();
  let lastId = 0;
  const ask = (request: HelperRequest) => self.postMessage(request);
  setHelperThreadStarter((url, name) =>
    new Promise((resolve, reject) => {
      const id = ++lastId;
      waiting.set(id, { resolve, reject });
      ask({ type: "helper-start", id, url, name });
    })
  );
  return (reply) => {
    if (reply.type === "helper-failed") {
      const helper = running.get(reply.id);
      running.delete(reply.id);
      helper?.port.close();
      return helper?.onerror?.(reply.message);
    }
    const request = waiting.get(reply.id);
    waiting.delete(reply.id);
    if (!request) return;
    if (reply.type === "helper-refused") {
      return request.reject(new Error(`helper thread refused: ${reply.message}`));
    }
    const helper: HelperThread = {
      port: reply.port,
      onerror: undefined,
      terminate() {
        if (!running.delete(reply.id)) return;
        reply.port.close();
        ask({ type: "helper-stop", id: reply.id });
      },
    };
    running.set(reply.id, helper);
    request.resolve(helper);
  };
}
