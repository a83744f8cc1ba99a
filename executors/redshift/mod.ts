/**
 * RedshiftExecutor: runs SQL on Amazon Redshift, creates tables, and loads files from S3 with COPY.
 *
 * Two ways to connect, chosen by the params:
 * - the **Data API** (`cluster_identifier` or `workgroup_name`, `database`, `secret_arn` or `db_user`): HTTPS
 *   to the Redshift Data API only, no network path into the VPC (what a GitHub Actions runner has);
 * - the **wire protocol** (`host`, `port` 5439, `database`, `user`, `password_env`, `ssl` on by default):
 *   PostgreSQL's protocol straight to the cluster.
 *
 * Guarantees:
 * - **All or nothing.** `execute` runs its statements in one transaction (one `BatchExecuteStatement` on the
 *   Data API); `copy_from_s3` COPYs into a temporary staging table and moves the rows into the target
 *   (append, replace by DELETE, or MERGE on `upsert_keys`) in the same transaction.
 * - **Never twice.** Each unit is recorded in the step's journal under the routine run (`CloudRunLedger`): a
 *   re-run of the same run reattaches to the Data API statement (its id, or its `ClientToken` when the id was
 *   never recorded) or skips a unit that committed, so a retried or re-run step never loads the rows twice —
 *   except over the wire protocol when lakerun is killed between the server's COMMIT and the journal write
 *   (`wire.ts`): a re-run then runs the unit again (`append`: the rows twice; use `upsert` or the Data API).
 * - **Secrets stay secret.** A password is read from the variable `password_env` names, inside the step, and
 *   appears in no output, plan, error or journal; the Data API reads `secret_arn` itself (lakerun never does).
 * - **A cancelled run cancels its statement** (`CancelStatement`, or the wire protocol's cancel request, what
 *   `pg_cancel_backend` does) before the step ends, and logs it.
 * - **Identifiers are data**: every table and column name is quoted, every value a quoted literal, and
 *   `copy_options` are checked against Redshift's COPY keywords.
 * - **Sandbox:** a wire-protocol step reaches only `host:port` and reads only `password_env` and the variables
 *   its client reads; a Data API step reaches only the Redshift Data and STS endpoints and the credential
 *   sources; without `columns`, `create_table` also reads `source`, and so does `copy_from_s3` of CSV (each
 *   file's header: COPY fills columns by position); `copy_from_s3` of JSON reads a sample of the files' keys
 *   (COPY matches them to columns by name, ignoring case only). `lakerun plan` shows it.
 *
 * @module
 */
import { defineExecutor, ParamError, requireFile } from "../../sdk/executor.ts";
import type { PermissionScope } from "../../lib/scope.ts";
import { awsRegionOf, awsServiceScope } from "../../lib/aws/scope.ts";
import { connectionScope } from "../../lib/sql/connection.ts";
import { locationScope, mergeScopes } from "../../lib/storage/locations.ts";
import { readsSamples, stepStatements } from "./iam.ts";
import { paramsSchema, wireParams } from "./params.ts";
import { runCopyFromS3, runCreateTable, runExecute } from "./tasks.ts";

const TASKS = ["execute", "create_table", "copy_from_s3"];

export default defineExecutor({
  name: "RedshiftExecutor",
  description:
    "Runs SQL on Amazon Redshift (Data API or wire protocol), creates tables, and loads S3 files with COPY through a staging table (append, replace or MERGE), all or nothing.",
  params: paramsSchema,
  permissions(params, context) {
    const tasks = context.tasks ?? TASKS;
    if (tasks.includes("create_table") && params.format === "parquet" && params.columns === undefined) {
      // what create_table would refuse once it ran (columns are inferred from csv and json files only)
      throw new ParamError(
        ["columns"],
        "create_table of parquet files needs columns ({name: type}): lakerun does not infer them from parquet",
      );
    }
    const wire = wireParams(params);
    const scopes: PermissionScope[] = [
      wire === undefined ? awsServiceScope("redshift_data", context.aws) : connectionScope(wire),
    ];
    if (tasks.includes("execute") && params.sql_file !== undefined) {
      const file = context.resolve(params.sql_file);
      requireFile(file, "sql_file", `${JSON.stringify(params.sql_file)} is not a file`);
      scopes.push({ read: [file] });
    }
    if (readsSamples(params, tasks)) scopes.push(locationScope(params.source!, "read", context));
    return mergeScopes(...scopes);
  },
  iam(params, context) {
    return stepStatements(params, context.tasks ?? TASKS, awsRegionOf(context.aws));
  },
  tasks: {
    execute: {
      description: "Runs the statements of sql or sql_file in one transaction (a Data API batch).",
      needs: [["sql", "sql_file"]],
      outputs: {
        rows_affected: "Rows the statements affected or returned, summed (when the server counts them).",
      },
      run: runExecute,
    },
    create_table: {
      description:
        "Creates table from columns, or from columns inferred from the first files under source; if_exists keeps, replaces or fails.",
      needs: ["table", ["columns", "source"]],
      outputs: {
        table: "The table, schema.table as quoted in SQL.",
        table_status: "created, replaced (if_exists: replace) or kept (if_exists: keep, an existing table).",
      },
      run: runCreateTable,
    },
    copy_from_s3: {
      description:
        "COPYs the files under source into a temporary staging table, then appends, replaces or MERGEs them into table, in one transaction; a bad value is reported with its file, line, column and reason.",
      needs: ["table", "source", "iam_role"],
      outputs: {
        rows: "Rows written into table: appended, replaced, or updated and inserted by the MERGE.",
        rows_loaded: "Rows COPY read from the files into the staging table.",
      },
      run: runCopyFromS3,
    },
  },
});
