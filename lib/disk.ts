/**
 * How much a file system can still take: the free space a download may fill before it fails instead of
 * filling the disk.
 *
 * @module
 */
import { statfsSync } from "node:fs";

/**
 * Bytes an unprivileged user may still write on the file system holding the existing folder `path`, or
 * `undefined` when the system does not say (no `sys: ["statfs"]` and read permission in a step's sandbox, or a
 * platform without the call).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { freeBytes } from "./disk.ts";
 *
 * const free = freeBytes(Deno.cwd());
 * assert.ok(free === undefined || free >= 0);
 * assert.equal(freeBytes("/no/such/folder"), undefined);
 * ```
 */
export function freeBytes(path: string): number | undefined {
  try {
    const info = statfsSync(path);
    return Number(info.bavail) * Number(info.bsize);
  } catch {
    return undefined;
  }
}

/** Most that is kept free on a file system a download writes to: 1 GiB. */
export const KEPT_FREE = 2 ** 30;

/**
 * What a download may write on a file system with `free` bytes free: all but a reserve of a tenth of it, at
 * most {@link KEPT_FREE}, so that an archive larger than the disk stops before filling it (and the other
 * programs on the machine, which need room too).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { roomOf } from "./disk.ts";
 *
 * assert.equal(roomOf(50 * 2 ** 30), 49 * 2 ** 30); // 1 GiB kept free
 * assert.equal(roomOf(500_000_000), 450_000_000); // a tenth kept free
 * ```
 */
export function roomOf(free: number): number {
  return free - Math.min(KEPT_FREE, Math.floor(free / 10));
}
