/**
 * Streaming uploads to S3, shaped like lib-storage's `Upload`: a {@link MultipartWriter} gathers the bytes
 * written into parts of a fixed size and sends each with its Content-MD5, a bounded number at a time, so that
 * memory stays near `(concurrency + 1) × part size` whatever the object's size. A body that ends within its
 * first part is one PutObject; a longer one is a multipart upload, completed (or aborted) as a whole. Either
 * way the stored object's ETag is checked against the MD5s sent.
 *
 * {@link uploadStream} drives a writer from a stream: it checks the length, computes the sha256 when asked,
 * and aborts the upload on any failure.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  type CompleteMultipartUploadCommandOutput,
  CreateMultipartUploadCommand,
  type CreateMultipartUploadCommandOutput,
  DeleteObjectCommand,
  type HeadObjectCommandOutput,
  PutObjectCommand,
  type PutObjectCommandOutput,
  type S3Client,
  UploadPartCommand,
  type UploadPartCommandOutput,
} from "@aws-sdk/client-s3";
import { abortable } from "../../async.ts";
import { SizeMismatchError } from "../../storage/local.ts";
import type { WriteOptions, WriteResult } from "../../storage/mod.ts";
import { explainS3Error } from "./client.ts";
import { md5BasedEtag, multipartEtag, PART_SIZE_METADATA, unquoteEtag } from "./etag.ts";
import type { S3Config } from "./scope.ts";

const MiB = 1024 * 1024;
/** S3's largest number of parts in one multipart upload. */
export const MAX_PARTS = 10_000;

/** An SDK command, as {@link S3Requests.send} takes it. */
export type S3Command = { input: unknown; constructor: { name: string } };

/** What uploads and server-side copies need of the S3 location they read or write. */
export interface S3Requests {
  /** The bucket. */
  readonly bucket: string;
  /** The client, for requests whose errors are handled before they are explained. */
  readonly client: S3Client;
  /** The connection settings (for error messages and the checksum mode). */
  readonly config: S3Config;
  /** Sends a command about `key` (or the bucket), turning SDK errors into one-line `S3RequestError`s. */
  send<T>(command: S3Command, key: string | undefined, signal?: AbortSignal): Promise<T>;
  /** HeadObject of `key`, `undefined` when there is none (a missing bucket fails). */
  head(key: string, signal?: AbortSignal): Promise<HeadObjectCommandOutput | undefined>;
  /**
   * Records a multipart upload just created, so that a run killed before finishing it has the next run abort
   * it (lib/aws/s3/upload_records.ts); resolves to the record's name. Absent: nothing is recorded.
   */
  recordUpload?(key: string, uploadId: string): Promise<string>;
  /** Removes the record {@link S3Requests.recordUpload} made, once its upload is completed or aborted. */
  forgetUpload?(name: string): Promise<void>;
}

/** A multipart upload lakerun started: its UploadId and the name of its record, if recorded. */
export interface StartedUpload {
  uploadId: string;
  record?: string;
}

/**
 * Sends `command` (a CreateMultipartUpload of `key`) and records the upload it starts
 * ({@link S3Requests.recordUpload}); an upload that cannot be recorded is aborted at once.
 */
export async function startMultipartUpload(
  requests: S3Requests,
  command: CreateMultipartUploadCommand,
  key: string,
  signal?: AbortSignal,
): Promise<StartedUpload> {
  const created = await requests.send<CreateMultipartUploadCommandOutput>(command, key, signal);
  const uploadId = created.UploadId!;
  try {
    return { uploadId, record: await requests.recordUpload?.(key, uploadId) };
  } catch (error) {
    await abortMultipartUpload(requests, key, uploadId).catch(() => {});
    throw error;
  }
}

/** Forgets the record of an upload that was just completed or aborted. */
export async function uploadEnded(requests: S3Requests, upload: StartedUpload): Promise<void> {
  if (upload.record !== undefined) await requests.forgetUpload?.(upload.record);
}

/** True for an SDK error that means "not found" (NotFound, NoSuchKey or HTTP 404). */
export function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === "NotFound" || e?.name === "NoSuchKey" || e?.$metadata?.httpStatusCode === 404;
}

/**
 * Aborts a multipart upload; an upload that is already gone (completed or aborted) is no error. Its record
 * (`record`, from {@link startMultipartUpload}) is removed once it is aborted.
 */
export async function abortMultipartUpload(
  requests: S3Requests,
  key: string,
  uploadId: string,
  record?: string,
): Promise<void> {
  try {
    await requests.client.send(
      new AbortMultipartUploadCommand({ Bucket: requests.bucket, Key: key, UploadId: uploadId }),
    );
  } catch (error) {
    if (!isNotFound(error) && (error as Error).name !== "NoSuchUpload") {
      throw explainS3Error(error, {
        bucket: requests.bucket,
        key,
        operation: "AbortMultipartUpload",
        config: requests.config,
      });
    }
  }
  await uploadEnded(requests, { uploadId, record });
}

/** Part size for a body of `size` bytes: `partSize`, larger when needed to stay within 10,000 parts. */
export function partSizeFor(size: number | undefined, partSize: number): number {
  if (size === undefined) return partSize;
  return Math.max(partSize, Math.ceil(size / MAX_PARTS / MiB) * MiB);
}

/** Options of a {@link MultipartWriter}. */
export interface MultipartWriterOptions {
  /** Bytes per part (all but the last), at least 5 MiB. */
  partSize: number;
  /** Parts in flight at once. */
  concurrency: number;
  /** Aborts the requests that send the bytes ({@link MultipartWriter.complete} takes its own signal). */
  signal?: AbortSignal;
}

/**
 * One object uploaded from the bytes {@link MultipartWriter.write} is given: they are gathered into parts of
 * {@link MultipartWriter.partSize} bytes, each sent with its Content-MD5 as soon as it is full (and more bytes
 * follow), at most `concurrency` at a time: `write` waits while that many are in flight, and fails once one of
 * them failed. {@link MultipartWriter.complete} stores the object and checks it; {@link MultipartWriter.abort}
 * leaves nothing.
 *
 * For a batch, {@link MultipartWriter.sendParts} sends the rest as the last part without completing: the
 * object appears only at the later `complete`, and the writer holds no buffer meanwhile.
 */
export class MultipartWriter {
  /** The object's key. */
  readonly key: string;
  /** The object's `s3://bucket/key`, for messages. */
  readonly url: string;
  /** Bytes per part (all but the last). */
  readonly partSize: number;
  readonly #requests: S3Requests;
  readonly #concurrency: number;
  readonly #signal: AbortSignal | undefined;
  /** The bytes of the part being gathered (`#filled` of them), and full-size buffers of sent parts. */
  #chunks: Uint8Array[] = [];
  #filled = 0;
  #spare: Uint8Array[] = [];
  #size = 0;
  #uploadId: string | undefined;
  #record: string | undefined;
  #partCount = 0;
  readonly #parts: CompletedPart[] = [];
  readonly #md5s: Uint8Array[] = [];
  readonly #inflight = new Set<Promise<void>>();
  #failure: { error: unknown } | undefined;
  #partsSent = false;

  /** A writer of `key` through `requests`; nothing is sent before the first part is full. */
  constructor(requests: S3Requests, key: string, options: MultipartWriterOptions) {
    this.#requests = requests;
    this.key = key;
    this.url = `s3://${requests.bucket}/${key}`;
    this.partSize = options.partSize;
    this.#concurrency = options.concurrency;
    this.#signal = options.signal;
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#size;
  }

  /** Adds `chunk` to the object, sending the parts it fills; fails with the failure of a part sent earlier. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure.error;
    if (this.#partsSent) throw new Error(`${this.url}: written to after its last part`);
    this.#size += chunk.byteLength;
    let offset = 0;
    while (offset < chunk.byteLength) {
      if (this.#filled === this.partSize) await this.#flushPart(false);
      const n = Math.min(this.partSize - this.#filled, chunk.byteLength - offset);
      this.#chunks.push(offset === 0 && n === chunk.byteLength ? chunk : chunk.subarray(offset, offset + n));
      this.#filled += n;
      offset += n;
    }
  }

  /**
   * Sends what is gathered as the last part (even a short or empty one: the object is then a multipart upload
   * whatever its size) and waits for every part, leaving the upload open for {@link MultipartWriter.complete}.
   */
  async sendParts(): Promise<void> {
    if (this.#partsSent) return;
    await this.#flushPart(true);
    await Promise.all(this.#inflight);
    if (this.#failure) throw this.#failure.error;
    this.#partsSent = true;
    this.#spare = [];
  }

  /**
   * Stores the object and resolves to its ETag: one PutObject when no part has been sent (the body fits one
   * part), else the last part and CompleteMultipartUpload. A stored object of another size or ETag than sent
   * is deleted, and the call fails.
   */
  async complete(signal?: AbortSignal): Promise<string> {
    if (this.#uploadId === undefined) return await this.#putObject(signal);
    await this.sendParts();
    const response = await this.#requests.send<CompleteMultipartUploadCommandOutput>(
      new CompleteMultipartUploadCommand({
        Bucket: this.#requests.bucket,
        Key: this.key,
        UploadId: this.#uploadId,
        MultipartUpload: { Parts: this.#parts },
      }),
      this.key,
      signal,
    );
    await uploadEnded(this.#requests, { uploadId: this.#uploadId, record: this.#record });
    const expected = multipartEtag(this.#md5s);
    // radosgw answers with an empty ETag (Red Hat BZ 2266579): ask for it
    const head = await this.#requests.head(this.key, signal);
    const etag = unquoteEtag(head?.ETag ?? response.ETag);
    const problem = !head
      ? "is missing after completion"
      : head.ContentLength !== this.#size
      ? `has ${head.ContentLength} bytes, ${this.#size} were sent`
      : md5BasedEtag(head) && etag !== expected
      ? "has another ETag than the parts sent"
      : undefined;
    if (problem) {
      await this.#deleteObject();
      throw new Error(`${this.url}: the stored object ${problem}`);
    }
    return etag;
  }

  /** Waits for the parts in flight, then aborts the multipart upload, if one was started: nothing is stored. */
  async abort(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
    if (this.#uploadId !== undefined) {
      await abortMultipartUpload(this.#requests, this.key, this.#uploadId, this.#record);
    }
  }

  /** The whole body, gathered within the first part, as one PutObject with its Content-MD5. */
  async #putObject(signal: AbortSignal | undefined): Promise<string> {
    const bytes = this.#gather();
    const md5 = createHash("md5").update(bytes).digest();
    const response = await this.#requests.send<PutObjectCommandOutput>(
      new PutObjectCommand({
        Bucket: this.#requests.bucket,
        Key: this.key,
        Body: bytes,
        ContentLength: bytes.byteLength,
        ContentMD5: md5.toString("base64"),
      }),
      this.key,
      signal,
    );
    const etag = unquoteEtag(response.ETag);
    if (etag && md5BasedEtag(response) && etag !== md5.toString("hex")) {
      await this.#deleteObject();
      throw new Error(`${this.url}: the stored object's ETag does not match the bytes sent`);
    }
    return etag || md5.toString("hex");
  }

  /**
   * Sends what has been gathered as the next part (starting the multipart upload on the first), once fewer
   * than `concurrency` parts are in flight. A full part is copied into a spare buffer, reused once sent.
   */
  async #flushPart(last: boolean): Promise<void> {
    if (this.#uploadId === undefined) {
      const started = await startMultipartUpload(
        this.#requests,
        new CreateMultipartUploadCommand({
          Bucket: this.#requests.bucket,
          Key: this.key,
          Metadata: { [PART_SIZE_METADATA]: String(this.partSize) },
          ...(this.#requests.config.checksumMode === "WHEN_SUPPORTED" ? { ChecksumAlgorithm: "CRC32" } : {}),
        }),
        this.key,
        this.#signal,
      );
      this.#uploadId = started.uploadId;
      this.#record = started.record;
    }
    while (this.#inflight.size >= this.#concurrency) await Promise.race(this.#inflight);
    if (this.#failure) throw this.#failure.error;
    const number = ++this.#partCount;
    if (number > MAX_PARTS) {
      throw new Error(
        `${this.url}: more than ${MAX_PARTS} parts of ${this.partSize} bytes; give the size in advance`,
      );
    }
    const bytes = last ? this.#gather() : this.#gather(this.#spare.pop() ?? new Uint8Array(this.partSize));
    const sent: Promise<void> = this.#sendPart(bytes, number, !last)
      .catch((error) => {
        this.#failure ??= { error };
      })
      .finally(() => this.#inflight.delete(sent));
    this.#inflight.add(sent);
  }

  /** UploadPart of part `number`, with its Content-MD5; `reuse` gives its buffer back once sent. */
  async #sendPart(bytes: Uint8Array, number: number, reuse: boolean): Promise<void> {
    const md5 = createHash("md5").update(bytes).digest();
    this.#md5s[number - 1] = md5;
    const response = await this.#requests.send<UploadPartCommandOutput>(
      new UploadPartCommand({
        Bucket: this.#requests.bucket,
        Key: this.key,
        UploadId: this.#uploadId,
        PartNumber: number,
        Body: bytes,
        ContentLength: bytes.byteLength,
        ContentMD5: md5.toString("base64"),
      }),
      this.key,
      this.#signal,
    );
    this.#parts[number - 1] = {
      PartNumber: number,
      ETag: response.ETag,
      ...(response.ChecksumCRC32 ? { ChecksumCRC32: response.ChecksumCRC32 } : {}),
    };
    if (reuse) this.#spare.push(new Uint8Array(bytes.buffer));
  }

  /** The gathered bytes as one array (`into`, when given, else a new one of their size); empties the part. */
  #gather(into?: Uint8Array): Uint8Array {
    const bytes = into ?? new Uint8Array(this.#filled);
    let offset = 0;
    for (const chunk of this.#chunks) {
      bytes.set(chunk, offset);
      offset += chunk.byteLength;
    }
    const result = bytes.subarray(0, this.#filled);
    this.#chunks = [];
    this.#filled = 0;
    return result;
  }

  async #deleteObject(): Promise<void> {
    await this.#requests.send(
      new DeleteObjectCommand({ Bucket: this.#requests.bucket, Key: this.key }),
      this.key,
    );
  }
}

/**
 * Streams `data` into `writer`, then either completes the upload (`complete`; the result has the object's
 * ETag) or only sends its last part, leaving it for a batch to complete at commit. A stream of another length
 * than `options.size`, an error or an abort cancels the stream and aborts the upload: nothing is stored.
 * Computes the sha256 of the bytes when `options.sha256` asks for it (it costs CPU on every byte).
 */
export async function uploadStream(
  writer: MultipartWriter,
  data: ReadableStream<Uint8Array>,
  options: WriteOptions,
  complete: boolean,
): Promise<WriteResult> {
  const { signal, size: expected } = options;
  const sha256 = options.sha256 ? createHash("sha256") : undefined;
  let total = 0;
  const reader = data.getReader();
  try {
    while (true) {
      const { done, value } = await abortable(reader.read(), signal);
      if (done) break;
      total += value.byteLength;
      if (expected !== undefined && total > expected) {
        throw new SizeMismatchError(writer.url, expected, total);
      }
      sha256?.update(value);
      await writer.write(value);
    }
    if (expected !== undefined && total !== expected) {
      throw new SizeMismatchError(writer.url, expected, total);
    }
    signal?.throwIfAborted();
    const digest = sha256?.digest("hex");
    if (!complete) {
      await writer.sendParts();
      return { size: total, sha256: digest };
    }
    return { size: total, sha256: digest, etag: await writer.complete(signal) };
  } catch (error) {
    reader.cancel(error).catch(() => {});
    await writer.abort();
    throw error;
  } finally {
    reader.releaseLock();
  }
}
