/**
 * The RedshiftExecutor, end to end, each step in its real Worker:
 *
 * - the **Data API** path against the Redshift Data API FAKE (`tests/support/redshift_data_fake.ts`: moto's
 *   redshift-data is unusable from JavaScript), whose SQL runs on a real PostgreSQL 15 and whose
 *   `COPY … FROM 's3://…'` is emulated from a real S3 server (Ceph radosgw): batches as one transaction,
 *   ClientToken reattachment after a lost reply or a kill, cancel on interrupt, throttling, load-error reports,
 *   append / replace / MERGE without duplicates on a re-run;
 * - the **wire-protocol** path against the real PostgreSQL directly: execute in one transaction, cancel on
 *   interrupt, and copy_from_s3's COPY refused by PostgreSQL (it has no COPY FROM S3) with nothing committed;
 * - the exact COPY text, `copy_options` / `iam_role` that cannot inject, the params rules, the IAM policy, the
 *   sandbox `lakerun plan` shows, and a password that appears in no line lakerun prints and no journal.
 *
 * No real Redshift is reachable from here: what only Redshift can show (its COPY, its MERGE, its system
 * tables, its Data API) is checked against the fake and the statement texts.
 *
 * Run: deno test -A tests/redshift_test.ts (set LAKERUN_TEST_S3_ENV / LAKERUN_TEST_PG_ENV to reuse servers)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import { gzipSync } from "node:zlib";
import redshift from "../executors/redshift/mod.ts";
import { ParamError } from "../sdk/executor.ts";
import { loadStatements } from "../executors/redshift/tasks.ts";
import { statementError } from "../executors/redshift/data_api.ts";
import { RedshiftStatementError } from "../executors/redshift/runner.ts";
import { columnsFromHeaders } from "../executors/redshift/sample.ts";
import { copyRoleStatements } from "../executors/redshift/iam.ts";
import { redshiftCopySql } from "../lib/sql/redshift_copy.ts";
import { openS3Location } from "../lib/aws/s3/storage.ts";
import { listRuns } from "../orchestrator/run/records.ts";
import { lakerun, lakerunCommand, readTree, runRoutineJson, tempDir } from "./support/lakerun.ts";
import { startPostgres } from "./support/postgres.ts";
import { type RedshiftDataFake, startRedshiftDataFake } from "./support/redshift_data_fake.ts";
import { createTestBucket, s3Test, startS3ServerForLakerun } from "./support/s3_server.ts";

const s3server = await startS3ServerForLakerun();
const s3 = { endpoint: s3server.endpoint, region: s3server.region };
const pg = await startPostgres();
const ROLE = "arn:aws:iam::123456789012:role/lakerun-load";
const encoder = new TextEncoder();

/** Runs `sql` on the test PostgreSQL and returns psql's unaligned output, trimmed. */
const psql = async (sql: string) => (await pg.psql(sql)).trim();

async function putObjects(url: string, files: Record<string, string | Uint8Array>): Promise<void> {
  const storage = openS3Location(url, s3);
  for (const [path, body] of Object.entries(files)) {
    const bytes = typeof body === "string" ? encoder.encode(body) : body;
    await storage.write(path, new Blob([bytes as BlobPart]).stream());
  }
}

/** A routine with one RedshiftExecutor step per entry, talking to the fake and the S3 server. */
function routine(
  fake: RedshiftDataFake | undefined,
  steps: Record<string, { params: Record<string, unknown>; tasks: string[] }>,
  name = "rs",
) {
  return {
    routine_name: name,
    aws: {
      region: "us-east-1",
      endpoints: { ...(fake ? { redshift_data: fake.endpoint } : {}), s3: s3.endpoint },
    },
    executors: Object.fromEntries(
      Object.entries(steps).map(([id, step]) => [id, { executor: "RedshiftExecutor", ...step }]),
    ),
  };
}

const dataApi = { cluster_identifier: "analytics", database: pg.database, db_user: "loader" };

async function startFake(pageSize?: number): Promise<RedshiftDataFake> {
  return await startRedshiftDataFake({ postgres: pg, s3, pageSize });
}

/** A fresh table name for one test. */
let tables = 0;
const tableName = (base: string) => `${base}_${Date.now().toString(36)}_${++tables}`;

// ------------------------------------------------------------------------------------------------ unit

Deno.test("the COPY statement is exact, every identifier and literal quoted", () => {
  assert.equal(
    redshiftCopySql({
      schema: "raw",
      table: 'we"ird',
      columns: ["id", "Amount"],
      source: "s3://lake/staging/it's/",
      iamRole: ROLE,
      format: "csv",
      options: ["dateformat 'auto'", "NULL AS '\\N'", "QUOTE AS '|'", "MAXERROR 0", "GZIP"],
    }),
    `COPY "raw"."we""ird" ("id", "Amount") FROM 's3://lake/staging/it''s/' IAM_ROLE '${ROLE}' ` +
      `FORMAT AS CSV QUOTE AS '|' IGNOREHEADER 1 DATEFORMAT 'auto' NULL AS '\\\\N' MAXERROR 0 GZIP`,
  );
  assert.equal(
    redshiftCopySql({
      table: "s",
      source: "s3://lake/p/",
      iamRole: ROLE,
      format: "json",
      options: ["TIMEFORMAT 'auto'"],
    }),
    `COPY "s" FROM 's3://lake/p/' IAM_ROLE '${ROLE}' FORMAT AS JSON 'auto ignorecase' TIMEFORMAT 'auto'`,
  );
  assert.equal(
    redshiftCopySql({
      table: "s",
      columns: ["a"],
      source: "s3://lake/p/",
      iamRole: "default",
      format: "parquet",
    }),
    `COPY "s" FROM 's3://lake/p/' IAM_ROLE default FORMAT AS PARQUET`,
  );
  assert.equal(
    redshiftCopySql({
      table: "s",
      source: "s3://lake/p/",
      iamRole: ROLE,
      format: "csv",
      options: ["IGNOREHEADER 0"],
    }),
    `COPY "s" FROM 's3://lake/p/' IAM_ROLE '${ROLE}' FORMAT AS CSV IGNOREHEADER 0`,
  );
});

Deno.test("copy_from_s3's statements: staging table, COPY, then append / replace by DELETE / MERGE", () => {
  const params = (mode: string, extra: Record<string, unknown> = {}) =>
    redshift.params(z).parse({
      ...dataApi,
      table: "raw.sales",
      source: "s3://lake/in",
      iam_role: ROLE,
      mode,
      ...extra,
    });
  const copy =
    `COPY "lakerun_staging" ("id", "amount") FROM 's3://lake/in/' IAM_ROLE '${ROLE}' FORMAT AS CSV IGNOREHEADER 1`;
  const target = { schema: "raw", table: "sales" };
  assert.deepEqual(loadStatements(params("append"), target, ["id", "amount"]).sqls, [
    'CREATE TEMPORARY TABLE "lakerun_staging" AS SELECT "id", "amount" FROM "raw"."sales" WHERE 1 = 0',
    copy,
    'INSERT INTO "raw"."sales" ("id", "amount") SELECT "id", "amount" FROM "lakerun_staging"',
    'DROP TABLE "lakerun_staging"',
  ]);
  assert.deepEqual(loadStatements(params("replace"), target, ["id", "amount"]).sqls.slice(2, 4), [
    'DELETE FROM "raw"."sales"',
    'INSERT INTO "raw"."sales" ("id", "amount") SELECT "id", "amount" FROM "lakerun_staging"',
  ]);
  const upsert = loadStatements(params("upsert", { upsert_keys: ["id"] }), target, ["id", "amount"]);
  assert.equal(
    upsert.sqls[upsert.writesIndexes[0]],
    'MERGE INTO "raw"."sales" USING "lakerun_staging" ON "raw"."sales"."id" = "lakerun_staging"."id"\n' +
      'WHEN MATCHED THEN UPDATE SET "amount" = "lakerun_staging"."amount"\n' +
      'WHEN NOT MATCHED THEN INSERT ("id", "amount") VALUES ("lakerun_staging"."id", "lakerun_staging"."amount")',
  );
  assert.ok(!upsert.sqls.some((sql) => /TRUNCATE/i.test(sql)));
  // a NULL key and a repeated key each fail a check before the MERGE; every temporary table is dropped
  assert.deepEqual(
    [...upsert.checks].map(([index, check]) => [index < upsert.writesIndexes[0], check.problem]),
    [
      [true, "null_key"],
      [true, "repeated_key"],
    ],
  );
  assert.deepEqual(upsert.sqls.slice(-2), [
    'DROP TABLE "lakerun_staging"',
    'DROP TABLE "lakerun_upsert_checks"',
  ]);
});

Deno.test("copy_from_s3 reads no header it could misread: given columns, UTF-16, bzip2, another QUOTE", async () => {
  const base = { ...dataApi, table: "raw.sales", source: "s3://lake/in", iam_role: ROLE };
  // an unreachable S3 endpoint: reading anything would fail the call
  const options = {
    cwd: "/",
    s3: { endpoint: "http://127.0.0.1:1", region: "us-east-1" },
    signal: new AbortController().signal,
    tableName: "raw.sales",
  };
  for (
    const extra of [
      { columns: [{ name: "id", type: "bigint" }] },
      { copy_options: ["ENCODING UTF16LE"] },
      { copy_options: ["BZIP2"] },
      { copy_options: ["QUOTE AS '%'"] },
      { copy_options: ["IGNOREHEADER 0"] },
      { format: "json" },
    ]
  ) {
    const params = redshift.params(z).parse({ ...base, ...extra });
    assert.equal(await columnsFromHeaders(params, ["id"], options), undefined, JSON.stringify(extra));
  }
  await assert.rejects(
    columnsFromHeaders(
      redshift.params(z).parse({ ...base, copy_options: ["ENCODING UTF8"] }),
      ["id"],
      options,
    ),
  );
});

Deno.test("copy_options and iam_role cannot inject: each entry is checked, its value re-quoted", () => {
  const parse = (extra: Record<string, unknown>) =>
    redshift.params(z).safeParse({
      ...dataApi,
      table: "t",
      source: "s3://lake/in",
      iam_role: ROLE,
      ...extra,
    });
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ copy_options: ["MAXERROR 1; DROP TABLE t"] }, /MAXERROR takes a whole number, not "1; DROP TABLE t"/],
    [{ copy_options: ["DATEFORMAT 'auto' IAM_ROLE 'arn:x'"] }, /DATEFORMAT takes a value in single quotes/],
    [{ copy_options: ["CREDENTIALS 'aws_access_key_id=AKIA;aws_secret_access_key=x'"] }, /keys never belong/],
    [{ copy_options: ["IAM_ROLE 'arn:aws:iam::1:role/x'"] }, /the role is the `iam_role` param/],
    [{ copy_options: ["FORMAT AS JSON"] }, /the format is set by the `format` param/],
    [{ copy_options: ["MANIFEST"] }, /every object under `source`/],
    [{ copy_options: ["SELECT 1"] }, /SELECT is not a COPY option lakerun accepts/],
    [{ copy_options: ["REGION 'us-east-1'"], format: "parquet" }, /not with format parquet/],
    [{ iam_role: `${ROLE}' CREDENTIALS 'x` }, /is not an IAM role ARN/],
    [{ copy_options: ["DELIMITER 'ab'"] }, /must be a single character/],
  ];
  for (const [extra, message] of refused) {
    const result = parse(extra);
    assert.equal(result.success, false, JSON.stringify(extra));
    assert.match(result.error!.issues.map((i) => i.message).join("\n"), message, JSON.stringify(extra));
  }
  // a value that looks like SQL stays inside its literal
  const params = parse({ copy_options: ["TIMEFORMAT 'x'' IAM_ROLE ''y'"] });
  assert.ok(params.success);
  assert.match(
    redshiftCopySql({
      table: "s",
      source: "s3://lake/in/",
      iamRole: ROLE,
      format: "csv",
      options: params.data.copy_options,
    }),
    / TIMEFORMAT 'x'' IAM_ROLE ''y'$/,
  );
});

Deno.test("params: one way to connect, each with what it needs; one-line errors naming the param", () => {
  const problems = (input: Record<string, unknown>) => {
    const result = redshift.params(z).safeParse(input);
    return result.success ? [] : result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  };
  assert.deepEqual(problems({ ...dataApi }), []);
  assert.deepEqual(problems({ workgroup_name: "lake", database: "dev" }), []);
  assert.deepEqual(problems({ host: "c.example.com", database: "dev", user: "u", password_env: "PW" }), []);
  assert.deepEqual(problems({ database: "dev" }), [
    "cluster_identifier: say where Redshift is: cluster_identifier or workgroup_name (Data API), or host (wire protocol)",
  ]);
  assert.deepEqual(problems({ cluster_identifier: "a", database: "dev" }), [
    "secret_arn: the Data API on a cluster needs secret_arn or db_user",
  ]);
  assert.deepEqual(problems({ ...dataApi, host: "h" }), [
    "host: give cluster_identifier/workgroup_name (Data API) or host (wire protocol), not both",
  ]);
  assert.deepEqual(problems({ ...dataApi, password_env: "PW" }), [
    "password_env: is for the wire protocol (host); the Data API does not use it",
  ]);
  assert.deepEqual(problems({ workgroup_name: "lake", database: "dev", db_user: "u" }), [
    "db_user: Redshift Serverless takes secret_arn, or neither (your IAM identity), not db_user",
  ]);
  assert.deepEqual(problems({ host: "h", database: "dev", user: "u" }), [
    "password_env: the wire protocol needs password_env: the name of the variable holding the password",
  ]);
  assert.deepEqual(problems({ ...dataApi, mode: "upsert" }), [
    "upsert_keys: mode upsert needs upsert_keys: the columns that identify a row",
  ]);
  assert.deepEqual(problems({ ...dataApi, table: "a.b.c" }), [
    'table: table name "a.b.c" has 3 parts; write "table" or "schema.table"',
  ]);
  const notDeclared = (type: string) =>
    `${
      JSON.stringify(type)
    } is not a column type lakerun declares in redshift (use bigint, double, boolean, ` +
    "date, timestamp, string, or a redshift type such as integer, numeric(10,2), varchar(256), double precision, timestamptz, super)";
  assert.deepEqual(
    problems({ ...dataApi, columns: [{ name: "id", type: "bigint" }, { name: "a", type: "blob" }] }),
    [
      `columns.1.type: ${notDeclared("blob")}`,
    ],
  );
  // Redshift's own names, as its catalog shows them, are declared; PostgreSQL's jsonb and uuid are not Redshift's
  const redshiftTypes = {
    a: "double precision",
    b: "character varying(256)",
    c: "timestamp without time zone",
    d: "timestamp with time zone",
    e: "VARCHAR(MAX)",
    f: "float8",
    g: "super",
    h: "numeric(12,2)",
    i: "character(3)",
    j: "varbyte(16)",
  };
  assert.deepEqual(problems({ ...dataApi, columns: redshiftTypes }), []);
  const refused = ["jsonb", "uuid", "timestamp(3)", "varchar(256)); DROP TABLE t; --"];
  assert.deepEqual(problems({ ...dataApi, columns: refused.map((type, i) => ({ name: `c${i}`, type })) }), [
    ...refused.map((type, i) => `columns.${i}.type: ${notDeclared(type)}`),
  ]);
  assert.deepEqual(problems({ ...dataApi, password: "hunter2" }), [': Unrecognized key: "password"']);
  // a name that breaks a rule says the rule
  assert.deepEqual(problems({ workgroup_name: "wg", database: "dev" }), [
    "workgroup_name: must be a Redshift Serverless workgroup name (3–64 characters: lowercase letters, digits and hyphens)",
  ]);
  assert.deepEqual(problems({ cluster_identifier: "1st", database: "dev", db_user: "u" }), [
    "cluster_identifier: must be a cluster identifier (1–63 characters: lowercase letters, digits and hyphens, starting with a letter)",
  ]);
  // what the listed tasks make of the params: create_table infers no parquet columns
  const scopeProblem = (params: Record<string, unknown>, tasks: string[]) => {
    try {
      redshift.permissions(redshift.params(z).parse(params), { cwd: "/w", resolve: (p) => p, tasks });
      return undefined;
    } catch (error) {
      return error instanceof ParamError ? `${error.path.join(".")}: ${error.message}` : String(error);
    }
  };
  const parquet = { ...dataApi, table: "t", source: "s3://lake/staging", format: "parquet" };
  assert.equal(
    scopeProblem(parquet, ["create_table", "copy_from_s3"]),
    "columns: create_table of parquet files needs columns ({name: type}): lakerun does not infer them from parquet",
  );
  assert.equal(scopeProblem(parquet, ["copy_from_s3"]), undefined); // the table's own columns
  assert.equal(scopeProblem({ ...parquet, columns: { id: "bigint" } }, ["create_table"]), undefined);
});

Deno.test("iam(): the Data API actions on the cluster or workgroup; COPY's S3 reads belong to iam_role", () => {
  const iam = (params: Record<string, unknown>, tasks = ["execute", "copy_from_s3"]) =>
    redshift.iam!(redshift.params(z).parse(params), {
      cwd: "/",
      resolve: (p) => p,
      aws: { region: "eu-west-1" },
      tasks,
    });
  const copy = { table: "raw.sales", source: "s3://lake/staging/sales", iam_role: ROLE };
  assert.deepEqual(iam({ ...dataApi, database: "dev", ...copy }), [
    {
      Effect: "Allow",
      Action: ["redshift-data:BatchExecuteStatement", "redshift-data:ExecuteStatement"],
      Resource: ["arn:aws:redshift:eu-west-1:*:cluster:analytics"],
    },
    {
      Effect: "Allow",
      Action: [
        "redshift-data:CancelStatement",
        "redshift-data:DescribeStatement",
        "redshift-data:GetStatementResult",
      ],
      Resource: ["*"],
    },
    {
      Effect: "Allow",
      Action: ["redshift:GetClusterCredentials"],
      Resource: [
        "arn:aws:redshift:eu-west-1:*:dbname:analytics/dev",
        "arn:aws:redshift:eu-west-1:*:dbuser:analytics/loader",
      ],
    },
    // the step reads each CSV file's header (COPY fills columns by position)
    {
      Effect: "Allow",
      Action: ["s3:ListBucket"],
      Resource: ["arn:aws:s3:::lake"],
      Condition: { StringLike: { "s3:prefix": ["staging/sales", "staging/sales/*"] } },
    },
    { Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::lake/staging/sales/*"] },
  ]);
  // given columns are the file order: no header read, no S3 for the step
  const columns = { columns: [{ name: "id", type: "bigint" }] };
  assert.deepEqual(iam({ ...dataApi, database: "dev", ...copy, ...columns }).map((s) => s.Action[0]), [
    "redshift-data:BatchExecuteStatement",
    "redshift-data:CancelStatement",
    "redshift:GetClusterCredentials",
  ]);
  const secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:redshift-loader-AbCdEf";
  const serverless = iam({ workgroup_name: "lake", database: "dev", secret_arn: secret, ...copy });
  assert.deepEqual(serverless.map((s) => [s.Action, s.Resource]), [
    [
      ["redshift-data:BatchExecuteStatement", "redshift-data:ExecuteStatement"],
      ["arn:aws:redshift-serverless:eu-west-1:*:workgroup/*"],
    ],
    [
      [
        "redshift-data:CancelStatement",
        "redshift-data:DescribeStatement",
        "redshift-data:GetStatementResult",
      ],
      ["*"],
    ],
    [["secretsmanager:GetSecretValue"], [secret]],
    [["s3:ListBucket"], ["arn:aws:s3:::lake"]],
    [["s3:GetObject"], ["arn:aws:s3:::lake/staging/sales/*"]],
  ]);
  assert.deepEqual(iam({ workgroup_name: "lake", database: "dev" }).at(-1)?.Action, [
    "redshift-serverless:GetCredentials",
  ]);
  // the wire protocol signs in with a password: no AWS action; sampling files for create_table reads S3
  assert.deepEqual(
    iam({ host: "h", database: "dev", user: "u", password_env: "PW", ...copy }, ["execute"]),
    [],
  );
  assert.deepEqual(
    iam({ host: "h", database: "dev", user: "u", password_env: "PW", ...copy }, ["create_table"]).map((s) =>
      s.Action
    ),
    [["s3:ListBucket"], ["s3:GetObject"]],
  );
  // with columns given, no statement names the bucket COPY reads: Redshift reads it as iam_role
  assert.doesNotMatch(JSON.stringify(iam({ ...dataApi, ...copy, ...columns })), /s3:|arn:aws:s3/);
  assert.deepEqual(
    copyRoleStatements(redshift.params(z).parse({ ...dataApi, ...copy })).map((s) => s.Resource),
    [
      ["arn:aws:s3:::lake"],
      ["arn:aws:s3:::lake/staging/sales/*"],
    ],
  );
});

// ------------------------------------------------------------------------------------------------ the fake

interface Answer {
  status: number;
  json: any;
}

/** One raw awsJson1_1 call to the fake. */
async function call(fake: RedshiftDataFake, operation: string, body: unknown): Promise<Answer> {
  const response = await fetch(fake.endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-amz-json-1.1", "x-amz-target": `RedshiftData.${operation}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

const identity = { ClusterIdentifier: "analytics", Database: pg.database, DbUser: "loader" };

/** Waits until the statement is FINISHED, FAILED or ABORTED; returns DescribeStatement's answer. */
async function settled(fake: RedshiftDataFake, id: string): Promise<any> {
  for (let i = 0; i < 400; i++) {
    const { json } = await call(fake, "DescribeStatement", { Id: id });
    if (["FINISHED", "FAILED", "ABORTED"].includes(json.Status)) return json;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`statement ${id} never settled`);
}

s3Test(
  "fake: a batch runs in ONE PostgreSQL transaction, all or nothing, with per-statement states",
  async () => {
    await using fake = await startFake();
    const t = tableName("fake_batch");
    await psql(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
    const ok = await call(fake, "BatchExecuteStatement", {
      ...identity,
      Sqls: [`INSERT INTO ${t} VALUES (1)`, `INSERT INTO ${t} VALUES (2), (3)`],
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(typeof ok.json.CreatedAt, "number", "awsJson1_1 timestamps are epoch seconds");
    const done = await settled(fake, ok.json.Id);
    assert.equal(done.Status, "FINISHED");
    assert.deepEqual(done.SubStatements.map((s: any) => [s.Id, s.Status, s.ResultRows]), [
      [`${ok.json.Id}:1`, "FINISHED", 1],
      [`${ok.json.Id}:2`, "FINISHED", 2],
    ]);
    const bad = await call(fake, "BatchExecuteStatement", {
      ...identity,
      Sqls: [`INSERT INTO ${t} VALUES (4)`, `INSERT INTO ${t} VALUES (1)`, `INSERT INTO ${t} VALUES (5)`],
    });
    const failed = await settled(fake, bad.json.Id);
    assert.equal(failed.Status, "FAILED");
    assert.match(failed.Error, /^ERROR: duplicate key value violates unique constraint/);
    assert.deepEqual(failed.SubStatements.map((s: any) => s.Status), ["FINISHED", "FAILED", "ABORTED"]);
    assert.equal(
      await psql(`SELECT string_agg(id::text, ',' ORDER BY id) FROM ${t}`),
      "1,2,3",
      "4 rolled back",
    );
    // validation
    const neither = await call(fake, "ExecuteStatement", { Database: "x", Sql: "SELECT 1" });
    assert.deepEqual([neither.status, neither.json.__type], [400, "ValidationException"]);
    assert.equal(typeof neither.json.message, "string");
    const tooMany = await call(fake, "BatchExecuteStatement", {
      ...identity,
      Sqls: Array(41).fill("SELECT 1"),
    });
    assert.deepEqual([tooMany.status, tooMany.json.__type], [400, "ValidationException"]);
  },
);

s3Test("fake: the same ClientToken answers the same Id and runs nothing again", async () => {
  await using fake = await startFake();
  const t = tableName("fake_token");
  await psql(`CREATE TABLE ${t} (id int)`);
  const request = {
    ...identity,
    Sqls: [`INSERT INTO ${t} VALUES (1)`, "SELECT 1"],
    ClientToken: "a".repeat(64),
  };
  const first = await call(fake, "BatchExecuteStatement", request);
  await settled(fake, first.json.Id);
  const again = await call(fake, "BatchExecuteStatement", request);
  assert.equal(again.json.Id, first.json.Id);
  await fake.idle();
  assert.equal(await psql(`SELECT count(*) FROM ${t}`), "1");
  assert.equal(fake.statement(first.json.Id)!.runs, 1);
  const changed = await call(fake, "BatchExecuteStatement", { ...request, Sqls: ["SELECT 2", "SELECT 3"] });
  assert.deepEqual([changed.status, changed.json.__type], [400, "ValidationException"]);
  const long = await call(fake, "ExecuteStatement", {
    ...identity,
    Sql: "SELECT 1",
    ClientToken: "b".repeat(65),
  });
  assert.deepEqual([long.status, long.json.__type], [400, "ValidationException"]);
});

s3Test("fake: GetStatementResult pages with NextToken and types its fields", async () => {
  await using fake = await startFake(2);
  const { json } = await call(fake, "ExecuteStatement", {
    ...identity,
    Sql:
      "SELECT g AS n, g::float8 / 2 AS half, g % 2 = 0 AS even, NULL::text AS nothing, 1.50::numeric(5,2) AS price, " +
      "'x' || g AS label FROM generate_series(1, 5) g ORDER BY g",
  });
  const done = await settled(fake, json.Id);
  assert.deepEqual([done.Status, done.HasResultSet, done.ResultRows], ["FINISHED", true, 5]);
  const pages: any[] = [];
  let token: string | undefined;
  do {
    const page = await call(
      fake,
      "GetStatementResult",
      token ? { Id: json.Id, NextToken: token } : { Id: json.Id },
    );
    assert.equal(page.status, 200, JSON.stringify(page.json));
    pages.push(page.json);
    token = page.json.NextToken;
  } while (token);
  assert.deepEqual(pages.map((p) => p.Records.length), [2, 2, 1]);
  assert.equal(pages[0].TotalNumRows, 5);
  assert.deepEqual(pages[0].ColumnMetadata.map((c: any) => c.typeName), [
    "int4",
    "float8",
    "bool",
    "text",
    "numeric",
    "text",
  ]);
  assert.deepEqual(pages[0].Records[1], [
    { longValue: 2 },
    { doubleValue: 1 },
    { booleanValue: true },
    { isNull: true },
    { stringValue: "1.50" },
    { stringValue: "x2" },
  ]);
  const empty = await call(fake, "ExecuteStatement", { ...identity, Sql: "SELECT 1 AS one WHERE false" });
  await settled(fake, empty.json.Id);
  const noRows = await call(fake, "GetStatementResult", { Id: empty.json.Id });
  assert.deepEqual([noRows.json.Records, noRows.json.TotalNumRows], [[], 0]);
  const ddl = await call(fake, "ExecuteStatement", {
    ...identity,
    Sql: `CREATE TEMP TABLE x_${tables} (a int)`,
  });
  assert.equal((await settled(fake, ddl.json.Id)).HasResultSet, false);
  const noResult = await call(fake, "GetStatementResult", { Id: ddl.json.Id });
  assert.deepEqual([noResult.status, noResult.json.__type], [400, "ValidationException"]);
});

s3Test(
  "fake: CancelStatement aborts a running statement with pg_cancel_backend; throttling is injected",
  async () => {
    await using fake = await startFake();
    const t = tableName("fake_cancel");
    await psql(`CREATE TABLE ${t} (id int)`);
    const { json } = await call(fake, "BatchExecuteStatement", {
      ...identity,
      Sqls: [`INSERT INTO ${t} VALUES (1)`, "SELECT pg_sleep(30)"],
    });
    while (
      fake.statement(json.Id)!.status !== "STARTED" ||
      fake.statement(json.Id)!.subStatements[1].status !== "STARTED"
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    const cancel = await call(fake, "CancelStatement", { Id: json.Id });
    assert.deepEqual(cancel.json, { Status: true });
    const done = await settled(fake, json.Id);
    assert.equal(done.Status, "ABORTED");
    assert.ok(performance.now() - started < 5000);
    assert.equal(await psql(`SELECT count(*) FROM ${t}`), "0");
    const late = await call(fake, "CancelStatement", { Id: json.Id });
    assert.deepEqual([late.status, late.json.__type], [400, "ValidationException"]);
    fake.throttle("DescribeStatement", 2);
    assert.equal((await call(fake, "DescribeStatement", { Id: json.Id })).json.__type, "ThrottlingException");
    assert.equal((await call(fake, "DescribeStatement", { Id: json.Id })).json.message, "Rate exceeded");
    assert.equal((await call(fake, "DescribeStatement", { Id: json.Id })).status, 200);
  },
);

s3Test(
  "fake: COPY from S3 is emulated (prefix, IGNOREHEADER, GZIP); a bad value fills sys_load_error_detail",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-fake-copy");
    await putObjects(`s3://${bucket}/in`, {
      "a.csv": 'id,amount\n1,1.5\n2,"2.5"\n',
      "b.csv.gz": gzipSync(encoder.encode("id,amount\n3,3\n")),
      "c.csv": "id,amount\n4,4\n5,12.5x\n",
    });
    const t = tableName("fake_copy");
    await psql(`CREATE TABLE ${t} (id bigint, amount numeric(12,2))`);
    const copy = (prefix: string, extra = "") =>
      `COPY "${t}" ("id", "amount") FROM 's3://${bucket}/in/${prefix}' IAM_ROLE '${ROLE}' FORMAT AS CSV IGNOREHEADER 1${extra}`;
    const good = await call(fake, "ExecuteStatement", { ...identity, Sql: copy("a") });
    assert.equal((await settled(fake, good.json.Id)).ResultRows, 2);
    const gz = await call(fake, "ExecuteStatement", { ...identity, Sql: copy("b", " GZIP") });
    assert.equal((await settled(fake, gz.json.Id)).Status, "FINISHED");
    assert.equal(
      await psql(`SELECT string_agg(id || '=' || amount, ',' ORDER BY id) FROM ${t}`),
      "1=1.50,2=2.50,3=3.00",
    );
    assert.deepEqual(fake.copies.map((c) => c.files), [[`s3://${bucket}/in/a.csv`], [
      `s3://${bucket}/in/b.csv.gz`,
    ]]);

    const bad = await call(fake, "ExecuteStatement", { ...identity, Sql: copy("c") });
    const failed = await settled(fake, bad.json.Id);
    assert.equal(failed.Status, "FAILED");
    assert.equal(
      failed.Error,
      `ERROR: Load into table '${t}' failed.  Check 'stl_load_errors' system table for details.`,
    );
    const row = await psql(
      "SELECT TRIM(file_name), line_number, TRIM(column_name), TRIM(column_type), TRIM(raw_field_value), error_code, " +
        `session_id = ${failed.RedshiftPid} FROM sys_load_error_detail WHERE query_id = ${failed.RedshiftQueryId}`,
    );
    assert.equal(row, `s3://${bucket}/in/c.csv|3|amount|numeric|12.5x|1207|t`);
    assert.equal(await psql(`SELECT count(*) FROM ${t} WHERE id >= 4`), "0", "a failed COPY loads nothing");

    const missing = await call(fake, "ExecuteStatement", { ...identity, Sql: copy("nothing-here") });
    assert.match(
      (await settled(fake, missing.json.Id)).Error,
      /The specified S3 prefix 'in\/nothing-here' does not exist/,
    );
    const json = await call(fake, "ExecuteStatement", {
      ...identity,
      Sql: `COPY "${t}" FROM 's3://${bucket}/in/a' IAM_ROLE default FORMAT AS JSON 'auto'`,
    });
    assert.match((await settled(fake, json.json.Id)).Error, /FORMAT JSON is not emulated/);
  },
);

// ------------------------------------------------------------------------------------------------ Data API

s3Test(
  "Data API execute: the statements go as ONE batch; a failure names the statement and commits nothing",
  async () => {
    await using fake = await startFake();
    await using dir = await tempDir();
    const t = tableName("exec");
    await psql(`CREATE TABLE ${t} (id int PRIMARY KEY, note text)`);
    const sql =
      `-- load two rows\nINSERT INTO ${t} VALUES (1, 'it''s; fine');\nINSERT INTO ${t} VALUES (2, 'b');\n` +
      `SELECT id, note FROM ${t} ORDER BY id;`;
    const ok = await runRoutineJson(
      routine(fake, { load: { params: { ...dataApi, sql }, tasks: ["execute"] } }),
      {
        cwd: dir.path,
      },
    );
    assert.equal(ok.error, undefined, ok.lines.join("\n"));
    assert.equal(fake.callsOf("BatchExecuteStatement").length, 1);
    assert.deepEqual(fake.statements[0].sqls, [
      `INSERT INTO ${t} VALUES (1, 'it''s; fine')`,
      `INSERT INTO ${t} VALUES (2, 'b')`,
      `SELECT id, note FROM ${t} ORDER BY id`,
    ]);
    const log = ok.lines.join("\n");
    assert.match(
      log,
      /ran 3 statements through Redshift Data API \(cluster analytics, database lakerun\) in one transaction/,
    );
    assert.match(log, /statement 1 \(line 2\): 1 row/);
    assert.match(log, /1 \| it's; fine/);
    // two rows inserted, two selected
    assert.deepEqual((await listRuns(join(dir.path, ".lakerun"), "rs"))[0].steps.load.outputs, {
      rows_affected: 4,
    });

    await using dir2 = await tempDir();
    const bad = `INSERT INTO ${t} VALUES (3, 'c');\n\nINSERT INTO ${t} VALUES (1, 'again');`;
    const failed = await runRoutineJson(
      routine(fake, { load: { params: { ...dataApi, sql: bad }, tasks: ["execute"] } }),
      { cwd: dir2.path },
    );
    assert.match(
      failed.error?.message ?? "",
      /statement 2 \(line 3\) failed; nothing of the others was committed: ERROR: duplicate key value/,
    );
    assert.equal(await psql(`SELECT count(*) FROM ${t}`), "2");

    // a COMMIT in the script is refused with the routine, before any statement is sent
    const sent = fake.statements.length;
    await assert.rejects(
      runRoutineJson(
        routine(fake, {
          load: {
            params: { ...dataApi, sql: `INSERT INTO ${t} VALUES (9, 'x'); COMMIT;` },
            tasks: ["execute"],
          },
        }),
        { cwd: dir2.path },
      ),
      /params\.sql: statement 2 \(line 1\) controls the transaction itself \(COMMIT\); execute runs every/,
    );
    assert.equal(fake.statements.length, sent);
  },
);

s3Test(
  "Data API create_table: columns inferred from the files under source; keep logs drift, replace, fail",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-create");
    await putObjects(`s3://${bucket}/staging/sales`, {
      "2024q1.csv": 'Id,Amount,Day,Store Name\n1,1.5,2024-01-02,North\n2,2,2024-02-03,"South, East"\n',
      "2024q2.csv": "Id,Amount,Day,Store Name\n3,7.25,2024-04-05,West\n",
    });
    const t = tableName("created");
    const params = { ...dataApi, table: `public.${t}`, source: `s3://${bucket}/staging/sales` };
    const run = (extra: Record<string, unknown>, cwd: string) =>
      runRoutineJson(
        routine(fake, { create: { params: { ...params, ...extra }, tasks: ["create_table"] } }),
        { cwd },
      );
    const outputsIn = async (cwd: string) =>
      (await listRuns(join(cwd, ".lakerun"), "rs"))[0].steps.create.outputs;
    await using dir = await tempDir();
    const created = await run({}, dir.path);
    assert.equal(created.error, undefined, created.lines.join("\n"));
    assert.deepEqual(await outputsIn(dir.path), { table: `"public"."${t}"`, table_status: "created" });
    assert.equal(
      await psql(
        `SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = '${t}'`,
      ),
      "id bigint, amount double precision, day date, store_name character varying",
    );
    assert.equal(
      fake.statements.at(-1)!.sqls[0],
      `CREATE TABLE IF NOT EXISTS "public"."${t}" (\n  "id" bigint,\n  "amount" double precision,\n  "day" date,\n  "store_name" varchar(65535)\n)`,
    );
    assert.match(
      created.lines.join("\n"),
      /columns inferred from s3:\/\/.*: id bigint, amount double, day date, store_name string/,
    );

    await using dir2 = await tempDir();
    const kept = await run({
      columns: [{ name: "id", type: "bigint" }, { name: "amount", type: "numeric(12,2)" }],
    }, dir2.path);
    assert.equal(kept.error, undefined, kept.lines.join("\n"));
    assert.equal((await outputsIn(dir2.path))?.table_status, "kept");
    assert.match(
      kept.lines.join("\n"),
      /exists: kept; it differs from the columns wanted:[\s\S]*column `amount`: table has double precision, files have numeric\(12,2\)/,
    );

    await using dir3 = await tempDir();
    const failed = await run({ if_exists: "fail" }, dir3.path);
    assert.match(
      failed.error?.message ?? "",
      new RegExp(`table "public"."${t}" already exists \\(if_exists: fail\\)`),
    );

    await using dir4 = await tempDir();
    const replaced = await run(
      { if_exists: "replace", columns: [{ name: "id", type: "integer" }] },
      dir4.path,
    );
    assert.equal(replaced.error, undefined, replaced.lines.join("\n"));
    assert.equal((await outputsIn(dir4.path))?.table_status, "replaced");
    assert.deepEqual(fake.statements.at(-1)!.sqls, [
      `DROP TABLE IF EXISTS "public"."${t}"`,
      `CREATE TABLE "public"."${t}" (\n  "id" integer\n)`,
    ]);
    assert.equal(fake.statements.at(-1)!.kind, "batch");
    assert.equal(
      await psql(
        `SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_name = '${t}'`,
      ),
      "id",
    );
  },
);

/** Sales files: `count` rows from `first`, amount = id * 1.5 (or `amount`). */
function salesCsv(first: number, count: number, amount?: (id: number) => string): string {
  const lines = ["id,amount"];
  for (let id = first; id < first + count; id++) {
    lines.push(`${id},${amount ? amount(id) : (id * 1.5).toFixed(2)}`);
  }
  return `${lines.join("\n")}\n`;
}

s3Test(
  "Data API copy_from_s3: COPY into a staging table then append / replace / MERGE, in one batch, exact text",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-copy");
    await putObjects(`s3://${bucket}/staging/sales`, { "a.csv": salesCsv(1, 3), "b.csv": salesCsv(4, 2) });
    const t = tableName("sales");
    await psql(`CREATE TABLE public.${t} (id bigint, amount numeric(12,2))`);
    const base = { ...dataApi, table: t, source: `s3://${bucket}/staging/sales`, iam_role: ROLE };
    let outputs: Record<string, unknown> | undefined;
    const load = async (extra: Record<string, unknown>) => {
      await using dir = await tempDir();
      const result = await runRoutineJson(
        routine(fake, { load: { params: { ...base, ...extra }, tasks: ["copy_from_s3"] } }),
        { cwd: dir.path },
      );
      assert.equal(result.error, undefined, result.lines.join("\n"));
      outputs = (await listRuns(join(dir.path, ".lakerun"), "rs"))[0].steps.load.outputs;
      return result.lines.join("\n");
    };
    const contents = () => psql(`SELECT string_agg(id || '=' || amount, ',' ORDER BY id, amount) FROM ${t}`);

    const appended = await load({});
    assert.match(
      appended,
      /loaded 5 rows from s3:\/\/.*\/staging\/sales\/ into "public"\."sales_.*" \(append: 5 rows written\) in one transaction/,
    );
    assert.equal(await contents(), "1=1.50,2=3.00,3=4.50,4=6.00,5=7.50");
    assert.deepEqual(outputs, { rows: 5, rows_loaded: 5 }, "the step's outputs, for later steps");
    const batch = fake.statements.at(-1)!;
    assert.equal(batch.kind, "batch");
    assert.deepEqual(batch.sqls, [
      `CREATE TEMPORARY TABLE "lakerun_staging" AS SELECT "id", "amount" FROM "public"."${t}" WHERE 1 = 0`,
      `COPY "lakerun_staging" ("id", "amount") FROM 's3://${bucket}/staging/sales/' IAM_ROLE '${ROLE}' FORMAT AS CSV IGNOREHEADER 1`,
      `INSERT INTO "public"."${t}" ("id", "amount") SELECT "id", "amount" FROM "lakerun_staging"`,
      `DROP TABLE "lakerun_staging"`,
    ]);
    assert.deepEqual(fake.copies.at(-1)!.files, [
      `s3://${bucket}/staging/sales/a.csv`,
      `s3://${bucket}/staging/sales/b.csv`,
    ]);

    await load({});
    assert.equal(
      (await contents()).split(",").length,
      10,
      "a new routine run appends again: that is what append means",
    );

    await load({ mode: "replace" });
    assert.equal(await contents(), "1=1.50,2=3.00,3=4.50,4=6.00,5=7.50");
    assert.ok(fake.statements.at(-1)!.sqls.includes(`DELETE FROM "public"."${t}"`));

    await putObjects(`s3://${bucket}/staging/sales`, { "b.csv": salesCsv(4, 3, (id) => `${id}0`) });
    const merged = await load({ mode: "upsert", upsert_keys: ["id"] });
    assert.match(merged, /upsert: MERGE on "id" from a staging table/);
    assert.equal(await contents(), "1=1.50,2=3.00,3=4.50,4=40.00,5=50.00,6=60.00");
    assert.deepEqual(outputs, { rows: 6, rows_loaded: 6 }, "MERGE updated or inserted every staged row");
    await load({ mode: "upsert", upsert_keys: ["id"] });
    assert.equal(await contents(), "1=1.50,2=3.00,3=4.50,4=40.00,5=50.00,6=60.00", "upsert again: same rows");

    // a NULL key would be added again by every MERGE, a repeated key leaves the winner unsaid: both refused
    for (
      const [file, message] of [
        [
          "id,amount\n,1\n",
          /a staged row's upsert key \(id\) is NULL: it matches no row of "public"\."sales_\w+", so every run would add the row again \(files under s3:\/\/.*\); nothing was committed/,
        ],
        [
          "id,amount\n7,1\n7,2\n",
          /the staged files hold the same upsert key \(id\) more than once: an upsert into "public"\."sales_\w+" needs each key once \(files under s3:\/\/.*\); nothing was committed/,
        ],
      ] as const
    ) {
      await putObjects(`s3://${bucket}/staging/sales`, { "c.csv": file });
      await using dir = await tempDir();
      const result = await runRoutineJson(
        routine(fake, {
          load: { params: { ...base, mode: "upsert", upsert_keys: ["id"] }, tasks: ["copy_from_s3"] },
        }),
        { cwd: dir.path },
      );
      assert.match(result.error?.message ?? "", message, result.lines.join("\n"));
      assert.equal(await contents(), "1=1.50,2=3.00,3=4.50,4=40.00,5=50.00,6=60.00", "nothing committed");
    }
  },
);

s3Test(
  "Data API copy_from_s3 reads each CSV header: columns in another order load by name; mismatches refused",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-hdr");
    const t = tableName("order");
    await psql(`CREATE TABLE public.${t} (qty bigint, price bigint, note text)`);
    const load = async (
      prefix: string,
      files: Record<string, string>,
      extra: Record<string, unknown> = {},
    ) => {
      await putObjects(`s3://${bucket}/${prefix}`, files);
      await using dir = await tempDir();
      const params = { ...dataApi, table: t, source: `s3://${bucket}/${prefix}`, iam_role: ROLE, ...extra };
      return await runRoutineJson(
        routine(fake, { load: { params, tasks: ["copy_from_s3"] } }),
        { cwd: dir.path },
      );
    };
    const contents = () => psql(`SELECT string_agg(qty || '/' || price, ',' ORDER BY qty) FROM ${t}`);

    // price before qty: COPY names the columns in the files' order
    const swapped = await load("swapped", { "a.csv": "price,qty\n200,2\n", "b.csv": '"Price",QTY\n300,3\n' });
    assert.equal(swapped.error, undefined, swapped.lines.join("\n"));
    assert.match(
      swapped.lines.join("\n"),
      /the headers of 2 files give the columns price, qty: COPY fills those, in that order/,
    );
    assert.equal(await contents(), "2/200,3/300");
    assert.match(
      fake.statements.at(-1)!.sqls.find((sql) => sql.startsWith("COPY"))!,
      /^COPY "lakerun_staging" \("price", "qty"\) FROM/,
    );

    // a header naming no column, and files disagreeing on the order: refused before any statement is sent
    const sent = fake.statements.length;
    const unknown = await load("unknown", { "a.csv": "qty,cost\n1,2\n" });
    assert.match(
      unknown.error?.message ?? "",
      new RegExp(
        `s3://${bucket}/unknown/a\\.csv has a column "cost" that "public"\\."${t}" lacks \\(its columns: qty, price, note\\); give columns \\(in file order\\) to load by position`,
      ),
    );
    const mixed = await load("mixed", { "a.csv": "qty,price\n1,2\n", "b.csv": "price,qty\n3,4\n" });
    assert.match(
      mixed.error?.message ?? "",
      /mixed\/b\.csv has its columns in another order \(price, qty\) than s3:\/\/.*\/mixed\/a\.csv \(qty, price\): one COPY reads every file by position/,
    );
    // a quote inside a header field (read leniently, price" named price): lakerun's header and COPY's
    // header line (which runs on to the next quote for PostgreSQL's COPY) would differ; refused
    const misquoted = await load("misquoted", { "a.csv": 'qty,price"\n1,2\n3,4\n' });
    assert.match(
      misquoted.error?.message ?? "",
      new RegExp(
        `s3://${bucket}/misquoted/a\\.csv header line 1, field 2: "price\\\\"": a quote inside a field that does not start with one`,
      ),
    );
    assert.ok(!fake.statements.slice(sent).some((s) => s.sqls.some((sql) => sql.startsWith("COPY"))));
    assert.equal(await contents(), "2/200,3/300");

    // columns given: the file order by the routine's word, headers unread
    const given = await load("unknown", {}, {
      columns: [{ name: "qty", type: "bigint" }, { name: "price", type: "bigint" }],
    });
    assert.equal(given.error, undefined, given.lines.join("\n"));
    assert.equal(await contents(), "1/2,2/200,3/300");
  },
);

s3Test(
  "Data API copy_from_s3: an empty _SUCCESS is logged, hidden files with bytes are refused before any COPY",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-hidden");
    const t = tableName("spark");
    await psql(`CREATE TABLE public.${t} (id bigint, name text)`);
    const load = async (prefix: string, files: Record<string, string | Uint8Array>) => {
      await putObjects(`s3://${bucket}/${prefix}`, files);
      await using dir = await tempDir();
      const params = { ...dataApi, table: t, source: `s3://${bucket}/${prefix}`, iam_role: ROLE };
      return await runRoutineJson(routine(fake, { load: { params, tasks: ["copy_from_s3"] } }), {
        cwd: dir.path,
      });
    };
    const done = await load("done", { "part-0.csv": "name,id\na,1\n", "_SUCCESS": "" });
    assert.equal(done.error, undefined, done.lines.join("\n"));
    assert.match(
      done.lines.join("\n"),
      /not reading the header of 1 empty hidden or work file \(_SUCCESS\): COPY loads nothing from it/,
    );
    assert.equal(await psql(`SELECT string_agg(id || name, ',') FROM ${t}`), "1a");

    const sent = fake.statements.length;
    const crc = await load("crc", {
      "part-0.csv": "name,id\nb,2\n",
      ".part-0.csv.crc": new Uint8Array([0x63, 0x72, 0x63, 0x00, 0xff]),
      "_temporary/0/part-0.csv": "name,id\nb,2\n",
    });
    assert.match(
      crc.error?.message ?? "",
      new RegExp(
        `2 hidden or work files \\(a name starting with _ or \\.\\) under source, which COPY would load \\(it reads every object under the prefix\\): s3://${bucket}/crc/\\.part-0\\.csv\\.crc, s3://${bucket}/crc/_temporary/0/part-0\\.csv; remove them`,
      ),
    );
    assert.ok(!fake.statements.slice(sent).some((s) => s.sqls.some((sql) => sql.startsWith("COPY"))));
    assert.equal(await psql(`SELECT count(*) FROM ${t}`), "1");
  },
);

s3Test(
  "Data API copy_from_s3: an upsert (MERGE) keeps the columns the files do not fill",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-keep");
    const t = tableName("keep");
    await psql(`CREATE TABLE public.${t} (id bigint, name text, amt numeric)`);
    await psql(`INSERT INTO public.${t} VALUES (1, 'one', 1), (9, 'nine', 9)`);
    await putObjects(`s3://${bucket}/in`, { "a.csv": "id,amt\n1,10\n2,20\n" });
    await using dir = await tempDir();
    const params = {
      ...dataApi,
      table: t,
      source: `s3://${bucket}/in`,
      iam_role: ROLE,
      mode: "upsert",
      upsert_keys: ["id"],
    };
    const result = await runRoutineJson(routine(fake, { load: { params, tasks: ["copy_from_s3"] } }), {
      cwd: dir.path,
    });
    assert.equal(result.error, undefined, result.lines.join("\n"));
    assert.match(result.lines.join("\n"), /\(upsert: 2 rows written\)/);
    assert.equal(
      await psql(
        `SELECT string_agg(id || '/' || coalesce(name, 'NULL') || '/' || amt, ',' ORDER BY id) FROM ${t}`,
      ),
      "1/one/10,2/NULL/20,9/nine/9",
    );
  },
);

s3Test(
  "Data API copy_from_s3: a NOT NULL DEFAULT column the files lack gets its default (append and upsert)",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-default");
    const t = tableName("defaults");
    // the staging table holds only the files' columns, without the target's NOT NULL: the INSERT / MERGE
    // names those columns, so the target fills loaded_at and batch from their defaults
    await psql(
      `CREATE TABLE public.${t} (id bigint NOT NULL, amount numeric(12,2), ` +
        `loaded_at timestamp NOT NULL DEFAULT now(), batch text NOT NULL DEFAULT 'lakerun')`,
    );
    await psql(`INSERT INTO public.${t} (id, amount, loaded_at) VALUES (1, 1, TIMESTAMP '2000-01-01')`);
    await putObjects(`s3://${bucket}/in`, { "a.csv": "id,amount\n1,10\n2,20\n" });
    const contents = () =>
      psql(
        `SELECT string_agg(id || '/' || amount || '/' || (loaded_at > TIMESTAMP '2001-01-01') || '/' || batch, ',' ` +
          `ORDER BY id, amount, loaded_at) FROM ${t}`,
      );
    for (const mode of ["append", "upsert"]) {
      await using dir = await tempDir();
      const params = {
        ...dataApi,
        table: t,
        source: `s3://${bucket}/in`,
        iam_role: ROLE,
        mode,
        ...(mode === "upsert" ? { upsert_keys: ["id"] } : {}),
      };
      const result = await runRoutineJson(routine(fake, { load: { params, tasks: ["copy_from_s3"] } }), {
        cwd: dir.path,
      });
      assert.equal(result.error, undefined, result.lines.join("\n"));
      assert.equal(
        fake.statements.at(-1)!.sqls[0],
        `CREATE TEMPORARY TABLE "lakerun_staging" AS SELECT "id", "amount" FROM "public"."${t}" WHERE 1 = 0`,
      );
    }
    // append added 1/10 and 2/20 with defaults; the upsert then updated both rows of key 1 and the one of 2
    // in place (MERGE sets amount only: loaded_at keeps the 2000 value of the first row)
    assert.equal(await contents(), "1/10.00/false/lakerun,1/10.00/true/lakerun,2/20.00/true/lakerun");
  },
);

s3Test(
  "Data API copy_from_s3: headers differing only by case fill the columns create_table named them, in any order",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-case");
    const t = tableName("cased");
    // what create_table makes of `id,ID` (or `ID,id`): the valid name keeps it, the other is id_2
    await psql(`CREATE TABLE public.${t} (id text, id_2 text)`);
    const load = async (prefix: string, files: Record<string, string>) => {
      await putObjects(`s3://${bucket}/${prefix}`, files);
      await using dir = await tempDir();
      const params = { ...dataApi, table: t, source: `s3://${bucket}/${prefix}`, iam_role: ROLE };
      return await runRoutineJson(routine(fake, { load: { params, tasks: ["copy_from_s3"] } }), {
        cwd: dir.path,
      });
    };
    const upperFirst = await load("upper", { "a.csv": "ID,id\nUPPER1,lower1\n" });
    assert.equal(upperFirst.error, undefined, upperFirst.lines.join("\n"));
    assert.match(
      fake.statements.at(-1)!.sqls.find((sql) => sql.startsWith("COPY"))!,
      /^COPY "lakerun_staging" \("id_2", "id"\) FROM/,
    );
    const lowerFirst = await load("lower", { "a.csv": "id,ID\nlower2,UPPER2\n" });
    assert.equal(lowerFirst.error, undefined, lowerFirst.lines.join("\n"));
    assert.equal(
      await psql(`SELECT string_agg(id || '/' || id_2, ',' ORDER BY id) FROM ${t}`),
      "lower1/UPPER1,lower2/UPPER2",
    );
    // the two orders in one COPY: refused, as any two orders are
    const mixed = await load("mixed", { "a.csv": "ID,id\nU,l\n", "b.csv": "id,ID\nl,U\n" });
    assert.match(
      mixed.error?.message ?? "",
      /mixed\/b\.csv has its columns in another order \(id, id_2\) than s3:\/\/.*\/mixed\/a\.csv \(id_2, id\)/,
    );
  },
);

s3Test(
  "Data API copy_from_s3: a bad value names file, line, column, raw value and reason; nothing committed",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-bad");
    await putObjects(`s3://${bucket}/in`, { "a.csv": salesCsv(1, 3), "b.csv": "id,amount\n4,4\n5,12.5x\n" });
    const t = tableName("bad");
    await psql(
      `CREATE TABLE public.${t} (id bigint, amount numeric(12,2)); INSERT INTO public.${t} VALUES (100, 1)`,
    );
    await using dir = await tempDir();
    const result = await runRoutineJson(
      routine(fake, {
        load: {
          params: { ...dataApi, table: t, source: `s3://${bucket}/in/`, iam_role: ROLE, mode: "replace" },
          tasks: ["copy_from_s3"],
        },
      }),
      { cwd: dir.path },
    );
    assert.equal(
      result.error?.message,
      `step "load" (RedshiftExecutor) task 'copy_from_s3' failed: COPY into "public"."${t}" failed: s3://${bucket}/in/b.csv line 3, column "amount" (numeric), raw value "12.5x": ` +
        `invalid input syntax for type numeric: "12.5x" (error 1207); nothing was committed`,
    );
    assert.equal(
      await psql(`SELECT string_agg(id::text, ',') FROM ${t}`),
      "100",
      "replace kept the old rows",
    );
    const lookup = fake.statements.at(-1)!;
    assert.match(
      lookup.sqls[0],
      /^SELECT TRIM\(file_name\) AS file, .* FROM sys_load_error_detail WHERE STRPOS\(file_name, 's3:\/\/.*\/in\/'\) = 1 AND start_time >= TIMESTAMP '.*' AND session_id = \d+ ORDER BY/,
    );
  },
);

s3Test(
  "Data API JSON: keys that differ from their columns other than by case are refused before any COPY",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-json");
    await putObjects(`s3://${bucket}/orders`, {
      "a.json": '{"Order ID":1,"Amount €":2.5,"customer":"x"}\n{"Order ID":2,"Amount €":3,"customer":"y"}\n',
    });
    await putObjects(`s3://${bucket}/cased`, { "a.json": '{"ORDER_ID":1,"Amount":2.5,"Customer":"x"}\n' });
    const t = tableName("json");
    const run = async (params: Record<string, unknown>, tasks: string[]) => {
      await using dir = await tempDir();
      const all = { ...dataApi, table: t, iam_role: ROLE, format: "json", ...params };
      return await runRoutineJson(routine(fake, { load: { params: all, tasks } }), { cwd: dir.path });
    };
    const copies = () => fake.statements.filter((s) => s.sqls.some((sql) => sql.startsWith("COPY")));

    // columns inferred from the keys: refused before the table is created
    const created = await run({ source: `s3://${bucket}/orders` }, ["create_table", "copy_from_s3"]);
    assert.match(
      created.error?.message ?? "",
      /the JSON keys of the files under s3:\/\/.*\/orders differ from the columns they fill other than by case \("Order ID" → order_id, "Amount €" → amount\): Redshift's COPY \(FORMAT AS JSON 'auto ignorecase'\) matches a key to a column by its name, ignoring case only, and would load NULL into those columns without an error; rename the keys in the files to the column names .*; no table was created/,
    );
    assert.equal(fake.statements.length, 0, "nothing was sent");

    // the table as create_table would have made it, loaded by copy_from_s3: refused before any COPY
    await psql(
      `CREATE TABLE public.${t} (order_id bigint, amount double precision, customer varchar(100), note text)`,
    );
    const loaded = await run({ source: `s3://${bucket}/orders` }, ["copy_from_s3"]);
    assert.match(
      loaded.error?.message ?? "",
      /the JSON keys of s3:\/\/.*\/orders\/a\.json differ from the columns they fill other than by case \("Order ID" → order_id, "Amount €" → amount\).*; no COPY was sent/,
    );
    // given columns: the same rule (a key naming no given column is skipped by COPY, and not refused)
    const given = await run({
      source: `s3://${bucket}/orders`,
      columns: [{ name: "order_id", type: "bigint" }, { name: "customer", type: "string" }],
    }, ["copy_from_s3"]);
    assert.match(given.error?.message ?? "", /other than by case \("Order ID" → order_id\)/);
    assert.equal(copies().length, 0);

    // keys that differ only by case pass (the fake then refuses the JSON COPY it does not emulate); a given
    // column no sampled key names is logged
    const cased = await run({
      source: `s3://${bucket}/cased`,
      columns: [{ name: "order_id", type: "bigint" }, { name: "customer", type: "string" }, {
        name: "note",
        type: "string",
      }],
    }, ["copy_from_s3"]);
    assert.match(cased.error?.message ?? "", /FORMAT JSON is not emulated/);
    assert.match(
      cased.lines.join("\n"),
      /no key of the sampled JSON objects names note \(ignoring case\): COPY loads NULL there/,
    );
    assert.match(
      copies().at(-1)!.sqls.find((sql) => sql.startsWith("COPY"))!,
      /^COPY "lakerun_staging" \("order_id", "customer", "note"\) FROM .* FORMAT AS JSON 'auto ignorecase'$/,
    );
  },
);

/** Writes the routine into `dir` as routine.json and returns its path. */
async function writeRoutine(dir: string, value: unknown): Promise<string> {
  const file = join(dir, "routine.json");
  await Deno.writeTextFile(file, JSON.stringify(value, null, 2));
  return file;
}

/** Waits for `condition`, polling every 20 ms, for at most `ms`. */
async function until(condition: () => boolean, ms = 20_000, what = "condition"): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until a PostgreSQL backend runs a query containing `text`. */
async function sleeping(text: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const active = await psql(
      `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() ` +
        `AND strpos(query, '${text}') > 0`,
    );
    if (active !== "0") return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no backend runs ${text}`);
}

s3Test(
  "Data API: a re-run of the same routine run never loads twice (journal, then ClientToken after a lost reply)",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-rerun");
    await putObjects(`s3://${bucket}/in`, { "a.csv": salesCsv(1, 5) });
    const t = tableName("rerun");
    await psql(`CREATE TABLE public.${t} (id bigint, amount numeric(12,2))`);
    const load = {
      params: { ...dataApi, table: t, source: `s3://${bucket}/in`, iam_role: ROLE },
      tasks: ["copy_from_s3"],
    };
    const broken = { params: { ...dataApi, sql: "SELECT * FROM no_such_table" }, tasks: ["execute"] };
    const count = () => psql(`SELECT count(*) FROM ${t}`);
    const copies = () =>
      fake.callsOf("BatchExecuteStatement").filter((c) => JSON.stringify(c.body).includes("COPY"));

    // 1. the load commits, a later step fails; the re-run (same routine run) finds the load done in the journal
    await using dir = await tempDir();
    const first = await runRoutineJson(routine(fake, { load, broken }), { cwd: dir.path });
    assert.match(first.error?.message ?? "", /no_such_table/);
    assert.equal(await count(), "5");
    const second = await runRoutineJson(routine(fake, { load, broken }), { cwd: dir.path });
    assert.match(second.error?.message ?? "", /no_such_table/);
    assert.match(
      second.lines.join("\n"),
      /copy_from_s3: statement .* already FINISHED in an earlier attempt of this run; not run again/,
    );
    assert.equal(await count(), "5");
    assert.equal(copies().length, 1);

    // 2. the batch ran but its reply was lost (lakerun saw an error, as if killed before recording the id):
    //    the re-run asks again with the same ClientToken and gets the same statement back, run once
    await using dir2 = await tempDir();
    fake.fail("BatchExecuteStatement", 1, { type: "ServiceUnavailable", status: 400, applied: true });
    const lost = await runRoutineJson(routine(fake, { load }), { cwd: dir2.path });
    assert.match(lost.error?.message ?? "", /ServiceUnavailable/);
    await fake.idle();
    assert.equal(await count(), "10");
    const again = await runRoutineJson(routine(fake, { load }), { cwd: dir2.path });
    assert.equal(again.error, undefined, again.lines.join("\n"));
    assert.match(again.lines.join("\n"), /asking again with the same ClientToken, so it does not run twice/);
    const [sent, resent] = copies().slice(1);
    assert.equal(resent.body.ClientToken, sent.body.ClientToken);
    assert.match(String(sent.body.ClientToken), /^[0-9a-f]{64}$/);
    assert.equal(fake.statements.filter((s) => s.sqls.some((sql) => sql.startsWith("COPY"))).length, 2);
    assert.equal(await count(), "10", "the second attempt loaded nothing more");

    // 3. a server error after the batch was accepted: retried at once with the same token, still one statement
    await using dir3 = await tempDir();
    fake.fail("BatchExecuteStatement", 1, { type: "InternalServerException", applied: true });
    const retried = await runRoutineJson(routine(fake, { load }), { cwd: dir3.path });
    assert.equal(retried.error, undefined, retried.lines.join("\n"));
    assert.match(retried.lines.join("\n"), /BatchExecuteStatement: InternalServerException; retry 1/);
    assert.equal(await count(), "15");
  },
);

s3Test(
  "Data API: killed while the batch runs, the re-run reattaches to it instead of sending it again",
  async () => {
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-kill");
    await putObjects(`s3://${bucket}/in`, { "a.csv": salesCsv(1, 4) });
    const t = tableName("kill");
    await psql(`CREATE TABLE public.${t} (id bigint, amount numeric(12,2))`);
    fake.script("COPY", { submittedForMs: 3500, pickedForMs: 500, times: 1 });
    await using dir = await tempDir();
    await writeRoutine(
      dir.path,
      routine(fake, {
        load: {
          params: { ...dataApi, table: t, source: `s3://${bucket}/in`, iam_role: ROLE },
          tasks: ["copy_from_s3"],
        },
      }),
    );
    const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path }).spawn();
    await until(() => fake.statements.some((s) => s.kind === "batch"), 30_000, "the batch");
    const batch = fake.statements.find((s) => s.kind === "batch")!;
    await until(
      () => fake.callsOf("DescribeStatement").some((c) => c.body.Id === batch.id),
      10_000,
      "a poll",
    );
    child.kill("SIGKILL");
    await child.output();
    assert.equal(batch.status === "SUBMITTED" || batch.status === "PICKED", true, batch.status);

    const rerun = await lakerun(["run", "routine.json"], { cwd: dir.path });
    assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
    assert.match(
      rerun.stdout,
      new RegExp(`reattaching to statement ${batch.id}, sent by an earlier attempt of this run`),
    );
    assert.equal(fake.callsOf("BatchExecuteStatement").length, 1, "the batch was sent once");
    assert.equal(batch.runs, 1);
    assert.equal(await psql(`SELECT count(*) FROM ${t}`), "4");
  },
);

s3Test(
  "Data API: an interrupted run cancels its statement (CancelStatement) before exiting; nothing commits",
  async () => {
    await using fake = await startFake();
    const t = tableName("sigint");
    await psql(`CREATE TABLE public.${t} (id int)`);
    await using dir = await tempDir();
    await writeRoutine(
      dir.path,
      routine(fake, {
        slow: {
          params: { ...dataApi, sql: `INSERT INTO ${t} VALUES (1); SELECT pg_sleep(60);` },
          tasks: ["execute"],
        },
      }),
    );
    const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path }).spawn();
    await until(() => fake.statements[0]?.subStatements[1]?.status === "STARTED", 30_000, "the sleep");
    await sleeping("pg_sleep(60)");
    child.kill("SIGINT");
    const output = await child.output();
    const stdout = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assert.notEqual(output.code, 0);
    const statement = fake.statements[0];
    assert.match(
      stdout,
      new RegExp(`execute: cancelled Redshift statement ${statement.id} \\(interrupted\\)`),
    );
    assert.equal(fake.callsOf("CancelStatement").length, 1);
    await fake.idle();
    assert.equal(statement.status, "ABORTED");
    assert.equal(await psql(`SELECT count(*) FROM ${t}`), "0");
    assert.equal(
      await psql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
      ),
      "0",
    );
  },
);

s3Test(
  "Data API: killed, then re-run with other SQL: the earlier attempt's statement is cancelled before the new one is sent",
  async () => {
    await using fake = await startFake();
    const t = tableName("changed");
    await psql(`CREATE TABLE public.${t} (id int)`);
    await using dir = await tempDir();
    const step = (sql: string) =>
      routine(fake, { edit: { params: { ...dataApi, sql }, tasks: ["execute"] } });
    await writeRoutine(dir.path, step(`INSERT INTO ${t} VALUES (1); SELECT pg_sleep(60);`));
    const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path }).spawn();
    await until(() => fake.statements[0]?.subStatements[1]?.status === "STARTED", 30_000, "the sleep");
    await sleeping("pg_sleep(60)");
    child.kill("SIGKILL");
    await child.output();
    const [earlier] = fake.statements;

    await writeRoutine(dir.path, step(`INSERT INTO ${t} VALUES (2);`));
    const rerun = await lakerun(["run", "routine.json"], { cwd: dir.path });
    assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
    assert.match(
      rerun.stdout,
      new RegExp(
        `execute: cancelled Redshift statement ${earlier.id} \\(sent by an earlier attempt of this run with other SQL\\)`,
      ),
    );
    await fake.idle();
    assert.equal(earlier.status, "ABORTED");
    assert.equal(
      await psql(`SELECT string_agg(id::text, ',') FROM ${t}`),
      "2",
      "only the new statement's row",
    );
  },
);

s3Test("Data API: throttled status calls are retried and never fail the task", async () => {
  await using fake = await startFake();
  await using dir = await tempDir();
  fake.throttle("DescribeStatement", 3);
  fake.throttle("ExecuteStatement", 1);
  const result = await runRoutineJson(
    routine(fake, { q: { params: { ...dataApi, sql: "SELECT 42 AS answer" }, tasks: ["execute"] } }),
    { cwd: dir.path },
  );
  assert.equal(result.error, undefined, result.lines.join("\n"));
  const log = result.lines.join("\n");
  assert.match(log, /ExecuteStatement: ThrottlingException; retry 1/);
  assert.match(log, /DescribeStatement: ThrottlingException; retry 3/);
  assert.match(log, /answer\n.*42/);
  assert.equal(fake.statements.length, 1);
});

s3Test(
  "Data API: the active-statements quota is retried like throttling; a refused batch leaves a clean journal",
  async () => {
    await using fake = await startFake();
    const t = tableName("quota");
    await psql(`CREATE TABLE public.${t} (id int)`);
    const count = () => psql(`SELECT count(*) FROM ${t}`);
    const steps = {
      q: {
        params: { ...dataApi, sql: `INSERT INTO ${t} VALUES (1); INSERT INTO ${t} VALUES (2);` },
        tasks: ["execute"],
      },
      one: { params: { ...dataApi, sql: `INSERT INTO ${t} VALUES (3)` }, tasks: ["execute"] },
    };
    const quota = {
      type: "ActiveStatementsExceededException",
      message: "Active statements exceeded the allowed quota (500).",
    };
    fake.fail("BatchExecuteStatement", 2, quota);
    fake.fail("ExecuteStatement", 2, quota);
    await using dir = await tempDir();
    const ok = await runRoutineJson(routine(fake, steps), { cwd: dir.path });
    assert.equal(ok.error, undefined, ok.lines.join("\n"));
    assert.match(ok.lines.join("\n"), /BatchExecuteStatement: ActiveStatementsExceededException; retry 2/);
    assert.match(ok.lines.join("\n"), /ExecuteStatement: ActiveStatementsExceededException; retry 2/);
    assert.equal(fake.statements.length, 2);
    assert.equal(await count(), "3");

    // refused outright: the journal records it as failed, so the re-run of the same routine run sends the
    // batch afresh instead of saying an earlier attempt was stopped while sending it
    await using dir2 = await tempDir();
    fake.fail("BatchExecuteStatement", 1, {
      type: "ValidationException",
      message: "Cluster is not available",
    });
    const refused = await runRoutineJson(routine(fake, { q: steps.q }), { cwd: dir2.path });
    assert.match(refused.error?.message ?? "", /ValidationException: Cluster is not available/);
    const again = await runRoutineJson(routine(fake, { q: steps.q }), { cwd: dir2.path });
    assert.equal(again.error, undefined, again.lines.join("\n"));
    assert.doesNotMatch(again.lines.join("\n"), /earlier attempt|same ClientToken/);
    assert.equal(await count(), "5");
  },
);

// ------------------------------------------------------------------------------------------------ wire protocol

const PASSWORD_ENV = "LAKERUN_TEST_RS_PASSWORD";
Deno.env.set(PASSWORD_ENV, pg.password);
/** The wire-protocol connection params, pointed at the real PostgreSQL (which has no TLS here). */
const wire = {
  host: pg.host,
  port: pg.port,
  database: pg.database,
  user: pg.user,
  password_env: PASSWORD_ENV,
  ssl: false,
};

s3Test(
  "wire: execute runs the statements in one transaction on PostgreSQL; a failure commits nothing",
  async () => {
    await using dir = await tempDir();
    const t = tableName("wire_exec");
    await psql(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
    await Deno.writeTextFile(
      join(dir.path, "load.sql"),
      `INSERT INTO ${t} VALUES (1);\nINSERT INTO ${t} VALUES (2);\n`,
    );
    const ok = await runRoutineJson(
      routine(undefined, { load: { params: { ...wire, sql_file: "load.sql" }, tasks: ["execute"] } }),
      { cwd: dir.path },
    );
    assert.equal(ok.error, undefined, ok.lines.join("\n"));
    assert.match(
      ok.lines.join("\n"),
      new RegExp(`ran 2 statements through postgres@127.0.0.1:${pg.port}/lakerun in one transaction`),
    );
    await using dir2 = await tempDir();
    const bad = await runRoutineJson(
      routine(undefined, {
        load: {
          params: { ...wire, sql: `INSERT INTO ${t} VALUES (3);\nINSERT INTO ${t} VALUES (1);` },
          tasks: ["execute"],
        },
      }),
      { cwd: dir2.path },
    );
    assert.match(
      bad.error?.message ?? "",
      /statement 2 \(line 2\) failed; nothing of the others was committed: duplicate key value/,
    );
    assert.equal(await psql(`SELECT string_agg(id::text, ',' ORDER BY id) FROM ${t}`), "1,2");
  },
);

s3Test(
  "wire: copy_from_s3 sends the Redshift COPY, which PostgreSQL refuses; reported, nothing committed",
  async () => {
    const bucket = await createTestBucket(s3server, "rs-wire");
    await putObjects(`s3://${bucket}/in`, { "a.csv": salesCsv(1, 3) });
    const t = tableName("wire_copy");
    await using dir = await tempDir();
    const create = await runRoutineJson(
      routine(undefined, {
        create: {
          params: {
            ...wire,
            table: t,
            columns: [{ name: "id", type: "bigint" }, { name: "amount", type: "numeric(12,2)" }],
          },
          tasks: ["create_table"],
        },
      }),
      { cwd: dir.path },
    );
    assert.equal(create.error, undefined, create.lines.join("\n"));
    await psql(`INSERT INTO public.${t} VALUES (100, 1)`);
    await using dir2 = await tempDir();
    const load = await runRoutineJson(
      routine(undefined, {
        load: {
          params: { ...wire, table: t, source: `s3://${bucket}/in`, iam_role: ROLE, mode: "replace" },
          tasks: ["copy_from_s3"],
        },
      }),
      { cwd: dir2.path },
    );
    assert.equal(
      load.error?.message,
      `step "load" (RedshiftExecutor) task 'copy_from_s3' failed: COPY from s3://${bucket}/in/ into "public"."${t}" ` +
        `failed; nothing was committed: syntax error at or near "IAM_ROLE"`,
    );
    assert.equal(
      await psql(`SELECT string_agg(id::text, ',') FROM ${t}`),
      "100",
      "replace kept the old rows",
    );
    assert.equal(await psql("SELECT count(*) FROM pg_class WHERE relname = 'lakerun_staging'"), "0");
  },
);

s3Test("wire: an interrupted run cancels the running statement (cancel request) and rolls back", async () => {
  await using dir = await tempDir();
  const t = tableName("wire_sigint");
  await psql(`CREATE TABLE ${t} (id int)`);
  await writeRoutine(
    dir.path,
    routine(undefined, {
      slow: {
        params: { ...wire, sql: `INSERT INTO ${t} VALUES (1); SELECT pg_sleep(61);` },
        tasks: ["execute"],
      },
    }),
  );
  const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path }).spawn();
  await sleeping("pg_sleep(61)");
  child.kill("SIGINT");
  const output = await child.output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.notEqual(output.code, 0);
  assert.match(
    text,
    /execute: cancelled the running statement \(cancel request to postgres@127\.0\.0\.1:\d+\/lakerun\); rolled back/,
  );
  assert.equal(
    await psql(
      "SELECT count(*) FROM pg_stat_activity WHERE strpos(query, 'pg_sleep(61)') > 0 AND pid <> pg_backend_pid()",
    ),
    "0",
  );
  assert.equal(await psql(`SELECT count(*) FROM ${t}`), "0");
});

// ------------------------------------------------------------------------------------------------ secrets, sandbox

/** Every file under `dir` with its text (binary files as latin1), for grepping. */
async function everyFile(dir: string): Promise<string> {
  const tree = await readTree(dir).catch(() => ({} as Record<string, string>));
  return Object.entries(tree).map(([path, text]) => `${path}\n${text}`).join("\n");
}

s3Test(
  "secrets stay secret: no password or AWS secret key in any line lakerun prints, nor in the journal",
  async () => {
    await using fake = await startFake();
    await using dir = await tempDir();
    const t = tableName("secret");
    await psql(`CREATE TABLE ${t} (id int)`);
    const wrong = "Wr0ng-pa55word-that-must-not-leak";
    const secrets = [pg.password, wrong, s3server.secretAccessKey];
    await writeRoutine(
      dir.path,
      routine(fake, {
        ok: { params: { ...wire, sql: `INSERT INTO ${t} VALUES (1)` }, tasks: ["execute"] },
        api: { params: { ...dataApi, sql: `SELECT count(*) FROM ${t}` }, tasks: ["execute"] },
        broken: { params: { ...wire, sql: "SELECT * FROM no_such_table" }, tasks: ["execute"] },
      }),
    );
    const outputs: string[] = [];
    for (
      const args of [["plan", "routine.json"], ["plan", "--iam", "routine.json"], ["run", "routine.json"]]
    ) {
      const result = await lakerun(args, { cwd: dir.path });
      outputs.push(result.stdout, result.stderr);
    }
    assert.match(outputs.join("\n"), /no_such_table/, "the run did fail at the broken step");
    // the wrong password: refused by the server, and not repeated in the error
    await using dir2 = await tempDir();
    await writeRoutine(
      dir2.path,
      routine(undefined, { ok: { params: { ...wire, sql: "SELECT 1" }, tasks: ["execute"] } }),
    );
    const refused = await lakerun(["run", "routine.json"], {
      cwd: dir2.path,
      env: { [PASSWORD_ENV]: wrong },
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout + refused.stderr, /password authentication failed/);
    outputs.push(refused.stdout, refused.stderr);
    const all = outputs.join("\n") + (await everyFile(dir.path)) + (await everyFile(dir2.path));
    for (const secret of secrets) assert.ok(!all.includes(secret), "a secret was printed or journaled");
    // the fake saw the secret key only as a SigV4 signature, and the password never
    const raw = fake.calls.map((c) => c.raw).join("\n");
    for (const secret of secrets) assert.ok(!raw.includes(secret));
  },
);

s3Test(
  "sandbox: lakerun plan shows a wire step reaching only host:port and reading only password_env",
  async () => {
    await using fake = await startFake();
    await using dir = await tempDir();
    const bucket = await createTestBucket(s3server, "rs-plan");
    await Deno.writeTextFile(join(dir.path, "q.sql"), "SELECT 1;");
    await writeRoutine(
      dir.path,
      routine(fake, {
        wired: { params: { ...wire, sql_file: "q.sql" }, tasks: ["execute"] },
        api: { params: { ...dataApi, table: "t", source: `s3://${bucket}/in` }, tasks: ["create_table"] },
      }),
    );
    const plan = await lakerun(["plan", "--json", "routine.json"], { cwd: dir.path });
    assert.equal(plan.code, 0, plan.stderr);
    const steps = JSON.parse(plan.stdout).steps;
    const [wired, api] = steps.map((step: any) => step.permissions);
    assert.deepEqual(wired.net, [`127.0.0.1:${pg.port}`]);
    assert.deepEqual(wired.env, [PASSWORD_ENV, "PGBINARY", "PGOPTIONS", "PGREPLICATION"]);
    assert.ok(wired.read.includes(join(dir.path, "q.sql")));
    assert.equal(wired.read.length, 2, JSON.stringify(wired.read)); // q.sql and the step's state folder
    assert.deepEqual(wired.run, []);
    // the Data API through a custom endpoint: that endpoint, and S3 for the samples create_table infers from
    assert.deepEqual(api.net, [new URL(fake.endpoint).host, new URL(s3.endpoint).host].sort());
    assert.ok(api.env.includes("AWS_*"));
    assert.ok(!api.env.includes(PASSWORD_ENV));
    // against AWS itself: the regional Data API endpoint and the credential chain, nothing else
    await writeRoutine(dir.path, {
      routine_name: "rs-aws",
      aws: { region: "eu-west-1" },
      executors: { RedshiftExecutor: { params: { ...dataApi, sql: "SELECT 1" }, tasks: ["execute"] } },
    });
    const real = await lakerun(["plan", "--json", "routine.json"], {
      cwd: dir.path,
      env: { AWS_EC2_METADATA_DISABLED: "true", AWS_ENDPOINT_URL: "", AWS_ENDPOINT_URL_REDSHIFT_DATA: "" },
    });
    assert.deepEqual(JSON.parse(real.stdout).steps[0].permissions.net, [
      "redshift-data.eu-west-1.amazonaws.com:443",
      "sts.eu-west-1.amazonaws.com:443",
    ]);
  },
);

// ------------------------------------------------------------------------------------------------ the example routine

/** A retail-trade-survey-like CSV: 14 columns as Stats NZ publishes them, `periods` quarters of 3 series. */
function surveyCsv(periods: string[], value: (series: number, period: string) => string): Uint8Array {
  const lines = [
    "Series_reference,Period,Data_value,Suppressed,STATUS,UNITS,Magnitude,Subject,Group,Series_title_1," +
    "Series_title_2,Series_title_3,Series_title_4,Series_title_5",
  ];
  for (let series = 1; series <= 3; series++) {
    for (const period of periods) {
      lines.push(
        `RTTQ.S${series}AZ,${period},${value(series, period)},,F,Dollars,6,Retail Trade Survey - RTT,` +
          `"Industry by variable - Total values, SA",Series ${series},Actual,Seasonally adjusted,,`,
      );
    }
  }
  return encoder.encode(`${lines.join("\n")}\n`);
}

s3Test(
  "routines/retail_trade_survey_redshift.json: download → S3 staging → COPY → MERGE, twice without duplicates",
  async () => {
    const valid = await lakerun(["validate", "routines/retail_trade_survey_redshift.json"]);
    assert.equal(valid.code, 0, valid.stderr);
    const { startFaultServer } = await import("./support/fault_server.ts");
    const { buildZip } = await import("./support/zip_fixtures.ts");
    await using fake = await startFake();
    const bucket = await createTestBucket(s3server, "rs-survey");
    await psql("CREATE SCHEMA IF NOT EXISTS retail; DROP TABLE IF EXISTS retail.trade_survey");
    const text = await Deno.readTextFile(
      new URL("../routines/retail_trade_survey_redshift.json", import.meta.url),
    );
    const example = JSON.parse(text.replaceAll("s3://my-data-lake/", `s3://${bucket}/`));
    assert.deepEqual(Object.keys(example.executors), [
      "DownloaderExecutor",
      "StagingExecutor",
      "RedshiftExecutor",
    ]);
    example.aws.endpoints = { s3: s3.endpoint, redshift_data: fake.endpoint };
    example.executors.RedshiftExecutor.params.database = pg.database;

    const quarter1 = buildZip([{
      name: "retail-trade-survey.csv",
      data: surveyCsv(["2024.03", "2024.06"], (s) => `${s}00.5`),
    }]);
    await using http = await startFaultServer({ "/survey.zip": { body: quarter1 } });
    example.executors.DownloaderExecutor.params.requests_arguments.url = http.url("/survey.zip");
    await using dir = await tempDir();
    const first = await runRoutineJson(example, { cwd: dir.path });
    assert.equal(first.error, undefined, first.lines.join("\n"));
    const rows = () =>
      psql(
        `SELECT string_agg(series_reference || '@' || period || '=' || data_value, ',' ORDER BY series_reference, period) ` +
          `FROM retail.trade_survey`,
      );
    assert.equal(
      await rows(),
      "RTTQ.S1AZ@2024.03=100.5,RTTQ.S1AZ@2024.06=100.5,RTTQ.S2AZ@2024.03=200.5,RTTQ.S2AZ@2024.06=200.5," +
        "RTTQ.S3AZ@2024.03=300.5,RTTQ.S3AZ@2024.06=300.5",
    );
    assert.equal(
      await psql(`SELECT "group" FROM retail.trade_survey LIMIT 1`),
      "Industry by variable - Total values, SA",
    );
    const batch = fake.statements.find((s) =>
      s.kind === "batch" && s.sqls.some((sql) => sql.startsWith("MERGE"))
    )!;
    assert.equal(
      batch.sqls.find((sql) => sql.startsWith("COPY")),
      `COPY "lakerun_staging" ("series_reference", "period", "data_value", "suppressed", "status", "units", ` +
        `"magnitude", "subject", "group", "series_title_1", "series_title_2", "series_title_3", "series_title_4", ` +
        `"series_title_5") FROM 's3://${bucket}/retail_trade_survey/staging/' ` +
        `IAM_ROLE 'arn:aws:iam::123456789012:role/redshift-copy-retail-trade-survey' FORMAT AS CSV IGNOREHEADER 1`,
    );

    // the next quarter revises June and adds September: MERGE updates and inserts, never duplicates
    const quarter2 = buildZip([{
      name: "retail-trade-survey.csv",
      data: surveyCsv(["2024.06", "2024.09"], (s, p) => (p === "2024.06" ? `${s}11` : `${s}22`)),
    }]);
    await using http2 = await startFaultServer({ "/survey.zip": { body: quarter2 } });
    example.executors.DownloaderExecutor.params.requests_arguments.url = http2.url("/survey.zip");
    const second = await runRoutineJson(example, { cwd: dir.path });
    assert.equal(second.error, undefined, second.lines.join("\n"));
    assert.match(second.lines.join("\n"), /table "retail"\."trade_survey" exists: kept, same columns/);
    assert.equal(
      await rows(),
      "RTTQ.S1AZ@2024.03=100.5,RTTQ.S1AZ@2024.06=111,RTTQ.S1AZ@2024.09=122,RTTQ.S2AZ@2024.03=200.5," +
        "RTTQ.S2AZ@2024.06=211,RTTQ.S2AZ@2024.09=222,RTTQ.S3AZ@2024.03=300.5,RTTQ.S3AZ@2024.06=311,RTTQ.S3AZ@2024.09=322",
    );
  },
);

Deno.test("a credential the database quotes from a statement is *** in a Redshift error, Data API and wire alike", () => {
  const quoted = `syntax error at or near "PASSWORD 'Hunter2SecretPW'" in postgres://u:Hunter5SecretPW@h/db`;
  // the Data API's DescribeStatement of a failed batch
  const fromDataApi = statementError({
    Id: "s-1",
    Status: "FAILED",
    SubStatements: [{ Status: "FINISHED" }, { Status: "FAILED", Error: quoted }],
  } as any);
  // the wire: the runner's error, made from the server's message
  const fromWire = new RedshiftStatementError(
    `cluster (statement 2 of 2): ${quoted}`,
    1,
    quoted,
    new Date(),
    "current",
  );
  for (const error of [fromDataApi, fromWire]) {
    for (const text of [error.message, error.serverMessage]) {
      assert.ok(!/Hunter[25]/.test(text), text);
      assert.match(text, /PASSWORD '\*\*\*'.*postgres:\/\/u:\*\*\*@h\/db/);
    }
  }
});

Deno.test({
  name: "(stop the PostgreSQL server)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => pg.stop(),
});
