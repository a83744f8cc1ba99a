/**
 * {@link Inflater}: raw DEFLATE data read from a {@link ByteReader}, inflated synchronously one output buffer
 * at a time through node:zlib's native handle, so that memory stays bounded whatever the compression ratio and
 * no stream machinery (events, callbacks, a new buffer per chunk) runs per chunk.
 *
 * @module
 */

import { constants, createInflateRaw } from "node:zlib";
import { PIECE } from "./byte_reader.ts";
import type { ByteReader } from "./byte_reader.ts";
import { truncated, ZipError, zipError } from "./errors.ts";

/** Output buffer size of the inflater. */
export const INFLATE_CHUNK = 256 * 1024;

/**
 * The synchronous half of a node:zlib object: `writeSync(flush, input, inOffset, inLength, output, outOffset,
 * outLength)` inflates into `output` until it is full or the input is used up, leaving in `writeState` the
 * output space and input bytes left over; errors arrive through `onerror` during the call. Node.js and Deno
 * both build their zlib streams and `*Sync` functions on it.
 */
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOffset: number,
    inLength: number,
    output: Uint8Array,
    outOffset: number,
    outLength: number,
  ): void;
  onerror: (message: string, errno: number) => void;
  reset(): void;
  close(): void;
}

/** A raw-inflate handle and the array its calls leave their counts in. */
function rawInflateHandle(): { handle: ZlibHandle; state: Uint32Array } {
  const stream = createInflateRaw() as unknown as { _handle?: ZlibHandle; _writeState?: Uint32Array };
  const handle = stream._handle;
  const state = stream._writeState;
  if (typeof handle?.writeSync !== "function" || !(state instanceof Uint32Array)) {
    throw new ZipError("internal error: this runtime's node:zlib has no synchronous inflate handle");
  }
  return { handle, state };
}

/** What {@link inflateWhole} made of a deflate stream. */
export interface WholeInflate {
  /**
   * The inflated bytes (at most the limit given, plus one when there is more): a view that may share its
   * `buffer` with others', so not one to transfer to another thread.
   */
  data: Uint8Array;
  /** Compressed bytes the deflate stream used. */
  used: number;
  /** Whether the deflate stream ended within the input given (false: it needs more input). */
  ended: boolean;
}

/** One raw-inflate handle for {@link inflateWhole}, reset before each use (each use is synchronous). */
let shared: SharedHandle | undefined;

/** A handle, the array its calls leave their counts in, and the error its last call reported. */
interface SharedHandle {
  handle: ZlibHandle;
  state: Uint32Array;
  error?: { message: string; errno: number };
}

/**
 * Inflates a whole small deflate stream with one synchronous call of a handle kept for every entry (reset
 * between them): no zlib object and no intermediate buffer per entry, which an archive of many small files
 * made count. Inflates at most `limit` + 1 bytes into one buffer, so that a `data` longer than `limit` shows
 * data beyond it; throws a {@link ZipError} naming `name` for invalid data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deflateRawSync } from "node:zlib";
 * import { inflateWhole } from "./inflater.ts";
 *
 * const deflated = deflateRawSync(new TextEncoder().encode("a,b\n1,2\n"));
 * const whole = inflateWhole(new Uint8Array([...deflated, 0x50, 0x4b]), 8, "a.csv");
 * assert.equal(new TextDecoder().decode(whole.data), "a,b\n1,2\n");
 * assert.deepEqual([whole.used, whole.ended], [deflated.length, true]);
 * assert.equal(inflateWhole(deflated, 4, "a.csv").data.length, 5); // more than the 4 bytes declared
 * assert.equal(inflateWhole(deflated.subarray(0, 3), 8, "a.csv").ended, false); // needs more input
 * ```
 */
export function inflateWhole(input: Uint8Array, limit: number, name: string): WholeInflate {
  if (!shared) {
    const created: SharedHandle = rawInflateHandle();
    created.handle.onerror = (message, errno) => {
      created.error ??= { message, errno };
    };
    shared = created;
  }
  const zlib = shared;
  zlib.handle.reset();
  zlib.error = undefined;
  const output = slabView(limit + 1);
  zlib.handle.writeSync(constants.Z_FINISH, input, 0, input.length, output, 0, output.length);
  const [space, unused] = zlib.state;
  const error = zlib.error as SharedHandle["error"]; // set by onerror during the call
  const data = output.subarray(0, output.length - space);
  // what was inflated is the caller's, whatever it makes of it; the rest of a slab's view is free again
  if (output.buffer === slab.buffer) slabUsed += data.length;
  if (error) {
    zlib.handle.reset();
    // Z_BUF_ERROR with all input used: the stream goes on past the input given
    if (error.errno === constants.Z_BUF_ERROR && unused === 0 && space > 0) {
      return { data, used: input.length, ended: false };
    }
    throw zipError(name, `invalid deflate data (${error.message})`, {
      cause: Object.assign(new Error(error.message), { errno: error.errno }),
    });
  }
  return { data, used: input.length - unused, ended: space > 0 };
}

/** Size of the buffers small entries are inflated into, one after another. */
const SLAB = 1024 * 1024;
let slab = new Uint8Array(0);
let slabUsed = 0;

/**
 * `size` bytes for {@link inflateWhole} to inflate into: the next free part of the current 1 MiB slab (a new
 * slab when it is full), so that thousands of small entries do not each allocate a buffer of their own (one
 * allocation, and one release by the garbage collector, per entry); a quarter of a slab or more gets its own.
 */
function slabView(size: number): Uint8Array {
  if (size > SLAB / 4) return new Uint8Array(size);
  if (slabUsed + size > slab.length) {
    slab = new Uint8Array(SLAB);
    slabUsed = 0;
  }
  return slab.subarray(slabUsed, slabUsed + size);
}

/**
 * Inflates raw DEFLATE data read from a {@link ByteReader}, one output buffer per `next()` call.
 *
 * Each call inflates input slices into one output buffer of {@link INFLATE_CHUNK} bytes, synchronously, until
 * it is full or the deflate stream ends; a new slice (at most 256 KiB) is read only once zlib used all of the
 * previous one. When the deflate stream ends inside a slice, zlib stops consuming (leaving output space
 * unused) and the unused tail goes back to the reader with {@link Inflater.leftover}: it holds the data
 * descriptor or the next header.
 *
 * With `reuseOutput`, the chunks returned are views of two buffers used in turn: a chunk stays valid until the
 * next chunk after it is returned, so its write can go on while the next one is inflated, and no garbage is
 * made per chunk. Otherwise each call returns a buffer of its own.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deflateRawSync } from "node:zlib";
 * import { ByteReader } from "./byte_reader.ts";
 * import { Inflater } from "./inflater.ts";
 *
 * const text = "period,value\n".repeat(50_000);
 * const deflated = deflateRawSync(new TextEncoder().encode(text));
 * const after = new Uint8Array([0x50, 0x4b, 0x01, 0x02]); // what follows the entry's data
 * const whole = new Uint8Array([...deflated, ...after]);
 * let sent = false;
 * const reader = new ByteReader(async () => sent ? null : (sent = true, whole));
 *
 * const inflater = new Inflater(reader, "a.csv", undefined); // compressed size not known in advance
 * let inflated = "";
 * const decoder = new TextDecoder();
 * for (let chunk = await inflater.next(); chunk; chunk = await inflater.next()) {
 *   inflated += decoder.decode(chunk, { stream: true });
 * }
 * assert.equal(inflated, text);
 * assert.equal(inflater.consumed, deflated.length);
 * assert.deepEqual([...inflater.leftover()], [...after]); // the caller puts it back
 * inflater.destroy();
 * ```
 */
export class Inflater {
  readonly #handle: ZlibHandle;
  readonly #state: Uint32Array;
  readonly #input: ByteReader;
  readonly #name: string;
  /** The two output buffers used in turn with `reuseOutput`, and the one the next chunk goes to. */
  readonly #outputs: [Uint8Array, Uint8Array] | undefined;
  #turn: 0 | 1 = 0;
  /** Compressed bytes still to read, when the compressed size is known. */
  #remaining: number | undefined;
  /** The current input slice and the part of it zlib has not used yet. */
  #slice: Uint8Array = new Uint8Array(0);
  #offset = 0;
  #consumed = 0;
  #ended = false;
  #destroyed = false;
  #error: { message: string; errno: number } | undefined;

  /**
   * Inflates entry `name` from `input`, reading at most `compressedSize` bytes when that is known; with
   * `reuseOutput`, every chunk returned is a view of one of two buffers, valid until the next chunk after it
   * is returned.
   */
  constructor(
    input: ByteReader,
    name: string,
    compressedSize: number | undefined,
    options: { reuseOutput?: boolean } = {},
  ) {
    const { handle, state } = rawInflateHandle();
    handle.onerror = (message, errno) => {
      this.#error ??= { message, errno };
    };
    this.#handle = handle;
    this.#state = state;
    this.#input = input;
    this.#name = name;
    this.#remaining = compressedSize;
    this.#outputs = options.reuseOutput
      ? [new Uint8Array(INFLATE_CHUNK), new Uint8Array(INFLATE_CHUNK)]
      : undefined;
  }

  /** Compressed bytes the deflate stream used. */
  get consumed(): number {
    return this.#consumed;
  }

  /**
   * The next inflated chunk, or null once the deflate stream has ended. A chunk fills its buffer (slices are
   * read until it is full), except the last one: a few large writes rather than one per input slice.
   */
  async next(): Promise<Uint8Array | null> {
    let output: Uint8Array | undefined;
    let filled = 0;
    while (!this.#ended) {
      const left = this.#slice.length - this.#offset;
      if (left === 0 && this.#remaining !== 0) {
        const piece = await this.#input.piece(Math.min(this.#remaining ?? PIECE, PIECE));
        if (piece === null) throw truncated(this.#name, "compressed data");
        if (this.#remaining !== undefined) this.#remaining -= piece.length;
        this.#slice = piece;
        this.#offset = 0;
        continue;
      }
      output ??= this.#output();
      // every compressed byte read: flush what zlib holds, failing unless the deflate stream is complete
      const flush = left === 0 ? constants.Z_FINISH : constants.Z_NO_FLUSH;
      this.#write(flush, left, output, filled);
      const [space, unused] = this.#state;
      filled = output.length - space;
      this.#consumed += left - unused;
      this.#offset += left - unused;
      // output space to spare with input left over (or after the finish): the deflate stream has ended
      if (space > 0 && (unused > 0 || flush === constants.Z_FINISH)) this.#ended = true;
      if (space === 0) break; // a full chunk
    }
    return output && filled > 0 ? this.#hand(output, filled) : null;
  }

  /** The buffer the next chunk is inflated into. */
  #output(): Uint8Array {
    return this.#outputs ? this.#outputs[this.#turn] : new Uint8Array(INFLATE_CHUNK);
  }

  /** Returns the first `filled` bytes of `output`; the next chunk then goes to the other buffer. */
  #hand(output: Uint8Array, filled: number): Uint8Array {
    this.#turn = this.#turn === 0 ? 1 : 0;
    return output.subarray(0, filled);
  }

  /** Inflates the current slice's `length` unused bytes into `output` from `filled` on. */
  #write(flush: number, length: number, output: Uint8Array, filled: number): void {
    if (this.#destroyed) throw new ZipError(`internal error: inflater of '${this.#name}' used after destroy`);
    this.#handle.writeSync(flush, this.#slice, this.#offset, length, output, filled, output.length - filled);
    const error = this.#error;
    if (error) {
      this.destroy();
      throw zipError(this.#name, `invalid deflate data (${error.message})`, {
        cause: Object.assign(new Error(error.message), { errno: error.errno }),
      });
    }
  }

  /** The read bytes the deflate stream did not use (never more than the tail of the last slice). */
  leftover(): Uint8Array {
    return this.#slice.subarray(this.#offset);
  }

  /** Releases zlib's resources; the inflater cannot be used afterwards. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#handle.close();
  }
}
