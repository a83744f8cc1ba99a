/**
 * One request and its response ({@link Exchange}): reading the body chunk by chunk under the read timeout,
 * and tearing the connection down.
 *
 * @module
 */

import { abortable } from "../async.ts";
import { byobReader } from "../streams.ts";
import { TimeoutMark } from "./errors.ts";

/** One request and its response; owns the AbortController that tears down its connection. */
export class Exchange {
  private reader?: ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader;
  private disposed = false;

  private readonly unlink: () => void;

  /**
   * `ctrl` is the controller the request was made with; `signal` (the caller's) aborts it from now on.
   * `attempt` is the 1-based attempt number of the request.
   */
  constructor(
    readonly response: Response,
    readonly attempt: number,
    private readonly ctrl: AbortController,
    signal: AbortSignal | undefined,
  ) {
    this.unlink = linkAbort(signal, ctrl);
  }

  /**
   * Reads one chunk; rejects with a TimeoutMark after `idleMs` without data, or with the abort reason. With
   * `into`, a body that is a byte stream (a fetch response's is) is read into that buffer, which is then
   * transferred to the view returned (`into` is detached); otherwise the chunk is the body's own.
   */
  async read(idleMs: number, into?: Uint8Array): Promise<ReadableStreamReadResult<Uint8Array>> {
    const body = this.response.body;
    if (!body) return { done: true, value: undefined };
    this.reader ??= (into && byobReader(body)) || body.getReader();
    const reader = this.reader;
    const signal = this.ctrl.signal;
    signal.throwIfAborted();
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (Number.isFinite(idleMs)) {
      timer = setTimeout(() => this.ctrl.abort(new TimeoutMark(`no data for ${idleMs / 1000} s`)), idleMs);
    }
    try {
      // The read may still reject after the abort won the race: `abortable` handles that rejection.
      const reading = reader instanceof ReadableStreamBYOBReader
        ? reader.read(into ?? new Uint8Array(64 * 1024))
        : reader.read();
      return await abortable(reading, signal);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops the response and its connection. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.unlink();
    if (this.reader) this.reader.cancel().catch(() => {});
    else this.response.body?.cancel().catch(() => {});
    this.ctrl.abort();
  }
}

/** Aborts `ctrl` (with the same reason) when `signal` aborts; returns the function that stops that. */
export function linkAbort(signal: AbortSignal | undefined, ctrl: AbortController): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    ctrl.abort(signal.reason);
    return () => {};
  }
  const onAbort = () => ctrl.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}
