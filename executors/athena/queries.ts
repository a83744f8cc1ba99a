/**
 * Running one Athena query so that it is never started twice for one routine run and never left running.
 *
 * - **Never twice.** Before StartQueryExecution, the query gets an entry in the step's journal
 *   (`CloudRunLedger`, keyed on the routine run); its id is recorded the moment Athena returns it. A later
 *   attempt of the same run with the same SQL reattaches to that id (still running or already finished)
 *   instead of starting another. The request carries the entry's `token` as `ClientRequestToken`, so even a
 *   query whose id was never recorded (lakerun killed between the request and the record) is answered with
 *   its first id rather than started again. A query that ended badly (FAILED, CANCELLED, stopped) makes the
 *   next attempt start a new one; a new routine run starts fresh.
 * - **Never left running.** When the task is interrupted (Ctrl-C, SIGTERM: `context.signal`), times out, or
 *   loses track of the query, it sends StopQueryExecution before it rethrows, and logs that it did.
 * - **Polling** is adaptive with jitter (`pollUntil`: a 3-second query is noticed within 0.75 s of its end);
 *   throttled calls are retried by the client and never fail the task.
 *
 * @module
 */
import { redactCredentials } from "../../lib/mask.ts";
import { type AwsJsonClient, AwsServiceError, isRefusal } from "../../lib/aws/json_client.ts";
import { type CloudRunLedger, fingerprintOf } from "../../lib/cloud/ledger.ts";
import { PollTimeoutError, pollUntil } from "../../lib/cloud/poll.ts";
import { formatBytes, formatDuration } from "../../lib/format.ts";

/** What Athena's GetQueryExecution says about a query (the members lakerun reads). */
export interface QueryExecution {
  QueryExecutionId: string;
  StatementType?: "DDL" | "DML" | "UTILITY" | string;
  /** Where Athena wrote the result (`s3://…/ID.csv`), when it says. */
  ResultConfiguration?: { OutputLocation?: string };
  Status: {
    State: string;
    StateChangeReason?: string;
    SubmissionDateTime?: number;
    CompletionDateTime?: number;
    AthenaError?: { ErrorCategory?: number; ErrorType?: number; Retryable?: boolean; ErrorMessage?: string };
  };
  Statistics?: {
    EngineExecutionTimeInMillis?: number;
    DataScannedInBytes?: number;
    TotalExecutionTimeInMillis?: number;
    QueryQueueTimeInMillis?: number;
  };
}

/** One query: its SQL and where it runs. */
export interface QuerySpec {
  sql: string;
  /** Athena execution parameters for the `?` placeholders, each an SQL literal (`'text'`, `42`). */
  parameters?: readonly string[];
  database?: string;
  catalog: string;
  workgroup: string;
  /** `s3://` folder for the results; unset when the workgroup sets one. */
  outputLocation?: string;
  /** The table the statement is about (`lake.events`), for its errors; not sent. */
  table?: string;
}

/** What a task using {@link AthenaQueries} provides. */
export interface QueryContext {
  log(message: string): void;
  signal: AbortSignal;
}

/** Options of {@link AthenaQueries.run}. */
export interface RunOptions {
  /** Stop the query when it has not finished after this long. */
  timeoutMs?: number;
}

/** A query that ended FAILED or CANCELLED, with Athena's explanation. */
export class AthenaQueryError extends Error {
  constructor(message: string, readonly execution: QueryExecution) {
    super(message);
    this.name = "AthenaQueryError";
  }
}

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
const ERROR_CATEGORIES: Record<number, string> = { 1: "system", 2: "user", 3: "other" };
/** How long stopping a query may take: the step gets 4 s after an interruption. */
const STOP_WAIT_MS = 2_500;

/**
 * The StartQueryExecution body of a query (without its token): also what its fingerprint is made of, so a
 * changed SQL, parameter or setting starts a new query rather than reattaching to the old one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startRequest } from "./queries.ts";
 *
 * assert.deepEqual(
 *   startRequest({ sql: "SELECT ?", parameters: ["'x'"], database: "lake", catalog: "AwsDataCatalog", workgroup: "primary" }),
 *   {
 *     QueryString: "SELECT ?",
 *     WorkGroup: "primary",
 *     QueryExecutionContext: { Catalog: "AwsDataCatalog", Database: "lake" },
 *     ExecutionParameters: ["'x'"],
 *   },
 * );
 * ```
 */
export function startRequest(spec: QuerySpec): Record<string, unknown> {
  const context: Record<string, string> = { Catalog: spec.catalog };
  if (spec.database !== undefined) context.Database = spec.database;
  const request: Record<string, unknown> = {
    QueryString: spec.sql,
    WorkGroup: spec.workgroup,
    QueryExecutionContext: context,
  };
  if (spec.outputLocation !== undefined) {
    request.ResultConfiguration = { OutputLocation: spec.outputLocation };
  }
  if (spec.parameters && spec.parameters.length > 0) request.ExecutionParameters = [...spec.parameters];
  return request;
}

/**
 * One line about a finished query: state, time, data scanned and engine time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeExecution } from "./queries.ts";
 *
 * assert.equal(
 *   describeExecution({
 *     QueryExecutionId: "q-1",
 *     Status: { State: "SUCCEEDED" },
 *     Statistics: { DataScannedInBytes: 1536, EngineExecutionTimeInMillis: 1234, TotalExecutionTimeInMillis: 1500 },
 *   }),
 *   "SUCCEEDED in 1.5 s, 1.5 KiB scanned, engine time 1.2 s",
 * );
 * ```
 */
export function describeExecution(execution: QueryExecution): string {
  const stats = execution.Statistics ?? {};
  const parts = [execution.Status.State];
  if (stats.TotalExecutionTimeInMillis !== undefined) {
    parts[0] += ` in ${formatDuration(stats.TotalExecutionTimeInMillis)}`;
  }
  parts.push(`${formatBytes(stats.DataScannedInBytes ?? 0)} scanned`);
  parts.push(`engine time ${formatDuration(stats.EngineExecutionTimeInMillis ?? 0)}`);
  return parts.join(", ");
}

/**
 * Athena's explanation of a FAILED or CANCELLED query, in one line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { failureMessage } from "./queries.ts";
 *
 * assert.equal(
 *   failureMessage({
 *     QueryExecutionId: "q-1",
 *     Status: { State: "FAILED", AthenaError: { ErrorCategory: 2, ErrorType: 1006, ErrorMessage: "line 1:8: Column 'x' cannot be resolved" } },
 *   }),
 *   "Athena query q-1 FAILED: user error (type 1006): line 1:8: Column 'x' cannot be resolved",
 * );
 * ```
 */
export function failureMessage(execution: QueryExecution): string {
  const { State, AthenaError: error, StateChangeReason } = execution.Status;
  const head = `Athena query ${execution.QueryExecutionId} ${State}`;
  if (!error) return StateChangeReason ? `${head}: ${redactCredentials(StateChangeReason)}` : head;
  const category = ERROR_CATEGORIES[error.ErrorCategory ?? 0] ?? `category ${error.ErrorCategory}`;
  const type = error.ErrorType === undefined ? "" : ` (type ${error.ErrorType})`;
  const retryable = error.Retryable ? ", retryable" : "";
  // Athena's words may quote the query, and a credential written in it
  const message = redactCredentials(error.ErrorMessage ?? StateChangeReason ?? "no message");
  return `${head}: ${category} error${type}${retryable}: ${message}`;
}

/**
 * What a message from Athena leaves out: for each of the workgroup, catalog, database and table the query
 * names that the message speaks of ("WorkGroup does not exist") without naming, the name, as
 * ` (workgroup "analytics")`; empty when the message names all it speaks of.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { namesLeftOut } from "./queries.ts";
 *
 * const spec = { sql: "SELECT 1", workgroup: "analytics", catalog: "AwsDataCatalog", database: "lake" };
 * assert.equal(namesLeftOut("WorkGroup does not exist", spec), ' (workgroup "analytics")');
 * assert.equal(namesLeftOut("WorkGroup analytics is not found", spec), "");
 * assert.equal(namesLeftOut("Database does not exist", { ...spec, table: "lake.events" }), ' (database "lake")');
 * assert.equal(namesLeftOut("Table not found", { ...spec, table: "lake.events" }), ' (table "lake.events")');
 * assert.equal(namesLeftOut("Database does not exist: sales", spec), "");
 * assert.equal(namesLeftOut("line 1:15: Table 'awsdatacatalog.lake.missing' does not exist", spec), "");
 * ```
 */
export function namesLeftOut(message: string, spec: QuerySpec): string {
  const text = message.toLowerCase();
  const named = (name: string) =>
    // a table is named by its last part, too (`Table 'awsdatacatalog.lake.events' …`)
    text.includes(name.toLowerCase()) || text.includes(name.slice(name.lastIndexOf(".") + 1).toLowerCase());
  const kinds: Array<[string, string, string | undefined]> = [
    ["workgroup", "work ?group", spec.workgroup],
    ["catalog", "(?:data )?catalog", spec.catalog],
    ["database", "(?:database|schema)", spec.database],
    ["table", "table", spec.table],
  ];
  return kinds
    .filter(([, word, name]) => {
      if (name === undefined || named(name)) return false;
      // the kind without a name after it: "WorkGroup does not exist", "Table not found", "… the table."
      const unnamed = new RegExp(
        `\\b${word}(?:\\s+(?:does|doesn't|is|was|not|cannot|could|already)\\b|\\s*[.:]?\\s*$)`,
        "i",
      );
      // …unless the name follows: "Database does not exist: sales"
      const namedAfter = new RegExp(`\\b${word}\\s+(?:does not exist|not found)\\s*:\\s*\\S`, "i");
      return unnamed.test(message) && !namedAfter.test(message);
    })
    .map(([kind, , name]) => ` (${kind} ${JSON.stringify(name)})`)
    .join("");
}

/** The queries of one step, recorded in its journal. */
export class AthenaQueries {
  /** Queries of this step against `athena`, recorded in `ledger`, logging through `context`. */
  constructor(
    readonly athena: AwsJsonClient,
    readonly ledger: CloudRunLedger,
    readonly context: QueryContext,
  ) {}

  /**
   * Runs the query recorded under `key` (unique within the step, e.g. `query`) and waits for it: reattaches
   * to the one an earlier attempt of this routine run started, or starts it. Resolves to the SUCCEEDED
   * execution; rejects with an {@link AthenaQueryError} for FAILED or CANCELLED, and with the interruption
   * or timeout after stopping the query.
   */
  async run(key: string, label: string, spec: QuerySpec, options: RunOptions = {}): Promise<QueryExecution> {
    const request = startRequest(spec);
    const fingerprint = fingerprintOf(request);
    for (let round = 1;; round++) {
      const { entry, reattach, superseded } = await this.ledger.begin(key, fingerprint);
      if (superseded?.id) await this.#stopSuperseded(label, superseded.id);
      let id = entry.id;
      if (reattach && entry.state === "succeeded" && id) {
        this.context.log(`${label}: query ${id} already SUCCEEDED in an earlier attempt of this run`);
      } else if (reattach && id) {
        this.context.log(`${label}: reattaching to query ${id}, started by an earlier attempt of this run`);
      } else if (reattach) {
        this.context.log(
          `${label}: an earlier attempt was stopped while starting this query; asking Athena again ` +
            `with the same ClientRequestToken, so it is not started twice`,
        );
      }
      if (!id) id = await this.#start(key, label, request, entry.token, spec);
      const execution = await this.#wait(key, label, id, options.timeoutMs);
      const state = execution.Status.State;
      if (state === "SUCCEEDED") {
        await this.ledger.ended(key, "succeeded");
        return execution;
      }
      await this.ledger.ended(key, "failed");
      if (state === "CANCELLED" && reattach && round === 1) {
        this.context.log(`${label}: query ${id} of the earlier attempt was cancelled; starting it again`);
        continue;
      }
      const message = failureMessage(execution);
      throw new AthenaQueryError(`${message}${namesLeftOut(message, spec)}`, execution);
    }
  }

  async #start(key: string, label: string, request: Record<string, unknown>, token: string, spec: QuerySpec) {
    const body = { ...request, ClientRequestToken: token };
    let id: string;
    try {
      const answer = await this.athena.call<{ QueryExecutionId: string }>("StartQueryExecution", body, {
        signal: this.context.signal,
        idempotent: true, // the token makes a repeated request answer the same query
      });
      id = answer.QueryExecutionId;
    } catch (error) {
      if (this.context.signal.aborted) await this.#stopUnrecorded(label, body);
      // refused outright (invalid SQL settings, no output location) or never sent (no credentials): no query
      // exists under this token
      else if (isRefusal(error)) await this.ledger.ended(key, "failed");
      throw explainStartError(error, spec);
    }
    await this.ledger.started(key, id);
    this.context.log(`${label}: started query ${id}`);
    return id;
  }

  /**
   * Interrupted while StartQueryExecution was in flight: the query may exist without its id being known.
   * The same request with the same token returns its id (or starts it, to be stopped at once), then it is
   * stopped.
   */
  async #stopUnrecorded(label: string, body: Record<string, unknown>): Promise<void> {
    try {
      const { QueryExecutionId: id } = await this.athena.call<{ QueryExecutionId: string }>(
        "StartQueryExecution",
        body,
        { signal: AbortSignal.timeout(STOP_WAIT_MS), idempotent: true },
      );
      await this.#stop(label, id, "interrupted while starting it");
    } catch (error) {
      this.context.log(
        `${label}: interrupted while starting the query; could not check whether Athena started it ` +
          `(${(error as Error).message}): look for it in the workgroup's query history`,
      );
    }
  }

  async #wait(key: string, label: string, id: string, timeoutMs?: number): Promise<QueryExecution> {
    let last = "";
    const check = async () => {
      const execution = await this.#execution(id);
      const state = execution.Status.State;
      if (state !== last && !TERMINAL.has(state)) this.context.log(`${label}: ${state}`);
      last = state;
      return { done: TERMINAL.has(state), state, value: execution };
    };
    try {
      return (await pollUntil(check, { signal: this.context.signal, timeoutMs })).value;
    } catch (error) {
      const why = this.context.signal.aborted
        ? "interrupted"
        : error instanceof PollTimeoutError
        ? `timeout of ${formatDuration(timeoutMs!)} reached`
        : `lost track of it: ${(error as Error).message}`;
      // a query that could not be stopped stays recorded as started: the next attempt reattaches to it
      const stopped = await this.#stop(label, id, why);
      if (stopped) await this.ledger.ended(key, "failed");
      if (error instanceof PollTimeoutError) {
        throw new Error(
          `Athena query ${id} was still ${error.lastState} after the timeout of ${
            formatDuration(timeoutMs!)
          }: ${stopped ? "stopped it" : "could not stop it"}`,
        );
      }
      throw error;
    }
  }

  /**
   * An earlier attempt of this routine run started query `id` for other SQL or settings under the same key
   * (the routine changed since): stopped if it still runs, so that the two never run side by side (a CTAS
   * writing to the old location while the new one writes to the new).
   */
  async #stopSuperseded(label: string, id: string): Promise<void> {
    const execution = await this.#execution(id).catch(() => undefined);
    if (execution && TERMINAL.has(execution.Status.State)) return;
    await this.#stop(label, id, "an earlier attempt of this run started it with other SQL or settings");
  }

  /** What GetQueryExecution says of query `id` now. */
  async #execution(id: string): Promise<QueryExecution> {
    const { QueryExecution: execution } = await this.athena.call<{ QueryExecution: QueryExecution }>(
      "GetQueryExecution",
      { QueryExecutionId: id },
      { signal: this.context.signal, idempotent: true },
    );
    return execution;
  }

  /** Stops the query and logs it; false when it could not be stopped (also logged). */
  async #stop(label: string, id: string, why: string): Promise<boolean> {
    try {
      await this.athena.call("StopQueryExecution", { QueryExecutionId: id }, {
        signal: AbortSignal.timeout(STOP_WAIT_MS),
        idempotent: true,
      });
      this.context.log(`${label}: stopped query ${id} (${why})`);
      return true;
    } catch (error) {
      this.context.log(
        `${label}: could not stop query ${id} (${why}): ${(error as Error).message}; ` +
          `stop it in the Athena console`,
      );
      return false;
    }
  }
}

/**
 * A refused StartQueryExecution, with the names its message leaves out ({@link namesLeftOut}: the workgroup
 * of "WorkGroup does not exist") and the usual remedy for a missing output location.
 */
function explainStartError(error: unknown, spec: QuerySpec): unknown {
  if (!(error instanceof AwsServiceError) || !error.sent) return error;
  const names = namesLeftOut(error.awsMessage, spec);
  const remedy = /output location/i.test(error.message)
    ? " (set output_location, or give the workgroup a query result location)"
    : "";
  if (!names && !remedy) return error;
  return new AwsServiceError(
    error.service,
    error.operation,
    error.code,
    `${error.awsMessage}${names}${remedy}`,
    error.status,
    { cause: error },
  );
}
