/**
 * SQL over Redshift's PostgreSQL wire protocol (`lib/sql/postgres_client.ts`, on npm `pg`): needs a network
 * path to the cluster's `host:port`. A unit of statements runs in one transaction (BEGIN … COMMIT); an
 * interruption sends PostgreSQL's cancel request for the running statement (what `pg_cancel_backend` does)
 * and the transaction is rolled back. The step's journal records a unit once it committed, so a re-run of the
 * same routine run does not run it again.
 *
 * One gap the wire protocol cannot close: if lakerun is killed in the instant between the server's COMMIT and
 * the journal write, the re-run runs the unit again (for `append` that means the rows twice). The Data API
 * has no such gap (its ClientToken).
 *
 * @module
 */
import { type CloudRunLedger, fingerprintOf } from "../../lib/cloud/ledger.ts";
import type { ConnectionTarget } from "../../lib/sql/connection.ts";
import { connectPostgres, type PostgresSession } from "../../lib/sql/postgres_client.ts";
import type { RunnerContext } from "./data_api.ts";
import {
  RedshiftStatementError,
  type ResultTable,
  type RunUnitOptions,
  type SqlRunner,
  type UnitOutcome,
} from "./runner.ts";

/** Statements run over one wire-protocol session, opened on first use. */
export class WireRunner implements SqlRunner {
  readonly label: string;
  #session?: PostgresSession;

  constructor(
    readonly target: ConnectionTarget,
    readonly ledger: CloudRunLedger,
    readonly context: RunnerContext,
  ) {
    this.label = `${target.user}@${target.host}:${target.port}/${target.database}`;
  }

  async #open(): Promise<PostgresSession> {
    this.#session ??= await connectPostgres(this.target, {
      signal: this.context.signal,
      applicationName: "lakerun",
    });
    return this.#session;
  }

  async run(key: string, sqls: readonly string[], options: RunUnitOptions = {}): Promise<UnitOutcome> {
    if (sqls.length === 0) throw new Error("nothing to run");
    const fingerprint = fingerprintOf("wire", this.label, sqls);
    const { entry, reattach } = await this.ledger.begin(key, fingerprint);
    if (reattach && entry.state === "succeeded") {
      this.context.log(`${key}: already committed in an earlier attempt of this run; not run again`);
      return { rows: (entry.result?.rows as number[] | undefined) ?? [], reused: true };
    }
    const session = await this.#open();
    const startedAt = new Date();
    const rows: number[] = [];
    let result: ResultTable | undefined;
    try {
      await session.transaction(async () => {
        for (const [index, sql] of sqls.entries()) {
          let answer;
          try {
            answer = await session.query<Record<string, unknown>>(sql);
          } catch (error) {
            if (session.cancelled || this.context.signal.aborted) throw error;
            const message = (error as Error).message;
            const where = sqls.length > 1 ? ` (statement ${index + 1} of ${sqls.length})` : "";
            throw new RedshiftStatementError(
              `${this.label}${where}: ${message}`,
              index,
              message,
              startedAt,
              "current",
            );
          }
          rows.push(answer.rowCount ?? -1);
          if (options.wantResult && index === sqls.length - 1 && answer.rows.length > 0) {
            const columns = Object.keys(answer.rows[0]);
            result = { columns, rows: answer.rows.map((row) => columns.map((column) => plain(row[column]))) };
          }
        }
      });
    } catch (error) {
      await this.ledger.ended(key, "failed");
      if (session.cancelled || this.context.signal.aborted) {
        this.context.log(
          `${key}: cancelled the running statement (cancel request to ${this.label}); rolled back`,
        );
        this.context.signal.throwIfAborted();
      }
      throw error;
    }
    await this.ledger.ended(key, "succeeded", { rows });
    return result ? { rows, result, reused: false } : { rows, reused: false };
  }

  async query(sql: string): Promise<ResultTable> {
    const session = await this.#open();
    const answer = await session.query<Record<string, unknown>>(sql);
    const columns = answer.rows.length > 0 ? Object.keys(answer.rows[0]) : [];
    return { columns, rows: answer.rows.map((row) => columns.map((column) => plain(row[column]))) };
  }

  async close(): Promise<void> {
    await this.#session?.close();
  }
}

/** A value from `pg` as text, number, boolean or null (dates as ISO text, big numbers as text). */
function plain(value: unknown): string | number | boolean | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "string") return value;
  if (value instanceof Date) return value.toISOString();
  return String(value);
}
