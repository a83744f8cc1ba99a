/**
 * S3 ETag maths: the MD5 of a single-part object, the multipart ETag `md5(part md5s)-N` of an object uploaded
 * in parts, computing either as the bytes stream past, the part sizes that can explain a multipart ETag, and
 * reading what a HeadObject or GetObject answer tells about an object's bytes.
 *
 * Only ETags derived from MD5 say anything about the bytes: objects encrypted with KMS or customer keys have
 * other ETags ({@link md5BasedEtag}).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { GetObjectCommandOutput, HeadObjectCommandOutput } from "@aws-sdk/client-s3";

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

/** A single-part ETag: the MD5 of the bytes, lower-case hex. */
export const PLAIN_ETAG = /^[0-9a-f]{32}$/;
/** A multipart ETag, `md5(part md5s)-N`; group 1 is N. */
export const MULTIPART_ETAG = /^[0-9a-f]{32}-(\d+)$/;

/** Object metadata key holding the part size lakerun uploaded with (for ETag verification). */
export const PART_SIZE_METADATA = "lakerun-part-size";

/** An ETag without its quotes (and weak `W/` mark); empty for none. */
export function unquoteEtag(etag: string | undefined): string {
  return (etag ?? "").replace(/^(W\/)?"|"$/g, "");
}

/** False for server-side encryption whose ETag is not an MD5 of the bytes (KMS, customer keys). */
export function md5BasedEtag(
  head: { ServerSideEncryption?: string; SSECustomerAlgorithm?: string },
): boolean {
  return !head.SSECustomerAlgorithm && !(head.ServerSideEncryption ?? "").startsWith("aws:kms");
}

/** The number of parts an ETag tells (`N` of `…-N`), 1 for a single-part ETag. */
export function etagPartCount(etag: string): number {
  return Number(/-(\d+)$/.exec(etag)?.[1] ?? 1);
}

/**
 * The multipart ETag of an object uploaded in parts with these MD5s: `md5(concatenated part md5s)-N`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { multipartEtag } from "./etag.ts";
 *
 * const md5 = (text: string) => createHash("md5").update(text).digest();
 * assert.equal(multipartEtag([md5("hello "), md5("world")]), "e09e4fd6265b36115fe3db32df945d84-2");
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
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { EtagHasher, multipartEtag } from "./etag.ts";
 *
 * const body = new TextEncoder().encode("aaaaabbbbbcc");
 * const etag = new EtagHasher(5); // parts of 5 bytes, whatever the chunks
 * for (const chunk of [body.subarray(0, 7), body.subarray(7)]) etag.update(chunk);
 * const md5 = (text: string) => createHash("md5").update(text).digest();
 * assert.equal(etag.digest(), multipartEtag([md5("aaaaa"), md5("bbbbb"), md5("cc")]));
 *
 * const whole = new EtagHasher(0);
 * whole.update(body);
 * assert.equal(whole.digest(), createHash("md5").update(body).digest("hex"));
 * ```
 */
export class EtagHasher {
  #hash = createHash("md5");
  #inPart = 0;
  readonly #parts: Uint8Array[] = [];

  /** A hasher of the ETag for parts of `partSize` bytes; 0 for a single-part upload. */
  constructor(
    /** Bytes per part; 0 for a single-part upload. */
    readonly partSize: number,
  ) {}

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
 * import assert from "node:assert/strict";
 * import { etagsOfStream } from "./etag.ts";
 *
 * const body = ReadableStream.from([new TextEncoder().encode("aaaaabbbbbcc")]);
 * const { size, md5, multipart } = await etagsOfStream(body, [5, 4]);
 * assert.equal(size, 12);
 * assert.equal(md5, "e5acda5b40725929d78504ae35c5da02");
 * assert.equal(multipart.get(5), "e054baf8a790fa129a28b08515440e3e-3");
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
 * import assert from "node:assert/strict";
 * import { candidatePartSizes } from "./etag.ts";
 *
 * assert.deepEqual(candidatePartSizes(20_000_000, 4), [5 * 2 ** 20, 6 * 2 ** 20]);
 * assert.deepEqual(candidatePartSizes(20_000_000, 4, 6_000_000), [6_000_000]); // the recorded size fits
 * assert.deepEqual(candidatePartSizes(20_000_000, 1), [20_000_000]);
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

/**
 * True when two lower-case MD5-based ETags prove the same bytes (equal, or a single-part MD5 and its one-part
 * form).
 */
export function etagsMatch(a: string, b: string): boolean {
  if (a === b) return true;
  const onePart = (plain: string, multi: string) =>
    PLAIN_ETAG.test(plain) && multi.endsWith("-1") &&
    multipartEtag([Uint8Array.from(plain.match(/../g)!.map((h) => parseInt(h, 16)))]) === multi;
  return onePart(a, b) || onePart(b, a);
}

/**
 * What a HeadObject answer tells about the object's bytes: size, ETag, whether the ETag is MD5-based, and the
 * part size lakerun recorded in its metadata (undefined when none is recorded).
 */
export function objectDigestOf(head: HeadObjectCommandOutput): ObjectDigest {
  const recorded = Number(head.Metadata?.[PART_SIZE_METADATA]);
  return {
    size: head.ContentLength ?? 0,
    etag: unquoteEtag(head.ETag),
    md5Based: md5BasedEtag(head),
    partSize: Number.isSafeInteger(recorded) && recorded > 0 ? recorded : undefined,
  };
}

/**
 * Part sizes in MiB that tools upload with, most used first: 8 (aws CLI, boto3), 5 (rclone, the Go and Java
 * SDKs, S3's smallest part), 16 (MinIO's `mc`), 15 (s3cmd), 64 and 100 (Hadoop S3A, Spark), 128, then the
 * doublings tools make to stay under 10,000 parts (powers of 2 MiB, and 5 × 2ᵏ MiB), up to S3's 5 GiB.
 */
export const COMMON_PART_SIZES_MIB: readonly number[] = [
  ...new Set([
    8,
    5,
    16,
    15,
    64,
    100,
    128,
    ...Array.from({ length: 13 }, (_, k) => 2 ** k),
    ...Array.from({ length: 11 }, (_, k) => 5 * 2 ** k),
  ]),
];

/**
 * The common part sizes ({@link COMMON_PART_SIZES_MIB}) that give `parts` parts for `size` bytes, most used
 * first: the layouts worth hashing when an object's own part size is unknown. Only sizes `p` with
 * `ceil(size / p) === parts` can be the object's; usually one or two fit, often none for an object uploaded
 * with an unusual part size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { commonPartSizes } from "./etag.ts";
 *
 * const MiB = 1024 * 1024;
 * assert.deepEqual(commonPartSizes(12 * MiB, 2), [8 * MiB, 10 * MiB]); // aws s3 cp of 12 MiB: 8 MiB parts
 * assert.deepEqual(commonPartSizes(17 * MiB, 2), [16 * MiB, 15 * MiB, 10 * MiB]);
 * assert.deepEqual(commonPartSizes(200 * MiB, 25), [8 * MiB]);
 * assert.deepEqual(commonPartSizes(30 * MiB, 5), []); // parts of 6 to 7.5 MiB: none is common
 * ```
 */
export function commonPartSizes(size: number, parts: number): number[] {
  if (parts < 2) return [];
  const MiB = 1024 * 1024;
  return COMMON_PART_SIZES_MIB.map((mib) => mib * MiB).filter((p) => Math.ceil(size / p) === parts);
}

/**
 * The part sizes whose multipart ETag may be the object's: the recorded (or server-told) `known` one when it
 * fits the part count, else the common ones that fit ({@link commonPartSizes}); `guessed` tells which.
 */
export function partSizesToHash(
  size: number,
  parts: number,
  known: number | undefined,
): { sizes: number[]; guessed: boolean } {
  if (parts === 1) return { sizes: [Math.max(size, 1)], guessed: false };
  if (known !== undefined && known > 0 && Math.ceil(size / known) === parts) {
    return { sizes: [known], guessed: false };
  }
  return { sizes: commonPartSizes(size, parts), guessed: true };
}

/** Why a multipart ETag could not be checked: no part size recorded, and no common one fits its part count. */
export const UNKNOWN_PART_SIZE =
  "part size unknown (its multipart ETag fits no part size lakerun recorded or tools use)";
/** Why an ETag could not be checked: server-side encryption with KMS or customer keys. */
export const NOT_MD5_ETAG = "its ETag is not an MD5 (server-side encryption)";

/**
 * Checks a downloaded body against its GetObject response: the announced length, and the ETag when it is the
 * MD5 of the bytes or a multipart ETag. The part size of a multipart ETag is the one lakerun recorded in the
 * object's metadata when it fits; otherwise every common part size that fits the part count is hashed, in the
 * same pass, and any match proves the bytes. When none fits, {@link EtagCheck.unverified} says so.
 */
export class EtagCheck {
  readonly #where: string;
  readonly #expectedSize: number | undefined;
  readonly #etag: string;
  readonly #hashers: EtagHasher[] = [];
  readonly #guessed: boolean = false;
  #size = 0;
  /** Why the bytes could not be checked against the ETag (set at construction). */
  unverified: string | undefined;

  /** A check of the body of `response`, naming the object as `where` in what {@link finish} returns. */
  constructor(response: GetObjectCommandOutput, where: string) {
    this.#where = where;
    this.#expectedSize = response.ContentLength;
    this.#etag = unquoteEtag(response.ETag).toLowerCase();
    const multipart = MULTIPART_ETAG.exec(this.#etag);
    const size = this.#expectedSize;
    if (size === undefined) return;
    if (!md5BasedEtag(response)) {
      this.unverified = NOT_MD5_ETAG;
      return;
    }
    if (PLAIN_ETAG.test(this.#etag)) {
      this.#hashers.push(new EtagHasher(0));
      return;
    }
    if (!multipart) return;
    const recorded = Number(response.Metadata?.[PART_SIZE_METADATA]);
    const { sizes, guessed } = partSizesToHash(
      size,
      Number(multipart[1]),
      recorded > 0 ? recorded : undefined,
    );
    this.#guessed = guessed;
    for (const partSize of sizes) this.#hashers.push(new EtagHasher(partSize));
    if (sizes.length === 0) this.unverified = UNKNOWN_PART_SIZE;
  }

  /** Counts and hashes the next chunk. */
  update(chunk: Uint8Array): void {
    this.#size += chunk.byteLength;
    for (const hasher of this.#hashers) hasher.update(chunk);
  }

  /**
   * What is wrong with the whole body, or `undefined` when it matches (or cannot be checked: see
   * {@link unverified}); call once, at the end.
   */
  finish(): string | undefined {
    if (this.#expectedSize !== undefined && this.#size !== this.#expectedSize) {
      return `${this.#where}: received ${this.#size} bytes, the object has ${this.#expectedSize}`;
    }
    if (this.#hashers.length === 0) return undefined;
    if (this.#hashers.some((hasher) => hasher.digest() === this.#etag)) return undefined;
    if (this.#guessed) {
      this.unverified = guessedSizesMissed(this.#hashers.map((hasher) => hasher.partSize));
      return undefined;
    }
    return `${this.#where}: the bytes received do not match the object's ETag`;
  }
}

/**
 * Why bytes whose multipart ETag, computed for the common part sizes that fit (none recorded), is not the
 * object's are only checked by their size: the object was uploaded in parts of another size (a custom part
 * size that gives the same count), or a byte was corrupted in transit — one cannot tell which, and failing
 * would refuse every such object for good.
 */
export function guessedSizesMissed(sizes: number[]): string {
  const tried = sizes.map((p) => `${p / 1024 / 1024} MiB`).join(", ");
  return `its ETag is none of the likely part sizes' (${tried}): uploaded in parts of another size, or ` +
    "corrupted in transit";
}
