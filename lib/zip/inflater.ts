/**
 * {@link Inflater}: node:zlib's InflateRaw in paused mode, fed one slice of a {@link ByteReader} at a time,
 * so that memory stays bounded whatever the compression ratio.
 *
 * @module
 */

import { createInflateRaw } from "node:zlib";
import { PIECE } from "./byte_reader.ts";
import type { ByteReader } from "./byte_reader.ts";
import { truncated, ZipError, zipError } from "./errors.ts";

/** Output chunk size of the inflater. */
const INFLATE_CHUNK = 64 * 1024;

/**
 * Inflates raw DEFLATE data read from a {@link ByteReader}, one output chunk per `next()` call.
 *
 * The readable side is used in paused mode, so zlib stops producing once its output buffer is full, even in
 * the middle of one input slice: memory stays bounded whatever the compression ratio. Slices are written one
 * at a time and the next one only once zlib consumed all of the previous one; when the deflate stream ends
 * inside a slice, zlib stops consuming and `bytesWritten` says how much it used, so the unused tail of the
 * last slice goes back to the reader (it holds the data descriptor or the next header).
 */
export class Inflater {
  readonly #z = createInflateRaw({ chunkSize: INFLATE_CHUNK });
  readonly #input: ByteReader;
  readonly #name: string;
  /** Compressed bytes still to feed, when the compressed size is known. */
  #remaining: number | undefined;
  #fed = 0;
  #last: Uint8Array = new Uint8Array(0);
  #writing = false;
  #finishing = false;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  /** Inflates entry `name` from `input`, feeding at most `compressedSize` bytes when that is known. */
  constructor(input: ByteReader, name: string, compressedSize: number | undefined) {
    this.#input = input;
    this.#name = name;
    this.#remaining = compressedSize;
    this.#z.on("readable", () => this.#wakeUp());
    this.#z.on("end", () => {
      this.#ended = true;
      this.#wakeUp();
    });
    this.#z.on("error", (e: Error) => {
      this.#error ??= e;
      this.#wakeUp();
    });
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Compressed bytes the deflate stream used. */
  get consumed(): number {
    return this.#z.bytesWritten;
  }

  /** The next inflated chunk, or null once the deflate stream has ended. */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      if (this.#error) {
        throw zipError(this.#name, `invalid deflate data (${this.#error.message})`, { cause: this.#error });
      }
      const out: Uint8Array | null = this.#z.read();
      if (out !== null) return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      if (this.#ended) return null;
      // Feed the next slice once zlib took all of the previous one; when it did not, the deflate stream
      // ended inside it and the "end" event is on its way.
      if (!this.#writing && !this.#finishing && this.#fed === this.#z.bytesWritten) {
        if (this.#remaining === 0) {
          this.#finishing = true;
          this.#z.end();
          continue;
        }
        const piece = await this.#input.piece(Math.min(this.#remaining ?? PIECE, PIECE));
        if (piece === null) throw truncated(this.#name, "compressed data");
        if (this.#ended || this.#error) {
          this.#input.unread(piece);
          continue;
        }
        this.#fed += piece.length;
        if (this.#remaining !== undefined) this.#remaining -= piece.length;
        this.#last = piece;
        this.#writing = true;
        this.#z.write(piece, () => {
          this.#writing = false;
          this.#wakeUp();
        });
        continue;
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** The fed bytes the deflate stream did not use (never more than the tail of the last slice). */
  leftover(): Uint8Array {
    const unused = this.#fed - this.#z.bytesWritten;
    if (unused < 0 || unused > this.#last.length) {
      throw new ZipError(
        `internal error: inflater left ${unused} bytes of a ${this.#last.length}-byte slice`,
      );
    }
    return this.#last.subarray(this.#last.length - unused);
  }

  /** Releases zlib's resources; the inflater cannot be used afterwards. */
  destroy(): void {
    this.#z.destroy();
  }
}
