/**
 * PostgresExecutor against a real PostgreSQL 15 (a private cluster, tests/support/postgres.ts) and a real S3
 * server (Ceph radosgw, tests/support/s3_server.ts), end to end through the lakerun command line: every
 * statement runs for real. Covers the shared SQL blocks (lib/sql/) too: statement splitting, load plans.
 *
 * What is shown: `execute` runs in one transaction; `create_table` infers, quotes and honours `if_exists`;
 * `load` from a local folder and from S3 (CSV, JSON, parquet), append / replace / upsert, a bad row named
 * with file, line, column and value and nothing committed, a re-run of an interrupted run that never loads
 * twice; the password in no output and no journal; Ctrl-C/SIGTERM cancels the running statement; the step's
 * scope; the retail trade survey routine into PostgreSQL. The SIGKILL trials are in postgres_kill_test.ts.
 *
 * Run: deno test -A tests/postgres_test.ts (LAKERUN_TEST_S3_ENV / LAKERUN_TEST_PG_ENV reuse running servers)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parquetMetadata } from "hyparquet";
import { parquetWriteBuffer } from "hyparquet-writer";
import postgresExecutor from "../executors/postgres/mod.ts";
import { openS3Location } from "../lib/aws/s3/storage.ts";
import { loadPlan, upsertMethodProblem } from "../lib/sql/load_plan.ts";
import { splitStatements, transactionControlStatement } from "../lib/sql/statements.ts";
import { type CliResult, lakerun, lakerunCommand, ROOT, tempDir } from "./support/lakerun.ts";
import { startPostgres } from "./support/postgres.ts";
import { createTestBucket, startS3ServerForLakerun, stopS3ServerAfterTests } from "./support/s3_server.ts";
import { startFaultServer } from "./support/fault_server.ts";
import { buildZip, streamOf } from "./support/zip_fixtures.ts";

const pg = await startPostgres();
const s3Server = await startS3ServerForLakerun();
const s3 = { endpoint: s3Server.endpoint, region: s3Server.region };
const encoder = new TextEncoder();

/** The variable the routines name in password_env; only the lakerun child processes get it. */
const PASSWORD_ENV = "LAKERUN_TEST_PG_SECRET";
const childEnv = { [PASSWORD_ENV]: pg.password };

function pgTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
}

const connection = () => ({
  host: pg.host,
  port: pg.port,
  database: pg.database,
  user: pg.user,
  password_env: PASSWORD_ENV,
});

/** A routine with one PostgresExecutor step. */
function routine(params: Record<string, unknown>, tasks: string[], extra: Record<string, unknown> = {}) {
  return {
    routine_name: "pg-test",
    ...extra,
    executors: { PostgresExecutor: { params: { ...connection(), ...params }, tasks } },
  };
}

/** Every file under `dir`, recursively, as text. */
async function allText(dir: string): Promise<string> {
  let text = "";
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = join(path, entry.name);
      if (entry.isDirectory) await walk(full);
      else if (entry.isFile) text += `${full}\n${await Deno.readTextFile(full)}\n`;
    }
  };
  await walk(dir).catch(() => {});
  return text;
}

/**
 * Writes `doc` as routine.json in `dir` and runs `lakerun run` there; checks that the password appears in no
 * line it printed and no file of its state folder, whatever happened.
 */
async function runRoutine(
  dir: string,
  doc: unknown,
  env: Record<string, string> = childEnv,
  args: string[] = [],
): Promise<CliResult> {
  await Deno.writeTextFile(join(dir, "routine.json"), JSON.stringify(doc, null, 2));
  const result = await lakerun(["run", "routine.json", ...args], { cwd: dir, env });
  assertNoSecret(result, await allText(join(dir, ".lakerun")));
  return result;
}

function assertNoSecret(result: CliResult, state = ""): void {
  for (const [where, text] of [["stdout", result.stdout], ["stderr", result.stderr], ["state", state]]) {
    assert.ok(!text.includes(pg.password), `the password appears in ${where}:\n${text}`);
  }
}

function output(result: CliResult): string {
  return `${result.stdout}\n${result.stderr}`;
}

/** The rows of a table, one text per row, sorted: what the tests compare. */
async function rowsOf(table: string): Promise<string[]> {
  const text = await pg.psql(`SELECT replace(t::text, E'\\n', '⏎') FROM ${table} t ORDER BY 1`);
  return text.split("\n").filter((line) => line !== "");
}

/** Row count and md5 of the table's sorted rows. */
async function checksum(table: string): Promise<string> {
  return (await pg.psql(
    `SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '-') FROM ${table} t`,
  )).trim();
}

async function writeFiles(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  for (const [path, body] of Object.entries(files)) {
    await Deno.mkdir(join(dir, path, ".."), { recursive: true });
    await Deno.writeFile(join(dir, path), typeof body === "string" ? encoder.encode(body) : body);
  }
}

// ---------------------------------------------------------------------------------------------------------
// lib/sql, without a server

Deno.test("splitStatements finds the ';' that end statements, never those in quotes, dollar quotes or comments", () => {
  const script = [
    'CREATE TABLE "a;b" (x text); -- one; two',
    "INSERT INTO \"a;b\" VALUES ('it''s; fine'), (E'back\\'slash;'), ($$dollar; $$), ($x$ $$; $x$);",
    "/* block; /* nested; */ still comment; */ SELECT 1",
    ";;  -- empty statements are dropped",
  ].join("\n");
  const statements = splitStatements(script);
  assert.deepEqual(statements.map((s) => [s.index, s.line]), [[1, 1], [2, 2], [3, 3]]);
  assert.equal(statements[0].text, 'CREATE TABLE "a;b" (x text)');
  assert.equal(
    statements[1].text,
    "INSERT INTO \"a;b\" VALUES ('it''s; fine'), (E'back\\'slash;'), ($$dollar; $$), ($x$ $$; $x$)",
  );
  assert.match(statements[2].text, /^SELECT 1$/);
  // Redshift reads \' inside a plain literal as a quote
  assert.equal(splitStatements("SELECT 'a\\'; b'; SELECT 2", { backslashEscapes: true }).length, 2);
  assert.equal(splitStatements("SELECT 'a\\'; SELECT 2").length, 2); // PostgreSQL: a backslash is a character
  assert.throws(() => splitStatements("SELECT $$never closed"), /dollar quote \$\$ opened on line 1/);
  assert.throws(() => splitStatements("SELECT 1;\n/* open"), /block comment opened on line 2/);
  assert.equal(transactionControlStatement(splitStatements("SELECT 1; -- x\n commit"))?.index, 2);
  assert.equal(
    transactionControlStatement(splitStatements("SELECT 'commit'; SELECT begin_at FROM t")),
    undefined,
  );
});

Deno.test("loadPlan quotes every name it writes, for every mode and dialect", () => {
  const evil = 'x"; DROP TABLE t; --';
  for (const dialect of ["postgres", "redshift"] as const) {
    for (const mode of ["append", "replace", "upsert"] as const) {
      const plan = loadPlan({
        dialect,
        target: { schema: "s", table: evil },
        columns: ["id", evil],
        mode,
        upsertKeys: mode === "upsert" ? ["id"] : undefined,
        staging: "always",
      });
      for (const statement of [...plan.before, ...plan.after]) {
        // the name only ever appears quoted, its quote doubled
        const bare = statement.replace(/"(?:[^"]|"")*"/g, "NAME"); // what is outside quoted names
        assert.ok(!bare.includes("--") && !bare.includes("TABLE t") && !bare.includes('"'), statement);
      }
      if (dialect === "redshift") {
        assert.ok(!plan.after.some((s) => s.startsWith("TRUNCATE")), "TRUNCATE commits");
      }
    }
  }
  const merge = loadPlan({
    dialect: "redshift",
    target: { schema: "s", table: "t" },
    columns: ["id", "v"],
    mode: "upsert",
    upsertKeys: ["id"],
  });
  assert.deepEqual(merge.after.slice(2), [
    [
      'MERGE INTO "s"."t" USING "lakerun_staging" ON "s"."t"."id" = "lakerun_staging"."id"',
      'WHEN MATCHED THEN UPDATE SET "v" = "lakerun_staging"."v"',
      'WHEN NOT MATCHED THEN INSERT ("id", "v") VALUES ("lakerun_staging"."id", "lakerun_staging"."v")',
    ].join("\n"),
    'DROP TABLE "lakerun_staging"',
    'DROP TABLE "lakerun_upsert_checks"',
  ]);
  assert.throws(
    () =>
      loadPlan({
        dialect: "postgres",
        target: { schema: "s", table: "t" },
        columns: ["a"],
        mode: "upsert",
        upsertKeys: ["b"],
      }),
    /upsert key "b" is not one of the loaded columns/,
  );
  assert.equal(upsertMethodProblem(["a", "b"], [["b", "a"]]), undefined);
});

// ---------------------------------------------------------------------------------------------------------
// validation, scope, IAM

pgTest(
  "a url holding a password is refused at validation (exit 2), and the message never repeats it",
  async () => {
    await using dir = await tempDir();
    const secret = "Sup3rS3cretPw";
    for (
      const url of [
        `postgres://loader:${secret}@db.example.com/lake`,
        `postgres://loader@db.example.com/lake?password=${secret}`,
      ]
    ) {
      await Deno.writeTextFile(
        join(dir.path, "routine.json"),
        JSON.stringify({
          routine_name: "bad-url",
          executors: { PostgresExecutor: { params: { url, sql: "SELECT 1" }, tasks: ["execute"] } },
        }),
      );
      for (const command of ["validate", "plan", "run"]) {
        const result = await lakerun([command, "routine.json"], { cwd: dir.path });
        assert.equal(result.code, 2, output(result));
        assert.match(
          result.stderr,
          /params\.url: must not hold a password: .* \(the value is not shown: it may hold a secret\)$/m,
        );
        assert.ok(!output(result).includes(secret), output(result));
      }
    }
  },
);

pgTest(
  "plan shows the step's whole scope: host:port, password_env and pg's variables, the source, S3 when on S3",
  async () => {
    await using dir = await tempDir();
    await Deno.writeTextFile(
      join(dir.path, "routine.json"),
      JSON.stringify(routine({ table: "t", source: "staging" }, ["load"])),
    );
    const local = await lakerun(["plan", "--json", "routine.json"], { cwd: dir.path });
    assert.equal(local.code, 0, output(local));
    const scope = JSON.parse(local.stdout).steps[0].permissions;
    assert.deepEqual(scope.net, [`${pg.host}:${pg.port}`]);
    assert.deepEqual(scope.env, [PASSWORD_ENV, "PGBINARY", "PGOPTIONS", "PGREPLICATION"]);
    assert.ok(scope.read.includes(join(dir.path, "staging")), JSON.stringify(scope));
    assert.deepEqual(scope.write.length, 1); // its state folder only
    assert.deepEqual(scope.run, []);

    await Deno.writeTextFile(
      join(dir.path, "routine.json"),
      JSON.stringify(routine({ table: "t", source: "s3://lake/staging/sales" }, ["load"], { s3 })),
    );
    const onS3 = JSON.parse((await lakerun(["plan", "--json", "routine.json"], { cwd: dir.path })).stdout);
    const s3Scope = onS3.steps[0].permissions;
    assert.deepEqual(s3Scope.net, [`${pg.host}:${pg.port}`, new URL(s3.endpoint).host].sort());
    assert.ok(s3Scope.env.includes("AWS_*") && s3Scope.env.includes(PASSWORD_ENV));

    // the IAM statements: only for an s3:// source, only the reads
    const params = { ...connection(), table: "t", source: "s3://lake/staging/sales" };
    const iam = postgresExecutor.iam!(params as never, { cwd: dir.path, resolve: (p) => p, tasks: ["load"] });
    assert.deepEqual(iam, [
      {
        Effect: "Allow",
        Action: ["s3:ListBucket"],
        Resource: ["arn:aws:s3:::lake"],
        Condition: { StringLike: { "s3:prefix": ["staging/sales", "staging/sales/*"] } },
      },
      { Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::lake/staging/sales/*"] },
    ]);
    assert.deepEqual(
      postgresExecutor.iam!({ ...params, source: "staging" } as never, { cwd: "/", resolve: (p) => p }),
      [],
    );
  },
);

// ---------------------------------------------------------------------------------------------------------
// execute

pgTest(
  "execute runs every statement in one transaction: a failing statement leaves nothing behind",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS exec_t");
    const sql = [
      "CREATE TABLE exec_t (id int PRIMARY KEY, note text);",
      "INSERT INTO exec_t VALUES (1, 'it''s; one');",
      "",
      "INSERT INTO exec_t VALUES (1, 'duplicate');",
    ].join("\n");
    const failed = await runRoutine(dir.path, routine({ sql }, ["execute"]));
    assert.equal(failed.code, 1);
    assert.match(
      failed.stdout,
      /sql: statement 3 of 3 \(line 4, INSERT INTO exec_t VALUES \(1, 'duplicate…\) failed: duplicate key value violates unique constraint "exec_t_pkey"; Key \(id\)=\(1\) already exists\.; nothing was committed/,
    );
    assert.equal((await pg.psql("SELECT to_regclass('exec_t') IS NULL")).trim(), "t");

    await Deno.writeTextFile(join(dir.path, "script.sql"), sql.replace("(1, 'duplicate')", "(2, 'two')"));
    const ok = await runRoutine(dir.path, routine({ sql_file: "script.sql" }, ["execute"]));
    assert.equal(ok.code, 0, output(ok));
    assert.match(ok.stdout, /3 statements committed in one transaction/);
    assert.deepEqual(await rowsOf("exec_t"), ['(1,"it\'s; one")', "(2,two)"]);

    // a COMMIT in the script: refused with the routine (sql), or once the file is read (sql_file)
    const commit = await runRoutine(
      dir.path,
      routine({ sql: "DELETE FROM exec_t; COMMIT; DROP TABLE exec_t" }, ["execute"]),
    );
    assert.equal(commit.code, 2, output(commit));
    assert.match(
      commit.stderr,
      /params\.sql: statement 2 \(line 1\) controls the transaction itself \(COMMIT\); execute runs every/,
    );
    await Deno.writeTextFile(join(dir.path, "commit.sql"), "DELETE FROM exec_t;\nCOMMIT;\nDROP TABLE exec_t");
    const commitFile = await runRoutine(dir.path, routine({ sql_file: "commit.sql" }, ["execute"]));
    assert.equal(commitFile.code, 1, output(commitFile));
    assert.match(
      commitFile.stdout,
      /commit\.sql: statement 2 \(line 2\) controls the transaction itself \(COMMIT\)/,
    );
    assert.equal((await rowsOf("exec_t")).length, 2);

    // a template in the file is not resolved there: refused, not sent as written (a DELETE matching nothing)
    await Deno.writeTextFile(
      join(dir.path, "daily.sql"),
      "-- daily\nDELETE FROM exec_t WHERE v = '${{ run.date }}';\nDROP TABLE exec_t;\n",
    );
    const templated = await runRoutine(dir.path, routine({ sql_file: "daily.sql" }, ["execute"]));
    assert.equal(templated.code, 1, output(templated));
    assert.match(
      templated.stdout,
      /sql_file "daily\.sql" line 2 holds the template "\$\{\{ run\.date \}\}": lakerun resolves templates in a routine's params, not inside the files they name/,
    );
    assert.equal((await rowsOf("exec_t")).length, 2, "nothing ran");
  },
);

// ---------------------------------------------------------------------------------------------------------
// create_table

pgTest(
  "create_table infers the columns, quotes every name, and honours if_exists keep / replace / fail",
  async () => {
    await using dir = await tempDir();
    await pg.psql('DROP SCHEMA IF EXISTS "odd ""schema""" CASCADE; CREATE SCHEMA "odd ""schema"""');
    const header = 'Zip,Amount,Paid,Day,"x""; DROP TABLE t; --"';
    await writeFiles(dir.path, {
      "staging/a.csv": `${header}\n00123,1.5,true,2020-02-29,a\n02134,2,false,2021-03-01,b\n`,
    });
    const table = '"odd ""schema""".Sales';
    const created = await runRoutine(dir.path, routine({ table, source: "staging" }, ["create_table"]));
    assert.equal(created.code, 0, output(created));
    assert.match(created.stdout, /column zip: values like "00123" have leading zeros/);
    const columns = await pg.psql(
      `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
     FROM pg_attribute WHERE attrelid = '"odd ""schema"""."sales"'::regclass AND attnum > 0`,
    );
    assert.equal(
      columns.trim(),
      "zip text, amount double precision, paid boolean, day date, x_drop_table_t text",
    );

    const kept = await runRoutine(dir.path, routine({ table, source: "staging" }, ["create_table"]));
    assert.equal(kept.code, 0, output(kept));
    assert.match(kept.stdout, /already exists with these columns; kept/);

    await writeFiles(dir.path, { "staging/a.csv": "zip,amount,extra\n1,x,3\n" });
    const drift = await runRoutine(dir.path, routine({ table, source: "staging" }, ["create_table"]));
    assert.equal(drift.code, 1);
    assert.match(
      drift.stdout,
      /exists with other columns than the files \(if_exists: keep\): (?=.*column `amount`: table has double precision, files have string)(?=.*files have a column `extra` the table lacks)(?=.*table has a column `paid` the files lack)/,
    );
    // a text column holds today's whole numbers: no drift for it
    assert.doesNotMatch(drift.stdout, /column `zip`/);
    const failed = await runRoutine(
      dir.path,
      routine({ table, source: "staging", if_exists: "fail" }, ["create_table"]),
    );
    assert.match(failed.stdout, /already exists \(if_exists: fail\)/);
    const replaced = await runRoutine(
      dir.path,
      routine({ table, columns: [{ name: "Weird Name", type: "numeric(10,2)" }], if_exists: "replace" }, [
        "create_table",
      ]),
    );
    assert.equal(replaced.code, 0, output(replaced));
    assert.equal(
      (await pg.psql(
        `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '"odd ""schema"""."sales"'::regclass AND attname = 'Weird Name'`,
      )).trim(),
      "numeric(10,2)",
    );
  },
);

pgTest(
  "create_table declares PostgreSQL's own type names, as \\d shows them too; a bad type is refused at its column",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS pg_types, pg_types_again");
    const columns = {
      id: "int8",
      val: "double precision",
      doc: "jsonb",
      uid: "uuid",
      ratio: "float8",
      label: "varchar",
      code: "char(3)",
      at: "timestamptz(3)",
      day: "timestamp without time zone",
      amount: "decimal(12,2)",
    };
    const shown = async (table: string) =>
      (await pg.psql(
        `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
         FROM pg_attribute WHERE attrelid = '${table}'::regclass AND attnum > 0`,
      )).trim();
    const created = await runRoutine(dir.path, routine({ table: "pg_types", columns }, ["create_table"]));
    assert.equal(created.code, 0, output(created));
    const described = await shown("pg_types");
    assert.equal(
      described,
      "id bigint, val double precision, doc jsonb, uid uuid, ratio double precision, label character varying, " +
        "code character(3), at timestamp(3) with time zone, day timestamp without time zone, amount numeric(12,2)",
    );
    // the same columns again: no drift under the names the server shows
    const kept = await runRoutine(dir.path, routine({ table: "pg_types", columns }, ["create_table"]));
    assert.equal(kept.code, 0, output(kept));
    assert.match(kept.stdout, /already exists with these columns; kept/);
    // the columns as the server shows them declare the same table
    const fromShown = Object.fromEntries(
      described.split(", ").map((column) => {
        const space = column.indexOf(" ");
        return [column.slice(0, space), column.slice(space + 1)];
      }),
    );
    const again = await runRoutine(
      dir.path,
      routine({ table: "pg_types_again", columns: fromShown }, ["create_table"]),
    );
    assert.equal(again.code, 0, output(again));
    assert.equal(await shown("pg_types_again"), described);

    // a type PostgreSQL lacks, or SQL after one, is refused before anything runs, naming its column
    for (
      const [bad, path] of [
        [{ id: "bigint", val: "double precision); DROP TABLE pg_types; --" }, "columns.val"],
        [[{ name: "id", type: "bigint" }, { name: "val", type: "super" }], "columns\\[1\\]\\.type"],
      ] as const
    ) {
      const refused = await runRoutine(
        dir.path,
        routine({ table: "pg_types", columns: bad }, ["create_table"]),
      );
      assert.equal(refused.code, 2, output(refused));
      assert.match(
        refused.stderr,
        new RegExp(`params\\.${path}: ".*" is not a column type lakerun declares in postgres \\(`),
      );
    }
    assert.equal(await shown("pg_types"), described);
  },
);

pgTest(
  "create_table logs no Athena advice: COPY reads quoted delimiters, line breaks and backslashes as data",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS quoted_notes");
    await writeFiles(dir.path, {
      "staging/a.csv": 'id,note,path\n1,"east, far",C:\\temp\n2,"multi\nline",D:\\x\n',
    });
    const result = await runRoutine(
      dir.path,
      routine({ table: "quoted_notes", source: "staging" }, ["create_table", "load"]),
    );
    assert.equal(result.code, 0, output(result));
    assert.match(result.stdout, /inferring the columns/);
    assert.doesNotMatch(output(result), /Athena|SerDe|Hive|line by line/);
    // (a row's text doubles the backslash)
    assert.deepEqual(await rowsOf("quoted_notes"), [
      '(1,"east, far","C:\\\\temp")',
      '(2,"multi⏎line","D:\\\\x")',
    ]);
  },
);

// ---------------------------------------------------------------------------------------------------------
// load

const SALES_A = "id,region,amount\n1,north,10.5\n2,south,20\n";
const SALES_B = 'amount,id,region\n30,3,"east, far"\n40,4,"multi\nline"\n';

pgTest(
  "load appends every file in one COPY each, mapping headers to columns by name, in one transaction",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS sales_append");
    await writeFiles(dir.path, { "staging/2024/a.csv": SALES_A, "staging/b.csv": SALES_B });
    const first = await runRoutine(
      dir.path,
      routine({
        table: "sales_append",
        source: "staging",
        columns: [
          { name: "id", type: "bigint" },
          { name: "region", type: "string" },
          { name: "amount", type: "double" },
        ],
      }, ["load"]),
    );
    assert.equal(first.code, 0, output(first));
    assert.match(first.stdout, /created public\.sales_append \(3 columns\) in the load's transaction/);
    assert.match(first.stdout, /append: 4 rows from 2 files \(\d+ B\) committed into public\.sales_append/);
    assert.match(first.stdout, /output rows = 4/); // for later steps: \${{ steps.PostgresExecutor.outputs.rows }}
    assert.deepEqual(await rowsOf("sales_append"), [
      "(1,north,10.5)",
      "(2,south,20)",
      '(3,"east, far",30)',
      '(4,"multi⏎line",40)',
    ]);
  },
);

pgTest(
  "a table create_table made from headers whose names collide (a b / a_b, dup / dup) loads from the same files",
  async () => {
    await using dir = await tempDir();
    for (const table of ["collide_space", "collide_dup"]) await pg.psql(`DROP TABLE IF EXISTS ${table}`);
    await writeFiles(dir.path, {
      "space/a.csv": "a b,a_b\n1,2\n",
      "dup/a.csv": "dup,dup\n3,4\n",
    });
    for (
      const [table, source, columns] of [["collide_space", "space", "a_b_2, a_b"], [
        "collide_dup",
        "dup",
        "dup, dup_2",
      ]]
    ) {
      const result = await runRoutine(dir.path, routine({ table, source }, ["create_table", "load"]));
      assert.equal(result.code, 0, output(result));
      assert.equal(
        (await pg.psql(
          `SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = '${table}'`,
        )).trim(),
        columns,
      );
      assert.deepEqual(await rowsOf(table), [source === "space" ? "(1,2)" : "(3,4)"]);
    }
  },
);

pgTest(
  "headers differing only by case fill the same columns in every file, whatever their order (CSV and JSON)",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS case_csv, case_json, case_json_late");
    const columnsOf = async (table: string) =>
      (await pg.psql(
        `SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = '${table}'`,
      )).trim();
    // the table from 1.csv, then 1.csv and 2.csv (the same headers in another order) loaded
    await writeFiles(dir.path, { "csv/1.csv": "key,id,ID,Name\nk1,lower1,UPPER1,n1\n" });
    const created = await runRoutine(
      dir.path,
      routine({ table: "case_csv", source: "csv" }, ["create_table"]),
    );
    assert.equal(created.code, 0, output(created));
    assert.equal(await columnsOf("case_csv"), "key, id, id_2, name");
    await writeFiles(dir.path, { "csv/2.csv": "ID,Name,key,id\nUPPER2,n2,k2,lower2\n" });
    const csv = await runRoutine(dir.path, routine({ table: "case_csv", source: "csv" }, ["load"]));
    assert.equal(csv.code, 0, output(csv));
    assert.deepEqual(await rowsOf("case_csv"), ["(k1,lower1,UPPER1,n1)", "(k2,lower2,UPPER2,n2)"]);

    // JSON keys map together too: "Code" is code_2 beside "code", on every line, in any order
    await writeFiles(dir.path, {
      "json/a.json":
        '{"code":"lower1","Code":"UPPER1"}\n{"Code":"UPPER2","code":"lower2"}\n{"code":"lower3"}\n',
    });
    const json = await runRoutine(
      dir.path,
      routine({ table: "case_json", source: "json", format: "json" }, ["create_table", "load"]),
    );
    assert.equal(json.code, 0, output(json));
    assert.equal(await columnsOf("case_json"), "code, code_2");
    assert.deepEqual(await rowsOf("case_json"), ["(lower1,UPPER1)", "(lower2,UPPER2)", "(lower3,)"]);

    // a key whose column an earlier line gave another key is refused, naming both, not loaded elsewhere
    await pg.psql("CREATE TABLE case_json_late (code text, code_2 text)");
    await writeFiles(dir.path, { "late/a.json": '{"Code":"UPPER1"}\n{"code":"lower2","Code":"UPPER2"}\n' });
    const late = await runRoutine(
      dir.path,
      routine({ table: "case_json_late", source: "late", format: "json" }, ["load"]),
    );
    assert.equal(late.code, 1, output(late));
    assert.match(
      late.stdout,
      /a\.json line 2 has the key "code", which fills column code, filled on the lines before from the key "Code" \(a key that is a column's name takes it first\); nothing was committed/,
    );
    assert.deepEqual(await rowsOf("case_json_late"), []);
  },
);

pgTest(
  "an empty header field's generated name yields to a real header of that name (col_2 keeps its values)",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS empty_header");
    await writeFiles(dir.path, { "staging/a.csv": "id,,col_2\n1,blank,real\n" });
    const result = await runRoutine(
      dir.path,
      routine({ table: "empty_header", source: "staging" }, ["create_table", "load"]),
    );
    assert.equal(result.code, 0, output(result));
    assert.equal(
      (await pg.psql(
        "SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'empty_header'",
      )).trim(),
      "id, col_2_2, col_2",
    );
    assert.equal((await pg.psql("SELECT col_2 || '/' || col_2_2 FROM empty_header")).trim(), "real/blank");
  },
);

pgTest(
  "a value that does not fit fails the load with file, line, column and value, and nothing is committed",
  async () => {
    await using dir = await tempDir();
    await pg.psql(
      "DROP TABLE IF EXISTS sales_bad; CREATE TABLE sales_bad (id bigint, region varchar(5), amount numeric)",
    );
    await pg.psql("INSERT INTO sales_bad VALUES (0, 'old', 0)");
    const before = await checksum("sales_bad");
    await writeFiles(dir.path, {
      "staging/a.csv": SALES_A, // good: copied first, then rolled back
      "staging/b.csv": "id,region,amount\n5,west,1\n6,west,\n7,west,12,5\n",
    });
    const extra = await runRoutine(dir.path, routine({ table: "sales_bad", source: "staging" }, ["load"]));
    assert.equal(extra.code, 1);
    assert.match(
      extra.stdout,
      /load failed: b\.csv line 4: "7,west,12,5": extra data after last expected column \(loading public\.sales_bad\); nothing was committed/,
    );
    await writeFiles(dir.path, { "staging/b.csv": "id,region,amount\n5,west,1\n6,south-west,2\n" });
    const long = await runRoutine(dir.path, routine({ table: "sales_bad", source: "staging" }, ["load"]));
    assert.match(
      long.stdout,
      /b\.csv line 3, column region: "south-west": value too long for type character varying\(5\)/,
    );
    await writeFiles(dir.path, { "staging/b.csv": "id,region,amount\n5,west,1\n6,west,12.5x\n" });
    const type = await runRoutine(
      dir.path,
      routine({ table: "sales_bad", source: "staging", mode: "replace" }, ["load"]),
    );
    assert.match(
      type.stdout,
      /b\.csv line 3, column amount: "12\.5x": invalid input syntax for type numeric: "12\.5x"/,
    );
    await writeFiles(dir.path, { "staging/b.csv": "id,region,nope\n5,west,1\n" });
    const unknown = await runRoutine(dir.path, routine({ table: "sales_bad", source: "staging" }, ["load"]));
    assert.match(
      unknown.stdout,
      /b\.csv has a column "nope" that public\.sales_bad lacks \(its columns: id, region, amount\)/,
    );
    assert.equal(await checksum("sales_bad"), before);

    // JSON and parquet name their own lines and rows
    await Deno.remove(join(dir.path, "staging"), { recursive: true });
    await writeFiles(dir.path, {
      "staging/a.json": '{"id": 1, "region": "n"}\n\n{"id": 2, "region": "li\\nne"}\n{"id": "x"}\n',
    });
    const json = await runRoutine(
      dir.path,
      routine({ table: "sales_bad", source: "staging", format: "json" }, ["load"]),
    );
    assert.match(json.stdout, /a\.json line 4, column id: "x": invalid input syntax for type bigint: "x"/);
    assert.equal(await checksum("sales_bad"), before);
  },
);

pgTest(
  "a bad value in a CSV record spanning lines is named at the line where the record starts",
  async () => {
    await using dir = await tempDir();
    await pg.psql(
      "DROP TABLE IF EXISTS multi_bad; CREATE TABLE multi_bad (id bigint, note text, amount numeric)",
    );
    await writeFiles(dir.path, {
      "staging/a.csv": 'id,note,amount\n1,"one\nline",1\n2,"two\r\nlines ""quoted""\nand more",x\n3,c,3\n',
      "staging/b.csv": 'id,note,amount\r\n1,"a\r\nb",1\r\n2,b,y\r\n',
    });
    const result = await runRoutine(dir.path, routine({ table: "multi_bad", source: "staging" }, ["load"]));
    assert.equal(result.code, 1, output(result));
    // record 2 holds lines 4–6 of a.csv
    assert.match(result.stdout, /a\.csv line 4, column amount: "x": invalid input syntax for type numeric/);
    await Deno.remove(join(dir.path, "staging/a.csv"));
    const crlf = await runRoutine(dir.path, routine({ table: "multi_bad", source: "staging" }, ["load"]));
    assert.match(crlf.stdout, /b\.csv line 4, column amount: "y": invalid input syntax for type numeric/);
    assert.deepEqual(await rowsOf("multi_bad"), []);
  },
);

pgTest(
  'a quoted empty field "" (csv.QUOTE_ALL, pandas quoting=ALL) loads NULL where inference read it as empty; text keeps ""',
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS quoted_empty, quoted_empty_json");
    // what the QA report ran: create_table infers a bigint, then load must not refuse ""
    await writeFiles(dir.path, { "staging/h.csv": 'a,b\n1,2\n"",3\n' });
    const small = await runRoutine(
      dir.path,
      routine({ table: "quoted_empty", source: "staging" }, ["create_table", "load"]),
    );
    assert.equal(small.code, 0, output(small));
    assert.deepEqual(await rowsOf("quoted_empty"), ["(,3)", "(1,2)"]);

    // every inferred type, quoted and unquoted empty fields, and a text column where "" stays the empty string
    await pg.psql("DROP TABLE quoted_empty");
    await writeFiles(dir.path, {
      "staging/h.csv": [
        '"id","n","x","ok","day","at","note"',
        '"1","2","2.5","true","2020-01-01","2020-01-01 10:00:00","a"',
        '"2","","","","","",""',
        "3,,,,,,",
        "",
      ].join("\n"),
    });
    const all = await runRoutine(
      dir.path,
      routine({ table: "quoted_empty", source: "staging" }, ["create_table", "load"]),
    );
    assert.equal(all.code, 0, output(all));
    assert.equal(
      (await pg.psql(
        `SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = 'quoted_empty'::regclass AND attnum > 0`,
      )).trim(),
      "bigint, bigint, double precision, boolean, date, timestamp without time zone, text",
    );
    assert.deepEqual(
      (await pg.psql(
        "SELECT id, n IS NULL, x IS NULL, ok IS NULL, day IS NULL, at IS NULL, coalesce(note, 'NULL') FROM quoted_empty ORDER BY id",
      )).trim().split("\n"),
      ["1|f|f|f|f|f|a", "2|t|t|t|t|t|", "3|t|t|t|t|t|NULL"],
    );

    // JSON: inference reads "" as empty too, so it loads NULL in a bigint column and "" in a text one
    await Deno.remove(join(dir.path, "staging"), { recursive: true });
    await writeFiles(dir.path, { "staging/a.json": '{"id": 1, "note": "a"}\n{"id": "", "note": ""}\n' });
    const json = await runRoutine(
      dir.path,
      routine({ table: "quoted_empty_json", source: "staging", format: "json" }, ["create_table", "load"]),
    );
    assert.equal(json.code, 0, output(json));
    assert.equal(
      (await pg.psql(
        "SELECT coalesce(id::text, 'NULL') || '|' || coalesce(note, 'NULL') FROM quoted_empty_json ORDER BY id",
      )).trim(),
      "1|a\nNULL|",
    );
  },
);

pgTest(
  "a line holding only \\. (COPY's end-of-data marker) loads as the value it is, and every line after it loads",
  async () => {
    await using dir = await tempDir();
    await pg.psql(
      "DROP TABLE IF EXISTS marker_lines; CREATE TABLE marker_lines (n serial, path varchar(12))",
    );
    await writeFiles(dir.path, {
      "staging/a.csv": "path\na\n\\.\nb\nc\n", // the QA report's file
      // CRLF; inside a quoted field (data for COPY too); quoted; the last line, without a line break
      "staging/b.csv": 'path\r\n\\.\r\n"x\n\\.\ny"\r\n"\\."\r\nz\r\n\\.',
    });
    const result = await runRoutine(
      dir.path,
      routine({ table: "marker_lines", source: "staging" }, ["load"]),
    );
    assert.equal(result.code, 0, output(result));
    assert.match(result.stdout, /append: 9 rows from 2 files/);
    assert.deepEqual(
      (await pg.psql("SELECT replace(path, E'\\n', '⏎') FROM marker_lines ORDER BY n")).trim().split("\n"),
      ["a", "\\.", "b", "c", "\\.", "x⏎\\.⏎y", "\\.", "z", "\\."],
    );

    // COPY's line numbers are still the file's
    await Deno.remove(join(dir.path, "staging"), { recursive: true });
    await writeFiles(dir.path, { "staging/c.csv": 'path\na\n\\.\n"multi\nline"\n\\.\nmuch too long\n' });
    const before = await checksum("marker_lines");
    const bad = await runRoutine(dir.path, routine({ table: "marker_lines", source: "staging" }, ["load"]));
    assert.equal(bad.code, 1, output(bad));
    assert.match(
      bad.stdout,
      /load failed: c\.csv line 7, column path: "much too long": value too long for type character varying\(12\) \(loading public\.marker_lines\); nothing was committed/,
    );
    assert.equal(await checksum("marker_lines"), before);
  },
);

pgTest(
  "header: false: a UTF-8 byte order mark is not loaded into the first value (given or inferred columns)",
  async () => {
    await using dir = await tempDir();
    await pg.psql(
      "DROP TABLE IF EXISTS bom_given, bom_inferred; CREATE TABLE bom_given (code text, note text)",
    );
    const bom = new Uint8Array([0xef, 0xbb, 0xbf]);
    await writeFiles(dir.path, {
      "staging/a.csv": new Uint8Array([...bom, ...encoder.encode("A1,x\r\nB2,y\r\n")]),
    });
    for (const [table, first] of [["bom_given", "code"], ["bom_inferred", "col_1"]]) {
      const result = await runRoutine(
        dir.path,
        routine({ table, source: "staging", header: false }, ["load"]),
      );
      assert.equal(result.code, 0, output(result));
      assert.equal(
        (await pg.psql(
          `SELECT string_agg(encode(convert_to(${first}, 'UTF8'), 'hex'), ' ' ORDER BY ${first}) FROM ${table}`,
        )).trim(),
        "4131 4232",
      );
    }
  },
);

pgTest(
  "a decimal a double would round (12345678901234567.25) is inferred text and loads as written, from CSV and JSON",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS wide_csv, wide_json");
    await writeFiles(dir.path, {
      "csv/a.csv": "wide,computed\n12345678901234567.25,0.30000000000000004\n1.5,0.1\n",
      "json/a.json":
        '{"wide": 12345678901234567.25, "computed": 0.30000000000000004}\n{"wide": 1.5, "computed": 0.1}\n',
    });
    for (const format of ["csv", "json"]) {
      const table = `wide_${format}`;
      const result = await runRoutine(dir.path, routine({ table, source: format, format }, ["load"]));
      assert.equal(result.code, 0, output(result));
      assert.equal(
        (await pg.psql(
          `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
           FROM pg_attribute WHERE attrelid = '${table}'::regclass AND attnum > 0`,
        )).trim(),
        "wide text, computed double precision",
      );
      assert.deepEqual(
        (await pg.psql(`SELECT wide || '|' || computed FROM ${table} ORDER BY computed`)).trim().split("\n"),
        ["1.5|0.1", "12345678901234567.25|0.30000000000000004"],
      );
      assert.match(
        result.stdout,
        /column wide: a double would not keep "12345678901234567\.25" as written \(it would read back as 12345678901234568\); kept as a string/,
      );
    }
  },
);

pgTest(
  "nested JSON values are stored as written: every digit of their numbers (text and jsonb columns)",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS nested_json, nested_jsonb");
    const nested = '{"k":9007199254740993,"f":1.10,"y":0.12345678901234567890123}';
    await writeFiles(dir.path, { "json/a.jsonl": `{"id":1,"n":${nested},"arr":[2.50,-0.0]}\n` });
    const inferred = await runRoutine(
      dir.path,
      routine({ table: "nested_json", source: "json", format: "json" }, ["load"]),
    );
    assert.equal(inferred.code, 0, output(inferred));
    assert.equal(
      (await pg.psql("SELECT n || ' ' || arr FROM nested_json")).trim(),
      `${nested} [2.50,-0.0]`,
    );
    // a string with half a surrogate pair: refused, not stored as U+FFFD
    await writeFiles(dir.path, { "lone/b.jsonl": '{"id":2,"s":"x\\ud800y"}\n' });
    const lone = await runRoutine(
      dir.path,
      routine({ table: "lone_json", source: "lone", format: "json" }, ["load"]),
    );
    assert.equal(lone.code, 1, output(lone));
    assert.match(lone.stdout, /b\.jsonl line 1, column s: "x\\ud800y": holds a lone surrogate/);
    const columns = [{ name: "id", type: "bigint" }, { name: "n", type: "jsonb" }, {
      name: "arr",
      type: "jsonb",
    }];
    const typed = await runRoutine(
      dir.path,
      routine({ table: "nested_jsonb", source: "json", format: "json", columns }, ["load"]),
    );
    assert.equal(typed.code, 0, output(typed));
    assert.equal(
      (await pg.psql("SELECT (n->>'k') || ' ' || (n->>'f') || ' ' || (arr->>0) FROM nested_jsonb")).trim(),
      "9007199254740993 1.10 2.50",
    );
  },
);

pgTest(
  "parquet byte arrays without an annotation: UTF-8 text as text, other bytes exactly into bytea (never U+FFFD)",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS raw_bytes");
    const parquet = new Uint8Array(parquetWriteBuffer({
      columnData: [
        { name: "id", data: [1n, 2n, 3n], type: "INT64" },
        {
          name: "b",
          data: [
            new TextEncoder().encode('é "q\\'),
            new Uint8Array([0x01, 0xff, 0xfe]),
            new Uint8Array([0x61, 0]),
          ],
          type: "BYTE_ARRAY",
        },
      ],
    }));
    await writeFiles(dir.path, { "raw/a.parquet": parquet });
    const columns = [{ name: "id", type: "bigint" }, { name: "b", type: "bytea" }];
    const result = await runRoutine(
      dir.path,
      routine({ table: "raw_bytes", source: "raw", format: "parquet", columns }, ["load"]),
    );
    assert.equal(result.code, 0, output(result));
    assert.equal(
      (await pg.psql("SELECT string_agg(encode(b, 'hex'), ',' ORDER BY id) FROM raw_bytes")).trim(),
      "c3a92022715c,01fffe,6100", // a backslash too: the bytes, not bytea's escape syntax
    );
    // a text column: UTF-8 as its text, other bytes as \x and hex (never U+FFFD in place of them)
    await pg.psql("DROP TABLE IF EXISTS raw_text");
    const text = await runRoutine(
      dir.path,
      routine({ table: "raw_text", source: "raw", format: "parquet" }, ["load"]),
    );
    assert.equal(text.code, 0, output(text));
    assert.equal(
      (await pg.psql("SELECT string_agg(b, '|' ORDER BY id) FROM raw_text")).trim(),
      'é "q\\|\\x01fffe|\\x6100',
    );
  },
);

pgTest(
  "parquet: a file whose field has another type than the first file's, in a table made from that one, is refused",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS pq_types");
    const file = (type: "INT64" | "STRING", data: unknown[]) =>
      new Uint8Array(parquetWriteBuffer({ columnData: [{ name: "id", data, type }] }));
    await writeFiles(dir.path, {
      "pq/a.parquet": file("INT64", [1n, 2n]),
      "pq/b.parquet": file("STRING", ["003", "4"]),
    });
    const result = await runRoutine(
      dir.path,
      routine({ table: "pq_types", source: "pq", format: "parquet" }, ["create_table", "load"]),
    );
    assert.equal(result.code, 1, output(result));
    assert.match(
      result.stdout,
      /b\.parquet: field "id" is string here but bigint in the table lakerun made from the first file \(public\.pq_types\.id\); give columns/,
    );
    // with the type given, every value as written
    const given = await runRoutine(
      dir.path,
      routine({
        table: "pq_types",
        source: "pq",
        format: "parquet",
        if_exists: "replace",
        columns: [{ name: "id", type: "text" }],
      }, ["create_table", "load"]),
    );
    assert.equal(given.code, 0, output(given));
    assert.deepEqual(await rowsOf("pq_types"), ["(003)", "(1)", "(2)", "(4)"]);
  },
);

pgTest(
  "NaN and the infinities past the inference sample load into an inferred double column, as PostgreSQL stores them",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS measures");
    const rows = Array.from({ length: 2_000 }, (_, i) => `${i},${i}.5`).join("\n");
    await writeFiles(dir.path, {
      "staging/a.csv": `id,value\n${rows}\n2000,nan\n2001,-inf\n2002,Infinity\n2003,NaN\n`,
    });
    const result = await runRoutine(dir.path, routine({ table: "measures", source: "staging" }, ["load"]));
    assert.equal(result.code, 0, output(result));
    assert.equal(
      (await pg.psql("SELECT string_agg(value::text, ',' ORDER BY id) FROM measures WHERE id >= 2000"))
        .trim(),
      "NaN,-Infinity,Infinity,NaN",
    );
    assert.equal(
      (await pg.psql(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'measures' AND column_name = 'value'",
      )).trim(),
      "double precision",
    );
  },
);

pgTest(
  "a value the inference sample would not have typed so (02134 after 10,000 zip codes) fails the load it created the table in",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS zips, zips_json");
    const gone = async (table: string) =>
      (await pg.psql(`SELECT to_regclass('${table}') IS NULL`)).trim() === "t";
    const zips = Array.from({ length: 10_000 }, (_, i) => `${10_000 + i},Springfield,true`).join("\n");
    // the QA report's file (past the sample: 64 KiB, at most 1,000 rows), after a good file
    await writeFiles(dir.path, {
      "staging/a.csv": "zip,city,ok\n11111,Boston,true\n",
      "staging/b.csv": `zip,city,ok\n${zips}\n02134,Boston,true\n`,
    });
    const load = () => runRoutine(dir.path, routine({ table: "zips", source: "staging" }, ["load"]));
    const refused = (column: string, type: string) =>
      `not a ${type} as column inference reads one \\(the type of ${column} came from a sample of the files\\); ` +
      `to load it, give columns, with ${column} as text \\(loading public\\.zips\\); nothing was committed`;
    const zip = await load();
    assert.equal(zip.code, 1, output(zip));
    assert.match(
      zip.stdout,
      new RegExp(`load failed: b\\.csv line 10002, column zip: "02134": ${refused("zip", "bigint")}`),
    );
    assert.ok(await gone("zips")); // created in the load's transaction, so rolled back with it

    // PostgreSQL's input would take each of these too; quoted, CRLF, after a multi-line record, last line;
    // in a fourth file, which inference does not sample
    await writeFiles(dir.path, {
      "staging/b.csv": "zip,city,ok\n22222,Chicago,false\n",
      "staging/c.csv": "zip,city,ok\n33333,,\n",
    });
    for (
      const [body, where] of [
        ["zip,city,ok\n2,x,true\n 5,x,false\n", 'line 3, column zip: " 5"'],
        ['zip,city,ok\r\n"3",x,"true"\r\n"04",x,true\r\n', 'line 3, column zip: "04"'],
        ['zip,city,ok\n4,"multi\nline",true\n5,x,1\n', 'line 4, column ok: "1"'],
        ["zip,city,ok\n6,x,TRUE\n7,x,yes", 'line 3, column ok: "yes"'],
      ]
    ) {
      await writeFiles(dir.path, { "staging/d.csv": body });
      const result = await load();
      assert.equal(result.code, 1, output(result));
      const type = where.includes("column ok") ? "boolean" : "bigint";
      const column = where.includes("column ok") ? "ok" : "zip";
      assert.match(result.stdout, new RegExp(`d\\.csv ${where}: ${refused(column, type)}`));
      assert.ok(await gone("zips"));
    }

    // create_table infers, load holds the files to it in the same step; given columns decide for themselves
    await Deno.remove(join(dir.path, "staging"), { recursive: true });
    await writeFiles(dir.path, {
      "staging/a.csv": "zip,city,ok\n11111,Boston,true\n",
      "staging/b.csv": `zip,city,ok\n${zips}\n02134,Boston,true\n`,
    });
    const twoTasks = await runRoutine(
      dir.path,
      routine({ table: "zips", source: "staging" }, ["create_table", "load"]),
    );
    assert.equal(twoTasks.code, 1, output(twoTasks));
    assert.match(
      twoTasks.stdout,
      /b\.csv line 10002, column zip: "02134": not a bigint as column inference reads one/,
    );
    assert.equal((await pg.psql("SELECT count(*) FROM zips")).trim(), "0");
    await pg.psql("DROP TABLE zips");
    const asText = await runRoutine(
      dir.path,
      routine({ table: "zips", source: "staging", columns: { zip: "text", city: "text", ok: "boolean" } }, [
        "load",
      ]),
    );
    assert.equal(asText.code, 0, output(asText));
    assert.equal(
      (await pg.psql("SELECT zip FROM zips WHERE city = 'Boston' ORDER BY zip")).trim(),
      "02134\n11111",
    );

    // JSON: a string where inference read numbers
    await Deno.remove(join(dir.path, "staging"), { recursive: true });
    await writeFiles(dir.path, {
      "staging/a.json": '{"n": 1, "day": "2020-01-01"}\n',
      "staging/b.json": '{"n": 2}\n',
      "staging/c.json": '{"n": null}\n',
      "staging/d.json": '{"n": 4}\n{"n": "5", "day": "2020-01-02"}\n',
    });
    const json = await runRoutine(
      dir.path,
      routine({ table: "zips_json", source: "staging", format: "json" }, ["load"]),
    );
    assert.equal(json.code, 1, output(json));
    assert.match(
      json.stdout,
      /d\.json line 2, column n: "5": not a bigint as column inference reads one \(the type of n came from a sample of the files\); to load it, give columns, with n as text \(loading public\.zips_json\); nothing was committed/,
    );
    assert.ok(await gone("zips_json"));
  },
);

pgTest(
  "timestamps with nanoseconds keep every digit: a text column when sampled, refused past the sample",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS ticks");
    await writeFiles(dir.path, {
      "staging/a.csv": "id,at\n1,2024-06-30 11:20:00.123456789\n2,2024-06-30 11:20:01.5\n",
    });
    const load = () => runRoutine(dir.path, routine({ table: "ticks", source: "staging" }, ["load"]));
    const sampled = await load();
    assert.equal(sampled.code, 0, output(sampled));
    assert.match(
      sampled.stdout,
      /column at: values like "2024-06-30 11:20:00\.123456789" have more than 6 fraction digits/,
    );
    assert.equal(
      (await pg.psql("SELECT pg_typeof(at)::text || ' ' || at FROM ticks ORDER BY id")).trim(),
      "text 2024-06-30 11:20:00.123456789\ntext 2024-06-30 11:20:01.5",
    );
    await pg.psql("DROP TABLE ticks");
    const micros = Array.from({ length: 2_000 }, (_, i) => `${i},2024-06-30 11:20:00.${100_000 + i}`).join(
      "\n",
    );
    await writeFiles(dir.path, { "staging/a.csv": `id,at\n${micros}\n9999,2024-06-30 11:20:00.123456789\n` });
    const late = await load();
    assert.equal(late.code, 1, output(late));
    assert.match(
      late.stdout,
      /a\.csv line 2002, column at: "2024-06-30 11:20:00\.123456789": not a timestamp as column inference reads one/,
    );
    assert.equal((await pg.psql("SELECT to_regclass('ticks') IS NULL")).trim(), "t");
  },
);

pgTest(
  "if_exists keep takes a day whose sample infers a type the table's column holds (integers into a double, all empty)",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS daily_orders");
    const day = (name: string) =>
      runRoutine(
        dir.path,
        routine({ table: "daily_orders", source: `staging/${name}`, if_exists: "keep" }, [
          "create_table",
          "load",
        ]),
      );
    await writeFiles(dir.path, {
      "staging/d1/a.csv": "id,amount,placed\n1,10.5,2024-06-01 10:00:00\n2,,2024-06-01 11:00:00\n",
      // the QA report's days: whole numbers, then no amount at all; a decimal past day 2's sample loads too
      "staging/d2/a.csv": `id,amount,placed\n3,3,2024-06-02\n${
        Array.from({ length: 1_500 }, (_, i) => `${10 + i},7,2024-06-02`).join("\n")
      }\n9999,2.25,2024-06-02\n`,
      "staging/d3/a.csv": "id,amount,placed\n4,,2024-06-03 09:00:00\n",
    });
    for (const name of ["d1", "d2", "d3"]) {
      const result = await day(name);
      assert.equal(result.code, 0, `${name}: ${output(result)}`);
    }
    assert.equal(
      (await pg.psql(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'daily_orders'::regclass AND attnum > 0 ORDER BY attnum",
      )).trim(),
      "bigint\ndouble precision\ntimestamp without time zone",
    );
    assert.equal(
      (await pg.psql("SELECT count(*) || ' ' || sum(amount) || ' ' || max(placed) FROM daily_orders")).trim(),
      `1505 ${10.5 + 3 + 7 * 1_500 + 2.25} 2024-06-03 09:00:00`,
    );
    // past today's sample, a value the kept double column cannot hold fails the COPY, which names it; no
    // advice about inference, whose type the table's overrides
    await writeFiles(dir.path, {
      "staging/d5/a.csv": `id,amount,placed\n${
        Array.from({ length: 1_500 }, (_, i) => `${20_000 + i},7,2024-06-05`).join("\n")
      }\n29999,abc,2024-06-05\n`,
    });
    const bad = await day("d5");
    assert.equal(bad.code, 1, output(bad));
    assert.match(bad.stdout, /line 1502.*amount.*"abc"/);
    assert.doesNotMatch(bad.stdout, /column inference/);
    assert.equal((await pg.psql("SELECT count(*) FROM daily_orders")).trim(), "1505", "nothing committed");
    // a type the column cannot hold is still drift: text where the table has a double
    await writeFiles(dir.path, { "staging/d4/a.csv": "id,amount,placed\n5,n/a,2024-06-04\n" });
    const drift = await day("d4");
    assert.equal(drift.code, 1, output(drift));
    assert.match(drift.stdout, /column `amount`: table has double precision, files have string/);
  },
);

pgTest(
  "replace swaps the rows; upsert run twice leaves the same table, by ON CONFLICT or UPDATE + INSERT",
  async () => {
    await using dir = await tempDir();
    await pg.psql(
      "DROP TABLE IF EXISTS sales_up; CREATE TABLE sales_up (id bigint PRIMARY KEY, region text, amount numeric, loaded_at text DEFAULT 'default')",
    );
    await pg.psql("INSERT INTO sales_up VALUES (1, 'old', 1), (9, 'untouched', 9)");
    await writeFiles(dir.path, { "staging/a.csv": SALES_A, "staging/b.csv": SALES_B });
    const upsert = routine({ table: "sales_up", source: "staging", mode: "upsert", upsert_keys: ["id"] }, [
      "load",
    ]);
    const first = await runRoutine(dir.path, upsert);
    assert.equal(first.code, 0, output(first));
    assert.match(first.stdout, /upsert: INSERT … ON CONFLICT \("id"\) DO UPDATE from a staging table/);
    const after = await checksum("sales_up");
    assert.deepEqual((await rowsOf("sales_up")).slice(0, 2), [
      "(1,north,10.5,default)",
      "(2,south,20,default)",
    ]);
    assert.ok((await rowsOf("sales_up")).includes("(9,untouched,9,default)"));
    const second = await runRoutine(dir.path, upsert);
    assert.equal(second.code, 0, output(second));
    assert.equal(await checksum("sales_up"), after);

    // no unique index on the keys: UPDATE + INSERT, said so, and still the same table after a second run
    await pg.psql(
      "DROP TABLE IF EXISTS sales_up2; CREATE TABLE sales_up2 (id bigint, region text, amount numeric)",
    );
    // (key 1 twice already: nothing kept the table from it; both rows are updated)
    await pg.psql("INSERT INTO sales_up2 VALUES (1, 'old', 1), (1, 'older', 0), (9, 'untouched', 9)");
    const noIndex = routine({ table: "sales_up2", source: "staging", mode: "upsert", upsert_keys: ["id"] }, [
      "load",
    ]);
    const third = await runRoutine(dir.path, noIndex);
    // the rows written are the files' 4, not UPDATE's 3 + INSERT's 2
    assert.match(third.stdout, /upsert: 4 rows from 2 files/);
    assert.match(third.stdout, /output rows = 4/);
    assert.match(
      third.stdout,
      /no unique index or constraint on exactly \("id"\) \(it has none\): upsert falls back to UPDATE \+ INSERT/,
    );
    const once = await checksum("sales_up2");
    await runRoutine(dir.path, noIndex);
    assert.equal(await checksum("sales_up2"), once);
    assert.equal(once.split(" ")[0], "6");
    assert.equal((await rowsOf("sales_up2")).filter((row) => row === "(1,north,10.5)").length, 2);

    // the same key twice in the files: a clear error, nothing committed
    await writeFiles(dir.path, { "staging/c.csv": "id,region,amount\n2,again,0\n" });
    const duplicate = await runRoutine(dir.path, upsert);
    assert.equal(duplicate.code, 1);
    assert.match(
      duplicate.stdout,
      /the staged files hold the same upsert key \(id\) more than once \(e\.g\. \{"id":"2"\} 2 times\): an upsert into "public"\."sales_up" needs each key once; nothing was committed/,
    );
    // without a unique index too (INSERT would add both rows)
    const duplicateNoIndex = await runRoutine(dir.path, noIndex);
    assert.equal(duplicateNoIndex.code, 1);
    assert.match(duplicateNoIndex.stdout, /the staged files hold the same upsert key \(id\) more than once/);
    assert.equal(await checksum("sales_up2"), once);
    // a NULL key would never match: refused with its file and line
    await writeFiles(dir.path, { "staging/c.csv": "id,region,amount\n,nokey,0\n" });
    const nullKey = await runRoutine(dir.path, upsert);
    assert.match(nullKey.stdout, /c\.csv line 2, column id: ",nokey,0": null value in column "id"/);
    assert.equal(await checksum("sales_up"), after);

    await Deno.remove(join(dir.path, "staging/c.csv"));
    const replace = await runRoutine(
      dir.path,
      routine({ table: "sales_up", source: "staging", mode: "replace" }, ["load"]),
    );
    assert.equal(replace.code, 0, output(replace));
    assert.match(replace.stdout, /replace: TRUNCATE, then COPY straight into the table/);
    assert.deepEqual((await rowsOf("sales_up")).map((row) => row.split(",")[0]), ["(1", "(2", "(3", "(4"]);
  },
);

pgTest(
  "an upsert without a unique index keeps the columns the files lack, as ON CONFLICT does",
  async () => {
    await using dir = await tempDir();
    await pg.psql(
      "DROP TABLE IF EXISTS up_pk, up_nopk; CREATE TABLE up_pk (id bigint PRIMARY KEY, name text, amt numeric); " +
        "CREATE TABLE up_nopk (id bigint, name text, amt numeric)",
    );
    await pg.psql(
      "INSERT INTO up_pk VALUES (1, 'one', 1), (9, 'nine', 9); INSERT INTO up_nopk SELECT * FROM up_pk",
    );
    await writeFiles(dir.path, { "staging/a.csv": "id,amt\n1,10\n2,20\n" });
    for (const table of ["up_pk", "up_nopk"]) {
      const result = await runRoutine(
        dir.path,
        routine({ table, source: "staging", mode: "upsert", upsert_keys: ["id"] }, ["load"]),
      );
      assert.equal(result.code, 0, output(result));
      assert.match(result.stdout, /upsert: 2 rows from 1 file/);
      assert.deepEqual(await rowsOf(table), ["(1,one,10)", "(2,,20)", "(9,nine,9)"], table);
    }
    assert.match(
      (await runRoutine(
        dir.path,
        routine({ table: "up_nopk", source: "staging", mode: "upsert", upsert_keys: ["id"] }, ["load"]),
      )).stdout,
      /upsert: UPDATE the rows whose "id" are staged, then INSERT the staged rows with new "id"/,
    );
    assert.deepEqual(
      await rowsOf("up_nopk"),
      ["(1,one,10)", "(2,,20)", "(9,nine,9)"],
      "a second run: the same",
    );
  },
);

pgTest(
  "a re-run of an interrupted run never loads twice: the journal, or the server's word on the transaction",
  async () => {
    await using dir = await tempDir();
    await pg.psql(
      "DROP TABLE IF EXISTS sales_once; CREATE TABLE sales_once (id bigint, region text, amount numeric)",
    );
    await writeFiles(dir.path, { "staging/a.csv": SALES_A });
    // a second step that fails: the run is unfinished, so the next run continues it (the same run id)
    const doc: { routine_name: string; executors: Record<string, unknown> } = {
      routine_name: "pg-once",
      executors: {
        PostgresExecutor: {
          params: { ...connection(), table: "sales_once", source: "staging" },
          tasks: ["load"],
        },
        StagingExecutor: {
          params: { parent_directory: "missing", dump_directory: "out" },
          tasks: ["post_staging"],
        },
      },
    };
    const first = await runRoutine(dir.path, doc);
    assert.equal(first.code, 1, output(first));
    assert.equal((await rowsOf("sales_once")).length, 2);
    const again = await runRoutine(dir.path, doc);
    assert.match(again.stdout, /load skipped: this run already committed it/);
    assert.equal((await rowsOf("sales_once")).length, 2);

    // killed between COMMIT and the journal's record of it: the server says the transaction committed
    const journal = join(dir.path, ".lakerun");
    const entries = [];
    for await (const entry of Deno.readDir(journal)) if (entry.isDirectory) entries.push(entry.name);
    const stepDir = join(journal, entries[0]);
    let records = 0;
    for await (const step of Deno.readDir(stepDir)) {
      if (!step.isDirectory || !step.name.startsWith("PostgresExecutor")) continue;
      for await (const file of Deno.readDir(join(stepDir, step.name, "journal"))) {
        const path = join(stepDir, step.name, "journal", file.name);
        const record = JSON.parse(await Deno.readTextFile(path));
        assert.match(record.id, /^\d+:\d+$/);
        await Deno.writeTextFile(path, JSON.stringify({ ...record, state: "started" }));
        records++;
      }
    }
    assert.equal(records, 1);
    const third = await runRoutine(dir.path, doc);
    assert.match(
      third.stdout,
      /load skipped: this run already committed it \(transaction \d+, committed before lakerun was stopped\)/,
    );
    assert.equal((await rowsOf("sales_once")).length, 2);

    // a new run (after one that succeeded) loads again
    doc.executors.StagingExecutor = {
      params: { parent_directory: "staging", dump_directory: "out" },
      tasks: ["transfer"],
    };
    assert.equal((await runRoutine(dir.path, doc)).code, 0);
    assert.equal((await runRoutine(dir.path, doc)).code, 0);
    assert.equal((await rowsOf("sales_once")).length, 4);
  },
);

pgTest(
  "a failed date re-run after another date's run: its append load is not done again",
  async () => {
    await using dir = await tempDir();
    await pg.psql(
      "DROP TABLE IF EXISTS sales_dated; CREATE TABLE sales_dated (id bigint, region text, amount numeric)",
    );
    await writeFiles(dir.path, { "staging/a.csv": SALES_A, "landing-2024-05-31/x.csv": "x\n" });
    // the load then a step that fails for 2024-04-30 only (its landing folder is missing)
    const doc = {
      routine_name: "pg-dated",
      executors: {
        PostgresExecutor: {
          params: { ...connection(), table: "sales_dated", source: "staging", mode: "append" },
          tasks: ["load"],
        },
        StagingExecutor: {
          params: { parent_directory: "landing-${{ run.date }}", dump_directory: "out-${{ run.date }}" },
          tasks: ["transfer"],
        },
      },
    };
    const backfill = await runRoutine(dir.path, doc, childEnv, [
      "--from",
      "2024-04-30",
      "--to",
      "2024-05-31",
      "--every",
      "month",
      "--keep-going",
    ]);
    assert.equal(backfill.code, 1, output(backfill));
    assert.equal((await rowsOf("sales_dated")).length, 4, "each date loaded once");
    await writeFiles(dir.path, { "landing-2024-04-30/x.csv": "x\n" });
    const again = await runRoutine(dir.path, doc, childEnv, ["--date", "2024-04-30"]);
    assert.equal(again.code, 0, output(again));
    assert.match(again.stdout, /load skipped: this run already committed it/);
    assert.equal((await rowsOf("sales_dated")).length, 4, "the failed date's rows are not appended twice");
    // both runs succeeded: the journal keeps nothing of them
    const [routineDir] = await Array.fromAsync(Deno.readDir(join(dir.path, ".lakerun")));
    const root = join(dir.path, ".lakerun", routineDir.name);
    const step = (await Array.fromAsync(Deno.readDir(root))).find((e) =>
      e.name.startsWith("PostgresExecutor")
    )!;
    const left = await Array.fromAsync(Deno.readDir(join(root, step.name, "journal")));
    assert.deepEqual(left.map((file) => file.name), []);
  },
);

pgTest(
  "load reads JSON lines and parquet (types from the parquet schema), from a local folder and from S3",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS events_json, events_parquet, events_s3");
    await writeFiles(dir.path, {
      "json/a.json":
        '{"id": 9007199254740993, "Name": "é \\"q\\"", "tags": ["a", 1]}\n\n{"id": 2, "Name": null, "ok": true}\n',
    });
    const json = await runRoutine(
      dir.path,
      routine({ table: "events_json", source: "json", format: "json" }, ["create_table", "load"]),
    );
    assert.equal(json.code, 0, output(json));
    assert.deepEqual(await rowsOf("events_json"), ["(2,,,t)", '(9007199254740993,"é ""q""","[""a"",1]",)']);

    const parquet = new Uint8Array(parquetWriteBuffer({
      columnData: [
        { name: "id", data: [1n, 2n, 3n], type: "INT64" },
        { name: "Label", data: ["a", null, 'c,"d"'], type: "STRING" },
        { name: "ratio", data: [0.5, 1.25, -2], type: "DOUBLE" },
        { name: "flag", data: [true, false, null], type: "BOOLEAN" },
      ],
      rowGroupSize: 2,
    }));
    await writeFiles(dir.path, { "parquet/part-0.parquet": parquet });
    const local = await runRoutine(
      dir.path,
      routine({ table: "events_parquet", source: "parquet", format: "parquet" }, ["create_table", "load"]),
    );
    assert.equal(local.code, 0, output(local));
    const expected = ["(1,a,0.5,t)", "(2,,1.25,f)", '(3,"c,""d""",-2,)'];
    assert.deepEqual(await rowsOf("events_parquet"), expected);
    assert.equal(
      (await pg.psql(
        `SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'events_parquet'::regclass AND attnum > 0`,
      )).trim(),
      "bigint,text,double precision,boolean",
    );

    const bucket = await createTestBucket(s3Server, "pg-parquet");
    const staging = openS3Location(`s3://${bucket}/staging`, s3);
    await staging.write("part-0.parquet", streamOf(parquet));
    const remote = await runRoutine(
      dir.path,
      routine({ table: "events_s3", source: `s3://${bucket}/staging`, format: "parquet" }, [
        "create_table",
        "load",
      ], { s3 }),
      {
        ...childEnv,
        AWS_ACCESS_KEY_ID: s3Server.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3Server.secretAccessKey,
      },
    );
    assert.equal(remote.code, 0, output(remote));
    assert.deepEqual(await rowsOf("events_s3"), expected);
  },
);

/** The types `format_type` shows for the columns of `table`, in order. */
async function columnTypes(table: string): Promise<string> {
  return (await pg.psql(
    `SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute
     WHERE attrelid = '${table}'::regclass AND attnum > 0 AND NOT attisdropped`,
  )).trim();
}

/** A parquet schema leaf (OPTIONAL unless said), for hyparquet-writer's `schema`. */
function leaf(name: string, type: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, type, repetition_type: "OPTIONAL", ...more };
}

/** A parquet DECIMAL leaf: the converted and the logical type, as writers set both. */
function decimal(name: string, type: string, precision: number, scale: number, more = {}) {
  return leaf(name, type, {
    converted_type: "DECIMAL",
    precision,
    scale,
    logical_type: { type: "DECIMAL", precision, scale },
    ...more,
  });
}

/** A parquet file of `columns` (name → values) with the given schema leaves, 2 rows a row group. */
function parquetOf(
  columns: Record<string, unknown[]>,
  leaves: Record<string, unknown>[],
  options: { statistics?: boolean } = {},
): Uint8Array {
  return new Uint8Array(parquetWriteBuffer({
    columnData: Object.entries(columns).map(([name, data]) => ({ name, data })),
    schema: [{ name: "root", num_children: leaves.length }, ...leaves] as never,
    rowGroupSize: 2,
    ...options,
  }));
}

pgTest(
  "load writes parquet DECIMALs exactly, from the unscaled integer, for INT32, INT64, FIXED_LEN_BYTE_ARRAY and BYTE_ARRAY",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS parquet_decimals");
    // hyparquet-writer takes a bigint as the unscaled value, written as it is
    const parquet = parquetOf({
      id: [1, 2, 3, 4],
      d64: [123456789012345678n, -5n, 999999999999999999n, null],
      d32: [123456789n, -5n, 0n, null],
      d38: [12345678901234567890123456789012345678n, -1n, -(10n ** 38n - 1n), null],
      d60: [10n ** 59n + 1n, -(10n ** 45n), 0n, null],
      d0: [42n, -7n, 0n, null],
      dlogical: [12345n, -1n, 0n, null], // a DECIMAL logical type without the converted type
    }, [
      leaf("id", "INT32", { repetition_type: "REQUIRED" }),
      decimal("d64", "INT64", 18, 2),
      decimal("d32", "INT32", 9, 4),
      decimal("d38", "FIXED_LEN_BYTE_ARRAY", 38, 10, { type_length: 16 }),
      decimal("d60", "BYTE_ARRAY", 60, 5),
      decimal("d0", "INT32", 5, 0),
      leaf("dlogical", "INT64", { logical_type: { type: "DECIMAL", precision: 12, scale: 3 } }),
    ]);
    await writeFiles(dir.path, { "staging/part-0.parquet": parquet });
    const result = await runRoutine(
      dir.path,
      routine({ table: "parquet_decimals", source: "staging", format: "parquet" }, ["create_table", "load"]),
    );
    assert.equal(result.code, 0, output(result));
    assert.equal(
      await columnTypes("parquet_decimals"),
      "bigint, numeric(18,2), numeric(9,4), numeric(38,10), numeric(60,5), numeric(5,0), numeric(12,3)",
    );
    assert.deepEqual(
      (await pg.psql(
        "SELECT concat_ws('|', id, d64, d32, d38, d60, d0, dlogical) FROM parquet_decimals ORDER BY id",
      )).trim().split("\n"),
      [
        `1|1234567890123456.78|12345.6789|1234567890123456789012345678.9012345678|${
          "1" + "0".repeat(54)
        }.00001|42|12.345`,
        `2|-0.05|-0.0005|-0.0000000001|-${"1" + "0".repeat(40)}.00000|-7|-0.001`,
        `3|9999999999999999.99|0.0000|-${"9".repeat(28)}.${"9".repeat(10)}|0.00000|0|0.000`,
        "4",
      ],
    );
  },
);

pgTest(
  "parquet UINT64, FLOAT16, TIME and DATE get columns that hold them, and land exactly",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS parquet_types");
    const time = (name: string, type: string, unit: string, isAdjustedToUTC: boolean) =>
      leaf(name, type, { logical_type: { type: "TIME", unit, isAdjustedToUTC } });
    const parquet = parquetOf({
      id: [1, 2, 3, 4],
      u64: [2n ** 64n - 1n, 1n, 0n, null],
      f16: [1.5, -65504, Infinity, null],
      tms: [45296123, 0, 86399999, null],
      tus: [45296123456n, 0n, 1n, null],
      tns: [45296123456500n, 86399999999500n, 499n, null],
      day: [19904, -719163, 107000000, null],
    }, [
      leaf("id", "INT32", { repetition_type: "REQUIRED" }),
      leaf("u64", "INT64", {
        converted_type: "UINT_64",
        logical_type: { type: "INTEGER", bitWidth: 64, isSigned: false },
      }),
      leaf("f16", "FIXED_LEN_BYTE_ARRAY", { type_length: 2, logical_type: { type: "FLOAT16" } }),
      time("tms", "INT32", "MILLIS", false),
      time("tus", "INT64", "MICROS", true),
      time("tns", "INT64", "NANOS", false),
      leaf("day", "INT32", { converted_type: "DATE", logical_type: { type: "DATE" } }),
    ]);
    await writeFiles(dir.path, { "staging/part-0.parquet": parquet });
    const result = await runRoutine(
      dir.path,
      routine({ table: "parquet_types", source: "staging", format: "parquet" }, ["create_table", "load"]),
    );
    assert.equal(result.code, 0, output(result));
    assert.equal(
      await columnTypes("parquet_types"),
      "bigint, numeric(20,0), real, time without time zone, time without time zone, time without time zone, date",
    );
    assert.deepEqual(
      (await pg.psql(
        "SELECT concat_ws('|', id, u64, f16, tms, tus, tns, day) FROM parquet_types ORDER BY id",
      )).trim().split("\n"),
      [
        // nanoseconds round to the nearest microsecond, a half up
        "1|18446744073709551615|1.5|12:34:56.123|12:34:56.123456|12:34:56.123457|2024-06-30",
        "2|1|-65504|00:00:00|00:00:00|24:00:00|0001-12-31 BC",
        "3|0|Infinity|23:59:59.999|00:00:00.000001|00:00:00|294926-01-19",
        "4",
      ],
    );
  },
);

/** An INT96 value (Spark's, Impala's timestamps): nanoseconds of the day, then the Julian day. */
function int96(nanos: bigint): Uint8Array {
  const day = 86_400_000_000_000n;
  const bytes = new Uint8Array(12);
  const view = new DataView(bytes.buffer);
  view.setBigInt64(0, ((nanos % day) + day) % day, true);
  view.setInt32(8, Number((nanos - (((nanos % day) + day) % day)) / day) + 2440588, true);
  return bytes;
}

/**
 * `file` (written without statistics) with its FIXED_LEN_BYTE_ARRAY(12) columns turned INT96, which
 * hyparquet-writer does not write: in the footer's thrift, the type (7 → 3) of each such schema element
 * (followed by type_length 12) and column chunk (followed by its encodings).
 */
function withInt96(file: Uint8Array, columns: number): Uint8Array {
  const end = file.length - 8;
  const start = end - new DataView(file.buffer, file.byteOffset).getUint32(end, true);
  let patched = 0;
  for (let i = start; i < end - 3; i++) {
    const next = [file[i + 2], file[i + 3]];
    if (
      file[i] === 0x15 && file[i + 1] === 0x0e && (next[0] === 0x19 || (next[0] === 0x15 && next[1] === 0x18))
    ) {
      file[i + 1] = 0x06;
      patched++;
    }
  }
  const metadata = parquetMetadata(file.slice().buffer);
  assert.equal(patched, 2 * columns);
  assert.equal(metadata.schema.filter((element) => element.type === "INT96").length, columns);
  return file;
}

/** A database of its own whose TimeZone is America/New_York (no other test sees it), made once. */
let newYorkDatabase: Promise<string> | undefined;
function inNewYork(): Promise<string> {
  newYorkDatabase ??= (async () => {
    await pg.psql("DROP DATABASE IF EXISTS lakerun_new_york");
    await pg.psql("CREATE DATABASE lakerun_new_york");
    await pg.psql("ALTER DATABASE lakerun_new_york SET timezone TO 'America/New_York'");
    return "lakerun_new_york";
  })();
  return newYorkDatabase;
}

/** `sql`'s output in the New York database, its timestamptz values shown in UTC. */
async function psqlNewYork(sql: string): Promise<string> {
  return await pg.psql(`\\c ${await inNewYork()}\nSET TimeZone TO 'UTC';\n${sql}`);
}

pgTest(
  "parquet timestamps keep their microseconds, and an instant lands as that instant in a database whose TimeZone is not UTC",
  async () => {
    await using dir = await tempDir();
    const database = await inNewYork();
    await psqlNewYork(`DROP TABLE IF EXISTS times, times_int96;
      CREATE TABLE times (id int, utc_ts timestamp, utc_tz timestamptz, local_ts timestamp, local_tz timestamptz,
        ms_tz timestamptz, ns_tz timestamptz, legacy_tz timestamptz, int96_ts timestamp, int96_tz timestamptz)`);
    const timestamp = (name: string, unit: string, isAdjustedToUTC: boolean) =>
      leaf(name, "INT64", { logical_type: { type: "TIMESTAMP", unit, isAdjustedToUTC } });
    const june = 1719746400123456n; // 2024-06-30 11:20:00.123456 UTC, in microseconds
    const january = 1705317600000000n; // 2024-01-15 11:20:00 UTC
    const times = parquetOf({
      id: [1, 2, 3],
      utc_ts: [june, january, null],
      utc_tz: [june, january, null],
      local_ts: [june, january, null],
      local_tz: [june, january, null],
      ms_tz: [june / 1000n, january / 1000n, null],
      ns_tz: [june * 1000n + 789n, -1500n, null],
      legacy_tz: [june, january, null],
    }, [
      leaf("id", "INT32", { repetition_type: "REQUIRED" }),
      timestamp("utc_ts", "MICROS", true),
      timestamp("utc_tz", "MICROS", true),
      timestamp("local_ts", "MICROS", false),
      timestamp("local_tz", "MICROS", false),
      timestamp("ms_tz", "MILLIS", true),
      timestamp("ns_tz", "NANOS", true),
      leaf("legacy_tz", "INT64", { converted_type: "TIMESTAMP_MICROS" }), // no logical type: an instant
    ]);
    const legacy = withInt96(
      parquetOf({
        id: [4, 5],
        int96_ts: [int96(june * 1000n + 789n), int96(january * 1000n + 1000n)],
        int96_tz: [int96(june * 1000n + 789n), int96(january * 1000n + 1000n)],
      }, [
        leaf("id", "INT32", { repetition_type: "REQUIRED" }),
        leaf("int96_ts", "FIXED_LEN_BYTE_ARRAY", { type_length: 12 }),
        leaf("int96_tz", "FIXED_LEN_BYTE_ARRAY", { type_length: 12 }),
      ], { statistics: false }),
      2,
    );
    await writeFiles(dir.path, {
      "staging/part-0.parquet": times,
      "staging/part-1.parquet": legacy,
      "int96/part-1.parquet": legacy,
    });
    const result = await runRoutine(
      dir.path,
      routine({ database, table: "times", source: "staging", format: "parquet" }, ["load"]),
    );
    assert.equal(result.code, 0, output(result));
    assert.deepEqual(
      (await psqlNewYork(
        `SELECT concat_ws('|', id, utc_ts, utc_tz, local_ts, local_tz, ms_tz, ns_tz, legacy_tz, int96_ts, int96_tz)
         FROM times ORDER BY id`,
      )).trim().split("\n"),
      [
        // a local timestamp has no zone: a timestamptz column reads it in the session's TimeZone (New York)
        "1|2024-06-30 11:20:00.123456|2024-06-30 11:20:00.123456+00|2024-06-30 11:20:00.123456|" +
        "2024-06-30 15:20:00.123456+00|2024-06-30 11:20:00.123+00|2024-06-30 11:20:00.123457+00|" +
        "2024-06-30 11:20:00.123456+00",
        "2|2024-01-15 11:20:00|2024-01-15 11:20:00+00|2024-01-15 11:20:00|2024-01-15 16:20:00+00|" +
        "2024-01-15 11:20:00+00|1969-12-31 23:59:59.999999+00|2024-01-15 11:20:00+00",
        "3",
        "4|2024-06-30 11:20:00.123457|2024-06-30 11:20:00.123457+00",
        "5|2024-01-15 11:20:00.000001|2024-01-15 11:20:00.000001+00",
      ],
    );

    // create_table makes every parquet timestamp a timestamp, INT96 too
    const inferred = await runRoutine(
      dir.path,
      routine({ database, table: "times_int96", source: "int96", format: "parquet" }, [
        "create_table",
        "load",
      ]),
    );
    assert.equal(inferred.code, 0, output(inferred));
    assert.equal(
      (await psqlNewYork(
        `SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = 'times_int96'::regclass AND attnum > 0`,
      )).trim(),
      "bigint, timestamp without time zone, timestamp without time zone",
    );
    assert.equal(
      (await psqlNewYork("SELECT int96_ts FROM times_int96 WHERE id = 4")).trim(),
      "2024-06-30 11:20:00.123457",
    );
  },
);

pgTest(
  "JSON lines and CSV timestamps: timestamptz keeps an offset, timestamp drops it, and no offset reads in the database's TimeZone",
  async () => {
    await using dir = await tempDir();
    const database = await inNewYork();
    await psqlNewYork(
      "DROP TABLE IF EXISTS texts; CREATE TABLE texts (id int, ts timestamp, tz timestamptz)",
    );
    const values = ["2024-06-30T11:20:00-07:00", "2024-06-30 11:20:00", "2024-06-30T11:20:00Z"];
    await writeFiles(dir.path, {
      "json/a.json": values.map((at, i) => JSON.stringify({ id: i + 1, ts: at, tz: at })).join("\n"),
      "csv/a.csv": ["id,ts,tz", ...values.map((at, i) => `${i + 11},${at},${at}`)].join("\n"),
    });
    for (const format of ["json", "csv"]) {
      const result = await runRoutine(
        dir.path,
        routine({ database, table: "texts", source: format, format }, ["load"]),
      );
      assert.equal(result.code, 0, output(result));
    }
    const expected = [
      "2024-06-30 11:20:00|2024-06-30 18:20:00+00", // -07:00: the instant in timestamptz, dropped by timestamp
      "2024-06-30 11:20:00|2024-06-30 15:20:00+00", // no offset: New York's (EDT, -04) in timestamptz
      "2024-06-30 11:20:00|2024-06-30 11:20:00+00", // Z
    ];
    assert.deepEqual(
      (await psqlNewYork("SELECT concat_ws('|', id, ts, tz) FROM texts ORDER BY id")).trim().split("\n"),
      [...expected.map((row, i) => `${i + 1}|${row}`), ...expected.map((row, i) => `${i + 11}|${row}`)],
    );
  },
);

pgTest(
  "load skips Spark's and Hadoop's hidden and work files (_SUCCESS, _temporary/, .crc), logged once, counted",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS spark_out");
    await writeFiles(dir.path, {
      "out/part-0.csv": "id,name\n1,a\n2,b\n",
      "out/.part-0.csv.crc": new Uint8Array([0x63, 0x72, 0x63, 0x00, 0xff, 0x10]),
      "out/_SUCCESS": "",
      "out/_temporary/0/task_1/part-0.csv": "id,name\n1,a\n2,b\n",
    });
    const result = await runRoutine(
      dir.path,
      routine({ table: "spark_out", source: "out" }, ["create_table", "load"]),
    );
    assert.equal(result.code, 0, output(result));
    assert.deepEqual(await rowsOf("spark_out"), ["(1,a)", "(2,b)"]);
    const skipped = result.stdout.split("\n").filter((line) => line.includes("hidden or work file"));
    // once for each task that lists the source
    assert.equal(skipped.length, 2, result.stdout);
    assert.match(
      skipped[0],
      /skipping 3 hidden or work files \(a name starting with _ or \.\): \.part-0\.csv\.crc, _SUCCESS, _temporary\/0\/task_1\/part-0\.csv$/,
    );
    assert.match(result.stdout, /append: 2 rows from 1 file/);
  },
);

pgTest(
  "a load that creates its table lists the source once: each skipped file is logged once",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS listed_once");
    await writeFiles(dir.path, { "staging/a.csv": "id\n1\n", "staging/empty.csv": "" });
    const result = await runRoutine(dir.path, routine({ table: "listed_once", source: "staging" }, ["load"]));
    assert.equal(result.code, 0, output(result));
    assert.match(result.stdout, /created public\.listed_once \(1 column\) in the load's transaction/);
    assert.equal(
      result.stdout.split("\n").filter((line) => line.includes("empty file")).length,
      1,
      result.stdout,
    );
  },
);

pgTest("load from an s3:// staging prefix streams each object into COPY", async () => {
  await using dir = await tempDir();
  await pg.psql("DROP TABLE IF EXISTS sales_s3");
  const bucket = await createTestBucket(s3Server, "pg-load");
  const staging = openS3Location(`s3://${bucket}/retail/staging`, s3);
  await staging.write("2024/a.csv", streamOf(encoder.encode(SALES_A)));
  await staging.write("b.csv", streamOf(encoder.encode(SALES_B)));
  const result = await runRoutine(
    dir.path,
    routine({ table: "sales_s3", source: `s3://${bucket}/retail/staging` }, ["create_table", "load"], { s3 }),
    { ...childEnv, AWS_ACCESS_KEY_ID: s3Server.accessKeyId, AWS_SECRET_ACCESS_KEY: s3Server.secretAccessKey },
  );
  // the two files have their columns in other orders: inference refuses, so create_table needs columns
  assert.match(result.stdout, /different headers/);
  const withColumns = await runRoutine(
    dir.path,
    routine(
      {
        table: "sales_s3",
        source: `s3://${bucket}/retail/staging`,
        columns: [{ name: "id", type: "bigint" }, { name: "region", type: "string" }, {
          name: "amount",
          type: "double",
        }],
      },
      ["create_table", "load"],
      { s3 },
    ),
    { ...childEnv, AWS_ACCESS_KEY_ID: s3Server.accessKeyId, AWS_SECRET_ACCESS_KEY: s3Server.secretAccessKey },
  );
  assert.equal(withColumns.code, 0, output(withColumns));
  assert.equal((await rowsOf("sales_s3")).length, 4);
});

// ---------------------------------------------------------------------------------------------------------
// secrets, cancelling

pgTest(
  "the password appears in no output and no journal, for every task, when they succeed and when they fail",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS secret_t");
    await writeFiles(dir.path, { "staging/a.csv": SALES_A, "bad/a.csv": "id,region,amount\nx,y,z\n" });
    const runs = [
      routine({ sql: "CREATE TABLE secret_t (id bigint, region text, amount numeric)" }, ["execute"]),
      routine({ table: "secret_t", source: "staging" }, ["create_table", "load"]),
      routine({ table: "secret_t", source: "staging", mode: "upsert", upsert_keys: ["id"] }, ["load"]),
      routine({ table: "secret_t", source: "bad" }, ["load"]),
      routine({ sql: `SELECT 1/0` }, ["execute"]),
      routine({ sql: "SELECT 1", database: "no_such_db" }, ["execute"]),
    ];
    for (const doc of runs) await runRoutine(dir.path, doc); // runRoutine checks every line and the state folder
    // a wrong password: the login fails, and neither password is shown
    const wrong = await runRoutine(dir.path, runs[0], { [PASSWORD_ENV]: "not-the-password-4711" });
    assert.equal(wrong.code, 1);
    assert.match(
      wrong.stdout,
      /cannot connect to postgres@127\.0\.0\.1:\d+\/lakerun: password authentication failed for user "postgres"/,
    );
    assert.ok(!output(wrong).includes("not-the-password-4711"));
    // no password variable at all
    const unset = await runRoutine(dir.path, runs[0], {});
    assert.match(unset.stdout, /the environment variable LAKERUN_TEST_PG_SECRET \(password_env\) is not set/);
    // --debug shows stack traces: still no password
    await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(runs[3]));
    assertNoSecret(await lakerun(["run", "--debug", "routine.json"], { cwd: dir.path, env: childEnv }));
  },
);

pgTest(
  "a secret in a failing statement is masked before its first words are cut: no part of it in output or run record",
  async () => {
    await using dir = await tempDir();
    const token = "Tok3n-Value-xyz";
    await Deno.writeTextFile(join(dir.path, "secrets.env"), `TOK=${token}\n`);
    // the secret straddles the 40th character of the statement, where its snippet in the error is cut
    const sql = "ALTER ROLE nosuchrole PASSWORD '${{ secrets.TOK }}'";
    await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(routine({ sql }, ["execute"])));
    const result = await lakerun(["run", "routine.json", "--secrets-file", "secrets.env"], {
      cwd: dir.path,
      env: childEnv,
    });
    assert.equal(result.code, 1, output(result));
    assert.match(
      output(result),
      /statement 1 of 1 \(line 1, ALTER ROLE nosuchrole PASSWORD '\*\*\*'\) failed: role "nosuchrole" does not exist/,
    );
    const state = await allText(join(dir.path, ".lakerun"));
    assert.match(state, /PASSWORD '\*\*\*'/, "the run record holds the masked statement");
    assertNoSecret(result, state);
    for (const [where, text] of [["output", output(result)], ["state", state]]) {
      // "Tok3": any cut of the value would keep its first characters
      assert.ok(!text.includes(token.slice(0, 4)), `part of the secret appears in ${where}:\n${text}`);
    }
  },
);

pgTest(
  "a password written in a failing statement reaches no output, run record or job summary, nor does the server's quote of it",
  async () => {
    await using dir = await tempDir();
    const cases = [
      {
        sql: "ALTER ROLE nosuchrole PASSWORD 'Hunter2SecretPW'",
        secret: "Hunter2S",
        shown:
          /statement 1 of 1 \(line 1, ALTER ROLE nosuchrole PASSWORD '\*\*\*'\) failed: role "nosuchrole"/,
      },
      // QA's second pass: SQL's other literals, and a statement long enough to be cut inside the mask
      {
        sql: "ALTER ROLE nosuchrole PASSWORD $$Hunter3SecretPW$$ VALID UNTIL 'infinity'",
        secret: "Hunter3S",
        shown: /PASSWORD \$\$\*\*\*\$\$.*\) failed: role "nosuchrole" does not exist/,
      },
      {
        sql: "ALTER ROLE nosuchrole PASSWORD E'Hunter4Secret\\'PW'",
        secret: "Hunter4S",
        shown: /PASSWORD '\*\*\*'.*\) failed: role "nosuchrole" does not exist/,
      },
      {
        sql: "ALTER ROLE nosuchrole WITH PASSWORD 'Hunter6SecretPW'",
        secret: "Hunter6S",
        shown: /\) failed: role "nosuchrole" does not exist; nothing was committed/,
      },
      {
        sql: "SELECT 'postgres://u:Hunter5SecretPW@h/db'::int",
        secret: "Hunter5",
        shown:
          /\(line 1, SELECT 'postgres:\/\/u:\*\*\*@h\/db'::int\) failed: .*"postgres:\/\/u:\*\*\*@h\/db"/,
      },
    ];
    for (const [i, { sql, secret, shown }] of cases.entries()) {
      const summary = join(dir.path, `summary-${i}.md`);
      await Deno.writeTextFile(summary, "");
      await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(routine({ sql }, ["execute"])));
      const plain = await lakerun(["run", "routine.json"], { cwd: dir.path, env: childEnv });
      assert.equal(plain.code, 1, output(plain));
      assert.match(output(plain), shown);
      const github = await lakerun(["run", "routine.json"], {
        cwd: dir.path,
        env: { ...childEnv, GITHUB_ACTIONS: "true", GITHUB_STEP_SUMMARY: summary },
      });
      assert.equal(github.code, 1, output(github));
      const texts = {
        output: output(plain),
        github: output(github),
        summary: await Deno.readTextFile(summary),
        state: await allText(join(dir.path, ".lakerun")),
      };
      assert.ok(texts.summary.length > 0, "a job summary was written");
      for (const [where, text] of Object.entries(texts)) {
        assert.ok(
          !text.includes(secret),
          `the password of ${JSON.stringify(sql)} appears in ${where}:\n${text}`,
        );
      }
    }
  },
);

/** Waits until `sql` (a psql query) answers `expected`, up to `ms`. */
async function waitFor(sql: string, expected: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const answer = (await pg.psql(sql)).trim();
    if (answer === expected) return;
    if (Date.now() > deadline) throw new Error(`${sql} answered ${answer}, not ${expected}, for ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

pgTest(
  "SIGTERM during execute cancels the running statement on the server before lakerun exits",
  async () => {
    await using dir = await tempDir();
    await Deno.writeTextFile(
      join(dir.path, "routine.json"),
      JSON.stringify(routine({ sql: "SELECT pg_sleep(60) AS lakerun_cancel_probe" }, ["execute"])),
    );
    const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path, env: childEnv }).spawn();
    const probe =
      "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%lakerun_cancel_probe%' AND state = 'active' AND pid <> pg_backend_pid()";
    await waitFor(probe, "1");
    const started = Date.now();
    child.kill("SIGTERM");
    const { code, stdout, stderr } = await child.output();
    const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assert.equal(code, 143, text);
    assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
    assert.match(
      text,
      /interrupted: cancelled the running statement \(server process \d+\); nothing was committed/,
    );
    await waitFor(probe, "0", 2000);
  },
);

pgTest("SIGTERM during a load waiting for a lock cancels its COPY; the table keeps its rows", async () => {
  await using dir = await tempDir();
  await pg.psql(
    "DROP TABLE IF EXISTS sales_locked; CREATE TABLE sales_locked (id bigint, region text, amount numeric)",
  );
  await pg.psql("INSERT INTO sales_locked VALUES (0, 'old', 0)");
  await writeFiles(dir.path, { "staging/a.csv": SALES_A });
  // another session holds the table: the load's COPY waits for it
  const locker = pg.psql(
    "BEGIN; LOCK TABLE sales_locked IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30) AS lakerun_locker; COMMIT;",
  )
    .catch(() => "");
  await waitFor(
    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%lakerun_locker%' AND state = 'active' AND pid <> pg_backend_pid()",
    "1",
  );
  await Deno.writeTextFile(
    join(dir.path, "routine.json"),
    JSON.stringify(routine({ table: "sales_locked", source: "staging" }, ["load"])),
  );
  const child = lakerunCommand(["run", "routine.json"], { cwd: dir.path, env: childEnv }).spawn();
  const waiting =
    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %sales_locked%' AND wait_event_type = 'Lock'";
  await waitFor(waiting, "1");
  child.kill("SIGTERM");
  const { code, stdout } = await child.output();
  assert.equal(code, 143);
  assert.match(new TextDecoder().decode(stdout), /interrupted: cancelled the running statement/);
  await waitFor("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %sales_locked%'", "0", 2000);
  await pg.psql(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%lakerun_locker%' AND pid <> pg_backend_pid()",
  );
  await locker;
  assert.deepEqual(await rowsOf("sales_locked"), ["(0,old,0)"]);
});

// ---------------------------------------------------------------------------------------------------------
// TLS

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

Deno.test({
  name: "ssl: require encrypts; verify-full checks the certificate against ssl_root_cert and the host name",
  ignore: pg.dir === undefined, // a shared server cannot be given a certificate
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using dir = await tempDir();
    // a CA, and a server certificate it signed for the name "db.lakerun.test" only (not 127.0.0.1)
    const tls = join(pg.dir!, "tls");
    await Deno.mkdir(tls, { mode: 0o755 });
    await openssl(
      tls,
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=lakerun test CA",
    );
    await openssl(
      tls,
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      "/CN=db.lakerun.test",
    );
    await Deno.writeTextFile(
      join(tls, "ext.cnf"),
      "subjectAltName=DNS:db.lakerun.test\nbasicConstraints=CA:FALSE\n",
    );
    await openssl(
      tls,
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.crt",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    );
    if (Deno.uid() === 0) { // the server runs as postgres, and wants its key to be its own
      const id = await new Deno.Command("id", { args: ["-u", "postgres"], stdout: "piped" }).output();
      const uid = Number(new TextDecoder().decode(id.stdout).trim());
      for (const file of ["server.key", "server.crt"]) await Deno.chown(join(tls, file), uid, null);
    }
    await Deno.chmod(join(tls, "server.key"), 0o600);
    await pg.psql(
      `ALTER SYSTEM SET ssl_cert_file = '${tls}/server.crt'; ALTER SYSTEM SET ssl_key_file = '${tls}/server.key';
       ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();`,
    );
    try {
      await waitFor("SHOW ssl", "on", 5000);
      await Deno.copyFile(join(tls, "ca.crt"), join(dir.path, "ca.crt"));
      const proof = (name: string) =>
        `CREATE TABLE ${name} AS SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;
      await pg.psql("DROP TABLE IF EXISTS tls_require, tls_verify_ca");
      const required = await runRoutine(
        dir.path,
        routine({ ssl: "require", sql: proof("tls_require") }, ["execute"]),
      );
      assert.equal(required.code, 0, output(required));
      assert.match(await pg.psql("SELECT ssl || ' ' || version FROM tls_require"), /^true TLSv1\.[23]/);

      // the certificate is for db.lakerun.test, not 127.0.0.1: verify-ca accepts it, verify-full does not
      const ca = await runRoutine(
        dir.path,
        routine({ ssl: "verify-ca", ssl_root_cert: "ca.crt", sql: proof("tls_verify_ca") }, ["execute"]),
      );
      assert.equal(ca.code, 0, output(ca));
      const full = await runRoutine(
        dir.path,
        routine({ ssl: "verify-full", ssl_root_cert: "ca.crt", sql: "SELECT 1" }, ["execute"]),
      );
      assert.equal(full.code, 1);
      assert.match(
        full.stdout,
        /cannot connect to postgres@127\.0\.0\.1:\d+\/lakerun: .*(certificate|IP|altnames|hostname)/i,
      );
      // no CA given: the system's roots do not know this one
      const unknown = await runRoutine(dir.path, routine({ ssl: true, sql: "SELECT 1" }, ["execute"]));
      assert.equal(unknown.code, 1);
      assert.match(unknown.stdout, /cannot connect to .*(certificate|issuer)/i);
      // the CA file is in the step's scope (and only read)
      const plan = JSON.parse((await lakerun(["plan", "--json", "routine.json"], { cwd: dir.path })).stdout);
      assert.deepEqual(plan.steps[0].permissions.read.filter((p: string) => p.endsWith("ca.crt")), []);
      await Deno.writeTextFile(
        join(dir.path, "routine.json"),
        JSON.stringify(routine({ ssl: "verify-ca", ssl_root_cert: "ca.crt", sql: "SELECT 1" }, ["execute"])),
      );
      const withCa = JSON.parse(
        (await lakerun(["plan", "--json", "routine.json"], { cwd: dir.path })).stdout,
      );
      assert.ok(withCa.steps[0].permissions.read.includes(join(dir.path, "ca.crt")));
    } finally {
      await pg.psql(
        "ALTER SYSTEM RESET ssl; ALTER SYSTEM RESET ssl_cert_file; ALTER SYSTEM RESET ssl_key_file; SELECT pg_reload_conf();",
      );
    }
  },
});

// ---------------------------------------------------------------------------------------------------------
// the example routine

/** A survey archive shaped like Stats NZ's: one CSV, typed columns, empty (suppressed) values. */
function surveyZip(rows: number): Uint8Array {
  const lines = [
    "Series_reference,Period,Data_value,Suppressed,STATUS,UNITS,Magnitude,Subject,Group,Series_title_1",
  ];
  for (let i = 0; i < rows; i++) {
    const suppressed = i % 17 === 0;
    lines.push(
      `RTTQ.S${i % 40}AA,${1995 + Math.floor(i / 4)}.${["03", "06", "09", "12"][i % 4]},${
        suppressed ? "" : (i * 1.5).toFixed(1)
      },${suppressed ? "Y" : ""},F,Dollars,6,Retail Trade Survey - RTS,"Industry by value, quarterly",Sales`,
    );
  }
  return buildZip([{
    name: "retail-trade-survey-june-2024-quarter.csv",
    data: encoder.encode(`${lines.join("\n")}\n`),
  }]);
}

pgTest(
  "routines/retail_trade_survey_postgres.json downloads, stages and loads the survey into PostgreSQL",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS public.retail_trade_survey");
    const doc = JSON.parse(await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey_postgres.json")));
    const validated = await lakerun(["validate", "routines/retail_trade_survey_postgres.json"]);
    assert.equal(validated.code, 0, output(validated));
    await using http = await startFaultServer({ "/survey.zip": { body: surveyZip(1000) } });
    doc.executors.DownloaderExecutor.params.requests_arguments.url = http.url("/survey.zip");
    // only the server changes: this test's private cluster instead of localhost:5432
    const step = doc.executors.PostgresExecutor.params;
    Object.assign(step, { host: pg.host, port: pg.port, database: pg.database, user: pg.user });
    const result = await runRoutine(dir.path, doc, { [step.password_env]: pg.password });
    assert.equal(result.code, 0, output(result));
    assert.equal(
      (await pg.psql("SELECT count(*), count(data_value) FROM public.retail_trade_survey")).trim(),
      "1000|941",
    );
    assert.equal(
      (await pg.psql(
        "SELECT data_value FROM public.retail_trade_survey WHERE series_reference = 'RTTQ.S1AA' AND period = 1995.06",
      )).trim(),
      "1.5",
    );
    // the next release replaces the table's rows
    await using http2 = await startFaultServer({ "/survey.zip": { body: surveyZip(1200) } });
    doc.executors.DownloaderExecutor.params.requests_arguments.url = http2.url("/survey.zip");
    const next = await runRoutine(dir.path, doc, { [step.password_env]: pg.password });
    assert.equal(next.code, 0, output(next));
    assert.equal((await pg.psql("SELECT count(*) FROM public.retail_trade_survey")).trim(), "1200");
  },
);

pgTest(
  "a header line with a quote inside a field is refused before anything loads (replace keeps the table's rows)",
  async () => {
    await using dir = await tempDir();
    await pg.psql(
      "DROP TABLE IF EXISTS keep1; CREATE TABLE keep1 (a bigint, b_c bigint, d bigint);" +
        "INSERT INTO keep1 SELECT g, g, g FROM generate_series(1, 1000) g",
    );
    const before = await checksum("keep1");
    // the QA report's file: COPY's line reader opens a quoted stretch at b"c that never closes, so its
    // header line runs to the end of the file, which COPY skipped: 0 rows, and replace emptied the table
    await writeFiles(dir.path, { "s6/d.csv": 'a,b"c,d\n1,2,3\n4,5,6\n' });
    const result = await runRoutine(
      dir.path,
      routine({
        table: "keep1",
        source: "s6",
        mode: "replace",
        columns: { a: "bigint", b_c: "bigint", d: "bigint" },
      }, ["load"]),
    );
    assert.equal(result.code, 1, output(result));
    assert.match(
      result.stdout,
      /d\.csv header line 1, field 2: "b\\"c": a quote inside a field that does not start with one; COPY opens or closes a quoted stretch at every quote/,
    );
    assert.doesNotMatch(output(result), /committed into/);
    assert.equal(await checksum("keep1"), before);
  },
);

pgTest(
  'create_table + load refuse headers COPY would end elsewhere (a"b inside a field, text after a closing quote)',
  async () => {
    await using dir = await tempDir();
    for (
      const [table, header, shown] of [
        [
          "misquoted_h1",
          'a,"b"c"d,e',
          String.raw`field 2: "\"b\"c\"d": text after the quote that closes the field`,
        ],
        [
          "misquoted_h2",
          'a,b"c,d',
          String.raw`field 2: "b\"c": a quote inside a field that does not start with one`,
        ],
      ]
    ) {
      await pg.psql(`DROP TABLE IF EXISTS ${table}`);
      await Deno.remove(join(dir.path, "staging"), { recursive: true }).catch(() => {});
      await writeFiles(dir.path, { "staging/h.csv": `${header}\n1,2,3\n4,5,6\n` });
      const result = await runRoutine(
        dir.path,
        routine({ table, source: "staging", mode: "append" }, ["create_table", "load"]),
      );
      assert.equal(result.code, 1, output(result));
      assert.ok(result.stdout.includes(`h.csv header line 1, ${shown}`), output(result));
      const rows = await pg.psql(`SELECT count(*) FROM ${table}`).catch(() => "no table");
      assert.ok(rows.trim() === "0" || rows === "no table", rows);
    }
  },
);

pgTest(
  "a data line with a quote inside a field is refused, naming file, line, column and value (COPY joined records)",
  async () => {
    await using dir = await tempDir();
    await pg.psql("DROP TABLE IF EXISTS heights; CREATE TABLE heights (id bigint, h text)");
    // COPY reads 5'10" … 6'1" as one record (id 1, h "5'10⏎2,6'1"): two fields, as a line has, so it loaded
    // 2 rows of 3 and said nothing; ab"c"d and "ab"c loaded as abcd and abc
    const cases: [string, string, RegExp][] = [
      [
        "id,h\n1,5'10\"\n2,6'1\"\n3,x\n",
        "line 2, column h",
        /"5'10\\"": a quote inside a field that does not start with one/,
      ],
      ['id,h\n1,x\n2,ab"c"d\n', "line 3, column h", /"ab\\"c\\"d": a quote inside a field/],
      ['id,h\n1,"ab"c\n', "line 2, column h", /"\\"ab\\"c": text after the quote that closes the field/],
      ['id,h\n1,"x\ny"z\n', "line 2, column h", /"\\"x\\ny\\"z": text after the quote/],
      // COPY fails this one itself ("unterminated CSV quoted field", at a line the file does not have)
      ['id,h\n1,ab"c\n2,x\n', "line 2, column h", /"ab\\"c": a quote inside a field/],
      [
        'id,h\n1,x\n2,"open\n3,y\n',
        "line 3, column h",
        /"\\"open\\n3,y\\n": a quoted field that never closes/,
      ],
    ];
    for (const [file, where, why] of cases) {
      for (const table of ["heights", "heights_inferred"]) {
        await pg.psql("DROP TABLE IF EXISTS heights_inferred; TRUNCATE heights");
        await Deno.remove(join(dir.path, "staging"), { recursive: true }).catch(() => {});
        await writeFiles(dir.path, { "staging/a.csv": file });
        const result = await runRoutine(dir.path, routine({ table, source: "staging" }, ["load"]));
        assert.equal(result.code, 1, `${JSON.stringify(file)} → ${table}: ${output(result)}`);
        // inference, reading the whole file first, finds the quoted field that never closes itself
        const unclosed = table === "heights_inferred" && file.includes("open");
        assert.ok(
          unclosed
            ? result.stdout.includes("load failed: a.csv: a quoted field starting on line 3 never closes")
            : result.stdout.includes(`load failed: a.csv ${where}: `),
          `${JSON.stringify(file)}: ${output(result)}`,
        );
        if (!unclosed) assert.match(result.stdout, why);
        if (!unclosed) assert.match(result.stdout, /nothing was committed/);
        assert.equal((await pg.psql("SELECT count(*) FROM heights")).trim(), "0");
      }
    }
    // RFC 4180 quoting still loads as written
    await writeFiles(dir.path, { "staging/a.csv": 'id,h\n1,"5\'10"""\n"2","a,""b""\nc"\n3,""\n' });
    const ok = await runRoutine(dir.path, routine({ table: "heights", source: "staging" }, ["load"]));
    assert.equal(ok.code, 0, output(ok));
    assert.deepEqual(await rowsOf("heights"), ['(1,"5\'10""")', '(2,"a,""b""⏎c")', '(3,"")']);
  },
);

stopS3ServerAfterTests(s3Server);
Deno.test({
  name: "(stop the PostgreSQL server)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => pg.stop(),
});
