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
import { defineExecutor } from "../../sdk/executor.ts";
import type { IamStatement, PermissionContext, PermissionScope } from "../../sdk/executor.ts";
import {
  allow,
  athenaWorkgroupArn,
  glueCatalogArn,
  glueDatabaseArn,
  glueTableArn,
  s3Arns,
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
    if (params.query_file !== undefined) scopes.push({ read: [context.resolve(params.query_file)] });
    if (params.results_to !== undefined) {
      const { folder } = resultsTarget(params.results_to, context.resolve);
      // an S3 key: its bucket's endpoint; a local file: its folder only
      scopes.push(locationScope(isS3Url(params.results_to) ? params.results_to : folder, "write", context));
    }
  }
  return mergeScopes(...scopes);
}

/**
 * The IAM statements the step's tasks need:
 *
 * - Athena's query actions on the workgroup;
 * - on `output_location` (when set), what Athena does there with the caller's permissions: GetBucketLocation
 *   and ListBucket on the bucket, GetObject and PutObject on the folder (GetQueryResults reads the results);
 * - for create_table: Glue GetTable (lakerun's existing-table check), and GetDatabase, CreateTable (and
 *   DeleteTable with `if_exists: replace`) which Athena's DDL performs; listing `location` and reading its
 *   objects when the files are sampled;
 * - for add_partitions: the Glue partition actions of `SHOW PARTITIONS` and `ALTER TABLE ADD PARTITION`, and
 *   listing `location` (no object is read);
 * - for query: the catalog lookups of the step's database (the tables the SQL reads are not known from the
 *   params, nor their S3 data), and writing an S3 `results_to` (PutObject, AbortMultipartUpload for a
 *   failed large upload, GetObject and DeleteObject for the check of a completed multipart upload).
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
  if (output) {
    const arns = s3Arns(output, { region });
    statements.push(
      allow(["s3:GetBucketLocation", "s3:ListBucket"], [arns.bucket]),
      allow(["s3:GetObject", "s3:PutObject"], [arns.objects]),
    );
  }
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
    if (params.results_to !== undefined && isS3Url(params.results_to)) {
      statements.push(allow(
        ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
        [s3ObjectArn(params.results_to, { region })],
      ));
    }
  }
  return statements;
}

export default defineExecutor({
  name: "AthenaExecutor",
  description:
    "Creates Athena tables over staged S3 files (columns inferred, schema drift reported), adds their partitions and runs SQL; a re-run reattaches to its queries instead of starting them twice.",
  params: paramsSchema,
  permissions: athenaPermissions,
  iam: athenaIam,
  tasks: {
    create_table: {
      description: "CREATE EXTERNAL TABLE over location, with columns inferred from the files unless given.",
      needs: ["database", "table", "location"],
      run: createTable,
    },
    query: {
      description: "Runs query (or query_file), reports it, and saves the full result to results_to.",
      needs: [["query", "query_file"]],
      run: runQueryTask,
    },
    add_partitions: {
      description:
        "Adds the partition folders under location that the table lacks (ALTER TABLE ADD PARTITION).",
      needs: ["database", "table", "location", "partitioned_by"],
      run: addPartitions,
    },
  },
});
