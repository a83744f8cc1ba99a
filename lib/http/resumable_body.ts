/**
 * The body stream handed to `consume` ({@link ResumableBody}): it resumes a cut download with `Range` /
 * `If-Range` where it can, and otherwise errors with {@link RestartRequired} so that the download starts
 * over. The contract is described in the `lib/http/mod.ts` module documentation.
 *
 * @module
 */

import type { BodyInfo } from "./callbacks.ts";
import { contentDecoders } from "./content_encoding.ts";
import type { Exchange } from "./exchange.ts";
import type { Session } from "./session.ts";

/**
 * Raised inside the body stream when the download must start over; see the `lib/http/mod.ts` module
 * documentation.
 */
export class RestartRequired extends Error {
  /** Always `"RestartRequired"`. */
  override name = "RestartRequired";
  /**
   * `message` is the redacted message shown if it escapes; `reason` what cut the body, reported by the next
   * attempt's `onRetry`; `fresh` a `200` reply already at hand to start over with (no new request then).
   */
  constructor(message: string, readonly reason: string, readonly fresh?: Exchange) {
    super(message);
  }
}

/** The stream handed to `consume`: pulls from the current exchange, resumes or restarts on truncation. */
export class ResumableBody {
  /** The body as `consume` reads it (content-decoded when the reply was content-encoded). */
  readonly stream: ReadableStream<Uint8Array>;
  /** What `consume` is told about the body; `resumedFrom` is updated live. */
  readonly info: BodyInfo;
  /** Set when the stream errored with a restartable error. */
  restart?: RestartRequired;
  private exchange: Exchange;
  private received = 0;
  /** Bytes expected in total, when known (from the first reply, or learned from a Content-Range). */
  private total?: number;
  /** End offset (exclusive) of the current segment, when known. */
  private segmentEnd?: number;
  private readonly validator?: string;
  private readonly validatorIsEtag: boolean;
  private readonly resumable: boolean;
  /** Aborted when the stream is cancelled or disposed: stops a resume in progress. */
  private readonly lifetime = new AbortController();
  private readonly waitSignal: AbortSignal;

  /** `first`: the reply that starts this body; resumes are requested through `session`. */
  constructor(private readonly session: Session, first: Exchange) {
    this.exchange = first;
    const res = first.response;
    const h = res.headers;
    // Lengths, ranges and validators refer to the bytes on the wire (before content decoding).
    const length = h.get("content-length");
    if (length !== null && /^\s*\d+\s*$/.test(length)) this.total = Number(length);
    this.segmentEnd = this.total;
    const etag = h.get("etag")?.trim();
    const strongEtag = etag && !etag.startsWith("W/") ? etag : undefined;
    this.validator = strongEtag ?? h.get("last-modified")?.trim() ?? undefined;
    this.validatorIsEtag = strongEtag !== undefined;
    // A 206 here only answers a Range header the caller set: served as is, never resumed.
    this.resumable = res.status === 200 && !!this.validator &&
      /\bbytes\b/i.test(h.get("accept-ranges") ?? "") && !session.target.headers.has("range");
    this.info = {
      url: res.url || session.target.url.href,
      status: res.status,
      headers: h,
      contentLength: this.total,
      attempt: first.attempt,
    };
    const user = session.signal;
    this.waitSignal = user ? AbortSignal.any([user, this.lifetime.signal]) : this.lifetime.signal;
    // a byte stream: a reader can have the body read into its own buffers (BYOB), with nothing copied
    const raw: ReadableStream<Uint8Array> = new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: CHUNK,
      pull: (controller) => this.pull(controller),
      cancel: () => this.dispose(),
    }, { highWaterMark: 0 });
    const decoders = contentDecoders(h.get("content-encoding"));
    if (decoders.length) this.info.contentLength = undefined; // the decoded length is unknown
    this.stream = decoders.reduce(
      (stream, d) => stream.pipeThrough(d as unknown as TransformStream<Uint8Array, Uint8Array>),
      raw,
    );
  }

  /** Stops everything: the current connection and any resume in progress. Idempotent. */
  dispose(): void {
    this.lifetime.abort(new Error("body disposed"));
    this.exchange.dispose();
  }

  /** Whether {@link dispose} was called (or the stream cancelled). */
  private get disposed(): boolean {
    return this.lifetime.signal.aborted;
  }

  /**
   * Reads the next chunk into the reader's buffer (the stream's request), resuming or restarting on
   * truncation; errors the stream on failure.
   */
  private async pull(controller: ReadableByteStreamController): Promise<void> {
    const target = new ReadTarget(controller);
    try {
      while (!this.disposed) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = target.received(await this.exchange.read(this.session.readMs, target.usable()));
        } catch (err) {
          if (this.session.signal?.aborted) throw this.session.signal.reason;
          if (this.disposed) return;
          await this.recover(this.session.describe(err) + ` after ${this.received}${this.of()} bytes`);
          continue;
        }
        if (this.disposed) return;
        if (!chunk.done) {
          const n = chunk.value.byteLength;
          if (n === 0) continue;
          if (this.segmentEnd !== undefined && this.received + n > this.segmentEnd) {
            throw this.restartOrFail(`body longer than announced (${this.segmentEnd} bytes)`);
          }
          this.received += n;
          target.answer(chunk.value);
          this.session.events.onProgress?.(this.received, this.total);
          return;
        }
        // A clean end: complete only if every announced byte arrived (a short body never looks complete).
        const expected = Math.max(this.segmentEnd ?? 0, this.total ?? 0);
        if (this.received < expected) {
          await this.recover(`body ended after ${this.received}${this.of()} bytes`);
          continue;
        }
        this.exchange.dispose();
        target.close();
        return;
      }
    } catch (err) {
      this.exchange.dispose();
      if (this.disposed && !this.session.signal?.aborted) return; // cancelled: nobody is listening
      if (err instanceof RestartRequired) this.restart = err;
      controller.error(err);
    }
  }

  /** `" of <total>"` when the total is known, for messages. */
  private of(): string {
    return this.total === undefined ? "" : ` of ${this.total}`;
  }

  /** A RestartRequired if budget remains (or a fresh 200 is at hand), else the final HttpError. */
  private restartOrFail(reason: string, fresh?: Exchange): Error {
    if (!fresh && this.session.used >= this.session.maxAttempts) return this.session.exhausted(reason);
    return new RestartRequired(this.session.message(`${reason}; restarting the download`), reason, fresh);
  }

  /** Swaps in a resumed exchange, or throws RestartRequired / a final error. */
  private async recover(reason: string): Promise<void> {
    this.exchange.dispose();
    if (!this.resumable) throw this.restartOrFail(reason);
    const from = this.received;
    const next = await this.session.open({
      reason,
      range: { from, ifRange: this.validator! },
      signal: this.waitSignal,
    });
    const res = next.response;
    if (res.status === 200) {
      // The resource changed (If-Range failed) or the server ignored Range: this reply is a new download.
      throw this.restartOrFail(`${reason}; the resource changed, a resume got HTTP 200`, next);
    }
    const cr = parseContentRange(res.headers.get("content-range"));
    const etag = res.headers.get("etag")?.trim();
    let problem: string | undefined;
    if (res.status !== 206) problem = `a resume got HTTP ${res.status}`;
    else if (!cr) problem = "a resume got 206 without a valid Content-Range";
    else if (cr.start !== from) problem = `a resume asked for byte ${from} and got ${cr.start}`;
    else if (cr.total !== undefined && this.total !== undefined && cr.total !== this.total) {
      problem = `the resource changed size (${this.total} -> ${cr.total})`;
    } else if (cr.total !== undefined && cr.end >= cr.total) {
      problem = "a resume got an invalid Content-Range";
    } else if (this.validatorIsEtag && etag && etag !== this.validator) {
      problem = "the resource changed (ETag)";
    }
    if (problem) {
      next.dispose();
      throw this.restartOrFail(`${reason}; ${problem}`);
    }
    this.exchange = next;
    this.segmentEnd = cr!.end + 1;
    this.total ??= cr!.total;
    this.info.resumedFrom = from;
  }
}

/** Bytes a read asks for when its reader gives no buffer of its own. */
const CHUNK = 64 * 1024;

/**
 * Where one pull of a byte stream reads to: the buffer of the stream's pending request, which a BYOB read of
 * the response body moves to the view it returns (detaching the request's); later reads of the same pull
 * (after an empty chunk, or a resume) use the buffer where it moved.
 */
class ReadTarget {
  readonly #controller: ReadableByteStreamController;
  readonly #request: ReadableStreamBYOBRequest | null;
  readonly #length: number;
  readonly #offset: number;
  readonly #bufferLength: number;
  /** The request's bytes, wherever they are now; undefined without a request. */
  buffer: Uint8Array | undefined;
  /** Whether a read moved the request's buffer into {@link ReadTarget.buffer}'s. */
  #moved = false;

  constructor(controller: ReadableByteStreamController) {
    this.#controller = controller;
    this.#request = controller.byobRequest;
    const view = this.#request?.view;
    this.buffer = view ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength) : undefined;
    this.#length = view?.byteLength ?? 0;
    this.#offset = view?.byteOffset ?? 0;
    this.#bufferLength = view?.buffer.byteLength ?? 0;
  }

  /**
   * The buffer to read into next. A read that failed took the buffer with it: a new one of the same shape
   * (the stream checks the buffer's length and the view's offset) takes its place.
   */
  usable(): Uint8Array | undefined {
    if (this.buffer && this.buffer.byteLength === 0) {
      this.buffer = new Uint8Array(new ArrayBuffer(this.#bufferLength), this.#offset, this.#length);
      this.#moved = true;
    }
    return this.buffer;
  }

  /** Takes note of where a read put the request's buffer, and returns the read's result. */
  received(result: ReadableStreamReadResult<Uint8Array>): ReadableStreamReadResult<Uint8Array> {
    const buffer = this.buffer;
    if (buffer && buffer.byteLength === 0 && result.value) { // detached: the read moved it
      this.buffer = new Uint8Array(result.value.buffer, result.value.byteOffset, this.#length);
      this.#moved = true;
    }
    return result;
  }

  /** Hands `chunk` to the reader: as the filled part of its own buffer, or as a chunk of the body's. */
  answer(chunk: Uint8Array): void {
    const request = this.#request!;
    if (!this.#moved || !this.buffer) return this.#controller.enqueue(chunk);
    if (chunk.buffer === this.buffer.buffer) return request.respondWithNewView(chunk);
    // a body that is not a byte stream after a resume: its chunk is copied into the moved buffer
    const n = Math.min(chunk.byteLength, this.#length);
    this.buffer.set(chunk.subarray(0, n));
    request.respondWithNewView(this.buffer.subarray(0, n));
    if (n < chunk.byteLength) this.#controller.enqueue(chunk.slice(n));
  }

  /** Closes the stream, answering the reader's pending request with no bytes. */
  close(): void {
    this.#controller.close();
    if (!this.#request) return;
    if (this.#moved && this.buffer) this.#request.respondWithNewView(this.buffer.subarray(0, 0));
    else this.#request.respond(0);
  }
}

/** `Content-Range: bytes <start>-<end>/<total or *>`; undefined if absent or invalid. */
function parseContentRange(value: string | null): { start: number; end: number; total?: number } | undefined {
  const m = value && /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === "*" ? undefined : Number(m[3]) };
}
