/**
 * The target table: what the server says about it (columns, unique indexes), the columns a new one gets
 * (from `columns`, or inferred from the staged files), and the `create_table` task.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { fingerprintOf } from "../../lib/cloud/ledger.ts";
import { type ColumnSpec, inferenceType, schemaDrift, sqlCreateTable } from "../../lib/tables/ddl.ts";
import type { ColumnType } from "../../lib/tables/infer.ts";
import { parseTableName, type TableName } from "../../lib/tables/identifiers.ts";
import { qualifiedName } from "../../lib/sql/load_plan.ts";
import type { PostgresSession } from "../../lib/sql/postgres_client.ts";
import { openLocation } from "../../lib/storage/locations.ts";
import type { Storage, StoredFile } from "../../lib/storage/mod.ts";
import { plural } from "../../lib/format.ts";
import { oncePerRun, withSession } from "./session.ts";
import { inferColumns, sourceFiles } from "./sources.ts";
import type { Params } from "./params.ts";

/** A column of an existing table. */
export interface ExistingColumn {
  name: string;
  /** As `format_type` writes it: `bigint`, `character varying(20)`, `timestamp without time zone`. */
  type: string;
  /** A generated column, which COPY and INSERT cannot fill. */
  generated: boolean;
}

/** The table `params.table` names, with the default schema `public`. */
export function tableNameOf(params: Params): TableName {
  if (!params.table) throw new Error("this task needs table (schema.table)");
  return parseTableName(params.table, "public");
}

/** The table as messages show it: `schema.table`, each part quoted only when it needs to be. */
export function showTable(name: TableName): string {
  const part = (text: string) => /^[a-z_][a-z0-9_$]*$/.test(text) ? text : JSON.stringify(text);
  return `${part(name.schema)}.${part(name.table)}`;
}

/**
 * The columns of table `name`, in order; `undefined` when there is no such table.
 *
 * @throws Error when `name` is a view or another kind of relation.
 */
export async function tableColumns(
  session: PostgresSession,
  name: TableName,
): Promise<ExistingColumn[] | undefined> {
  const relation = await session.query<{ kind: string }>(
    `SELECT c.relkind AS kind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = $2`,
    [name.schema, name.table],
  );
  if (relation.rows.length === 0) return undefined;
  const kind = relation.rows[0].kind;
  if (kind !== "r" && kind !== "p") {
    const what =
      { v: "a view", m: "a materialized view", f: "a foreign table", S: "a sequence", i: "an index" }[
        kind
      ] ?? `a relation of kind ${kind}`;
    throw new Error(`${showTable(name)} is ${what}, not a table`);
  }
  const { rows } = await session.query<ExistingColumn>(
    `SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attgenerated <> '' AS generated
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum`,
    [name.schema, name.table],
  );
  return rows;
}

/** The column lists of the table's primary key and non-partial unique indexes on plain columns. */
export async function uniqueIndexes(session: PostgresSession, name: TableName): Promise<string[][]> {
  const { rows } = await session.query<{ columns: string[] }>(
    `SELECT array_agg(a.attname::text ORDER BY k.ord) AS columns
     FROM pg_index i
     JOIN pg_class c ON c.oid = i.indrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
     WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
     GROUP BY i.indexrelid`,
    [name.schema, name.table],
  );
  return rows.map((row) => row.columns);
}

/**
 * The columns a new table gets: `columns` from params, else inferred from the first staged files of
 * `source` (logging why); `listed`: the source's storage and files when the caller has listed them already
 * (and logged what it skipped).
 */
export async function wantedColumns(
  context: TaskContext<Params>,
  listed?: { storage: Storage; files: StoredFile[] },
): Promise<ColumnSpec[]> {
  const { params } = context;
  if (params.columns) return params.columns;
  if (!params.source) {
    throw new Error("a new table needs columns, or a source to infer them from");
  }
  const storage = listed?.storage ?? await openLocation(params.source, context);
  const files = listed?.files ?? await sourceFiles(storage, context.log, context.signal);
  context.log(
    `inferring the columns from the first ${plural(Math.min(files.length, 3), "file")} of ${storage.url}`,
  );
  return await inferColumns(storage, files, {
    format: params.format,
    header: params.header,
    log: context.log,
    signal: context.signal,
  });
}

/** Where `create_table` leaves the columns it inferred in the step's `shared`, for a `load` after it. */
const INFERRED_KEY = "postgres.inferred_columns";

/**
 * The columns of `columns` whose types inference chose from a sample of CSV or JSON files, by name: all but
 * the text ones (every value fits those). None for columns given in params, or a parquet file's own.
 */
export function inferredTypes(params: Params, columns: readonly ColumnSpec[]): Map<string, ColumnType> {
  const types = new Map<string, ColumnType>();
  if (params.columns || params.format === "parquet") return types;
  for (const { name, type } of columns) if (type !== "string") types.set(name, type as ColumnType);
  return types;
}

/**
 * The column types lakerun chose from the first parquet file's schema, by column, when the table was made
 * from them (no `columns`): every file of the load must have those types ({@link inferredTypes} is for CSV
 * and JSON).
 */
export function parquetTypes(params: Params, columns: readonly ColumnSpec[]): Map<string, string> {
  if (params.columns || params.format !== "parquet") return new Map();
  return new Map(columns.map(({ name, type }) => [name, type]));
}

/**
 * The columns `create_table` inferred for table `name` earlier in this step (it created the table with them,
 * or kept one that has them); else none.
 */
export function columnsInferredByCreateTable(context: TaskContext<Params>, name: TableName): ColumnSpec[] {
  const left = context.shared.get(INFERRED_KEY) as { table: string; columns: ColumnSpec[] } | undefined;
  return left === undefined || left.table !== showTable(name) ? [] : left.columns;
}

/** `CREATE TABLE` for `name` with `columns` (every name quoted, every type checked). */
export function createTableSql(name: TableName, columns: readonly ColumnSpec[]): string {
  return sqlCreateTable({ dialect: "postgres", schema: name.schema, table: name.table, columns });
}

/**
 * An inferred column as the load checks it once a kept table has it: as inferred when the table has that
 * type; else unchecked (`string`), as for any table that existed before: the table's type is the word then,
 * and PostgreSQL's input rules (a `2.25` past today's `bigint` sample loads into yesterday's `double`; `abc`
 * fails the COPY, which names the line).
 */
function asTableHasIt(column: ColumnSpec, table: readonly { name: string; type: string }[]): ColumnSpec {
  const type = table.find((c) => c.name === column.name)?.type;
  return type !== undefined && inferenceType(type) === column.type ? column : { ...column, type: "string" };
}

/** `create_table`: creates the table, or handles an existing one as `if_exists` says. */
export async function createTable(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  const name = tableNameOf(params);
  const columns = await wantedColumns(context);
  const create = createTableSql(name, columns);
  let kept: { name: string; type: string }[] | undefined;
  await withSession(context, async (session) => {
    const fingerprint = fingerprintOf("create_table", name, columns, params.if_exists);
    const outcome = await oncePerRun(context, session, "create_table", fingerprint, async () => {
      const existing = await tableColumns(session, name);
      if (existing === undefined) {
        await session.query(create);
        return `created ${showTable(name)} (${plural(columns.length, "column")})`;
      }
      if (params.if_exists === "fail") {
        throw new Error(`${showTable(name)} already exists (if_exists: fail)`);
      }
      if (params.if_exists === "replace") {
        await session.query(`DROP TABLE ${qualifiedName(name, "postgres")}`);
        await session.query(create);
        return `replaced ${showTable(name)} (dropped, then created with ${plural(columns.length, "column")})`;
      }
      const differences = schemaDrift(existing, columns, {
        positional: !params.header,
        inferred: params.columns ? undefined : "postgres",
      });
      if (differences.length > 0) {
        throw new Error(
          `${showTable(name)} exists with other columns than the files (if_exists: keep): ${
            differences.join("; ")
          }`,
        );
      }
      kept = existing;
      const exact = schemaDrift(existing, columns, { positional: !params.header }).length === 0;
      return `${showTable(name)} already exists with ${
        exact ? "these columns" : "columns that hold the files' values"
      }; kept`;
    });
    context.log(outcome.committed ? outcome.result : `create_table skipped: ${outcome.reason}`);
    // the table has these columns now (a kept one, its own types): a load after this task holds its values to them
    if (!params.columns) {
      const checked = kept ? columns.map((column) => asTableHasIt(column, kept!)) : columns;
      context.shared.set(INFERRED_KEY, { table: showTable(name), columns: checked });
    }
  });
}
