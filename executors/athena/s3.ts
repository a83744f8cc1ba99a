/**
 * The S3 reads of the AthenaExecutor: listing the keys under a table's folder and reading the first bytes of
 * an object with a ranged GET. Loaded only by the tasks that read S3 (it loads the AWS SDK's S3 client).
 *
 * @module
 */
import { GetObjectCommand, ListObjectsV2Command, type ListObjectsV2CommandOutput } from "@aws-sdk/client-s3";
import { explainS3Error, s3Client } from "../../lib/aws/s3/client.ts";
import { resolveS3Config } from "../../lib/aws/s3/scope.ts";
import { parseS3Url } from "../../lib/aws/s3/url.ts";
import type { S3Settings } from "../../lib/aws/settings.ts";

/** One object of a listing. */
export interface S3Object {
  /** The full key in the bucket. */
  key: string;
  size: number;
}

/** Every object under the folder `url` (ListObjectsV2, 1,000 keys a page), in key order. */
export async function* listObjects(
  url: string,
  settings: S3Settings | undefined,
  signal?: AbortSignal,
): AsyncGenerator<S3Object> {
  const { bucket, prefix } = parseS3Url(url);
  const client = s3Client(settings);
  let token: string | undefined;
  do {
    let page: ListObjectsV2CommandOutput;
    try {
      page = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix ? `${prefix}/` : undefined,
          ContinuationToken: token,
        }),
        { abortSignal: signal },
      );
    } catch (error) {
      throw explainS3Error(error, { bucket, operation: "ListObjectsV2", config: resolveS3Config(settings) });
    }
    for (const object of page.Contents ?? []) {
      if (object.Key !== undefined) yield { key: object.Key, size: object.Size ?? 0 };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/** The first `bytes` bytes of `s3://bucket/key` (fewer for a smaller object), with one ranged GET. */
export async function readStart(
  bucket: string,
  key: string,
  bytes: number,
  settings: S3Settings | undefined,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  try {
    const response = await s3Client(settings).send(
      new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${bytes - 1}` }),
      { abortSignal: signal },
    );
    if (!response.Body) return new Uint8Array();
    const body = await response.Body.transformToByteArray();
    return body.length > bytes ? body.subarray(0, bytes) : body;
  } catch (error) {
    throw explainS3Error(error, { bucket, key, operation: "GetObject", config: resolveS3Config(settings) });
  }
}
