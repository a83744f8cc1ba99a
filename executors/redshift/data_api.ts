/**
 * SQL through the Redshift Data API: no network path into the VPC is needed (what a GitHub Actions runner
 * has), only the Data API's HTTPS endpoint.
 *
 * - **One unit, one batch.** Several statements go as one `BatchExecuteStatement`, whose statements Redshift
 *   runs in one transaction; a single statement as one `ExecuteStatement`.
 * - **Never twice.** Before sending, the unit gets an entry in the step's journal (`CloudRunLedger`, keyed on
 *   the routine run and the SQL); the statement id is recorded the moment the Data API returns it. A re-run
 *   of the same routine run reattaches to that statement (still running or finished) instead of sending the
 *   batch again, and the request carries the entry's token as `ClientToken`, so even a batch whose id was
 *   never recorded (lakerun killed between the request and the record) is answered with its first id rather
 *   than run again. A unit that finished is not run again; one that was cancelled is.
 * - **Never left running.** When the task is interrupted (`context.signal`), the running statement gets
 *   `CancelStatement` before the task rethrows, and the task logs it.
 * - Polling is adaptive (`pollUntil`); throttled calls are retried by the client and never fail the task, and
 *   so is a batch refused by the quota of statements running at once (`ActiveStatementsExceededException`),
 *   within the client's throttling budget. A batch refused in every attempt (that quota past the budget, a
 *   bad request) is recorded as failed: nothing runs under its token, and the next attempt starts afresh.
 *
 * @module
 */
import { type AwsJsonClient, notCarriedOut } from "../../lib/aws/json_client.ts";
import { type CloudRunLedger, fingerprintOf } from "../../lib/cloud/ledger.ts";
import { pollUntil } from "../../lib/cloud/poll.ts";
import { plural } from "../../lib/format.ts";
import type { Connection } from "./params.ts";
import {
  RedshiftStatementError,
  type ResultTable,
  type RunUnitOptions,
  type SqlRunner,
  type UnitOutcome,
} from "./runner.ts";

/** What DescribeStatement says (the members lakerun reads). */
export interface StatementDescription {
  Id: string;
  Status: string;
  Error?: string;
  CreatedAt?: number;
  HasResultSet?: boolean;
  ResultRows?: number;
  RedshiftPid?: number;
  SubStatements?: Array<
    { Id: string; Status: string; Error?: string; HasResultSet?: boolean; ResultRows?: number }
  >;
}

/** One value of GetStatementResult. */
type Field = {
  isNull?: boolean;
  stringValue?: string;
  longValue?: number;
  doubleValue?: number;
  booleanValue?: boolean;
  blobValue?: string;
};

const TERMINAL = new Set(["FINISHED", "FAILED", "ABORTED"]);
/** How long cancelling may take: lakerun gives an interrupted step 4 s. */
const CANCEL_WAIT_MS = 2_000;
/** The Data API's limit on the statements of one batch. */
export const MAX_BATCH_STATEMENTS = 40;

/** What a task gives the runner. */
export interface RunnerContext {
  log(message: string): void;
  signal: AbortSignal;
}

/**
 * The identity members of an ExecuteStatement / BatchExecuteStatement request.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { identityMembers } from "./data_api.ts";
 *
 * assert.deepEqual(identityMembers({ kind: "data_api", clusterIdentifier: "analytics", database: "dev", dbUser: "loader" }), {
 *   ClusterIdentifier: "analytics",
 *   Database: "dev",
 *   DbUser: "loader",
 * });
 * ```
 */
export function identityMembers(
  connection: Extract<Connection, { kind: "data_api" }>,
): Record<string, string> {
  const members: Record<string, string> = {};
  if (connection.clusterIdentifier) members.ClusterIdentifier = connection.clusterIdentifier;
  if (connection.workgroupName) members.WorkgroupName = connection.workgroupName;
  members.Database = connection.database;
  if (connection.secretArn) members.SecretArn = connection.secretArn;
  if (connection.dbUser) members.DbUser = connection.dbUser;
  return members;
}

/**
 * A value of GetStatementResult as a JavaScript value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fieldValue } from "./data_api.ts";
 *
 * assert.deepEqual([{ longValue: 3 }, { isNull: true }, { stringValue: "1.50" }, { booleanValue: false }].map(fieldValue), [3, null, "1.50", false]);
 * ```
 */
export function fieldValue(field: Field): string | number | boolean | null {
  if (field.isNull) return null;
  if (field.stringValue !== undefined) return field.stringValue;
  if (field.longValue !== undefined) return field.longValue;
  if (field.doubleValue !== undefined) return field.doubleValue;
  if (field.booleanValue !== undefined) return field.booleanValue;
  if (field.blobValue !== undefined) return field.blobValue;
  return null;
}

/** Statements run through the Data API; see the module documentation. */
export class DataApiRunner implements SqlRunner {
  readonly label: string;
  readonly #identity: Record<string, string>;

  constructor(
    readonly client: AwsJsonClient,
    readonly ledger: CloudRunLedger,
    connection: Extract<Connection, { kind: "data_api" }>,
    readonly context: RunnerContext,
  ) {
    this.#identity = identityMembers(connection);
    const where = connection.clusterIdentifier
      ? `cluster ${connection.clusterIdentifier}`
      : `workgroup ${connection.workgroupName}`;
    this.label = `Redshift Data API (${where}, database ${connection.database})`;
  }

  async run(key: string, sqls: readonly string[], options: RunUnitOptions = {}): Promise<UnitOutcome> {
    if (sqls.length === 0) throw new Error("nothing to run");
    if (sqls.length > MAX_BATCH_STATEMENTS) {
      throw new Error(
        `${sqls.length} statements: the Data API runs at most ${MAX_BATCH_STATEMENTS} in one batch (one transaction)`,
      );
    }
    const batch = sqls.length > 1;
    const operation = batch ? "BatchExecuteStatement" : "ExecuteStatement";
    const request = batch ? { ...this.#identity, Sqls: [...sqls] } : { ...this.#identity, Sql: sqls[0] };
    const fingerprint = fingerprintOf(operation, request);
    const { log } = this.context;
    for (let round = 1;; round++) {
      const { entry, reattach, superseded } = await this.ledger.begin(key, fingerprint);
      if (superseded?.id) {
        // an earlier attempt of this run sent other SQL under this key (the routine changed since): cancelled
        // if it still runs, so that the two never run side by side
        const earlier = await this.#describe(superseded.id, this.context.signal).catch(() => undefined);
        if (!earlier || !TERMINAL.has(earlier.Status)) {
          await this.#cancel(
            undefined,
            superseded.id,
            "sent by an earlier attempt of this run with other SQL",
            key,
          );
        }
      }
      if (reattach && entry.state === "succeeded") {
        log(
          `${key}: statement ${entry.id} already FINISHED in an earlier attempt of this run; not run again`,
        );
        return { rows: (entry.result?.rows as number[] | undefined) ?? [], reused: true };
      }
      if (reattach && entry.id) {
        log(`${key}: reattaching to statement ${entry.id}, sent by an earlier attempt of this run`);
      } else if (reattach) {
        log(
          `${key}: an earlier attempt was stopped while sending this ${batch ? "batch" : "statement"}; ` +
            "asking again with the same ClientToken, so it does not run twice",
        );
      }
      const id = entry.id ?? await this.#submit(key, operation, request, entry.token);
      const described = await this.#wait(key, id);
      if (described.Status === "FINISHED") {
        const rows = batch
          ? (described.SubStatements ?? []).map((sub) => sub.ResultRows ?? -1)
          : [described.ResultRows ?? -1];
        await this.ledger.ended(key, "succeeded", { rows });
        const outcome: UnitOutcome = { rows, reused: false };
        const last = batch ? described.SubStatements?.at(-1) : described;
        if (options.wantResult && last?.HasResultSet) outcome.result = await this.#results(last.Id);
        return outcome;
      }
      await this.ledger.ended(key, "failed");
      if (described.Status === "ABORTED" && reattach && round === 1) {
        log(`${key}: statement ${id} of an earlier attempt was cancelled; running it again`);
        continue;
      }
      throw statementError(described);
    }
  }

  async query(sql: string): Promise<ResultTable> {
    const { Id: id } = await this.client.call<{ Id: string }>(
      "ExecuteStatement",
      { ...this.#identity, Sql: sql },
      { signal: this.context.signal, idempotent: true }, // a read: running it twice does no harm
    );
    const described = await this.#wait(undefined, id);
    if (described.Status !== "FINISHED") throw statementError(described);
    return described.HasResultSet ? await this.#results(id) : { columns: [], rows: [] };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  async #submit(
    key: string,
    operation: string,
    request: Record<string, unknown>,
    token: string,
  ): Promise<string> {
    // the ledger's token is 64 hex characters: ClientToken takes 1 to 64
    const body = { ...request, ClientToken: token };
    let id: string;
    try {
      ({ Id: id } = await this.client.call<{ Id: string }>(operation, body, {
        signal: this.context.signal,
        idempotent: true, // the token makes a repeated request answer the same statement
      }));
    } catch (error) {
      if (this.context.signal.aborted) await this.#cancelUnrecorded(key, operation, body);
      // refused outright (a bad request, no credentials, the active-statements quota past the retry budget)
      // in every attempt: no statement exists under this token, so the next attempt starts afresh instead of
      // reporting a send that was stopped halfway
      else if (notCarriedOut(error)) await this.ledger.ended(key, "failed");
      throw error;
    }
    await this.ledger.started(key, id);
    this.context.log(`${key}: sent ${operation === "ExecuteStatement" ? "statement" : "batch"} ${id}`);
    return id;
  }

  /**
   * Interrupted while the request was in flight: the statement may exist without its id being known. The
   * same request with the same token answers its id (or sends it, to be cancelled at once).
   */
  async #cancelUnrecorded(key: string, operation: string, body: Record<string, unknown>): Promise<void> {
    try {
      const { Id: id } = await this.client.call<{ Id: string }>(operation, body, {
        signal: AbortSignal.timeout(CANCEL_WAIT_MS),
        idempotent: true,
      });
      await this.ledger.started(key, id);
      await this.#cancel(key, id, "interrupted while sending it");
    } catch (error) {
      this.context.log(
        `${key}: interrupted while sending the statement; could not check whether Redshift received it ` +
          `(${(error as Error).message})`,
      );
    }
  }

  /** Waits for a terminal status; when interrupted, cancels the statement first. */
  async #wait(key: string | undefined, id: string): Promise<StatementDescription> {
    const check = async () => {
      const described = await this.#describe(id, this.context.signal);
      return { done: TERMINAL.has(described.Status), state: described.Status, value: described };
    };
    try {
      return (await pollUntil(check, { signal: this.context.signal, firstIntervalMs: 250 })).value;
    } catch (error) {
      if (!this.context.signal.aborted) throw error;
      await this.#cancel(key, id, "interrupted");
      throw error;
    }
  }

  /**
   * CancelStatement, then records under `key` how the statement ended (a finished one must not run again);
   * `label` names it in the log (default: `key`, else "query").
   */
  async #cancel(key: string | undefined, id: string, why: string, label = key ?? "query"): Promise<void> {
    const deadline = AbortSignal.timeout(CANCEL_WAIT_MS);
    try {
      await this.client.call("CancelStatement", { Id: id }, { signal: deadline, idempotent: true });
      this.context.log(`${label}: cancelled Redshift statement ${id} (${why})`);
    } catch (error) {
      this.context.log(
        `${label}: could not cancel Redshift statement ${id} (${why}): ${(error as Error).message}`,
      );
    }
    if (key === undefined) return;
    try {
      const described = await this.#describe(id, deadline);
      if (described.Status === "FINISHED") await this.ledger.ended(key, "succeeded");
      else if (TERMINAL.has(described.Status)) await this.ledger.ended(key, "failed");
      // still going: the entry keeps the id, and the next attempt reattaches to it
    } catch {
      // unknown: the next attempt reattaches by id and finds out
    }
  }

  #describe(id: string, signal: AbortSignal): Promise<StatementDescription> {
    return this.client.call<StatementDescription>("DescribeStatement", { Id: id }, {
      signal,
      idempotent: true,
    });
  }

  /** Every page of GetStatementResult. */
  async #results(id: string): Promise<ResultTable> {
    const table: ResultTable = { columns: [], rows: [] };
    let token: string | undefined;
    do {
      const page = await this.client.call<{
        Records?: Field[][];
        ColumnMetadata?: Array<{ name?: string; label?: string }>;
        NextToken?: string;
      }>("GetStatementResult", token ? { Id: id, NextToken: token } : { Id: id }, {
        signal: this.context.signal,
        idempotent: true,
      });
      if (table.columns.length === 0 && page.ColumnMetadata) {
        table.columns = page.ColumnMetadata.map((column, i) =>
          column.label ?? column.name ?? `column${i + 1}`
        );
      }
      for (const record of page.Records ?? []) table.rows.push(record.map(fieldValue));
      token = page.NextToken;
    } while (token);
    return table;
  }
}

/** The error of a FAILED or ABORTED statement or batch, naming the failing statement. */
export function statementError(described: StatementDescription): RedshiftStatementError {
  const subs = described.SubStatements ?? [];
  const failed = subs.findIndex((sub) => sub.Status === "FAILED");
  const index = failed === -1 ? 0 : failed;
  const message = (failed === -1 ? described.Error : subs[failed].Error ?? described.Error) ?? "";
  const startedAt = new Date((described.CreatedAt ?? Date.now() / 1000) * 1000);
  const where = subs.length > 1 ? ` (statement ${index + 1} of ${plural(subs.length, "statement")})` : "";
  const text = described.Status === "ABORTED"
    ? `Redshift statement ${described.Id} was cancelled (ABORTED)${where}`
    : `Redshift statement ${described.Id} ${described.Status}${where}: ${message || "no message"}`;
  return new RedshiftStatementError(text, index, message, startedAt, described.RedshiftPid);
}
