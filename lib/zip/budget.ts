/**
 * {@link Budget}: the running count of inflated bytes, checked against the {@link ZipLimits} (maxBytes and
 * the ratio to the archive size), and the extraction's abort signal.
 *
 * @module
 */

import { ZipError, zipError } from "./errors.ts";
import type { ZipLimits } from "./types.ts";

/** Smallest archive size used for the ratio limit. */
const RATIO_FLOOR = 64 * 1024;

/**
 * Counts the inflated bytes of one extraction and fails it once they exceed `maxBytes` or `maxRatio` times
 * the archive size (the largest of the declared size, the archive bytes read so far and 64 KiB); also holds
 * the extraction's abort signal.
 */
export class Budget {
  /** Inflated bytes so far. */
  total = 0;
  /** The extraction's abort signal, if any. */
  readonly signal?: AbortSignal;
  /** Whether entries inside `.git`, `.hg` and `.svn` folders are extracted (see `NameRegistry`). */
  readonly allowVcsMetadata: boolean;
  readonly #maxBytes: number;
  readonly #maxRatio: number;
  readonly #archiveSize: number;
  readonly #archiveBytes: () => number;

  /** Validates `limits`; `archiveBytes` tells how many archive bytes have been read so far. */
  constructor(limits: ZipLimits | undefined, archiveBytes: () => number) {
    const maxBytes = limits?.maxBytes ?? Infinity;
    const maxRatio = limits?.maxRatio ?? 200;
    const archiveSize = limits?.archiveSize ?? 0;
    if (!(maxBytes >= 0)) throw new RangeError(`maxBytes must be a number >= 0, got ${maxBytes}`);
    if (!(maxRatio > 0)) throw new RangeError(`maxRatio must be a number > 0, got ${maxRatio}`);
    if (!(archiveSize >= 0)) throw new RangeError(`archiveSize must be a number >= 0, got ${archiveSize}`);
    this.#maxBytes = maxBytes;
    this.#maxRatio = maxRatio;
    this.#archiveSize = archiveSize;
    this.#archiveBytes = archiveBytes;
    this.signal = limits?.signal;
    this.allowVcsMetadata = limits?.allowVcsMetadata ?? false;
  }

  /** The archive size the ratio limit is based on. */
  #ratioBase(): number {
    return Math.max(this.#archiveSize, this.#archiveBytes(), RATIO_FLOOR);
  }

  /** Fails early when the sizes a central directory declares already break a limit. */
  checkDeclared(total: number): void {
    if (total > this.#maxBytes) {
      throw new ZipError(`archive declares ${total} inflated bytes, over maxBytes (${this.#maxBytes} bytes)`);
    }
    const base = this.#ratioBase();
    if (total > this.#maxRatio * base) {
      throw new ZipError(
        `archive declares ${total} inflated bytes, over maxRatio (${this.#maxRatio} × ${base} archive bytes)`,
      );
    }
  }

  /** Counts `n` more inflated bytes of entry `name`, failing past a limit. */
  count(n: number, name: string): void {
    this.total += n;
    if (this.total > this.#maxBytes) {
      throw zipError(name, `inflated data exceeds maxBytes (${this.#maxBytes} bytes)`);
    }
    if (this.total > this.#maxRatio * RATIO_FLOOR) {
      const base = this.#ratioBase();
      if (this.total > this.#maxRatio * base) {
        throw zipError(name, `inflated data exceeds maxRatio (${this.#maxRatio} × ${base} archive bytes)`);
      }
    }
  }

  /** Throws the abort reason once the signal has aborted. */
  checkAbort(): void {
    this.signal?.throwIfAborted();
  }
}
