/**
 * Columns inferred from the files under `source` (`lib/tables`): the first bytes of the first few objects,
 * in key order, gunzipped when `copy_options` say GZIP. Used by create_table when `columns` are not given.
 *
 * @module
 */
import { type InferredTable, inferTable } from "../../lib/tables/infer.ts";
import { sampleFiles } from "../../lib/tables/sample.ts";
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
  // COPY reads every object under the prefix: none is skipped as hidden
  const samples = await sampleFiles(storage, {
    maxFiles: SAMPLE_FILES,
    maxBytes: SAMPLE_BYTES,
    signal: options.signal,
    decompress: () => gzipped(params) ? "gzip" : undefined,
  });
  if (samples.length === 0) throw new Error(`no file under ${params.source} to infer the columns from`);
  const delimiter = params.copy_options.map((entry) => parseCopyOption(entry, params.format))
    .find((option) => option.keyword === "DELIMITER")?.value;
  return inferTable(samples.map((s) => s.text), {
    format: params.format,
    header: headerLines(params) > 0,
    delimiter,
    names: samples.map((s) => `${storage.url.replace(/\/$/, "")}/${s.path}`),
    wholeFiles: samples.map((s) => s.whole),
  });
}
