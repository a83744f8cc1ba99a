/**
 * What the RedshiftExecutor's tasks run SQL through, whichever way the step connects: a list of statements
 * as one all-or-nothing unit (one Data API batch, or one transaction on the wire), recorded in the step's
 * journal so that a re-run of the same routine run never runs it twice, and read-only queries.
 *
 * @module
 */
import { redactCredentials } from "../../lib/mask.ts";

/** A query's rows, values as the database gave them (text, numbers, booleans, null). */
export interface ResultTable {
  columns: string[];
  rows: (string | number | boolean | null)[][];
}

/** What running a unit of statements gave. */
export interface UnitOutcome {
  /** Per statement: rows returned or affected (-1 when the database does not say). */
  rows: number[];
  /** The last statement's rows, when asked for and it returned some. */
  result?: ResultTable;
  /** True when an earlier attempt of this routine run already ran the unit: nothing was run now. */
  reused: boolean;
}

/** Options of {@link SqlRunner.run}. */
export interface RunUnitOptions {
  /** Fetch the last statement's rows. */
  wantResult?: boolean;
}

/** A unit failed: which statement, and the database's message. Nothing of the unit was committed. */
export class RedshiftStatementError extends Error {
  constructor(
    message: string,
    /** The failing statement's position in the unit, from 0. */
    readonly index: number,
    /** The database's own message (credentials it quotes replaced by `***`). */
    readonly serverMessage: string,
    /** When the unit started, by the server's clock when known. */
    readonly startedAt: Date,
    /** The session that ran it: a Redshift process id, or `current` (the runner's own session, on the wire). */
    readonly session: number | "current" | undefined,
  ) {
    // the database's words may quote the statement, and with it a credential written there (PASSWORD '…',
    // CREDENTIALS '…', a URL's password): never shown, whichever way the step reaches Redshift
    super(redactCredentials(message));
    this.serverMessage = redactCredentials(serverMessage);
    this.name = "RedshiftStatementError";
  }
}

/** Runs SQL on Redshift for one step. */
export interface SqlRunner {
  /** How the step reaches Redshift, for messages: `Data API (cluster analytics, database dev)`. */
  readonly label: string;
  /**
   * Runs `sqls` as one unit recorded under `key` in the step's journal: all of them or none (a batch or a
   * transaction). When an earlier attempt of this routine run finished the same unit, nothing is run again;
   * when it was interrupted, the runner reattaches to it (Data API) or runs it anew (wire: the interrupted
   * transaction was rolled back).
   *
   * @throws RedshiftStatementError when a statement failed; the signal's reason when interrupted (after the
   * running statement was cancelled).
   */
  run(key: string, sqls: readonly string[], options?: RunUnitOptions): Promise<UnitOutcome>;
  /** Runs one read-only statement (not journaled: running it twice does no harm) and returns its rows. */
  query(sql: string): Promise<ResultTable>;
  /** Releases the connection. */
  close(): Promise<void>;
}

/**
 * The rows of a {@link ResultTable} as objects keyed by column name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { recordsOf } from "./runner.ts";
 *
 * assert.deepEqual(recordsOf({ columns: ["a", "b"], rows: [[1, "x"]] }), [{ a: 1, b: "x" }]);
 * ```
 */
export function recordsOf(table: ResultTable): Record<string, string | number | boolean | null>[] {
  return table.rows.map((row) => Object.fromEntries(table.columns.map((column, i) => [column, row[i]])));
}
