/**
 * AthenaExecutor: tables over staged files and SQL on Amazon Athena.
 *
 * - `create_table` — `CREATE EXTERNAL TABLE` over `location`, columns inferred from a sample of the files
 *   unless given, SerDe chosen for the data, schema drift of an existing table reported
 *   (create_table.ts).
 * - `query` — runs SQL with execution parameters, reports state, rows, data scanned and engine time, logs
 *   the first rows and saves the whole result as CSV to `results_to` (query_task.ts).
 * - `add_partitions` — adds the partition folders under `location` the table lacks (partitions.ts).
 *
 * Every query is recorded in the step's journal and reattached to on a re-run of an interrupted routine
 * run, never started twice; an interruption or `timeout` stops it (queries.ts).
 *
 * The step reaches Athena's endpoint and the credential sources; Glue's endpoint only for create_table
 * (GetTable, the existing-table check); S3 only where the step itself reads or writes it (sampling and
 * listing `location`, an S3 `results_to`); the local file system only for `query_file` and the folder of a
 * local `results_to`.
 *
 * @module
 */
import { defineExecutor, ParamError, requireFile } from "../../sdk/executor.ts";
import type { IamStatement, PermissionContext, PermissionScope } from "../../sdk/executor.ts";
import {
  allow,
  athenaResultsStatements,
  athenaWorkgroupArn,
  glueCatalogArn,
  glueDatabaseArn,
  glueTableArn,
  s3ListStatement,
  s3ObjectArn,
  s3Statements,
} from "../../lib/aws/iam.ts";
import { awsRegionOf, awsServiceScope } from "../../lib/aws/scope.ts";
import { isS3Url } from "../../lib/aws/s3/url.ts";
import { locationScope, mergeScopes } from "../../lib/storage/locations.ts";
import { addPartitions } from "./partitions.ts";
import { createTable } from "./create_table.ts";
import {
  createTableSamples,
  outputLocationOf,
  type Params,
  paramsSchema,
  resultsTarget,
  stepTasks,
} from "./params.ts";
import { runQueryTask } from "./query_task.ts";

/** The step's permission scope: see the module documentation. */
export function athenaPermissions(params: Params, context: PermissionContext): PermissionScope {
  const tasks = stepTasks(context);
  const scopes: PermissionScope[] = [awsServiceScope("athena", context.aws)];
  if (tasks.includes("create_table") && params.format === "parquet" && params.columns === undefined) {
    // what create_table would refuse once it ran (columns are inferred from csv, tsv and json files only)
    throw new ParamError(
      ["columns"],
      "create_table of parquet files needs columns ({name: type}): lakerun does not infer them from parquet",
    );
  }
  if (tasks.includes("create_table")) {
    scopes.push(awsServiceScope("glue", context.aws));
    if (params.location && createTableSamples(params)) {
      scopes.push(locationScope(params.location, "read", context));
    }
  }
  if (tasks.includes("add_partitions") && params.location) {
    scopes.push(locationScope(params.location, "read", context));
  }
  if (tasks.includes("query")) {
    if (params.query_file !== undefined) {
      const file = context.resolve(params.query_file);
      requireFile(file, "query_file", `${JSON.stringify(params.query_file)} is not a file`);
      scopes.push({ read: [file] });
    }
    if (params.results_to !== undefined) {
      const { folder } = resultsTarget(params.results_to, context.resolve);
      // an S3 key: its bucket's endpoint; a local file: its folder only
      scopes.push(locationScope(isS3Url(params.results_to) ? params.results_to : folder, "write", context));
    }
  }
  return mergeScopes(...scopes);
}

/**
 * The IAM statements the step's tasks need. Athena reads a table's objects and writes query results with the
 * caller's permissions, so these are S3 grants too:
 *
 * - Athena's query actions on the workgroup;
 * - on `output_location` (when set), what Athena does there for every query, DDL included
 *   ({@link athenaResultsStatements}: GetBucketLocation, ListBucket and ListBucketMultipartUploads on the
 *   bucket; GetObject, PutObject, AbortMultipartUpload and ListMultipartUploadParts on the folder);
 * - for create_table: Glue GetTable (lakerun's existing-table check), and GetDatabase, CreateTable (and
 *   DeleteTable with `if_exists: replace`) which Athena's DDL performs; listing `location` and reading its
 *   objects when the files are sampled;
 * - for add_partitions: the Glue partition actions of `SHOW PARTITIONS` and `ALTER TABLE ADD PARTITION`, and
 *   listing `location` (no object is read);
 * - for query: the catalog lookups of the step's database, listing `location` and reading its objects (the
 *   step's own table, which the SQL most likely reads), and writing an S3 `results_to` (PutObject,
 *   AbortMultipartUpload for a failed large upload, GetObject and DeleteObject for the check of a completed
 *   multipart upload).
 *
 * What the params cannot say — the workgroup's result location without `output_location`, the tables the SQL
 * reads elsewhere — is not granted: {@link athenaIamNotes} says so.
 */
export function athenaIam(params: Params, context: PermissionContext): IamStatement[] {
  const tasks = stepTasks(context);
  const region = awsRegionOf(context.aws);
  const statements: IamStatement[] = [
    allow([
      "athena:GetQueryExecution",
      "athena:GetQueryResults",
      "athena:StartQueryExecution",
      "athena:StopQueryExecution",
    ], [athenaWorkgroupArn(region, params.workgroup)]),
  ];
  const output = outputLocationOf(params);
  if (output) statements.push(...athenaResultsStatements(output, { region }));
  const { database, table, location } = params;
  const tableArns = (name: string) => [
    glueCatalogArn(region),
    glueDatabaseArn(region, database!),
    glueTableArn(region, database!, name),
  ];
  if (tasks.includes("create_table") && database && table) {
    const actions = ["glue:CreateTable", "glue:GetDatabase", "glue:GetTable"];
    if (params.if_exists === "replace") actions.push("glue:DeleteTable");
    statements.push(allow(actions, tableArns(table)));
    if (location && createTableSamples(params)) {
      statements.push(...s3Statements(location, "read", { region }));
    }
  }
  if (tasks.includes("add_partitions") && database && table) {
    statements.push(allow([
      "glue:BatchCreatePartition",
      "glue:CreatePartition",
      "glue:GetDatabase",
      "glue:GetPartitions",
      "glue:GetTable",
    ], tableArns(table)));
    if (location) statements.push(s3ListStatement(location, { region }));
  }
  if (tasks.includes("query")) {
    if (database) {
      statements.push(allow(["glue:GetDatabase", "glue:GetPartitions", "glue:GetTable"], tableArns("*")));
    }
    // Athena reads the table's objects as the caller
    if (location) statements.push(...s3Statements(location, "read", { region }));
    if (params.results_to !== undefined && isS3Url(params.results_to)) {
      statements.push(allow(
        ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
        [s3ObjectArn(params.results_to, { region })],
      ));
    }
  }
  return statements;
}

/**
 * What {@link athenaIam} cannot grant, for `plan --iam` to say on standard error: the query result location
 * when the workgroup sets it (no `output_location`), and, for `query`, the tables its SQL reads beyond the
 * step's own database and `location`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import athena, { athenaIamNotes } from "./mod.ts";
 *
 * const params = athena.params(z).parse({ database: "lake", query: "SELECT 1", output_location: "s3://results/a" });
 * assert.deepEqual(athenaIamNotes(params, { cwd: "/w", resolve: (p) => p, tasks: ["create_table"] }), []);
 * assert.match(athenaIamNotes(params, { cwd: "/w", resolve: (p) => p, tasks: ["query"] })[0], /^the tables/);
 * ```
 */
export function athenaIamNotes(params: Params, context: PermissionContext): string[] {
  const tasks = stepTasks(context);
  const notes: string[] = [];
  if (outputLocationOf(params) === undefined) {
    const workgroup = JSON.stringify(params.workgroup);
    notes.push(
      `query results: workgroup ${workgroup} sets where they go (no output_location): grant ` +
        "s3:GetBucketLocation, s3:ListBucket and s3:ListBucketMultipartUploads on its bucket, and " +
        "s3:GetObject, s3:PutObject, s3:AbortMultipartUpload and s3:ListMultipartUploadParts under it",
    );
  }
  if (tasks.includes("query")) {
    const granted = [
      ...(params.database ? [`Glue reads in database ${JSON.stringify(params.database)}`] : []),
      ...(params.location ? [`S3 reads under ${params.location}`] : []),
    ];
    const what = granted.length ? `granted are ${granted.join(" and ")}` : "nothing is granted";
    notes.push(
      `the tables the query reads: ${what}; a table in another database or location needs ` +
        "glue:GetTable and glue:GetPartitions on it, and s3:GetObject and s3:ListBucket on its location",
    );
  }
  return notes;
}

export default defineExecutor({
  name: "AthenaExecutor",
  description:
    "Creates Athena tables over staged S3 files (columns inferred, schema drift reported), adds their partitions and runs SQL; a re-run reattaches to its queries instead of starting them twice.",
  params: paramsSchema,
  permissions: athenaPermissions,
  iam: athenaIam,
  iamNotes: athenaIamNotes,
  tasks: {
    create_table: {
      description: "CREATE EXTERNAL TABLE over location, with columns inferred from the files unless given.",
      needs: ["database", "table", "location"],
      outputs: {
        table: "The table, database.table.",
        table_status: "created, replaced (if_exists: replace) or kept (if_exists: keep, an existing table).",
      },
      run: createTable,
    },
    query: {
      description: "Runs query (or query_file), reports it, and saves the full result to results_to.",
      needs: [["query", "query_file"]],
      outputs: {
        query_execution_id: "Athena's id of the query.",
        rows:
          "Result rows (the header apart): all of them with results_to; without it, only when there are at most 100.",
        results_to: "Where the result was saved (results_to as given), when set.",
        output_location: "The S3 object Athena wrote the result to (s3://…/ID.csv), when Athena says.",
        data_scanned_bytes: "Bytes the query scanned (Athena's statistics), when Athena says.",
      },
      run: runQueryTask,
    },
    add_partitions: {
      description:
        "Adds the partition folders under location that the table lacks (ALTER TABLE ADD PARTITION).",
      needs: ["database", "table", "location", "partitioned_by"],
      outputs: { partitions_added: "Partitions added (0 when the table had them all)." },
      run: addPartitions,
    },
  },
});
