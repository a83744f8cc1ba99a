/**
 * A CSV file's bytes on their way into PostgreSQL's `COPY … FROM STDIN (FORMAT csv)`, changed only where
 * COPY would read them otherwise than the file says.
 *
 * **The end-of-data marker.** PostgreSQL (15 and earlier releases; 18 dropped it) ends the data of a
 * `COPY … FROM STDIN` at a line holding only `\.`, even in CSV, where `\.` is an ordinary value: every line
 * after it was silently left out. COPY looks for it only at the start of a line and outside quotes (a
 * quoted `"\."`, and a `\.` line inside a quoted multi-line field, are data; checked on PostgreSQL 15), and
 * only when a line break follows it (a `\.` at the very end of the data is a value). So a line that holds
 * only `\.`, outside quotes, followed by LF, CR or the end of the file, is sent as `"\."`: the same value,
 * now quoted, which COPY reads as data. The line breaks stay where they were, so COPY's line numbers are
 * still the file's.
 *
 * **A byte order mark.** A UTF-8 BOM at the start of the file is dropped: COPY would keep it as the start of
 * the first value (of a file without a header line; in a header line, which COPY skips, it changes nothing).
 *
 * Quotes are followed as COPY's own line reader follows them (every `"` opens or closes a quoted stretch;
 * the file's quote character is always `"`: a load sets no other). The bytes are scanned in one pass over
 * each chunk; a chunk with nothing to change is passed on as it is, not copied.
 *
 * @module
 */

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;

/** `"\."`: the value `\.`, quoted. */
const QUOTED_MARKER = new Uint8Array([QUOTE, BACKSLASH, DOT, QUOTE]);

/** UTF-8's byte order mark. */
const BOM = [0xef, 0xbb, 0xbf];

/**
 * Rewrites a CSV byte stream, chunk by chunk, for `COPY … FROM STDIN (FORMAT csv)` (see the module's
 * documentation): {@link push} each chunk, then {@link end}; each returns the bytes to send, in order.
 *
 * @example A lone `\.` line is quoted; a quoted one, or one inside a quoted field, is left alone
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopyCsvFilter } from "./postgres_copy_csv.ts";
 *
 * const through = (...chunks: string[]) => {
 *   const filter = new CopyCsvFilter();
 *   const out = [...chunks.flatMap((chunk) => filter.push(new TextEncoder().encode(chunk))), ...filter.end()];
 *   return out.map((bytes) => new TextDecoder().decode(bytes)).join("");
 * };
 * assert.equal(through("a\n\\.\nb\n"), 'a\n"\\."\nb\n');
 * assert.equal(through("a\r\n\\.\r\nb\r\n"), 'a\r\n"\\."\r\nb\r\n');
 * assert.equal(through("\\.\nb\n"), '"\\."\nb\n'); // the first line too
 * assert.equal(through("a\n\\."), 'a\n"\\."'); // at the end of the file
 * assert.equal(through("a\n\\", ".\nb\n"), 'a\n"\\."\nb\n'); // across chunks
 * assert.equal(through('a\n"\\."\n'), 'a\n"\\."\n'); // quoted already
 * assert.equal(through('"x\n\\.\ny"\n'), '"x\n\\.\ny"\n'); // inside a quoted field: data for COPY too
 * assert.equal(through("a\n\\.x\n \\.\n"), "a\n\\.x\n \\.\n"); // not alone on its line
 * ```
 * @example A byte order mark is dropped, even when it comes in pieces
 * ```ts
 * import assert from "node:assert/strict";
 * import { CopyCsvFilter } from "./postgres_copy_csv.ts";
 *
 * const filter = new CopyCsvFilter();
 * const sent = [new Uint8Array([0xef]), new Uint8Array([0xbb, 0xbf, 0x41, 0x31, 0x0a])]
 *   .flatMap((chunk) => filter.push(chunk));
 * assert.deepEqual(sent.flatMap((piece) => [...piece]), [0x41, 0x31, 0x0a]);
 * ```
 */
export class CopyCsvFilter {
  /** Inside a quoted stretch (COPY's line reader toggles on every quote). */
  #inQuote = false;
  /** The next byte starts a line. */
  #lineStart = true;
  /**
   * Bytes held back at the end of a chunk for the next one to decide: the start of a line, `\` or `\.`, or
   * the start of the file, the first bytes of a BOM.
   */
  #held: Uint8Array | undefined;
  /** The start of the file was read (and a BOM dropped). */
  #started = false;

  /** The bytes to send for the next chunk of the file (none, one piece, or several). */
  push(input: Uint8Array): Uint8Array[] {
    let chunk = input;
    if (this.#held) {
      chunk = new Uint8Array(this.#held.length + input.length);
      chunk.set(this.#held);
      chunk.set(input, this.#held.length);
      this.#held = undefined;
    }
    if (!this.#started) {
      if (chunk.length < BOM.length && chunk.every((byte, i) => byte === BOM[i])) {
        if (chunk.length > 0) this.#held = chunk.slice();
        return [];
      }
      this.#started = true;
      if (chunk[0] === BOM[0] && chunk[1] === BOM[1] && chunk[2] === BOM[2]) {
        chunk = chunk.subarray(BOM.length);
      }
    }
    const out: Uint8Array[] = [];
    const length = chunk.length;
    let inQuote = this.#inQuote;
    let from = 0; // the first byte not yet in `out`
    let start = this.#lineStart && !inQuote ? 0 : -1; // a line start to look at, outside quotes
    for (let i = 0; i < length; i++) {
      if (i === start && chunk[i] === BACKSLASH) {
        // a line that starts with "\": is it "\." and a line break?
        if (i + 2 >= length) {
          if (i + 1 === length || chunk[i + 1] === DOT) {
            // "\" or "\." at the end of the chunk: the next chunk decides
            if (i > from) out.push(chunk.subarray(from, i));
            this.#held = chunk.slice(i);
            this.#inQuote = false;
            this.#lineStart = true;
            return out;
          }
        } else if (chunk[i + 1] === DOT && (chunk[i + 2] === LF || chunk[i + 2] === CR)) {
          if (i > from) out.push(chunk.subarray(from, i));
          out.push(QUOTED_MARKER);
          from = i + 2;
          i++; // the line break is read next
          continue;
        }
      }
      const byte = chunk[i];
      if (byte > QUOTE) continue;
      if (byte === QUOTE) inQuote = !inQuote;
      else if ((byte === LF || byte === CR) && !inQuote) start = i + 1;
    }
    if (from === 0) out.push(chunk);
    else if (from < length) out.push(chunk.subarray(from));
    this.#inQuote = inQuote;
    this.#lineStart = start === length;
    return out;
  }

  /** The bytes to send once the file has ended. */
  end(): Uint8Array[] {
    const held = this.#held;
    this.#held = undefined;
    if (!held) return [];
    if (!this.#started) return [held]; // a file of one or two bytes that start like a BOM
    // "\." as the file's last line is a value for COPY too; quoted, it is the same value
    return [held.length === 2 ? QUOTED_MARKER : held];
  }
}

/**
 * A {@link CopyCsvFilter} as a stream: CSV bytes in, the bytes for `COPY … FROM STDIN (FORMAT csv)` out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyCsvStream } from "./postgres_copy_csv.ts";
 *
 * const file = ReadableStream.from([new TextEncoder().encode("path\na\n\\.\nb\n")]);
 * const sent = await new Response(file.pipeThrough(copyCsvStream())).text();
 * assert.equal(sent, 'path\na\n"\\."\nb\n');
 * ```
 */
export function copyCsvStream(): TransformStream<Uint8Array, Uint8Array> {
  const filter = new CopyCsvFilter();
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (const piece of filter.push(chunk)) controller.enqueue(piece);
    },
    flush(controller) {
      for (const piece of filter.end()) controller.enqueue(piece);
    },
  });
}
