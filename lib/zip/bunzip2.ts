/**
 * {@link bunzip2}: BZip2 (zip method 12), which 7-Zip, Python's `zipfile` and some Windows tools write on
 * request and unzip extracts. A decoder of its own (no bzip2 library is reachable from Deno without native
 * code), after the format as bzip2 1.0.8 writes and reads it: per block, the symbol map, 2–6 Huffman tables
 * chosen every 50 symbols, move-to-front with RUNA/RUNB runs of the front symbol, the inverse
 * Burrows–Wheeler transform, then the initial run-length step (four equal bytes, then a count). Each block's
 * CRC and the stream's combined CRC are checked. Blocks in the long-deprecated "randomised" mode (written by
 * bzip2 before 0.9.5) are refused.
 *
 * Memory: a block holds at most 900,000 bytes before the run-length step; the decoder keeps one table of
 * 4 bytes per byte of block (3.6 MB) and reads at most one block's compressed bytes ahead (≤ 2.5 MB).
 *
 * @module
 */

import { decoder } from "./decoder_reader.ts";
import type { Decoder } from "./decoder_reader.ts";
import { zipError } from "./errors.ts";

/** Bytes gathered before a chunk is handed out. */
const CHUNK = 256 * 1024;
const BLOCK_MAGIC_HI = 0x314159;
const BLOCK_MAGIC_LO = 0x265359;
const END_MAGIC_HI = 0x177245;
const END_MAGIC_LO = 0x385090;
/** Huffman code lengths bzip2 allows. */
const MAX_CODE_LENGTH = 20;
/** Symbols per selector. */
const GROUP_SIZE = 50;
/** bzip2 1.0.8 reads up to this many selectors and ignores those beyond (CVE-2019-12900). */
const MAX_SELECTORS = 18002;
/**
 * Compressed bytes enough for any block: at most 900,001 symbols of at most 20 bits, plus its tables.
 * Gathered before a block is decoded, so that the decoding itself is synchronous.
 */
const BLOCK_AHEAD = 2_500_000;

/** The CRC of bzip2: CRC-32 with polynomial 0x04c11db7, most significant bit first. */
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** Bits looked up at once: a code at most this long is decoded with one look-up. */
const FAST_BITS = 10;

/** A Huffman table as bzip2 decodes it: the codes of each length are consecutive, from `base[length]`. */
interface Table {
  /** By the next {@link FAST_BITS} bits: symbol × 32 + length of a code that short, else 0. */
  fast: Int32Array;
  minLength: number;
  /** The largest code of each length (-1: none). */
  limit: Int32Array;
  /** The first code of each length minus the index of its first symbol in `perm`. */
  base: Int32Array;
  /** Symbols in code order. */
  perm: Uint16Array;
}

function table(lengths: Uint8Array, alphabet: number): Table {
  let minLength = MAX_CODE_LENGTH;
  let maxLength = 0;
  for (let i = 0; i < alphabet; i++) {
    minLength = Math.min(minLength, lengths[i]);
    maxLength = Math.max(maxLength, lengths[i]);
  }
  const perm = new Uint16Array(alphabet);
  const limit = new Int32Array(MAX_CODE_LENGTH + 2).fill(-1);
  const base = new Int32Array(MAX_CODE_LENGTH + 2);
  const fast = new Int32Array(1 << FAST_BITS);
  let code = 0;
  let index = 0;
  for (let length = minLength; length <= maxLength; length++) {
    base[length] = code - index;
    for (let i = 0; i < alphabet; i++) {
      if (lengths[i] !== length) continue;
      perm[index++] = i;
      if (length <= FAST_BITS) {
        const span = 1 << (FAST_BITS - length);
        if ((code + 1) * span <= fast.length) fast.fill(i * 32 + length, code * span, (code + 1) * span);
      }
      code++;
    }
    limit[length] = code - 1;
    code <<= 1;
  }
  return { fast, minLength, limit, base, perm };
}

/**
 * Decodes the BZip2 stream whose bytes `read` returns (null at the end of the entry's compressed data),
 * yielding the decoded bytes in chunks of their own (at most 256 KiB each). Fails, naming entry `name`, on
 * invalid data, a wrong block or stream CRC, or data that ends before the stream does; returns once the
 * stream's end record is read, and `unread()` then says how many of the bytes read came after it (the caller
 * checks the compressed size).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bunzip2 } from "./bunzip2.ts";
 *
 * // `printf 'a,b\n' | bzip2 -9`
 * const bz = Uint8Array.from(atob("QlpoOTFBWSZTWQNDOuAAAAFRAAAQAAQwACAAIZpoM00XPF3JFOFCQA0M64A="), (c) => c.charCodeAt(0));
 * let sent = false;
 * const read = async () => sent ? null : (sent = true, bz);
 * let text = "";
 * for await (const chunk of bunzip2(read, "a.csv")) text += new TextDecoder().decode(chunk);
 * assert.equal(text, "a,b\n");
 * ```
 */
export const bunzip2: Decoder = decoder(bunzip2Chunks);

async function* bunzip2Chunks(
  read: () => Promise<Uint8Array | null>,
  name: string,
  state: { unread: () => number },
): AsyncGenerator<Uint8Array> {
  const invalid = (why: string) => zipError(name, `invalid bzip2 data (${why})`);
  let input: Uint8Array = new Uint8Array(0);
  let at = 0;
  let ended = false;
  let bitBuffer = 0; // the low `bitCount` bits are unread, most significant first
  let bitCount = 0;

  /** Reads slices until `bytes` bytes are at hand or the data has ended (one copy, however many slices). */
  const ahead = async (bytes: number): Promise<void> => {
    if (input.length - at >= bytes || ended) return;
    const parts = [input.subarray(at)];
    let have = parts[0].length;
    while (have < bytes) {
      const next = await read();
      if (next === null) {
        ended = true;
        break;
      }
      parts.push(next.slice()); // the reader may reuse its buffer
      have += next.length;
    }
    input = new Uint8Array(have);
    let offset = 0;
    for (const part of parts) {
      input.set(part, offset);
      offset += part.length;
    }
    at = 0;
  };
  /** Takes `n` (≤ 24) bits. */
  const bits = (n: number): number => {
    while (bitCount < n) {
      if (at === input.length) throw invalid("unexpected end of data");
      bitBuffer = ((bitBuffer << 8) | input[at++]) >>> 0;
      bitCount += 8;
    }
    bitCount -= n;
    const value = (bitBuffer >>> bitCount) & ((1 << n) - 1);
    bitBuffer &= (1 << bitCount) - 1;
    return value;
  };
  state.unread = () => input.length - at + (bitCount >> 3);

  await ahead(4);
  if (bits(8) !== 0x42 || bits(8) !== 0x5a || bits(8) !== 0x68) throw invalid("no 'BZh' signature");
  const level = bits(8) - 0x30;
  if (level < 1 || level > 9) throw invalid(`block size ${level}`);
  const blockSize = level * 100_000;
  const tt = new Uint32Array(blockSize);
  let combinedCrc = 0;
  let out = new Uint8Array(CHUNK);
  let filled = 0;

  for (;;) {
    await ahead(BLOCK_AHEAD);
    const hi = bits(24);
    const lo = bits(24);
    if (hi === END_MAGIC_HI && lo === END_MAGIC_LO) {
      const stored = (bits(16) << 16 | bits(16)) >>> 0;
      if (stored !== combinedCrc >>> 0) throw invalid("stream CRC mismatch");
      bits(bitCount & 7); // the stream ends at a byte boundary
      break;
    }
    if (hi !== BLOCK_MAGIC_HI || lo !== BLOCK_MAGIC_LO) throw invalid("no block signature");
    const blockCrc = (bits(16) << 16 | bits(16)) >>> 0;
    if (bits(1)) throw invalid("randomised block, written by bzip2 before 0.9.5; not supported");
    const origin = bits(24);

    // the bytes in use, as a map of 16 ranges of 16
    const symbols: number[] = [];
    const ranges = bits(16);
    for (let i = 0; i < 16; i++) {
      if (!(ranges & (0x8000 >> i))) continue;
      const used = bits(16);
      for (let j = 0; j < 16; j++) if (used & (0x8000 >> j)) symbols.push(i * 16 + j);
    }
    if (symbols.length === 0) throw invalid("no symbols");
    const alphabet = symbols.length + 2; // RUNA, RUNB, the move-to-front positions 1.., end of block
    const groups = bits(3);
    if (groups < 2 || groups > 6) throw invalid(`${groups} Huffman tables`);
    const selectorCount = bits(15);
    if (selectorCount < 1) throw invalid("no selectors");
    const order = Array.from({ length: groups }, (_, i) => i);
    const selectors = new Uint8Array(Math.min(selectorCount, MAX_SELECTORS));
    for (let i = 0; i < selectorCount; i++) {
      let position = 0;
      while (bits(1)) {
        if (++position >= groups) throw invalid("selector out of range");
      }
      const group = order[position];
      order.splice(position, 1);
      order.unshift(group);
      if (i < MAX_SELECTORS) selectors[i] = group;
    }
    const tables: Table[] = [];
    const lengths = new Uint8Array(alphabet);
    for (let t = 0; t < groups; t++) {
      let length = bits(5);
      for (let i = 0; i < alphabet; i++) {
        for (;;) {
          if (length < 1 || length > MAX_CODE_LENGTH) throw invalid("code length out of range");
          if (!bits(1)) break;
          length += bits(1) ? -1 : 1;
        }
        lengths[i] = length;
      }
      tables.push(table(lengths, alphabet));
    }

    // Huffman and move-to-front decoding into tt (low byte of each entry), counting each byte
    const front = Uint8Array.from(symbols.keys());
    const counts = new Int32Array(256);
    const endOfBlock = alphabet - 1;
    let length = 0;
    let selector = 0;
    let left = 0;
    let current = tables[0];
    const symbol = (): number => {
      if (left === 0) {
        if (selector >= selectors.length) throw invalid("more symbols than selectors");
        current = tables[selectors[selector++]];
        left = GROUP_SIZE;
      }
      left--;
      // up to 24 bits at hand (fewer at the very end), then the code's length found without taking bit by bit
      while (bitCount < 24 && at < input.length) {
        bitBuffer = ((bitBuffer << 8) | input[at++]) >>> 0;
        bitCount += 8;
      }
      if (bitCount >= FAST_BITS) {
        const entry = current.fast[bitBuffer >>> (bitCount - FAST_BITS)];
        if (entry !== 0) {
          bitCount -= entry & 31;
          bitBuffer &= (1 << bitCount) - 1;
          return entry >>> 5;
        }
      }
      const { limit } = current;
      let size = current.minLength;
      if (size > bitCount) throw invalid("unexpected end of data");
      let code = bitBuffer >>> (bitCount - size);
      while (code > limit[size]) {
        if (++size > MAX_CODE_LENGTH) throw invalid("invalid code");
        if (size > bitCount) throw invalid("unexpected end of data");
        code = bitBuffer >>> (bitCount - size);
      }
      bitCount -= size;
      bitBuffer &= (1 << bitCount) - 1;
      return current.perm[code - current.base[size]];
    };
    let next = symbol();
    for (;;) {
      if (next === endOfBlock) break;
      if (next <= 1) {
        // RUNA (0) and RUNB (1): a run of the front byte, its length in bijective base 2
        let run = 0;
        let weight = 1;
        do {
          run += weight << next;
          weight <<= 1;
          if (run > blockSize) throw invalid("run longer than the block");
          next = symbol();
        } while (next <= 1);
        const byte = symbols[front[0]];
        if (length + run > blockSize) throw invalid("block larger than its size");
        counts[byte] += run;
        tt.fill(byte, length, length + run);
        length += run;
        continue;
      }
      const position = next - 1;
      const index = front[position];
      for (let k = position; k > 0; k--) front[k] = front[k - 1];
      front[0] = index;
      const byte = symbols[index];
      if (length >= blockSize) throw invalid("block larger than its size");
      counts[byte]++;
      tt[length++] = byte;
      next = symbol();
    }
    if (origin >= length) throw invalid("origin pointer beyond the block");

    // inverse Burrows–Wheeler: each entry gets the position of the next byte in its high 24 bits
    const starts = new Int32Array(256);
    for (let i = 0, sum = 0; i < 256; i++) {
      starts[i] = sum;
      sum += counts[i];
    }
    for (let i = 0; i < length; i++) {
      const byte = tt[i] & 0xff;
      tt[starts[byte]++] |= i << 8;
    }

    // undo the initial run-length step (4 equal bytes, then a count of more) while checking the CRC
    let crc = 0xffffffff;
    let position = tt[origin] >>> 8;
    let previous = -1;
    let same = 0;
    for (let i = 0; i < length; i++) {
      const entry = tt[position];
      const byte = entry & 0xff;
      position = entry >>> 8;
      // after four equal bytes, a byte counts more copies of them
      let times = 1;
      if (same === 4) {
        same = 0;
        times = byte;
      } else {
        same = byte === previous ? same + 1 : 1;
        previous = byte;
      }
      for (let k = 0; k < times; k++) {
        crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ previous) & 0xff];
        out[filled++] = previous;
        if (filled === CHUNK) {
          yield out;
          out = new Uint8Array(CHUNK);
          filled = 0;
        }
      }
    }
    if ((~crc >>> 0) !== blockCrc) throw invalid("block CRC mismatch");
    combinedCrc = ((combinedCrc << 1) | (combinedCrc >>> 31)) ^ blockCrc;
  }
  if (filled > 0) yield out.subarray(0, filled);
}
