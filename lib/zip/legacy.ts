/**
 * The compression methods of PKZIP 1.x that unzip still extracts: Shrink (method 1, {@link unshrink}) and
 * Implode (method 6, {@link explode}). Archives from the early 1990s use them; no library reachable from Deno
 * has them, so these are decoders of lakerun's own, after PKWARE's APPNOTE (sections 5.1 and 5.3):
 *
 * - Shrink is LZW with codes of 9 to 13 bits, read least significant bit first. Code 256 escapes: followed by
 *   1, codes grow by one bit; by 2, a partial clear frees every code no other code extends. New codes take
 *   the lowest free code above 256.
 * - Implode is LZ77 with a 4 KiB or 8 KiB window (general purpose flag bit 1) and Shannon-Fano codes for
 *   lengths, distances and, with flag bit 2, literals (otherwise literals are 8 plain bits, and matches are
 *   one byte shorter at least). Its data has no end code: it ends at the entry's uncompressed size.
 *
 * @module
 */

import { decoder } from "./decoder_reader.ts";
import type { Decoder } from "./decoder_reader.ts";
import { type BitReader, bitReader } from "./bits.ts";
import { zipError } from "./errors.ts";

/** Bytes gathered before a chunk is handed out. */
const CHUNK = 256 * 1024;

/** Collects output bytes into chunks of {@link CHUNK}. */
class Output {
  chunk = new Uint8Array(CHUNK);
  filled = 0;
  /** Whether the chunk is full (to be yielded, then {@link Output.renew}ed). */
  get full(): boolean {
    return this.filled === CHUNK;
  }
  renew(): void {
    this.chunk = new Uint8Array(CHUNK);
    this.filled = 0;
  }
}

const SHRINK_CODES = 8192;
const SHRINK_MAX_BITS = 13;
/** The root of every string (the escape code): a byte's code has it as its parent. */
const ROOT = 256;
/** `parent` of a code not in use (never defined, or freed by a partial clear). */
const FREE = -1;

/**
 * Decodes Shrink (zip method 1) data, which ends with the entry's compressed bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unshrink } from "./legacy.ts";
 *
 * // 9-bit codes 'a', 'b', 257 ("ab"), 'c', packed least significant bit first
 * const codes = [97, 98, 257, 99];
 * let bits = 0n;
 * codes.forEach((code, i) => bits |= BigInt(code) << BigInt(9 * i));
 * const data = Uint8Array.from({ length: 5 }, (_, i) => Number((bits >> BigInt(8 * i)) & 0xffn));
 * let sent = false;
 * let text = "";
 * for await (const chunk of unshrink(async () => sent ? null : (sent = true, data), "a.txt")) {
 *   text += new TextDecoder().decode(chunk);
 * }
 * assert.equal(text, "ababc");
 * ```
 */
export const unshrink: Decoder = decoder(async function* (read, name, state) {
  const invalid = (why: string) => zipError(name, `invalid shrink data (${why})`);
  const input = bitReader(read, () => invalid("unexpected end of data"));
  state.unread = () => input.unread();
  const parent = new Int32Array(SHRINK_CODES).fill(FREE);
  const last = new Uint8Array(SHRINK_CODES); // the last byte of each code's string
  for (let code = 0; code < 256; code++) {
    parent[code] = ROOT;
    last[code] = code;
  }
  const stack = new Uint8Array(SHRINK_CODES); // a string is put together from its end
  const out = new Output();
  let size = 9;
  /** The code defined last since the last partial clear: the next one is the first free code above it. */
  let lastDefined = ROOT;
  let previous = -1;
  let first = 0; // the first byte of the previous string
  for (;;) {
    if (input.short(32)) await input.ahead(4);
    if (input.short(size)) break; // what is left is padding
    let code = input.bits(size);
    if (code === ROOT) {
      if (input.short(size)) break;
      const what = input.bits(size);
      if (what === 1) {
        if (++size > SHRINK_MAX_BITS) throw invalid("codes longer than 13 bits");
      } else if (what === 2) {
        // partial clear: the codes defined up to the last one that no other of them extends are freed
        const extended = new Uint8Array(lastDefined + 1);
        for (let c = ROOT + 1; c <= lastDefined; c++) if (parent[c] > ROOT) extended[parent[c]] = 1;
        for (let c = ROOT + 1; c <= lastDefined; c++) if (!extended[c]) parent[c] = FREE;
        lastDefined = ROOT;
      } // unzip ignores any other escape
      continue;
    }
    const codeRead = code; // `code` walks down its string below
    let top = SHRINK_CODES;
    if (previous < 0) {
      stack[--top] = code & 0xff; // the first code is a byte
    } else {
      // a code not defined (yet) is the previous string and its own first byte
      while (code !== ROOT) {
        if (top === 0) throw invalid("string longer than the code table");
        if (parent[code] === FREE) {
          stack[--top] = first;
          code = previous;
        } else {
          stack[--top] = last[code];
          code = parent[code];
        }
      }
    }
    first = stack[top];
    for (let i = top; i < SHRINK_CODES; i++) {
      out.chunk[out.filled++] = stack[i];
      if (out.full) {
        yield out.chunk;
        out.renew();
      }
    }
    if (previous >= 0) {
      // the previous string and this one's first byte get the first free code
      let next = lastDefined + 1;
      while (next < SHRINK_CODES && parent[next] !== FREE) next++;
      if (next === SHRINK_CODES) throw invalid("code table full");
      lastDefined = next;
      parent[next] = previous;
      last[next] = first;
    }
    previous = codeRead;
  }
  if (out.filled > 0) yield out.chunk.subarray(0, out.filled);
});

/** Longest Shannon-Fano code of Implode. */
const SF_MAX = 16;

/**
 * Reads one of Implode's Shannon-Fano trees of `symbols` codes (stored as runs of equal bit lengths) and
 * returns its decoding table: at `(1 << length) | code` (the code's bits as read, first bit lowest) the
 * symbol, or -1.
 */
function shannonFano(
  input: BitReader,
  symbols: number,
  invalid: (why: string) => Error,
): Int16Array {
  const lengths = new Uint8Array(symbols);
  const runs = input.bits(8) + 1;
  let count = 0;
  for (let i = 0; i < runs; i++) {
    const byte = input.bits(8);
    const times = (byte >> 4) + 1;
    if (count + times > symbols) throw invalid("tree with too many codes");
    lengths.fill((byte & 15) + 1, count, count + times);
    count += times;
  }
  if (count !== symbols) throw invalid("tree with too few codes");
  // APPNOTE 5.3.7: codes counted up from the longest length (ties: the last symbol first), left-aligned in
  // 16 bits; the bits are then sent most significant first
  const order = Array.from({ length: symbols }, (_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const table = new Int16Array(1 << (SF_MAX + 1)).fill(-1);
  let code = 0;
  let increment = 0;
  let lastLength = 0;
  for (let i = symbols - 1; i >= 0; i--) {
    const symbol = order[i];
    const length = lengths[symbol];
    code += increment;
    if (length !== lastLength) {
      lastLength = length;
      increment = 1 << (SF_MAX - length);
    }
    if (code > 0xffff) throw invalid("over-subscribed tree");
    let reversed = 0;
    for (let bit = 0; bit < length; bit++) reversed |= ((code >> (SF_MAX - 1 - bit)) & 1) << bit;
    table[(1 << length) | reversed] = symbol;
  }
  return table;
}

/**
 * Decodes Implode (zip method 6) data into the entry's uncompressed size, which it must be given (`entry.size`):
 * the data has no end code. The general purpose flags (`entry.flags`) tell the window (bit 1: 8 KiB, else
 * 4 KiB) and whether literals are coded (bit 2: three trees, else two).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { explode } from "./legacy.ts";
 *
 * // two trees (lengths, distances) of 64 codes of 6 bits each: one run byte 0x?5 per 16 codes
 * const tree = [3, 0xf5, 0xf5, 0xf5, 0xf5];
 * // literal 'a' (flag 1, then 8 plain bits), then a match of length 2 at distance 1
 * // (flag 0, 6 low distance bits 0, distance code for 0, length code for 0), bits first-lowest
 * const bits = [1, ...[1, 0, 0, 0, 0, 1, 1, 0], 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
 * const data = new Uint8Array([...tree, ...tree, ...Array.from({ length: Math.ceil(bits.length / 8) }, (_, i) =>
 *   bits.slice(8 * i, 8 * i + 8).reduce((byte, bit, k) => byte | (bit << k), 0))]);
 * let sent = false;
 * let text = "";
 * const read = async () => sent ? null : (sent = true, data);
 * for await (const chunk of explode(read, "a.txt", { size: 3, flags: 0 })) text += new TextDecoder().decode(chunk);
 * assert.equal(text, "aaa");
 * ```
 */
export const explode: Decoder = decoder(async function* (read, name, state, entry) {
  const invalid = (why: string) => zipError(name, `invalid implode data (${why})`);
  const input = bitReader(read, () => invalid("unexpected end of data"));
  state.unread = () => input.unread();
  const size = entry.size;
  if (size === undefined) throw invalid("uncompressed size not known before the data");
  const flags = entry.flags ?? 0;
  const lowBits = flags & 2 ? 7 : 6;
  const coded = (flags & 4) !== 0;
  const minimum = coded ? 3 : 2;
  await input.ahead(3 * 257);
  const literals = coded ? shannonFano(input, 256, invalid) : undefined;
  const lengths = shannonFano(input, 64, invalid);
  const distances = shannonFano(input, 64, invalid);
  const decode = (table: Int16Array): number => {
    let code = 0;
    for (let length = 1; length <= SF_MAX; length++) {
      code |= input.bits(1) << (length - 1);
      const symbol = table[(1 << length) | code];
      if (symbol >= 0) return symbol;
    }
    throw invalid("invalid code");
  };
  const WINDOW = 8192;
  const window = new Uint8Array(WINDOW);
  const out = new Output();
  let total = 0;
  const emit = (byte: number) => {
    window[total & (WINDOW - 1)] = byte;
    total++;
    out.chunk[out.filled++] = byte;
  };
  while (total < size) {
    if (input.short(64)) await input.ahead(8); // a step takes at most 49 bits
    if (input.bits(1)) {
      emit(literals ? decode(literals) : input.bits(8));
    } else {
      const low = input.bits(lowBits);
      const distance = ((decode(distances) << lowBits) | low) + 1;
      let length = decode(lengths);
      if (length === 63) length += input.bits(8);
      length += minimum;
      // bytes before the start of the data are zeros (as PKZIP and unzip have them)
      for (let i = 0; i < length && total < size; i++) {
        emit(distance > total ? 0 : window[(total - distance) & (WINDOW - 1)]);
        if (out.full) {
          yield out.chunk;
          out.renew();
        }
      }
    }
    if (out.full) {
      yield out.chunk;
      out.renew();
    }
  }
  if (out.filled > 0) yield out.chunk.subarray(0, out.filled);
});
