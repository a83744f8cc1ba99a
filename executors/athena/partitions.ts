/**
 * The `add_partitions` task: finds the Hive-style partition folders under `location` (`dt=2020-09-30/`,
 * `year=2020/month=09/`), asks Athena which the table already has (`SHOW PARTITIONS`), and adds the missing
 * ones with `ALTER TABLE … ADD IF NOT EXISTS PARTITION …`, in as few statements as Athena's query size
 * allows. MSCK REPAIR TABLE would find them too, but scans the whole folder tree and is known to be slow.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { plural } from "../../lib/format.ts";
import { athenaAddPartitionsSql, type Partition, partitionsFromKeys } from "../../lib/tables/ddl.ts";
import { quoteIdentifier } from "../../lib/tables/identifiers.ts";
import { type Params, required } from "./params.ts";
import type { AthenaQueries } from "./queries.ts";
import { resultPages } from "./results.ts";
import { openQueries, querySpec, runOptions } from "./session.ts";

/** Partition folders named in one log line. */
const NAMED = 10;

/** `add_partitions`: see the module documentation. */
export async function addPartitions(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  const database = required(params, "database", "add_partitions");
  const table = required(params, "table", "add_partitions");
  const location = required(params, "location", "add_partitions");
  const partitionedBy = required(params, "partitioned_by", "add_partitions");
  const columns = Object.keys(partitionedBy);

  const { listObjects } = await import("./s3.ts");
  const keys: string[] = [];
  for await (const object of listObjects(location, context.s3, context.signal)) keys.push(object.key);
  const found = partitionsFromKeys(location, keys, columns);
  const folder = location.endsWith("/") ? location : `${location}/`;
  const name = (partition: Partition) => partition.location.slice(folder.length).replace(/\/$/, "");
  if (found.length === 0) {
    context.log(
      `no partition folders (${columns.map((c) => `${c}=…`).join("/")}/) in ${location}: nothing to add`,
    );
    return reportAdded(context, 0);
  }
  context.log(`${plural(found.length, "partition folder")} in ${location}`);

  const queries = await openQueries(context);
  const tableName = `${quoteIdentifier(database, "athena")}.${quoteIdentifier(table, "athena")}`;
  const existing = await tablePartitions(queries, context, `SHOW PARTITIONS ${tableName}`);
  const missing = found.filter((partition) => !existing.has(name(partition)));
  if (missing.length === 0) {
    context.log(`the table has all ${plural(found.length, "partition")} already`);
    return reportAdded(context, 0);
  }
  const batches = statements(database, table, missing);
  for (const [index, batch] of batches.entries()) {
    await queries.run(
      `add_partitions/${index}`,
      "ADD PARTITION",
      querySpec(params, batch.sql, { table: `${database}.${table}` }),
      runOptions(params),
    );
  }
  const named = missing.slice(0, NAMED).map(name).join(", ");
  const more = missing.length > NAMED ? ` and ${missing.length - NAMED} more` : "";
  context.log(
    `added ${plural(missing.length, "partition")} (${named}${more}) to ${database}.${table}` +
      `${existing.size ? `; ${plural(found.length - missing.length, "was", "were")} there already` : ""}`,
  );
  reportAdded(context, missing.length);
}

/**
 * The output `partitions_added`. On a re-run of the routine run, SHOW PARTITIONS is the query the first
 * attempt ran (reattached), so the partitions it lacked, and the count, are the same.
 */
function reportAdded(context: TaskContext<Params>, added: number): void {
  context.report({ type: "output", name: "partitions_added", value: added });
}

/** The partitions the table has, as `dt=2020-09-30` (`year=2020/month=09`) names. */
async function tablePartitions(
  queries: AthenaQueries,
  context: TaskContext<Params>,
  sql: string,
): Promise<Set<string>> {
  const execution = await queries.run(
    "add_partitions/show",
    "SHOW PARTITIONS",
    querySpec(context.params, sql, { table: `${context.params.database}.${context.params.table}` }),
    runOptions(context.params),
  );
  const names = new Set<string>();
  for await (const page of resultPages(queries.athena, execution, { signal: context.signal })) {
    for (const row of page.rows) if (row[0]) names.add(row[0]);
  }
  return names;
}

/** ALTER TABLE statements adding `partitions`, each within Athena's query size (halving until they fit). */
function statements(database: string, table: string, partitions: Partition[]): { sql: string }[] {
  try {
    return [{ sql: athenaAddPartitionsSql(database, table, partitions) }];
  } catch (error) {
    if (partitions.length < 2 || !/add them in batches/.test((error as Error).message)) throw error;
    const half = Math.ceil(partitions.length / 2);
    return [
      ...statements(database, table, partitions.slice(0, half)),
      ...statements(database, table, partitions.slice(half)),
    ];
  }
}
