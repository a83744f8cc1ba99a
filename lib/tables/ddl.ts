/**
 * The DDL lakerun runs: CREATE EXTERNAL TABLE and ADD PARTITION for Athena, CREATE TABLE for PostgreSQL and
 * Redshift, and the comparison of an existing table with the staged files (schema drift).
 *
 * Every name and string in the SQL goes through `quoteIdentifier`/`quoteLiteral`, and every column type is
 * parsed and written back from the parse, so no text from params or files reaches the SQL unquoted.
 *
 * @module
 */

import { percentDecoded } from "../http/request.ts";
import { quoteIdentifier, quoteLiteral } from "./identifiers.ts";
import type { ColumnType, InferTarget, TableFormat } from "./infer.ts";
import { sqlColumnType, sqlTypeProblem } from "./sql_types.ts";

/** A column to declare: an inferred column fits, as does one written in params. */
export interface ColumnSpec {
  name: string;
  /** A {@link ColumnType}, or for Athena any Hive type (`int`, `decimal(10,2)`, `array<string>`, …). */
  type: string;
  /** The JSON key the column reads, when it is not the name (JSON tables only). */
  source?: string;
  /** Sampled values included empty ones (see `InferredColumn`). */
  emptyValues?: boolean;
  /** Every sampled value was empty (see `InferredColumn`). */
  onlyEmpty?: boolean;
}

/** What {@link athenaCreateTableSql} needs: an `InferredTable` plus where the table goes. */
export interface AthenaTableSpec {
  database: string;
  table: string;
  columns: readonly ColumnSpec[];
  partitionedBy?: readonly ColumnSpec[];
  /** The folder holding the files, `s3://bucket/prefix/` (a trailing `/` is added when missing). */
  location: string;
  format: TableFormat;
  /** The first line of each file is a header (CSV/TSV). */
  header?: boolean;
  /** Data lines have quoted fields (CSV/TSV): OpenCSVSerde instead of LazySimpleSerDe. */
  quoted?: boolean;
  /**
   * Values hold backslashes (CSV/TSV): a LazySimpleSerDe table gets no `ESCAPED BY '\'`, so that they are read
   * as they are (`C:\data` stays `C:\data`).
   */
  backslashes?: boolean;
  /** The field separator (CSV/TSV). Default `,` for CSV, a tab for TSV. */
  delimiter?: string;
  ifNotExists?: boolean;
}

/** The CREATE TABLE statement, why it reads as it does (for the log), and the columns as declared. */
export interface GeneratedSql {
  sql: string;
  reasons: string[];
  /**
   * The data columns with the types the statement declares, which can differ from the ones asked for (under
   * OpenCSVSerde): compare these with an existing table in `schemaDrift`.
   */
  columns: WantedColumn[];
  /** How the table reads its files: compare with an existing table's (`if_exists: keep`). */
  storage: TableStorage;
}

/** How a table reads its files, as the Glue catalog records it. */
export interface TableStorage {
  /** The SerDe's class (`SerdeInfo.SerializationLibrary`). */
  serde: string;
  /** The field delimiter of a delimited table (`field.delim`, or OpenCSVSerde's `separatorChar`). */
  delimiter?: string;
  /** Lines skipped at the start of each file (`skip.header.line.count`). */
  headerLines: number;
}

/** The SerDes lakerun's tables use, by the name Glue records. */
export const SERDES = {
  lazySimple: "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
  openCsv: "org.apache.hadoop.hive.serde2.OpenCSVSerde",
  json: "org.openx.data.jsonserde.JsonSerDe",
  parquet: "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
} as const;

const LAZY_SIMPLE_NOTE =
  "no quoted fields: LazySimpleSerDe (ROW FORMAT DELIMITED), which reads every column type";
const OPEN_CSV_NOTE =
  "quoted fields: OpenCSVSerde, which removes the quotes but parses only BOOLEAN, BIGINT, INT and DOUBLE";
const OPEN_CSV_TYPES = new Set(["string", "boolean", "bigint", "int", "double"]);

/**
 * `CREATE EXTERNAL TABLE` for staged files, with the SerDe their format needs.
 *
 * @example Unquoted CSV with a header
 * ```ts
 * import assert from "node:assert/strict";
 * import { athenaCreateTableSql } from "./ddl.ts";
 *
 * const { sql } = athenaCreateTableSql({
 *   database: "lake",
 *   table: "orders",
 *   columns: [{ name: "id", type: "bigint" }, { name: "placed", type: "timestamp" }],
 *   location: "s3://bucket/orders",
 *   format: "csv",
 *   header: true,
 *   quoted: false,
 *   ifNotExists: true,
 * });
 * assert.equal(
 *   sql,
 *   [
 *     "CREATE EXTERNAL TABLE IF NOT EXISTS `lake`.`orders` (",
 *     "  `id` bigint,",
 *     "  `placed` timestamp",
 *     ")",
 *     "ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'",
 *     "STORED AS TEXTFILE",
 *     "LOCATION 's3://bucket/orders/'",
 *     "TBLPROPERTIES ('skip.header.line.count'='1')",
 *   ].join("\n"),
 * );
 * // values with backslashes (C:\data): no ESCAPED BY, so that they are read as they are
 * const files = athenaCreateTableSql({
 *   database: "lake",
 *   table: "files",
 *   columns: [{ name: "path", type: "string" }],
 *   location: "s3://bucket/files",
 *   format: "csv",
 *   backslashes: true,
 * });
 * assert.match(files.sql, /FIELDS TERMINATED BY ',' LINES TERMINATED BY/);
 * ```
 * @throws Error for an invalid type, a repeated column, a location that is not `s3://bucket/…`, or a
 * delimiter that is not one character.
 */
export function athenaCreateTableSql(spec: AthenaTableSpec): GeneratedSql {
  const reasons: string[] = [];
  const storage = athenaStorage(spec, reasons);
  const columns = spec.columns.map((column) => ({ ...column, type: storage.columnType(column, reasons) }));
  const partitions = (spec.partitionedBy ?? []).map((column) => ({ ...column, type: hiveType(column.type) }));
  checkUniqueNames([...columns, ...partitions]);
  const create = `CREATE EXTERNAL TABLE ${spec.ifNotExists ? "IF NOT EXISTS " : ""}`;
  const lines = [
    `${create}${athenaTableName(spec.database, spec.table)} (`,
    columns.map((column) => `  ${athenaColumn(column)}`).join(",\n"),
    ")",
  ];
  if (partitions.length > 0) lines.push(`PARTITIONED BY (${partitions.map(athenaColumn).join(", ")})`);
  lines.push(...storage.clauses, `LOCATION ${quoteLiteral(folderLocation(spec.location), "athena")}`);
  if (storage.properties.length > 0) lines.push(`TBLPROPERTIES (${storage.properties.join(", ")})`);
  return {
    sql: lines.join("\n"),
    reasons,
    columns: columns.map(({ name, type, onlyEmpty }) =>
      onlyEmpty ? { name, type, onlyEmpty } : { name, type }
    ),
    storage: storage.storage,
  };
}

/** How a format is stored: its clauses, table properties, and the type each column gets under its SerDe. */
interface AthenaStorage {
  clauses: string[];
  properties: string[];
  columnType(column: ColumnSpec, reasons: string[]): string;
  storage: TableStorage;
}

function athenaStorage(spec: AthenaTableSpec, reasons: string[]): AthenaStorage {
  switch (spec.format) {
    case "csv":
    case "tsv":
      return delimitedStorage(spec, reasons);
    case "json":
      return {
        clauses: jsonClauses(spec.columns, reasons),
        properties: [],
        columnType: declaredType,
        storage: { serde: SERDES.json, headerLines: 0 },
      };
    case "parquet":
      return {
        clauses: ["STORED AS PARQUET"],
        properties: [],
        columnType: declaredType,
        storage: { serde: SERDES.parquet, headerLines: 0 },
      };
    default:
      throw new Error(`unknown format ${JSON.stringify(spec.format)}: expected csv, tsv, json or parquet`);
  }
}

function delimitedStorage(spec: AthenaTableSpec, reasons: string[]): AthenaStorage {
  const delimiter = spec.delimiter ?? (spec.format === "tsv" ? "\t" : ",");
  if (delimiter.length !== 1) {
    throw new Error(`the delimiter must be one character, not ${JSON.stringify(delimiter)}`);
  }
  const literal = (text: string) => quoteLiteral(text, "athena");
  const property = (key: string, value: string) => `${literal(key)}=${literal(value)}`;
  const headerLines = spec.header ? 1 : 0;
  const properties = spec.header ? [property("skip.header.line.count", "1")] : [];
  if (spec.header) reasons.push("'skip.header.line.count'='1': the first line of each file is a header");
  if (!spec.quoted) {
    reasons.push(LAZY_SIMPLE_NOTE);
    // a writer of unquoted CSV escapes nothing: `\` is only read as an escape where the sample holds none
    const escaped = spec.backslashes ? "" : ` ESCAPED BY ${literal("\\")}`;
    const fields = `FIELDS TERMINATED BY ${literal(delimiter)}${escaped}`;
    return {
      clauses: [`ROW FORMAT DELIMITED ${fields} LINES TERMINATED BY ${literal("\n")}`, "STORED AS TEXTFILE"],
      properties,
      columnType: declaredType,
      storage: { serde: SERDES.lazySimple, delimiter, headerLines },
    };
  }
  reasons.push(OPEN_CSV_NOTE);
  const serdeProperties = [
    property("separatorChar", delimiter),
    property("quoteChar", '"'),
    property("escapeChar", "\\"),
  ];
  return {
    clauses: [
      `ROW FORMAT SERDE ${literal("org.apache.hadoop.hive.serde2.OpenCSVSerde")}`,
      `WITH SERDEPROPERTIES (${serdeProperties.join(", ")})`,
      "STORED AS TEXTFILE",
    ],
    properties,
    columnType: openCsvColumnType,
    storage: { serde: SERDES.openCsv, delimiter, headerLines },
  };
}

/** The type a column gets: its own, parsed and written back. */
function declaredType(column: ColumnSpec): string {
  return hiveType(column.type);
}

/** The type a column gets under OpenCSVSerde: `string` where the SerDe would fail or misread. */
function openCsvColumnType(column: ColumnSpec, reasons: string[]): string {
  const type = hiveType(column.type);
  if (!OPEN_CSV_TYPES.has(type)) {
    reasons.push(
      `column ${column.name} is declared string, not ${type}: OpenCSVSerde cannot parse ${type} ` +
        `(cast it in queries, e.g. CAST(${column.name} AS ${type}))`,
    );
    return "string";
  }
  if (type !== "string" && column.emptyValues) {
    reasons.push(
      `column ${column.name} is declared string, not ${type}: it has empty values, which OpenCSVSerde ` +
        `does not read as NULL in a ${type} column (use TRY_CAST in queries)`,
    );
    return "string";
  }
  return type;
}

/** OpenX JSON SerDe clauses; keys that differ from their column names are mapped, case-sensitively. */
function jsonClauses(columns: readonly ColumnSpec[], reasons: string[]): string[] {
  const literal = (text: string) => quoteLiteral(text, "athena");
  const clauses = [`ROW FORMAT SERDE ${literal("org.openx.data.jsonserde.JsonSerDe")}`];
  const mapped = columns.filter((column) => column.source !== undefined && column.source !== column.name);
  if (mapped.length > 0) {
    const properties = [
      `${literal("case.insensitive")}=${literal("FALSE")}`,
      ...mapped.map((column) => `${literal(`mapping.${column.name}`)}=${literal(column.source!)}`),
    ];
    clauses.push(`WITH SERDEPROPERTIES (${properties.join(", ")})`);
    reasons.push(
      "JSON keys that differ from their column names are mapped ('mapping.<column>'='<key>'), " +
        "and keys are matched case-sensitively ('case.insensitive'='FALSE') so that keys like URL and Url " +
        "stay apart",
    );
  }
  clauses.push("STORED AS TEXTFILE");
  return clauses;
}

function athenaTableName(database: string, table: string): string {
  return `${quoteIdentifier(database, "athena")}.${quoteIdentifier(table, "athena")}`;
}

function athenaColumn(column: ColumnSpec): string {
  return `${quoteIdentifier(column.name, "athena")} ${column.type}`;
}

function checkUniqueNames(columns: readonly ColumnSpec[]): void {
  const seen = new Set<string>();
  for (const { name } of columns) {
    const key = name.toLowerCase();
    if (seen.has(key)) {
      throw new Error(`column ${showName(name)} is declared twice (columns and partitions included)`);
    }
    seen.add(key);
  }
}

/** `s3://bucket/prefix/`, with the trailing `/` Athena expects of a folder. */
function folderLocation(location: string): string {
  if (!/^s3:\/\/[^/]+/.test(location)) {
    throw new Error(
      `a table location must be an s3://bucket/prefix/ folder, not ${JSON.stringify(location)}`,
    );
  }
  return location.endsWith("/") ? location : `${location}/`;
}

// ---------------------------------------------------------------------------------------------------------
// Hive column types, read and written back.

const HIVE_PRIMITIVES: Record<string, string> = {
  boolean: "boolean",
  tinyint: "tinyint",
  smallint: "smallint",
  int: "int",
  integer: "int",
  bigint: "bigint",
  float: "float",
  double: "double",
  string: "string",
  binary: "binary",
  date: "date",
  timestamp: "timestamp",
  decimal: "decimal",
  char: "char",
  varchar: "varchar",
};

/** How many `(…)` numbers each parameterised primitive takes: [fewest, most]. */
const HIVE_PARAMETERS: Record<string, [number, number]> = { decimal: [0, 2], char: [1, 1], varchar: [1, 1] };

/**
 * Parses a Hive column type and writes it back in canonical lowercase form, so that a type from params is
 * never copied into SQL as written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hiveType } from "./ddl.ts";
 *
 * assert.equal(hiveType("DECIMAL( 10, 2 )"), "decimal(10,2)");
 * assert.equal(hiveType("Array<Struct<a:INTEGER, b:string>>"), "array<struct<a:int,b:string>>");
 * assert.throws(() => hiveType("bigint) LOCATION 's3://x/'"), /not a Hive column type/);
 * ```
 * @throws Error when the text is not a Hive column type.
 */
export function hiveType(type: string): string {
  const reader = new HiveTypeReader(type);
  const written = reader.type();
  reader.expectEnd();
  return written;
}

class HiveTypeReader {
  readonly #tokens: string[];
  #next = 0;

  constructor(readonly text: string) {
    const tokens = text.toLowerCase().match(/[a-z_][a-z0-9_]*|\d+|[<>(),:]|\S/g) ?? [];
    this.#tokens = tokens;
  }

  type(): string {
    const name = this.#take();
    if (name === "array") return `array<${this.#inAngles(() => this.type())}>`;
    if (name === "map") {
      return `map<${this.#inAngles(() => `${this.type()}${this.#expect(",")}${this.type()}`)}>`;
    }
    if (name === "struct") return `struct<${this.#inAngles(() => this.#fields())}>`;
    const primitive = HIVE_PRIMITIVES[name ?? ""];
    if (!primitive) throw this.#error();
    return primitive + this.#parameters(primitive);
  }

  expectEnd(): void {
    if (this.#next < this.#tokens.length) throw this.#error();
  }

  #fields(): string {
    const fields: string[] = [];
    do {
      const name = this.#take();
      if (!name || !/^[a-z_][a-z0-9_]*$/.test(name)) throw this.#error();
      fields.push(`${name}${this.#expect(":")}${this.type()}`);
    } while (this.#accept(","));
    return fields.join(",");
  }

  #parameters(primitive: string): string {
    const [fewest, most] = HIVE_PARAMETERS[primitive] ?? [0, 0];
    const numbers: string[] = [];
    if (most > 0 && this.#accept("(")) {
      do {
        const number = this.#take();
        if (!number || !/^\d+$/.test(number)) throw this.#error();
        numbers.push(String(Number(number)));
      } while (this.#accept(","));
      this.#expect(")");
    }
    if (numbers.length < fewest || numbers.length > most) throw this.#error();
    return numbers.length > 0 ? `(${numbers.join(",")})` : "";
  }

  #inAngles(read: () => string): string {
    this.#expect("<");
    const inside = read();
    this.#expect(">");
    return inside;
  }

  #take(): string | undefined {
    return this.#tokens[this.#next++];
  }

  #accept(token: string): boolean {
    if (this.#tokens[this.#next] !== token) return false;
    this.#next++;
    return true;
  }

  #expect(token: string): string {
    if (!this.#accept(token)) throw this.#error();
    return token;
  }

  #error(): Error {
    return new Error(
      `${JSON.stringify(this.text)} is not a Hive column type (e.g. bigint, decimal(10,2), array<string>)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Athena partitions.

/** One partition: its values in partition-column order, and its folder. */
export interface Partition {
  values: Record<string, string>;
  location: string;
}

/** Athena's limit on the length of a query string, in bytes. */
export const ATHENA_MAX_QUERY_BYTES = 262_144;

/**
 * One `ALTER TABLE … ADD IF NOT EXISTS PARTITION …` statement for all `partitions` (values as string
 * literals, in the order of each `values` object).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { athenaAddPartitionsSql } from "./ddl.ts";
 *
 * assert.equal(
 *   athenaAddPartitionsSql("lake", "orders", [
 *     { values: { dt: "2020-09-30" }, location: "s3://b/orders/dt=2020-09-30/" },
 *     { values: { dt: "2020-10-01" }, location: "s3://b/orders/dt=2020-10-01/" },
 *   ]),
 *   [
 *     "ALTER TABLE `lake`.`orders` ADD IF NOT EXISTS",
 *     "  PARTITION (`dt`='2020-09-30') LOCATION 's3://b/orders/dt=2020-09-30/'",
 *     "  PARTITION (`dt`='2020-10-01') LOCATION 's3://b/orders/dt=2020-10-01/'",
 *   ].join("\n"),
 * );
 * ```
 * @throws Error when there are no partitions, a partition has no values, or the statement would exceed
 * Athena's 262,144-byte query limit (add the partitions in smaller batches).
 */
export function athenaAddPartitionsSql(
  database: string,
  table: string,
  partitions: readonly Partition[],
): string {
  if (partitions.length === 0) throw new Error("there are no partitions to add");
  const clauses = partitions.map((partition) => {
    const values = Object.entries(partition.values);
    if (values.length === 0) {
      throw new Error(`the partition at ${JSON.stringify(partition.location)} has no values`);
    }
    const spec = values.map(([name, value]) =>
      `${quoteIdentifier(name, "athena")}=${quoteLiteral(value, "athena")}`
    );
    return `  PARTITION (${spec.join(", ")}) LOCATION ${
      quoteLiteral(folderLocation(partition.location), "athena")
    }`;
  });
  const sql = [`ALTER TABLE ${athenaTableName(database, table)} ADD IF NOT EXISTS`, ...clauses].join("\n");
  const bytes = new TextEncoder().encode(sql).length;
  if (bytes > ATHENA_MAX_QUERY_BYTES) {
    throw new Error(
      `adding ${partitions.length} partitions takes ${bytes} bytes of SQL, over Athena's ` +
        `${ATHENA_MAX_QUERY_BYTES}; add them in batches`,
    );
  }
  return sql;
}

/**
 * The distinct Hive-style partitions (`dt=2020-09-30/`, `year=2020/month=09/`) holding `keys`, which are
 * object keys in the bucket of `tableLocation` (as ListObjectsV2 returns them). A key counts when its
 * folders below the table start with exactly `partitionColumns`, in that order, each with a value; other keys
 * (`_SUCCESS`, folder markers ending in `/`, other layouts and prefixes) are ignored. Values are URL-decoded,
 * as Hive escapes them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { partitionsFromKeys } from "./ddl.ts";
 *
 * const keys = [
 *   "orders/year=2020/month=09/part-0.csv",
 *   "orders/year=2020/month=09/part-1.csv",
 *   "orders/year=2020/month=10/part-0.csv",
 *   "orders/_SUCCESS",
 * ];
 * assert.deepEqual(partitionsFromKeys("s3://b/orders/", keys, ["year", "month"]), [
 *   { values: { year: "2020", month: "09" }, location: "s3://b/orders/year=2020/month=09/" },
 *   { values: { year: "2020", month: "10" }, location: "s3://b/orders/year=2020/month=10/" },
 * ]);
 * // two folders, one partition value: refused
 * assert.throws(() => partitionsFromKeys("s3://b/t/", ["t/dt=a%3Db/x.csv", "t/dt=a=b/y.csv"], ["dt"]), /are one partition/);
 * ```
 * @throws Error when `tableLocation` is not an `s3://bucket/…` URL or there are no partition columns, or when
 * two folders decode to the same partition values.
 */
export function partitionsFromKeys(
  tableLocation: string,
  keys: readonly string[],
  partitionColumns: readonly string[],
): Partition[] {
  if (partitionColumns.length === 0) {
    throw new Error("partitionsFromKeys needs at least one partition column");
  }
  const folder = folderLocation(tableLocation);
  const keyPrefix = folder.replace(/^s3:\/\/[^/]+\/?/, "");
  const partitions = new Map<string, Partition>();
  // a partition is its values: two folders that decode to the same ones (`dt=a%3Db/`, `dt=a=b/`) cannot both be
  const byValues = new Map<string, string>();
  for (const key of keys) {
    if (!key.startsWith(keyPrefix) || key.endsWith("/")) continue; // a key ending in "/" marks a folder
    const folders = key.slice(keyPrefix.length).split("/").slice(0, -1); // the last part is the file name
    if (folders.length < partitionColumns.length) continue;
    const values = partitionValues(folders, partitionColumns);
    if (!values) continue;
    const location = `${folder}${folders.slice(0, partitionColumns.length).join("/")}/`;
    if (partitions.has(location)) continue;
    const identity = JSON.stringify(partitionColumns.map((column) => values[column]));
    const other = byValues.get(identity);
    if (other !== undefined) {
      throw new Error(
        `${other} and ${location} are one partition (${
          partitionColumns.map((column) => `${column}=${JSON.stringify(values[column])}`).join(", ")
        }) once their folder names are decoded: rename one of them`,
      );
    }
    byValues.set(identity, location);
    partitions.set(location, { values, location });
  }
  return [...partitions.values()];
}

function partitionValues(folders: string[], columns: readonly string[]): Record<string, string> | undefined {
  const values: Record<string, string> = {};
  for (const [index, column] of columns.entries()) {
    const folder = folders[index];
    if (!folder.startsWith(`${column}=`) || folder.length === column.length + 1) return undefined;
    values[column] = percentDecoded(folder.slice(column.length + 1));
  }
  return values;
}

// ---------------------------------------------------------------------------------------------------------
// PostgreSQL and Redshift.

/** What {@link sqlCreateTable} needs. */
export interface SqlTableSpec {
  dialect: "postgres" | "redshift";
  /** Omit for a temporary table (they live in the session's own schema). */
  schema?: string;
  table: string;
  columns: readonly ColumnSpec[];
  ifNotExists?: boolean;
  temporary?: boolean;
}

const SQL_TYPES: Record<"postgres" | "redshift", Record<ColumnType, string>> = {
  postgres: {
    bigint: "bigint",
    double: "double precision",
    boolean: "boolean",
    date: "date",
    timestamp: "timestamp",
    string: "text",
  },
  redshift: {
    bigint: "bigint",
    double: "double precision",
    boolean: "boolean",
    date: "date",
    timestamp: "timestamp",
    string: "varchar(65535)",
  },
};

/** Longest name each database keeps, in UTF-8 bytes: PostgreSQL silently cuts longer ones. */
const NAME_BYTES = { postgres: 63, redshift: 127 };

/**
 * `CREATE TABLE` for PostgreSQL or Redshift, mapping inferred types (`double` → `double precision`,
 * `string` → `text`, or `varchar(65535)` on Redshift); any other type must be one of the database's own, as
 * {@link sqlColumnType} reads and rewrites it (`float8`, `jsonb`, `character varying(256)`, …).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sqlCreateTable } from "./ddl.ts";
 *
 * const columns = [{ name: "id", type: "bigint" }, { name: "note", type: "string" }];
 * assert.equal(
 *   sqlCreateTable({ dialect: "redshift", schema: "raw", table: "orders", columns, ifNotExists: true }),
 *   'CREATE TABLE IF NOT EXISTS "raw"."orders" (\n  "id" bigint,\n  "note" varchar(65535)\n)',
 * );
 * assert.equal(
 *   sqlCreateTable({ dialect: "postgres", table: "load", columns, temporary: true }),
 *   'CREATE TEMPORARY TABLE "load" (\n  "id" bigint,\n  "note" text\n)',
 * );
 * ```
 * @throws Error for an unknown type, a repeated column, a name longer than the database keeps, or a schema
 * given for a temporary table.
 */
export function sqlCreateTable(spec: SqlTableSpec): string {
  const { dialect } = spec;
  if (spec.temporary && spec.schema !== undefined) {
    throw new Error(
      `a temporary table lives in the session's own schema: omit schema ${JSON.stringify(spec.schema)}`,
    );
  }
  if (spec.schema === undefined && !spec.temporary) {
    throw new Error(`table ${showName(spec.table)} needs a schema`);
  }
  checkUniqueNames(spec.columns);
  const names = [spec.schema, spec.table, ...spec.columns.map((column) => column.name)];
  for (const name of names) if (name !== undefined) checkNameLength(name, dialect);
  const table = [spec.schema, spec.table].filter((part) => part !== undefined).map((part) =>
    quoteIdentifier(part, dialect)
  );
  const columns = spec.columns.map((column) =>
    `  ${quoteIdentifier(column.name, dialect)} ${sqlType(column.type, dialect)}`
  );
  const create = `CREATE ${spec.temporary ? "TEMPORARY " : ""}TABLE ${
    spec.ifNotExists ? "IF NOT EXISTS " : ""
  }`;
  return `${create}${table.join(".")} (\n${columns.join(",\n")}\n)`;
}

function sqlType(type: string, dialect: "postgres" | "redshift"): string {
  const own = Object.hasOwn(SQL_TYPES[dialect], type) ? SQL_TYPES[dialect][type as ColumnType] : undefined;
  const mapped = own ?? sqlColumnType(type, dialect);
  if (mapped) return mapped;
  throw new Error(sqlTypeProblem(type, dialect));
}

function checkNameLength(name: string, dialect: "postgres" | "redshift"): void {
  const bytes = new TextEncoder().encode(name).length;
  if (bytes > NAME_BYTES[dialect]) {
    throw new Error(
      `the name ${showName(name)} is ${bytes} bytes; ${dialect} keeps only ${NAME_BYTES[dialect]}` +
        (dialect === "postgres"
          ? " and would silently cut it (use columnIdentifiers(headers, { maxLength: 63 }))"
          : ""),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// Schema drift.

/** Options of {@link schemaDrift}. */
export interface DriftOptions {
  /** Columns are matched by position (CSV, TSV), so their order matters too. Default `true`. */
  positional?: boolean;
  /**
   * The wanted types were inferred from a sample of the files for this engine, so they say what the sample
   * held, not what the table must be: a table column that holds every value of the inferred type (a
   * `double` for `bigint`, a text column for anything, any column for one whose sample was all empty, and
   * for PostgreSQL and Redshift a `timestamp` for `date`) is no difference. Default: none; given types must
   * match.
   */
  inferred?: InferTarget;
}

/** A wanted column for {@link schemaDrift}: `onlyEmpty` when its sample held no value (inferred only). */
export interface WantedColumn {
  name: string;
  type: string;
  onlyEmpty?: boolean;
}

/**
 * How an existing table differs from the columns wanted for the staged files, one sentence per difference;
 * empty when they agree. Type names are compared case-insensitively with their aliases (`int8` = `bigint`,
 * `float8` = `double precision` = `double`, `varchar(n)` = `text` = `string`, `char(3)` = `character(3)`,
 * `timestamptz(3)` = `timestamp(3) with time zone`, …).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { schemaDrift } from "./ddl.ts";
 *
 * const table = [{ name: "id", type: "int8" }, { name: "x", type: "bigint" }, { name: "z", type: "text" }];
 * const files = [{ name: "id", type: "bigint" }, { name: "x", type: "string" }, { name: "y", type: "date" }];
 * assert.deepEqual(schemaDrift(table, files), [
 *   "column `x`: table has bigint, files have string",
 *   "files have a column `y` the table lacks",
 *   "table has a column `z` the files lack",
 * ]);
 * assert.deepEqual(schemaDrift([{ name: "n", type: "VARCHAR(20)" }], [{ name: "n", type: "string" }]), []);
 *
 * // inferred from today's files: integers go into yesterday's double column, an all-empty column anywhere
 * const yesterday = [{ name: "amount", type: "double precision" }, { name: "note", type: "date" }];
 * const today = [{ name: "amount", type: "bigint" }, { name: "note", type: "string", onlyEmpty: true }];
 * assert.deepEqual(schemaDrift(yesterday, today, { inferred: "postgres" }), []);
 * assert.deepEqual(schemaDrift(today, yesterday, { inferred: "postgres" }), [
 *   "column `amount`: table has bigint, files have double precision",
 * ]);
 * ```
 */
export function schemaDrift(
  existing: readonly { name: string; type: string }[],
  wanted: readonly WantedColumn[],
  options: DriftOptions = {},
): string[] {
  const tableTypes = new Map(existing.map((column) => [column.name, column.type]));
  const fileNames = new Set(wanted.map((column) => column.name));
  const differences: string[] = [];
  for (const column of wanted) {
    const tableType = tableTypes.get(column.name);
    if (tableType === undefined) {
      differences.push(`files have a column ${showName(column.name)} the table lacks`);
    } else if (
      canonicalType(tableType) !== canonicalType(column.type) &&
      !(options.inferred && holdsInferred(tableType, column, options.inferred))
    ) {
      differences.push(`column ${showName(column.name)}: table has ${tableType}, files have ${column.type}`);
    }
  }
  for (const column of existing) {
    if (!fileNames.has(column.name)) {
      differences.push(`table has a column ${showName(column.name)} the files lack`);
    }
  }
  if (options.positional ?? true) differences.push(...orderDifference(existing, wanted));
  return differences;
}

/**
 * The column type of inference's own (`bigint`, `double`, `boolean`, `date`, `timestamp`, `string`) that a
 * database type is, in any of its spellings (`int8`, `double precision`, `varchar(20)`); else `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inferenceType } from "./ddl.ts";
 *
 * assert.equal(inferenceType("double precision"), "double");
 * assert.equal(inferenceType("timestamp without time zone"), "timestamp");
 * assert.equal(inferenceType("numeric(10,2)"), undefined);
 * ```
 */
export function inferenceType(type: string): ColumnType | undefined {
  const canonical = canonicalType(type);
  const own: readonly string[] = ["bigint", "double", "boolean", "date", "timestamp", "string"];
  return own.includes(canonical) ? canonical as ColumnType : undefined;
}

/**
 * Whether a table column of `tableType` holds every value inference would type as `column.type`, on
 * `engine` (see {@link DriftOptions.inferred}).
 */
export function holdsInferred(tableType: string, column: WantedColumn, engine: InferTarget): boolean {
  const table = canonicalType(tableType);
  if (column.onlyEmpty || table === "string") return true;
  switch (canonicalType(column.type)) {
    case "bigint": {
      if (table === "double" || table === "decimal") return true;
      const decimal = /^decimal\((\d+),(\d+)\)$/.exec(table);
      return decimal !== null && Number(decimal[1]) - Number(decimal[2]) >= 19; // every 64-bit integer
    }
    case "date": // Hive's text SerDes read no date-only text as a timestamp
      return engine !== "athena" && (table === "timestamp" || table === "timestamptz");
    default:
      return false;
  }
}

function orderDifference(
  existing: readonly { name: string }[],
  wanted: readonly { name: string }[],
): string[] {
  const wantedNames = new Set(wanted.map((column) => column.name));
  const existingNames = new Set(existing.map((column) => column.name));
  const tableOrder = existing.map((column) => column.name).filter((name) => wantedNames.has(name));
  const fileOrder = wanted.map((column) => column.name).filter((name) => existingNames.has(name));
  if (tableOrder.every((name, index) => name === fileOrder[index])) return [];
  const list = (names: string[]) => names.map(showName).join(", ");
  return [`columns are in another order: table has (${list(tableOrder)}), files have (${list(fileOrder)})`];
}

const TYPE_ALIASES: [RegExp, string][] = [
  [/^(?:string|text|varchar|character varying|nvarchar)(?:\((?:\d+|max)\))?$/, "string"],
  [/^(?:bigint|int8)$/, "bigint"],
  [/^(?:int|integer|int4)$/, "int"],
  [/^(?:smallint|int2)$/, "smallint"],
  [/^(?:double|double precision|float8)$/, "double"],
  [/^(?:real|float4)$/, "real"],
  [/^(?:bool|boolean)$/, "boolean"],
  [/^(?:timestamp|timestamp without time zone)$/, "timestamp"],
  [/^(?:timestamptz|timestamp with time zone)$/, "timestamptz"],
];

/** A type name in one spelling per type, for comparing. */
function canonicalType(type: string): string {
  const written = type.trim().toLowerCase().replace(/\s+/g, " ").replace(/\s*([(),<>:])\s*/g, "$1")
    // `timestamp(3) with time zone` as PostgreSQL shows a `timestamptz(3)`; `without` is the default
    .replace(/^(time|timestamp)(\(\d+\))? ?with time zone$/, "$1tz$2")
    .replace(/^(time|timestamp)(\(\d+\))? ?without time zone$/, "$1$2");
  const alias = TYPE_ALIASES.find(([pattern]) => pattern.test(written));
  if (alias) return alias[1];
  return written.replace(/^numeric\b/, "decimal").replace(/^(?:character|nchar|bpchar)(?=\(\d+\)$)/, "char");
}

/** A name for a message: in backticks when plain, as a JSON string otherwise. */
function showName(name: string): string {
  return /^[A-Za-z0-9_$.]+$/.test(name) ? `\`${name}\`` : JSON.stringify(name);
}
