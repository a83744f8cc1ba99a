/**
 * {@link DecoderReader}: the entry data of a compression method lakerun decodes itself (Deflate64, BZip2,
 * Shrink, Implode), read from the archive's {@link ByteReader} and handed out chunk by chunk as the
 * `Inflater` of deflated entries hands it out; {@link decoder} makes such a decoder of a generator.
 *
 * @module
 */

import { PIECE } from "./byte_reader.ts";
import type { ByteReader } from "./byte_reader.ts";
import { truncated } from "./errors.ts";

/**
 * A decoder: reads compressed bytes through `read` (null at the end of the entry's compressed data) and
 * yields decoded chunks of its own; `unread()` says how many bytes read came after the end of its stream.
 */
export type Decoder = (
  read: () => Promise<Uint8Array | null>,
  name: string,
  entry?: EntryFacts,
) => AsyncGenerator<Uint8Array> & { unread(): number };

/** What a decoder may need to know of its entry besides the data (Implode needs both). */
export interface EntryFacts {
  /** The entry's uncompressed size, when known before its data. */
  size?: number;
  /** The general purpose flags of its local header. */
  flags?: number;
}

/**
 * A {@link Decoder} made of a generator that decodes what `read` returns and, once its stream has ended, says
 * through `state.unread` how many of the bytes it read came after that end.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decoder } from "./decoder_reader.ts";
 *
 * // a "stream" that ends at its first zero byte
 * const untilZero = decoder(async function* (read, _name, state) {
 *   const bytes = (await read())!;
 *   const end = bytes.indexOf(0);
 *   state.unread = () => bytes.length - end - 1;
 *   yield bytes.subarray(0, end);
 * });
 * const chunks = untilZero(async () => new Uint8Array([1, 2, 0, 9, 9]), "x");
 * assert.deepEqual([...(await chunks.next()).value!], [1, 2]);
 * assert.equal((await chunks.next()).done, true);
 * assert.equal(chunks.unread(), 2);
 * ```
 */
export function decoder(
  chunks: (
    read: () => Promise<Uint8Array | null>,
    name: string,
    state: { unread: () => number },
    entry: EntryFacts,
  ) => AsyncGenerator<Uint8Array>,
): Decoder {
  return (read, name, entry = {}) => {
    const state = { unread: () => 0 };
    return Object.assign(chunks(read, name, state, entry), { unread: () => state.unread() });
  };
}

/**
 * An entry's data decoded by `decode` from a {@link ByteReader}, one chunk per `next()` call: its compressed
 * size must be known (a local header's or the central directory's).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteReader } from "./byte_reader.ts";
 * import { bunzip2 } from "./bunzip2.ts";
 * import { DecoderReader } from "./decoder_reader.ts";
 *
 * // `printf 'a,b\n' | bzip2 -9`, then two bytes of the next entry
 * const bz = Uint8Array.from(atob("QlpoOTFBWSZTWQNDOuAAAAFRAAAQAAQwACAAIZpoM00XPF3JFOFCQA0M64A="), (c) => c.charCodeAt(0));
 * const archive = [new Uint8Array([...bz, 0x50, 0x4b])];
 * const input = new ByteReader(async () => archive.shift() ?? null);
 * const reader = new DecoderReader(input, "a.csv", bz.length, bunzip2);
 * assert.equal(new TextDecoder().decode((await reader.next())!), "a,b\n");
 * assert.equal(await reader.next(), null);
 * assert.equal(reader.consumed, bz.length);
 * ```
 */
export class DecoderReader {
  readonly #chunks: ReturnType<Decoder>;
  #remaining: number;
  #read = 0;

  /** Decodes entry `name` with `decode`, reading exactly `compressedSize` bytes of `input`. */
  constructor(input: ByteReader, name: string, compressedSize: number, decode: Decoder, entry?: EntryFacts) {
    this.#remaining = compressedSize;
    this.#chunks = decode(
      async () => {
        if (this.#remaining === 0) return null;
        const piece = await input.piece(Math.min(this.#remaining, PIECE));
        if (piece === null) throw truncated(name, "compressed data");
        this.#remaining -= piece.length;
        this.#read += piece.length;
        return piece;
      },
      name,
      entry,
    );
  }

  /** Compressed bytes the stream used. */
  get consumed(): number {
    return this.#read - this.#chunks.unread();
  }

  /** The next decoded chunk (a buffer of its own), or null once the stream has ended. */
  async next(): Promise<Uint8Array | null> {
    const result = await this.#chunks.next();
    return result.done ? null : result.value;
  }

  /** Nothing is put back: the compressed size is known, and a stream ending before it is an error. */
  leftover(): Uint8Array {
    return new Uint8Array(0);
  }

  /** Stops reading. */
  destroy(): void {
    this.#chunks.return(undefined).catch(() => {});
  }
}
