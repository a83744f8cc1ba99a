/**
 * The `query` task: runs the step's SQL (with its execution parameters), waits, reports how it went, logs
 * the first rows, and pages through the whole result into `results_to`.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import type { AwsJsonClient } from "../../lib/aws/json_client.ts";
import { plural } from "../../lib/format.ts";
import { readSqlFile } from "../../lib/sql/sql_file.ts";
import { openLocation } from "../../lib/storage/locations.ts";
import { executionParameters, type Params, placeholderProblem, resultsTarget } from "./params.ts";
import { describeExecution, type QueryExecution } from "./queries.ts";
import { type Cell, csvLine, resultPages, textTable } from "./results.ts";
import { openQueries, querySpec, runOptions } from "./session.ts";

/** Rows shown in the log. */
const PREVIEW_ROWS = 10;
/** Without `results_to`, rows fetched to show and count (more are only said to exist). */
const COUNTED_ROWS = 100;

/** `query`: see the module documentation. */
export async function runQueryTask(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  const sql = await querySql(context);
  const queries = await openQueries(context);
  const spec = querySpec(params, sql, { parameters: executionParameters(params.parameters) });
  const execution = await queries.run("query", "query", spec, runOptions(params));
  const summary = `query ${execution.QueryExecutionId}: ${describeExecution(execution)}`;
  reportExecution(context, execution);
  if (params.results_to !== undefined) {
    const saved = await saveResults(context, queries.athena, execution, params.results_to);
    logPreview(context, saved.columns, saved.preview, saved.rows);
    context.log(`${summary}; ${rowCount(saved.rows)} written to ${params.results_to}`);
    context.report({ type: "output", name: "rows", value: saved.rows });
    context.report({ type: "output", name: "results_to", value: params.results_to });
  } else if (execution.StatementType === "DDL") {
    context.log(summary);
  } else {
    const first = await firstRows(queries.athena, execution, context.signal);
    logPreview(
      context,
      first.columns,
      first.rows.slice(0, PREVIEW_ROWS),
      first.more ? undefined : first.rows.length,
    );
    const rows = first.more
      ? `more than ${rowCount(COUNTED_ROWS)} (set results_to to save them all)`
      : rowCount(first.rows.length);
    context.log(`${summary}; ${rows}`);
    if (!first.more) context.report({ type: "output", name: "rows", value: first.rows.length });
  }
}

/**
 * The outputs Athena's answer gives: the query's id, where Athena wrote the result, the bytes scanned. A
 * query an earlier attempt of the run completed is asked for again (GetQueryExecution), so a re-run reports
 * the same.
 */
function reportExecution(context: TaskContext<Params>, execution: QueryExecution): void {
  context.report({ type: "output", name: "query_execution_id", value: execution.QueryExecutionId });
  const location = execution.ResultConfiguration?.OutputLocation;
  if (location) context.report({ type: "output", name: "output_location", value: location });
  const scanned = execution.Statistics?.DataScannedInBytes;
  if (typeof scanned === "number") {
    context.report({ type: "output", name: "data_scanned_bytes", value: scanned });
  }
}

/** A row count as people read it: `1 row`, `2,500 rows`. */
function rowCount(rows: number): string {
  return plural(rows, "row").replace(/^\d+/, new Intl.NumberFormat("en-US").format(rows));
}

async function querySql(context: TaskContext<Params>): Promise<string> {
  const { params } = context;
  if (params.query !== undefined) return params.query;
  if (params.query_file === undefined) {
    throw new Error("the query task needs the param 'query' or 'query_file'");
  }
  const sql = await readSqlFile(context.resolve(params.query_file), "query_file", params.query_file);
  const problem = placeholderProblem(sql, params.parameters);
  if (problem) throw new Error(`query_file ${JSON.stringify(params.query_file)}: ${problem.message}`);
  return sql;
}

function logPreview(
  context: TaskContext<Params>,
  columns: string[],
  preview: Cell[][],
  total: number | undefined,
): void {
  if (columns.length === 0) return;
  const shown = total === undefined || total > preview.length
    ? `first ${plural(preview.length, "row")}`
    : plural(preview.length, "row");
  context.log(`${shown}:`);
  // masked before textTable shortens long cells: a secret cut in two would no longer be masked
  const masked = preview.map((row) => row.map((cell) => cell === null ? null : context.mask(cell)));
  for (const line of textTable(columns, masked)) context.log(`  ${line}`);
}

/** The first {@link COUNTED_ROWS} rows, and whether there are more. */
async function firstRows(athena: AwsJsonClient, execution: QueryExecution, signal: AbortSignal) {
  // one page; its size counts the header row, which is dropped from the first page
  for await (
    const page of resultPages(athena, execution, { pageSize: COUNTED_ROWS + 1, maxPages: 1, signal })
  ) {
    return {
      columns: page.columns,
      rows: page.rows.slice(0, COUNTED_ROWS),
      more: page.rows.length > COUNTED_ROWS || page.more,
    };
  }
  return { columns: [], rows: [], more: false };
}

/**
 * Streams every page of the results into `resultsTo` as CSV, the header line once: a local file (written
 * under a temporary name, then renamed) or an S3 object (appears only once complete).
 */
async function saveResults(
  context: TaskContext<Params>,
  athena: AwsJsonClient,
  execution: QueryExecution,
  resultsTo: string,
): Promise<{ columns: string[]; preview: Cell[][]; rows: number }> {
  const { folder, name } = resultsTarget(resultsTo, context.resolve);
  const storage = await openLocation(folder, context);
  if (storage.localFolder !== undefined) await Deno.mkdir(storage.localFolder, { recursive: true });
  const pages = resultPages(athena, execution, { signal: context.signal });
  const encoder = new TextEncoder();
  let columns: string[] | undefined;
  const preview: Cell[][] = [];
  let rows = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await pages.next();
      if (next.done) return controller.close();
      const page = next.value;
      let text = "";
      if (columns === undefined) {
        columns = page.columns;
        if (columns.length > 0) text += csvLine(columns);
      }
      for (const row of page.rows) text += csvLine(row);
      preview.push(...page.rows.slice(0, PREVIEW_ROWS - preview.length));
      rows += page.rows.length;
      controller.enqueue(encoder.encode(text));
    },
    async cancel() {
      await pages.return(undefined);
    },
  }, { highWaterMark: 0 });
  await storage.write(name, body, { signal: context.signal });
  return { columns: columns ?? [], preview, rows };
}
