/**
 * When to try again and how long to wait first: which failures are retryable, the exponential backoff with
 * full jitter, `Retry-After`, and the abortable sleep between attempts.
 *
 * @module
 */

import { abortable } from "../async.ts";

/** Additional attempts after the first when `RequestSpec.retries` is not given. */
export const DEFAULT_RETRIES = 3;
/** Base delay in seconds of the backoff when `RequestSpec.retryDelay` is not given. */
export const DEFAULT_RETRY_DELAY_S = 1;
const MAX_BACKOFF_S = 30;
const MAX_RETRY_AFTER_S = 120;
const RETRYABLE_STATUS = new Set([408, 429]);

/** Whether a reply with this (non-2xx) status is worth another attempt: 5xx, 408 and 429. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || RETRYABLE_STATUS.has(status);
}

/** Whether a rejection of `fetch` is a connection error worth another attempt (not a permission error, an
 * invalid URL or a certificate problem). */
export function isRetryableFetchError(err: unknown): boolean {
  if (!(err instanceof TypeError)) return false; // permission errors and the like
  return !/are blocked|invalid url|unsupported|certificate/i.test(err.message);
}

/**
 * Milliseconds to wait before retry number `retry` (1-based): `retryAfterMs` when the reply had a valid
 * `Retry-After`, else uniformly random in `[0, min(30 s, baseDelayMs * 2^(retry-1))]` (full jitter).
 */
export function retryDelayMs(retry: number, baseDelayMs: number, retryAfterMs?: number): number {
  const ceiling = Math.min(MAX_BACKOFF_S * 1000, baseDelayMs * 2 ** (retry - 1));
  return Math.round(retryAfterMs ?? Math.random() * ceiling);
}

/** `Retry-After` as milliseconds (seconds or HTTP-date), capped; undefined if absent or invalid. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    const date = Date.parse(v);
    if (Number.isNaN(date)) return undefined;
    ms = Math.max(0, date - Date.now());
  }
  return Math.min(ms, MAX_RETRY_AFTER_S * 1000);
}

/** Resolves after `ms`; rejects with `signal.reason` as soon as `signal` aborts (and drops the timer). */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await abortable(new Promise<void>((resolve) => timer = setTimeout(resolve, ms)), signal);
  } finally {
    clearTimeout(timer);
  }
}
