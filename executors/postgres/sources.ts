/**
 * The staged files a load reads: listing them, sampling the first ones to infer columns, and turning each
 * file into the input of one `COPY … FROM STDIN (FORMAT csv)`, with the map from COPY's line numbers back to
 * the file's own lines (or rows).
 *
 * - CSV goes to COPY as it is, byte for byte, but for what COPY would read otherwise than the file says
 *   (lib/sql/postgres_copy_csv.ts: a line holding only `\.`, COPY's end-of-data marker, is sent quoted, and
 *   a UTF-8 BOM is dropped); the header line is read to map its names to the table's columns. A quote
 *   RFC 4180 would not write there (`b"c`, `"b"c`), in the header or a data line, is refused, naming the
 *   file, line and field: COPY opens or closes a quoted stretch at every quote, so it would read the file's
 *   lines otherwise (skip the whole file as its header, join records, drop quotes).
 * - A column whose type was inferred from a sample of the files holds every value of every file to the rules
 *   that chose the type (`fitsType`, `jsonValueFits` in lib/tables/infer.ts): a value the sample's rules
 *   would not have typed so (`02134` in a bigint column, which COPY would load as 2134) fails the load,
 *   naming its file, line and column ({@link RefusedValue}).
 * - Newline-delimited JSON is rewritten line by line as CSV (one JSON object per line; keys map to columns).
 * - Parquet is read a row group at a time (ranged reads of the file; never the whole file in memory) and
 *   written as CSV; decimals and timestamps exactly (parquet_values.ts).
 *
 * @module
 */
import { join } from "node:path";
import type { AsyncBuffer, FileMetaData, SchemaTree } from "hyparquet";
import { copyCsvStream, type FieldCheck, RefusedValue } from "../../lib/sql/postgres_copy_csv.ts";
import { headerLineFields } from "../../lib/tables/csv.ts";
import { columnIdentifiers, columnsOfNames } from "../../lib/tables/identifiers.ts";
import { type ColumnType, fitsType, inferTable, jsonValueFits } from "../../lib/tables/infer.ts";
import { JsonNumber, parseJsonKeepingNumbers, rawJson } from "../../lib/tables/json_numbers.ts";
import { listDataFiles, sampleFiles, skippedLines } from "../../lib/tables/sample.ts";
import type { ColumnSpec } from "../../lib/tables/ddl.ts";
import type { Storage, StoredFile } from "../../lib/storage/mod.ts";
import { concatBytes } from "../../lib/streams.ts";
import { byteaText, decimalOf, orNull, parquetReading, timeOf, timestampOf } from "./parquet_values.ts";

/** The formats a load reads. */
export type SourceFormat = "csv" | "json" | "parquet";

/** How many bytes of each sampled file inference reads. */
export const SAMPLE_BYTES = 64 * 1024;

/** How many files inference samples. */
export const SAMPLED_FILES = 3;

/** PostgreSQL keeps 63 bytes of a name. */
const MAX_NAME = 63;

/** Longest header line lakerun reads before giving up. */
const MAX_HEADER_BYTES = 1024 * 1024;

/**
 * Every data file under the source, sorted by path ({@link listDataFiles}): hidden and work files (a name
 * starting with `_` or `.`: `_SUCCESS`, `_temporary/…`, `.part-0.csv.crc`), empty files and symbolic links
 * are skipped, and said so, one line for each kind.
 */
export async function sourceFiles(
  storage: Storage,
  log: (message: string) => void,
  signal?: AbortSignal,
): Promise<StoredFile[]> {
  const listing = await listDataFiles(storage, { signal });
  for (const line of skippedLines(listing)) log(line);
  return listing.files;
}

/**
 * The columns the staged files hold: inferred from samples of the first files (CSV, JSON), or from the
 * first file's schema (parquet). Logs why each choice that is not obvious was made.
 */
export async function inferColumns(
  storage: Storage,
  files: readonly StoredFile[],
  options: { format: SourceFormat; header: boolean; log: (message: string) => void; signal?: AbortSignal },
): Promise<ColumnSpec[]> {
  if (files.length === 0) throw new Error(`no files in ${storage.url} to infer columns from: give columns`);
  if (options.format === "parquet") {
    const { columns, reasons } = await parquetColumns(
      await parquetMetadata(storage, files[0], options.signal),
    );
    for (const reason of reasons) options.log(reason);
    return columns;
  }
  const samples = await sampleFiles(storage, {
    files,
    maxFiles: SAMPLED_FILES,
    maxBytes: SAMPLE_BYTES,
    signal: options.signal,
  });
  const table = inferTable(samples.map((s) => s.text), {
    format: options.format,
    header: options.header,
    names: samples.map((s) => s.path),
    wholeFiles: samples.map((s) => s.whole),
    maxNameLength: MAX_NAME,
    target: "postgres",
  });
  for (const reason of table.reasons) options.log(reason);
  return table.columns.map(({ name, type, source, onlyEmpty }) => ({ name, type, source, onlyEmpty }));
}

/** The input of one COPY: CSV bytes, the columns they fill, and where COPY's lines come from. */
export interface CopyInput {
  /** The table columns the CSV fills, in its field order. */
  columns: string[];
  /** The CSV starts with a header line (COPY's `HEADER true`). */
  header: boolean;
  stream: ReadableStream<Uint8Array>;
  /**
   * Where COPY's line `line` (from 1, header included) is in the file: `line 5`, `row 4`; the line where its
   * record starts (a CSV file is read again for it).
   */
  position(line: number): string | Promise<string>;
}

/** What {@link copyInput} needs besides the file. */
export interface CopyInputOptions {
  format: SourceFormat;
  /** CSV: the files have a header line. */
  header: boolean;
  /** The table's columns, in table order. */
  tableColumns: readonly string[];
  /** The table as shown in messages. */
  tableName: string;
  /**
   * The table's columns whose types were inferred from a sample of the files (text columns left out): each
   * value of the file must be one inference reads as its column's type ({@link RefusedValue} otherwise).
   */
  inferred?: ReadonlyMap<string, ColumnType>;
  /**
   * Parquet: the column types lakerun chose from the first file's schema (the table was made from them); a
   * file whose field has another type for its column is refused.
   */
  parquetTypes?: ReadonlyMap<string, string>;
  /** The table's `bytea` columns (a parquet byte array goes there as its bytes). */
  byteaColumns?: ReadonlySet<string>;
  /** Called with the file's bytes read so far. */
  onBytes?(bytes: number): void;
  signal?: AbortSignal;
}

/**
 * Why a value that inference would not read as `type` may not load into `column`, whose type was inferred:
 * for a {@link RefusedValue}.
 */
export function inferredTypeRefusal(column: string, type: ColumnType): string {
  return `not a ${type} as column inference reads one (the type of ${column} came from a sample of the ` +
    `files); to load it, give columns, with ${column} as text`;
}

/** The checks of each field of a CSV file whose fields fill `columns`, for the inferred ones. */
function inferredChecks(
  columns: readonly string[],
  inferred: ReadonlyMap<string, ColumnType> | undefined,
): (FieldCheck | undefined)[] {
  return columns.map((column) => {
    const type = inferred?.get(column);
    if (type === undefined || type === "string") return undefined;
    const fits = fitsType(type);
    // PostgreSQL stores NaN and the infinities as themselves: nothing about them changes on the way
    const accepts = type === "double"
      ? (bytes: Uint8Array, start: number, end: number) =>
        fits(bytes, start, end) || isFloatSpecial(bytes, start, end)
      : fits;
    return { accepts, refusal: inferredTypeRefusal(column, type) };
  });
}

const FLOAT_SPECIALS = new Set(["nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"]);

/**
 * `NaN`, `Infinity`, `-inf`… in any case: the spellings PostgreSQL's double precision input reads as NaN and the
 * infinities (Python, numpy and PostgreSQL write them so).
 */
function isFloatSpecial(bytes: Uint8Array, start: number, end: number): boolean {
  if (end - start < 3 || end - start > 9) return false;
  return FLOAT_SPECIALS.has(String.fromCharCode(...bytes.subarray(start, end)).toLowerCase());
}

/** Turns one staged file into a COPY input. */
export function copyInput(storage: Storage, file: StoredFile, options: CopyInputOptions): Promise<CopyInput> {
  switch (options.format) {
    case "csv":
      return csvInput(storage, file, options);
    case "json":
      return jsonInput(storage, file, options);
    case "parquet":
      return parquetInput(storage, file, options);
  }
}

// ---------------------------------------------------------------------------------------------------------
// CSV: the bytes as they are (but for COPY's end-of-data marker); the header read to name the columns.

async function csvInput(storage: Storage, file: StoredFile, options: CopyInputOptions): Promise<CopyInput> {
  const reader = (await storage.read(file.path, { signal: options.signal })).getReader();
  const position = (line: number) => csvRecordPosition(storage, file, line, options.signal);
  if (!options.header) {
    const checks = inferredChecks(options.tableColumns, options.inferred);
    return {
      columns: [...options.tableColumns],
      header: false,
      stream: counted(reader, [], options).pipeThrough(copyCsvStream({ checks })),
      position,
    };
  }
  const buffered: Uint8Array[] = [];
  let bytes = 0;
  let fields: string[] | undefined;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (!done) {
        buffered.push(value);
        bytes += value.byteLength;
      }
      const text = new TextDecoder().decode(concatBytes(buffered));
      try {
        // as COPY finds the header line's end (a quote inside a field is refused: COPY's line would differ)
        fields = headerLineFields(text, { delimiter: ",", wholeFile: done });
      } catch (error) {
        throw new Error(`${file.path} ${(error as Error).message}`, { cause: error });
      }
      if (fields !== undefined) break;
      if (done) throw new Error(`${file.path} has no header line`);
      if (bytes > MAX_HEADER_BYTES) {
        throw new Error(`${file.path}: no end of the header line in its first MiB`);
      }
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  }
  let columns: string[];
  try {
    columns = mapFields(file.path, fields, options.tableColumns, options.tableName);
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  }
  const checks = inferredChecks(columns, options.inferred);
  return {
    columns,
    header: true,
    stream: counted(reader, buffered, options).pipeThrough(copyCsvStream({ header: true, checks })),
    position,
  };
}

/** The table column each name (a CSV header field, a JSON key) fills ({@link columnsOfNames}). */
export function mapNames(
  names: readonly string[],
  tableColumns: readonly string[],
  unknown: (name: string) => string,
): string[] {
  return columnsOfNames(names, tableColumns, { maxLength: MAX_NAME, unknown });
}

/**
 * The table column each field of the file at `path` fills ({@link mapNames}); a field that fills none fails,
 * naming the file, the field, the table (`tableName`, as shown in messages) and its columns.
 */
export function mapFields(
  path: string,
  fields: readonly string[],
  tableColumns: readonly string[],
  tableName: string,
): string[] {
  return mapNames(
    fields,
    tableColumns,
    (name) =>
      `${path} has a column ${JSON.stringify(name)} that ${tableName} lacks (its columns: ${
        tableColumns.join(", ")
      })`,
  );
}

/** The buffered chunks, then the rest of `reader`, read only as COPY asks; counts the bytes. */
function counted(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  buffered: Uint8Array[],
  options: CopyInputOptions,
): ReadableStream<Uint8Array> {
  let bytes = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = buffered.shift() ??
        await reader.read().then(({ done, value }) => done ? undefined : value);
      if (next === undefined) return controller.close();
      bytes += next.byteLength;
      options.onBytes?.(bytes);
      controller.enqueue(next);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

// ---------------------------------------------------------------------------------------------------------
// Rows written as CSV (JSON lines, parquet), and the map back to the file's own lines.

/**
 * COPY's line numbers mapped to source lines: runs of CSV lines that each hold one record, at a fixed
 * offset from their source line, and records that span several CSV lines (a value with a line break).
 */
export class LineMap {
  readonly #runs: { first: number; last: number; source: number; multiline: boolean }[] = [];

  /** Records that the CSV record on lines `first`…`last` came from source line (or row) `source`. */
  add(first: number, last: number, source: number): void {
    const run = this.#runs.at(-1);
    const single = first === last;
    if (
      run && single && !run.multiline && first === run.last + 1 && source - first === run.source - run.first
    ) {
      run.last = last;
      return;
    }
    this.#runs.push({ first, last, source, multiline: !single });
  }

  /** The source line (or row) of CSV line `line`, or `undefined` when no record covers it. */
  sourceOf(line: number): number | undefined {
    let low = 0;
    let high = this.#runs.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const run = this.#runs[middle];
      if (line < run.first) high = middle - 1;
      else if (line > run.last) low = middle + 1;
      else return run.multiline ? run.source : run.source + (line - run.first);
    }
    return undefined;
  }
}

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;

/**
 * The line on which the CSV record holding COPY's line `line` starts, counting lines as COPY does: its line
 * number for a record is the line where the record ends, for it counts each line break in a quoted value
 * (the file's own line break: `\n`, or `\r` when its first line ends in `\r\n` or `\r`). Reads `stream`
 * only as far as that record.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { csvRecordLine } from "./sources.ts";
 *
 * const csv = (text: string) => new Blob([text]).stream();
 * const file = 'id,note\n1,"a\nb"\n2,"c\r\nd\ne"\n3,f\n';
 * assert.equal(await csvRecordLine(csv(file), 3), 2); // record 1, lines 2–3
 * assert.equal(await csvRecordLine(csv(file), 6), 4); // record 2, lines 4–6 (its \r is no line break)
 * assert.equal(await csvRecordLine(csv(file), 7), 7);
 * assert.equal(await csvRecordLine(csv('id,note\r\n1,"a\r\nb"\r\n2,c\r\n'), 3), 2);
 * ```
 */
export async function csvRecordLine(stream: ReadableStream<Uint8Array>, line: number): Promise<number> {
  const reader = stream.getReader();
  let current = 1; // COPY's count of the line being read
  let start = 1; // the line the record being read starts on
  let quoted = false;
  let eol: "lf" | "cr" | "crlf" | undefined;
  let afterCr = false; // the byte before ended a record with \r
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return start;
      for (const byte of value) {
        if (afterCr) {
          afterCr = false;
          eol ??= byte === LF ? "crlf" : "cr";
          if (byte === LF && eol === "crlf") continue;
        }
        if (byte === QUOTE) {
          quoted = !quoted;
        } else if (quoted) {
          // COPY counts \r as the line break while it does not know the file's (its first line is quoted)
          if (byte === (eol === "lf" ? LF : CR)) current++;
        } else if (byte === LF || byte === CR) {
          if (byte === LF) eol ??= "lf";
          else afterCr = true;
          if (current >= line) return start;
          start = ++current;
        }
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** `line N`, N where the CSV record holding COPY's line `line` starts; COPY's own line if the file is unread. */
async function csvRecordPosition(
  storage: Storage,
  file: StoredFile,
  line: number,
  signal?: AbortSignal,
): Promise<string> {
  try {
    return `line ${await csvRecordLine(await storage.read(file.path, { signal }), line)}`;
  } catch {
    return `line ${line}`;
  }
}

/** One CSV field for a JSON or parquet value; `undefined`/`null` → an unquoted empty field (NULL). */
function csvField(value: unknown): string {
  if (value === null || value === undefined) return "";
  switch (typeof value) {
    case "string":
      return `"${value.replaceAll('"', '""')}"`;
    case "number":
      return Number.isFinite(value)
        ? String(value)
        : value > 0
        ? "Infinity"
        : value < 0
        ? "-Infinity"
        : "NaN";
    case "bigint":
    case "boolean":
      return String(value);
  }
  if (value instanceof JsonNumber) return value.source;
  // an instant: ISO 8601 with its `Z` (no top-level parquet value comes as a Date: see parquet_values.ts)
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "" : value.toISOString();
  if (value instanceof Uint8Array) return byteaText(value);
  // nested values as JSON text, every number as written: a JSON number's source, a parquet integer's digits
  return csvField(
    JSON.stringify(value, (_key, inner) => typeof inner === "bigint" ? rawJson(inner.toString()) : inner),
  );
}

function linesOf(field: string): number {
  let lines = 0;
  for (let i = field.indexOf("\n"); i !== -1; i = field.indexOf("\n", i + 1)) lines++;
  return lines;
}

/** Writes records as CSV lines, keeping the {@link LineMap}. */
class CsvWriter {
  readonly map = new LineMap();
  #line = 0;
  #encoder = new TextEncoder();

  /** One record of `values`, from source line (or row) `source`. */
  record(values: unknown[], source: number): Uint8Array {
    return this.fields(values.map(csvField), source);
  }

  /** One record of CSV `fields`, from source line (or row) `source`. */
  fields(fields: string[], source: number): Uint8Array {
    const line = fields.join(",");
    const first = this.#line + 1;
    this.#line = first + linesOf(line);
    this.map.add(first, this.#line, source);
    return this.#encoder.encode(`${line}\n`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Newline-delimited JSON.

async function jsonInput(storage: Storage, file: StoredFile, options: CopyInputOptions): Promise<CopyInput> {
  const columns = [...options.tableColumns];
  const index = new Map(columns.map((column, i) => [column, i]));
  // the keys seen so far, first seen first, and the column position of each: mapped together
  // (mapNames), so `code` fills code and `Code` code_2 whichever comes first, as create_table named them
  const keys: string[] = [];
  const keyColumns = new Map<string, number>();
  const columnsOf = (lineKeys: string[], line: number): number[] => {
    const fresh = lineKeys.filter((key) => !keyColumns.has(key));
    if (fresh.length > 0) {
      keys.push(...fresh);
      const mapped = mapNames(
        keys,
        columns,
        (key) =>
          `${file.path} line ${line} has a key ${
            JSON.stringify(key)
          } that ${options.tableName} lacks (its columns: ${columns.join(", ")})`,
      );
      const moved = keys.findIndex((key, i) =>
        keyColumns.has(key) && keyColumns.get(key) !== index.get(mapped[i])
      );
      if (moved !== -1) {
        const column = columns[keyColumns.get(keys[moved])!];
        throw new Error(
          `${file.path} line ${line} has the key ${JSON.stringify(keys[mapped.indexOf(column)])}, ` +
            `which fills column ${column}, filled on the lines before from the key ${
              JSON.stringify(keys[moved])
            } (a key that is a column's name takes it first)`,
        );
      }
      keys.forEach((key, i) => keyColumns.set(key, index.get(mapped[i])!));
    }
    return lineKeys.map((key) => keyColumns.get(key)!);
  };
  const writer = new CsvWriter();
  const source = await storage.read(file.path, { signal: options.signal });
  let bytes = 0;
  let line = 0;
  let rest = "";
  const decoder = new TextDecoder();
  const convert = (text: string, controller: TransformStreamDefaultController<Uint8Array>) => {
    const lines = (rest + text).split("\n");
    rest = lines.pop()!;
    for (const raw of lines) convertLine(raw, controller);
  };
  const convertLine = (raw: string, controller: TransformStreamDefaultController<Uint8Array>) => {
    line++;
    const text = raw.replace(/\r$/, "").replace(/^\uFEFF/, "");
    if (text.trim() === "") return;
    let value: unknown;
    try {
      value = parseJsonKeepingNumbers(text);
    } catch (error) {
      throw new Error(`${file.path} line ${line} is not JSON: ${(error as Error).message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof JsonNumber) {
      throw new Error(`${file.path} line ${line} is not a JSON object (one object per line)`);
    }
    const values: unknown[] = new Array(columns.length);
    const entries = Object.entries(value);
    const positions = columnsOf(entries.map(([key]) => key), line);
    entries.forEach(([, inner], i) => {
      const position = positions[i];
      // UTF-8 cannot hold half a surrogate pair: it would land as U+FFFD
      if (typeof inner === "string" && !inner.isWellFormed()) {
        throw new RefusedValue(
          line,
          position,
          inner, // shown quoted as JSON, the surrogate escaped
          "holds a lone surrogate (a \\uD800–\\uDFFF escape without its pair), which no UTF-8 text can store",
        );
      }
      const type = options.inferred?.get(columns[position]);
      if (type !== undefined && !jsonValueFits(type, inner)) {
        const shown = typeof inner === "string"
          ? inner
          : inner instanceof JsonNumber
          ? inner.source
          : JSON.stringify(inner);
        throw new RefusedValue(line, position, shown, inferredTypeRefusal(columns[position], type));
      }
      values[position] = inner;
    });
    controller.enqueue(writer.record(values, line));
  };
  const stream = source.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        bytes += chunk.byteLength;
        options.onBytes?.(bytes);
        convert(decoder.decode(chunk, { stream: true }), controller);
      },
      flush(controller) {
        convert(decoder.decode(), controller);
        if (rest !== "") convertLine(rest, controller);
      },
    }),
  );
  return {
    columns,
    header: false,
    stream,
    position: (csvLine) => `line ${writer.map.sourceOf(csvLine) ?? csvLine}`,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Parquet.

/** A file of `storage` as hyparquet's random-access buffer: each slice is a ranged read. */
export async function randomAccess(
  storage: Storage,
  file: StoredFile,
  signal?: AbortSignal,
): Promise<AsyncBuffer> {
  if (storage.localFolder !== undefined) {
    const path = join(storage.localFolder, file.path);
    const size = (await Deno.stat(path)).size;
    return {
      byteLength: size,
      async slice(start: number, end = size): Promise<ArrayBuffer> {
        signal?.throwIfAborted();
        using handle = await Deno.open(path, { read: true });
        await handle.seek(start, Deno.SeekMode.Start);
        const buffer = new Uint8Array(end - start);
        let filled = 0;
        while (filled < buffer.length) {
          const read = await handle.read(buffer.subarray(filled));
          if (read === null) throw new Error(`${file.path} ended at byte ${start + filled}, before ${end}`);
          filled += read;
        }
        return buffer.buffer;
      },
    };
  }
  const ranged = storage as Storage & {
    signedGet?(
      path: string,
      range: { start: number; end: number; partSize: number },
      etag: string,
    ): Promise<{ url: string; headers: Record<string, string> }>;
  };
  if (typeof ranged.signedGet !== "function" || !file.etag) {
    throw new Error(`${storage.url} cannot be read by ranges, which parquet files need`);
  }
  return {
    byteLength: file.size,
    async slice(start: number, end = file.size): Promise<ArrayBuffer> {
      const get = await ranged.signedGet!(file.path, { start, end, partSize: 0 }, file.etag!);
      const response = await fetch(get.url, { headers: get.headers, signal });
      if (response.status !== 206 && !(response.status === 200 && start === 0 && end === file.size)) {
        await response.body?.cancel();
        throw new Error(`reading bytes ${start}-${end} of ${file.path}: HTTP ${response.status}`);
      }
      return await response.arrayBuffer();
    },
  };
}

/** hyparquet, loaded only by steps that read parquet. */
const hyparquet = () => import("hyparquet");

/** A parquet file's metadata (its footer, read by ranges). */
export async function parquetMetadata(
  storage: Storage,
  file: StoredFile,
  signal?: AbortSignal,
): Promise<FileMetaData> {
  return await (await hyparquet()).parquetMetadataAsync(await randomAccess(storage, file, signal));
}

/** The names of a parquet file's top-level fields, in order. */
export async function parquetFieldNames(metadata: FileMetaData): Promise<string[]> {
  return (await hyparquet()).parquetSchema(metadata).children.map((field) => field.element.name);
}

/** The columns a parquet file's schema declares, as PostgreSQL column types. */
export async function parquetColumns(
  metadata: FileMetaData,
): Promise<{ columns: ColumnSpec[]; reasons: string[] }> {
  const reasons: string[] = [];
  const fields = (await hyparquet()).parquetSchema(metadata).children;
  const names = columnIdentifiers(fields.map((field) => field.element.name), { maxLength: MAX_NAME });
  const columns = fields.map((field, index) => {
    const { type, reason } = parquetColumnType(field);
    if (reason) reasons.push(`column ${names[index]}: ${reason}`);
    return { name: names[index], type, source: field.element.name };
  });
  return { columns, reasons };
}

function parquetColumnType(field: SchemaTree): { type: string; reason?: string } {
  const element = field.element;
  if (field.children.length > 0) {
    return { type: "string", reason: "a nested parquet field; loaded as its JSON text" };
  }
  const logical = element.logical_type;
  const converted = element.converted_type;
  const decimal = decimalOf(element);
  if (decimal) {
    return { type: decimal.precision ? `numeric(${decimal.precision},${decimal.scale})` : "numeric" };
  }
  if (logical?.type === "DATE" || converted === "DATE") return { type: "date" };
  if (timeOf(element)) return { type: "time" };
  // an instant as its UTC time (as lakerun always made it; declare timestamptz to keep instants)
  if (timestampOf(element)) return { type: "timestamp" };
  if (
    logical?.type === "STRING" || converted === "UTF8" || logical?.type === "ENUM" || logical?.type === "UUID"
  ) {
    return { type: "string" };
  }
  if (logical?.type === "FLOAT16") return { type: "real" }; // every FLOAT16 is a float4
  if (
    converted === "UINT_64" || (logical?.type === "INTEGER" && logical.bitWidth === 64 && !logical.isSigned)
  ) {
    return { type: "numeric(20,0)", reason: "unsigned 64-bit integers, beyond bigint" };
  }
  switch (element.type) {
    case "BOOLEAN":
      return { type: "boolean" };
    case "INT32":
    case "INT64":
      return { type: "bigint" };
    case "FLOAT":
    case "DOUBLE":
      return { type: "double" };
    case "BYTE_ARRAY":
    case "FIXED_LEN_BYTE_ARRAY":
      return { type: "string" };
    default:
      return { type: "string", reason: `parquet type ${element.type}; loaded as text` };
  }
}

async function parquetInput(
  storage: Storage,
  file: StoredFile,
  options: CopyInputOptions,
): Promise<CopyInput> {
  const { parquetMetadataAsync, parquetReadObjects, parquetSchema } = await hyparquet();
  const buffer = await randomAccess(storage, file, options.signal);
  const metadata = await parquetMetadataAsync(buffer);
  const schema = parquetSchema(metadata).children;
  const reading = parquetReading(metadata, schema);
  const fields = reading.names;
  const columns = mapFields(file.path, fields, options.tableColumns, options.tableName);
  // a table lakerun made from the first file's schema: this file's fields must have the same types
  schema.forEach((field, index) => {
    const chosen = options.parquetTypes?.get(columns[index]);
    const here = parquetColumnType(field).type;
    if (chosen !== undefined && chosen !== here) {
      throw new Error(
        `${file.path}: field ${
          JSON.stringify(field.element.name)
        } is ${here} here but ${chosen} in the table ` +
          `lakerun made from the first file (${options.tableName}.${columns[index]}); give columns, with ` +
          `${columns[index]} of a type that holds both (text keeps every value)`,
      );
    }
  });
  // an unannotated byte array bound for a bytea column: its bytes, whatever they would read as
  const texts = reading.text.map((text, field) =>
    reading.binary.includes(fields[field]) && options.byteaColumns?.has(columns[field])
      ? orNull(byteaText)
      : text ?? csvField
  );
  const writer = new CsvWriter();
  const groups = metadata.row_groups.map((group) => Number(group.num_rows));
  let group = 0;
  let rowStart = 0;
  let bytes = 0;
  const read = (names: string[] | undefined, utf8: boolean) =>
    parquetReadObjects({
      file: buffer,
      metadata: reading.metadata,
      columns: names,
      rowStart,
      rowEnd: rowStart + groups[group],
      rowFormat: "object",
      utf8,
      parsers: reading.parsers,
    });
  const others = fields.filter((name) => !reading.binary.includes(name));
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (group >= groups.length) return controller.close();
      // one row group at a time: the rows of a group are decoded together, then written out; BYTE_ARRAY
      // decimals apart, as bytes
      let rows = reading.binary.length === 0
        ? await read(undefined, true)
        : await read(reading.binary, false);
      if (reading.binary.length > 0 && others.length > 0) {
        const binary = rows;
        rows = (await read(others, true)).map((row, i) => ({ ...row, ...binary[i] }));
      }
      const chunks = rows.map((row, i) =>
        writer.fields(fields.map((name, field) => texts[field](row[name])), rowStart + i + 1)
      );
      const out = concatBytes(chunks);
      bytes += Number(
        metadata.row_groups[group].total_compressed_size ?? metadata.row_groups[group].total_byte_size,
      );
      options.onBytes?.(Math.min(bytes, file.size));
      rowStart += groups[group];
      group++;
      controller.enqueue(out);
    },
  }, { highWaterMark: 0 });
  return {
    columns,
    header: false,
    stream,
    position: (csvLine) => `row ${writer.map.sourceOf(csvLine) ?? csvLine}`,
  };
}
