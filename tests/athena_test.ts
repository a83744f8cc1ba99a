/**
 * AthenaExecutor end to end: every routine runs through the lakerun command line, each step in its
 * sandboxed Worker, with `"aws": {"region", "endpoints"}` in the routine and fake keys in the environment.
 *
 * - Against moto (Athena, Glue and S3 on one port): create_table inferring columns from real S3 objects
 *   (first bytes), the SerDe the data needs, hostile headers kept as data, schema drift of a table created
 *   in moto's Glue catalog, if_exists fail/replace, add_partitions, seeded query results, and
 *   StopQueryExecution on SIGTERM.
 * - Against the Athena fake (tests/support/aws_fake.ts) for what moto lacks: FAILED queries with AthenaError,
 *   ClientRequestToken idempotency, result paging (2,500 rows), throttling during polls, the timeout, Ctrl-C,
 *   how soon a 3-second query is reported, and execution parameters.
 * - The scope `lakerun plan` shows and the IAM statements.
 *
 * The kill-and-rerun guarantees are in tests/athena_kill_test.ts.
 *
 * Run: deno test -A tests/athena_test.ts (SHOW_OUTPUT=1 prints what each lakerun run printed)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "zod";
import athena from "../executors/athena/mod.ts";
import { failureMessage } from "../executors/athena/queries.ts";
import { iamPolicyProblem, type IamStatement, mergeStatements } from "../lib/aws/iam.ts";
import { type AwsFake, startAwsFake } from "./support/aws_fake.ts";
import { lakerun, lakerunCommand, ROOT, tempDir } from "./support/lakerun.ts";
import { MOTO_ACCESS_KEY_ID, MOTO_SECRET_ACCESS_KEY, motoAuthorization, startMoto } from "./support/moto.ts";

const moto = await startMoto();
/** The test plugins: StepProbeExecutor writes a param (with the templates resolved) to a file. */
const PLUGINS = join(ROOT, "tests/fixtures/step_plugins");
const fakeKeys = { AWS_ACCESS_KEY_ID: MOTO_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: MOTO_SECRET_ACCESS_KEY };
/**
 * Athena, Glue and S3 all on moto; S3 by another host name (`localhost`) for the same server, so that the
 * sandbox tells S3 from Athena and Glue: a step without S3 in its scope cannot reach it.
 */
const onMoto = {
  athena: moto.endpoint,
  glue: moto.endpoint,
  s3: moto.endpoint.replace("127.0.0.1", "localhost"),
};

/** Each test starts with an empty moto. */
function motoTest(name: string, fn: () => Promise<void>) {
  Deno.test(name, async () => {
    await moto.reset();
    try {
      await fn();
    } finally {
      await moto.unsetAllTransitions();
    }
  });
}

// ------------------------------------------------------------------------------------------------ helpers

interface Step {
  executor?: string;
  params: Record<string, unknown>;
  tasks: string[];
}

/** Writes a routine with `steps` (by id) using `endpoints`, and returns the lakerun result of `run`. */
async function runRoutine(
  dir: string,
  endpoints: Record<string, string>,
  steps: Record<string, Step>,
  command = "run",
) {
  await writeRoutine(dir, endpoints, steps);
  const result = await lakerun(command === "run" ? ["run", "routine.json"] : [command, "routine.json"], {
    cwd: dir,
    env: fakeKeys,
  });
  if (Deno.env.get("SHOW_OUTPUT")) console.log(result.stdout, result.stderr);
  return { ...result, output: `${result.stdout}\n${result.stderr}` };
}

async function writeRoutine(dir: string, endpoints: Record<string, string>, steps: Record<string, Step>) {
  const executors = Object.fromEntries(
    Object.entries(steps).map(([id, step]) => [id, { executor: "AthenaExecutor", ...step }]),
  );
  const routine = { routine_name: "athena-test", aws: { region: "us-east-1", endpoints }, executors };
  await Deno.writeTextFile(join(dir, "routine.json"), JSON.stringify(routine, null, 2));
}

async function motoCall(service: "athena" | "glue", operation: string, body: unknown): Promise<any> {
  const prefix = service === "athena" ? "AmazonAthena" : "AWSGlue";
  const response = await fetch(moto.endpoint, {
    method: "POST",
    headers: {
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": `${prefix}.${operation}`,
      authorization: motoAuthorization(service),
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`moto ${operation}: ${response.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

/** Every query moto's Athena received, oldest first. */
async function motoQueries(): Promise<{ id: string; query: string; state: string }[]> {
  const { QueryExecutionIds: ids = [] } = await motoCall("athena", "ListQueryExecutions", {});
  const executions = await Promise.all(
    ids.map((id: string) => motoCall("athena", "GetQueryExecution", { QueryExecutionId: id })),
  );
  return executions
    .map(({ QueryExecution: q }) => ({
      id: q.QueryExecutionId,
      query: q.Query,
      state: q.Status.State,
      at: q.Status.SubmissionDateTime,
    }))
    .sort((a, b) => a.at - b.at)
    .map(({ id, query, state }) => ({ id, query, state }));
}

async function s3Request(method: string, path: string, body?: string): Promise<Response> {
  const response = await fetch(`${moto.endpoint}${path}`, {
    method,
    body,
    headers: { authorization: motoAuthorization("s3") },
  });
  if (!response.ok) throw new Error(`moto S3 ${method} ${path}: ${response.status} ${await response.text()}`);
  return response;
}

async function putObjects(bucket: string, objects: Record<string, string>) {
  await (await s3Request("PUT", `/${bucket}`)).body?.cancel();
  for (const [key, body] of Object.entries(objects)) {
    await (await s3Request("PUT", `/${bucket}/${key}`, body)).body?.cancel();
  }
}

async function createGlueTable(database: string, table: Record<string, unknown>) {
  await motoCall("glue", "CreateDatabase", { DatabaseInput: { Name: database } });
  await motoCall("glue", "CreateTable", { DatabaseName: database, TableInput: table });
}

/** Waits until `test` holds, checking every 50 ms, for at most `ms`. */
async function until(test: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const ORDERS_CSV = 'ID,Name,"x""; DROP TABLE y; --",Amount,Day\n' +
  '1,"Lovelace, Ada",a,1.5,2020-09-30\n' +
  "2,Bob,b,2,2020-10-01\n";

// ------------------------------------------------------------------------------------------------ moto

motoTest("create_table infers columns from real S3 objects and picks the SerDe the data needs", async () => {
  await putObjects("lake", {
    "staging/orders/part-0.csv": ORDERS_CSV,
    "staging/orders/_SUCCESS": "",
    "staging/orders/_logs/run.txt": "not the table's data\n", // hidden from Athena: never sampled
    "staging/plain/a.tsv": "id\tnote\n1\tplain text\n2\tmore\n",
  });
  await using dir = await tempDir();
  const result = await runRoutine(dir.path, onMoto, {
    orders: {
      params: { database: "lake", table: "orders", location: "s3://lake/staging/orders/" },
      tasks: ["create_table"],
    },
    plain: {
      params: { database: "lake", table: "plain", location: "s3://lake/staging/plain", format: "tsv" },
      tasks: ["create_table"],
    },
  });
  assert.equal(result.code, 0, result.output);
  const queries = await motoQueries();
  assert.equal(queries.length, 2, JSON.stringify(queries));
  assert.equal(
    queries[0].query,
    [
      "CREATE EXTERNAL TABLE `lake`.`orders` (",
      "  `id` bigint,",
      "  `name` string,",
      "  `x_drop_table_y` string,",
      "  `amount` double,",
      "  `day` string",
      ")",
      "ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'",
      "WITH SERDEPROPERTIES ('separatorChar'=',', 'quoteChar'='\"', 'escapeChar'='\\\\')",
      "STORED AS TEXTFILE",
      "LOCATION 's3://lake/staging/orders/'",
      "TBLPROPERTIES ('skip.header.line.count'='1')",
    ].join("\n"),
  );
  assert.match(
    queries[1].query,
    /^CREATE EXTERNAL TABLE `lake`\.`plain` \(\n {2}`id` bigint,\n {2}`note` string\n\)/,
  );
  assert.match(queries[1].query, /ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\t'/);
  // the mapping and the reasons are in the log
  assert.match(result.output, /"x\\"; DROP TABLE y; --" → x_drop_table_y string/);
  assert.match(result.output, /"ID" → id bigint/);
  assert.match(result.output, /quoted fields: OpenCSVSerde/);
  assert.match(result.output, /no quoted fields: LazySimpleSerDe/);
  assert.match(result.output, /'skip.header.line.count'='1': the first line of each file is a header/);
});

motoTest(
  "create_table: if_exists keep fails on schema drift listing each difference; fail; replace",
  async () => {
    await putObjects("lake", { "staging/orders/part-0.csv": ORDERS_CSV });
    await createGlueTable("lake", {
      Name: "orders",
      StorageDescriptor: {
        Columns: [
          { Name: "id", Type: "int" },
          { Name: "name", Type: "string" },
          { Name: "amount", Type: "double" },
          { Name: "extra", Type: "string" },
        ],
        Location: "s3://lake/staging/orders/",
      },
    });
    const step = (ifExists: string) => ({
      orders: {
        params: {
          database: "lake",
          table: "orders",
          location: "s3://lake/staging/orders",
          if_exists: ifExists,
        },
        tasks: ["create_table"],
      },
    });
    await using keep = await tempDir();
    const drifted = await runRoutine(keep.path, onMoto, step("keep"));
    assert.equal(drifted.code, 1, drifted.output);
    assert.match(drifted.output, /table lake\.orders exists and differs from the files .*\(schema drift\)/);
    for (
      const difference of [
        "column `id`: table has int, files have bigint",
        "files have a column `x_drop_table_y` the table lacks",
        "files have a column `day` the table lacks",
        "table has a column `extra` the files lack",
      ]
    ) assert.ok(drifted.output.includes(difference), `${difference}\n${drifted.output}`);
    assert.deepEqual(await motoQueries(), [], "nothing was run");

    await using fail = await tempDir();
    const refused = await runRoutine(fail.path, onMoto, step("fail"));
    assert.equal(refused.code, 1);
    assert.match(refused.output, /table lake\.orders already exists \(if_exists: fail\)/);

    await using replace = await tempDir();
    const replaced = await runRoutine(replace.path, onMoto, step("replace"));
    assert.equal(replaced.code, 0, replaced.output);
    const queries = await motoQueries();
    assert.deepEqual(queries.map((q) => q.query.split("\n")[0]), [
      "DROP TABLE IF EXISTS `lake`.`orders`",
      "CREATE EXTERNAL TABLE `lake`.`orders` (",
    ]);
    assert.match(replaced.output, /dropped table lake\.orders to replace it/);
  },
);

motoTest(
  "a re-run after a later step failed: create_table reattaches to its CREATE, the new table is no obstacle",
  async () => {
    await putObjects("lake", { "staging/orders/part-0.csv": ORDERS_CSV });
    await using dir = await tempDir();
    const steps = {
      orders: {
        params: {
          database: "lake",
          table: "orders",
          location: "s3://lake/staging/orders",
          if_exists: "fail",
        },
        tasks: ["create_table"],
      },
      // a later step that fails when it runs (its landing folder is missing)
      report: {
        executor: "StagingExecutor",
        params: { parent_directory: "missing", dump_directory: "out" },
        tasks: ["post_staging"],
      },
    };
    const first = await runRoutine(dir.path, onMoto, steps);
    assert.equal(first.code, 1, first.output);
    assert.match(first.output, /step "report" \(StagingExecutor\) task 'post_staging' failed/);
    // what Athena's CREATE EXTERNAL TABLE did in the Glue catalog (moto's Athena does not)
    await createGlueTable("lake", { Name: "orders", StorageDescriptor: { Columns: [] } });

    const again = await runRoutine(dir.path, onMoto, steps);
    assert.equal(again.code, 1, again.output);
    assert.match(again.output, /CREATE TABLE: query \S+ already SUCCEEDED in an earlier attempt of this run/);
    assert.match(again.output, /✓ create_table/);
    assert.equal((await motoQueries()).length, 1, "CREATE ran once");

    // a template inside the file is refused before any query starts (it would run as written)
    await Deno.writeTextFile(
      join(dir.path, "daily.sql"),
      "SELECT count(*)\nFROM orders WHERE dt = '${{ run.date }}'\n",
    );
    const templated = await runRoutine(dir.path, onMoto, {
      report: { params: { query_file: "daily.sql" }, tasks: ["query"] },
    });
    assert.equal(templated.code, 1, templated.output);
    assert.match(
      templated.output,
      /query_file "daily\.sql" line 2 holds the template "\$\{\{ run\.date \}\}"/,
    );
    assert.equal((await motoQueries()).length, 1, "no query started");
  },
);

motoTest(
  "create_table if_exists keep: a table that would read the files otherwise (SerDe, delimiter, header) is drift",
  async () => {
    await putObjects("lake", { "staging/orders/part-0.csv": ORDERS_CSV });
    // the columns lakerun's table has for these files (OpenCSVSerde: quoted fields hold the delimiter)
    const Columns = [
      { Name: "id", Type: "bigint" },
      { Name: "name", Type: "string" },
      { Name: "x_drop_table_y", Type: "string" },
      { Name: "amount", Type: "double" },
      { Name: "day", Type: "string" },
    ];
    const table = (Name: string, serde: string, parameters: Record<string, string>, header: boolean) => ({
      Name,
      StorageDescriptor: {
        Columns,
        Location: "s3://lake/staging/orders/",
        SerdeInfo: { SerializationLibrary: serde, Parameters: parameters },
      },
      ...(header ? { Parameters: { "skip.header.line.count": "1" } } : {}),
    });
    await createGlueTable(
      "lake",
      table("lazy", "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe", { "field.delim": "," }, true),
    );
    const openCsv = "org.apache.hadoop.hive.serde2.OpenCSVSerde";
    await motoCall("glue", "CreateTable", {
      DatabaseName: "lake",
      TableInput: table("semi", openCsv, { separatorChar: ";" }, false),
    });
    await motoCall("glue", "CreateTable", {
      DatabaseName: "lake",
      TableInput: table("same", openCsv, { separatorChar: "," }, true),
    });
    const keep = (name: string) => ({
      [name]: {
        params: { database: "lake", table: name, location: "s3://lake/staging/orders", if_exists: "keep" },
        tasks: ["create_table"],
      },
    });
    await using dir = await tempDir();
    const lazy = await runRoutine(dir.path, onMoto, keep("lazy"));
    assert.equal(lazy.code, 1, lazy.output);
    assert.match(
      lazy.output,
      /table lake\.lazy exists and differs from the files in s3:\/\/lake\/staging\/orders \(schema drift\): table reads its files with LazySimpleSerDe, the files need OpenCSVSerde — set if_exists: replace/,
    );
    const semi = await runRoutine(dir.path, onMoto, keep("semi"));
    assert.equal(semi.code, 1, semi.output);
    assert.match(
      semi.output,
      /\(schema drift\): table splits fields at ";", the files at ","; table skips no header line, the files have a header line — /,
    );
    const same = await runRoutine(dir.path, onMoto, keep("same"));
    assert.equal(same.code, 0, same.output);
    assert.match(same.output, /table lake\.same exists with the same columns, location and format: kept/);
    assert.deepEqual(await motoQueries(), [], "no query ran");
  },
);

motoTest("create_table keeps an existing table whose columns match the files, running no query", async () => {
  await putObjects("lake", { "events/2020/a.json": '{"id": 1, "Kind": "x"}\n{"id": 2, "Kind": "y"}\n' });
  await createGlueTable("lake", {
    Name: "events",
    StorageDescriptor: {
      Columns: [{ Name: "id", Type: "bigint" }, { Name: "kind", Type: "string" }],
      Location: "s3://lake/events",
    },
  });
  await using dir = await tempDir();
  const result = await runRoutine(dir.path, onMoto, {
    events: {
      params: { database: "lake", table: "events", location: "s3://lake/events/", format: "json" },
      tasks: ["create_table"],
    },
  });
  assert.equal(result.code, 0, result.output);
  assert.match(result.output, /table lake\.events exists with the same columns, location and format: kept/);
  assert.deepEqual(await motoQueries(), []);
});

motoTest("add_partitions adds only the partition folders the table lacks, in one ALTER TABLE", async () => {
  await putObjects("lake", {
    "sales/dt=2020-09-30/part-0.csv": "id\n1\n",
    "sales/dt=2020-10-01/part-0.csv": "id\n2\n",
    "sales/dt=2020-10-01/part-1.csv": "id\n3\n",
    "sales/dt=2020-10-02/part-0.csv": "id\n4\n",
    "sales/_SUCCESS": "",
  });
  // what SHOW PARTITIONS answers: the table has the first day already
  await moto.seedAthenaResults([{
    rows: [{ Data: [{ VarCharValue: "dt=2020-09-30" }] }],
    column_info: [{ Name: "partition", Type: "string" }],
  }]);
  await using dir = await tempDir();
  const result = await runRoutine(dir.path, onMoto, {
    sales: {
      params: {
        database: "lake",
        table: "sales",
        location: "s3://lake/sales",
        partitioned_by: { dt: "date" },
      },
      tasks: ["add_partitions"],
    },
  });
  assert.equal(result.code, 0, result.output);
  const queries = await motoQueries();
  assert.deepEqual(queries.map((q) => q.query), [
    "SHOW PARTITIONS `lake`.`sales`",
    [
      "ALTER TABLE `lake`.`sales` ADD IF NOT EXISTS",
      "  PARTITION (`dt`='2020-10-01') LOCATION 's3://lake/sales/dt=2020-10-01/'",
      "  PARTITION (`dt`='2020-10-02') LOCATION 's3://lake/sales/dt=2020-10-02/'",
    ].join("\n"),
  ]);
  assert.match(
    result.output,
    /added 2 partitions \(dt=2020-10-01, dt=2020-10-02\) to lake\.sales; 1 was there/,
  );
});

motoTest(
  "query logs seeded results as a table and writes them all to results_to, the header once",
  async () => {
    const header = ["id", "name"];
    const data = [["1", "Lovelace, Ada"], ["2", 'say "hi"']];
    await moto.seedAthenaResults([{
      rows: [header, ...data].map((row) => ({ Data: row.map((v) => ({ VarCharValue: v })) })),
      column_info: header.map((name) => ({ Name: name, Type: "varchar" })),
    }]);
    await using dir = await tempDir();
    const result = await runRoutine(dir.path, onMoto, {
      report: {
        params: { database: "lake", query: "SELECT id, name FROM orders", results_to: "out/orders.csv" },
        tasks: ["query"],
      },
    });
    assert.equal(result.code, 0, result.output);
    assert.equal(
      await Deno.readTextFile(join(dir.path, "out/orders.csv")),
      '"id","name"\n"1","Lovelace, Ada"\n"2","say ""hi"""\n',
    );
    assert.match(result.output, /id \| name\n\s+---\+-+\n\s+1 {2}\| Lovelace, Ada\n\s+2 {2}\| say "hi"/);
    assert.match(
      result.output,
      /SUCCEEDED in .*, 0 B scanned, engine time .*; 2 rows written to out\/orders\.csv/,
    );
    const [query] = await motoQueries();
    assert.equal(query.state, "SUCCEEDED");
  },
);

motoTest(
  "no AWS credentials: the query fails saying what to set, and the next attempt knows nothing was started",
  async () => {
    await using dir = await tempDir();
    await writeRoutine(dir.path, onMoto, {
      report: { params: { database: "lake", query: "SELECT 1" }, tasks: ["query"] },
    });
    // no keys, no shared files: the credential chain finds nothing
    // (empty keys: a test server run in this process may have set them in its environment)
    const env = {
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
      AWS_CONFIG_FILE: "/nonexistent",
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_SESSION_TOKEN: "",
    };
    for (const attempt of [1, 2]) {
      const result = await lakerun(["run", "routine.json", ...(attempt === 2 ? ["--resume"] : [])], {
        cwd: dir.path,
        env,
      });
      const output = `${result.stdout}\n${result.stderr}`;
      assert.equal(result.code, 1, output);
      assert.match(
        output,
        /Athena StartQueryExecution failed: NoCredentials: no AWS credentials for Athena StartQueryExecution( \(.*\))?: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE/,
      );
      assert.doesNotMatch(output, /earlier attempt|Could not load credentials/);
    }
    assert.deepEqual(await motoQueries(), []);
  },
);

motoTest(
  "a workgroup that does not exist is named in the error, which Athena's message does not do",
  async () => {
    await using dir = await tempDir();
    const result = await runRoutine(dir.path, onMoto, {
      report: { params: { database: "lake", query: "SELECT 1", workgroup: "analytics" }, tasks: ["query"] },
    });
    assert.equal(result.code, 1, result.output);
    assert.match(
      result.output,
      /Athena StartQueryExecution failed: InvalidRequestException: WorkGroup does not exist \(workgroup "analytics"\)\n/,
    );
    assert.deepEqual(await motoQueries(), []);
  },
);

motoTest(
  "SIGTERM stops the running query (StopQueryExecution) before lakerun exits, and says so",
  async () => {
    await moto.setTransition("athena::execution", { progression: "manual", times: 10_000 });
    await using dir = await tempDir();
    await writeRoutine(dir.path, onMoto, {
      slow: { params: { query: "SELECT count(*) FROM big" }, tasks: ["query"] },
    });
    const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path, env: fakeKeys }).spawn();
    await until(async () => (await motoQueries()).length === 1);
    await new Promise((resolve) => setTimeout(resolve, 700)); // lakerun is polling now
    child.kill("SIGTERM");
    const { code, stdout, stderr } = await child.output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 143, output);
    const [query] = await motoQueries();
    assert.equal(query.state, "CANCELLED");
    assert.match(output, new RegExp(`query: stopped query ${query.id} \\(interrupted\\)`));
  },
);

motoTest(
  "outputs: a later step uses the query id, rows and locations, the table and the partitions added; a re-run reports the same",
  async () => {
    await putObjects("lake", {
      "sales/dt=2020-09-30/part-0.csv": "id,amount\n1,2.5\n",
      "sales/dt=2020-10-01/part-0.csv": "id,amount\n2,3\n",
    });
    // moto hands the seeded results out as queries start: CREATE, SHOW PARTITIONS, ALTER TABLE, the query
    const none = { rows: [], column_info: [] };
    await moto.seedAthenaResults([
      none,
      // SHOW PARTITIONS: an older day only
      {
        rows: [{ Data: [{ VarCharValue: "dt=2020-01-01" }] }],
        column_info: [{ Name: "partition", Type: "string" }],
      },
      none,
      {
        rows: [["id"], ["1"], ["2"]].map((row) => ({ Data: row.map((v) => ({ VarCharValue: v })) })),
        column_info: [{ Name: "id", Type: "varchar" }],
      },
    ]);
    await using dir = await tempDir();
    await Deno.mkdir(join(dir.path, "w"));
    const outputs = [
      "query_execution_id",
      "rows",
      "results_to",
      "output_location",
      "data_scanned_bytes",
      "table",
      "table_status",
      "partitions_added",
    ];
    await writeRoutine(dir.path, onMoto, {
      athena: {
        params: {
          database: "lake",
          table: "sales",
          location: "s3://lake/sales/",
          partitioned_by: { dt: "date" },
          query: "SELECT id FROM sales",
          results_to: "out/ids.csv",
          output_location: "s3://results/athena/",
        },
        tasks: ["create_table", "add_partitions", "query"],
      },
      use: {
        executor: "StepProbeExecutor",
        params: {
          folder: "w",
          fail_if: "fail.flag",
          note: outputs.map((name) => `${name}=\${{ steps.athena.outputs.${name} }}`).join("|"),
        },
        tasks: ["work"],
      },
    });
    const run = async () => {
      const result = await lakerun(["run", "--executors", PLUGINS, "routine.json"], {
        cwd: dir.path,
        env: fakeKeys,
      });
      return { ...result, output: `${result.stdout}\n${result.stderr}` };
    };
    await Deno.writeTextFile(join(dir.path, "w/fail.flag"), "");
    const first = await run();
    assert.equal(first.code, 1, first.output);
    const queries = await motoQueries();
    const id = queries.find((q) => q.query === "SELECT id FROM sales")!.id;
    const expected = {
      table: "lake.sales",
      table_status: "created",
      partitions_added: 2,
      query_execution_id: id,
      output_location: `s3://results/athena/${id}.csv`,
      data_scanned_bytes: 0, // moto's statistics are zeros
      rows: 2,
      results_to: "out/ids.csv",
    };
    const note = outputs.map((name) => `${name}=${expected[name as keyof typeof expected]}`).join("|");
    assert.equal(await Deno.readTextFile(join(dir.path, "w/use.note")), note);

    // the same routine run again: every query is reattached (none started), the outputs are the same
    await Deno.remove(join(dir.path, "w/fail.flag"));
    await Deno.remove(join(dir.path, "w/use.note"));
    const again = await run();
    assert.equal(again.code, 0, again.output);
    assert.match(again.output, /query: query \S+ already SUCCEEDED in an earlier attempt of this run/);
    assert.equal((await motoQueries()).length, queries.length, "no query started again");
    assert.equal(await Deno.readTextFile(join(dir.path, "w/use.note")), note);
    const runs = await lakerun(["runs", "--json", "routine.json"], { cwd: dir.path });
    const [record] = JSON.parse(runs.stdout);
    assert.equal(record.attempt, 2);
    assert.deepEqual(record.steps.athena.outputs, expected);
  },
);

// ------------------------------------------------------------------------------------------------ the fake

/** A fake for Athena; Glue and S3 stay on moto. */
async function withFake(fn: (fake: AwsFake, endpoints: Record<string, string>) => Promise<void>) {
  await using fake = await startAwsFake();
  await moto.reset();
  await fn(fake, { ...onMoto, athena: fake.endpoint });
}

Deno.test("a FAILED query reports Athena's error category and message", async () => {
  await withFake(async (fake, endpoints) => {
    fake.athena.script("FROM missing", {
      states: ["QUEUED", "RUNNING", "FAILED"],
      error: {
        ErrorCategory: 2,
        ErrorType: 1006,
        ErrorMessage: "line 1:15: Table 'awsdatacatalog.lake.missing' does not exist",
      },
    });
    await using dir = await tempDir();
    const result = await runRoutine(dir.path, endpoints, {
      broken: { params: { database: "lake", query: "SELECT * FROM missing" }, tasks: ["query"] },
    });
    assert.equal(result.code, 1, result.output);
    const [query] = fake.athena.queries;
    assert.ok(
      result.output.includes(
        `Athena query ${query.id} FAILED: user error (type 1006): ` +
          "line 1:15: Table 'awsdatacatalog.lake.missing' does not exist",
      ),
      result.output,
    );
  });
});

Deno.test("a FAILED DDL statement whose message names no table is told the table", async () => {
  await withFake(async (fake, endpoints) => {
    fake.athena.script("CREATE EXTERNAL TABLE", {
      states: ["QUEUED", "FAILED"],
      error: {
        ErrorCategory: 2,
        ErrorType: 1301,
        ErrorMessage: "FAILED: Execution Error, return code 1 from org.apache.hadoop.hive.ql.exec.DDLTask. " +
          "AlreadyExistsException(message:Table already exists)",
      },
    });
    await using dir = await tempDir();
    const result = await runRoutine(dir.path, endpoints, {
      create: {
        params: {
          database: "lake",
          table: "events",
          location: "s3://lake-bkt/events/parquet",
          format: "parquet",
          columns: { id: "bigint" },
        },
        tasks: ["create_table"],
      },
    });
    assert.equal(result.code, 1, result.output);
    assert.match(
      result.output,
      /AlreadyExistsException\(message:Table already exists\) \(table "lake\.events"\)\n/,
    );
  });
});

Deno.test("a lost StartQueryExecution reply is retried with the same ClientRequestToken: one query", async () => {
  await withFake(async (fake, endpoints) => {
    // Athena starts the query but the answer is lost (HTTP 500 after the work was done)
    fake.fail("StartQueryExecution", 1, { type: "InternalServerException", status: 500, applied: true });
    await using dir = await tempDir();
    const result = await runRoutine(dir.path, endpoints, {
      once: { params: { query: "SELECT 1" }, tasks: ["query"] },
      // a later step fails: the run may be continued, so its journal entries stay (a run that succeeded
      // leaves none)
      after: {
        executor: "StagingExecutor",
        params: { parent_directory: "missing", dump_directory: "out" },
        tasks: ["post_staging"],
      },
    });
    assert.equal(result.code, 1, result.output);
    assert.match(result.output, /step "after" \(StagingExecutor\) task 'post_staging' failed/);
    assert.equal(fake.callsOf("StartQueryExecution").length, 2);
    assert.equal(fake.athena.queries.length, 1, "one query at the service");
    const [query] = fake.athena.queries;
    assert.equal(query.starts, 2);
    assert.match(query.clientRequestToken ?? "", /^[0-9a-f]{64}$/);
    // the token is the one of the step's journal entry
    const journal = join(dir.path, ".lakerun");
    const entries = await journalEntries(journal);
    assert.deepEqual(entries.map((e) => [e.token, e.id, e.state]), [
      [query.clientRequestToken, query.id, "succeeded"],
    ]);
  });
});

/** Every cloud-run journal entry under a state folder. */
async function journalEntries(root: string): Promise<any[]> {
  const out: any[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (/^cloud-[0-9a-f]+\.json$/.test(entry.name)) {
        out.push(JSON.parse(await Deno.readTextFile(path)));
      }
    }
  };
  await walk(root);
  return out;
}

Deno.test("2,500 result rows are paged 1,000 at a time into results_to, local and S3, the header once", async () => {
  await withFake(async (fake, endpoints) => {
    const rows = Array.from(
      { length: 2500 },
      (_, i) => [String(i + 1), i % 7 === 0 ? null : `name ${i + 1}`],
    );
    fake.athena.script("FROM people", { columns: ["id", "name"], rows });
    await putObjects("results", {});
    await using dir = await tempDir();
    const result = await runRoutine(dir.path, endpoints, {
      local: {
        params: { query: "SELECT id, name FROM people", results_to: "out/people.csv" },
        tasks: ["query"],
      },
      remote: {
        params: { query: "SELECT id, name FROM people", results_to: "s3://results/exports/people.csv" },
        tasks: ["query"],
      },
    });
    assert.equal(result.code, 0, result.output);
    const expected = '"id","name"\n' +
      rows.map(([id, name]) => `"${id}",${name === null ? "" : `"${name}"`}\n`).join("");
    assert.equal(await Deno.readTextFile(join(dir.path, "out/people.csv")), expected);
    assert.equal(await (await s3Request("GET", "/results/exports/people.csv")).text(), expected);
    const pages = fake.callsOf("GetQueryResults").slice(0, 3).map((
      c,
    ) => [c.body.MaxResults, "NextToken" in c.body]);
    assert.deepEqual(pages, [[1000, false], [1000, true], [1000, true]]);
    assert.equal(fake.callsOf("GetQueryResults").length, 6);
    assert.match(result.output, /2,500 rows written to out\/people\.csv/);
  });
});

Deno.test("without results_to, 100 rows are counted, and 100 and 150 are told apart (NextToken)", async () => {
  await withFake(async (fake, endpoints) => {
    const rows = (n: number) => Array.from({ length: n }, (_, i) => [String(i + 1)]);
    fake.athena.script("FROM hundred", { columns: ["id"], rows: rows(100) });
    fake.athena.script("FROM more", { columns: ["id"], rows: rows(150) });
    await using dir = await tempDir();
    const result = await runRoutine(dir.path, endpoints, {
      hundred: { params: { query: "SELECT id FROM hundred" }, tasks: ["query"] },
      more: { params: { query: "SELECT id FROM more" }, tasks: ["query"] },
    });
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /; 100 rows\n/);
    assert.match(result.output, /; more than 100 rows \(set results_to to save them all\)/);
    const outputs = result.output.match(/output rows = \d+/g);
    assert.deepEqual(
      outputs,
      ["output rows = 100"],
      "only the step whose rows were all counted says how many",
    );
  });
});

Deno.test("throttling while starting and polling is retried and logged, never fatal", async () => {
  await withFake(async (fake, endpoints) => {
    fake.athena.script("SELECT", { states: ["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"] });
    fake.throttle("StartQueryExecution", 1);
    fake.throttle("GetQueryExecution", 3);
    fake.throttle("GetQueryResults", 1);
    await using dir = await tempDir();
    const result = await runRoutine(dir.path, endpoints, {
      busy: { params: { query: "SELECT 1" }, tasks: ["query"] },
    });
    assert.equal(result.code, 0, result.output);
    assert.equal(fake.athena.queries.length, 1);
    assert.match(result.output, /StartQueryExecution: TooManyRequestsException; retry 1/);
    assert.match(result.output, /GetQueryExecution: ThrottlingException; retry 3/);
    assert.match(result.output, /SUCCEEDED/);
  });
});

Deno.test("the timeout stops the query and fails the task, saying so", async () => {
  await withFake(async (fake, endpoints) => {
    fake.athena.script("FROM slow", { runningForMs: 60_000 });
    await using dir = await tempDir();
    const started = Date.now();
    const result = await runRoutine(dir.path, endpoints, {
      slow: { params: { query: "SELECT * FROM slow", timeout: 1 }, tasks: ["query"] },
    });
    assert.equal(result.code, 1, result.output);
    const [query] = fake.athena.queries;
    assert.equal(query.state, "CANCELLED");
    assert.ok(
      query.stoppedAt! - query.submittedAt < 2000,
      `stopped after ${query.stoppedAt! - query.submittedAt} ms`,
    );
    assert.match(result.output, new RegExp(`stopped query ${query.id} \\(timeout of 1\\.0 s reached\\)`));
    assert.match(result.output, /was still RUNNING after the timeout of 1\.0 s: stopped it/);
    assert.ok(Date.now() - started < 10_000);
  });
});

Deno.test("Ctrl-C stops the query before lakerun exits, and says so", async () => {
  await withFake(async (fake, endpoints) => {
    fake.athena.script("FROM slow", { runningForMs: 60_000 });
    await using dir = await tempDir();
    await writeRoutine(dir.path, endpoints, {
      slow: { params: { query: "SELECT * FROM slow" }, tasks: ["query"] },
    });
    const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path, env: fakeKeys }).spawn();
    await until(() => fake.callsOf("GetQueryExecution").length > 0);
    child.kill("SIGINT");
    const { code, stdout, stderr } = await child.output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 130, output);
    const [query] = fake.athena.queries;
    assert.equal(query.state, "CANCELLED");
    assert.equal(fake.callsOf("StopQueryExecution").length, 1);
    assert.match(output, new RegExp(`stopped query ${query.id} \\(interrupted\\)`));
  });
});

Deno.test("killed, then re-run with other SQL: the earlier attempt's query is stopped before the new one starts", async () => {
  await withFake(async (fake, endpoints) => {
    fake.athena.script("FROM slow", { runningForMs: 60_000 });
    await using dir = await tempDir();
    await writeRoutine(dir.path, endpoints, {
      ctas: { params: { query: "SELECT * FROM slow" }, tasks: ["query"] },
    });
    const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path, env: fakeKeys }).spawn();
    await until(() => fake.callsOf("GetQueryExecution").length > 0);
    child.kill("SIGKILL");
    await child.output();
    const [earlier] = fake.athena.queries;
    assert.equal(earlier.state, "RUNNING");

    // the routine edited, then run again: the same routine run (the last one was killed)
    const result = await runRoutine(dir.path, endpoints, {
      ctas: { params: { query: "SELECT * FROM fresh" }, tasks: ["query"] },
    });
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /↻ attempt 2 of run/);
    assert.equal(fake.athena.queries[0].state, "CANCELLED");
    assert.equal(fake.athena.queries.length, 2);
    assert.match(
      result.output,
      new RegExp(
        `stopped query ${earlier.id} \\(an earlier attempt of this run started it with other SQL or settings\\)`,
      ),
    );
    // the stop came before the new query was started
    const calls = fake.calls.map((call) => call.operation);
    assert.ok(
      calls.lastIndexOf("StopQueryExecution") < calls.lastIndexOf("StartQueryExecution"),
      calls.join(","),
    );
  });
});

Deno.test("a 3-second query is reported done after a few status calls; parameters travel as execution parameters", async () => {
  await withFake(async (fake, endpoints) => {
    fake.athena.script("FROM orders", {
      queuedForMs: 200,
      runningForMs: 2800,
      columns: ["n"],
      rows: [["3"]],
    });
    await using dir = await tempDir();
    const result = await runRoutine(dir.path, endpoints, {
      count: {
        params: {
          database: "lake",
          query: "SELECT count(*) AS n FROM orders WHERE customer = ? AND amount > ? AND paid = ?",
          parameters: ["O'Brien'); DROP TABLE orders; --", 42.5, true],
        },
        tasks: ["query"],
      },
    });
    assert.equal(result.code, 0, result.output);
    const [query] = fake.athena.queries;
    assert.equal(
      query.queryString,
      "SELECT count(*) AS n FROM orders WHERE customer = ? AND amount > ? AND paid = ?",
    );
    assert.deepEqual(query.executionParameters, ["'O''Brien''); DROP TABLE orders; --'", "42.5", "true"]);
    assert.deepEqual(query.queryExecutionContext, { Catalog: "AwsDataCatalog", Database: "lake" });
    assert.equal(query.workGroup, "primary");
    // how soon after its end a query is noticed is a property of the poll schedule, tested without a clock in
    // poll_test.ts (and measured in bench/cloud_poll.ts): here, only that it was polled, adaptively
    const completedAt = query.completedAt!;
    assert.ok(fake.callsOf("GetQueryExecution").some((call) => call.at >= completedAt), "polled to its end");
    assert.ok(fake.callsOf("GetQueryExecution").length <= 10, "adaptive polling: few status calls");
    assert.match(result.output, /1 row\b/);
  });
});

Deno.test("the query's ? placeholders and parameters must match: with the routine for query, before the query starts for query_file", async () => {
  await withFake(async (fake, endpoints) => {
    await using dir = await tempDir();
    const sql = "SELECT * FROM orders WHERE customer = ? AND note = 'is it?' -- or ?\n AND amount > ?";
    const checked = await runRoutine(dir.path, endpoints, {
      count: { params: { database: "lake", query: sql, parameters: ["x"] }, tasks: ["query"] },
    }, "validate");
    assert.equal(checked.code, 2, checked.output);
    assert.match(
      checked.output,
      /params\.parameters: the query has 2 \? placeholders and parameters gives 1 value, got \["x"\]/,
    );
    await Deno.writeTextFile(join(dir.path, "report.sql"), sql);
    const run = await runRoutine(dir.path, endpoints, {
      report: { params: { database: "lake", query_file: "report.sql" }, tasks: ["query"] },
    });
    assert.equal(run.code, 1, run.output);
    assert.match(
      run.output,
      /query_file "report\.sql": the query has 2 \? placeholders and parameters gives 0 values/,
    );
    assert.equal(fake.athena.queries.length, 0, "no query started");
  });
});

// ------------------------------------------------------------------------------------------------ scope, IAM, params

Deno.test("lakerun plan: Athena's endpoint always, Glue for create_table, S3 only where the step reads or writes it", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "report.sql"), "SELECT 1");
  // three endpoints on three ports, so the plan shows which service each host is for (nothing is contacted)
  const endpoints = {
    athena: "http://127.0.0.1:6001",
    glue: "http://127.0.0.1:6002",
    s3: "http://127.0.0.1:6003",
  };
  const [athenaHost, glueHost, s3Host] = ["127.0.0.1:6001", "127.0.0.1:6002", "127.0.0.1:6003"];
  const location = "s3://lake/staging/orders";
  const result = await runRoutine(dir.path, endpoints, {
    query: { params: { query_file: "report.sql", results_to: "out/r.csv" }, tasks: ["query"] },
    s3_results: { params: { query: "SELECT 1", results_to: "s3://lake/r.csv" }, tasks: ["query"] },
    create: { params: { database: "lake", table: "t", location }, tasks: ["create_table"] },
    create_typed_json: {
      params: { database: "lake", table: "t", location, format: "json", columns: { id: "bigint" } },
      tasks: ["create_table"],
    },
    partitions: {
      params: { database: "lake", table: "t", location, partitioned_by: { dt: "string" } },
      tasks: ["add_partitions"],
    },
  }, "plan");
  assert.equal(result.code, 0, result.output);
  assert.match(result.stdout, /net {4}127\.0\.0\.1:6001/);
  const plan = JSON.parse(
    (await lakerun(["plan", "--json", "routine.json"], { cwd: dir.path, env: fakeKeys })).stdout,
  );
  const scope = (id: string) => plan.steps.find((s: { id: string }) => s.id === id).permissions;
  assert.deepEqual(scope("query").net, [athenaHost]);
  assert.ok(scope("query").read.includes(join(dir.path, "report.sql")));
  assert.ok(scope("query").write.includes(join(dir.path, "out")), "the results' folder");
  assert.ok(!scope("query").write.includes(dir.path), "not the folder lakerun runs in");
  assert.deepEqual(scope("s3_results").net, [athenaHost, s3Host]);
  assert.deepEqual(scope("create").net, [athenaHost, glueHost, s3Host]);
  assert.deepEqual(scope("create_typed_json").net, [athenaHost, glueHost], "typed JSON: no sample to read");
  assert.deepEqual(scope("partitions").net, [athenaHost, s3Host]);

  const iam = await lakerun(["plan", "--iam", "routine.json"], { cwd: dir.path, env: fakeKeys });
  assert.equal(iam.code, 0, iam.stderr);
  const policy = JSON.parse(iam.stdout);
  assert.equal(iamPolicyProblem(policy), undefined);
  const grants = policy.Statement.flatMap((s: IamStatement) =>
    s.Action.map((a) => `${a} ${s.Resource.join(",")}`)
  );
  assert.ok(
    grants.includes("athena:StartQueryExecution arn:aws:athena:us-east-1:*:workgroup/primary"),
    iam.stdout,
  );
  assert.ok(grants.some((g: string) => g.startsWith("glue:CreateTable ")), iam.stdout);
  assert.ok(grants.includes("s3:PutObject arn:aws:s3:::lake/r.csv"), iam.stdout);
});

Deno.test("iam(): Athena on the workgroup, Glue on the table, S3 only for what the tasks read and write", () => {
  const params = athena.params(z).parse({
    database: "lake",
    table: "orders",
    location: "s3://lake/staging/orders/",
    partitioned_by: { dt: "date" },
    output_location: "s3://athena-results/lakerun",
    results_to: "s3://exports/orders.csv",
    workgroup: "etl",
    if_exists: "replace",
  });
  const context = { cwd: "/w", resolve: (p: string) => `/w/${p}`, aws: { region: "eu-west-1" } };
  /** The statements of `tasks` as `ACTIONS on RESOURCES [if CONDITION]` lines. */
  const grants = (tasks: string[]) => {
    const statements = athena.iam!(params, { ...context, tasks });
    assert.equal(iamPolicyProblem(mergeStatements(statements)), undefined);
    return statements.map((s) =>
      `${s.Action.join(",")} on ${s.Resource.join(",")}${
        s.Condition ? ` if ${JSON.stringify(s.Condition)}` : ""
      }`
    ).sort();
  };
  const athenaQueries = "athena:GetQueryExecution,athena:GetQueryResults,athena:StartQueryExecution," +
    "athena:StopQueryExecution on arn:aws:athena:eu-west-1:*:workgroup/etl";
  const results = [
    "s3:GetBucketLocation,s3:ListBucket,s3:ListBucketMultipartUploads on arn:aws:s3:::athena-results",
    "s3:AbortMultipartUpload,s3:GetObject,s3:ListMultipartUploadParts,s3:PutObject on " +
    "arn:aws:s3:::athena-results/lakerun/*",
  ];
  const table = "arn:aws:glue:eu-west-1:*:catalog,arn:aws:glue:eu-west-1:*:database/lake," +
    "arn:aws:glue:eu-west-1:*:table/lake/orders";
  const list = 'on arn:aws:s3:::lake if {"StringLike":{"s3:prefix":["staging/orders","staging/orders/*"]}}';
  assert.deepEqual(
    grants(["create_table"]),
    [
      athenaQueries,
      `glue:CreateTable,glue:DeleteTable,glue:GetDatabase,glue:GetTable on ${table}`,
      `s3:GetObject on arn:aws:s3:::lake/staging/orders/*`,
      `s3:ListBucket ${list}`,
      ...results,
    ].sort(),
  );
  assert.deepEqual(
    grants(["add_partitions"]),
    [
      athenaQueries,
      `glue:BatchCreatePartition,glue:CreatePartition,glue:GetDatabase,glue:GetPartitions,glue:GetTable on ${table}`,
      `s3:ListBucket ${list}`,
      ...results,
    ].sort(),
  );
  assert.deepEqual(
    grants(["query"]),
    [
      athenaQueries,
      "glue:GetDatabase,glue:GetPartitions,glue:GetTable on arn:aws:glue:eu-west-1:*:catalog," +
      "arn:aws:glue:eu-west-1:*:database/lake,arn:aws:glue:eu-west-1:*:table/lake/*",
      "s3:AbortMultipartUpload,s3:DeleteObject,s3:GetObject,s3:PutObject on arn:aws:s3:::exports/orders.csv",
      // Athena reads the table's objects as the caller
      `s3:GetObject on arn:aws:s3:::lake/staging/orders/*`,
      `s3:ListBucket ${list}`,
      ...results,
    ].sort(),
  );
  // typed JSON reads no file; keep needs no DeleteTable; no output_location: the workgroup's, unknown here
  const typed = athena.params(z).parse({
    database: "lake",
    table: "events",
    location: "s3://lake/events",
    format: "json",
    columns: { id: "bigint" },
  });
  assert.deepEqual(
    athena.iam!(typed, { ...context, tasks: ["create_table"] }).map((s) => s.Action.join(",")),
    [
      "athena:GetQueryExecution,athena:GetQueryResults,athena:StartQueryExecution,athena:StopQueryExecution",
      "glue:CreateTable,glue:GetDatabase,glue:GetTable",
    ],
  );
});

Deno.test("create_table of parquet files without columns is refused with the routine (exit 2), not once it runs", async () => {
  await using dir = await tempDir();
  const params = { database: "lake", table: "events", location: "s3://lake/events/", format: "parquet" };
  const refused = await runRoutine(
    dir.path,
    onMoto,
    { events: { params, tasks: ["create_table"] } },
    "validate",
  );
  assert.equal(refused.code, 2, refused.output);
  assert.match(
    refused.output,
    /executors\.events\.params\.columns: create_table of parquet files needs columns \(\{name: type\}\): lakerun does not infer them from parquet/,
  );
  const given = { events: { params: { ...params, columns: { id: "bigint" } }, tasks: ["create_table"] } };
  assert.equal((await runRoutine(dir.path, onMoto, given, "validate")).code, 0);
  const partitions = {
    events: { params: { ...params, partitioned_by: { dt: "string" } }, tasks: ["add_partitions"] },
  };
  assert.equal((await runRoutine(dir.path, onMoto, partitions, "validate")).code, 0);
});

Deno.test("bad params are one-line errors naming the param and quoting the value", async () => {
  await using dir = await tempDir();
  const result = await runRoutine(dir.path, onMoto, {
    bad: {
      params: {
        database: "Lake-DB",
        location: "lake/staging",
        columns: { ID: "bigint", note: "text) LOCATION 's3://x/'" },
        query: "SELECT 1",
        query_file: "q.sql",
        results_to: "s3://lake/exports/",
      },
      tasks: ["query"],
    },
  }, "validate");
  assert.equal(result.code, 2, result.output);
  for (
    const expected of [
      /database.*must be a database name of lowercase letters, digits and _, not "Lake-DB"/,
      /location.*must be an s3:\/\/bucket\/folder\/ location, not "lake\/staging"/,
      /columns\.ID: column name "ID" must be lowercase letters, digits and _, not starting with a digit$/m,
      /columns\.note.*must be a Hive column type .*, not "text\) LOCATION 's3:\/\/x\/'"/,
      /query_file.*give query or query_file, not both/,
      /results_to.*must name an object key, not a folder: "s3:\/\/lake\/exports\/"/,
    ]
  ) assert.match(result.output, expected);
});

Deno.test("a credential Athena's error quotes from the query is ***", () => {
  const message = failureMessage({
    QueryExecutionId: "q-1",
    Status: {
      State: "FAILED",
      AthenaError: {
        ErrorCategory: 2,
        ErrorType: 1006,
        ErrorMessage:
          "line 1:8: mismatched input 'secret_access_key='AKIAIOSFODNN7EXAMPLE'' at s3://u:Hunter5SecretPW@b/x",
      },
    },
  } as any);
  assert.ok(!/AKIAIOSFODNN7EXAMPLE|Hunter5/.test(message), message);
  assert.match(message, /^Athena query q-1 FAILED: user error \(type 1006\): line 1:8: mismatched input/);
});

Deno.test({
  name: "stop moto",
  fn: () => moto.stop(),
  sanitizeOps: false,
  sanitizeResources: false,
});
