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
import { createHash } from "node:crypto";
import type { Storage, StoredFile } from "./mod.ts";

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

/** What an object store can tell about an object's bytes without reading them. */
export interface ObjectDigest {
  /** Size in bytes. */
  size: number;
  /** The ETag, quotes removed. */
  etag: string;
  /** False when the ETag is not derived from MD5 (server-side encryption with KMS or customer keys). */
  md5Based: boolean;
  /** The part size of a multipart object, when known. */
  partSize?: number;
}

/** A {@link Storage} that can describe an object by its ETag (S3). */
export interface DigestStorage extends Storage {
  /** The object's digest, `undefined` when there is no object at `path`. */
  objectDigest(path: string, options?: { signal?: AbortSignal }): Promise<ObjectDigest | undefined>;
}

/** Options of {@link copyProblem} and {@link verifyCopy}. */
export interface VerifyOptions {
  /** The source's listing entry, when the caller has it (saves a request). */
  sourceInfo?: StoredFile;
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
 * if (hasObjectDigest(staging)) console.log(await staging.objectDigest("a.csv"));
 * ```
 */
export function hasObjectDigest(storage: Storage): storage is DigestStorage {
  return typeof (storage as Partial<DigestStorage>).objectDigest === "function";
}

/**
 * The multipart ETag of an object uploaded in parts with these MD5s: `md5(concatenated part md5s)-N`.
 *
 * @example
 * ```ts
 * multipartEtag([md5OfPart1, md5OfPart2]); // "51800f53cc06b9dcdbdb1c10eb9f7927-2"
 * ```
 */
export function multipartEtag(partMd5s: Uint8Array[]): string {
  const hash = createHash("md5");
  for (const md5 of partMd5s) hash.update(md5);
  return `${hash.digest("hex")}-${partMd5s.length}`;
}

/**
 * The ETag a body gets when uploaded whole (`partSize` 0: the MD5 of the bytes) or in parts of `partSize` bytes
 * (the multipart ETag), computed as the bytes go past.
 *
 * @example
 * ```ts
 * const etag = new EtagHasher(8 * 1024 * 1024);
 * for await (const chunk of body) etag.update(chunk);
 * etag.digest(); // "…-3"
 * ```
 */
export class EtagHasher {
  #hash = createHash("md5");
  #inPart = 0;
  readonly #parts: Uint8Array[] = [];

  /** @param partSize bytes per part; 0 for a single-part upload */
  constructor(readonly partSize: number) {}

  /** Hashes the next chunk of the body. */
  update(chunk: Uint8Array): void {
    const partSize = this.partSize;
    if (partSize === 0) {
      this.#hash.update(chunk);
      return;
    }
    for (let offset = 0; offset < chunk.byteLength;) {
      const n = Math.min(partSize - this.#inPart, chunk.byteLength - offset);
      this.#hash.update(offset === 0 && n === chunk.byteLength ? chunk : chunk.subarray(offset, offset + n));
      this.#inPart += n;
      offset += n;
      if (this.#inPart === partSize) {
        this.#parts.push(this.#hash.digest());
        this.#hash = createHash("md5");
        this.#inPart = 0;
      }
    }
  }

  /** The ETag of everything hashed (lower-case hex, `-N` for parts); call once, at the end. */
  digest(): string {
    if (this.partSize === 0) return this.#hash.digest("hex");
    if (this.#inPart > 0 || this.#parts.length === 0) this.#parts.push(this.#hash.digest());
    return multipartEtag(this.#parts);
  }
}

/**
 * The single-part ETag (MD5) of a stream, and its multipart ETag for each of `partSizes`, in one pass.
 *
 * @example
 * ```ts
 * const { md5, multipart } = await etagsOfStream(file.readable, [8 * 1024 * 1024]);
 * multipart.get(8 * 1024 * 1024); // "…-3"
 * ```
 */
export async function etagsOfStream(
  stream: ReadableStream<Uint8Array>,
  partSizes: number[],
): Promise<{ size: number; md5: string; multipart: Map<number, string> }> {
  const whole = new EtagHasher(0);
  const layouts = partSizes.map((partSize) => new EtagHasher(partSize));
  let size = 0;
  for await (const chunk of stream) {
    whole.update(chunk);
    size += chunk.byteLength;
    for (const layout of layouts) layout.update(chunk);
  }
  const multipart = new Map(layouts.map((layout) => [layout.partSize, layout.digest()]));
  return { size, md5: whole.digest(), multipart };
}

/**
 * Part sizes that give `parts` parts for `size` bytes: `known` when it fits, else whole MiB sizes (at most 4),
 * the sizes tools use.
 *
 * @example
 * ```ts
 * candidatePartSizes(20_000_000, 4); // [5242880, 6291456]
 * ```
 */
export function candidatePartSizes(size: number, parts: number, known?: number): number[] {
  const fits = (p: number) => p > 0 && Math.max(1, Math.ceil(size / p)) === parts;
  if (known && fits(known)) return [known];
  if (parts === 1) return [Math.max(size, 1)];
  const MiB = 1024 * 1024;
  const out: number[] = [];
  for (let k = Math.max(1, Math.ceil(size / parts / MiB)); out.length < 4 && k * MiB < size; k++) {
    if (fits(k * MiB)) out.push(k * MiB);
    else if (Math.ceil(size / (k * MiB)) < parts) break;
  }
  return out;
}

/** A single-part ETag: the MD5 of the bytes, lower-case hex. */
export const PLAIN_ETAG = /^[0-9a-f]{32}$/;
/** A multipart ETag, `md5(part md5s)-N`; group 1 is N. */
export const MULTIPART_ETAG = /^[0-9a-f]{32}-(\d+)$/;

/** True when two MD5-based ETags prove the same bytes (equal, or a single-part MD5 and its one-part form). */
function etagsMatch(a: string, b: string): boolean {
  if (a === b) return true;
  const onePart = (plain: string, multi: string) =>
    PLAIN_ETAG.test(plain) && multi.endsWith("-1") &&
    multipartEtag([Uint8Array.from(plain.match(/../g)!.map((h) => parseInt(h, 16)))]) === multi;
  return onePart(a, b) || onePart(b, a);
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
 * const problem = await copyProblem(landing, "a.csv", staging, "a.csv");
 * if (problem) throw new Error(problem.message);
 * ```
 */
export async function copyProblem(
  source: Storage,
  sourcePath: string,
  target: Storage,
  targetPath: string,
  options: VerifyOptions = {},
): Promise<CopyProblem | undefined> {
  const [from, to] = await Promise.all([
    options.sourceInfo ?? source.stat(sourcePath),
    target.stat(targetPath),
  ]);
  if (!from || from.kind !== "file") {
    return { kind: "source-missing", message: `source ${source.url}/${sourcePath} is missing` };
  }
  if (!to || to.kind !== "file") {
    return { kind: "missing", message: `no copy at ${target.url}/${targetPath}` };
  }
  if (to.size !== from.size) {
    return { kind: "size", message: `copy is ${to.size} bytes, source is ${from.size}` };
  }
  if (await provenByEtag(source, sourcePath, target, targetPath, options.signal)) {
    options.decided?.("etag");
    return undefined;
  }
  const [a, b] = await Promise.all([
    source.sha256(sourcePath, { signal: options.signal }),
    target.sha256(targetPath, { signal: options.signal }),
  ]);
  options.decided?.("sha256");
  if (a !== b) return { kind: "content", message: "copy differs from the source (sha256)" };
  return undefined;
}

/**
 * Throws {@link CopyMismatchError} unless the copy is byte-identical to its source.
 *
 * @example
 * ```ts
 * await verifyCopy(landing, "a.csv", staging, "a.csv");
 * await landing.remove("a.csv"); // only now
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
