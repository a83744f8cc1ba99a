/**
 * S3 prefixes (`s3://bucket/prefix`) as {@link Storage}.
 *
 * - **Writes stream** in parts of 8 MiB (more for very large known sizes), at most 4 parts in flight, so memory
 *   stays near `(4 + 1) × part size` whatever the object's size. A body that ends within the first part is one
 *   PutObject; a longer one is a multipart upload. Both are atomic on S3: the object appears only once complete.
 *   Every part carries its Content-MD5, and the stored ETag is checked against the MD5s sent. A stream of
 *   another length than `size`, an error or an abort leaves no object (the multipart upload is aborted).
 * - **Batches** upload each file as a multipart upload that is *completed only at commit*: until then nothing is
 *   visible at any key, and abort (or {@link Storage.removeTemporaries} after a killed run) aborts the uploads.
 *   Trade-off: no data is copied at commit (temporary keys would need a server-side copy and a delete each),
 *   at the price of multipart ETags (`…-1`) even for small files and unfinished uploads that a killed run
 *   leaves behind until the next run (or a bucket lifecycle rule) aborts them. Reads verify the bytes against
 *   the ETag (MD5 or multipart ETag with the part size recorded in the object's metadata).
 * - **Server-side copies** ({@link S3Storage.copyFrom}) between locations on one endpoint: CopyObject, or
 *   UploadPartCopy with the source's part layout (so the ETags match and verification needs no download) for
 *   multipart sources and objects over 5 GiB.
 * - **Large downloads by ranges** ({@link S3Storage.downloadInto}, which `LocalStorage.copyFrom` uses): a
 *   multipart object from {@link RANGED_DOWNLOAD_MIN} on is fetched in ranges on several threads, its parts'
 *   MD5s checking the multipart ETag (lib/s3_ranges.ts).
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  type CompleteMultipartUploadCommandOutput,
  CopyObjectCommand,
  type CopyObjectCommandOutput,
  CreateMultipartUploadCommand,
  type CreateMultipartUploadCommandOutput,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadBucketCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type PutObjectCommandOutput,
  type S3Client,
  UploadPartCommand,
  type UploadPartCommandOutput,
  UploadPartCopyCommand,
  type UploadPartCopyCommandOutput,
} from "@aws-sdk/client-s3";
import type { S3Settings } from "../../../sdk/executor.ts";
import { sha256OfStream } from "../../hashing.ts";
import { explainS3Error, S3_RESPONSE_TIMEOUT_MS, s3Client, S3RequestError } from "./client.ts";
import { type ByteRange, downloadRangesInto, planRanges, RANGE_BYTES, type SignedGet } from "./ranges.ts";
import { parseS3Url, resolveS3Config, type S3Config } from "./scope.ts";
import {
  checkRelativePath,
  type CopyOptions,
  type CopyResult,
  isTemporaryName,
  relativePathProblem,
  type Storage,
  type StoredFile,
  UnsafePathError,
  type WriteBatch,
  type WriteOptions,
  type WriteResult,
} from "../../storage/mod.ts";
import { SizeMismatchError } from "../../storage/local.ts";
import {
  type DigestStorage,
  EtagHasher,
  MULTIPART_ETAG,
  multipartEtag,
  type ObjectDigest,
  PLAIN_ETAG,
} from "../../storage/verify.ts";

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
const MAX_PARTS = 10_000;
/** Largest object a single CopyObject may copy. */
export const MAX_SINGLE_COPY = 5 * 1024 * MiB;
/** Object metadata key holding the part size lakerun uploaded with (for ETag verification). */
export const PART_SIZE_METADATA = "lakerun-part-size";

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
 * const staging = openS3Location("s3://lake/staging", { endpoint: "http://127.0.0.1:7480" });
 * for await (const file of staging.list()) console.log(file.path, file.size);
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
 * CopySource of an object: bucket and key, URL-encoded except for the slashes.
 *
 * @example
 * ```ts
 * copySource("lake", "raw/a b+c.csv"); // "lake/raw/a%20b%2Bc.csv"
 * ```
 */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
}

/** An upload whose parts are stored and which becomes visible when completed. */
interface PendingUpload {
  key: string;
  uploadId: string;
  parts: CompletedPart[];
  md5s: Uint8Array[];
  size: number;
}

const unquote = (etag: string | undefined) => (etag ?? "").replace(/^(W\/)?"|"$/g, "");
const isNotFound = (error: unknown) => {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === "NotFound" || e?.name === "NoSuchKey" || e?.$metadata?.httpStatusCode === 404;
};
/** False for server-side encryption whose ETag is not an MD5 of the bytes (KMS, customer keys). */
const md5BasedEtag = (head: { ServerSideEncryption?: string; SSECustomerAlgorithm?: string }) =>
  !head.SSECustomerAlgorithm && !(head.ServerSideEncryption ?? "").startsWith("aws:kms");

/** Rejects when `signal` aborts, whatever `promise` does. */
function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Runs `work` on every item with at most `limit` at a time; the first failure rejects. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  });
  await Promise.all(runners);
}

/**
 * Checks a downloaded body against its GetObject response: the announced length, and the ETag when it is the
 * MD5 of the bytes or a multipart ETag whose part size is known (one part, or lakerun's recorded part size).
 */
class EtagCheck {
  readonly #where: string;
  readonly #expectedSize: number | undefined;
  readonly #etag: string;
  /** Undefined when the ETag cannot be checked. */
  readonly #hasher: EtagHasher | undefined;
  #size = 0;

  constructor(response: GetObjectCommandOutput, where: string) {
    this.#where = where;
    this.#expectedSize = response.ContentLength;
    this.#etag = unquote(response.ETag).toLowerCase();
    const multipart = MULTIPART_ETAG.exec(this.#etag);
    const parts = multipart ? Number(multipart[1]) : 0;
    const recorded = Number(response.Metadata?.[PART_SIZE_METADATA]);
    const size = this.#expectedSize;
    // bytes per part: 0 for a single-part ETag; the layout is known for one part, or from lakerun's metadata
    // when it fits the part count
    const partSize = size === undefined || !md5BasedEtag(response)
      ? undefined
      : PLAIN_ETAG.test(this.#etag)
      ? 0
      : !multipart
      ? undefined
      : parts === 1
      ? Math.max(size, 1)
      : recorded > 0 && Math.ceil(size / recorded) === parts
      ? recorded
      : undefined;
    this.#hasher = partSize === undefined ? undefined : new EtagHasher(partSize);
  }

  /** Counts and hashes the next chunk. */
  update(chunk: Uint8Array): void {
    this.#size += chunk.byteLength;
    this.#hasher?.update(chunk);
  }

  /** What is wrong with the whole body, or `undefined` when it matches; call once, at the end. */
  finish(): string | undefined {
    if (this.#expectedSize !== undefined && this.#size !== this.#expectedSize) {
      return `${this.#where}: received ${this.#size} bytes, the object has ${this.#expectedSize}`;
    }
    if (!this.#hasher || this.#hasher.digest() === this.#etag) return undefined;
    return `${this.#where}: the bytes received do not match the object's ETag`;
  }
}

/**
 * An S3 prefix as {@link Storage}; see the module documentation for how writes, batches and copies work.
 *
 * @example
 * ```ts
 * const landing = new S3Storage("s3://lake/landing", { endpoint: "http://127.0.0.1:7480" });
 * await landing.write("a.csv", (await Deno.open("a.csv")).readable);
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
  async #send<T>(
    command: { input: unknown; constructor: { name: string } },
    key: string | undefined,
    signal?: AbortSignal,
  ): Promise<T> {
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
   * lakerun's temporary names are skipped; a key that is not a safe relative path (`..`, `//`, `\`) fails
   * the listing, naming it, rather than being copied somewhere unexpected.
   */
  async *list(options: { signal?: AbortSignal } = {}): AsyncIterable<StoredFile> {
    const files: StoredFile[] = [];
    for await (const object of this.#objects(options.signal)) {
      const path = object.key.slice(this.prefix ? this.prefix.length + 1 : 0);
      if (path === "" || path.endsWith("/")) continue; // "folder" markers hold no data
      if (path.split("/").some(isTemporaryName)) continue;
      const problem = relativePathProblem(path);
      if (problem) throw new UnsafePathError(`${this.url}/${path}`, problem);
      files.push({ path, size: object.size, kind: "file", etag: object.etag, mtime: object.mtime });
    }
    files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    yield* files;
  }

  /** Every object under the prefix, page by page (ListObjectsV2 returns at most 1,000 per page). */
  async *#objects(signal?: AbortSignal) {
    let token: string | undefined;
    do {
      const page = await this.#send<ListObjectsV2CommandOutput>(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix ? `${this.prefix}/` : undefined,
          ContinuationToken: token,
        }),
        undefined,
        signal,
      );
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield { key: o.Key, size: o.Size ?? 0, etag: unquote(o.ETag), mtime: o.LastModified };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
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

  /** A 404 from HeadObject is also what a missing bucket answers: tell the two apart once. */
  async #checkBucket(signal?: AbortSignal): Promise<void> {
    if (this.#bucketChecked) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: signal });
    } catch (error) {
      if (isNotFound(error)) {
        throw explainS3Error(Object.assign(new Error("NoSuchBucket"), { name: "NoSuchBucket" }), {
          bucket: this.bucket,
          operation: "HeadBucket",
          config: this.config,
        });
      }
      throw explainS3Error(error, { bucket: this.bucket, operation: "HeadBucket", config: this.config });
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
      etag: unquote(head.ETag),
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
    const key = this.keyOf(path);
    const head = await this.#head(key, options.signal);
    if (!head) return undefined;
    const digest = this.#digestOf(head);
    const parts = Number(/-(\d+)$/.exec(digest.etag)?.[1] ?? 1);
    if (digest.partSize === undefined && parts > 1) digest.partSize = await this.#firstPartSize(key, head);
    return digest;
  }

  #digestOf(head: HeadObjectCommandOutput): ObjectDigest {
    const recorded = Number(head.Metadata?.[PART_SIZE_METADATA]);
    return {
      size: head.ContentLength ?? 0,
      etag: unquote(head.ETag),
      md5Based: md5BasedEtag(head),
      partSize: Number.isSafeInteger(recorded) && recorded > 0 ? recorded : undefined,
    };
  }

  /** The size of part 1 (AWS answers HeadObject with `partNumber`; servers that ignore it return the whole). */
  async #firstPartSize(key: string, head: HeadObjectCommandOutput): Promise<number | undefined> {
    try {
      const part = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: key, PartNumber: 1 }),
      );
      const size = part.ContentLength ?? 0;
      return size > 0 && size < (head.ContentLength ?? 0) ? size : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The object's bytes, checked as they stream: a body of another length than announced, or whose MD5 (or
   * multipart ETag, when the part size is known) differs from the ETag, errors the stream at its end; a body
   * silent for {@link S3Storage.idleTimeoutMs} errors it at once.
   */
  async read(path: string, options: { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
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
    const reader = body.getReader();
    const idleMs = this.idleTimeoutMs;
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
        let timer: ReturnType<typeof setTimeout> | undefined;
        const silence = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${where}: the server sent nothing for ${idleMs / 1000} s`)),
            idleMs,
          );
        });
        try {
          const { done, value } = await Promise.race([reader.read(), silence]);
          if (done) {
            detach();
            const problem = check.finish();
            if (problem) throw new Error(problem);
            controller.close();
          } else {
            check.update(value);
            controller.enqueue(value);
          }
        } catch (error) {
          detach();
          if (signal?.aborted) return; // already errored with the abort's reason
          reader.cancel(error).catch(() => {});
          throw error;
        } finally {
          clearTimeout(timer);
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
   * ranges on several threads (see lib/s3_ranges.ts), each GET conditional on the object's ETag (which must
   * be the listed one when `options.etag` is given), then checks the file's size and, when the object's part
   * size is known, its multipart ETag from the parts' MD5s. Resolves to `undefined`, creating nothing, for
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
    if (options.etag !== undefined && PLAIN_ETAG.test(unquote(options.etag))) return undefined;
    const digest = await this.objectDigest(path, { signal });
    if (!digest || digest.size < this.rangedDownloadMin) return undefined;
    if (digest.md5Based && PLAIN_ETAG.test(digest.etag)) return undefined;
    if (options.size !== undefined && digest.size !== options.size) {
      throw new SizeMismatchError(where, options.size, digest.size);
    }
    const listed = options.etag === undefined ? undefined : unquote(options.etag);
    if (listed !== undefined && listed !== digest.etag) {
      throw new Error(
        `${where}: the object changed since it was listed (ETag ${digest.etag}, listed ${listed})`,
      );
    }
    const parts = Number(MULTIPART_ETAG.exec(digest.etag)?.[1] ?? 0);
    const { partSize } = digest;
    const hashed = digest.md5Based && partSize !== undefined && Math.ceil(digest.size / partSize) === parts;
    const ranges = planRanges(digest.size, hashed ? partSize : 0, this.rangeBytes);
    await Deno.writeFile(file, new Uint8Array(), { createNew: true });
    const md5s = await downloadRangesInto(file, ranges, (range) => this.signedGet(path, range, digest.etag), {
      where,
      idleTimeoutMs: this.idleTimeoutMs,
      responseTimeoutMs: S3_RESPONSE_TIMEOUT_MS,
      signal,
    });
    const size = (await Deno.stat(file)).size;
    if (size !== digest.size) throw new SizeMismatchError(where, digest.size, size);
    if (hashed && multipartEtag(md5s) !== digest.etag) {
      throw new Error(`${where}: the bytes received do not match the object's ETag`);
    }
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
   * const get = await landing.signedGet("big.bin", { start: 0, end: MiB, partSize: 0 }, etag);
   * const response = await fetch(get.url, { headers: get.headers }); // 206, the first MiB
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

  /** Part size for a body of `size` bytes: the configured one, larger when needed to stay within 10,000 parts. */
  #partSizeFor(size: number | undefined): number {
    if (size === undefined) return this.partSize;
    return Math.max(this.partSize, Math.ceil(size / MAX_PARTS / MiB) * MiB);
  }

  /**
   * Streams `data` to `key`. Without `pending`, completes it (PutObject when it fits one part); with `pending`,
   * leaves the multipart upload open and returns it, for a batch to complete at commit.
   */
  async #upload(
    key: string,
    data: ReadableStream<Uint8Array>,
    options: WriteOptions,
    pending: boolean,
  ): Promise<{ result: WriteResult; upload?: PendingUpload }> {
    const { signal, size: expected } = options;
    const partSize = this.#partSizeFor(expected);
    // the sha256 only when the caller asked for it (WriteOptions.sha256): it costs CPU on every byte
    const sha256 = options.sha256 ? createHash("sha256") : undefined;
    let total = 0;
    let chunks: Uint8Array[] = [];
    let filled = 0;
    const spare: Uint8Array[] = [];
    let upload: PendingUpload | undefined;
    let partCount = 0;
    const inflight = new Set<Promise<void>>();
    let failure: unknown;
    const label = `s3://${this.bucket}/${key}`;

    const gather = (into?: Uint8Array) => {
      const bytes = into ?? new Uint8Array(filled);
      let offset = 0;
      for (const chunk of chunks) {
        bytes.set(chunk, offset);
        offset += chunk.byteLength;
      }
      const result = bytes.subarray(0, filled);
      chunks = [];
      filled = 0;
      return result;
    };

    const sendPart = async (bytes: Uint8Array, number: number, reuse: boolean) => {
      const md5 = createHash("md5").update(bytes).digest();
      upload!.md5s[number - 1] = md5;
      const response = await this.#send<UploadPartCommandOutput>(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: upload!.uploadId,
          PartNumber: number,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentMD5: md5.toString("base64"),
        }),
        key,
        signal,
      );
      upload!.parts[number - 1] = {
        PartNumber: number,
        ETag: response.ETag,
        ...(response.ChecksumCRC32 ? { ChecksumCRC32: response.ChecksumCRC32 } : {}),
      };
      if (reuse) spare.push(new Uint8Array(bytes.buffer));
    };

    /** Sends what has been gathered as the next part, waiting while `concurrency` parts are in flight. */
    const flushPart = async (last: boolean) => {
      if (!upload) {
        const created = await this.#send<CreateMultipartUploadCommandOutput>(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            Metadata: { [PART_SIZE_METADATA]: String(partSize) },
            ...(this.config.checksumMode === "WHEN_SUPPORTED" ? { ChecksumAlgorithm: "CRC32" } : {}),
          }),
          key,
          signal,
        );
        upload = { key, uploadId: created.UploadId!, parts: [], md5s: [], size: 0 };
      }
      while (inflight.size >= this.concurrency) await Promise.race(inflight);
      if (failure) throw failure;
      if (++partCount > MAX_PARTS) {
        throw new Error(
          `${label}: more than ${MAX_PARTS} parts of ${partSize} bytes; give the size in advance`,
        );
      }
      const reuse = !last;
      const bytes = last ? gather() : gather(spare.pop() ?? new Uint8Array(partSize));
      const sent: Promise<void> = sendPart(bytes, partCount, reuse)
        .catch((error) => {
          failure ??= error;
        })
        .finally(() => inflight.delete(sent));
      inflight.add(sent);
    };

    const reader = data.getReader();
    try {
      while (true) {
        const { done, value } = await abortable(reader.read(), signal);
        if (done) break;
        if (failure) throw failure;
        total += value.byteLength;
        if (expected !== undefined && total > expected) throw new SizeMismatchError(label, expected, total);
        sha256?.update(value);
        let offset = 0;
        while (offset < value.byteLength) {
          if (filled === partSize) await flushPart(false);
          const n = Math.min(partSize - filled, value.byteLength - offset);
          chunks.push(offset === 0 && n === value.byteLength ? value : value.subarray(offset, offset + n));
          filled += n;
          offset += n;
        }
      }
      if (expected !== undefined && total !== expected) throw new SizeMismatchError(label, expected, total);
      signal?.throwIfAborted();
      const digest = sha256?.digest("hex");

      if (!upload && !pending) {
        const bytes = gather();
        const md5 = createHash("md5").update(bytes).digest();
        const response = await this.#send<PutObjectCommandOutput>(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Body: bytes,
            ContentLength: bytes.byteLength,
            ContentMD5: md5.toString("base64"),
          }),
          key,
          signal,
        );
        const etag = unquote(response.ETag);
        if (etag && md5BasedEtag(response) && etag !== md5.toString("hex")) {
          await this.#deleteKey(key);
          throw new Error(`${label}: the stored object's ETag does not match the bytes sent`);
        }
        return { result: { size: total, sha256: digest, etag: etag || md5.toString("hex") } };
      }

      await flushPart(true);
      await Promise.all(inflight);
      if (failure) throw failure;
      upload!.size = total;
      if (pending) return { result: { size: total, sha256: digest }, upload };
      const etag = await this.#complete(upload!, signal);
      return { result: { size: total, sha256: digest, etag } };
    } catch (error) {
      reader.cancel(error).catch(() => {});
      await Promise.allSettled([...inflight]);
      if (upload) await this.#abortUpload(upload.key, upload.uploadId);
      throw error;
    } finally {
      reader.releaseLock();
    }
  }

  /** Completes a multipart upload and checks the stored object's ETag and size against what was sent. */
  async #complete(upload: PendingUpload, signal?: AbortSignal): Promise<string> {
    const response = await this.#send<CompleteMultipartUploadCommandOutput>(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: upload.key,
        UploadId: upload.uploadId,
        MultipartUpload: { Parts: upload.parts },
      }),
      upload.key,
      signal,
    );
    const expected = multipartEtag(upload.md5s);
    // radosgw answers with an empty ETag (Red Hat BZ 2266579): ask for it
    const head = await this.#head(upload.key, signal);
    const etag = unquote(head?.ETag ?? response.ETag);
    const problem = !head
      ? "is missing after completion"
      : head.ContentLength !== upload.size
      ? `has ${head.ContentLength} bytes, ${upload.size} were sent`
      : md5BasedEtag(head) && etag !== expected
      ? "has another ETag than the parts sent"
      : undefined;
    if (problem) {
      await this.#deleteKey(upload.key);
      throw new Error(`s3://${this.bucket}/${upload.key}: the stored object ${problem}`);
    }
    return etag;
  }

  async #abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }),
      );
    } catch (error) {
      if (!isNotFound(error) && (error as Error).name !== "NoSuchUpload") {
        throw explainS3Error(error, {
          bucket: this.bucket,
          key,
          operation: "AbortMultipartUpload",
          config: this.config,
        });
      }
    }
  }

  async #deleteKey(key: string): Promise<void> {
    await this.#send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), key);
  }

  async write(
    path: string,
    data: ReadableStream<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<WriteResult> {
    return (await this.#upload(this.keyOf(path), data, options, false)).result;
  }

  /**
   * A batch whose files are multipart uploads completed only at commit: nothing is visible before, abort leaves
   * nothing. A commit that fails part-way leaves the files completed so far (as a local batch keeps the ones
   * already renamed) and {@link WriteBatch.abort} aborts the rest.
   */
  batch(): Promise<WriteBatch> {
    const staged = new Map<string, PendingUpload>();
    return Promise.resolve({
      write: async (path, data, options = {}) => {
        const key = this.keyOf(path);
        const { result, upload } = await this.#upload(key, data, options, true);
        const previous = staged.get(key);
        staged.set(key, upload!);
        if (previous) await this.#abortUpload(previous.key, previous.uploadId);
        return result;
      },
      commit: async () => {
        await pool([...staged.values()], 8, async (upload) => {
          await this.#complete(upload);
          staged.delete(upload.key);
        });
      },
      abort: async () => {
        await pool([...staged.values()], 8, async (upload) => {
          await this.#abortUpload(upload.key, upload.uploadId);
          staged.delete(upload.key);
        });
      },
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
    const { signal } = options;
    const from = source.keyOf(sourcePath);
    const to = this.keyOf(path);
    const listed = unquote(options.etag).toLowerCase();
    let copiedListed = false;
    if (options.size !== undefined && options.size <= MAX_SINGLE_COPY && PLAIN_ETAG.test(listed)) {
      const copied = await this.#copyObject(source, from, to, listed, signal);
      if (copied?.etag === listed) return { size: options.size, etag: listed, serverSide: true };
      copiedListed = copied !== undefined; // made, but its answer does not prove it: checked below
    }
    const head = await source.#head(from, signal);
    if (!head) throw new S3RequestError(`${source.url}/${sourcePath} does not exist`, "no-key");
    const digest = source.#digestOf(head);
    if (options.size !== undefined && digest.size !== options.size) {
      throw new SizeMismatchError(`${source.url}/${sourcePath}`, options.size, digest.size);
    }
    const parts = Number(/-(\d+)$/.exec(digest.etag)?.[1] ?? 1);
    const layout = parts > 1 ? digest.partSize ?? await source.#firstPartSize(from, head) : undefined;
    const keepsLayout = layout !== undefined && Math.ceil(digest.size / layout) === parts;
    if (copiedListed) {
      // the listed version was copied: what follows checks the copy against the source
    } else if (digest.size > MAX_SINGLE_COPY || keepsLayout) {
      await this.#copyInParts(
        source,
        from,
        to,
        head,
        keepsLayout ? layout! : this.#partSizeFor(digest.size),
        signal,
      );
    } else {
      await this.#copyObject(source, from, to, undefined, signal);
    }
    const copied = await this.#head(to, signal);
    const copy = copied ? this.#digestOf(copied) : undefined;
    if (!copy || copy.size !== digest.size) {
      throw new Error(
        `${this.url}/${path}: server-side copy has ${copy?.size ?? "no"} bytes, source ${digest.size}`,
      );
    }
    const comparable = digest.md5Based && copy.md5Based &&
      (/-/.test(digest.etag) === /-/.test(copy.etag)) && (!/-/.test(digest.etag) || keepsLayout);
    if (comparable && copy.etag !== digest.etag) {
      await this.#deleteKey(to);
      throw new Error(`${this.url}/${path}: server-side copy has another ETag than its source`);
    }
    return { size: copy.size, etag: copy.etag, serverSide: true };
  }

  /**
   * CopyObject of `from` (only of the version whose ETag is `ifEtag`, when given); resolves to the copy's
   * ETag as answered (lower case, empty when the server gave none), or `undefined` when the source is no
   * longer that version and nothing was copied (the caller then copies what is there now).
   */
  async #copyObject(
    source: S3Storage,
    from: string,
    to: string,
    ifEtag: string | undefined,
    signal?: AbortSignal,
  ): Promise<{ etag: string } | undefined> {
    try {
      const response = await this.#send<CopyObjectCommandOutput>(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: to,
          CopySource: copySource(source.bucket, from),
          CopySourceIfMatch: ifEtag === undefined ? undefined : `"${ifEtag}"`,
          MetadataDirective: "COPY",
        }),
        to,
        signal,
      );
      return { etag: unquote(response.CopyObjectResult?.ETag).toLowerCase() };
    } catch (error) {
      const status = ((error as Error).cause as { $metadata?: { httpStatusCode?: number } } | undefined)
        ?.$metadata?.httpStatusCode;
      if (status === 412 && ifEtag !== undefined) return undefined;
      throw error;
    }
  }

  /** A multipart copy with UploadPartCopy, `partSize` bytes per part. */
  async #copyInParts(
    source: S3Storage,
    from: string,
    to: string,
    head: HeadObjectCommandOutput,
    partSize: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const size = head.ContentLength ?? 0;
    const created = await this.#send<CreateMultipartUploadCommandOutput>(
      new CreateMultipartUploadCommand({
        Bucket: this.bucket,
        Key: to,
        ContentType: head.ContentType,
        Metadata: { ...head.Metadata, [PART_SIZE_METADATA]: String(partSize) },
      }),
      to,
      signal,
    );
    const uploadId = created.UploadId!;
    const numbers = Array.from({ length: Math.max(1, Math.ceil(size / partSize)) }, (_, i) => i + 1);
    const parts: CompletedPart[] = [];
    try {
      await pool(numbers, this.concurrency, async (number) => {
        const start = (number - 1) * partSize;
        const end = Math.min(size, start + partSize) - 1;
        const response = await this.#send<UploadPartCopyCommandOutput>(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: to,
            UploadId: uploadId,
            PartNumber: number,
            CopySource: copySource(source.bucket, from),
            CopySourceRange: size === 0 ? undefined : `bytes=${start}-${end}`,
          }),
          to,
          signal,
        );
        parts[number - 1] = { PartNumber: number, ETag: response.CopyPartResult?.ETag };
      });
      await this.#send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: to,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
        to,
        signal,
      );
    } catch (error) {
      await this.#abortUpload(to, uploadId);
      throw error;
    }
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
   * `recursive`) and aborts every unfinished multipart upload under the prefix: in lakerun's S3 locations
   * those are the batches and uploads of a run that was killed. Returns how many were removed.
   */
  async removeTemporaries(options: { recursive?: boolean } = {}): Promise<number> {
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
    const uploads: Array<{ key: string; id: string }> = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    do {
      const page = await this.#send<ListMultipartUploadsCommandOutput>(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: this.prefix ? `${this.prefix}/` : undefined,
          KeyMarker: keyMarker,
          UploadIdMarker: idMarker,
        }),
        undefined,
      );
      for (const u of page.Uploads ?? []) {
        if (u.Key && u.UploadId) uploads.push({ key: u.Key, id: u.UploadId });
      }
      const more = page.IsTruncated && (page.NextKeyMarker || page.NextUploadIdMarker);
      keyMarker = more ? page.NextKeyMarker : undefined;
      idMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker || idMarker);
    await pool(uploads, 8, (u) => this.#abortUpload(u.key, u.id));
    return doomed.length + uploads.length;
  }
}
