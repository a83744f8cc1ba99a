/**
 * {@link ByteReader}: a buffered reader over a pull function (a stream's reader, or positioned reads of a
 * file) that keeps one read in flight ahead of the parser.
 *
 * @module
 */

import { truncated } from "./errors.ts";
import { u32 } from "./format.ts";

/** Largest slice of compressed input handed to the inflater, or of stored data to the sink, at once. */
export const PIECE = 256 * 1024;
/** Archive bytes read ahead of the parser. */
const READ_AHEAD = 512 * 1024;

/**
 * Buffers the archive bytes a pull function returns and hands them out by count, tracking the archive
 * offset of the next unconsumed byte; consumed bytes can be put back ({@link ByteReader.unread}).
 */
export class ByteReader {
  readonly #pull: () => Promise<Uint8Array | null>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #eof = false;
  #failure: { error: unknown } | undefined;
  #inflight: Promise<void> | undefined;
  /** Bytes obtained from the source so far. */
  received = 0;
  /** Archive offset of the next unconsumed byte. */
  position: number;

  /** Reads through `pull` (null at the end); `position` is the archive offset of its first byte. */
  constructor(pull: () => Promise<Uint8Array | null>, position = 0) {
    this.#pull = pull;
    this.position = position;
  }

  /**
   * Keeps one read in flight while less than {@link READ_AHEAD} bytes are buffered, so that the source's I/O
   * overlaps with inflating and small source chunks pile up into larger slices.
   */
  #readAhead(want = 0): void {
    if (this.#inflight || this.#eof || this.#failure || this.#buffered >= Math.max(READ_AHEAD, want)) return;
    this.#inflight = this.#pull().then((chunk) => {
      this.#inflight = undefined;
      if (chunk === null) {
        this.#eof = true;
      } else if (chunk.length > 0) {
        this.#chunks.push(chunk);
        this.#buffered += chunk.length;
        this.received += chunk.length;
      }
      this.#readAhead();
    }, (error) => {
      this.#inflight = undefined;
      this.#failure = { error };
    });
  }

  /** Buffers at least `n` bytes unless the source ends first; returns the number buffered. */
  async fill(n: number): Promise<number> {
    while (this.#buffered < n && !this.#eof) {
      if (this.#failure) throw this.#failure.error;
      this.#readAhead(n);
      await this.#inflight;
    }
    return this.#buffered;
  }

  /** The first `n` buffered bytes (`n` <= buffered), without consuming them. */
  peek(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (const chunk of this.#chunks) {
      if (at >= n) break;
      const part = chunk.subarray(0, n - at);
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  /** The signature at the reader's position, or undefined when fewer than 4 bytes are left. */
  async signature(): Promise<number | undefined> {
    return await this.fill(4) >= 4 ? u32(this.peek(4), 0) : undefined;
  }

  /** Consumes the first `n` buffered bytes (`n` <= buffered). */
  take(n: number): Uint8Array {
    const out = this.peek(n);
    let left = n;
    while (left > 0) {
      const first = this.#chunks[0];
      if (first.length <= left) {
        this.#chunks.shift();
        left -= first.length;
      } else {
        this.#chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.#buffered -= n;
    this.position += n;
    return out;
  }

  /** Consumes exactly `n` bytes, failing as truncated when the source ends first. */
  async need(n: number, entry: string | undefined, where: string): Promise<Uint8Array> {
    if (await this.fill(n) < n) throw truncated(entry, where);
    return this.take(n);
  }

  /**
   * Consumes and returns up to `max` bytes of the first buffered chunk (waiting only when none are), or null at
   * the end: a view of the source's own bytes, never a copy.
   */
  async piece(max: number): Promise<Uint8Array | null> {
    if (this.#buffered === 0 && await this.fill(1) === 0) return null;
    const n = Math.min(max, this.#chunks[0].length);
    this.#readAhead();
    return this.take(n);
  }

  /** Puts consumed bytes back in front. */
  unread(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.unshift(bytes);
    this.#buffered += bytes.length;
    this.position -= bytes.length;
  }
}
