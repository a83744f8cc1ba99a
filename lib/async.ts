/**
 * Small async building blocks shared by lib/ and the executors: racing a promise against an abort signal,
 * running work on many items with bounded concurrency, and letting an abort through a loop of synchronous
 * calls.
 *
 * @module
 */

/**
 * Rejects with the signal's reason as soon as `signal` aborts, whatever `promise` does; otherwise settles as
 * `promise` does. The promise itself is not cancelled (pass the signal to the work for that).
 *
 * @example Racing a promise that never settles
 * ```ts
 * import assert from "node:assert/strict";
 * import { abortable } from "./async.ts";
 *
 * const controller = new AbortController();
 * const waiting = abortable(new Promise(() => {}), controller.signal);
 * controller.abort(new Error("stopped"));
 * await assert.rejects(waiting, /stopped/);
 * assert.equal(await abortable(Promise.resolve(42), controller.signal.aborted ? undefined : controller.signal), 42);
 * ```
 */
export function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Runs `work` on every item with at most `limit` in flight. The first failure stops new work, aborts the
 * work in flight (through the signal it receives) and is rethrown once everything settled; an aborted
 * `signal` does the same with its reason.
 *
 * @example At most two at a time
 * ```ts
 * import assert from "node:assert/strict";
 * import { runPool } from "./async.ts";
 *
 * let running = 0;
 * let most = 0;
 * await runPool([1, 2, 3, 4, 5], 2, new AbortController().signal, async () => {
 *   most = Math.max(most, ++running);
 *   await new Promise((resolve) => setTimeout(resolve, 5));
 *   running--;
 * });
 * assert.equal(most, 2);
 * ```
 */
export async function runPool<T>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  work: (item: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  signal?.throwIfAborted();
  const controller = new AbortController();
  const forward = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", forward, { once: true });
  let next = 0;
  let failure: { error: unknown } | undefined;
  const runner = async () => {
    for (;;) {
      await checkpoint(); // work that is synchronous underneath still lets an abort through
      if (failure || controller.signal.aborted || next >= items.length) break;
      const item = items[next++];
      try {
        await work(item, controller.signal);
      } catch (error) {
        if (!failure) {
          failure = { error };
          controller.abort(error);
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, runner));
  } finally {
    signal?.removeEventListener("abort", forward);
  }
  if (failure) throw failure.error;
  signal?.throwIfAborted();
}

/** How long a loop of synchronous work runs before {@link checkpoint} lets the event loop turn. */
export const CHECKPOINT_MS = 100;

let lastTurn = performance.now();
const NOTHING = new Uint8Array(0);

/**
 * One turn of the event loop: an asynchronous operation that needs no permission (the SHA-256 of nothing,
 * run off the thread), whose completion the event loop polls for together with every other pending one, the
 * host's messages included. A timer would turn it too, but timers set from a timer's continuation are nested
 * and wait at least 4 ms (HTML's clamp, which Deno follows): ten times the cost, measured in a step's Worker.
 */
const turn = () => crypto.subtle.digest("SHA-256", NOTHING);

/**
 * Throws the signal's reason once it is aborted; first, when {@link CHECKPOINT_MS} have passed since the last
 * turn, lets the event loop turn. Await it in every pass of a loop whose work is synchronous (file
 * calls on many small files): an abort arrives as a message (a step's Worker gets its interruption from the
 * runner so), and a message is only delivered between tasks, never while promises resolve synchronously, so
 * without a turn the loop would run to its end, interrupted or not. A turn costs about 0.2–0.4 ms, once per
 * 100 ms at most.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkpoint } from "./async.ts";
 *
 * const controller = new AbortController();
 * setTimeout(() => controller.abort(new Error("interrupted")), 10);
 * let passes = 0;
 * await assert.rejects(async () => {
 *   for (;;) {
 *     await checkpoint(controller.signal); // the timer above fires at a turn
 *     passes++;
 *   }
 * }, /interrupted/);
 * assert.ok(passes > 0);
 * ```
 */
export async function checkpoint(signal?: AbortSignal): Promise<void> {
  if (performance.now() - lastTurn >= CHECKPOINT_MS) {
    await turn();
    lastTurn = performance.now();
  }
  signal?.throwIfAborted();
}
