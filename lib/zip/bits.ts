/**
 * {@link bitReader}: reading compressed data least significant bit first (as Deflate64, Shrink and Implode
 * store it) from slices fetched ahead, so that a decoding step is synchronous once its bytes are at hand.
 *
 * @module
 */

/** What {@link bitReader} returns. */
export interface BitReader {
  /** Fetches slices until `bytes` bytes are at hand or the data has ended. */
  ahead(bytes: number): Promise<void>;
  /** Whole bytes at hand, not counting the bits already taken into the bit buffer. */
  bytesAtHand(): number;
  /** Whether fewer than `n` bits are left, in the bit buffer and the bytes at hand. */
  short(n: number): boolean;
  /** Takes `n` (≤ 24) bits; throws `truncated()` when the data has fewer. */
  bits(n: number): number;
  /** Drops the bits left of the current byte (to a byte boundary). */
  align(): void;
  /** Bytes fetched but not used, including whole bytes still in the bit buffer. */
  unread(): number;
}

/**
 * Reads what `read` returns (null at the end) least significant bit first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bitReader } from "./bits.ts";
 *
 * const slices = [new Uint8Array([0b1010_1101]), new Uint8Array([0xff, 0x01])];
 * const reader = bitReader(async () => slices.shift() ?? null, () => new Error("too short"));
 * await reader.ahead(3);
 * assert.equal(reader.bits(3), 0b101);
 * reader.align(); // the other 5 bits of the first byte are dropped
 * assert.equal(reader.bits(8), 0xff);
 * assert.equal(reader.unread(), 1);
 * assert.throws(() => reader.bits(9), /too short/);
 * ```
 */
export function bitReader(read: () => Promise<Uint8Array | null>, truncated: () => Error): BitReader {
  let input: Uint8Array = new Uint8Array(0);
  let at = 0;
  let ended = false;
  let buffer = 0;
  let count = 0;
  const bits = (n: number): number => {
    while (count < n) {
      if (at === input.length) throw truncated();
      buffer |= input[at++] << count;
      count += 8;
    }
    const value = buffer & ((1 << n) - 1);
    buffer >>>= n;
    count -= n;
    return value;
  };
  return {
    async ahead(bytes: number): Promise<void> {
      while (input.length - at < bytes && !ended) {
        const next = await read();
        if (next === null) {
          ended = true;
          break;
        }
        const rest = input.subarray(at);
        const joined = new Uint8Array(rest.length + next.length);
        joined.set(rest);
        joined.set(next, rest.length);
        input = joined;
        at = 0;
      }
    },
    bytesAtHand: () => input.length - at,
    short: (n: number) => count + (input.length - at) * 8 < n,
    bits,
    align: () => void bits(count & 7),
    unread: () => input.length - at + (count >> 3),
  };
}
