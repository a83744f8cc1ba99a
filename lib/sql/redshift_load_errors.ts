/**
 * A failed Redshift COPY explained: Redshift answers only "Load into table 'x' failed. Check
 * 'stl_load_errors' system table for details." This module writes the query that reads those details (from
 * `sys_load_error_detail`, which provisioned clusters and Serverless both have, else from the older
 * `stl_load_errors`), and turns its rows into a message naming the file, the line, the column, the raw value
 * and Redshift's reason:
 *
 * ```
 * COPY into "raw"."sales" failed: s3://lake/staging/sales/q2.csv line 3, column "amount" (numeric(12,2)),
 *   raw value "12.5x": Invalid digit, Value 'x', Pos 4, Type: Decimal (error 1207)
 * ```
 *
 * (one line in reality). The rows are picked by the files' prefix (the COPY's `source`) and by time (errors
 * logged since the statement started), so an older failed load of the same files is not reported again.
 *
 * @module
 */
import { quoteLiteral } from "../tables/identifiers.ts";

/** The system tables that record load errors. */
export type LoadErrorTable = "sys_load_error_detail" | "stl_load_errors";

/** One load error, as the query of {@link loadErrorsSql} returns it. */
export interface LoadErrorDetail {
  /** The S3 URL of the file. */
  file: string;
  /** The line of the file (header lines counted), when known. */
  line?: number;
  column?: string;
  /** The column's type, e.g. `numeric(12,2)`. */
  columnType?: string;
  /** The value that failed, as read from the file. */
  rawValue?: string;
  /** Redshift's reason, e.g. `Invalid digit, Value 'x', Pos 4, Type: Decimal`. */
  reason: string;
  /** Redshift's load error code (1207: invalid digit, 1214: delimiter not found, …). */
  code?: number;
}

/** The words Redshift uses when a COPY failed on the data rather than on access or syntax. */
const LOAD_FAILURE = /load into table .* failed|stl_load_errors|sys_load_error_detail/i;

/**
 * True when a COPY's error message says the data was at fault (the details are then in the load-error
 * tables): "Load into table 'x' failed. Check 'stl_load_errors' system table for details."
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoadFailure } from "./redshift_load_errors.ts";
 *
 * assert.ok(isLoadFailure("Load into table 'sales' failed.  Check 'stl_load_errors' system table for details."));
 * assert.ok(!isLoadFailure("S3ServiceException:Access Denied,Status 403"));
 * ```
 */
export function isLoadFailure(message: string): boolean {
  return LOAD_FAILURE.test(message);
}

/** Options of {@link loadErrorsSql}. */
export interface LoadErrorsQuery {
  /** The COPY's `source` (`s3://bucket/prefix`): only errors in files under it. */
  source: string;
  /** When the COPY started (by the server's clock when known): only errors logged since. */
  since: Date;
  /** Rows to read. Default 5. */
  limit?: number;
  /** Default `sys_load_error_detail`. */
  table?: LoadErrorTable;
  /**
   * Only errors of this session: a Redshift process id (the Data API's `RedshiftPid`), or `current` for the
   * session running the query (`pg_backend_pid()`, on the wire after a ROLLBACK).
   */
  session?: number | "current";
}

/**
 * The query reading the latest load errors for files under `source`, newest load first, with the columns
 * {@link loadErrorsFromRows} reads (`file`, `line_number`, `column_name`, `column_type`, `raw_value`,
 * `reason`, `error_code`). Text columns are trimmed: the system tables pad them with blanks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadErrorsSql } from "./redshift_load_errors.ts";
 *
 * assert.equal(
 *   loadErrorsSql({ source: "s3://lake/p/", since: new Date("2024-07-01T10:00:00Z"), limit: 3 }),
 *   "SELECT TRIM(file_name) AS file, line_number, TRIM(column_name) AS column_name, " +
 *     "TRIM(column_type) AS column_type, TRIM(raw_field_value) AS raw_value, TRIM(error_message) AS reason, " +
 *     "error_code FROM sys_load_error_detail WHERE STRPOS(file_name, 's3://lake/p/') = 1 " +
 *     "AND start_time >= TIMESTAMP '2024-07-01 10:00:00' ORDER BY start_time DESC, line_number LIMIT 3",
 * );
 * const stl = loadErrorsSql({ source: "s3://lake/p/", since: new Date(0), table: "stl_load_errors", session: "current" });
 * assert.match(stl, /FROM stl_load_errors WHERE STRPOS\(filename, 's3:\/\/lake\/p\/'\) = 1 AND starttime >= TIMESTAMP '1970-01-01 00:00:00' AND session = pg_backend_pid\(\)/);
 * ```
 */
export function loadErrorsSql(query: LoadErrorsQuery): string {
  const limit = query.limit ?? 5;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new Error(`limit must be a positive integer, not ${limit}`);
  }
  const since = query.since.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, "");
  const source = quoteLiteral(query.source, "redshift");
  const stl = query.table === "stl_load_errors";
  const [file, line, column, type, raw, reason, code, time] = stl
    ? ["filename", "line_number", "colname", "type", "raw_field_value", "err_reason", "err_code", "starttime"]
    : [
      "file_name",
      "line_number",
      "column_name",
      "column_type",
      "raw_field_value",
      "error_message",
      "error_code",
      "start_time",
    ];
  return `SELECT TRIM(${file}) AS file, ${line}${line === "line_number" ? "" : " AS line_number"}, ` +
    `TRIM(${column}) AS column_name, TRIM(${type}) AS column_type, TRIM(${raw}) AS raw_value, ` +
    `TRIM(${reason}) AS reason, ${code}${code === "error_code" ? "" : " AS error_code"} ` +
    `FROM ${query.table ?? "sys_load_error_detail"} WHERE STRPOS(${file}, ${source}) = 1 ` +
    `AND ${time} >= TIMESTAMP '${since}'${sessionFilter(query.session, stl)} ` +
    `ORDER BY ${time} DESC, ${line} LIMIT ${limit}`;
}

function sessionFilter(session: number | "current" | undefined, stl: boolean): string {
  if (session === undefined) return "";
  const value = session === "current" ? "pg_backend_pid()" : String(session);
  if (session !== "current" && !Number.isInteger(session)) {
    throw new Error(`session must be a process id, not ${session}`);
  }
  return ` AND ${stl ? "session" : "session_id"} = ${value}`;
}

/**
 * The rows of {@link loadErrorsSql}'s query (objects keyed by column name, values as text or numbers) as
 * {@link LoadErrorDetail}s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadErrorsFromRows } from "./redshift_load_errors.ts";
 *
 * assert.deepEqual(
 *   loadErrorsFromRows([{ file: "s3://b/a.csv", line_number: "3", column_name: "n", column_type: "int4",
 *     raw_value: "x", reason: "Invalid digit", error_code: 1207 }]),
 *   [{ file: "s3://b/a.csv", line: 3, column: "n", columnType: "int4", rawValue: "x", reason: "Invalid digit", code: 1207 }],
 * );
 * ```
 */
export function loadErrorsFromRows(rows: readonly Record<string, unknown>[]): LoadErrorDetail[] {
  const text = (value: unknown) =>
    value === null || value === undefined || String(value).trim() === "" ? undefined : String(value).trim();
  const int = (value: unknown) => {
    const n = Number(text(value));
    return text(value) !== undefined && Number.isInteger(n) ? n : undefined;
  };
  return rows.map((row) => {
    const detail: LoadErrorDetail = {
      file: text(row.file) ?? "(unknown file)",
      reason: text(row.reason) ?? "",
    };
    const line = int(row.line_number);
    if (line !== undefined) detail.line = line;
    const column = text(row.column_name);
    if (column !== undefined) detail.column = column;
    const type = text(row.column_type);
    if (type !== undefined) detail.columnType = type;
    // a raw value is data: blanks are kept, only a missing value is left out
    if (row.raw_value !== null && row.raw_value !== undefined) detail.rawValue = String(row.raw_value);
    const code = int(row.error_code);
    if (code !== undefined) detail.code = code;
    return detail;
  });
}

/** The longest raw value shown in a message. */
const MAX_RAW_VALUE = 200;

/**
 * One load error as a phrase: `s3://b/a.csv line 3, column "n" (int4), raw value "x": Invalid digit (error
 * 1207)`; the raw value passes through `mask` (the step's secrets) before a long one is cut.
 *
 * @example A secret at the cut is masked whole
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeLoadError } from "./redshift_load_errors.ts";
 *
 * const error = { file: "s3://b/a.csv", line: 2, rawValue: `${"x".repeat(195)}Tok3n-Value-xyz`, reason: "too long" };
 * const mask = (text: string) => text.replaceAll("Tok3n-Value-xyz", "***");
 * assert.equal(describeLoadError(error, mask), `s3://b/a.csv line 2, raw value "${"x".repeat(195)}***": too long`);
 * assert.match(describeLoadError(error), /"x{195}Tok3n…": too long$/); // without it, part of the secret shows
 * ```
 */
export function describeLoadError(
  error: LoadErrorDetail,
  mask: (text: string) => string = (text) => text,
): string {
  let where = error.file;
  if (error.line !== undefined) where += ` line ${error.line}`;
  if (error.column !== undefined) {
    where += `, column ${JSON.stringify(error.column)}${error.columnType ? ` (${error.columnType})` : ""}`;
  }
  if (error.rawValue !== undefined) {
    // masked before the cut: a secret cut in two is no longer recognised
    const value = mask(error.rawValue);
    const raw = value.length > MAX_RAW_VALUE ? `${value.slice(0, MAX_RAW_VALUE)}…` : value;
    where += `, raw value ${JSON.stringify(raw)}`;
  }
  const reason = error.reason || "no reason recorded";
  return `${where}: ${reason}${error.code !== undefined ? ` (error ${error.code})` : ""}`;
}

/**
 * The message for a failed COPY into `table` (as written in SQL): each load error on its own line, or, when
 * none was found, Redshift's own message with a note saying so.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadFailureMessage } from "./redshift_load_errors.ts";
 *
 * assert.equal(
 *   loadFailureMessage('"raw"."sales"', "Load into table 'sales' failed.", [
 *     { file: "s3://b/a.csv", line: 3, column: "n", columnType: "int4", rawValue: "x", reason: "Invalid digit", code: 1207 },
 *   ]),
 *   'COPY into "raw"."sales" failed: s3://b/a.csv line 3, column "n" (int4), raw value "x": Invalid digit (error 1207)',
 * );
 * ```
 */
export function loadFailureMessage(
  table: string,
  original: string,
  errors: readonly LoadErrorDetail[],
  mask?: (text: string) => string,
): string {
  if (errors.length === 0) {
    return `COPY into ${table} failed: ${original} (no load error details were found for its files)`;
  }
  if (errors.length === 1) return `COPY into ${table} failed: ${describeLoadError(errors[0], mask)}`;
  return [
    `COPY into ${table} failed on ${errors.length} values:`,
    ...errors.map((error) => `  - ${describeLoadError(error, mask)}`),
  ].join("\n");
}
