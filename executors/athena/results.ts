/**
 * Reading an Athena query's results: GetQueryResults pages of up to 1,000 rows, the column-name header row
 * dropped from the first page only (it is not repeated on later pages), written as CSV or shown as a small
 * text table for the log.
 *
 * @module
 */
import type { AwsJsonClient } from "../../lib/aws/json_client.ts";
import type { QueryExecution } from "./queries.ts";

/** A value of a result row; `null` is SQL NULL (a `Datum` without `VarCharValue`). */
export type Cell = string | null;

/** One page of results, header row removed. */
export interface ResultPage {
  /** Column labels, in order. */
  columns: string[];
  rows: Cell[][];
  /** Whether more rows follow (GetQueryResults gave a NextToken). */
  more: boolean;
}

interface RawResults {
  ResultSet?: {
    Rows?: { Data?: { VarCharValue?: string }[] }[];
    ResultSetMetadata?: { ColumnInfo?: { Name: string; Label?: string }[] };
  };
  NextToken?: string;
}

/** GetQueryResults' largest page. */
export const MAX_PAGE_ROWS = 1000;

/**
 * Every page of the results of a SUCCEEDED query. Row 0 of the first page is the column-name header for
 * SELECT-like queries (statement type DML): it is dropped when it equals the column labels, and only there.
 */
export async function* resultPages(
  athena: AwsJsonClient,
  execution: QueryExecution,
  options: { pageSize?: number; maxPages?: number; signal?: AbortSignal } = {},
): AsyncGenerator<ResultPage> {
  let token: string | undefined;
  let first = true;
  let pages = 0;
  do {
    const input: Record<string, unknown> = {
      QueryExecutionId: execution.QueryExecutionId,
      MaxResults: options.pageSize ?? MAX_PAGE_ROWS,
    };
    if (token !== undefined) input.NextToken = token;
    const answer = await athena.call<RawResults>("GetQueryResults", input, {
      signal: options.signal,
      idempotent: true,
    });
    const info = answer.ResultSet?.ResultSetMetadata?.ColumnInfo ?? [];
    const columns = info.map((column) => column.Label ?? column.Name);
    const names = info.map((column) => column.Name);
    let rows = (answer.ResultSet?.Rows ?? []).map((row) =>
      (row.Data ?? []).map((datum) => datum.VarCharValue ?? null)
    );
    if (
      first && execution.StatementType !== "DDL" && (isHeader(rows[0], columns) || isHeader(rows[0], names))
    ) {
      rows = rows.slice(1);
    }
    first = false;
    token = answer.NextToken;
    yield { columns, rows, more: token !== undefined };
    pages++;
  } while (token && (options.maxPages === undefined || pages < options.maxPages));
}

function isHeader(row: Cell[] | undefined, columns: string[]): boolean {
  return row !== undefined && row.length === columns.length && row.every((value, i) => value === columns[i]);
}

/**
 * One CSV line as Athena writes its result files: every value in double quotes (quotes doubled inside), SQL
 * NULL as an empty unquoted field, so that NULL and the empty string stay apart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { csvLine } from "./results.ts";
 *
 * assert.equal(csvLine(["a", 'say "hi"', null, ""]), '"a","say ""hi""",,""\n');
 * ```
 */
export function csvLine(values: readonly Cell[]): string {
  return values.map((value) => (value === null ? "" : `"${value.replaceAll('"', '""')}"`)).join(",") + "\n";
}

/**
 * Rows as a small text table for the log: at most `maxWidth` characters a cell, NULL written as such.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { textTable } from "./results.ts";
 *
 * assert.deepEqual(textTable(["id", "name"], [["1", "Ada"], ["22", null]]), [
 *   "id | name",
 *   "---+-----",
 *   "1  | Ada",
 *   "22 | NULL",
 * ]);
 * ```
 */
export function textTable(columns: readonly string[], rows: readonly Cell[][], maxWidth = 30): string[] {
  const show = (value: Cell) => {
    const text = (value ?? "NULL").replace(/[\r\n\t]/g, " ");
    return text.length > maxWidth ? `${text.slice(0, maxWidth - 1)}…` : text;
  };
  const cells = [columns.map(show), ...rows.map((row) => columns.map((_, i) => show(row[i] ?? null)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const line = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i])).join(" | ").trimEnd();
  return [line(cells[0]), widths.map((w) => "-".repeat(w)).join("-+-"), ...cells.slice(1).map(line)];
}
