/**
 * The `columns` param of the warehouse executors (PostgreSQL, Redshift) as one zod schema: a list of
 * `{name, type}`, or the ordered `{name: type}` map AthenaExecutor takes (so one routine can describe a table
 * once for every warehouse), given to the tasks as the list. A type is checked word by word against the
 * database's own names (`./sql_types.ts`: it is written into DDL), and a bad one is reported at its column.
 *
 * @module
 */
import type { z } from "zod";
import { type ColumnSpec, sqlCreateTable } from "./ddl.ts";
import { sqlTypeProblem } from "./sql_types.ts";

/** The zod namespace. */
type Zod = typeof z;

/** The databases whose `columns` this schema checks, with the longest name each keeps. */
const DIALECTS = {
  postgres: {
    maxName: 63,
    types:
      "bigint, double, boolean, date, timestamp, string (text), or a PostgreSQL type: integer, numeric(p,s), varchar(n), double precision, timestamptz, jsonb, uuid, …",
  },
  redshift: {
    maxName: 127,
    types:
      "bigint, double, boolean, date, timestamp, string (varchar(65535)), or a Redshift type: integer, numeric(p,s), varchar(n), double precision, timestamptz, super, …",
  },
} as const;

/** A database the `columns` schema is made for. */
export type ColumnsDialect = keyof typeof DIALECTS;

/**
 * The schema of a `columns` param for `dialect` (without `.optional()` or a description: the executor adds
 * what its tasks make of the columns).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import { columnsParam } from "./columns_param.ts";
 *
 * const columns = columnsParam(z, "postgres");
 * assert.deepEqual(columns.parse({ id: "bigint", doc: "jsonb" }), [
 *   { name: "id", type: "bigint" },
 *   { name: "doc", type: "jsonb" },
 * ]);
 * assert.equal(columns.safeParse({ id: "bigint", val: "double precision); DROP TABLE t; --" }).success, false);
 * assert.equal(columnsParam(z, "redshift").safeParse([{ name: "doc", type: "jsonb" }]).success, false);
 * ```
 */
export function columnsParam(z: Zod, dialect: ColumnsDialect) {
  const { maxName, types } = DIALECTS[dialect];
  const columnType = z.string().min(1).superRefine((type, context) => {
    const problem = sqlTypeProblem(type, dialect);
    if (problem) context.addIssue({ code: "custom", message: problem });
  }).describe(types);
  const columnList = z.array(
    z.strictObject({
      name: z.string().min(1).max(maxName).describe("Column name (used as written, quoted)."),
      type: columnType,
    }),
  ).min(1).superRefine((columns: ColumnSpec[], context) => {
    if (columns.some((column) => sqlTypeProblem(column.type, dialect))) return; // reported at the column
    try {
      sqlCreateTable({ dialect, schema: "s", table: "t", columns });
    } catch (error) {
      context.addIssue({ code: "custom", message: (error as Error).message });
    }
  });
  return z.union([
    columnList,
    z.record(z.string(), columnType)
      .transform((map) => Object.entries(map).map(([name, type]) => ({ name, type })))
      .pipe(columnList),
  ]);
}
