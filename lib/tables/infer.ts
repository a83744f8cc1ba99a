/**
 * Column names and types inferred from samples of staged files (the first bytes of the first objects of a
 * folder), and the reasons for every choice that is not obvious, for the log.
 *
 * Types are the ones Athena's text SerDes, PostgreSQL and Redshift all read the same way: `bigint`, `double`,
 * `boolean`, `date`, `timestamp` and, whenever in doubt, `string`. A value that would lose something when
 * typed (`00123`, a 20-digit id, an ISO timestamp Hive cannot parse) keeps its column a string. What
 * each value is, is read by `value_kinds.ts`.
 *
 * **Every value, not only the sample's.** Inference reads a sample; a load that created its table from it
 * holds every other value to the same rules with {@link valueFits} (CSV) and {@link jsonValueFits} (JSON),
 * so that `02134` after 10,000 five-digit zip codes fails the load instead of loading as 2134.
 *
 * **Numbers a double keeps.** A `double` column holds only numbers that a double gives back as written: the
 * double nearest to the value, printed in the fewest digits that identify it (as JavaScript and PostgreSQL
 * print a double), is the written number. So `0.1`, `1.50` and `0.30000000000000004` (a double's own
 * output) are doubles, but `12345678901234567.25` (which would read back as `12345678901234568`) keeps its
 * column a string, as does an integer a double cannot hold (`9007199254740993`) in a column that also holds
 * decimals (alone, such integers make a `bigint`, which holds them). Every value of 15 significant digits or
 * fewer is kept. No `decimal`/`numeric` is inferred: Athena's needs a precision and Redshift's defaults to
 * `numeric(18,0)`, so `string` is the one type that keeps such a value as written in all three.
 *
 * The reasons are true of the engine the table is for ({@link InferOptions.target}): advice about Athena's
 * SerDes (quotes, backslashes, line breaks in fields, header lines) is for Athena tables only; PostgreSQL's
 * and Redshift's COPY read quoted fields, backslashes and line breaks in CSV as data.
 *
 * @module
 */

import { parseDelimitedSample, type SampleRecord } from "./csv.ts";
import { columnIdentifiers } from "./identifiers.ts";
import { JsonNumber, parseJsonKeepingNumbers } from "./json_numbers.ts";
import { type ColumnType, isColumnType, textKind, type ValueKind, valueKind } from "./value_kinds.ts";

export type { ColumnType } from "./value_kinds.ts";

/** The staged files' format. */
export type TableFormat = "csv" | "tsv" | "json" | "parquet";

/** One inferred column. */
export interface InferredColumn {
  /** A safe, unique identifier (see `columnIdentifiers`). */
  name: string;
  /** The header text or JSON key it came from; `""` for files without a header. */
  source: string;
  type: ColumnType;
  /** Some sampled value was empty (or JSON `null`): Athena's OpenCSVSerde fails on those in typed columns. */
  emptyValues: boolean;
  /** Every sampled value was empty: its type (`string`) says nothing of the column's values. */
  onlyEmpty: boolean;
}

/** What {@link inferTable} found. */
export interface InferredTable {
  format: TableFormat;
  columns: InferredColumn[];
  /** Data lines have quoted fields, so a quote-aware SerDe is needed. */
  quoted: boolean;
  /** The first line of each file is a header. */
  header: boolean;
  /** The field separator; `undefined` for JSON. */
  delimiter: string | undefined;
  /** Values of delimited files hold backslashes (to be read as they are, not as escapes). */
  backslashes?: boolean;
  /** Why each choice that is not obvious was made, one sentence each, for the log. */
  reasons: string[];
}

/** The engine a table is inferred for: it decides which reasons are worth logging. */
export type InferTarget = "athena" | "postgres" | "redshift";

/** Options of {@link inferTable}. */
export interface InferOptions {
  /**
   * The engine that reads the files. Default: none in particular, so the reasons say only what is true of
   * every engine (no Athena SerDe advice).
   */
  target?: InferTarget;
  /** Default `"csv"`. */
  format?: TableFormat;
  /** The first line of each file is a header. Default `true` (CSV and TSV only). */
  header?: boolean;
  /** The field separator. Default `,` for CSV and a tab for TSV. */
  delimiter?: string;
  /** The files' names, parallel to the samples, for messages. Default `file 1`, `file 2`, … */
  names?: readonly string[];
  /** Parallel to the samples: `true` for a whole file (whose last line needs no line break). */
  wholeFiles?: readonly boolean[];
  /** Data rows read from each sample. Default 1000. */
  maxRows?: number;
  /** Longest column name (see `columnIdentifiers`): default 127; pass 63 for PostgreSQL. */
  maxNameLength?: number;
}

const DEFAULT_MAX_ROWS = 1000;

/**
 * Infers a table from samples of its files (one text per file, the first files of the folder).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inferTable } from "./infer.ts";
 *
 * const table = inferTable(["Zip,Amount,Paid,Day\n00123,1.5,true,2020-02-29\n02134,2,FALSE,2021-03-01\n"]);
 * assert.deepEqual(table.columns.map(({ name, type }) => `${name} ${type}`), [
 *   "zip string",
 *   "amount double",
 *   "paid boolean",
 *   "day date",
 * ]);
 * assert.match(table.reasons.join("\n"), /column zip: values like "00123" have leading zeros/);
 * const phones = inferTable(["phone\n+14155550123\n+442071838750\n"]);
 * assert.equal(phones.columns[0].type, "string");
 * assert.match(phones.reasons.join("\n"), /column phone: values like "\+14155550123" start with a \+/);
 *
 * // advice about Athena's SerDes only for an Athena table
 * const quoted = ['id,note\n1,"a, b"\n'];
 * assert.match(inferTable(quoted, { target: "athena" }).reasons.join("\n"), /needs a quote-aware SerDe/);
 * assert.deepEqual(inferTable(quoted, { target: "postgres" }).reasons, []);
 *
 * // written with semicolons: one column of whole lines, refused
 * assert.throws(
 *   () => inferTable(["id;path;qty\r\n1;C:\\in;5\r\n2;D:\\out;7\r\n"], { names: ["f.csv"] }),
 *   /^Error: "f\.csv": every line is one CSV field holding 2 ";": its fields look separated by ";"/,
 * );
 * assert.equal(inferTable(["note\nsee: a;b\nok\n"]).columns.length, 1); // a semicolon in one value
 * ```
 * @throws Error when the files' headers differ, a file read as one column was written with another separator, a JSON line is not an object, no sample holds a complete
 * line, or the format is parquet (whose columns must be given).
 */
export function inferTable(samples: readonly string[], options: InferOptions = {}): InferredTable {
  const format = options.format ?? "csv";
  const files = samples.map((text, index) => ({
    name: options.names?.[index] ?? `file ${index + 1}`,
    text,
    wholeFile: options.wholeFiles?.[index] ?? false,
  }));
  const limits = {
    maxRows: options.maxRows ?? DEFAULT_MAX_ROWS,
    maxNameLength: options.maxNameLength,
    athena: options.target === "athena",
  };
  switch (format) {
    case "csv":
    case "tsv":
      return inferDelimited(files, {
        format,
        delimiter: options.delimiter ?? (format === "tsv" ? "\t" : ","),
        header: options.header ?? true,
        ...limits,
      });
    case "json":
      return inferJsonLines(files, limits);
    case "parquet":
      throw new Error(
        "parquet tables need `columns` (a name and type for each column): " +
          "lakerun does not infer them from parquet files",
      );
    default:
      throw new Error(`unknown format ${JSON.stringify(format)}: expected csv, tsv, json or parquet`);
  }
}

/**
 * The type one text value suggests on its own, or `undefined` when it is empty (empty values decide nothing).
 * The column type also depends on the other values: see {@link inferTable}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inferValueType } from "./infer.ts";
 *
 * assert.equal(inferValueType("-42"), "bigint");
 * assert.equal(inferValueType("00123"), "string"); // leading zeros: a code, not a number
 * assert.equal(inferValueType("9223372036854775808"), "string"); // beyond int64
 * assert.equal(inferValueType("-2e3"), "double");
 * assert.equal(inferValueType("0.30000000000000004"), "double"); // a double's own output
 * assert.equal(inferValueType("12345678901234567.25"), "string"); // a double would round it
 * assert.equal(inferValueType("9007199254740993"), "bigint"); // beyond a double, within int64
 * assert.equal(inferValueType("TRUE"), "boolean");
 * assert.equal(inferValueType("2020-02-29"), "date");
 * assert.equal(inferValueType("2021-02-29"), "string"); // not a real day
 * assert.equal(inferValueType("2020-09-30 12:00:00.5"), "timestamp");
 * assert.equal(inferValueType("2020-09-30T12:00:00Z"), "string"); // Hive's text SerDe cannot read it
 * assert.equal(inferValueType(""), undefined);
 * ```
 */
export function inferValueType(value: string): ColumnType | undefined {
  const kind = textKind(value);
  if (kind === "empty") return undefined;
  return TYPED.find((type) => ACCEPTED_KINDS[type].includes(kind)) ?? "string";
}

/**
 * Whether a column inferred as `type` holds the value in `bytes[start, end)` (UTF-8; a CSV field with its
 * quotes undone) as it is: the value is empty, or one inference types so (an integer in a double column
 * too). Every value fits a string column. (For many values of one column, {@link fitsType} is faster.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { valueFits } from "./infer.ts";
 *
 * const bytes = (text: string) => new TextEncoder().encode(text);
 * assert.equal(valueFits("bigint", bytes("2134")), true);
 * assert.equal(valueFits("bigint", bytes("02134")), false); // PostgreSQL would load 2134
 * assert.equal(valueFits("bigint", bytes(" 5")), false);
 * assert.equal(valueFits("double", bytes("5")), true);
 * assert.equal(valueFits("boolean", bytes("1")), false);
 * assert.equal(valueFits("date", bytes("")), true); // NULL
 * assert.equal(valueFits("string", bytes("02134")), true);
 * const field = bytes('7,"2020-01-31",x');
 * assert.equal(valueFits("date", field, 3, 13), true); // a part of a larger buffer
 * ```
 */
export function valueFits(type: ColumnType, bytes: Uint8Array, start = 0, end = bytes.length): boolean {
  return fitsType(type)(bytes, start, end);
}

/**
 * {@link valueFits} for one `type`: a function of the value's bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fitsType } from "./infer.ts";
 *
 * const fitsBigint = fitsType("bigint");
 * const line = new TextEncoder().encode("12,02134");
 * assert.equal(fitsBigint(line, 0, 2), true);
 * assert.equal(fitsBigint(line, 3, 8), false);
 * ```
 */
export function fitsType(type: ColumnType): (bytes: Uint8Array, start: number, end: number) => boolean {
  if (type === "string") return () => true;
  const kinds = ACCEPTED_KINDS[type];
  if (kinds.length > 2) return (bytes, start, end) => holdsKind(kinds, valueKind(bytes, start, end));
  const [first, second = first] = kinds;
  return (bytes, start, end) => {
    const kind = valueKind(bytes, start, end);
    return kind === first || kind === second || kind === "empty";
  };
}

/** Whether a column whose type accepts `kinds` holds a value of `kind` (an empty one loads NULL). */
function holdsKind(kinds: readonly ValueKind[], kind: ValueKind): boolean {
  return kind === "empty" || kinds.includes(kind);
}

/**
 * Whether a column inferred as `type` holds a value of a JSON line (as `parseJsonKeepingNumbers` reads it)
 * as it is: `null`, `""`, or a value inference types so.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonValueFits } from "./infer.ts";
 * import { JsonNumber } from "./json_numbers.ts";
 *
 * assert.equal(jsonValueFits("bigint", new JsonNumber("42")), true);
 * assert.equal(jsonValueFits("bigint", "42"), false); // a JSON string is text to inference
 * assert.equal(jsonValueFits("date", "2020-01-31"), true);
 * assert.equal(jsonValueFits("boolean", null), true);
 * ```
 */
export function jsonValueFits(type: ColumnType, value: unknown): boolean {
  if (type === "string" || value === undefined) return true;
  return holdsKind(ACCEPTED_KINDS[type], jsonKind(value));
}

// ---------------------------------------------------------------------------------------------------------
// Evidence per column, and the type it decides.

/** What the sampled values of one column looked like: each kind seen with its first example. */
class ColumnEvidence {
  readonly examples = new Map<ValueKind, string>();
  emptyValues = false;
  backslashExample: string | undefined;

  add(kind: ValueKind, example: string): void {
    if (kind === "empty") this.emptyValues = true;
    else if (!this.examples.has(kind)) this.examples.set(kind, example);
  }

  /** The column's type, and sentences explaining it when it is not what a single value would suggest. */
  decide(column: string, athena: boolean): { type: ColumnType; reasons: string[] } {
    const kinds = new Set(this.examples.keys());
    if (kinds.size === 0) {
      return {
        type: "string",
        reasons: [`column ${column}: every sampled value is empty, so it is a string`],
      };
    }
    for (const type of TYPED) {
      if ([...kinds].every((kind) => ACCEPTED_KINDS[type].includes(kind))) return { type, reasons: [] };
    }
    return { type: "string", reasons: this.#stringReasons(column, athena) };
  }

  #stringReasons(column: string, athena: boolean): string[] {
    // the types the values suggest, each with an example (an integer too long for a double suggests bigint)
    const suggested = new Map<ColumnType, string>();
    for (const [kind, example] of this.examples) {
      const type = kind === "longInteger" ? "bigint" : kind;
      if (isColumnType(type) && !suggested.has(type)) suggested.set(type, example);
    }
    // integers and decimals make a double column; one that a double cannot hold is explained below
    if (suggested.has("bigint") && suggested.has("double")) suggested.delete("bigint");
    const reasons: string[] = [];
    if (!suggested.has("string")) {
      for (const [kind, example] of this.examples) {
        const explain = STRING_BECAUSE[kind as keyof typeof STRING_BECAUSE];
        if (explain) reasons.push(`column ${column}: ${explain(show(example), athena, example)}`);
      }
      const long = this.examples.get("longInteger");
      const decimal = this.examples.get("double");
      if (long !== undefined && decimal !== undefined) {
        reasons.push(
          `column ${column}: ${show(long)} is an integer a double cannot hold (it would read back as ` +
            `${Number(long)}), and values like ${show(decimal)} need a double; kept as a string`,
        );
      }
    }
    if (suggested.size > 1) {
      const seen = [...suggested].map(([type, example]) => `${type} (${show(example)})`).join(" and ");
      reasons.push(`column ${column}: mixes ${seen}, so it is a string`);
    }
    return reasons;
  }
}

/** The typed column types, in the order {@link ColumnEvidence.decide} tries them. */
const TYPED = ["bigint", "double", "boolean", "date", "timestamp"] as const;

/**
 * The value kinds a column of each type holds as they are: a column gets the first type of {@link TYPED} that holds every kind its values have (empty values
 * aside), else it is a string.
 */
const ACCEPTED_KINDS: Record<typeof TYPED[number], readonly ValueKind[]> = {
  bigint: ["bigint", "longInteger"],
  double: ["double", "bigint"],
  boolean: ["boolean"],
  date: ["date"],
  timestamp: ["timestamp"],
};

const STRING_BECAUSE = {
  padded: (example: string) =>
    example.startsWith("+") || example.startsWith('"+')
      ? `values like ${example} start with a +; kept as a string so they keep it`
      : `values like ${example} have leading zeros; kept as a string so they keep them`,
  outOfRange: (example: string) => `${example} does not fit a 64-bit integer or a double; kept as a string`,
  inexact: (example: string, _athena: boolean, value: string) =>
    `a double would not keep ${example} as written (it would read back as ${
      Number(value)
    }); kept as a string`,
  iso: (example: string, athena: boolean) =>
    athena
      ? `values like ${example} are ISO-8601 timestamps, which Hive's text SerDes cannot read as TIMESTAMP ` +
        `(they read "yyyy-MM-dd HH:mm:ss[.fff]"); kept as a string (use from_iso8601_timestamp() in queries)`
      : `values like ${example} are ISO-8601 timestamps; kept as a string (give \`columns\` to declare a ` +
        `timestamp type)`,
  badDate: (example: string) => `${example} is not a valid date or time; kept as a string`,
  fineTimestamp: (example: string) =>
    `values like ${example} have more than 6 fraction digits, which PostgreSQL and Redshift round to ` +
    `microseconds; kept as a string so they keep every digit`,
  nested: (example: string, athena: boolean) =>
    `holds nested JSON (${example}); declared string, which holds its JSON text${
      athena ? " (give `columns` with struct/array types to query inside it)" : ""
    }`,
};

/** A value for a message: quoted, escaped, and cut to a readable length. */
function show(value: string): string {
  const text = JSON.stringify(value);
  return text.length > 42 ? `${text.slice(0, 40)}…"` : text;
}

function decideColumns(
  sources: string[],
  evidence: ColumnEvidence[],
  { maxNameLength, athena }: SampleLimits,
  quoted?: boolean,
): { columns: InferredColumn[]; reasons: string[] } {
  const names = columnIdentifiers(sources, { maxLength: maxNameLength });
  const reasons = namingReasons(sources, names);
  const columns = names.map((name, index) => {
    const decided = evidence[index].decide(name, athena);
    reasons.push(...decided.reasons);
    const backslash = evidence[index].backslashExample;
    if (backslash !== undefined && athena) reasons.push(backslashReason(name, backslash, quoted));
    const { emptyValues, examples } = evidence[index];
    return { name, source: sources[index], type: decided.type, emptyValues, onlyEmpty: examples.size === 0 };
  });
  return { columns, reasons };
}

function backslashReason(column: string, example: string, quoted = true): string {
  // unquoted files get a LazySimpleSerDe table without ESCAPED BY (lib/tables/ddl.ts): backslashes stay
  const what = quoted
    ? "which OpenCSVSerde (quoted fields) reads as escape characters (its escape character is \\)"
    : "read as they are (the table gets no ESCAPED BY)";
  return `column ${column}: values like ${show(example)} hold backslashes, ${what}`;
}

/** Explains each renamed column; names that only changed case are summed up in one sentence. */
function namingReasons(sources: string[], names: string[]): string[] {
  const reasons: string[] = [];
  let lowercased: string | undefined;
  names.forEach((name, index) => {
    const source = sources[index];
    if (source === "" || name === source) return;
    if (name === source.toLowerCase()) lowercased ??= `${show(source)} → ${name}`;
    else reasons.push(`column ${index + 1} ${show(source)} is named ${name}`);
  });
  if (lowercased) reasons.push(`column names are lowercased (e.g. ${lowercased})`);
  return reasons;
}

// ---------------------------------------------------------------------------------------------------------
// CSV and TSV.

interface SampledFile {
  name: string;
  text: string;
  wholeFile: boolean;
}

interface SampleLimits {
  maxRows: number;
  maxNameLength: number | undefined;
  /** The table is for Athena: its SerDes' ways are worth a reason. */
  athena: boolean;
}

interface DelimitedSettings extends SampleLimits {
  format: "csv" | "tsv";
  delimiter: string;
  header: boolean;
}

interface ParsedFile {
  name: string;
  records: SampleRecord[];
}

function inferDelimited(files: SampledFile[], settings: DelimitedSettings): InferredTable {
  const { delimiter, header } = settings;
  const reasons: string[] = [];
  const parsed = parseFiles(files, settings, reasons);
  if (header) checkSameHeaders(parsed);
  const dataRecords = parsed.map((file) => ({
    name: file.name,
    records: header ? file.records.slice(1) : file.records,
  }));
  const width = header
    ? parsed[0].records[0].fields.length
    : Math.max(...dataRecords.flatMap((f) => f.records.map((r) => r.fields.length)), 1);
  if (width === 1) refuseOtherDelimiter(parsed[0], settings);
  const sources = header ? parsed[0].records[0].fields : Array<string>(width).fill("");
  if (!header) reasons.push(`no header line: the columns are named col_1 … col_${width}`);
  if (header) reasons.push(...headerWarnings(parsed[0], settings.athena));
  const evidence = sources.map(() => new ColumnEvidence());
  for (const file of dataRecords) {
    reasons.push(...widthWarnings(file, width, header, settings.athena));
    for (const record of file.records) addRecordEvidence(record, evidence);
  }
  const quoting = quotingReasons(parsed, dataRecords, settings);
  if (settings.athena) reasons.push(...quoting.reasons);
  const decided = decideColumns(sources, evidence, settings, quoting.quoted);
  return {
    format: settings.format,
    columns: decided.columns,
    quoted: quoting.quoted,
    header,
    delimiter,
    backslashes: evidence.some((column) => column.backslashExample !== undefined),
    reasons: [...reasons, ...decided.reasons],
  };
}

/** Field separators files are written with, besides the one the format reads. */
const OTHER_DELIMITERS = [";", "|", "\t", ","];

/**
 * A file read as one column whose every sampled line (header included) holds the same other separator (`;`,
 * `|`, a tab) the same number of times was written with that separator: a table of one column over it would
 * load each line as one value. Refused, naming the file and the separator.
 */
function refuseOtherDelimiter(file: ParsedFile, { delimiter, format }: DelimitedSettings): void {
  const lines = file.records.slice(0, 20).map((record) => record.fields[0] ?? "");
  if (lines.length === 0) return;
  for (const other of OTHER_DELIMITERS) {
    if (other === delimiter) continue;
    const count = lines[0].split(other).length - 1;
    if (count > 0 && lines.every((line) => line.split(other).length - 1 === count)) {
      throw new Error(
        `${show(file.name)}: every line is one ${format.toUpperCase()} field holding ${count} ${
          show(other)
        }: ` +
          `its fields look separated by ${show(other)}, and format ${format} splits at ${show(delimiter)} ` +
          `only; give the files as CSV (split at ",") or TSV (tabs, format: "tsv")`,
      );
    }
  }
}

function parseFiles(files: SampledFile[], settings: DelimitedSettings, reasons: string[]): ParsedFile[] {
  const parsed: ParsedFile[] = [];
  for (const file of files) {
    if (file.text.replace(/^\uFEFF/, "").trim() === "") {
      reasons.push(`${show(file.name)} is empty; it decides nothing`);
      continue;
    }
    let sample;
    try {
      sample = parseDelimitedSample(file.text, {
        delimiter: settings.delimiter,
        maxRows: settings.maxRows + (settings.header ? 1 : 0),
        wholeFile: file.wholeFile,
      });
    } catch (error) {
      throw new Error(`${file.name}: ${(error as Error).message}`, { cause: error });
    }
    if (sample.records.length === 0) {
      const sampled = `the sample of ${show(file.name)} (${file.text.length} characters)`;
      throw new Error(`${sampled} holds no complete line; read a larger sample`);
    }
    parsed.push({ name: file.name, records: sample.records });
  }
  if (parsed.length === 0) {
    throw new Error("every sampled file is empty: there is nothing to infer columns from");
  }
  return parsed;
}

function checkSameHeaders(files: ParsedFile[]): void {
  const first = files[0];
  const firstHeader = JSON.stringify(first.records[0].fields);
  for (const file of files.slice(1)) {
    const header = JSON.stringify(file.records[0].fields);
    if (header === firstHeader) continue;
    const sameSet = JSON.stringify([...first.records[0].fields].sort()) ===
      JSON.stringify([...file.records[0].fields].sort());
    throw new Error(
      `the files have different headers${sameSet ? " (the same columns in another order)" : ""}: ` +
        `${show(first.name)} has ${firstHeader} but ${show(file.name)} has ${header}`,
    );
  }
}

function headerWarnings(file: ParsedFile, athena: boolean): string[] {
  const [headerRecord] = file.records;
  const warnings: string[] = [];
  if (headerRecord.lines > 1 && athena) {
    warnings.push(
      `the header of ${show(file.name)} spans ${headerRecord.lines} lines (a quoted line break); ` +
        `Athena skips header lines, not records, so its rest would read as data`,
    );
  }
  const typed = headerRecord.fields.filter((field) =>
    ["bigint", "double", "date", "timestamp"].includes(textKind(field))
  );
  if (typed.length > 0 && typed.length === headerRecord.fields.length) {
    warnings.push(
      `the first line of ${show(file.name)} looks like data (${typed.slice(0, 3).map(show).join(", ")}); ` +
        `pass header: false if the files have no header line`,
    );
  }
  return warnings;
}

function widthWarnings(file: ParsedFile, width: number, header: boolean, athena: boolean): string[] {
  const odd = file.records.find((record) => record.fields.length !== width);
  if (!odd) return [];
  const what = header ? "the header has" : "the widest line has";
  const effect = !athena
    ? ""
    : odd.fields.length > width
    ? "; Athena ignores the extra fields"
    : "; missing fields read as NULL";
  return [
    `${show(file.name)} line ${odd.line} has ${odd.fields.length} fields where ${what} ${width}${effect}`,
  ];
}

function addRecordEvidence(record: SampleRecord, evidence: ColumnEvidence[]): void {
  evidence.forEach((column, index) => {
    const value = record.fields[index] ?? "";
    column.add(textKind(value), value);
    if (column.backslashExample === undefined && value.includes("\\")) column.backslashExample = value;
  });
}

/** Whether data lines are quoted (which decides the SerDe), and what the log should say about it. */
function quotingReasons(
  files: ParsedFile[],
  dataFiles: ParsedFile[],
  { delimiter, header }: DelimitedSettings,
): { quoted: boolean; reasons: string[] } {
  const reasons: string[] = [];
  const firstQuoted = firstRecord(dataFiles, (record) => record.quoted);
  const firstNeeded = firstRecord(dataFiles, (record) => record.quotesNeeded);
  if (firstNeeded) {
    const what = `quoted fields hold the delimiter ${show(delimiter)}, quotes or line breaks`;
    reasons.push(`${what} (first at ${where(firstNeeded)}), so the table needs a quote-aware SerDe`);
  } else if (firstQuoted) {
    reasons.push(
      `fields are written in quotes (first at ${where(firstQuoted)}); a quote-aware SerDe removes them`,
    );
  } else if (header && files.some((file) => file.records[0].quoted)) {
    reasons.push("only the header line is quoted; it is skipped, so the data needs no quote-aware SerDe");
  }
  const multiline = firstRecord(dataFiles, (record) => record.lines > 1);
  if (multiline) {
    const effect = "Athena reads text files line by line, so such rows will be split";
    reasons.push(`${where(multiline)}: a quoted field holds a line break; ${effect}`);
  }
  return { quoted: firstQuoted !== undefined, reasons };
}

interface FoundRecord {
  file: string;
  record: SampleRecord;
}

function where(found: FoundRecord): string {
  return `${show(found.file)} line ${found.record.line}`;
}

function firstRecord(
  files: ParsedFile[],
  test: (record: SampleRecord) => boolean,
): FoundRecord | undefined {
  for (const file of files) {
    const record = file.records.find(test);
    if (record) return { file: file.name, record };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Newline-delimited JSON.

function inferJsonLines(files: SampledFile[], limits: SampleLimits): InferredTable {
  const reasons: string[] = [];
  const evidence = new Map<string, ColumnEvidence>();
  let sampled = 0;
  for (const file of files) {
    const objects = jsonObjects(file, limits.maxRows);
    if (objects.length === 0) {
      reasons.push(`${show(file.name)} holds no complete JSON line; it decides nothing`);
      continue;
    }
    sampled++;
    for (const object of objects) {
      for (const [key, value] of Object.entries(object)) {
        if (!evidence.has(key)) evidence.set(key, new ColumnEvidence());
        evidence.get(key)!.add(jsonKind(value), jsonExample(value));
      }
    }
  }
  if (sampled === 0) {
    throw new Error("no sampled file holds a complete JSON line: there is nothing to infer columns from");
  }
  const decided = decideColumns([...evidence.keys()], [...evidence.values()], limits);
  return {
    format: "json",
    columns: decided.columns,
    quoted: false,
    header: false,
    delimiter: undefined,
    reasons: [...reasons, ...decided.reasons],
  };
}

function jsonObjects(file: SampledFile, maxRows: number): Record<string, unknown>[] {
  const text = file.text.replace(/^\uFEFF/, "");
  const lines = text.split("\n");
  if (!file.wholeFile) lines.pop(); // after the last line break: a line the sample may have cut
  const objects: Record<string, unknown>[] = [];
  for (let index = 0; index < lines.length && objects.length < maxRows; index++) {
    const line = lines[index].replace(/\r$/, "");
    if (line.trim() === "") continue;
    objects.push(parseJsonLine(line, `${show(file.name)} line ${index + 1}`));
  }
  return objects;
}

function parseJsonLine(line: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseJsonKeepingNumbers(line);
  } catch (error) {
    throw new Error(
      `${where} is not a JSON value on one line (the files must be newline-delimited JSON): ${
        (error as Error).message
      }`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof JsonNumber) {
    throw new Error(
      `${where} holds ${show(JSON.stringify(value))}, not an object: each line must be one JSON object`,
    );
  }
  return value as Record<string, unknown>;
}

function jsonExample(value: unknown): string {
  if (typeof value === "string") return value;
  return value instanceof JsonNumber ? value.source : JSON.stringify(value);
}

function jsonKind(value: unknown): ValueKind {
  if (value === null || value === "") return "empty";
  if (value instanceof JsonNumber) return textKind(value.source);
  if (typeof value === "boolean") return "boolean";
  if (typeof value === "object") return "nested";
  const kind = textKind(String(value));
  return ["date", "timestamp", "fineTimestamp", "iso", "badDate"].includes(kind) ? kind : "string";
}
