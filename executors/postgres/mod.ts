/**
 * PostgresExecutor: runs SQL in PostgreSQL and loads staged files into it.
 *
 * - `execute`: the statements of `sql` / `sql_file`, in one transaction.
 * - `create_table`: the table from `columns`, or from columns inferred from the first staged files;
 *   `if_exists` says what happens to an existing one.
 * - `load`: every file under `source` (a local folder or `s3://` prefix) through `COPY … FROM STDIN`, then
 *   append / replace / upsert into `table`, all in one transaction. It reports the output `rows` (the rows it wrote), for
 *   later steps.
 *
 * Each task commits at most once per routine run: a re-run of an interrupted run skips what was committed
 * (see session.ts). The step reaches only the server's `host:port` (and S3 for an `s3://` source) and reads
 * only `password_env` and the variables the `pg` client reads; the password never appears in a routine, a
 * message or the journal.
 *
 * @module
 */
import { defineExecutor, requireFile } from "../../sdk/executor.ts";
import { s3Statements } from "../../lib/aws/iam.ts";
import { isS3Url } from "../../lib/aws/s3/url.ts";
import { connectionScope } from "../../lib/sql/connection.ts";
import { locationScope, mergeScopes } from "../../lib/storage/locations.ts";
import { execute } from "./execute.ts";
import { load } from "./load.ts";
import { paramsSchema } from "./params.ts";
import { createTable } from "./tables.ts";

export default defineExecutor({
  name: "PostgresExecutor",
  description:
    "Runs SQL in PostgreSQL in one transaction, creates tables (columns given or inferred from staged files) and loads staged CSV, JSON or parquet files with COPY: append, replace or upsert, all or nothing.",
  params: paramsSchema,
  permissions(params, context) {
    const tasks = context.tasks ?? ["execute", "create_table", "load"];
    const scopes = [connectionScope(params, context.resolve)];
    if (params.sql_file && tasks.includes("execute")) {
      const file = context.resolve(params.sql_file);
      requireFile(file, "sql_file", `${JSON.stringify(params.sql_file)} is not a file`);
      scopes.push({ read: [file] });
    }
    const readsSource = tasks.includes("load") || (tasks.includes("create_table") && !params.columns);
    if (params.source && readsSource) scopes.push(locationScope(params.source, "read", context));
    return mergeScopes(...scopes);
  },
  iam(params, context) {
    const tasks = context.tasks ?? ["execute", "create_table", "load"];
    const readsSource = tasks.includes("load") || (tasks.includes("create_table") && !params.columns);
    if (!params.source || !isS3Url(params.source) || !readsSource) return [];
    return s3Statements(params.source, "read", { region: context.s3?.region ?? context.aws?.region });
  },
  tasks: {
    execute: {
      description: "Runs the statements of sql or sql_file in one transaction.",
      needs: [["sql", "sql_file"]],
      run: execute,
    },
    create_table: {
      description:
        "Creates table from columns (or columns inferred from the first files of source); if_exists: keep (fail when its columns differ), replace, fail.",
      needs: ["table", ["columns", "source"]],
      run: createTable,
    },
    load: {
      description:
        "Streams every file of source through COPY FROM STDIN, then appends, replaces or upserts into table, in one transaction.",
      needs: ["table", "source"],
      outputs: {
        rows: "Rows the load committed (a load this routine run committed before, on a re-run: its rows).",
      },
      run: load,
    },
  },
});
