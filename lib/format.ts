/**
 * How lakerun writes sizes, durations and counts for people: a leaf module every layer may import.
 *
 * @module
 */

/**
 * Formats a byte count with binary units.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBytes } from "./format.ts";
 *
 * assert.equal(formatBytes(512), "512 B");
 * assert.equal(formatBytes(901.509617959629), "902 B"); // a rate below 1 KiB/s
 * assert.equal(formatBytes(1536), "1.5 KiB");
 * assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GiB");
 * ```
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(bytes)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * Formats a duration given in milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDuration } from "./format.ts";
 *
 * assert.equal(formatDuration(250), "250 ms");
 * assert.equal(formatDuration(1234), "1.2 s");
 * assert.equal(formatDuration(125_000), "2 min 5 s");
 * ```
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/**
 * A count and its noun, with the plural `s` when the count is not 1 (or the given plural form).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { plural } from "./format.ts";
 *
 * assert.equal(plural(1, "file"), "1 file");
 * assert.equal(plural(3, "file"), "3 files");
 * assert.equal(plural(2, "entry", "entries"), "2 entries");
 * ```
 */
export function plural(count: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : pluralNoun}`;
}
