/**
 * The AthenaExecutor's params: one zod schema (validation, docs and JSON Schema) and what the tasks derive
 * from it.
 *
 * @module
 */
import { dirname } from "node:path";
import type { ParamsOf, Zod } from "../../sdk/executor.ts";
import { isS3Url, s3LocationProblem } from "../../lib/aws/s3/url.ts";
import { locationSchema } from "../../lib/storage/locations.ts";
import { hiveType } from "../../lib/tables/ddl.ts";
import { quoteLiteral } from "../../lib/tables/identifiers.ts";
import { placeholderCount } from "../../lib/sql/statements.ts";
import { plural } from "../../lib/format.ts";

/** Glue and Athena database and table names: lowercase letters, digits and `_`. */
const CATALOG_NAME = /^[a-z0-9_]{1,255}$/;
/** Column names given in params: what `columnIdentifiers` would make of them. */
const COLUMN_NAME = /^[a-z_][a-z0-9_]{0,254}$/;
const S3_FOLDER = /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/;

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}..."` : text;
}

function isHiveType(type: string): boolean {
  try {
    hiveType(type);
    return true;
  } catch {
    return false;
  }
}

/** An ordered `{name: type}` map of columns, checked name by name. */
const columnMap = (z: Zod, what: string) =>
  z.record(
    z.string(),
    z.string().refine(isHiveType, {
      error: (issue) =>
        `must be a Hive column type (bigint, double, string, date, decimal(10,2), array<string>, …), not ${
          quote(issue.input)
        }`,
    }),
  ).superRefine((columns, ctx) => {
    const names = Object.keys(columns);
    if (names.length === 0) ctx.addIssue({ code: "custom", message: `needs at least one ${what}` });
    for (const name of names) {
      if (!COLUMN_NAME.test(name)) {
        ctx.addIssue({
          code: "custom",
          path: [name],
          input: name, // the key is the value at fault: lakerun quotes it, not the type it maps to
          message: `${what} name ${
            quote(name)
          } must be lowercase letters, digits and _, not starting with a digit`,
        });
      }
    }
  });

const catalogName = (z: Zod, what: string) =>
  z.string().regex(CATALOG_NAME, {
    error: (issue) => `must be a ${what} name of lowercase letters, digits and _, not ${quote(issue.input)}`,
  });

/**
 * An s3:// folder: the pattern (which the JSON Schema keeps), then what it cannot see (an empty, `.` or `..`
 * segment), each refusal of an s3:// value in the words of every S3 location param (a bucket name's rule, …).
 */
const s3Folder = (z: Zod) =>
  z.string().regex(S3_FOLDER, {
    error: (issue) =>
      (typeof issue.input === "string" && isS3Url(issue.input) && s3LocationProblem(issue.input)) ||
      `must be an s3://bucket/folder/ location, not ${quote(issue.input)}`,
  }).superRefine((value, context) => {
    const problem = S3_FOLDER.test(value) ? s3LocationProblem(value) : undefined;
    if (problem) context.addIssue({ code: "custom", message: problem });
  });

/** The params schema. */
export const paramsSchema = (z: Zod) =>
  z.strictObject({
    database: catalogName(z, "database").optional().describe(
      "Glue/Athena database: the table's for create_table and add_partitions, the default one for query. Lowercase: only a-z, 0-9 and _.",
    ),
    table: catalogName(z, "table").optional().describe(
      "Table name (create_table, add_partitions). Lowercase: only a-z, 0-9 and _.",
    ),
    location: s3Folder(z).optional().describe(
      "s3:// folder holding the table's files, typically the StagingExecutor's dump_directory.",
    ),
    format: z.enum(["csv", "tsv", "json", "parquet"]).default("csv").describe(
      "Format of the files in location: csv, tsv, json (one object per line) or parquet.",
    ),
    columns: columnMap(z, "column").optional().describe(
      "Ordered {name: type} columns of the table; default: inferred from a sample of the files.",
    ),
    partitioned_by: columnMap(z, "partition column").optional().describe(
      "Ordered {name: type} partition columns: folders like dt=2020-09-30/ under location.",
    ),
    skip_header: z.boolean().optional().describe(
      "The first line of each csv/tsv file is a header (default true for csv and tsv).",
    ),
    if_exists: z.enum(["keep", "replace", "fail"]).default("keep").describe(
      "When the table exists: keep it (failing if its columns, SerDe, delimiter or header line differ from the files'), replace it, or fail.",
    ),
    query: z.string().min(1).optional().describe("SQL the query task runs; `?` marks a parameter."),
    query_file: z.string().min(1).optional().describe("File holding the SQL the query task runs."),
    parameters: z.array(z.union([z.string(), z.number(), z.boolean()])).optional().describe(
      "Values for the query's ? placeholders, sent as Athena execution parameters (never spliced into the SQL).",
    ),
    workgroup: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, {
      error: (issue) => `must be an Athena workgroup name, not ${quote(issue.input)}`,
    }).default("primary").describe("Athena workgroup."),
    catalog: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/, {
      error: (issue) => `must be a data catalog name, not ${quote(issue.input)}`,
    }).default("AwsDataCatalog").describe("Athena data catalog."),
    output_location: s3Folder(z).optional().describe(
      "s3:// folder for Athena's query results, unless the workgroup sets one.",
    ),
    results_to: locationSchema(z).refine(
      (v) => !isS3Url(v) || /^s3:\/\/[^/]+\/.*[^/]$/.test(v),
      {
        error: (issue) => `an s3:// results_to must name an object key, not a folder: ${quote(issue.input)}`,
      },
    ).optional().describe("Local file or s3:// key the query task writes the full result to, as CSV."),
    timeout: z.number().positive().optional().describe(
      "Seconds a query may run before lakerun stops it (StopQueryExecution) and fails the task.",
    ),
  }).refine((p) => !(p.query !== undefined && p.query_file !== undefined), {
    message: "give query or query_file, not both",
    path: ["query_file"],
  }).superRefine((p, ctx) => {
    if (p.query === undefined) return; // a query_file is checked once read, before the query starts
    const problem = placeholderProblem(p.query, p.parameters);
    if (problem) ctx.addIssue({ code: "custom", path: [problem.param], message: problem.message });
  });

/**
 * Why `sql` cannot run with `parameters`, if it cannot: Athena binds the values to the `?` placeholders in
 * order, so their numbers must match (and a literal or comment left open hides where they are).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { placeholderProblem } from "./params.ts";
 *
 * assert.equal(placeholderProblem("SELECT * FROM t WHERE units = ?", ["Dollars"]), undefined);
 * assert.deepEqual(placeholderProblem("SELECT * FROM t WHERE units = ? AND period = ?", ["Dollars"]), {
 *   param: "parameters",
 *   message: "the query has 2 ? placeholders and parameters gives 1 value",
 * });
 * ```
 */
export function placeholderProblem(
  sql: string,
  parameters: readonly unknown[] | undefined,
): { param: "query" | "parameters"; message: string } | undefined {
  let placeholders: number;
  try {
    placeholders = placeholderCount(sql);
  } catch (error) {
    return { param: "query", message: (error as Error).message };
  }
  const values = parameters?.length ?? 0;
  if (placeholders === values) return undefined;
  return {
    param: "parameters",
    message: `the query has ${plural(placeholders, "? placeholder")} and parameters gives ${
      plural(values, "value")
    }`,
  };
}

/** The validated params. */
export type Params = ParamsOf<typeof paramsSchema>;

/** The task names, in the order the docs list them. */
export const TASK_NAMES = ["create_table", "query", "add_partitions"] as const;

/** Tasks of the step: the context's list, else every task. */
export function stepTasks(context: { tasks?: readonly string[] }): readonly string[] {
  return context.tasks ?? TASK_NAMES;
}

/** True when `create_table` reads the files: to infer columns, or to choose a CSV SerDe. */
export function createTableSamples(params: Params): boolean {
  return params.columns === undefined || params.format === "csv" || params.format === "tsv";
}

/** The first line of each file is a header: `skip_header`, default true for csv and tsv. */
export function hasHeader(params: Params): boolean {
  return (params.format === "csv" || params.format === "tsv") && (params.skip_header ?? true);
}

/** `output_location` with the trailing `/` Athena expects, or `undefined`. */
export function outputLocationOf(params: Params): string | undefined {
  const location = params.output_location;
  if (location === undefined) return undefined;
  return location.endsWith("/") ? location : `${location}/`;
}

/**
 * Where `results_to` is written: the folder (local or `s3://`) and the file name in it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resultsTarget } from "./params.ts";
 *
 * assert.deepEqual(resultsTarget("s3://lake/out/r.csv", (p) => p), { folder: "s3://lake/out", name: "r.csv" });
 * assert.deepEqual(resultsTarget("out/r.csv", (p) => `/work/${p}`), { folder: "/work/out", name: "r.csv" });
 * ```
 */
export function resultsTarget(resultsTo: string, resolve: (path: string) => string) {
  if (isS3Url(resultsTo)) {
    const slash = resultsTo.lastIndexOf("/");
    return { folder: resultsTo.slice(0, slash), name: resultsTo.slice(slash + 1) };
  }
  const file = resolve(resultsTo);
  return { folder: dirname(file), name: file.slice(dirname(file).length + 1) };
}

/**
 * The execution parameters of `parameters`: each value as an SQL literal of its own (a string quoted, its
 * quotes doubled), so no value ever becomes part of the SQL text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { executionParameters } from "./params.ts";
 *
 * assert.deepEqual(executionParameters(["O'Brien", 42, true]), ["'O''Brien'", "42", "true"]);
 * ```
 */
export function executionParameters(values: readonly (string | number | boolean)[] | undefined): string[] {
  return (values ?? []).map((value) =>
    typeof value === "string" ? quoteLiteral(value, "athena-dml") : String(value)
  );
}

/** The value of a param a task cannot do without, or a one-line error naming it. */
export function required<K extends keyof Params>(
  params: Params,
  name: K,
  task: string,
): NonNullable<Params[K]> {
  const value = params[name];
  if (value === undefined || value === null) throw new Error(`${task} needs the param '${String(name)}'`);
  return value as NonNullable<Params[K]>;
}

/** create_table and add_partitions work in the Glue Data Catalog, which GetTable and DDL both address. */
export function checkCatalog(params: Params, task: string): void {
  if (params.catalog !== "AwsDataCatalog") {
    throw new Error(
      `${task} works in the AwsDataCatalog catalog only, not catalog ${JSON.stringify(params.catalog)}`,
    );
  }
}
