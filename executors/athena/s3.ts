/**
 * The S3 listing of the AthenaExecutor: the keys under a table's folder, page by page, read only as far as the
 * caller goes (`create_table` samples the first few objects; `lib/tables/sample.ts` reads them). Loaded only by
 * the tasks that read S3 (it loads the AWS SDK's S3 client).
 *
 * @module
 */
import { ListObjectsV2Command, type ListObjectsV2CommandOutput } from "@aws-sdk/client-s3";
import { explainS3Error, s3Client } from "../../lib/aws/s3/client.ts";
import { resolveS3Config } from "../../lib/aws/s3/scope.ts";
import { parseS3Url } from "../../lib/aws/s3/url.ts";
import type { S3Settings } from "../../lib/aws/settings.ts";
import type { StoredFile } from "../../lib/storage/mod.ts";

/** One object of a listing; a {@link StoredFile} of the folder. */
export interface S3Object extends StoredFile {
  /** The full key in the bucket. */
  key: string;
  /** The key relative to the folder (`""` for the folder's own marker). */
  path: string;
  kind: "file";
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
      if (object.Key === undefined) continue;
      const path = object.Key.slice(prefix ? prefix.length + 1 : 0);
      yield { key: object.Key, path, size: object.Size ?? 0, kind: "file" };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}
