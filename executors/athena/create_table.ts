/**
 * The `create_table` task: `CREATE EXTERNAL TABLE` over the staged files in `location`.
 *
 * - **Columns** are `columns` from params, or inferred from a sample of the files: the first bytes of the
 *   first objects (header and sample rows → bigint, double, boolean, date, timestamp, string).
 *   Header texts become valid, unique identifiers; a header is data, never SQL. The mapping is logged.
 * - **SerDe**: for CSV and TSV the sample decides between LazySimpleSerDe and OpenCSVSerde (quoted fields)
 *   and the header line is skipped; why is logged.
 * - **An existing table** (Glue GetTable): `if_exists: fail` fails; `keep` keeps it when its columns,
 *   partition columns and location match and fails listing every difference otherwise (schema drift);
 *   `replace` drops it (its files stay) and creates it again.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { AwsServiceError } from "../../lib/aws/json_client.ts";
import { fingerprintOf } from "../../lib/cloud/ledger.ts";
import {
  athenaCreateTableSql,
  type ColumnSpec,
  hiveType,
  schemaDrift,
  SERDES,
  type TableStorage,
  type WantedColumn,
} from "../../lib/tables/ddl.ts";
import { quoteIdentifier } from "../../lib/tables/identifiers.ts";
import { inferTable } from "../../lib/tables/infer.ts";
import { type FileSample, isHiddenPath, sampleFiles } from "../../lib/tables/sample.ts";
import { openLocation } from "../../lib/storage/locations.ts";
import { checkCatalog, createTableSamples, hasHeader, type Params, required } from "./params.ts";
import { type AthenaQueries, startRequest } from "./queries.ts";
import { jsonClient, openQueries, querySpec, runOptions } from "./session.ts";

/** Objects sampled for inference. */
const SAMPLE_FILES = 3;
/** Bytes read from the start of each (after decompression); the read stops there. */
const SAMPLE_BYTES = 64 * 1024;
const CREATE_KEY = "create_table/create";
const DROP_KEY = "create_table/drop";
/** Compressions Athena reads that inference does not. */
const UNREADABLE = /\.(bz2|zst|zstd|snappy|lz4|lzo|deflate|br)$/i;

/** The table to declare: its columns and what the files need. */
interface TableDesign {
  columns: ColumnSpec[];
  quoted: boolean;
  delimiter?: string;
  /** Values hold backslashes, read as they are. */
  backslashes?: boolean;
  /** Why, for the log. */
  reasons: string[];
}

/** A table as Glue's GetTable describes it (the members compared). */
interface GlueTable {
  StorageDescriptor?: {
    Columns?: { Name: string; Type?: string }[];
    Location?: string;
    SerdeInfo?: { SerializationLibrary?: string; Parameters?: Record<string, string> };
  };
  PartitionKeys?: { Name: string; Type?: string }[];
  Parameters?: Record<string, string>;
}

/** `create_table`: see the module documentation. */
export async function createTable(context: TaskContext<Params>): Promise<void> {
  const { params } = context;
  const database = required(params, "database", "create_table");
  const table = required(params, "table", "create_table");
  const location = required(params, "location", "create_table");
  checkCatalog(params, "create_table");
  const name = `${database}.${table}`;

  const design = await designTable(context, location);
  const partitions = Object.entries(params.partitioned_by ?? {}).map(([name, type]) => ({ name, type }));
  const generated = athenaCreateTableSql({
    database,
    table,
    columns: design.columns,
    partitionedBy: partitions,
    location,
    format: params.format,
    header: hasHeader(params),
    quoted: design.quoted,
    delimiter: design.delimiter,
    backslashes: design.backslashes,
  });
  for (const reason of [...design.reasons, ...generated.reasons]) context.log(reason);

  const queries = await openQueries(context);
  const createSpec = querySpec(params, generated.sql, { table: name });
  const earlier = await queries.ledger.get(CREATE_KEY);
  const ours = earlier !== undefined && earlier.runId === context.runId && earlier.state !== "failed" &&
    earlier.fingerprint === fingerprintOf(startRequest(createSpec));
  // a table this run already created (or is creating) is not "existing": the query is reattached instead
  let status: "created" | "replaced" = "created";
  if (ours) {
    // replaced, if this run dropped the table before creating it (what the first attempt reported)
    const drop = await queries.ledger.get(DROP_KEY);
    if (drop?.runId === context.runId && drop.state === "succeeded") status = "replaced";
  } else {
    const existing = await existingTable(context, queries, generated, partitions);
    if (existing === "kept") return reportTable(context, name, "kept");
    if (existing === "dropped") status = "replaced";
  }
  context.log("CREATE TABLE statement:");
  for (const line of generated.sql.split("\n")) context.log(`  ${line}`);
  const execution = await queries.run(CREATE_KEY, "CREATE TABLE", createSpec, runOptions(params));
  context.log(
    `table ${name} created over ${location} (${generated.columns.length} columns` +
      `${partitions.length ? `, partitioned by ${partitions.map((p) => p.name).join(", ")}` : ""}; ` +
      `query ${execution.QueryExecutionId})`,
  );
  reportTable(context, name, status);
}

/** The outputs `table` (database.table) and `table_status`: created, replaced or kept. */
function reportTable(context: TaskContext<Params>, name: string, status: "created" | "replaced" | "kept") {
  context.report({ type: "output", name: "table", value: name });
  context.report({ type: "output", name: "table_status", value: status });
}

/**
 * Applies `if_exists` to the table if it exists: fails (`fail`, or `keep` with schema drift), keeps it
 * (`keep`, same columns and location), or drops it (`replace`). Resolves to what it did: nothing (`create`:
 * no such table), `kept` or `dropped`.
 */
async function existingTable(
  context: TaskContext<Params>,
  queries: AthenaQueries,
  wanted: { columns: WantedColumn[]; storage: TableStorage },
  partitions: { name: string; type: string }[],
): Promise<"create" | "kept" | "dropped"> {
  const { params } = context;
  const [database, table, location] = [params.database!, params.table!, params.location!];
  const name = `${database}.${table}`;
  const existing = await glueTable(context, database, table);
  if (!existing) return "create";
  if (params.if_exists === "fail") throw new Error(`table ${name} already exists (if_exists: fail)`);
  if (params.if_exists === "keep") {
    const drift = [
      ...tableDrift(existing, wanted.columns, partitions, location, params),
      ...storageDrift(existing, wanted.storage),
    ].join("; ");
    if (drift) {
      throw new Error(
        `table ${name} exists and differs from the files in ${location} (schema drift): ${drift} — ` +
          "set if_exists: replace to recreate it",
      );
    }
    context.log(`table ${name} exists with the same columns, location and format: kept (if_exists: keep)`);
    return "kept";
  }
  const quoted = `${quoteIdentifier(database, "athena")}.${quoteIdentifier(table, "athena")}`;
  await queries.run(
    DROP_KEY,
    "DROP TABLE",
    querySpec(params, `DROP TABLE IF EXISTS ${quoted}`, { table: name }),
    runOptions(params),
  );
  context.log(`dropped table ${name} to replace it (if_exists: replace; its files stay in S3)`);
  return "dropped";
}

/** The columns, from params or inferred, and the SerDe choice the files need. */
async function designTable(context: TaskContext<Params>, location: string): Promise<TableDesign> {
  const { params } = context;
  const given = params.columns && Object.entries(params.columns).map(([name, type]) => ({ name, type }));
  if (!given && params.format === "parquet") {
    throw new Error(
      "parquet tables need the param 'columns': lakerun does not infer them from parquet files",
    );
  }
  if (!createTableSamples(params)) return { columns: given!, quoted: false, reasons: [] };
  const samples = await sampleObjects(context, location);
  if (samples.length === 0) {
    if (given) {
      return {
        columns: given,
        quoted: false,
        reasons: [`no files in ${location} yet: assuming fields without quotes`],
      };
    }
    throw new Error(
      `no data files in ${location} to infer the columns from: stage the files first, or give columns`,
    );
  }
  context.log(
    `sampled the first ${Math.round(SAMPLE_BYTES / 1024)} KiB of ${samples.map((s) => s.path).join(", ")}`,
  );
  const inferred = inferTable(samples.map((s) => s.text), {
    format: params.format,
    header: hasHeader(params),
    names: samples.map((s) => s.path),
    wholeFiles: samples.map((s) => s.whole),
    target: "athena",
  });
  if (given) {
    const reasons = inferred.quoted
      ? ["the sampled files have quoted fields"]
      : ["the sampled files have no quoted fields"];
    if (inferred.columns.length !== given.length && params.format !== "json") {
      reasons.push(
        `the sampled files have ${inferred.columns.length} columns; columns declares ${given.length}`,
      );
    }
    return {
      columns: given,
      quoted: inferred.quoted,
      delimiter: inferred.delimiter,
      backslashes: inferred.backslashes,
      reasons,
    };
  }
  const mapping = inferred.columns.map((column) =>
    column.source === "" || column.source === column.name
      ? `${column.name} ${column.type}`
      : `${JSON.stringify(column.source)} → ${column.name} ${column.type}`
  );
  return {
    columns: inferred.columns,
    quoted: inferred.quoted,
    delimiter: inferred.delimiter,
    backslashes: inferred.backslashes,
    reasons: [...inferred.reasons, `columns: ${mapping.join(", ")}`],
  };
}

/**
 * The first bytes of the first data objects under `location`: files Athena would read (not empty, not
 * `_`- or `.`-prefixed like `_SUCCESS`, not lakerun's temporaries), at most {@link SAMPLE_FILES}; `.gz`
 * objects gunzipped, other compressions refused. The listing stops at the last object sampled.
 */
async function sampleObjects(context: TaskContext<Params>, location: string): Promise<FileSample[]> {
  const { listObjects } = await import("./s3.ts");
  const storage = await openLocation(location, { cwd: context.cwd, s3: context.s3 });
  return await sampleFiles(storage, {
    maxFiles: SAMPLE_FILES,
    maxBytes: SAMPLE_BYTES,
    signal: context.signal,
    files: listObjects(location, context.s3, context.signal),
    skip: (path) => path === "" || path.endsWith("/") || isHiddenPath(path),
    decompress(path) {
      if (UNREADABLE.test(path)) {
        throw new Error(`cannot sample the compressed file ${path}: give the param 'columns'`);
      }
      return /\.gz$/i.test(path) ? "gzip" : undefined;
    },
  });
}

/** The table in the Glue Data Catalog, or `undefined` when it (or its database) does not exist. */
async function glueTable(
  context: TaskContext<Params>,
  database: string,
  table: string,
): Promise<GlueTable | undefined> {
  try {
    const answer = await jsonClient("glue", context).call<{ Table: GlueTable }>(
      "GetTable",
      { DatabaseName: database, Name: table },
      { signal: context.signal, idempotent: true },
    );
    return answer.Table;
  } catch (error) {
    if (error instanceof AwsServiceError && error.code === "EntityNotFoundException") return undefined;
    throw error;
  }
}

/**
 * How an existing table would read the files otherwise than the table lakerun makes for them, one sentence per
 * difference: another SerDe (a LazySimpleSerDe table splits quoted fields that hold the delimiter; a text table
 * cannot read parquet), another field delimiter, or header lines skipped or not. A table whose catalog entry
 * says nothing of its SerDe (made by hand with no storage) is compared by columns and location only.
 */
function storageDrift(existing: GlueTable, wanted: TableStorage): string[] {
  const serdeInfo = existing.StorageDescriptor?.SerdeInfo;
  const serde = serdeInfo?.SerializationLibrary;
  if (!serde) return [];
  const name = (serde: string) => serde.split(".").at(-1);
  const json = (serde: string) => /JsonSerDe$/.test(serde);
  // OpenCSVSerde reads unquoted files too (with its own column types, compared as columns)
  const reads = serde === wanted.serde || (json(serde) && json(wanted.serde)) ||
    (serde === SERDES.openCsv && wanted.serde === SERDES.lazySimple);
  if (!reads) return [`table reads its files with ${name(serde)}, the files need ${name(wanted.serde)}`];
  const differences: string[] = [];
  const parameters = serdeInfo?.Parameters ?? {};
  const delimiter = serde === SERDES.openCsv ? parameters.separatorChar ?? "," : parameters["field.delim"];
  if (wanted.delimiter !== undefined && delimiter !== undefined && delimiter !== wanted.delimiter) {
    differences.push(
      `table splits fields at ${JSON.stringify(delimiter)}, the files at ${JSON.stringify(wanted.delimiter)}`,
    );
  }
  const skipped = Number(existing.Parameters?.["skip.header.line.count"] ?? "0");
  if (skipped !== wanted.headerLines) {
    const lines = (n: number) => n === 0 ? "no header line" : n === 1 ? "a header line" : `${n} header lines`;
    differences.push(`table skips ${lines(skipped)}, the files have ${lines(wanted.headerLines)}`);
  }
  return differences;
}

/** How an existing table differs from the table wanted, one sentence per difference. */
function tableDrift(
  existing: GlueTable,
  columns: WantedColumn[],
  partitions: { name: string; type: string }[],
  location: string,
  params: Params,
): string[] {
  const asColumns = (list: { Name: string; Type?: string }[] | undefined) =>
    (list ?? []).map((c) => ({ name: c.Name, type: c.Type ?? "" }));
  const differences = schemaDrift(asColumns(existing.StorageDescriptor?.Columns), columns, {
    positional: params.format === "csv" || params.format === "tsv",
    inferred: params.columns ? undefined : "athena",
  });
  const wantedPartitions = partitions.map((p) => ({ name: p.name, type: hiveType(p.type) }));
  differences.push(
    ...schemaDrift(asColumns(existing.PartitionKeys), wantedPartitions).map((d) => `partition columns: ${d}`),
  );
  const folder = (url: string) => url.replace(/\/*$/, "/");
  const tableLocation = existing.StorageDescriptor?.Location;
  if (tableLocation && folder(tableLocation) !== folder(location)) {
    differences.push(`table reads ${folder(tableLocation)}, location is ${folder(location)}`);
  }
  return differences;
}
