/**
 * Columns inferred from the files under `source` (`lib/tables`): the first bytes of the first few objects,
 * in key order, gunzipped when `copy_options` say GZIP. Used by create_table when `columns` are not given.
 *
 * @module
 */
import { type InferredTable, inferTable } from "../../lib/tables/infer.ts";
import { parseCopyOption } from "../../lib/sql/redshift_copy.ts";
import { openLocation } from "../../lib/storage/locations.ts";
import type { S3Settings } from "../../lib/aws/settings.ts";
import { gzipped, headerLines, type Params } from "./params.ts";

/** Objects sampled. */
export const SAMPLE_FILES = 3;
/** Bytes read from each (after decompression). */
export const SAMPLE_BYTES = 256 * 1024;

/** The columns of the files under `params.source`, and why each choice was made. */
export async function inferFromSource(
  params: Params,
  options: { cwd: string; s3?: S3Settings; signal: AbortSignal },
): Promise<InferredTable> {
  if (params.source === undefined) {
    throw new Error("create_table needs columns, or a source to infer them from");
  }
  if (params.format === "parquet") {
    throw new Error(
      "parquet tables need columns ({name: type}): lakerun does not infer them from parquet files",
    );
  }
  const storage = await openLocation(params.source, { cwd: options.cwd, s3: options.s3 });
  const samples: string[] = [];
  const names: string[] = [];
  const wholeFiles: boolean[] = [];
  for await (const file of storage.list({ signal: options.signal })) {
    if (file.size === 0 || file.kind !== "file") continue;
    let stream = await storage.read(file.path, { signal: options.signal });
    if (gzipped(params)) {
      stream = stream.pipeThrough(new DecompressionStream("gzip") as TransformStream<Uint8Array, Uint8Array>);
    }
    const { bytes, whole } = await readStart(stream, SAMPLE_BYTES);
    samples.push(new TextDecoder().decode(bytes));
    names.push(`${storage.url.replace(/\/$/, "")}/${file.path}`);
    wholeFiles.push(whole);
    if (samples.length === SAMPLE_FILES) break;
  }
  if (samples.length === 0) throw new Error(`no file under ${params.source} to infer the columns from`);
  const delimiter = params.copy_options.map((entry) => parseCopyOption(entry, params.format))
    .find((option) => option.keyword === "DELIMITER")?.value;
  return inferTable(samples, {
    format: params.format,
    header: headerLines(params) > 0,
    delimiter,
    names,
    wholeFiles,
  });
}

/** Up to `limit` bytes from the start of `stream`, which is then cancelled; `whole` when it ended first. */
async function readStart(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<{ bytes: Uint8Array; whole: boolean }> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let whole = false;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) {
        whole = true;
        break;
      }
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    if (!whole) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { bytes: bytes.subarray(0, Math.min(size, limit)), whole: whole && size <= limit };
}
