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
 *
 * With `slabSize`, the reader lends the pull function buffers ("slabs") of that size to read into (a BYOB
 * read) and reuses each once all of its bytes were consumed: no garbage per chunk. The views `peek`, `take`
 * and `piece` return are then valid only until the next call of an async method (`fill`, `signature`,
 * `need`, `piece`); a caller that keeps bytes longer copies them.
 */
export class ByteReader {
  readonly #pull: (into?: Uint8Array) => Promise<Uint8Array | null>;
  readonly #slabSize: number | undefined;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #eof = false;
  #failure: { error: unknown } | undefined;
  #inflight: Promise<void> | undefined;
  /** The buffers of the slabs this reader lent (a BYOB read returns its view over a buffer of its own). */
  readonly #slabs = new WeakSet<ArrayBufferLike>();
  /** Slabs free to read into, and those fully consumed whose bytes may still be in a caller's hands. */
  #free: Uint8Array[] = [];
  #consumed: Uint8Array[] = [];
  /** Bytes obtained from the source so far. */
  received = 0;
  /** Archive offset of the next unconsumed byte. */
  position: number;

  /**
   * Reads through `pull` (null at the end); `position` is the archive offset of its first byte. With
   * `slabSize`, `pull` is handed a buffer of that size to fill and returns the bytes read as a view of it
   * (or of the buffer it was transferred to), or bytes of its own.
   */
  constructor(
    pull: (into?: Uint8Array) => Promise<Uint8Array | null>,
    position = 0,
    options: { slabSize?: number } = {},
  ) {
    this.#pull = pull;
    this.position = position;
    this.#slabSize = options.slabSize;
  }

  /** Whether views of this reader's bytes expire at its next async call (it reads into reused slabs). */
  get reusesBuffers(): boolean {
    return this.#slabSize !== undefined;
  }

  /**
   * Keeps one read in flight while less than {@link READ_AHEAD} bytes are buffered, so that the source's I/O
   * overlaps with inflating and small source chunks pile up into larger slices.
   */
  #readAhead(want = 0): void {
    if (this.#inflight || this.#eof || this.#failure || this.#buffered >= Math.max(READ_AHEAD, want)) return;
    const slab = this.#slabSize === undefined
      ? undefined
      : this.#free.pop() ?? new Uint8Array(this.#slabSize);
    this.#inflight = this.#pull(slab).then((chunk) => {
      this.#inflight = undefined;
      if (slab) this.#takeBack(slab, chunk);
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

  /**
   * After a read into `slab`: the bytes read are in the slab when the chunk is a view of its buffer, or of the
   * buffer a BYOB read transferred it to (the slab is then detached); such a chunk's buffer is a slab from now
   * on. A slab the read did not use is free again.
   */
  #takeBack(slab: Uint8Array, chunk: Uint8Array | null): void {
    const transferred = slab.byteLength === 0;
    const inSlab = chunk !== null &&
      (chunk.buffer === slab.buffer || (transferred && chunk.buffer.byteLength === this.#slabSize));
    if (!inSlab) {
      if (!transferred) this.#free.push(slab);
    } else if (chunk.length > 0) {
      this.#slabs.add(chunk.buffer);
    } else {
      this.#free.push(new Uint8Array(chunk.buffer));
    }
  }

  /** Slabs consumed before this call can be read into again: the views of them handed out have expired. */
  #recycle(): void {
    for (const chunk of this.#consumed) this.#free.push(new Uint8Array(chunk.buffer));
    this.#consumed.length = 0;
  }

  /** Buffers at least `n` bytes unless the source ends first; returns the number buffered. */
  async fill(n: number): Promise<number> {
    this.#recycle();
    while (this.#buffered < n && !this.#eof) {
      if (this.#failure) throw this.#failure.error;
      this.#readAhead(n);
      await this.#inflight;
    }
    return this.#buffered;
  }

  /**
   * Whether `n` bytes are buffered now, so that a caller may take them without waiting (keeping a read in
   * flight meanwhile, as {@link ByteReader.fill} does). Not being async, it leaves the views handed out valid.
   */
  has(n: number): boolean {
    this.#readAhead();
    return this.#buffered >= n;
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

  /**
   * The signature at the reader's position when its 4 bytes are buffered, without waiting; `undefined` when
   * they are not (then {@link ByteReader.signature} waits for them).
   */
  bufferedSignature(): number | undefined {
    return this.has(4) ? u32(this.peek(4), 0) : undefined;
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
        if (this.#slabs.has(first.buffer)) this.#consumed.push(first);
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

  /**
   * Consumes exactly `n` bytes, failing as truncated when the source ends first (in `where`, which may be a
   * function, called only then).
   */
  async need(n: number, entry: string | undefined, where: string | (() => string)): Promise<Uint8Array> {
    if (await this.fill(n) < n) throw truncated(entry, typeof where === "string" ? where : where());
    return this.take(n);
  }

  /**
   * Consumes and returns up to `max` bytes of the first buffered chunk (waiting only when none are), or null at
   * the end: a view of the source's own bytes, never a copy.
   */
  async piece(max: number): Promise<Uint8Array | null> {
    this.#recycle();
    if (this.#buffered === 0 && await this.fill(1) === 0) return null;
    const n = Math.min(max, this.#chunks[0].length);
    this.#readAhead();
    return this.take(n);
  }

  /** Puts consumed bytes back in front (a copy of them when they are in a slab that may be read into again). */
  unread(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#slabs.has(bytes.buffer)) bytes = bytes.slice();
    this.#chunks.unshift(bytes);
    this.#buffered += bytes.length;
    this.position -= bytes.length;
  }
}
