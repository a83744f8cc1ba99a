/**
 * {@link Budget}: the running count of inflated bytes, checked against the {@link ZipLimits} (maxBytes, and
 * the ratio to the archive size once past a floor), and the extraction's abort signal.
 *
 * @module
 */

import { ZipError, zipError } from "./errors.ts";
import type { ZipLimits } from "./types.ts";

/** Inflated bytes below which the ratio limit is not applied, by default: 1 GiB. */
export const DEFAULT_RATIO_FLOOR = 2 ** 30;

/** Default ratio limit (inflated bytes ÷ archive bytes). */
export const DEFAULT_MAX_RATIO = 200;

/**
 * Counts the inflated bytes of one extraction and fails it once they exceed `maxBytes`, or, past `ratioFloor`
 * inflated bytes, `maxRatio` times the archive size (the larger of the declared size and the archive bytes
 * read so far); also holds the extraction's abort signal.
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
  readonly #ratioFloor: number;
  readonly #archiveSize: number;
  readonly #archiveBytes: () => number;
  #declared = 0;

  /** Validates `limits`; `archiveBytes` tells how many archive bytes have been read so far. */
  constructor(limits: ZipLimits | undefined, archiveBytes: () => number) {
    const maxBytes = limits?.maxBytes ?? Infinity;
    const maxRatio = limits?.maxRatio ?? DEFAULT_MAX_RATIO;
    const ratioFloor = limits?.ratioFloor ?? DEFAULT_RATIO_FLOOR;
    const archiveSize = limits?.archiveSize ?? 0;
    if (!(maxBytes >= 0)) throw new RangeError(`maxBytes must be a number >= 0, got ${maxBytes}`);
    if (!(maxRatio > 0)) throw new RangeError(`maxRatio must be a number > 0, got ${maxRatio}`);
    if (!(ratioFloor >= 0)) throw new RangeError(`ratioFloor must be a number >= 0, got ${ratioFloor}`);
    if (!(archiveSize >= 0)) throw new RangeError(`archiveSize must be a number >= 0, got ${archiveSize}`);
    this.#maxBytes = maxBytes;
    this.#maxRatio = maxRatio;
    this.#ratioFloor = ratioFloor;
    this.#archiveSize = archiveSize;
    this.#archiveBytes = archiveBytes;
    this.signal = limits?.signal;
    this.allowVcsMetadata = limits?.allowVcsMetadata ?? false;
  }

  /** The archive size the ratio limit is based on. */
  #ratioBase(): number {
    return Math.max(this.#archiveSize, this.#archiveBytes(), 1);
  }

  /** Fails early when the sizes a central directory declares already break a limit. */
  checkDeclared(total: number): void {
    if (total > this.#maxBytes) {
      throw new ZipError(
        `archive declares ${total} inflated bytes, over maxBytes (${this.#maxBytes} bytes)`,
        {
          limit: "maxBytes",
        },
      );
    }
    const base = this.#ratioBase();
    if (total > this.#ratioFloor && total > this.#maxRatio * base) {
      throw new ZipError(
        `archive declares ${total} inflated bytes, over maxRatio (${this.#maxRatio} × ${base} archive bytes)`,
        { limit: "maxRatio" },
      );
    }
  }

  /**
   * Adds the size a local header declares (streaming), failing early when the declared sizes so far already
   * break `maxBytes`, or the ratio to a known archive size (`archiveSize`: without it the archive's size is
   * not known yet). Lying headers are still caught by {@link Budget.count}.
   */
  declare(size: number, name: string): void {
    this.#declared += size;
    if (this.#declared > this.#maxBytes) {
      throw zipError(
        name,
        `declares ${this.#declared} inflated bytes so far, over maxBytes (${this.#maxBytes} bytes)`,
        {
          limit: "maxBytes",
        },
      );
    }
    const base = this.#ratioBase();
    if (
      this.#archiveSize > 0 && this.#declared > this.#ratioFloor && this.#declared > this.#maxRatio * base
    ) {
      throw zipError(
        name,
        `declares ${this.#declared} inflated bytes so far, over maxRatio (${this.#maxRatio} × ${base} archive bytes)`,
        { limit: "maxRatio" },
      );
    }
  }

  /** Counts `n` more inflated bytes of entry `name`, failing past a limit. */
  count(n: number, name: string): void {
    this.total += n;
    if (this.total > this.#maxBytes) {
      throw zipError(name, `inflated data exceeds maxBytes (${this.#maxBytes} bytes)`, { limit: "maxBytes" });
    }
    if (this.total > this.#ratioFloor) {
      const base = this.#ratioBase();
      if (this.total > this.#maxRatio * base) {
        throw zipError(name, `inflated data exceeds maxRatio (${this.#maxRatio} × ${base} archive bytes)`, {
          limit: "maxRatio",
        });
      }
    }
  }

  /** Throws the abort reason once the signal has aborted. */
  checkAbort(): void {
    this.signal?.throwIfAborted();
  }
}
