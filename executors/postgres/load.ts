/**
 * The `load` task: every staged file of `source` through `COPY … FROM STDIN`, one COPY per file, and the
 * append / replace / upsert into the table, all in ONE transaction (lib/sql/load_plan.ts), committed at most
 * once per routine run (session.ts). The bytes go from storage to the server's socket as they arrive:
 * CSV is scanned only for what COPY would misread (sources.ts), and no file is ever held in memory whole.
 *
 * A row the server refuses fails the task with the file, its line (or row), the column and the value, and
 * nothing is committed.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { fingerprintOf } from "../../lib/cloud/ledger.ts";
import { formatBytes, plural } from "../../lib/format.ts";
import { connectionTarget } from "../../lib/sql/connection.ts";
import {
  checkFailure,
  type LoadPlan,
  loadPlan,
  qualifiedName,
  upsertMethodProblem,
} from "../../lib/sql/load_plan.ts";
import { copyErrorPosition, PostgresError, type PostgresSession } from "../../lib/sql/postgres_client.ts";
import type { TableName } from "../../lib/tables/identifiers.ts";
import { headerFields } from "../../lib/tables/sample.ts";
import { openLocation } from "../../lib/storage/locations.ts";
import type { Storage, StoredFile } from "../../lib/storage/mod.ts";
import { oncePerRun, withSession } from "./session.ts";
import {
  type CopyInput,
  copyInput,
  mapFields,
  parquetFieldNames,
  parquetMetadata,
  sourceFiles,
} from "./sources.ts";
import {
  columnsInferredByCreateTable,
  createTableSql,
  inferredTypes,
  parquetTypes,
  showTable,
  tableColumns,
  tableNameOf,
  uniqueIndexes,
  wantedColumns,
} from "./tables.ts";
import { RefusedValue, StrayQuote } from "../../lib/sql/postgres_copy_csv.ts";
import type { ColumnSpec } from "../../lib/tables/ddl.ts";
import type { Params } from "./params.ts";
import { copyFromStdinSql } from "../../lib/sql/postgres_copy.ts";

/** `load`: the staged files into the table, in one transaction. */
export async function load(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  const name = tableNameOf(params);
  if (!params.source) throw new Error("load needs source: the staging folder whose files are loaded");
  const storage = await openLocation(params.source, context);
  const files = await sourceFiles(storage, context.log, context.signal);
  if (files.length === 0) {
    context.log(`no files in ${storage.url}: nothing to load; ${showTable(name)} is left as it is`);
    return;
  }
  const total = files.reduce((sum, file) => sum + file.size, 0);
  const target = connectionTarget(params, context.resolve);
  const fingerprint = fingerprintOf(
    "load",
    [target.host, target.port, target.database],
    name,
    params.mode,
    params.upsert_keys,
    params.format,
    params.header,
    files.map(({ path, size, etag, mtime }) => [path, size, etag, mtime]),
  );
  await withSession(context, async (session) => {
    const outcome = await oncePerRun(
      context,
      session,
      "load",
      fingerprint,
      () => loadFiles(context, session, storage, files, name, total),
    );
    if (!outcome.committed) {
      context.log(`load skipped: ${outcome.reason}`);
      if (outcome.result) context.report({ type: "output", name: "rows", value: outcome.result.rows });
      return;
    }
    const { rows } = outcome.result;
    context.report({ type: "output", name: "rows", value: rows });
    context.log(
      `${params.mode}: ${plural(rows, "row")} from ${plural(files.length, "file")} (${formatBytes(total)}) ` +
        `committed into ${showTable(name)}`,
    );
    context.report({ type: "moved", files: files.length, bytes: total });
  });
}

async function loadFiles(
  context: TaskContext<Params>,
  session: PostgresSession,
  storage: Storage,
  files: StoredFile[],
  name: TableName,
  total: number,
): Promise<{ rows: number }> {
  const { params } = context;
  let existing = await tableColumns(session, name);
  // the columns lakerun chose, made by this load or by create_table before it in this step
  let chosen: ColumnSpec[];
  if (existing === undefined) {
    chosen = await wantedColumns(context, { storage, files });
    await session.query(createTableSql(name, chosen));
    context.log(`created ${showTable(name)} (${plural(chosen.length, "column")}) in the load's transaction`);
    existing = (await tableColumns(session, name))!;
  } else {
    chosen = columnsInferredByCreateTable(context, name);
  }
  // CSV, JSON: the types inference chose, which every value must fit; parquet: the first file's types,
  // which every file must have
  const inferred = inferredTypes(params, chosen);
  const fileTypes = parquetTypes(params, chosen);
  const tableColumnNames = existing.filter((column) => !column.generated).map((column) => column.name);
  const byteaColumns = new Set(
    existing.filter((column) => column.type === "bytea").map((column) => column.name),
  );
  const filled = await filledColumns(context, storage, files, tableColumnNames, name);
  const plan = await planFor(context, session, name, filled);
  for (const note of plan.notes) context.log(note);
  for (const statement of plan.before) await session.query(statement);

  let rows = 0;
  let done = 0;
  const label = `${storage.url} → ${showTable(name)}`;
  for (const file of files) {
    const input = await copyInput(storage, file, {
      format: params.format,
      header: params.header,
      tableColumns: tableColumnNames,
      tableName: showTable(name),
      inferred,
      parquetTypes: fileTypes,
      byteaColumns,
      onBytes: (bytes) => context.report({ type: "progress", bytes: done + bytes, total, label }),
      signal: context.signal,
    });
    // `""` in a column that cannot hold it loads NULL, as inference read it (lib/sql/postgres_copy.ts)
    const sql = copyFromStdinSql({
      table: plan.copyTable,
      columns: input.columns,
      header: input.header,
      types: existing,
    });
    try {
      rows += await session.copyFrom(sql, input.stream);
    } catch (error) {
      throw await badRow(error, file, input, name);
    }
    done += file.size;
  }
  if (plan.staged) rows = await moveStaged(session, plan, name, rows, params.upsert_keys ?? []);
  return { rows };
}

/**
 * The table columns the files fill, in table order: from each CSV header and parquet schema; every column
 * for JSON (a key a line lacks loads NULL) and for CSV without a header.
 */
async function filledColumns(
  context: TaskContext<Params>,
  storage: Storage,
  files: StoredFile[],
  tableColumns: string[],
  name: TableName,
): Promise<string[]> {
  const { params } = context;
  if (params.format === "json" || (params.format === "csv" && !params.header)) return tableColumns;
  const filled = new Set<string>();
  for (const file of files) {
    const fields = params.format === "csv"
      ? await headerFields(storage, file, { signal: context.signal })
      : await parquetFieldNames(await parquetMetadata(storage, file, context.signal));
    const mapped = mapFields(file.path, fields, tableColumns, showTable(name));
    for (const column of mapped) filled.add(column);
  }
  return tableColumns.filter((column) => filled.has(column));
}

/** The statements of this load; for an upsert, how (ON CONFLICT needs a unique index on the keys). */
async function planFor(
  context: TaskContext<Params>,
  session: PostgresSession,
  name: TableName,
  filled: string[],
): Promise<LoadPlan> {
  const { params } = context;
  if (params.mode !== "upsert") {
    return loadPlan({ dialect: "postgres", target: name, columns: filled, mode: params.mode });
  }
  const keys = params.upsert_keys!;
  const missing = keys.filter((key) => !filled.includes(key));
  if (missing.length > 0) {
    throw new Error(
      `upsert_keys ${missing.map((key) => JSON.stringify(key)).join(", ")} ${
        missing.length === 1 ? "is" : "are"
      } not filled by the files (they fill ${filled.join(", ")})`,
    );
  }
  const problem = upsertMethodProblem(keys, await uniqueIndexes(session, name));
  if (problem) context.log(`${problem}: upsert falls back to UPDATE + INSERT by the keys`);
  return loadPlan({
    dialect: "postgres",
    target: name,
    columns: filled,
    mode: "upsert",
    upsertKeys: keys,
    upsertMethod: problem ? "update_insert" : "on_conflict",
  });
}

/** Runs the statements that move the staged rows into the table; returns the rows written. */
async function moveStaged(
  session: PostgresSession,
  plan: LoadPlan,
  name: TableName,
  staged: number,
  keys: readonly string[],
): Promise<number> {
  let written: number | undefined;
  await session.query("SAVEPOINT lakerun_move");
  for (const [index, statement] of plan.after.entries()) {
    try {
      const result = await session.query(statement);
      if (plan.writes.includes(index) && result.rowCount !== null) written = (written ?? 0) + result.rowCount;
    } catch (error) {
      const check = plan.checks.get(index);
      // 23502: not_null_violation, how a check statement fails
      if (check && error instanceof PostgresError && error.code === "23502") {
        await session.query("ROLLBACK TO SAVEPOINT lakerun_move");
        const example = check.example
          ? (await session.query<Record<string, unknown>>(check.example).catch(() => undefined))?.rows[0]
          : undefined;
        const table = qualifiedName(name, "postgres");
        throw new Error(`${checkFailure(check, { keys, table, example })}; nothing was committed`);
      }
      throw error;
    }
  }
  return written ?? staged;
}

/** A COPY failure as one line naming the file, its line or row, the column and the value. */
async function badRow(error: unknown, file: StoredFile, input: CopyInput, name: TableName): Promise<Error> {
  // a value lakerun refused on its way to COPY (the COPY failed because its input did)
  const refused = error instanceof PostgresError ? error.cause : error;
  if (refused instanceof RefusedValue) {
    const where = `${file.path} line ${refused.line}, column ${input.columns[refused.field]}`;
    const why = `${refused.refusal} (loading ${showTable(name)}); nothing was committed`;
    return new Error(`${where}: ${showValue(refused.value)}: ${why}`, { cause: refused });
  }
  if (refused instanceof StrayQuote) {
    const column = refused.field === undefined ? undefined : input.columns[refused.field];
    const where = `${file.path} line ${refused.line}` +
      (column !== undefined
        ? `, column ${column}`
        : refused.field !== undefined
        ? `, field ${refused.field + 1}`
        : "");
    const why = `${refused.reason} (loading ${showTable(name)}); nothing was committed`;
    return new Error(`${where}: ${showValue(refused.text)}: ${why}`, { cause: refused });
  }
  if (!(error instanceof PostgresError)) {
    return new Error(`${file.path}: ${(error as Error)?.message ?? error}; nothing was committed`, {
      cause: error,
    });
  }
  const position = copyErrorPosition(error);
  if (!position) {
    return new Error(`${file.path}: ${error.message}; nothing was committed`, { cause: error });
  }
  const where = [
    `${file.path} ${await input.position(position.line)}`,
    position.column ? `column ${position.column}` : undefined,
  ].filter(Boolean).join(", ");
  const value = position.value === undefined ? "" : `: ${showValue(position.value)}`;
  return new Error(
    `${where}${value}: ${error.message} (loading ${showTable(name)}); nothing was committed`,
    { cause: error },
  );
}

function showValue(value: string): string {
  const text = JSON.stringify(value);
  return text.length > 82 ? `${text.slice(0, 80)}…"` : text;
}
