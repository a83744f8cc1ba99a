/**
 * What a transform read, by content: the landing files' sha256 (and, on S3, the ETag of the object those bytes
 * are, where that is proven), recorded when the transform succeeds and compared before its work is taken as
 * done. A path and a size are not enough: a landing file rewritten with other bytes of the same size (the next
 * day's download) keeps both, and often its modification time's second too.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { PLAIN_ETAG } from "../../lib/storage/verify.ts";
import type { Storage, StoredFile } from "../../lib/storage/mod.ts";

/** One landing file as a transform read it. */
export interface TransformInput {
  /** Path relative to the landing folder. */
  path: string;
  size: number;
  /** Lower-case hex sha256 of the bytes the transform read. */
  sha256: string;
  /**
   * The S3 ETag (unquoted) of the object those bytes are, only where that is proven: a plain ETag equal to
   * their MD5, or a multipart one that every ranged GET of the download was conditional on.
   */
  etag?: string;
}

/**
 * A landing file of a local folder as the transform is about to read it: its sha256, taken before the
 * transform runs. Bytes written later (while it runs, or after) then differ from the record, and the file is
 * never taken for transformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../../lib/storage/local.ts";
 * import { localInput } from "./inputs.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.csv`, "test");
 * const input = await localInput(new LocalStorage(dir), { path: "a.csv", size: 4, kind: "file" });
 * assert.deepEqual(input, {
 *   path: "a.csv",
 *   size: 4,
 *   sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
 * });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function localInput(
  landing: Storage,
  file: StoredFile,
  options: { signal?: AbortSignal } = {},
): Promise<TransformInput> {
  return { path: file.path, size: file.size, sha256: await landing.sha256(file.path, options) };
}

/**
 * A landing object as downloaded into the local `copy` the transform reads: the sha256 of the copy, and the
 * listed ETag when the copy proves it (its MD5 for a plain ETag; for a multipart one, `downloadedEtag`, the
 * ETag the ranged download was conditional on, equal to the listed one).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { downloadedInput } from "./inputs.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.csv`, "test");
 * const listed = { path: "a.csv", size: 4, kind: "file" as const, etag: "098f6bcd4621d373cade4e832627b4f6" };
 * const input = await downloadedInput(listed, `${dir}/a.csv`);
 * assert.equal(input.etag, "098f6bcd4621d373cade4e832627b4f6"); // MD5 of "test"
 * const other = await downloadedInput({ ...listed, etag: "0".repeat(32) }, `${dir}/a.csv`);
 * assert.equal(other.etag, undefined); // not these bytes' MD5 (another version, or an encrypted object's)
 * assert.equal(other.sha256, input.sha256);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function downloadedInput(
  file: StoredFile,
  copy: string,
  downloadedEtag?: string,
): Promise<TransformInput> {
  const sha256 = createHash("sha256");
  const md5 = createHash("md5");
  let size = 0;
  using opened = await Deno.open(copy);
  for await (const chunk of opened.readable) {
    sha256.update(chunk);
    md5.update(chunk);
    size += chunk.byteLength;
  }
  const listed = file.etag?.toLowerCase();
  const md5Hex = md5.digest("hex");
  const proven = listed !== undefined &&
    (PLAIN_ETAG.test(listed) ? md5Hex === listed : downloadedEtag?.toLowerCase() === listed);
  return { path: file.path, size, sha256: sha256.digest("hex"), ...(proven ? { etag: listed } : {}) };
}

/**
 * Whether `file` of `landing` still holds the bytes `input` records: same size, then the same ETag (S3: an
 * object's ETag changes whenever its content does), else the same sha256 — read from `landing` unless
 * `etagOnly` (then an ETag that does not decide answers false: the caller redoes the work instead).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "../../lib/storage/local.ts";
 * import { localInput, unchangedSince } from "./inputs.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const landing = new LocalStorage(dir);
 * await Deno.writeTextFile(`${dir}/a.csv`, "day1\n");
 * const file = { path: "a.csv", size: 5, kind: "file" as const };
 * const input = await localInput(landing, file);
 * assert.equal(await unchangedSince(landing, file, input), true);
 * await Deno.writeTextFile(`${dir}/a.csv`, "day2\n"); // the same size
 * assert.equal(await unchangedSince(landing, file, input), false);
 * assert.equal(await unchangedSince(landing, file, undefined), false);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function unchangedSince(
  landing: Storage,
  file: StoredFile,
  input: Partial<TransformInput> | undefined,
  options: { etagOnly?: boolean; signal?: AbortSignal } = {},
): Promise<boolean> {
  // a record written before inputs were known by content has no sha256: nothing proves them unchanged
  if (!input?.sha256 || input.size !== file.size) return false;
  const etag = file.etag?.toLowerCase();
  if (input.etag !== undefined && etag !== undefined && etag === input.etag) return true;
  if (options.etagOnly) return false;
  return (await landing.sha256(file.path, { signal: options.signal })) === input.sha256;
}
