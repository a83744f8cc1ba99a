/**
 * The numbers of the ZIP file format (record signatures, general-purpose flag bits, extra field ids, the
 * saturated values that defer to ZIP64) and the little-endian readers for its fields.
 *
 * @module
 */

import { zipError } from "./errors.ts";

/** Local file header. */
export const SIG_LOCAL = 0x04034b50;
/** Central directory header. */
export const SIG_CENTRAL = 0x02014b50;
/** End of central directory record. */
export const SIG_EOCD = 0x06054b50;
/** ZIP64 end of central directory record. */
export const SIG_ZIP64_EOCD = 0x06064b50;
/** ZIP64 end of central directory locator. */
export const SIG_ZIP64_LOCATOR = 0x07064b50;
/** Data descriptor (its signature is optional). */
export const SIG_DESCRIPTOR = 0x08074b50;

/** General-purpose flag: traditional PKWARE encryption. */
export const FLAG_ENCRYPTED = 0x0001;
/** General-purpose flag: CRC and sizes are in a data descriptor after the data. */
export const FLAG_DESCRIPTOR = 0x0008;
/** General-purpose flag: strong encryption. */
export const FLAG_STRONG_ENCRYPTION = 0x0040;
/** General-purpose flag (bit 11): the name is UTF-8. */
export const FLAG_UTF8 = 0x0800;
/** General-purpose flag: local header values masked (central directory encryption). */
export const FLAG_MASKED_HEADERS = 0x2000;

/** Extra field: ZIP64 extended information. */
export const EXTRA_ZIP64 = 0x0001;
/** Extra field: Info-ZIP Unicode Path. */
export const EXTRA_UNICODE_PATH = 0x7075;

/** A 16-bit field at this value defers to the ZIP64 record or extra field. */
export const U16_MAX = 0xffff;
/** A 32-bit field at this value defers to the ZIP64 record or extra field. */
export const U32_MAX = 0xffffffff;

/** The little-endian 16-bit field at `at`. */
export function u16(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8);
}

/** The little-endian unsigned 32-bit field at `at`. */
export function u32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/** The little-endian 64-bit field at `at`, failing (naming `what` and `entry`) past 2^53 - 1. */
export function u64(b: Uint8Array, at: number, what: string, entry?: string): number {
  const value = u32(b, at) + u32(b, at + 4) * 2 ** 32;
  if (!Number.isSafeInteger(value)) throw zipError(entry, `${what} too large`);
  return value;
}

/**
 * The data of the first extra field with this `id` in a header's extra block, or `undefined`; a malformed tail
 * is ignored, as Info-ZIP does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { extraField } from "./format.ts";
 *
 * const block = new Uint8Array([0x55, 0x54, 1, 0, 7, 0x01, 0x00, 2, 0, 8, 9]);
 * assert.deepEqual(extraField(block, 0x0001), new Uint8Array([8, 9]));
 * assert.equal(extraField(block, 0x7075), undefined);
 * ```
 */
export function extraField(extra: Uint8Array, id: number): Uint8Array | undefined {
  let at = 0;
  while (at + 4 <= extra.length) {
    const size = u16(extra, at + 2);
    if (at + 4 + size > extra.length) return undefined;
    if (u16(extra, at) === id) return extra.subarray(at + 4, at + 4 + size);
    at += 4 + size;
  }
  return undefined;
}

/** Where the 4-byte little-endian `signature` first occurs in `bytes` at or after `from`, or -1. */
export function indexOfSignature(bytes: Uint8Array, signature: number, from = 0): number {
  const first = signature & 0xff;
  for (let i = bytes.indexOf(first, from); i >= 0 && i + 4 <= bytes.length; i = bytes.indexOf(first, i + 1)) {
    if (u32(bytes, i) === signature) return i;
  }
  return -1;
}
