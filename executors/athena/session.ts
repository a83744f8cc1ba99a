/**
 * What every AthenaExecutor task starts with: the Athena client (throttling retried and logged), the step's
 * query ledger, and the query settings from the params.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { AwsJsonClient } from "../../lib/aws/json_client.ts";
import { CloudRunLedger } from "../../lib/cloud/ledger.ts";
import { formatDuration } from "../../lib/format.ts";
import { outputLocationOf, type Params } from "./params.ts";
import { AthenaQueries, type QuerySpec, type RunOptions } from "./queries.ts";

/** An AWS JSON client for `service` that logs every throttled or retried call. */
export function jsonClient(service: "athena" | "glue", context: TaskContext<Params>): AwsJsonClient {
  return new AwsJsonClient(service, {
    settings: context.aws,
    onRetry: ({ operation, code, attempt, delayMs }) =>
      context.log(`${operation}: ${code}; retry ${attempt} in ${formatDuration(delayMs)}`),
  });
}

/** The step's Athena queries, recorded in its journal under this routine run. */
export async function openQueries(context: TaskContext<Params>): Promise<AthenaQueries> {
  const ledger = await CloudRunLedger.open(context.stateDir, context.runId, context.stepId);
  return new AthenaQueries(jsonClient("athena", context), ledger, context);
}

/**
 * A query in the step's database, catalog and workgroup; `about` names the table it is about (for its errors)
 * and gives its execution parameters.
 */
export function querySpec(
  params: Params,
  sql: string,
  about: { table?: string; parameters?: string[] } = {},
): QuerySpec {
  return {
    sql,
    parameters: about.parameters,
    table: about.table,
    database: params.database,
    catalog: params.catalog,
    workgroup: params.workgroup,
    outputLocation: outputLocationOf(params),
  };
}

/** The step's `timeout`, as run options. */
export function runOptions(params: Params): RunOptions {
  return params.timeout === undefined ? {} : { timeoutMs: params.timeout * 1000 };
}
