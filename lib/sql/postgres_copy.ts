/**
 * The `COPY … FROM STDIN` statement a PostgreSQL load streams each file through, every file as CSV (JSON and
 * parquet are written as CSV on the way).
 *
 * A CSV field `""` (quoted, empty) is what Python's `csv.QUOTE_ALL` and pandas' `quoting=ALL` write for a
 * missing value. Column inference (`lib/tables/infer.ts`) reads it, like an unquoted empty field, as an empty
 * value that decides nothing; PostgreSQL's CSV COPY reads it as the empty string, which a bigint, date or
 * boolean column refuses. So the statement names the columns that cannot hold an empty string in
 * `FORCE_NULL`: there `""` loads NULL, as the unquoted empty field does, and what was an error agrees with
 * inference. Text columns (and any type that can hold an empty value, or that lakerun does not know) keep
 * `""` as the empty string.
 *
 * @module
 */
import { quoteIdentifier } from "../tables/identifiers.ts";

/** What {@link copyFromStdinSql} needs. */
export interface CopyFromStdinSpec {
  /** The table COPY fills, already quoted (`"lakerun_staging"`, `"schema"."table"`). */
  table: string;
  /** The columns the CSV fields fill, in field order. */
  columns: readonly string[];
  /** The first line is a header (skipped). */
  header: boolean;
  /** The table's columns with their types as `format_type` writes them (`bigint`, `character varying(5)`). */
  types: readonly { name: string; type: string }[];
}

/**
 * `COPY table (columns) FROM STDIN (FORMAT csv, …)`, with `FORCE_NULL` for the columns filled whose type
 * cannot hold an empty string (see {@link emptyIsNoValue}). Every name is quoted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyFromStdinSql } from "./postgres_copy.ts";
 *
 * const types = [
 *   { name: "id", type: "bigint" },
 *   { name: "note", type: "text" },
 *   { name: "Day", type: "date" },
 * ];
 * assert.equal(
 *   copyFromStdinSql({ table: '"public"."t"', columns: ["note", "Day", "id"], header: true, types }),
 *   'COPY "public"."t" ("note", "Day", "id") FROM STDIN (FORMAT csv, HEADER true, FORCE_NULL ("Day", "id"))',
 * );
 * assert.equal(
 *   copyFromStdinSql({ table: '"t"', columns: ["note"], header: false, types }),
 *   'COPY "t" ("note") FROM STDIN (FORMAT csv)',
 * );
 * ```
 * @throws Error for an empty column name or one holding a NUL character.
 */
export function copyFromStdinSql(spec: CopyFromStdinSpec): string {
  const types = new Map(spec.types.map((column) => [column.name, column.type]));
  const quote = (names: readonly string[]) =>
    names.map((name) => quoteIdentifier(name, "postgres")).join(", ");
  const forceNull = spec.columns.filter((name) => {
    const type = types.get(name);
    return type !== undefined && emptyIsNoValue(type);
  });
  const options = [
    "FORMAT csv",
    ...(spec.header ? ["HEADER true"] : []),
    ...(forceNull.length > 0 ? [`FORCE_NULL (${quote(forceNull)})`] : []),
  ];
  return `COPY ${spec.table} (${quote(spec.columns)}) FROM STDIN (${options.join(", ")})`;
}

/** Built-in types whose input refuses the empty string, by their `format_type` name without `(…)`. */
const NO_EMPTY_VALUE = new Set([
  "smallint",
  "integer",
  "bigint",
  "real",
  "double precision",
  "numeric",
  "money",
  "boolean",
  "date",
  "time without time zone",
  "time with time zone",
  "timestamp without time zone",
  "timestamp with time zone",
  "interval",
  "json",
  "jsonb",
  "uuid",
  "inet",
  "cidr",
  "macaddr",
  "macaddr8",
  "oid",
]);

/**
 * Whether a column of `type` (as `format_type` writes it) can never hold the empty string, so that loading
 * `""` as NULL there only turns an error into NULL: numbers, booleans, dates and times, json, uuid, network
 * addresses, and arrays. False for text types, `bytea`, and types lakerun does not know (enums, domains, …).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emptyIsNoValue } from "./postgres_copy.ts";
 *
 * assert.equal(emptyIsNoValue("numeric(10,2)"), true);
 * assert.equal(emptyIsNoValue("timestamp(3) with time zone"), true);
 * assert.equal(emptyIsNoValue("text[]"), true); // an array is written {…}
 * assert.equal(emptyIsNoValue("character varying(20)"), false);
 * assert.equal(emptyIsNoValue("bytea"), false); // "" is the empty byte string
 * ```
 */
export function emptyIsNoValue(type: string): boolean {
  if (type.endsWith("]")) return true;
  return NO_EMPTY_VALUE.has(type.replace(/\(\d+(?:,\d+)?\)/, ""));
}
