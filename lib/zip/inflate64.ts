/**
 * {@link inflate64}: Deflate64 ("enhanced deflate", zip method 9), which Windows' built-in zip folders write
 * for large files and 7-Zip on request, and which unzip extracts. zlib has no Deflate64, so this is a decoder
 * of its own, after the format's description (PKWARE APPNOTE 5.5.1 and RFC 1951): deflate with a 64 KiB window,
 * length code 285 taking 16 extra bits (lengths 3 to 65,538) and distance codes 30 and 31 (up to 65,536 back).
 * Huffman codes are decoded canonically, bit by bit, as zlib's reference `puff` does: simple and checkable
 * rather than fast (about 70 MB/s of output on this project's machines, a third of unzip's), for a method few
 * archives use.
 *
 * @module
 */

import { decoder } from "./decoder_reader.ts";
import type { Decoder } from "./decoder_reader.ts";
import { bitReader } from "./bits.ts";
import { zipError } from "./errors.ts";

const WINDOW = 65536;
/** Bytes gathered before a chunk is handed out. */
const CHUNK = 256 * 1024;

// deno-fmt-ignore
const LENGTH_BASE = [
  3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
  35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 3,
];
// deno-fmt-ignore
const LENGTH_EXTRA = [
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
  3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 16,
];
// deno-fmt-ignore
const DIST_BASE = [
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
  257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577, 32769, 49153,
];
// deno-fmt-ignore
const DIST_EXTRA = [
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
  7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14,
];
/** The order in which the code length code lengths are stored. */
// deno-fmt-ignore
const CLEN_ORDER = [
  16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2,
  14, 1, 15,
];

/** A canonical Huffman code: how many codes of each length, and the symbols in code order. */
interface Huffman {
  count: Uint16Array;
  symbol: Uint16Array;
}

/** The code whose symbol `i` has length `lengths[i]` (0: unused); throws unless it is a valid prefix code. */
function huffman(lengths: ArrayLike<number>, name: string, complete: boolean): Huffman {
  const count = new Uint16Array(16);
  for (let i = 0; i < lengths.length; i++) count[lengths[i]]++;
  let left = 1;
  for (let len = 1; len <= 15; len++) {
    left = (left << 1) - count[len];
    if (left < 0) throw zipError(name, "invalid deflate64 data (over-subscribed code)");
  }
  // a code of at most one symbol may be incomplete (a block with one distance, or none); others may not
  if (complete && left > 0 && lengths.length - count[0] > 1) {
    throw zipError(name, "invalid deflate64 data (incomplete code)");
  }
  const offsets = new Uint16Array(16);
  for (let len = 1; len < 15; len++) offsets[len + 1] = offsets[len] + count[len];
  const symbol = new Uint16Array(lengths.length);
  for (let i = 0; i < lengths.length; i++) if (lengths[i] !== 0) symbol[offsets[lengths[i]]++] = i;
  return { count, symbol };
}

let fixed: { lengths: Huffman; distances: Huffman } | undefined;

/** The fixed codes of block type 1 (as in deflate; distance codes 30 and 31 are used by Deflate64). */
function fixedCodes(): { lengths: Huffman; distances: Huffman } {
  if (fixed) return fixed;
  const lengths = new Uint8Array(288);
  lengths.fill(8, 0, 144);
  lengths.fill(9, 144, 256);
  lengths.fill(7, 256, 280);
  lengths.fill(8, 280, 288);
  fixed = { lengths: huffman(lengths, "", false), distances: huffman(new Uint8Array(32).fill(5), "", false) };
  return fixed;
}

/**
 * Inflates the Deflate64 stream whose bytes `read` returns (null at the end of the entry's compressed data),
 * yielding the inflated bytes in chunks of their own (at most 256 KiB each). Fails, naming entry `name`, on
 * invalid data or data that ends before the stream does; returns once the final block ends, and `unread()`
 * then says how many of the bytes read came after it (the caller checks the compressed size).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deflateRawSync } from "node:zlib";
 * import { inflate64 } from "./inflate64.ts";
 *
 * // deflate output is valid Deflate64 when it has no match of 258 bytes (code 285 means more in Deflate64)
 * const text = Array.from({ length: 3000 }, (_, i) => `${i},${(i * 7919) % 10007}\n`).join("");
 * let sent = false;
 * const read = async () => sent ? null : (sent = true, deflateRawSync(new TextEncoder().encode(text)));
 * let inflated = "";
 * for await (const chunk of inflate64(read, "a.csv")) inflated += new TextDecoder().decode(chunk);
 * assert.equal(inflated, text);
 * ```
 */
export const inflate64: Decoder = decoder(inflate64Chunks);

async function* inflate64Chunks(
  read: () => Promise<Uint8Array | null>,
  name: string,
  state: { unread: () => number },
): AsyncGenerator<Uint8Array> {
  // The compressed bytes at hand: the unused rest of the slices read so far. Before each step that can take
  // up to 8 bytes (a symbol with its extra bits and a distance with its), at least that much is made available
  // (or the data has ended): the decoding itself is synchronous.
  const input = bitReader(read, () => zipError(name, "invalid deflate64 data (unexpected end of data)"));
  const { ahead, bits } = input;
  const window = new Uint8Array(WINDOW);
  let total = 0; // bytes inflated so far
  let out = new Uint8Array(CHUNK);
  let filled = 0;

  /** Decodes one symbol, a bit at a time. */
  const decode = (code: Huffman): number => {
    let value = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= 15; len++) {
      value |= bits(1);
      const count = code.count[len];
      if (value - count < first) return code.symbol[index + (value - first)];
      index += count;
      first = (first + count) << 1;
      value <<= 1;
    }
    throw zipError(name, "invalid deflate64 data (invalid code)");
  };
  state.unread = input.unread;
  const emit = (byte: number) => {
    window[total & (WINDOW - 1)] = byte;
    total++;
    out[filled++] = byte;
  };
  /** Bytes a step may take: a length symbol and 16 extra bits, a distance symbol and 14: 60 bits. */
  const STEP = 8;

  for (let last = 0; !last;) {
    await ahead(STEP);
    last = bits(1);
    const type = bits(2);
    if (type === 0) {
      input.align();
      await ahead(4);
      const length = bits(16);
      const check = bits(16);
      if (length !== (~check & 0xffff)) throw zipError(name, "invalid deflate64 data (stored block length)");
      for (let i = 0; i < length; i++) {
        if (input.short(8)) await ahead(Math.min(length - i, CHUNK));
        emit(bits(8));
        if (filled === CHUNK) {
          yield out;
          out = new Uint8Array(CHUNK);
          filled = 0;
        }
      }
      continue;
    }
    let lengths: Huffman;
    let distances: Huffman;
    if (type === 1) ({ lengths, distances } = fixedCodes());
    else if (type === 2) ({ lengths, distances } = await dynamicCodes(ahead, bits, decode, name));
    else throw zipError(name, "invalid deflate64 data (block type 3)");
    for (;;) {
      if (input.bytesAtHand() < STEP) await ahead(STEP);
      const symbol = decode(lengths);
      if (symbol < 256) {
        emit(symbol);
      } else if (symbol === 256) {
        break;
      } else {
        const l = symbol - 257;
        if (l >= 29) throw zipError(name, "invalid deflate64 data (length code)");
        const length = LENGTH_BASE[l] + bits(LENGTH_EXTRA[l]);
        const d = decode(distances);
        if (d >= 32) throw zipError(name, "invalid deflate64 data (distance code)");
        const distance = DIST_BASE[d] + bits(DIST_EXTRA[d]);
        if (distance > total) throw zipError(name, "invalid deflate64 data (distance too far back)");
        for (let i = 0; i < length; i++) {
          emit(window[(total - distance) & (WINDOW - 1)]);
          if (filled === CHUNK) {
            yield out;
            out = new Uint8Array(CHUNK);
            filled = 0;
          }
        }
      }
      if (filled === CHUNK) {
        yield out;
        out = new Uint8Array(CHUNK);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield out.subarray(0, filled);
}

/** Reads the code tables of a dynamic block (type 2). */
async function dynamicCodes(
  ahead: (bytes: number) => Promise<void>,
  bits: (n: number) => number,
  decode: (code: Huffman) => number,
  name: string,
): Promise<{ lengths: Huffman; distances: Huffman }> {
  await ahead(4);
  const nlen = bits(5) + 257;
  const ndist = bits(5) + 1;
  const ncode = bits(4) + 4;
  if (nlen > 286 + 2 || ndist > 32) throw zipError(name, "invalid deflate64 data (table sizes)");
  await ahead(8);
  const codeLengths = new Uint8Array(19);
  for (let i = 0; i < ncode; i++) codeLengths[CLEN_ORDER[i]] = bits(3);
  const lencode = huffman(codeLengths, name, true);
  const lengths = new Uint8Array(nlen + ndist);
  for (let i = 0; i < nlen + ndist;) {
    await ahead(4);
    let symbol = decode(lencode);
    if (symbol < 16) {
      lengths[i++] = symbol;
      continue;
    }
    let value = 0;
    if (symbol === 16) {
      if (i === 0) throw zipError(name, "invalid deflate64 data (repeat with no length)");
      value = lengths[i - 1];
      symbol = 3 + bits(2);
    } else if (symbol === 17) symbol = 3 + bits(3);
    else symbol = 11 + bits(7);
    if (i + symbol > nlen + ndist) throw zipError(name, "invalid deflate64 data (too many lengths)");
    while (symbol-- > 0) lengths[i++] = value;
  }
  if (lengths[256] === 0) throw zipError(name, "invalid deflate64 data (no end-of-block code)");
  return {
    lengths: huffman(lengths.subarray(0, nlen), name, true),
    distances: huffman(lengths.subarray(nlen), name, true),
  };
}
