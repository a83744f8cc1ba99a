/**
 * PostgresExecutor's params: the connection (lib/sql/connection.ts), the SQL of `execute`, and the table,
 * files and mode of `create_table` and `load`. Everything that can be checked without a server is checked
 * here, when the routine is validated.
 *
 * @module
 */
import type { ParamsOf, Zod } from "../../sdk/executor.ts";
import { connectionFields, connectionParamsProblem } from "../../lib/sql/connection.ts";
import { parseTableName } from "../../lib/tables/identifiers.ts";
import { columnsParam } from "../../lib/tables/columns_param.ts";
import { transactionScript } from "../../lib/sql/statements.ts";
import { locationSchema } from "../../lib/storage/locations.ts";

/** The params schema. */
export const paramsSchema = (z: Zod) =>
  z.strictObject({
    ...connectionFields(z),
    sql: z.string().min(1).optional().describe(
      "execute: SQL statements, separated by ';', run in one transaction.",
    ),
    sql_file: z.string().min(1).optional().describe(
      "execute: a file of SQL statements (instead of sql), run in one transaction.",
    ),
    table: z.string().min(1).optional().describe(
      'create_table, load: the table, "schema.table" (default schema public); quote parts to keep case or dots: "\\"My Schema\\".t".',
    ),
    columns: columnsParam(z, "postgres").optional().describe(
      "create_table, load: the columns of a new table, [{name, type}] or an ordered {name: type} map as for Athena; a type is bigint, double, boolean, date, timestamp, string, or PostgreSQL's own (as \\d shows it: double precision, jsonb, uuid, character varying(20), …); default: inferred from the first files of source.",
    ),
    source: locationSchema(z).optional().describe(
      "load: the staging folder whose files are loaded: a local folder or s3://bucket/prefix.",
    ),
    format: z.enum(["csv", "json", "parquet"]).default("csv").describe(
      "Format of the files in source: csv (UTF-8, RFC 4180), json (one object per line) or parquet.",
    ),
    header: z.boolean().default(true).describe(
      "csv: the first line of each file names its columns (mapped to the table's columns by name).",
    ),
    mode: z.enum(["append", "replace", "upsert"]).default("append").describe(
      "load: append the rows, replace the table's rows, or upsert by upsert_keys.",
    ),
    upsert_keys: z.array(z.string().min(1)).min(1).optional().describe(
      "load with mode upsert: the columns that identify a row (a unique index on them makes it INSERT … ON CONFLICT; else UPDATE + INSERT; either way a column the files lack keeps its value).",
    ),
    if_exists: z.enum(["keep", "replace", "fail"]).default("keep").describe(
      "create_table when the table exists: keep it (failing if its columns differ from the files'), replace it (drop and create), or fail.",
    ),
  }).superRefine((params, context) => {
    connectionParamsProblem(params, context);
    const issue = (path: string, message: string) =>
      context.addIssue({ code: "custom", path: [path], message });
    if (params.sql !== undefined && params.sql_file !== undefined) {
      issue("sql_file", "give sql or sql_file, not both");
    }
    if (params.sql !== undefined) {
      // what execute would refuse before connecting (a sql_file is checked once read)
      try {
        transactionScript(params.sql);
      } catch (error) {
        issue("sql", (error as Error).message);
      }
    }
    if (params.table !== undefined) {
      try {
        parseTableName(params.table, "public");
      } catch (error) {
        issue("table", (error as Error).message);
      }
    }
    if (params.mode === "upsert" && !params.upsert_keys) {
      issue("upsert_keys", "mode upsert needs upsert_keys: the columns that identify a row");
    }
    if (params.mode !== "upsert" && params.upsert_keys) {
      issue("upsert_keys", `only used with mode upsert (mode is ${params.mode})`);
    }
    if (params.upsert_keys && params.columns) {
      for (const key of params.upsert_keys) {
        if (!params.columns.some((column) => column.name === key)) {
          issue("upsert_keys", `${JSON.stringify(key)} is not one of columns`);
        }
      }
    }
  });

/** Validated params. */
export type Params = ParamsOf<typeof paramsSchema>;
