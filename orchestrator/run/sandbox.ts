/**
 * Runs a step in its own Deno Worker whose permissions are exactly the step's scope. A refusal inside the
 * Worker fails that step only; the parent and the other steps go on unaffected.
 *
 * A Worker that ends without a word — a step calling `Deno.exit()` or `self.close()` — fails the running task:
 * the Worker holds one end of a channel (a `node:worker_threads` port: of the ports Deno has, the only one that
 * tells when its other end is gone), and the end of that channel, however it comes, is the end of the Worker.
 *
 * A step may ask for helper threads (`lib/helper_threads.ts`): the host starts each as a Worker with the same
 * permissions as the step, at most {@link MAX_HELPERS_PER_STEP} at a time, from a `blob:` URL the step made,
 * and ends them with the step.
 *
 * @module
 */
import { type HelperThread, helperThreadOf } from "../../lib/helper_threads.ts";
import { type ResolvedScope, workerPermissions } from "./permissions.ts";
import {
  describeFailure,
  type HelperReply,
  type HelperRequest,
  type StepMessage,
  type StepRequest,
} from "./step_runtime.ts";

/** Helper threads a step may have at once (lakerun's own steps use up to 3: ranged S3 downloads). */
export const MAX_HELPERS_PER_STEP = 4;

/** How long an aborted step may take to clean up before its Worker is stopped. */
export const STEP_ABORT_GRACE_MS = 4000;

/** How long the messages a Worker sent before it ended may take to arrive once its end is seen. */
const WORKER_END_GRACE_MS = 200;

const STEP_WORKER_URL = new URL("./step_worker.ts", import.meta.url).href;

/** The source of a step's Worker: static imports only, so the executor is part of the Worker's module graph. */
export function stepWorkerSource(executorModuleUrl: string): string {
  return [
    // the step's side first: it keeps what the executor's module throws while it runs (see step_worker.ts)
    `import { serveStep } from ${JSON.stringify(STEP_WORKER_URL)};`,
    `import definition from ${JSON.stringify(executorModuleUrl)};`,
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
 * @example A step, and the same step with a scope that lacks its landing folder
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRoutine } from "../routine/routine.ts";
 * import { stepScope, stepStateDir } from "./permissions.ts";
 * import { startStepSandbox } from "./sandbox.ts";
 * import type { StepMessage, StepRequest } from "./step_runtime.ts";
 *
 * const cwd = await Deno.makeTempDir();
 * await Deno.mkdir(`${cwd}/landing`);
 * await Deno.writeTextFile(`${cwd}/landing/a.csv`, "a,b\n");
 * const params = { parent_directory: "landing", dump_directory: "staging" };
 * const text = JSON.stringify({
 *   routine_name: "sandboxed",
 *   executors: { StagingExecutor: { params, tasks: ["transfer"] } },
 * });
 * const routine = await parseRoutine(text, { file: `${cwd}/routine.json`, label: "routine.json", cwd });
 * const [step] = routine.steps;
 * const scope = stepScope(routine, step, { cwd, stateRoot: ".lakerun" });
 * const stateDir = stepStateDir(`${cwd}/.lakerun`, routine.name, step.id);
 * await Deno.mkdir(stateDir, { recursive: true });
 * const request: StepRequest = {
 *   moduleUrl: step.executor.moduleUrl,
 *   executor: step.executor.name,
 *   stepId: step.id,
 *   routineName: routine.name,
 *   params: step.params,
 *   tasks: step.tasks,
 *   cwd,
 *   stateDir,
 *   runId: "example",
 * };
 *
 * const messages: StepMessage[] = [];
 * const sandbox = startStepSandbox(step.executor.moduleUrl, scope);
 * await sandbox.run(request, (message) => messages.push(message));
 * sandbox.close();
 * // the staged file, then its outputs (files, bytes, path)
 * assert.deepEqual(messages.map((m) => m.type), ["task-start", "event", "event", "event", "event", "task-end", "done"]);
 * assert.equal(await Deno.readTextFile(`${cwd}/staging/a.csv`), "a,b\n");
 *
 * const narrow = { ...scope, read: scope.read.filter((path) => path !== `${cwd}/landing`) };
 * const refused: StepMessage[] = [];
 * const narrowSandbox = startStepSandbox(step.executor.moduleUrl, narrow);
 * await narrowSandbox.run(request, (message) => refused.push(message));
 * narrowSandbox.close();
 * const failure = refused.find((m) => m.type === "task-failed");
 * assert.equal(failure?.type === "task-failed" && failure.error.permission, true);
 * assert.equal(
 *   failure?.type === "task-failed" && failure.error.message,
 *   `permission denied: read access to ${cwd}/landing is outside this step's scope`,
 * );
 * await Deno.remove(cwd, { recursive: true });
 * ```
 */
export function startStepSandbox(executorModuleUrl: string, scope: ResolvedScope): StepSandbox {
  const source = URL.createObjectURL(
    new Blob([stepWorkerSource(executorModuleUrl)], { type: "text/javascript" }),
  );
  const permissions = workerPermissions(scope);
  const worker = new Worker(source, { type: "module", name: "lakerun-step", deno: { permissions } });
  // an error while the executor's module loads (before `run` listens) would otherwise end lakerun itself
  let loadError: unknown;
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault();
    loadError ??= workerError(event);
  };
  // The lifeline goes to the Worker as soon as it can (Deno's node layer loads in ~10 ms while the Worker
  // starts, not on the way to the first step): a port sent to a Worker that has already ended never closes,
  // so it must be queued before the executor's module can end it (a top-level Deno.exit()).
  let ended = false;
  let onEnded: (() => void) | undefined;
  const lifeline = import("node:worker_threads").then(({ MessageChannel }) => {
    const channel = new MessageChannel();
    channel.port1.start(); // the port notices its other end has gone only while it listens
    channel.port1.on("close", () => {
      ended = true;
      onEnded?.();
    });
    const port = channel.port2 as unknown as MessagePort;
    worker.postMessage({ type: "lifeline", lifeline: port }, [port]);
    return channel;
  });
  const helpers = new Map<number, HelperThread>();
  const reply = (message: HelperReply, transfer: Transferable[] = []) =>
    worker.postMessage(message, transfer);
  const serveHelpers = (request: HelperRequest) => {
    if (request.type === "helper-stop") {
      helpers.get(request.id)?.terminate();
      helpers.delete(request.id);
      return;
    }
    const { id, url, name } = request;
    if (!url.startsWith("blob:")) {
      return reply({ type: "helper-refused", id, message: "a helper thread runs from a blob: URL only" });
    }
    if (helpers.size >= MAX_HELPERS_PER_STEP) {
      return reply({ type: "helper-refused", id, message: `at most ${MAX_HELPERS_PER_STEP} helper threads` });
    }
    const helper = helperThreadOf(new Worker(url, { type: "module", name, deno: { permissions } }));
    helper.onerror = (message) => {
      helpers.delete(id);
      reply({ type: "helper-failed", id, message });
    };
    helpers.set(id, helper);
    reply({ type: "helper-started", id, port: helper.port }, [helper.port]);
  };
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      lifeline.then((channel) => channel.port1.close());
      for (const helper of helpers.values()) helper.terminate();
      helpers.clear();
      worker.terminate();
      URL.revokeObjectURL(source);
    }
  };
  return {
    close,
    async run(request, onMessage, signal) {
      // the Worker's end of this channel goes when the Worker does, however it ends
      const channel = await lifeline;
      return await new Promise<void>((resolvePromise) => {
        let currentTask = request.tasks[0];
        let settled = false;
        const finish = () => {
          if (settled) return;
          settled = true;
          signal?.removeEventListener("abort", onAbort);
          channel.port1.close(); // (its own close: the handler below sees the step settled)
          close();
          resolvePromise();
        };
        const fail = (message: StepMessage & { type: "task-failed" }) => {
          onMessage(message);
          finish();
        };
        const onAbort = () => {
          worker.postMessage({ type: "abort" });
          // give the task a moment to clean up its temporary files and stop what it started in the cloud,
          // then stop the Worker (GitHub Actions sends SIGTERM 7.5 s after SIGINT, and kills 2.5 s later)
          setTimeout(() => {
            if (!settled) {
              fail({ type: "task-failed", task: currentTask, ms: 0, error: { message: "interrupted" } });
            }
          }, STEP_ABORT_GRACE_MS);
        };
        worker.onmessage = (event: MessageEvent<StepMessage | HelperRequest>) => {
          const message = event.data;
          if (message.type === "helper-start" || message.type === "helper-stop") return serveHelpers(message);
          if (message.type === "task-start") currentTask = message.task;
          if (message.type === "task-failed") return fail(message);
          onMessage(message);
          if (message.type === "done") finish();
        };
        worker.onerror = (event: ErrorEvent) => {
          event.preventDefault();
          fail({ type: "task-failed", task: currentTask, ms: 0, error: describeFailure(workerError(event)) });
        };
        if (loadError !== undefined) {
          const failure = describeFailure(loadError);
          const message = `${request.executor}'s module failed to load: ${failure.message}`;
          return fail({ type: "task-failed", task: currentTask, ms: 0, error: { ...failure, message } });
        }
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
        onEnded = () => {
          if (settled) return; // no timer once the step is over
          setTimeout(() => {
            if (settled) return;
            const message = `the step's Worker ended before task '${currentTask}' did ` +
              "(a step must not call Deno.exit() or self.close())";
            fail({ type: "task-failed", task: currentTask, ms: 0, error: { message } });
          }, WORKER_END_GRACE_MS);
        };
        if (ended) return onEnded(); // it ended while its executor's module loaded
        worker.postMessage({ type: "run", request });
      });
    },
  };
}

/**
 * The error a Worker's error event stands for: its own when the event carries it, else one made from the
 * event's text (`Uncaught (in promise) NotCapable: Requires read access to …`), named as the text names it.
 */
function workerError(event: ErrorEvent): unknown {
  if (event.error instanceof Error) return event.error;
  const text = String(event.message ?? event.error ?? "the step's Worker failed").replace(
    /^Uncaught (?:\(in promise\) )?/,
    "",
  );
  const named = /^([A-Z]\w*): ([\s\S]*)$/.exec(text);
  const error = new Error(named ? named[2] : text);
  if (named) error.name = named[1];
  return error;
}
