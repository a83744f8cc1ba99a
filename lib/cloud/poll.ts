/**
 * Waiting for a cloud job (an Athena query, a Glue job run, a crawl, a Redshift statement) to reach a
 * terminal state, with adaptive polling: the interval grows with the time already waited, so a short job is
 * noticed soon after it ends and a long one costs few status calls.
 *
 * The next check comes `ratio × elapsed` after the previous one (never less than `firstIntervalMs`, never
 * more than `maxIntervalMs`), minus up to 10 % of jitter: a job that ends at time T is noticed by
 * `T × (1 + ratio)` at the latest (once past the cap, `T + maxIntervalMs`), and a job of duration T costs
 * about `ln(T / first) / ln(1 + ratio)` calls before the cap plus one per `maxIntervalMs` after it. With the
 * defaults (0.5 s, ratio 0.25, cap 30 s) a 3-second query is noticed within 0.75 s of its end, and a
 * 10-minute job costs about 40 calls (Airflow polls Athena every 30 s and Glue every 6 s: 100 calls).
 *
 * @module
 */
import { abortable } from "../async.ts";

/** How to poll. */
export interface PollOptions {
  /** First interval, and the least one. Default 500 ms. */
  firstIntervalMs?: number;
  /** Longest interval. Default 30 s. */
  maxIntervalMs?: number;
  /** Interval as a fraction of the time already waited. Default 0.25. */
  ratio?: number;
  /** Give up after this long (a {@link PollTimeoutError}). Default: never. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** The clock, for tests. Default `performance.now`. */
  now?: () => number;
}

/** {@link pollUntil} gave up waiting. */
export class PollTimeoutError extends Error {
  constructor(readonly waitedMs: number, readonly lastState: string) {
    super(`still ${lastState} after ${Math.round(waitedMs / 1000)} s`);
    this.name = "PollTimeoutError";
  }
}

/** One check's answer: whether the job is done, and its state for messages. */
export interface PollAnswer<T> {
  done: boolean;
  state: string;
  value: T;
}

/**
 * The delay before the next check, given the time already waited.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nextPollDelay } from "./poll.ts";
 *
 * assert.equal(nextPollDelay(0, { random: () => 0 }), 500);
 * assert.equal(nextPollDelay(8_000, { random: () => 0 }), 2_000);
 * assert.equal(nextPollDelay(600_000, { random: () => 0 }), 30_000);
 * ```
 */
export function nextPollDelay(
  elapsedMs: number,
  options: Pick<PollOptions, "firstIntervalMs" | "maxIntervalMs" | "ratio"> & { random?: () => number } = {},
): number {
  const first = options.firstIntervalMs ?? 500;
  const max = Math.max(first, options.maxIntervalMs ?? 30_000);
  const ratio = options.ratio ?? 0.25;
  const interval = Math.min(max, Math.max(first, elapsedMs * ratio));
  return interval * (1 - 0.1 * (options.random ?? Math.random)());
}

/**
 * Calls `check` until it answers `done`, waiting {@link nextPollDelay} between calls; resolves to the last
 * answer. `check` is called at once first. Rejects with the signal's reason when aborted, and with a
 * {@link PollTimeoutError} past `timeoutMs`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pollUntil } from "./poll.ts";
 *
 * let calls = 0;
 * const answer = await pollUntil(async () => {
 *   calls++;
 *   return { done: calls === 3, state: calls === 3 ? "SUCCEEDED" : "RUNNING", value: calls };
 * }, { firstIntervalMs: 1 });
 * assert.deepEqual(answer, { done: true, state: "SUCCEEDED", value: 3 });
 * ```
 */
export async function pollUntil<T>(
  check: () => Promise<PollAnswer<T>>,
  options: PollOptions = {},
): Promise<PollAnswer<T>> {
  const now = options.now ?? (() => performance.now());
  const started = now();
  for (;;) {
    options.signal?.throwIfAborted();
    const answer = await check();
    if (answer.done) return answer;
    const elapsed = now() - started;
    if (options.timeoutMs !== undefined && elapsed >= options.timeoutMs) {
      throw new PollTimeoutError(elapsed, answer.state);
    }
    let delay = nextPollDelay(elapsed, options);
    if (options.timeoutMs !== undefined) delay = Math.min(delay, Math.max(0, options.timeoutMs - elapsed));
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await abortable(new Promise((resolve) => (timer = setTimeout(resolve, delay))), options.signal);
    } finally {
      clearTimeout(timer);
    }
  }
}
