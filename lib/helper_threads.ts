/**
 * Helper threads: a program (from a `blob:` URL) run on its own thread with exactly the permissions of the
 * thread that asked for it, and reached through a `MessagePort`.
 *
 * Inside a lakerun step, the step's host starts the thread (see `orchestrator/sandbox.ts`) with the step's own
 * permission scope: a Worker started by a step's Worker takes ~0.5 s to come up in Deno 2.9 (its thread sleeps
 * in a 1 ms loop before running anything), one started by the host 10–30 ms. Anywhere else (a library user,
 * a test) the thread is a Worker started here with `permissions: "inherit"`. Either way the thread's program
 * first receives `{ port }` on `self`, then talks through that port only:
 *
 * ```js ignore
 * self.onmessage = ({ data: { port } }) => {
 *   port.onmessage = ({ data }) => port.postMessage(`pong ${data}`);
 * };
 * ```
 *
 * @module
 */

/** A running helper thread. */
export interface HelperThread {
  /** The thread's end of the conversation. */
  readonly port: MessagePort;
  /** Called once if the thread fails outside its own handlers (an uncaught error); it is then ended. */
  onerror: ((message: string) => void) | undefined;
  /** Ends the thread at once (idempotent). */
  terminate(): void;
}

/** Starts a helper thread for `url` (a `blob:` URL) named `name`; set by the step's runtime. */
export type HelperThreadStarter = (url: string, name: string) => Promise<HelperThread>;

let starter: HelperThreadStarter | undefined;

/**
 * Makes {@link startHelperThread} ask `start` (the step's host) instead of starting Workers itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helperThreadOf, setHelperThreadStarter, startHelperThread } from "./helper_threads.ts";
 *
 * const asked: string[] = [];
 * setHelperThreadStarter((url, name) => {
 *   asked.push(name); // a step's runtime asks its host here instead
 *   return Promise.resolve(helperThreadOf(new Worker(url, { type: "module", name })));
 * });
 * const url = URL.createObjectURL(new Blob(["self.onmessage = () => {};"], { type: "text/javascript" }));
 * const helper = await startHelperThread(url, "lakerun-range");
 * helper.terminate();
 * setHelperThreadStarter(undefined);
 * URL.revokeObjectURL(url);
 * assert.deepEqual(asked, ["lakerun-range"]);
 * ```
 */
export function setHelperThreadStarter(start: HelperThreadStarter | undefined): void {
  starter = start;
}

/**
 * Starts `url`'s program on a thread of its own with this thread's permissions; see the module documentation
 * for how it is reached.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startHelperThread } from "./helper_threads.ts";
 *
 * const source = `self.onmessage = ({ data: { port } }) => {
 *   port.onmessage = ({ data }) => port.postMessage("pong " + data);
 * };`;
 * const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
 * const helper = await startHelperThread(url, "lakerun-echo");
 * const answer = new Promise((resolve) => helper.port.onmessage = ({ data }) => resolve(data));
 * helper.port.postMessage("ping");
 * assert.equal(await answer, "pong ping");
 * helper.terminate();
 * URL.revokeObjectURL(url);
 * ```
 */
export function startHelperThread(url: string, name: string): Promise<HelperThread> {
  if (starter) return starter(url, name);
  const worker = new Worker(url, { type: "module", name, deno: { permissions: "inherit" } });
  return Promise.resolve(helperThreadOf(worker));
}

/**
 * Hands a freshly started Worker its end of a new channel; returns the other end as a {@link HelperThread}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helperThreadOf } from "./helper_threads.ts";
 *
 * const source = `self.onmessage = ({ data: { port } }) => port.postMessage("ready");`;
 * const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
 * const helper = helperThreadOf(new Worker(url, { type: "module" }));
 * const first = await new Promise((resolve) => helper.port.onmessage = ({ data }) => resolve(data));
 * assert.equal(first, "ready");
 * helper.terminate();
 * helper.terminate(); // idempotent
 * URL.revokeObjectURL(url);
 * ```
 */
export function helperThreadOf(worker: Worker): HelperThread {
  const { port1, port2 } = new MessageChannel();
  worker.postMessage({ port: port1 }, [port1]);
  let ended = false;
  const helper: HelperThread = {
    port: port2,
    onerror: undefined,
    terminate() {
      if (ended) return;
      ended = true;
      port2.close();
      worker.terminate();
    },
  };
  worker.onerror = (event) => {
    event.preventDefault();
    const report = helper.onerror;
    helper.terminate();
    report?.(event.message);
  };
  return helper;
}
