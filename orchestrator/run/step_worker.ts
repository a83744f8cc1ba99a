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

type HostMessage =
  | { type: "lifeline"; lifeline: MessagePort }
  | { type: "run"; request: StepRequest }
  | { type: "abort" }
  | HelperReply;

/**
 * The Worker's end of the host's lifeline channel, held while the Worker lives: the host sees the channel
 * close when the Worker ends, however it ends (see sandbox.ts). It comes as the Worker's first message.
 */
const lifelines: MessagePort[] = [];

// Until a task runs, the executor's module is loading or loaded (this module is imported before it). An error
// there — top-level code refused by the step's permissions, a throw, a rejection nobody awaited — would end the
// Worker with Deno's own report and stack on stderr, or fail no task: it is kept instead, and the run request
// is answered with it.
let running = false;
let served = false;
let loadFailure: unknown;
let pendingRun: Extract<HostMessage, { type: "run" }> | undefined;
const onLoadFailure = (error: unknown) => {
  loadFailure ??= error;
  if (pendingRun) answerLoadFailure(pendingRun);
};
self.addEventListener("error", (event) => {
  if (running) return;
  event.preventDefault();
  onLoadFailure(event.error ?? new Error(event.message));
});
self.addEventListener("unhandledrejection", (event) => {
  if (running) return;
  event.preventDefault();
  onLoadFailure(event.reason);
});
self.onmessage = (event: MessageEvent<HostMessage>) => {
  const data = event.data;
  if (data.type === "lifeline") lifelines.push(data.lifeline);
  if (data.type !== "run") return;
  pendingRun = data;
  if (loadFailure !== undefined) answerLoadFailure(pendingRun);
};

function answerLoadFailure({ request }: Extract<HostMessage, { type: "run" }>): void {
  pendingRun = undefined;
  const failure = describeFailure(loadFailure);
  const message = `${request.executor}'s module failed ${
    served ? "after it loaded" : "to load"
  }: ${failure.message}`;
  self.postMessage(
    {
      type: "task-failed",
      task: request.tasks[0],
      ms: 0,
      error: { ...failure, message },
    } satisfies StepMessage,
  );
}

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
  served = true;
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
    if (!running) return; // the module's own (above)
    event.preventDefault();
    failUncaught(event.error ?? new Error(event.message));
  });
  self.addEventListener("unhandledrejection", (event) => {
    if (!running) return;
    event.preventDefault();
    failUncaught(event.reason);
  });
  const onHelperReply = askHostForHelperThreads();
  const onMessage = async (data: HostMessage) => {
    if (data.type === "lifeline") return void lifelines.push(data.lifeline);
    if (data.type === "helper-started" || data.type === "helper-refused" || data.type === "helper-failed") {
      return onHelperReply(data);
    }
    if (data.type === "abort") {
      controller.abort(new Error("interrupted"));
      return;
    }
    if (loadFailure !== undefined) return answerLoadFailure(data);
    running = true;
    currentTask = data.request.tasks[0];
    await runStepTasks(definition, data.request, emit, controller.signal);
  };
  self.onmessage = (event: MessageEvent<HostMessage>) => onMessage(event.data);
  // a request that came while the executor's module loaded
  const waiting = pendingRun;
  pendingRun = undefined;
  if (waiting) onMessage(waiting);
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
