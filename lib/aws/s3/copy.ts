/**
 * Server-side copies between S3 locations on one endpoint: the bytes never pass through lakerun.
 *
 * With the source's listed size and single-part ETag, an object up to 5 GiB is one CopyObject conditional on
 * that ETag, whose answer carries the copy's ETag. Otherwise the source is asked for its size and ETag: an
 * object over 5 GiB, or a multipart one whose part layout is known, is copied part by part with
 * UploadPartCopy in the source's layout (so the copy has the source's ETag and verification needs no
 * download); any other is one CopyObject. The copy's size and ETag are then checked against the source's.
 *
 * @module
 */
import {
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  type CopyObjectCommandOutput,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  UploadPartCopyCommand,
  type UploadPartCopyCommandOutput,
} from "@aws-sdk/client-s3";
import { runPool } from "../../async.ts";
import { SizeMismatchError } from "../../storage/local.ts";
import type { CopyOptions, CopyResult } from "../../storage/mod.ts";
import type { ObjectDigest } from "../../storage/verify.ts";
import { S3RequestError } from "./client.ts";
import { etagPartCount, objectDigestOf, PART_SIZE_METADATA, PLAIN_ETAG, unquoteEtag } from "./etag.ts";
import {
  abortMultipartUpload,
  partSizeFor,
  type S3Requests,
  startMultipartUpload,
  uploadEnded,
} from "./upload.ts";

const MiB = 1024 * 1024;
/** Largest object a single CopyObject may copy. */
export const MAX_SINGLE_COPY = 5 * 1024 * MiB;

/**
 * CopySource of an object: bucket and key, URL-encoded except for the slashes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copySource } from "./copy.ts";
 *
 * assert.equal(copySource("lake", "raw/a b+c.csv"), "lake/raw/a%20b%2Bc.csv");
 * ```
 */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
}

/** Options of {@link serverSideCopy}. */
export interface ServerSideCopyOptions extends CopyOptions {
  /** Bytes per part of a multipart copy that does not keep the source's layout (more for huge objects). */
  partSize: number;
  /** Parts copied at once. */
  concurrency: number;
}

/** The two ends of a copy: the object `from` of `source` is copied to `to` of `target`. */
interface CopyEnds {
  source: S3Requests;
  from: string;
  target: S3Requests;
  to: string;
}

/**
 * An object's HeadObject answer and its digest, whose part size, for a multipart object without lakerun's
 * recorded one, is the size of part 1 when the server tells it; `undefined` when there is no object.
 */
export async function describeObject(
  requests: S3Requests,
  key: string,
  signal?: AbortSignal,
): Promise<{ head: HeadObjectCommandOutput; digest: ObjectDigest } | undefined> {
  const head = await requests.head(key, signal);
  if (!head) return undefined;
  const digest = objectDigestOf(head);
  if (digest.partSize === undefined && etagPartCount(digest.etag) > 1) {
    digest.partSize = await firstPartSize(requests, key, head);
  }
  return { head, digest };
}

/** The size of part 1 (AWS answers HeadObject with `partNumber`; servers that ignore it return the whole). */
async function firstPartSize(
  requests: S3Requests,
  key: string,
  head: HeadObjectCommandOutput,
): Promise<number | undefined> {
  try {
    const part = await requests.client.send(
      new HeadObjectCommand({ Bucket: requests.bucket, Key: key, PartNumber: 1 }),
    );
    const size = part.ContentLength ?? 0;
    return size > 0 && size < (head.ContentLength ?? 0) ? size : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Copies the object `from` of `source` to `to` of `target` (same endpoint) on the server, then checks the
 * copy's size and ETag against the source's; a copy with another ETag is deleted. See the module
 * documentation for which requests copy what.
 */
export async function serverSideCopy(
  source: S3Requests,
  from: string,
  target: S3Requests,
  to: string,
  options: ServerSideCopyOptions,
): Promise<CopyResult> {
  const { signal } = options;
  const ends: CopyEnds = { source, from, target, to };
  const listed = unquoteEtag(options.etag).toLowerCase();
  let copiedListed = false;
  if (options.size !== undefined && options.size <= MAX_SINGLE_COPY && PLAIN_ETAG.test(listed)) {
    const copied = await copyObject(ends, listed, signal);
    if (copied?.etag === listed) return { size: options.size, etag: listed, serverSide: true };
    copiedListed = copied !== undefined; // made, but its answer does not prove it: checked below
  }
  const sourceUrl = `s3://${source.bucket}/${from}`;
  const described = await describeObject(source, from, signal);
  if (!described) throw new S3RequestError(`${sourceUrl} does not exist`, "no-key");
  const { head, digest } = described;
  if (options.size !== undefined && digest.size !== options.size) {
    throw new SizeMismatchError(sourceUrl, options.size, digest.size);
  }
  const parts = etagPartCount(digest.etag);
  const layout = parts > 1 ? digest.partSize : undefined;
  const keepsLayout = layout !== undefined && Math.ceil(digest.size / layout) === parts;
  if (copiedListed) {
    // the listed version was copied: what follows checks the copy against the source
  } else if (digest.size > MAX_SINGLE_COPY || keepsLayout) {
    const partSize = keepsLayout ? layout : partSizeFor(digest.size, options.partSize);
    await copyInParts(ends, head, partSize, options.concurrency, signal);
  } else {
    await copyObject(ends, undefined, signal);
  }
  const targetUrl = `s3://${target.bucket}/${to}`;
  const copied = await target.head(to, signal);
  const copy = copied ? objectDigestOf(copied) : undefined;
  if (!copy || copy.size !== digest.size) {
    throw new Error(`${targetUrl}: server-side copy has ${copy?.size ?? "no"} bytes, source ${digest.size}`);
  }
  const comparable = digest.md5Based && copy.md5Based &&
    (/-/.test(digest.etag) === /-/.test(copy.etag)) && (!/-/.test(digest.etag) || keepsLayout);
  if (comparable && copy.etag !== digest.etag) {
    await target.send(new DeleteObjectCommand({ Bucket: target.bucket, Key: to }), to);
    throw new Error(`${targetUrl}: server-side copy has another ETag than its source`);
  }
  return { size: copy.size, etag: copy.etag, serverSide: true };
}

/**
 * CopyObject of `from` (only of the version whose ETag is `ifEtag`, when given); resolves to the copy's
 * ETag as answered (lower case, empty when the server gave none), or `undefined` when the source is no
 * longer that version and nothing was copied (the caller then copies what is there now).
 */
async function copyObject(
  { source, from, target, to }: CopyEnds,
  ifEtag: string | undefined,
  signal?: AbortSignal,
): Promise<{ etag: string } | undefined> {
  try {
    const response = await target.send<CopyObjectCommandOutput>(
      new CopyObjectCommand({
        Bucket: target.bucket,
        Key: to,
        CopySource: copySource(source.bucket, from),
        CopySourceIfMatch: ifEtag === undefined ? undefined : `"${ifEtag}"`,
        MetadataDirective: "COPY",
      }),
      to,
      signal,
    );
    return { etag: unquoteEtag(response.CopyObjectResult?.ETag).toLowerCase() };
  } catch (error) {
    const status = ((error as Error).cause as { $metadata?: { httpStatusCode?: number } } | undefined)
      ?.$metadata?.httpStatusCode;
    if (status === 412 && ifEtag !== undefined) return undefined;
    throw error;
  }
}

/**
 * A multipart copy with UploadPartCopy, `partSize` bytes per part, `concurrency` parts at a time, with the
 * source's user metadata and the headers a CopyObject keeps (Content-Type, -Encoding, -Disposition,
 * -Language, Cache-Control, Expires), recording the part size in the copy's metadata; on failure the parts in flight are stopped and the upload aborted.
 */
async function copyInParts(
  { source, from, target, to }: CopyEnds,
  head: HeadObjectCommandOutput,
  partSize: number,
  concurrency: number,
  signal?: AbortSignal,
): Promise<void> {
  const size = head.ContentLength ?? 0;
  const started = await startMultipartUpload(
    target,
    new CreateMultipartUploadCommand({
      Bucket: target.bucket,
      Key: to,
      // what CopyObject's MetadataDirective COPY keeps, so that the copy is served as its source is
      ContentType: head.ContentType,
      ContentEncoding: head.ContentEncoding,
      CacheControl: head.CacheControl,
      ContentDisposition: head.ContentDisposition,
      ContentLanguage: head.ContentLanguage,
      Expires: head.Expires,
      Metadata: { ...head.Metadata, [PART_SIZE_METADATA]: String(partSize) },
    }),
    to,
    signal,
  );
  const { uploadId } = started;
  const numbers = Array.from({ length: Math.max(1, Math.ceil(size / partSize)) }, (_, i) => i + 1);
  const parts: CompletedPart[] = [];
  try {
    await runPool(numbers, concurrency, signal, async (number, partSignal) => {
      const start = (number - 1) * partSize;
      const end = Math.min(size, start + partSize) - 1;
      const response = await target.send<UploadPartCopyCommandOutput>(
        new UploadPartCopyCommand({
          Bucket: target.bucket,
          Key: to,
          UploadId: uploadId,
          PartNumber: number,
          CopySource: copySource(source.bucket, from),
          CopySourceRange: size === 0 ? undefined : `bytes=${start}-${end}`,
        }),
        to,
        partSignal,
      );
      parts[number - 1] = { PartNumber: number, ETag: response.CopyPartResult?.ETag };
    });
    await target.send(
      new CompleteMultipartUploadCommand({
        Bucket: target.bucket,
        Key: to,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
      to,
      signal,
    );
  } catch (error) {
    await abortMultipartUpload(target, to, uploadId, started.record);
    throw error;
  }
  await uploadEnded(target, started);
}
