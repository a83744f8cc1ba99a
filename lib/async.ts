/**
 * Small async building blocks shared by lib/ and the executors: racing a promise against an abort signal,
 * and running work on many items with bounded concurrency.
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
    while (!failure && !controller.signal.aborted && next < items.length) {
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
