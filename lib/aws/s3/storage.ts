/**
 * S3 prefixes (`s3://bucket/prefix`) as {@link Storage}.
 *
 * - **Writes stream** in parts of 8 MiB (more for very large known sizes), at most 4 parts in flight, so memory
 *   stays near `(4 + 1) × part size` whatever the object's size. A body that ends within the first part is one
 *   PutObject; a longer one is a multipart upload. Both are atomic on S3: the object appears only once complete.
 *   Every part carries its Content-MD5, and the stored ETag is checked against the MD5s sent. A stream of
 *   another length than `size`, an error or an abort leaves no object (the multipart upload is aborted). See
 *   {@link MultipartWriter} (lib/aws/s3/upload.ts).
 * - **Batches** upload each file as a multipart upload that is *completed only at commit*: until then nothing is
 *   visible at any key, and abort aborts the uploads. Trade-off: no data is copied at commit (temporary keys
 *   would need a server-side copy and a delete each), at the price of multipart ETags (`…-1`) even for small
 *   files and unfinished uploads that a killed run leaves behind until the next run (or a bucket lifecycle
 *   rule) aborts them. Reads verify the bytes against the ETag (MD5 or multipart ETag with the part size
 *   recorded in the object's metadata, else with the common part sizes that fit: see `EtagCheck`).
 * - **Killed runs' uploads:** with {@link S3StorageOptions.stateDir} (a step's state folder), every multipart
 *   upload is recorded there while it is open (lib/aws/s3/upload_records.ts), and
 *   {@link S3Storage.removeTemporaries} aborts only the recorded uploads of killed runs: never an upload that
 *   another program, a step running beside this one, or this process started.
 * - **Server-side copies** ({@link S3Storage.copyFrom}) between locations on one endpoint: CopyObject, or
 *   UploadPartCopy with the source's part layout (so the ETags match and verification needs no download) for
 *   multipart sources and objects over 5 GiB (lib/aws/s3/copy.ts).
 * - **Large downloads by ranges** ({@link S3Storage.downloadInto}, which `LocalStorage.copyFrom` uses): a
 *   multipart object from {@link RANGED_DOWNLOAD_MIN} on is fetched in ranges on several threads, its parts'
 *   MD5s checking the multipart ETag (lib/aws/s3/ranges.ts).
 *
 * @module
 */
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { S3Settings } from "../settings.ts";
import { abortable, runPool } from "../../async.ts";
import { sha256OfStream } from "../../hashing.ts";
import { explainS3Error, S3_RESPONSE_TIMEOUT_MS, s3Client, S3RequestError } from "./client.ts";
import {
  type ByteRange,
  downloadRangesInto,
  hashMissingParts,
  planRanges,
  RANGE_BYTES,
  type SignedGet,
} from "./ranges.ts";
import { parseS3Url, resolveS3Config, type S3Config } from "./scope.ts";
import { describeObject, serverSideCopy } from "./copy.ts";
import {
  EtagCheck,
  guessedSizesMissed,
  MULTIPART_ETAG,
  multipartEtag,
  NOT_MD5_ETAG,
  partSizesToHash,
  PLAIN_ETAG,
  UNKNOWN_PART_SIZE,
  unquoteEtag,
} from "./etag.ts";
import {
  abortMultipartUpload,
  isNotFound,
  MultipartWriter,
  partSizeFor,
  type S3Command,
  type S3Requests,
  uploadStream,
} from "./upload.ts";
import {
  checkRelativePath,
  type CopyOptions,
  type CopyResult,
  isTemporaryName,
  type ReadOptions,
  type RemovedLeftovers,
  type Storage,
  storagePathProblem,
  type StoredFile,
  UnsafePathError,
  type WriteBatch,
  type WriteOptions,
  type WriteResult,
} from "../../storage/mod.ts";
import { SizeMismatchError } from "../../storage/local.ts";
import { UploadRecords } from "./upload_records.ts";
import type { DigestStorage, ObjectDigest } from "../../storage/verify.ts";

export { copySource, MAX_SINGLE_COPY } from "./copy.ts";
export { PART_SIZE_METADATA } from "./etag.ts";

const MiB = 1024 * 1024;

/** The parts of a signed request that {@link S3Storage} hands to a range Worker. */
interface SignedHttpRequest {
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query?: Record<string, string | string[] | null>;
  headers: Record<string, string>;
}

/** RFC 3986 percent-encoding, as SigV4 signs query strings. */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}
/** Default part size of uploads (and of multipart copies of objects without a known layout). */
export const DEFAULT_PART_SIZE = 8 * MiB;
/** S3's smallest part (except the last one). */
export const MIN_PART_SIZE = 5 * MiB;

/** Tuning of an {@link S3Storage}. */
export interface S3StorageOptions {
  /** Bytes per uploaded part, at least 5 MiB; default 8 MiB. */
  partSize?: number;
  /** Parts uploaded (or copied) at the same time; default 4. */
  concurrency?: number;
  /** The client to use instead of the shared one for the settings. */
  client?: S3Client;
  /** A download whose body sends nothing for this long fails; default {@link BODY_IDLE_TIMEOUT_MS}. */
  idleTimeoutMs?: number;
  /** Objects this large or larger are downloaded to local files by ranges; default {@link RANGED_DOWNLOAD_MIN}. */
  rangedDownloadMin?: number;
  /** Bytes per range of such downloads; default {@link RANGE_BYTES}. */
  rangeBytes?: number;
  /**
   * The step's state folder, where open multipart uploads are recorded so that the next run aborts those a
   * killed run left (see the module documentation). Without it nothing is recorded, and none is aborted.
   */
  stateDir?: string;
}

/**
 * A listing page that says more follows (`IsTruncated`) but gives no marker to continue from (no
 * `NextContinuationToken`): the listing cannot be completed, and a partial one is never taken for the whole.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IncompleteListingError } from "./storage.ts";
 *
 * assert.equal(
 *   new IncompleteListingError("s3://lake/raw", "ListObjectsV2").message,
 *   "s3://lake/raw: a ListObjectsV2 page says more follows (IsTruncated) but gives no marker to continue " +
 *     "from; refusing an incomplete listing (is a proxy or an S3-compatible server dropping it?)",
 * );
 * ```
 */
export class IncompleteListingError extends Error {
  constructor(readonly location: string, readonly operation: string) {
    super(
      `${location}: a ${operation} page says more follows (IsTruncated) but gives no marker to continue from; ` +
        "refusing an incomplete listing (is a proxy or an S3-compatible server dropping it?)",
    );
    this.name = "IncompleteListingError";
  }
}

/** Smallest object downloaded to a local file by ranges on several threads rather than by one stream. */
export const RANGED_DOWNLOAD_MIN = 2 * RANGE_BYTES;

/** How long a download's body may stay silent before the read fails (instead of hanging the step). */
export const BODY_IDLE_TIMEOUT_MS = 120_000;

/**
 * Opens `s3://bucket/prefix` with the routine's `s3` settings.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closeS3Clients } from "./client.ts";
 * import { openS3Location } from "./storage.ts";
 *
 * // opening sends no request
 * const staging = openS3Location("s3://lake/staging/", { endpoint: "http://127.0.0.1:7480" });
 * assert.deepEqual([staging.bucket, staging.prefix, staging.url], ["lake", "staging", "s3://lake/staging"]);
 * assert.equal(staging.keyOf("2024/a.csv"), "staging/2024/a.csv");
 * closeS3Clients();
 * ```
 *
 * @example Listing
 * ```ts ignore
 * import { openS3Location } from "./storage.ts";
 *
 * const staging = openS3Location("s3://lake/staging", { endpoint: "http://127.0.0.1:7480" });
 * for await (const file of staging.list()) console.log(file.path, file.size, file.etag);
 * ```
 */
export function openS3Location(
  url: string,
  settings?: S3Settings,
  options: S3StorageOptions = {},
): S3Storage {
  return new S3Storage(url, settings, options);
}

/**
 * An S3 prefix as {@link Storage}; see the module documentation for how writes, batches and copies work.
 *
 * @example
 * ```ts ignore
 * import { S3Storage } from "./storage.ts";
 *
 * const landing = new S3Storage("s3://lake/landing", { endpoint: "http://127.0.0.1:7480" });
 * const { size, etag } = await landing.write("a.csv", (await Deno.open("a.csv")).readable);
 * ```
 */
export class S3Storage implements Storage, DigestStorage {
  readonly kind = "s3" as const;
  /** The bucket's name. */
  readonly bucket: string;
  /** Key prefix without leading or trailing `/`; empty for the whole bucket. */
  readonly prefix: string;
  /** The resolved connection settings. */
  readonly config: S3Config;
  /** The client requests go through. */
  readonly client: S3Client;
  /** Bytes per uploaded part (more for bodies that would need over 10,000 parts). */
  readonly partSize: number;
  /** Parts in flight at once. */
  readonly concurrency: number;
  /** Longest silence of a download's body, in milliseconds. */
  readonly idleTimeoutMs: number;
  /** Smallest object downloaded by ranges ({@link S3Storage.downloadInto}). */
  readonly rangedDownloadMin: number;
  /** Bytes per range of those downloads. */
  readonly rangeBytes: number;
  /** What uploads and copies use of this location (lib/aws/s3/upload.ts, lib/aws/s3/copy.ts). */
  readonly #requests: S3Requests;
  /** Where open multipart uploads are recorded, with {@link S3StorageOptions.stateDir}. */
  readonly #records: UploadRecords | undefined;
  #bucketChecked = false;

  /** Opens `url` (`s3://bucket[/prefix]`) with the routine's `s3` settings. */
  constructor(url: string, settings?: S3Settings, options: S3StorageOptions = {}) {
    ({ bucket: this.bucket, prefix: this.prefix } = parseS3Url(url));
    this.config = resolveS3Config(settings);
    this.client = options.client ?? s3Client(settings);
    this.partSize = Math.max(MIN_PART_SIZE, options.partSize ?? DEFAULT_PART_SIZE);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.idleTimeoutMs = options.idleTimeoutMs ?? BODY_IDLE_TIMEOUT_MS;
    this.rangedDownloadMin = options.rangedDownloadMin ?? RANGED_DOWNLOAD_MIN;
    this.rangeBytes = options.rangeBytes ?? RANGE_BYTES;
    this.#requests = {
      bucket: this.bucket,
      client: this.client,
      config: this.config,
      send: <T>(command: S3Command, key: string | undefined, signal?: AbortSignal) =>
        this.#send<T>(command, key, signal),
      head: (key, signal) => this.#head(key, signal),
    };
    if (options.stateDir !== undefined) {
      const records = this.#records = new UploadRecords(options.stateDir);
      const endpoint = this.config.endpoint ?? null;
      this.#requests.recordUpload = (key, uploadId) =>
        records.started({ endpoint, bucket: this.bucket, key, uploadId });
      this.#requests.forgetUpload = (name) => records.remove(name);
    }
  }

  get url(): string {
    return `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ""}`;
  }

  /** The object key of `path`. */
  keyOf(path: string): string {
    checkRelativePath(path);
    return this.prefix ? `${this.prefix}/${path}` : path;
  }

  /** Sends a command, turning SDK errors into one-line {@link S3RequestError}s. */
  async #send<T>(command: S3Command, key: string | undefined, signal?: AbortSignal): Promise<T> {
    try {
      // deno-lint-ignore no-explicit-any
      return await this.client.send(command as any, { abortSignal: signal }) as T;
    } catch (error) {
      throw explainS3Error(error, {
        bucket: this.bucket,
        key,
        operation: command.constructor.name.replace(/Command$/, ""),
        config: this.config,
      });
    }
  }

  /**
   * Every object under the prefix (all pages), sorted by path. Folder markers (keys ending in `/`) and
   * lakerun's temporary names are skipped; a key that is not a safe relative path (`..`, `//`; see
   * `storagePathProblem`) fails the listing, naming it, rather than being copied somewhere unexpected.
   */
  async *list(options: { signal?: AbortSignal } = {}): AsyncIterable<StoredFile> {
    const files: StoredFile[] = [];
    for await (const object of this.#objects(options.signal)) {
      const path = object.key.slice(this.prefix ? this.prefix.length + 1 : 0);
      if (path === "" || path.endsWith("/")) continue; // "folder" markers hold no data
      if (path.split("/").some(isTemporaryName)) continue;
      const problem = storagePathProblem(path);
      if (problem) throw new UnsafePathError(`${this.url}/${path}`, problem);
      files.push({ path, size: object.size, kind: "file", etag: object.etag, mtime: object.mtime });
    }
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    yield* files;
  }

  /** Every object under the prefix (ListObjectsV2, at most 1,000 a page). */
  async *#objects(signal?: AbortSignal) {
    const pages = this.#pages<string, ListObjectsV2CommandOutput>(
      (token) =>
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.#listPrefix, ContinuationToken: token }),
      (page) => page.NextContinuationToken || undefined,
      signal,
    );
    for await (const page of pages) {
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield { key: o.Key, size: o.Size ?? 0, etag: unquoteEtag(o.ETag), mtime: o.LastModified };
      }
    }
  }

  /** The `Prefix` of listings: the prefix and its `/`, none for the whole bucket. */
  get #listPrefix(): string | undefined {
    return this.prefix ? `${this.prefix}/` : undefined;
  }

  /**
   * Every page of a listing: `request` makes the request for a page from the markers `next` took from the
   * page before (`undefined` for the first page). A page that says it is truncated (`IsTruncated`) but gives
   * no marker to go on from fails the listing with {@link IncompleteListingError}: taking what came for the
   * whole listing would make a sync delete files the source still has.
   */
  async *#pages<M, P extends { IsTruncated?: boolean }>(
    request: (markers: M | undefined) => S3Command,
    next: (page: P) => M | undefined,
    signal?: AbortSignal,
  ): AsyncGenerator<P, void, undefined> {
    let markers: M | undefined;
    while (true) {
      const command = request(markers);
      const page: P = await this.#send<P>(command, undefined, signal);
      yield page;
      if (!page.IsTruncated) return;
      markers = next(page);
      if (markers === undefined) {
        throw new IncompleteListingError(this.url, command.constructor.name.replace(/Command$/, ""));
      }
    }
  }

  /** HeadObject of `key`, `undefined` when there is none (after checking that the bucket exists). */
  async #head(key: string, signal?: AbortSignal): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: signal,
      });
    } catch (error) {
      if (!isNotFound(error)) {
        throw explainS3Error(error, {
          bucket: this.bucket,
          key,
          operation: "HeadObject",
          config: this.config,
        });
      }
      await this.#checkBucket(signal);
      return undefined;
    }
  }

  /**
   * A 404 from HeadObject is also what a missing bucket answers: tell the two apart once, with a one-key
   * listing of this location's own prefix (not HeadBucket: that needs `s3:ListBucket` on the whole bucket,
   * where a listing of the prefix is allowed by a grant limited to it, as `lakerun plan --iam` prints).
   */
  async #checkBucket(signal?: AbortSignal): Promise<void> {
    if (this.#bucketChecked) return;
    const listing = { Bucket: this.bucket, Prefix: this.prefix ? `${this.prefix}/` : undefined, MaxKeys: 1 };
    try {
      await this.client.send(new ListObjectsV2Command(listing), { abortSignal: signal });
    } catch (error) {
      throw explainS3Error(error, { bucket: this.bucket, operation: "ListObjectsV2", config: this.config });
    }
    this.#bucketChecked = true;
  }

  async stat(path: string): Promise<StoredFile | undefined> {
    const head = await this.#head(this.keyOf(path));
    if (!head) return undefined;
    return {
      path,
      size: head.ContentLength ?? 0,
      kind: "file",
      etag: unquoteEtag(head.ETag),
      mtime: head.LastModified,
    };
  }

  /**
   * The object's size and ETag, and the part size of a multipart object (from lakerun's metadata, or from
   * the server's answer for part 1), so that {@link copyProblem} can compare without downloading.
   */
  async objectDigest(
    path: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<ObjectDigest | undefined> {
    return (await describeObject(this.#requests, this.keyOf(path), options.signal))?.digest;
  }

  /**
   * The object's bytes, checked as they stream: a body of another length than announced, or whose MD5 (or
   * multipart ETag: for the recorded part size, else for the common part sizes that fit; see `EtagCheck`)
   * differs from the ETag, errors the stream at its end (when no part size is known or common, only the size
   * is checked, and `options.unverified` is told); a body
   * silent for {@link S3Storage.idleTimeoutMs} errors it at once.
   */
  async read(path: string, options: ReadOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const { signal } = options;
    const key = this.keyOf(path);
    const response = await this.#send<GetObjectCommandOutput>(
      new GetObjectCommand({ Bucket: this.bucket, Key: key }),
      key,
      signal,
    );
    if (!response.Body) throw new Error(`${this.url}/${path}: no body in the response`);
    const body = response.Body.transformToWebStream() as ReadableStream<Uint8Array>;
    const where = `${this.url}/${path}`;
    const check = new EtagCheck(response, where);
    let reader = body.getReader();
    const idleMs = this.idleTimeoutMs;
    // a body cut midway (or gone silent) is asked for again from the byte reached, of the same object only
    let received = 0;
    let resumes = 0;
    const resume = async (cause: unknown): Promise<void> => {
      if (resumes >= BODY_RESUMES || response.ETag === undefined) throw cause;
      resumes++;
      reader.cancel(cause).catch(() => {});
      await abortable(new Promise((resolve) => setTimeout(resolve, 250 * 2 ** resumes)), signal);
      const rest = await this.#send<GetObjectCommandOutput>(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: `bytes=${received}-`,
          IfMatch: response.ETag,
        }),
        key,
        signal,
      );
      if (!rest.Body) throw cause;
      reader = (rest.Body.transformToWebStream() as ReadableStream<Uint8Array>).getReader();
    };
    let onAbort: (() => void) | undefined;
    const detach = () => onAbort && signal!.removeEventListener("abort", onAbort);
    return new ReadableStream<Uint8Array>({
      start(controller) {
        if (!signal) return;
        onAbort = () => {
          controller.error(signal.reason);
          reader.cancel(signal.reason).catch(() => {});
        };
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
      },
      async pull(controller) {
        try {
          let read: ReadableStreamReadResult<Uint8Array>;
          for (;;) {
            try {
              read = await readWithin(reader, idleMs, where);
              break;
            } catch (error) {
              if (signal?.aborted) throw error;
              try {
                await resume(error);
              } catch (failed) {
                throw failed === error ? bodyError(where, error, received, resumes) : failed;
              }
            }
          }
          const { done, value } = read;
          if (done) {
            detach();
            const problem = check.finish();
            if (problem) throw new Error(problem);
            if (check.unverified) options.unverified?.(where, check.unverified);
            controller.close();
          } else {
            received += value.byteLength;
            check.update(value);
            controller.enqueue(value);
          }
        } catch (error) {
          detach();
          if (signal?.aborted) return; // already errored with the abort's reason
          reader.cancel(error).catch(() => {});
          throw error;
        }
      },
      cancel(reason) {
        detach();
        return reader.cancel(reason);
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Downloads an object of at least {@link S3Storage.rangedDownloadMin} bytes into the new local `file` by
   * ranges on several threads (see lib/aws/s3/ranges.ts), each GET conditional on the object's ETag (which must
   * be the listed one when `options.etag` is given), then checks the file's size and its multipart ETag from
   * the parts' MD5s: for the recorded part size, else for every common part size that fits the part count
   * (hashed in the same pass; a part of another than the first spanning two ranges is read again from the
   * file). When no part size is known or common, only the size is checked and `options.unverified` is told.
   * Resolves to `undefined`, creating nothing, for
   * smaller objects and for single-part ones with a plain MD5 ETag: one stream checks their MD5 as it goes,
   * which ranges cannot. On failure the caller removes `file`.
   */
  async downloadInto(
    path: string,
    file: string,
    options: CopyOptions = {},
  ): Promise<{ size: number; etag: string } | undefined> {
    const { signal } = options;
    const where = `${this.url}/${path}`;
    // what the listing already tells costs no request: small files and plain MD5 ETags are streamed
    if (options.size !== undefined && options.size < this.rangedDownloadMin) return undefined;
    if (options.etag !== undefined && PLAIN_ETAG.test(unquoteEtag(options.etag))) return undefined;
    const digest = await this.objectDigest(path, { signal });
    if (!digest || digest.size < this.rangedDownloadMin) return undefined;
    if (digest.md5Based && PLAIN_ETAG.test(digest.etag)) return undefined;
    if (options.size !== undefined && digest.size !== options.size) {
      throw new SizeMismatchError(where, options.size, digest.size);
    }
    const listed = options.etag === undefined ? undefined : unquoteEtag(options.etag);
    if (listed !== undefined && listed !== digest.etag) {
      throw new Error(
        `${where}: the object changed since it was listed (ETag ${digest.etag}, listed ${listed})`,
      );
    }
    const parts = Number(MULTIPART_ETAG.exec(digest.etag)?.[1] ?? 0);
    // the recorded (or server-told) part size, else every common one that fits the part count
    const { sizes, guessed } = digest.md5Based && parts > 0
      ? partSizesToHash(digest.size, parts, digest.partSize)
      : { sizes: [], guessed: false };
    const ranges = planRanges(digest.size, sizes[0] ?? 0, this.rangeBytes);
    await Deno.writeFile(file, new Uint8Array(), { createNew: true });
    const md5s = await downloadRangesInto(file, ranges, (range) => this.signedGet(path, range, digest.etag), {
      where,
      idleTimeoutMs: this.idleTimeoutMs,
      responseTimeoutMs: S3_RESPONSE_TIMEOUT_MS,
      hashSizes: sizes,
      signal,
    });
    const size = (await Deno.stat(file)).size;
    if (size !== digest.size) throw new SizeMismatchError(where, digest.size, size);
    if (sizes.length === 0) {
      options.unverified?.(where, digest.md5Based ? UNKNOWN_PART_SIZE : NOT_MD5_ETAG);
      return { size, etag: digest.etag };
    }
    for (const partSize of sizes) {
      const etag = multipartEtag(await hashMissingParts(file, partSize, md5s.get(partSize)!, size));
      if (etag === digest.etag) return { size, etag };
    }
    if (!guessed) throw new Error(`${where}: the bytes received do not match the object's ETag`);
    options.unverified?.(where, guessedSizesMissed(sizes));
    return { size, etag: digest.etag };
  }

  /**
   * A GET of `range` of the object at `path`, conditional on `etag`, signed by this location's client (its
   * credentials, endpoint and addressing) but not sent: the request is taken from the client's middleware
   * once signed. A signature is valid for 15 minutes. The URL holds no secret; the headers hold the
   * signature, and the session token of temporary credentials: they are never logged.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { createS3Client } from "./client.ts";
   * import { resolveS3Config } from "./scope.ts";
   * import { S3Storage } from "./storage.ts";
   *
   * const settings = { endpoint: "http://127.0.0.1:7480", region: "us-east-1" };
   * const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "example" };
   * const client = createS3Client(resolveS3Config(settings), credentials);
   * const landing = new S3Storage("s3://lake/landing", settings, { client });
   * const etag = "9b2cf535f27731c974343645a3985328";
   * const get = await landing.signedGet("big.bin", { start: 0, end: 1024 * 1024, partSize: 0 }, etag);
   * assert.equal(get.url, "http://127.0.0.1:7480/lake/landing/big.bin?x-id=GetObject");
   * assert.equal(get.headers["range"], "bytes=0-1048575");
   * assert.equal(get.headers["if-match"], `"${etag}"`);
   * assert.match(get.headers["authorization"], /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\//);
   * // fetch(get.url, { headers: get.headers }) then answers 206 with the first MiB
   * client.destroy();
   * ```
   */
  async signedGet(path: string, range: ByteRange, etag: string): Promise<SignedGet> {
    const key = this.keyOf(path);
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Range: `bytes=${range.start}-${range.end - 1}`,
      IfMatch: `"${etag}"`,
    });
    let signed: SignedHttpRequest | undefined;
    const taken = new Error("signed request taken");
    command.middlewareStack.add(
      (_next: unknown, _context: unknown) => (args: { request: unknown }) => {
        signed = args.request as SignedHttpRequest;
        throw taken;
      },
      { step: "deserialize", priority: "low", name: "lakerunTakeSignedRequest" },
    );
    try {
      await this.#send(command, key);
    } catch (error) {
      if (!signed) throw error;
    }
    const { protocol, hostname, port, path: resource, query = {}, headers } = signed!;
    const search = Object.entries(query).flatMap(([name, value]) =>
      (Array.isArray(value) ? value : [value]).map((one) => `${uriEncode(name)}=${uriEncode(one ?? "")}`)
    ).join("&");
    const sent = Object.fromEntries(
      Object.entries(headers).filter(([name]) => name.toLowerCase() !== "host"),
    );
    return {
      url: `${protocol}//${hostname}${port ? `:${port}` : ""}${resource}${search ? `?${search}` : ""}`,
      headers: sent,
    };
  }

  /** A writer of `key`, in parts of the configured size (larger when `options.size` needs it). */
  #writer(key: string, { size, signal }: WriteOptions): MultipartWriter {
    const partSize = partSizeFor(size, this.partSize);
    return new MultipartWriter(this.#requests, key, { partSize, concurrency: this.concurrency, signal });
  }

  /** Streams `data` to `path`: PutObject when it fits one part, else a multipart upload (see the module doc). */
  async write(
    path: string,
    data: ReadableStream<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<WriteResult> {
    return await uploadStream(this.#writer(this.keyOf(path), options), data, options, true);
  }

  /**
   * A batch whose files are multipart uploads completed only at commit: nothing is visible before, abort leaves
   * nothing. A commit that fails part-way leaves the files completed so far (as a local batch keeps the ones
   * already renamed) and {@link WriteBatch.abort} aborts the rest.
   */
  batch(): Promise<WriteBatch> {
    const staged = new Map<string, MultipartWriter>();
    // 8 at a time; after a failure none starts, and those in flight finish (a completion cut short would leave
    // unknown whether it happened): what is left stays staged for abort
    const each = (work: (writer: MultipartWriter) => Promise<unknown>) =>
      runPool([...staged.values()], 8, undefined, async (writer) => {
        await work(writer);
        staged.delete(writer.key);
      });
    return Promise.resolve({
      write: async (path, data, options = {}) => {
        const writer = this.#writer(this.keyOf(path), options);
        const result = await uploadStream(writer, data, options, false);
        const previous = staged.get(writer.key);
        staged.set(writer.key, writer);
        await previous?.abort();
        return result;
      },
      commit: () => each((writer) => writer.complete()),
      abort: () => each((writer) => writer.abort()),
    });
  }

  /**
   * Copies an object of another S3 location on the same endpoint without moving the bytes through lakerun,
   * then checks the copy's size and ETag. Resolves to `undefined` for any other source.
   *
   * With the source's listed size and single-part ETag (`options.size`, `options.etag`) an object up to 5 GiB
   * is one request: a CopyObject conditional on that ETag, whose answer carries the copy's ETag. Otherwise (or
   * when that answer does not prove the copy) the source and the copy are asked for their size and ETag.
   */
  async copyFrom(
    source: Storage,
    sourcePath: string,
    path: string,
    options: CopyOptions = {},
  ): Promise<CopyResult | undefined> {
    if (!(source instanceof S3Storage) || source.config.endpoint !== this.config.endpoint) return undefined;
    const from = source.keyOf(sourcePath);
    const tuned = { ...options, partSize: this.partSize, concurrency: this.concurrency };
    return await serverSideCopy(source.#requests, from, this.#requests, this.keyOf(path), tuned);
  }

  async remove(path: string): Promise<void> {
    const key = this.keyOf(path);
    try {
      await this.#send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), key);
    } catch (error) {
      if (!(error instanceof S3RequestError && error.code === "no-key")) throw error;
    }
  }

  async sha256(path: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    return (await sha256OfStream(await this.read(path, options))).sha256;
  }

  /**
   * Deletes objects under lakerun's temporary names (a top-level temporary segment; any segment with
   * `recursive`), then aborts the multipart uploads under the prefix that killed runs of this step recorded
   * (with {@link S3StorageOptions.stateDir}) and that are still listed. An upload no record names (another
   * program's, a step's beside this one) and one this process started are never touched; a recorded upload
   * that is no longer listed (completed or aborted after all) only loses its record.
   */
  async removeTemporaries(options: { recursive?: boolean } = {}): Promise<RemovedLeftovers> {
    const doomed: string[] = [];
    for await (const object of this.#objects()) {
      const segments = object.key.slice(this.prefix ? this.prefix.length + 1 : 0).split("/");
      if (options.recursive ? segments.some(isTemporaryName) : isTemporaryName(segments[0])) {
        doomed.push(object.key);
      }
    }
    for (let i = 0; i < doomed.length; i += 1000) {
      await this.#send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: doomed.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
        }),
        undefined,
      );
    }
    return { temporaries: doomed.length, uploads: await this.#abortRecordedUploads() };
  }

  /** Aborts the listed uploads that killed runs recorded (see {@link S3Storage.removeTemporaries}). */
  async #abortRecordedUploads(): Promise<number> {
    const records = this.#records;
    if (!records) return 0;
    const left = await records.leftBehind(this.config.endpoint ?? null, this.bucket, this.prefix);
    if (left.length === 0) return 0; // no listing: nothing of ours can be open
    const listed = new Set<string>();
    for await (const upload of this.#uploads()) listed.add(`${upload.key}\0${upload.id}`);
    let aborted = 0;
    await runPool(left, 8, undefined, async (upload) => {
      if (listed.has(`${upload.key}\0${upload.uploadId}`)) {
        await abortMultipartUpload(this.#requests, upload.key, upload.uploadId);
        aborted++;
      }
      await records.remove(upload.name);
    });
    return aborted;
  }

  /** Every unfinished multipart upload under the prefix (ListMultipartUploads, all pages). */
  async *#uploads(): AsyncIterable<{ key: string; id: string }> {
    const pages = this.#pages(
      (markers) =>
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.#listPrefix, ...markers }),
      (page: ListMultipartUploadsCommandOutput) =>
        page.NextKeyMarker || page.NextUploadIdMarker
          ? { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker }
          : undefined,
    );
    for await (const page of pages) {
      for (const u of page.Uploads ?? []) {
        if (u.Key && u.UploadId) yield { key: u.Key, id: u.UploadId };
      }
    }
  }
}

/** Times a body may be asked for again from the byte reached before a read fails. */
const BODY_RESUMES = 3;

/** The next chunk of a body, or an error once it has sent nothing for `idleMs`. */
function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  idleMs: number,
  where: string,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const silence = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${where}: the server sent nothing for ${idleMs / 1000} s`)),
      idleMs,
    );
  });
  return Promise.race([reader.read(), silence]).finally(() => clearTimeout(timer));
}

/** A body's read failure, naming the object and how far it got. */
function bodyError(where: string, error: unknown, received: number, resumes: number): Error {
  const message = error instanceof Error ? error.message : String(error);
  if (message.startsWith(where)) return error instanceof Error ? error : new Error(message);
  const again = resumes > 0 ? `, asked again ${resumes === 1 ? "once" : `${resumes} times`}` : "";
  return new Error(`${where}: the body failed after ${received} bytes${again}: ${message}`, { cause: error });
}
