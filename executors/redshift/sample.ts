/**
 * Columns inferred from the files under `source` (`lib/tables`): the first bytes of the first few objects,
 * in key order, gunzipped when `copy_options` say GZIP. Used by create_table when `columns` are not given.
 *
 * @module
 */
import { type InferredTable, inferTable } from "../../lib/tables/infer.ts";
import {
  examplePaths,
  headerFields,
  isHiddenPath,
  listDataFiles,
  sampleFiles,
} from "../../lib/tables/sample.ts";
import { columnsOfNames } from "../../lib/tables/identifiers.ts";
import { runPool } from "../../lib/async.ts";
import { plural } from "../../lib/format.ts";
import { parseCopyOption } from "../../lib/sql/redshift_copy.ts";
import { openLocation } from "../../lib/storage/locations.ts";
import type { StoredFile } from "../../lib/storage/mod.ts";
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
  // inferred from the data files (copy_from_s3 refuses hidden ones it finds: COPY would read them)
  const { storage, samples } = await sampleSource(params, params.source, options);
  if (samples.length === 0) throw new Error(`no file under ${params.source} to infer the columns from`);
  const delimiter = params.copy_options.map((entry) => parseCopyOption(entry, params.format))
    .find((option) => option.keyword === "DELIMITER")?.value;
  return inferTable(samples.map((s) => s.text), {
    format: params.format,
    header: headerLines(params) > 0,
    delimiter,
    names: samples.map((s) => `${storage.url.replace(/\/$/, "")}/${s.path}`),
    wholeFiles: samples.map((s) => s.whole),
    target: "redshift",
  });
}

/**
 * The first bytes of the first {@link SAMPLE_FILES} data files under `source` (hidden ones passed over), as
 * `create_table` infers from and `copy_from_s3` checks JSON keys in.
 */
async function sampleSource(
  params: Params,
  source: string,
  options: { cwd: string; s3?: S3Settings; signal: AbortSignal },
) {
  const storage = await openLocation(source, { cwd: options.cwd, s3: options.s3 });
  const samples = await sampleFiles(storage, {
    maxFiles: SAMPLE_FILES,
    maxBytes: SAMPLE_BYTES,
    skip: isHiddenPath,
    signal: options.signal,
    decompress: () => gzipped(params) ? "gzip" : undefined,
  });
  return { storage, samples };
}

/** What {@link jsonKeysOfSource} found. */
export interface JsonKeys {
  /** The top-level keys of the sampled objects, in the order first seen. */
  keys: string[];
  /** The sampled files, as `s3://` URLs. */
  files: string[];
}

/**
 * The top-level keys of the JSON objects in a sample of the files under `params.source` (the first
 * {@link SAMPLE_FILES} data files, {@link SAMPLE_BYTES} of each, as `create_table` infers from): what
 * `copy_from_s3` checks against the columns COPY fills, which it matches to keys by name, ignoring case only.
 * `undefined` when lakerun cannot read them (a compression other than GZIP, an `ENCODING` other than UTF-8)
 * or there is no file. A line that is not a whole JSON object (the sample's cut-off last line) is passed over.
 */
export async function jsonKeysOfSource(
  params: Params,
  options: { cwd: string; s3?: S3Settings; signal: AbortSignal },
): Promise<JsonKeys | undefined> {
  if (params.format !== "json" || params.source === undefined) return undefined;
  const copyOptions = params.copy_options.map((entry) => parseCopyOption(entry, params.format));
  const keyword = (name: string) => copyOptions.find((option) => option.keyword === name);
  if (UNREAD_COMPRESSIONS.some(keyword)) return undefined;
  const encoding = keyword("ENCODING")?.value?.toUpperCase();
  if (encoding !== undefined && encoding !== "UTF8") return undefined;
  const { storage, samples } = await sampleSource(params, params.source, options);
  if (samples.length === 0) return undefined;
  const keys = new Set<string>();
  for (const sample of samples) {
    for (const line of sample.text.split("\n")) {
      if (line.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue;
      }
      if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        for (const key of Object.keys(value)) keys.add(key);
      }
    }
  }
  const url = (path: string) => `${storage.url.replace(/\/$/, "")}/${path}`;
  return { keys: [...keys], files: samples.map((sample) => url(sample.path)) };
}

/** Objects whose header `copy_from_s3` reads at once. */
export const HEADER_READS = 16;

/** The compressions whose files lakerun cannot read the header of (COPY can). */
const UNREAD_COMPRESSIONS = ["BZIP2", "LZOP", "ZSTD"];

/** What {@link columnsFromHeaders} found. */
export interface HeaderColumns {
  /** The table columns the files fill, in the files' order: COPY's column list. */
  columns: string[];
  /** How many files' headers were read. */
  files: number;
}

/**
 * The table columns COPY fills, in file order, read from the header of every object under `params.source`:
 * Redshift's CSV COPY fills columns by position and skips the header unread, so a file whose header names
 * the table's columns in another order would load each value into another column. Names map to columns as
 * PostgreSQL's load maps them ({@link columnsOfNames}). `undefined` when there is nothing to read: `columns`
 * given (the file order, by the routine's word), no header line, JSON or parquet, a compression lakerun does
 * not read, an `ENCODING` other than UTF-8, a `QUOTE` other than `"`, or no file.
 *
 * Hidden and work files ({@link isHiddenPath}: `_SUCCESS`, `_temporary/…`, `.part-0.csv.crc`) are not data,
 * but COPY reads every object under the prefix: an empty one (`_SUCCESS`) loads nothing and is logged, any
 * other is refused before anything is sent.
 *
 * @throws Error naming the file, for a header field that names no column of the table, a header line that
 * cannot be read, two files whose headers give their columns in different orders (one COPY reads every
 * file alike), or hidden files with bytes in them.
 */
export async function columnsFromHeaders(
  params: Params,
  tableColumns: readonly string[],
  options: {
    cwd: string;
    s3?: S3Settings;
    signal: AbortSignal;
    tableName: string;
    log?: (message: string) => void;
  },
): Promise<HeaderColumns | undefined> {
  if (params.columns !== undefined || params.format !== "csv" || headerLines(params) !== 1) return undefined;
  if (params.source === undefined) return undefined;
  const copyOptions = params.copy_options.map((entry) => parseCopyOption(entry, params.format));
  const keyword = (name: string) => copyOptions.find((option) => option.keyword === name);
  if (UNREAD_COMPRESSIONS.some(keyword)) return undefined;
  // headers are read as UTF-8, COPY's default: UTF-16 files are left to COPY
  const encoding = keyword("ENCODING")?.value?.toUpperCase();
  if (encoding !== undefined && encoding !== "UTF8") return undefined;
  const quote = keyword("QUOTE")?.value;
  if (quote !== undefined && quote !== '"') return undefined;
  const delimiter = keyword("DELIMITER")?.value ?? ",";
  const storage = await openLocation(params.source, { cwd: options.cwd, s3: options.s3 });
  const listing = await listDataFiles(storage, { signal: options.signal });
  const url = (path: string) => `${storage.url.replace(/\/$/, "")}/${path}`;
  const loaded = listing.hidden.filter((file) => file.size > 0);
  if (loaded.length > 0) {
    const what = plural(loaded.length, "hidden or work file");
    const paths = examplePaths(loaded.map((file) => ({ path: url(file.path) })));
    throw new Error(
      `${what} (a name starting with _ or .) under source, which COPY would load (it reads every object under ` +
        `the prefix): ${paths}; remove them or stage the data files under a prefix of their own`,
    );
  }
  if (listing.hidden.length > 0) {
    options.log?.(
      `not reading the header of ${plural(listing.hidden.length, "empty hidden or work file")} (${
        examplePaths(listing.hidden)
      }): COPY loads nothing from ${listing.hidden.length > 1 ? "them" : "it"}`,
    );
  }
  const files: StoredFile[] = listing.files;
  if (files.length === 0) return undefined;
  const compression = gzipped(params) ? "gzip" as const : undefined;
  const orders: string[][] = [];
  await runPool([...files.keys()], HEADER_READS, options.signal, async (index, signal) => {
    const file = files[index];
    // a header COPY would end elsewhere (a quote inside a field) is refused, naming the file
    const fields = await headerFields(storage, file, {
      delimiter,
      compression,
      name: url(file.path),
      signal,
    });
    orders[index] = columnsOfNames(fields, tableColumns, {
      unknown: (name) =>
        `${url(file.path)} has a column ${
          JSON.stringify(name)
        } that ${options.tableName} lacks (its columns: ${
          tableColumns.join(", ")
        }); give columns (in file order) to load by position`,
    });
  });
  const first = orders[0];
  orders.forEach((order, index) => {
    if (order.join("\u0000") !== first.join("\u0000")) {
      throw new Error(
        `${url(files[index].path)} has its columns in another order (${order.join(", ")}) than ${
          url(files[0].path)
        } (${first.join(", ")}): one COPY reads every file by position`,
      );
    }
  });
  return { columns: first, files: files.length };
}
