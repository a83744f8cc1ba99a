/**
 * The RedshiftExecutor's tasks over a {@link SqlRunner}: `execute`, `create_table` and `copy_from_s3`.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { AwsJsonClient } from "../../lib/aws/json_client.ts";
import { CloudRunLedger } from "../../lib/cloud/ledger.ts";
import { formatDuration, plural } from "../../lib/format.ts";
import {
  checkFailure,
  type LoadCheck,
  loadPlan,
  qualifiedName,
  STAGING_TABLE,
} from "../../lib/sql/load_plan.ts";
import { jsonKeyMismatches, jsonKeysMessage, redshiftCopySql } from "../../lib/sql/redshift_copy.ts";
import {
  isLoadFailure,
  type LoadErrorDetail,
  loadErrorsFromRows,
  loadErrorsSql,
  type LoadErrorTable,
  loadFailureMessage,
} from "../../lib/sql/redshift_load_errors.ts";
import { readSqlFile } from "../../lib/sql/sql_file.ts";
import { transactionScript } from "../../lib/sql/statements.ts";
import { schemaDrift, sqlCreateTable, type WantedColumn } from "../../lib/tables/ddl.ts";
import { quoteLiteral, type TableName } from "../../lib/tables/identifiers.ts";
import { DataApiRunner } from "./data_api.ts";
import { sourceFolder } from "./iam.ts";
import { connectionOf, type Params, REDSHIFT_SQL, tableOf } from "./params.ts";
import { recordsOf, RedshiftStatementError, type ResultTable, type SqlRunner } from "./runner.ts";
import { columnsFromHeaders, inferFromSource, jsonKeysOfSource } from "./sample.ts";
import { WireRunner } from "./wire.ts";

/** Rows of a result shown in the log. */
const PREVIEW_ROWS = 10;

/** The runner for the step's connection (Data API or wire), with the step's journal. */
export async function openRunner(context: TaskContext<Params>): Promise<SqlRunner> {
  const ledger = await CloudRunLedger.open(context.stateDir, context.runId, context.stepId);
  const connection = connectionOf(context.params);
  if (connection.kind === "wire") return new WireRunner(connection.target, ledger, context);
  const client = new AwsJsonClient("redshift_data", {
    settings: context.aws,
    onRetry: ({ operation, code, attempt, delayMs }) =>
      context.log(`${operation}: ${code}; retry ${attempt} in ${formatDuration(delayMs)}`),
  });
  return new DataApiRunner(client, ledger, connection, context);
}

async function withRunner(context: TaskContext<Params>, work: (runner: SqlRunner) => Promise<void>) {
  const runner = await openRunner(context);
  try {
    await work(runner);
  } finally {
    await runner.close();
  }
}

// ---------------------------------------------------------------------------------------------- execute

/** `execute`: the statements of `sql` / `sql_file`, in one transaction (one batch on the Data API). */
export function runExecute(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  return withRunner(context, async (runner) => {
    let text: string;
    if (params.sql !== undefined) {
      text = params.sql;
    } else if (params.sql_file !== undefined) {
      text = await readSqlFile(context.resolve(params.sql_file), "sql_file", params.sql_file);
    } else {
      throw new Error("execute needs sql or sql_file");
    }
    let statements;
    try {
      statements = transactionScript(text, REDSHIFT_SQL);
    } catch (error) {
      throw new Error(`${params.sql !== undefined ? "sql" : params.sql_file}: ${(error as Error).message}`);
    }
    let outcome;
    try {
      outcome = await runner.run("execute", statements.map((s) => s.text), { wantResult: true });
    } catch (error) {
      if (!(error instanceof RedshiftStatementError)) throw error;
      const statement = statements[error.index];
      throw new Error(
        `statement ${statement.index} (line ${statement.line}) failed${
          statements.length > 1 ? "; nothing of the others was committed" : ""
        }: ${error.serverMessage || error.message}`,
        { cause: error },
      );
    }
    const counted = outcome.rows.filter((rows) => rows >= 0);
    if (counted.length > 0) {
      // not `rows`: copy_from_s3's, in the same step, is the rows a load wrote
      context.report({
        type: "output",
        name: "rows_affected",
        value: counted.reduce((sum, n) => sum + n, 0),
      });
    }
    if (outcome.reused) return;
    context.log(
      `ran ${plural(statements.length, "statement")} through ${runner.label}${
        statements.length > 1 ? " in one transaction" : ""
      }`,
    );
    outcome.rows.forEach((rows, i) => {
      if (rows >= 0) {
        context.log(
          `  statement ${statements[i].index} (line ${statements[i].line}): ${plural(rows, "row")}`,
        );
      }
    });
    if (outcome.result) { for (const line of previewLines(outcome.result)) context.log(line); }
  });
}

/** The first rows of a result, `|` between values, for the log. */
function previewLines(table: ResultTable): string[] {
  const show = (value: unknown) => (value === null ? "NULL" : String(value));
  const lines = [`  ${table.columns.join(" | ")}`];
  for (const row of table.rows.slice(0, PREVIEW_ROWS)) lines.push(`  ${row.map(show).join(" | ")}`);
  if (table.rows.length > PREVIEW_ROWS) {
    lines.push(`  … ${plural(table.rows.length - PREVIEW_ROWS, "more row")}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------- tables

/** An existing table's columns with their types, in order; empty when the table does not exist. */
export async function tableColumns(
  runner: SqlRunner,
  name: TableName,
): Promise<{ name: string; type: string }[]> {
  const sql = "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale " +
    `FROM information_schema.columns WHERE table_schema = ${quoteLiteral(name.schema, "redshift")} ` +
    `AND table_name = ${quoteLiteral(name.table, "redshift")} ORDER BY ordinal_position`;
  return recordsOf(await runner.query(sql)).map((row) => {
    const base = String(row.data_type);
    const length = row.character_maximum_length;
    const type = length !== null && length !== undefined && /char/.test(base)
      ? `${base}(${length})`
      : base === "numeric" && row.numeric_precision !== null
      ? `numeric(${row.numeric_precision},${row.numeric_scale ?? 0})`
      : base;
    return { name: String(row.column_name), type };
  });
}

/** `create_table`: from `columns` or inferred from the files under `source`; `if_exists` decides. */
export function runCreateTable(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  return withRunner(context, async (runner) => {
    const name = tableOf(params, "create_table");
    const target = qualifiedName(name, "redshift");
    let columns: WantedColumn[];
    if (params.columns) {
      columns = params.columns;
    } else {
      const inferred = await inferFromSource(params, {
        cwd: context.cwd,
        s3: context.s3,
        signal: context.signal,
      });
      for (const reason of inferred.reasons) context.log(reason);
      if (params.format === "json") {
        // a column named otherwise than its key (`Order ID` → order_id) is one COPY never fills: refused
        // before anything is sent, rather than a table whose loads put NULL there
        const mismatches = inferred.columns.filter((c) => c.source.toLowerCase() !== c.name.toLowerCase())
          .map((c) => ({ key: c.source, column: c.name }));
        if (mismatches.length > 0) {
          throw new Error(
            `${jsonKeysMessage(mismatches, `the files under ${params.source}`)}; no table was created`,
          );
        }
      }
      columns = inferred.columns.map(({ name, type, onlyEmpty }) => ({ name, type, onlyEmpty }));
      context.log(
        `columns inferred from ${params.source}: ${columns.map((c) => `${c.name} ${c.type}`).join(", ")}`,
      );
    }
    const create = (ifNotExists: boolean) =>
      sqlCreateTable({ dialect: "redshift", schema: name.schema, table: name.table, columns, ifNotExists });
    if (params.if_exists === "keep") {
      const existing = await tableColumns(runner, name);
      if (existing.length > 0) {
        const drift = schemaDrift(existing, columns, {
          positional: params.format !== "json",
          inferred: params.columns ? undefined : "redshift",
        });
        context.log(
          `table ${target} exists: kept${
            drift.length ? `; it differs from the columns wanted:` : ", same columns"
          }`,
        );
        for (const line of drift) context.log(`  ${line}`);
        reportTable(context, target, "kept");
        return;
      }
      await runner.run("create_table", [create(true)]);
    } else if (params.if_exists === "replace") {
      // the same statements whether or not the table exists: a re-run of this run finds them done in the journal
      await runner.run("create_table", [`DROP TABLE IF EXISTS ${target}`, create(false)]);
    } else {
      try {
        await runner.run("create_table", [create(false)]);
      } catch (error) {
        if (error instanceof RedshiftStatementError && /already exists/i.test(error.serverMessage)) {
          throw new Error(`table ${target} already exists (if_exists: fail)`, { cause: error });
        }
        throw error;
      }
    }
    context.log(`created table ${target} (${plural(columns.length, "column")}) through ${runner.label}`);
    reportTable(context, target, params.if_exists === "replace" ? "replaced" : "created");
  });
}

/** create_table's outputs, as Athena's: the table and what became of it. */
function reportTable(context: TaskContext<Params>, table: string, status: "created" | "replaced" | "kept") {
  context.report({ type: "output", name: "table", value: table });
  context.report({ type: "output", name: "table_status", value: status });
}

// ---------------------------------------------------------------------------------------------- copy

/** The statements of a load: the staging table, the COPY, the move into the target. */
export interface LoadStatements {
  sqls: string[];
  /** The COPY's position in `sqls`. */
  copyIndex: number;
  /** The positions in `sqls` of the statements whose row counts add up to the rows written. */
  writesIndexes: number[];
  /** The statements that fail when the staged rows break an upsert's rule, by position in `sqls`. */
  checks: Map<number, LoadCheck>;
  notes: string[];
}

/**
 * The statements `copy_from_s3` runs in one transaction, for a target whose columns are `columns`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadStatements } from "./tasks.ts";
 *
 * const load = loadStatements({
 *   source: "s3://lake/staging/sales", iam_role: "arn:aws:iam::123456789012:role/load", format: "csv",
 *   copy_options: [], mode: "append",
 * } as never, { schema: "raw", table: "sales" }, ["id", "amount"]);
 * assert.deepEqual(load.sqls, [
 *   'CREATE TEMPORARY TABLE "lakerun_staging" AS SELECT "id", "amount" FROM "raw"."sales" WHERE 1 = 0',
 *   `COPY "lakerun_staging" ("id", "amount") FROM 's3://lake/staging/sales/' IAM_ROLE 'arn:aws:iam::123456789012:role/load' FORMAT AS CSV IGNOREHEADER 1`,
 *   'INSERT INTO "raw"."sales" ("id", "amount") SELECT "id", "amount" FROM "lakerun_staging"',
 *   'DROP TABLE "lakerun_staging"',
 * ]);
 * assert.equal(load.copyIndex, 1);
 * assert.deepEqual(load.writesIndexes, [2]);
 * ```
 */
export function loadStatements(params: Params, name: TableName, columns: readonly string[]): LoadStatements {
  if (params.source === undefined) {
    throw new Error("copy_from_s3 needs source (the s3:// folder of the files)");
  }
  if (params.iam_role === undefined) {
    throw new Error("copy_from_s3 needs iam_role (the role Redshift reads S3 with)");
  }
  const plan = loadPlan({
    dialect: "redshift",
    target: name,
    columns,
    mode: params.mode,
    upsertKeys: params.upsert_keys,
    stagingTable: STAGING_TABLE,
  });
  const copy = redshiftCopySql({
    table: STAGING_TABLE,
    columns,
    source: sourceFolder(params.source),
    iamRole: params.iam_role,
    format: params.format,
    options: params.copy_options,
  });
  const copyIndex = plan.before.length;
  return {
    sqls: [...plan.before, copy, ...plan.after],
    copyIndex,
    writesIndexes: plan.writes.map((index) => copyIndex + 1 + index),
    checks: new Map([...plan.checks].map(([index, check]) => [copyIndex + 1 + index, check])),
    notes: plan.notes,
  };
}

/** `copy_from_s3`: COPY into a temporary staging table, then append / replace / MERGE, all in one unit. */
export function runCopyFromS3(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  return withRunner(context, async (runner) => {
    const name = tableOf(params, "copy_from_s3");
    const target = qualifiedName(name, "redshift");
    if (params.source === undefined) {
      throw new Error("copy_from_s3 needs source (the s3:// folder of the files)");
    }
    if (params.iam_role === undefined) {
      throw new Error("copy_from_s3 needs iam_role (the role Redshift reads S3 with)");
    }
    const existing = await tableColumns(runner, name);
    if (existing.length === 0) {
      throw new Error(
        `table ${target} does not exist (or this user cannot see it): run create_table first ` +
          `(tasks: ["create_table", "copy_from_s3"])`,
      );
    }
    const ownColumns = existing.map((column) => column.name);
    const headers = await columnsFromHeaders(params, ownColumns, {
      cwd: context.cwd,
      s3: context.s3,
      signal: context.signal,
      tableName: target,
      log: context.log,
    });
    if (headers && headers.columns.join("\u0000") !== ownColumns.join("\u0000")) {
      context.log(
        `the headers of ${plural(headers.files, "file")} give the columns ${headers.columns.join(", ")}: ` +
          "COPY fills those, in that order",
      );
    }
    const columns = params.columns?.map((column) => column.name) ?? headers?.columns ?? ownColumns;
    if (params.format === "json") await checkJsonKeys(context, columns);
    const load = loadStatements(params, name, columns);
    for (const note of load.notes) context.log(note);
    let outcome;
    try {
      outcome = await runner.run("copy_from_s3", load.sqls);
    } catch (error) {
      if (!(error instanceof RedshiftStatementError)) throw error;
      const folder = sourceFolder(params.source);
      const check = load.checks.get(error.index);
      // a check fails by the NULL it inserts into its column, which the server's message names (Redshift:
      // "Cannot insert a NULL value into column …"); anything else (a timeout, a cancel) is said as it is
      if (check && error.serverMessage.includes(check.column)) {
        // the staging table went with the transaction: no example of the key
        const found = checkFailure(check, { keys: params.upsert_keys ?? [], table: target });
        throw new Error(`${found} (files under ${folder}); nothing was committed`, { cause: error });
      }
      if (error.index === load.copyIndex && isLoadFailure(error.serverMessage)) {
        const details = await loadErrors(runner, folder, error, context.log);
        throw new Error(
          `${loadFailureMessage(target, error.serverMessage, details, context.mask)}; nothing was committed`,
          {
            cause: error,
          },
        );
      }
      const what = error.index === load.copyIndex
        ? `COPY from ${folder}`
        : `statement ${error.index + 1} of the load`;
      throw new Error(`${what} into ${target} failed; nothing was committed: ${error.serverMessage}`, {
        cause: error,
      });
    }
    const loaded = outcome.rows[load.copyIndex];
    const counts = load.writesIndexes.map((index) => outcome.rows[index]);
    // no write statement named: the staged rows are the rows written (LoadPlan.writes)
    const written = counts.length === 0
      ? loaded
      : counts.some((n) => n === undefined || n < 0)
      ? undefined
      : counts.reduce((sum, n) => sum + n, 0);
    // from the journal too when this run committed the load in an earlier attempt: the same values
    if (written !== undefined && written >= 0) {
      context.report({ type: "output", name: "rows", value: written });
    }
    if (loaded !== undefined && loaded >= 0) {
      context.report({ type: "output", name: "rows_loaded", value: loaded });
    }
    if (outcome.reused) return;
    const rows = (n: number | undefined) => (n === undefined || n < 0 ? "some rows" : plural(n, "row"));
    context.log(
      `loaded ${rows(loaded)} from ${sourceFolder(params.source)} into ${target} (${params.mode}: ${
        rows(written)
      } written) in one transaction through ${runner.label}`,
    );
  });
}

/**
 * JSON: COPY (`'auto ignorecase'`) fills each column from the key of its name, ignoring case only. A sampled
 * key that lakerun's naming rule puts in a column of another name (`Order ID` → order_id) would load NULL
 * there without an error: refused before anything is sent. A given column that no sampled key names is
 * logged (the sample may lack a key later rows have).
 */
async function checkJsonKeys(context: TaskContext<Params>, columns: readonly string[]): Promise<void> {
  const { params } = context;
  const sampled = await jsonKeysOfSource(params, {
    cwd: context.cwd,
    s3: context.s3,
    signal: context.signal,
  });
  if (sampled === undefined) {
    context.log(
      `could not read a sample of the JSON files under ${params.source} (none, or compressed or encoded so ` +
        "that lakerun cannot read them): their keys are not checked against the columns",
    );
    return;
  }
  const where = sampled.files.length === 1
    ? sampled.files[0]
    : `the files under ${params.source} (sampled: ${sampled.files.join(", ")})`;
  const mismatches = jsonKeyMismatches(sampled.keys, columns);
  if (mismatches.length > 0) throw new Error(`${jsonKeysMessage(mismatches, where)}; no COPY was sent`);
  const lower = new Set(sampled.keys.map((key) => key.toLowerCase()));
  const unnamed = columns.filter((column) => !lower.has(column.toLowerCase()));
  if (unnamed.length > 0) {
    context.log(
      `no key of the sampled JSON objects names ${
        unnamed.join(", ")
      } (ignoring case): COPY loads NULL there ` +
        "unless later objects have such a key",
    );
  }
}

/** The details of a failed COPY, from `sys_load_error_detail`, else `stl_load_errors`. */
async function loadErrors(
  runner: SqlRunner,
  source: string,
  error: RedshiftStatementError,
  log: (message: string) => void,
): Promise<LoadErrorDetail[]> {
  // a minute of slack: the Data API's clock and the cluster's may differ a little
  const since = new Date(error.startedAt.getTime() - 60_000);
  const problems: string[] = [];
  for (const table of ["sys_load_error_detail", "stl_load_errors"] as LoadErrorTable[]) {
    try {
      const rows = await runner.query(loadErrorsSql({ source, since, table, session: error.session }));
      return loadErrorsFromRows(recordsOf(rows));
    } catch (problem) {
      problems.push(`${table}: ${(problem as Error).message}`);
    }
  }
  log(`could not read the load errors (${problems.join("; ")})`);
  return [];
}
