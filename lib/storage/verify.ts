/**
 * Verifying a copy before its source is archived or deleted: same size, then same content.
 *
 * Content is proven the cheap way when an S3 ETag can decide, and by streaming sha256 of both sides otherwise:
 *
 * - two S3 objects with the same MD5-based ETag hold the same bytes (a single-part ETag is the MD5 of the bytes;
 *   a multipart ETag `md5(part md5s)-N` with the same value means the same parts);
 * - an S3 object and another file: the file is read once and its MD5 (single-part ETag) or multipart ETag — with
 *   the part size lakerun recorded in the object's metadata, or the part sizes that fit — is compared with the
 *   object's ETag; the object is not downloaded;
 * - anything else (local to local, ETags of encrypted objects, a multipart layout that cannot be worked out, or
 *   ETags that differ) falls back to sha256 of both sides, which also decides every mismatch.
 *
 * MD5 is a fingerprint against corruption and mistakes, not against an adversary who crafts collisions.
 *
 * @module
 */
import { candidatePartSizes, etagsMatch, etagsOfStream, MULTIPART_ETAG, PLAIN_ETAG } from "../aws/s3/etag.ts";
import type { ObjectDigest } from "../aws/s3/etag.ts";
import type { Storage, StoredFile } from "./mod.ts";

// the ETag maths moved to lib/aws/s3/etag.ts; still exported here for the importers of this module
export {
  candidatePartSizes,
  EtagHasher,
  etagsOfStream,
  MULTIPART_ETAG,
  multipartEtag,
  PLAIN_ETAG,
} from "../aws/s3/etag.ts";

/** A copy that does not match its source. */
export class CopyMismatchError extends Error {
  /** A mismatch of the copy of `path`, for `reason`. */
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
    this.name = "CopyMismatchError";
  }
}

/** How a copy differs from its source. */
export interface CopyProblem {
  /** What is wrong: no source, no copy, another size, other bytes. */
  kind: "source-missing" | "missing" | "size" | "content";
  /** One line for the user. */
  message: string;
}

export type { ObjectDigest } from "../aws/s3/etag.ts";

/** A {@link Storage} that can describe an object by its ETag (S3). */
export interface DigestStorage extends Storage {
  /** The object's digest, `undefined` when there is no object at `path`. */
  objectDigest(path: string, options?: { signal?: AbortSignal }): Promise<ObjectDigest | undefined>;
}

/** Options of {@link copyProblem} and {@link verifyCopy}. */
export interface VerifyOptions {
  /** The source's listing entry, when the caller has it (saves a request). */
  sourceInfo?: StoredFile;
  /**
   * The target's listing entry, when the caller has listed the target (saves a request per file; `null`:
   * the listing had no such file).
   */
  targetInfo?: StoredFile | null;
  /** Aborts the comparison. */
  signal?: AbortSignal;
  /** Told how the content was compared: by ETag (no download of the object) or by sha256 of both sides. */
  decided?: (how: "etag" | "sha256") => void;
}

/**
 * True when `storage` can describe objects by ETag.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "./local.ts";
 * import { openLocation } from "./locations.ts";
 * import { hasObjectDigest } from "./verify.ts";
 *
 * assert.equal(hasObjectDigest(new LocalStorage("/data/landing")), false);
 * assert.equal(hasObjectDigest(await openLocation("s3://lake/staging", { cwd: "/" })), true);
 * ```
 */
export function hasObjectDigest(storage: Storage): storage is DigestStorage {
  return typeof (storage as Partial<DigestStorage>).objectDigest === "function";
}

/** Whether an object's ETag proves that `other`/`otherPath` holds the same bytes, reading only `other`. */
async function etagProvesFile(
  digest: ObjectDigest,
  other: Storage,
  otherPath: string,
  signal?: AbortSignal,
): Promise<boolean> {
  if (!digest.md5Based) return false;
  const etag = digest.etag.toLowerCase();
  const multi = MULTIPART_ETAG.exec(etag);
  if (!multi && !PLAIN_ETAG.test(etag)) return false;
  const sizes = multi ? candidatePartSizes(digest.size, Number(multi[1]), digest.partSize) : [];
  if (multi && sizes.length === 0) return false;
  signal?.throwIfAborted();
  const computed = await etagsOfStream(await other.read(otherPath, { signal }), sizes);
  if (computed.size !== digest.size) return false;
  return multi ? [...computed.multipart.values()].includes(etag) : computed.md5 === etag;
}

/** True when ETags prove the two sides identical; false when they cannot (the caller then compares sha256). */
async function provenByEtag(
  source: Storage,
  sourcePath: string,
  target: Storage,
  targetPath: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const a = hasObjectDigest(source) ? await source.objectDigest(sourcePath, { signal }) : undefined;
  const b = hasObjectDigest(target) ? await target.objectDigest(targetPath, { signal }) : undefined;
  if (a && b) return a.md5Based && b.md5Based && etagsMatch(a.etag.toLowerCase(), b.etag.toLowerCase());
  if (a) return await etagProvesFile(a, target, targetPath, signal);
  if (b) return await etagProvesFile(b, source, sourcePath, signal);
  return false;
}

/**
 * Why the copy at `target`/`targetPath` differs from `source`/`sourcePath`, or `undefined` when it is
 * byte-identical: missing, another size, or other bytes (ETags where they decide, else sha256 of both sides).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "./local.ts";
 * import { copyProblem } from "./verify.ts";
 *
 * const root = await Deno.makeTempDir();
 * const landing = new LocalStorage(`${root}/landing`);
 * const staging = new LocalStorage(`${root}/staging`);
 * await landing.write("a.csv", new Blob(["a,b\n"]).stream());
 * assert.deepEqual(await copyProblem(landing, "a.csv", staging, "a.csv"), {
 *   kind: "missing",
 *   message: `no copy at ${root}/staging/a.csv`,
 * });
 * await staging.write("a.csv", new Blob(["a,c\n"]).stream()); // same size, other bytes
 * const how: string[] = [];
 * assert.deepEqual(await copyProblem(landing, "a.csv", staging, "a.csv", { decided: (h) => how.push(h) }), {
 *   kind: "content",
 *   message: "copy differs from the source (sha256)",
 * });
 * assert.deepEqual(how, ["sha256"]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function copyProblem(
  source: Storage,
  sourcePath: string,
  target: Storage,
  targetPath: string,
  options: VerifyOptions = {},
): Promise<CopyProblem | undefined> {
  const { signal } = options;
  const sourceMissing = (): CopyProblem => ({
    kind: "source-missing",
    message: `source ${source.url}/${sourcePath} is missing`,
  });
  const missing = (): CopyProblem => ({ kind: "missing", message: `no copy at ${target.url}/${targetPath}` });
  const sizes = (copy: number, original: number): CopyProblem | undefined =>
    copy === original ? undefined : { kind: "size", message: `copy is ${copy} bytes, source is ${original}` };
  const hashes = (a: string, b: string): CopyProblem | undefined => {
    options.decided?.("sha256");
    return a === b ? undefined : { kind: "content", message: "copy differs from the source (sha256)" };
  };
  if (
    source.sha256AndSize && target.sha256AndSize && !hasObjectDigest(source) && !hasObjectDigest(target)
  ) {
    // each side looked up and read once (a local folder): no separate look-up of the sizes
    if (options.sourceInfo && options.sourceInfo.kind !== "file") return sourceMissing();
    if (options.targetInfo === null || (options.targetInfo && options.targetInfo.kind !== "file")) {
      return missing();
    }
    const a = await source.sha256AndSize(sourcePath, { signal });
    if (!a) return sourceMissing();
    const b = await target.sha256AndSize(targetPath, { size: a.size, signal }); // not read when sizes differ
    if (!b) return missing();
    return sizes(b.size, a.size) ?? hashes(a.sha256!, b.sha256!);
  }
  const [from, to] = await Promise.all([
    options.sourceInfo ?? source.stat(sourcePath),
    options.targetInfo !== undefined ? options.targetInfo ?? undefined : target.stat(targetPath),
  ]);
  if (!from || from.kind !== "file") return sourceMissing();
  if (!to || to.kind !== "file") return missing();
  const size = sizes(to.size, from.size);
  if (size) return size;
  if (await provenByEtag(source, sourcePath, target, targetPath, signal)) {
    options.decided?.("etag");
    return undefined;
  }
  const [a, b] = await Promise.all([
    source.sha256(sourcePath, { signal }),
    target.sha256(targetPath, { signal }),
  ]);
  return hashes(a, b);
}

/**
 * Throws {@link CopyMismatchError} unless the copy is byte-identical to its source.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LocalStorage } from "./local.ts";
 * import { CopyMismatchError, verifyCopy } from "./verify.ts";
 *
 * const root = await Deno.makeTempDir();
 * const landing = new LocalStorage(`${root}/landing`);
 * const staging = new LocalStorage(`${root}/staging`);
 * await landing.write("a.csv", new Blob(["a,b\n"]).stream());
 * await assert.rejects(verifyCopy(landing, "a.csv", staging, "a.csv"), CopyMismatchError);
 * await staging.write("a.csv", await landing.read("a.csv"));
 * await verifyCopy(landing, "a.csv", staging, "a.csv");
 * await landing.remove("a.csv"); // only now
 * assert.equal(await landing.stat("a.csv"), undefined);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function verifyCopy(
  source: Storage,
  sourcePath: string,
  target: Storage,
  targetPath: string,
  options: VerifyOptions = {},
): Promise<void> {
  const problem = await copyProblem(source, sourcePath, target, targetPath, options);
  if (problem) throw new CopyMismatchError(sourcePath, problem.message);
}
