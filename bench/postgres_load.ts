/**
 * Benchmark: PostgresExecutor's `load` (through lakerun's real command line) against psql, on one real
 * PostgreSQL 15 (a private cluster, tests/support/postgres.ts) and one real S3 server (Ceph radosgw), side by
 * side in one run:
 *
 * - **CSV load**: 1 GiB of CSV in a few files, as a staging folder holds them, appended into an empty table:
 *   lakerun from the local folder, lakerun from an `s3://` prefix, and `psql -c "\copy … FROM file CSV HEADER"`
 *   for each file (one psql process, one `-c` per file) into the same table.
 * - **upsert**: 1 million rows (half of them new, half updates) into a 1-million-row table with a primary key:
 *   lakerun's `mode: "upsert"` against the same thing written by hand in psql (a temporary staging table,
 *   `\copy` into it, `INSERT … ON CONFLICT (id) DO UPDATE`, in one transaction).
 * - **inferred columns**: 1 million rows of an id and three doubles as Python writes them (16–17 significant
 *   digits), loaded into a table the load creates: lakerun inferring the types (and so checking every value
 *   against them on the way), lakerun given the same types in `columns` (no check), and psql `\copy` into
 *   the same table made by hand.
 *
 * ```sh
 * deno run -A bench/postgres_load.ts                 # 1 GiB, 3 runs of each variant, alternated
 * deno run -A bench/postgres_load.ts --quick         # 64 MiB and 100,000 upserted rows, 1 run
 * deno run -A bench/postgres_load.ts --size-mib 256 --files 4 --upsert-rows 1000000 --runs 5
 * deno run -A bench/postgres_load.ts --only inferred
 * ```
 *
 * Each measurement is a separate process under `/usr/bin/time` (wall time measured here, peak RSS from the
 * kernel); lakerun runs as `deno task run` does (`deno run -A --v8-flags=--max-semi-space-size=1 main.ts run
 * routine.json`). Before each measurement the table is emptied (or reset to its 1 million rows) outside the
 * timing, and after it the table's row count and the sum of a column are checked. The variants alternate
 * within each run. The markdown table goes to standard output; progress to standard error.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openS3Location } from "../lib/aws/s3/storage.ts";
import { closeS3Clients } from "../lib/aws/s3/client.ts";
import { type PostgresTestServer, startPostgres } from "../tests/support/postgres.ts";
import { type Measurement, median, timeCommand } from "./measure.ts";
import { createTestBucket, type S3TestServer, startS3Server } from "../tests/support/s3_server.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
const MiB = 1024 * 1024;

const args = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    "size-mib": { type: "string", default: "1024" },
    files: { type: "string", default: "4" },
    "upsert-rows": { type: "string", default: "1000000" },
    quick: { type: "boolean", default: false },
    only: { type: "string" },
  },
});
const QUICK = args.values.quick;
const RUNS = QUICK ? 1 : Number(args.values.runs);
const SIZE = (QUICK ? 64 : Number(args.values["size-mib"])) * MiB;
const FILES = Number(args.values.files);
const UPSERT_ROWS = QUICK ? 100_000 : Number(args.values["upsert-rows"]);
/** `--only load`, `--only upsert` or `--only inferred`. */
const ONLY = args.values.only;

const log = (message: string) => console.error(`[bench/postgres_load] ${message}`);

// ---------------------------------------------------------------------------------------------------------
// data

const COLUMNS = "id bigint, region text, amount numeric(12,2), ratio double precision, label text, day date";

/** One CSV row; `seed` changes every value but the id. */
function row(id: number, seed: number): string {
  const region = (id * 7 + seed) % 50;
  const amount = (((id * 7919 + seed * 104729) % 100_000_000) / 100).toFixed(2);
  const ratio = ((id * 31 + seed) % 1_000_000) / 1_000_000;
  const day = new Date(Date.UTC(2020, 0, 1) + ((id + seed) % 1500) * 86_400_000).toISOString().slice(0, 10);
  return `${id},R${region},${amount},${ratio},"item ${(id * 13 + seed) % 100000}, size ${id % 7}",${day}\n`;
}

const HEADER = "id,region,amount,ratio,label,day\n";

/** Writes `files` CSV files of about `bytes` in all under `dir`; returns the rows written. */
async function writeCsv(
  dir: string,
  bytes: number,
  files: number,
  seed: number,
  firstId = 0,
): Promise<number> {
  await Deno.mkdir(dir, { recursive: true });
  const encoder = new TextEncoder();
  let id = firstId;
  for (let f = 0; f < files; f++) {
    using file = await Deno.open(join(dir, `part-${String(f).padStart(3, "0")}.csv`), {
      write: true,
      create: true,
      truncate: true,
    });
    let written = await file.write(encoder.encode(HEADER));
    while (written < bytes / files) {
      let chunk = "";
      for (let i = 0; i < 10_000; i++) chunk += row(id++, seed);
      const data = encoder.encode(chunk);
      for (let offset = 0; offset < data.length;) offset += await file.write(data.subarray(offset));
      written += data.length;
    }
  }
  return id - firstId;
}

/** Writes rows `first` … `first + count - 1` into one CSV file. */
async function writeRows(path: string, first: number, count: number, seed: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const encoder = new TextEncoder();
  await file.write(encoder.encode(HEADER));
  for (let id = first; id < first + count;) {
    let chunk = "";
    for (let i = 0; i < 10_000 && id < first + count; i++) chunk += row(id++, seed);
    const data = encoder.encode(chunk);
    for (let offset = 0; offset < data.length;) offset += await file.write(data.subarray(offset));
  }
}

// ---------------------------------------------------------------------------------------------------------
// servers

// ---------------------------------------------------------------------------------------------------------
// measuring

interface Variant {
  name: string;
  /** Outside the timing: bring the table to its starting state. */
  prepare(): Promise<void>;
  command: string[];
  cwd: string;
  env: Record<string, string>;
  /** After the measurement: check the table. */
  check(): Promise<void>;
}

interface Scenario {
  name: string;
  bytes: number;
  rows: number;
  variants: Variant[];
  results: Map<string, Measurement[]>;
}

async function runScenario(scenario: Scenario): Promise<void> {
  for (let run = 0; run < RUNS; run++) {
    // alternate: each run starts with the next variant
    const order = scenario.variants.map((_, i) => scenario.variants[(i + run) % scenario.variants.length]);
    for (const variant of order) {
      await variant.prepare();
      const result = await timeCommand(variant.command, {
        cwd: variant.cwd,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          HOME: Deno.env.get("HOME") ?? "/root",
          ...variant.env,
        },
      });
      await variant.check();
      log(
        `${scenario.name}, ${variant.name}, run ${run + 1}: ${result.seconds.toFixed(2)} s, ${
          (result.maxRss / MiB).toFixed(0)
        } MiB`,
      );
      const list = scenario.results.get(variant.name) ?? [];
      list.push(result);
      scenario.results.set(variant.name, list);
    }
  }
}

function table(scenarios: Scenario[]): string {
  const rows = [
    "| scenario | tool | wall time, median (min–max) | vs psql | throughput (median) | CPU time of the client (median) | peak RSS of the client (max) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const scenario of scenarios) {
    const psql = median(scenario.results.get("psql")!.map((r) => r.seconds));
    for (const [name, results] of scenario.results) {
      const times = results.map((r) => r.seconds);
      const t = median(times);
      rows.push(
        `| ${scenario.name} | ${name} | ${t.toFixed(2)} s (${Math.min(...times).toFixed(2)}–${
          Math.max(...times).toFixed(2)
        }) | ${(t / psql).toFixed(2)}× | ${(scenario.bytes / MiB / t).toFixed(0)} MiB/s, ${
          Math.round(scenario.rows / t).toLocaleString("en-US")
        } rows/s | ${median(results.map((r) => r.cpu)).toFixed(1)} s | ${
          (Math.max(...results.map((r) => r.maxRss)) / MiB).toFixed(0)
        } MiB |`,
      );
    }
  }
  return rows.join("\n");
}

// ---------------------------------------------------------------------------------------------------------
// main

async function main() {
  const found = await new Deno.Command("bash", { args: ["-c", "command -v /usr/bin/time"], stdout: "null" })
    .output();
  if (!found.success) throw new Error("/usr/bin/time is missing (apt-get install time)");
  const work = await Deno.makeTempDir({ prefix: "lakerun-bench-pg-" });
  log("starting PostgreSQL and S3");
  const pg = await startPostgres();
  const s3Server = await startS3Server();
  // this process uploads the staging files with lakerun's own S3 storage (the default credential chain)
  Deno.env.set("AWS_ACCESS_KEY_ID", s3Server.accessKeyId);
  Deno.env.set("AWS_SECRET_ACCESS_KEY", s3Server.secretAccessKey);
  try {
    const scenarios: Scenario[] = [];
    if (ONLY === undefined || ONLY === "load") scenarios.push(await loadScenario(pg, s3Server, work));
    if (ONLY === undefined || ONLY === "upsert") scenarios.push(await upsertScenario(pg, work));
    if (ONLY === undefined || ONLY === "inferred") scenarios.push(await inferredScenario(pg, work));
    for (const scenario of scenarios) await runScenario(scenario);
    const version = (await pg.psql("SHOW server_version")).trim();
    console.log(
      [
        `Measured ${new Date().toISOString().slice(0, 10)} with \`deno run -A bench/postgres_load.ts${
          QUICK
            ? " --quick"
            : ` --runs ${RUNS} --size-mib ${SIZE / MiB} --files ${FILES} --upsert-rows ${UPSERT_ROWS}`
        }\`: PostgreSQL ${version} (private cluster on loopback, fsync off), Ceph radosgw on loopback, ` +
        `${navigator.hardwareConcurrency} cores shared by client and servers; ${RUNS} run${
          RUNS === 1 ? "" : "s"
        } ` +
        `of each variant, alternated.`,
        "",
        table(scenarios),
      ].join("\n"),
    );
  } finally {
    closeS3Clients();
    await s3Server.stop();
    await pg.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

const PASSWORD_ENV = "LAKERUN_BENCH_PG_PASSWORD";

function lakerunCommand(): string[] {
  return [
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    "--v8-flags=--max-semi-space-size=1",
    "--config",
    join(ROOT, "deno.json"),
    join(ROOT, "main.ts"),
    "run",
    "routine.json",
  ];
}

async function writeRoutine(
  dir: string,
  pg: PostgresTestServer,
  params: Record<string, unknown>,
  extra = {},
) {
  await Deno.mkdir(dir, { recursive: true });
  const routine = {
    routine_name: `bench-${crypto.randomUUID().slice(0, 8)}`,
    ...extra,
    executors: {
      PostgresExecutor: {
        params: {
          host: pg.host,
          port: pg.port,
          database: pg.database,
          user: pg.user,
          password_env: PASSWORD_ENV,
          ...params,
        },
        tasks: ["load"],
      },
    },
  };
  await Deno.writeTextFile(join(dir, "routine.json"), JSON.stringify(routine, null, 2));
}

async function loadScenario(pg: PostgresTestServer, s3Server: S3TestServer, work: string): Promise<Scenario> {
  const staging = join(work, "staging");
  log(`writing ${(SIZE / MiB).toFixed(0)} MiB of CSV in ${FILES} files`);
  const rows = await writeCsv(staging, SIZE, FILES, 1);
  const files = [...Deno.readDirSync(staging)].map((e) => e.name).sort();
  const bytes = files.reduce((sum, name) => sum + Deno.statSync(join(staging, name)).size, 0);
  log("uploading them to S3");
  const bucket = await createTestBucket(s3Server, "bench-pg");
  const s3 = { endpoint: s3Server.endpoint, region: s3Server.region };
  const remote = openS3Location(`s3://${bucket}/staging`, s3);
  for (const name of files) {
    using file = await Deno.open(join(staging, name));
    await remote.write(name, file.readable, { size: Deno.statSync(join(staging, name)).size });
  }
  await pg.psql(`DROP TABLE IF EXISTS bench_load; CREATE TABLE bench_load (${COLUMNS})`);
  const expected = (await pg.psql(
    `CREATE TEMP TABLE x (${COLUMNS}); ${
      files.map((name) => `\\copy x FROM '${join(staging, name)}' CSV HEADER`).join("\n")
    }\nSELECT count(*) || ' ' || sum(amount) FROM x;`,
  )).trim();
  if (!expected.startsWith(`${rows} `)) throw new Error(`expected ${rows} rows, psql read ${expected}`);
  const prepare = () => pg.psql("TRUNCATE bench_load; CHECKPOINT").then(() => {});
  const check = async () => {
    const got = (await pg.psql("SELECT count(*) || ' ' || sum(amount) FROM bench_load")).trim();
    if (got !== expected) throw new Error(`bench_load holds ${got}, not ${expected}`);
  };
  const local = join(work, "lakerun-local");
  await writeRoutine(local, pg, { table: "bench_load", source: staging });
  const fromS3 = join(work, "lakerun-s3");
  await writeRoutine(fromS3, pg, { table: "bench_load", source: `s3://${bucket}/staging` }, { s3 });
  const secret = { [PASSWORD_ENV]: pg.password };
  const s3Env = {
    ...secret,
    AWS_ACCESS_KEY_ID: s3Server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3Server.secretAccessKey,
  };
  const psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"];
  for (const name of files) psql.push("-c", `\\copy bench_load FROM '${join(staging, name)}' CSV HEADER`);
  return {
    name: `load ${(bytes / MiB).toFixed(0)} MiB of CSV (${files.length} files, ${
      rows.toLocaleString("en-US")
    } rows)`,
    bytes,
    rows,
    results: new Map(),
    variants: [
      { name: "psql", prepare, command: psql, cwd: work, env: pg.env, check },
      { name: "lakerun (local folder)", prepare, command: lakerunCommand(), cwd: local, env: secret, check },
      { name: "lakerun (s3://)", prepare, command: lakerunCommand(), cwd: fromS3, env: s3Env, check },
    ],
  };
}

async function inferredScenario(pg: PostgresTestServer, work: string): Promise<Scenario> {
  const dir = join(work, "inferred");
  const staging = join(dir, "staging");
  await Deno.mkdir(staging, { recursive: true });
  const rows = UPSERT_ROWS;
  log(`writing ${rows.toLocaleString("en-US")} rows of doubles as Python writes them`);
  // a fixed sequence (Park–Miller), printed as JavaScript prints a double: Python's repr gives the same digits
  let seed = 1;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const lines = ["id,a,b,c"];
  for (let i = 0; i < rows; i++) lines.push(`${i},${random()},${random() * 1000},${random() - 0.5}`);
  const file = join(staging, "doubles.csv");
  await Deno.writeTextFile(file, `${lines.join("\n")}\n`);
  const bytes = (await Deno.stat(file)).size;
  const table = "bench_inferred";
  const definition = "id bigint, a double precision, b double precision, c double precision";
  const expected = `${rows} ${(rows * (rows - 1)) / 2}`;
  const check = async () => {
    const got = (await pg.psql(`SELECT count(*) || ' ' || sum(id) FROM ${table}`)).trim();
    if (got !== expected) throw new Error(`${table} holds ${got}, not ${expected}`);
    const types = (await pg.psql(
      `SELECT string_agg(data_type, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = '${table}'`,
    )).trim();
    if (types !== "bigint,double precision,double precision,double precision") {
      throw new Error(`${table} has the types ${types}`);
    }
  };
  const drop = () => pg.psql(`DROP TABLE IF EXISTS ${table}; CHECKPOINT`).then(() => {});
  const create = () =>
    pg.psql(`DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (${definition}); CHECKPOINT`)
      .then(() => {});
  const inferred = join(dir, "lakerun-inferred");
  await writeRoutine(inferred, pg, { table, source: staging });
  const given = join(dir, "lakerun-given");
  const columns = [["id", "bigint"], ["a", "double"], ["b", "double"], ["c", "double"]]
    .map(([name, type]) => ({ name, type }));
  await writeRoutine(given, pg, { table, source: staging, columns });
  const secret = { [PASSWORD_ENV]: pg.password };
  const psql = [
    "psql",
    "-X",
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
    "-c",
    `\\copy ${table} FROM '${file}' CSV HEADER`,
  ];
  return {
    name: `load into a table the load creates: ${rows.toLocaleString("en-US")} rows of doubles`,
    bytes,
    rows,
    results: new Map(),
    variants: [
      { name: "psql", prepare: create, command: psql, cwd: dir, env: pg.env, check },
      {
        name: "lakerun, inferred types (values checked)",
        prepare: drop,
        command: lakerunCommand(),
        cwd: inferred,
        env: secret,
        check,
      },
      {
        name: "lakerun, given columns",
        prepare: drop,
        command: lakerunCommand(),
        cwd: given,
        env: secret,
        check,
      },
    ],
  };
}

async function upsertScenario(pg: PostgresTestServer, work: string): Promise<Scenario> {
  const dir = join(work, "upsert");
  const staging = join(dir, "staging");
  await Deno.mkdir(staging, { recursive: true });
  const file = join(staging, "upsert.csv");
  log(
    `writing ${UPSERT_ROWS.toLocaleString("en-US")} rows to upsert, and the table's ${
      UPSERT_ROWS.toLocaleString("en-US")
    }`,
  );
  // half of the ids are in the table (updates), half are new (inserts)
  await writeRows(file, UPSERT_ROWS / 2, UPSERT_ROWS, 2);
  const base = join(dir, "base.csv");
  await writeRows(base, 0, UPSERT_ROWS, 1);
  await pg.psql(
    `DROP TABLE IF EXISTS bench_upsert, bench_upsert_base;
     CREATE TABLE bench_upsert_base (${COLUMNS});
     \\copy bench_upsert_base FROM '${base}' CSV HEADER
     CREATE TABLE bench_upsert (${COLUMNS}, PRIMARY KEY (id));`,
  );
  const prepare = () =>
    pg.psql(
      "TRUNCATE bench_upsert; INSERT INTO bench_upsert SELECT * FROM bench_upsert_base; VACUUM ANALYZE bench_upsert; CHECKPOINT",
    )
      .then(() => {});
  const expected = (await pg.psql(
    `CREATE TEMP TABLE u (${COLUMNS}); \\copy u FROM '${file}' CSV HEADER
     SELECT count(*) || ' ' || sum(amount) FROM (
       SELECT * FROM u UNION ALL SELECT * FROM bench_upsert_base b WHERE NOT EXISTS (SELECT FROM u WHERE u.id = b.id)
     ) t;`,
  )).trim();
  const check = async () => {
    const got = (await pg.psql("SELECT count(*) || ' ' || sum(amount) FROM bench_upsert")).trim();
    if (got !== expected) throw new Error(`bench_upsert holds ${got}, not ${expected}`);
  };
  const script = join(dir, "upsert.sql");
  await Deno.writeTextFile(
    script,
    [
      "BEGIN;",
      `CREATE TEMPORARY TABLE staging ON COMMIT DROP AS SELECT * FROM bench_upsert WITH NO DATA;`,
      `\\copy staging FROM '${file}' CSV HEADER`,
      "INSERT INTO bench_upsert SELECT * FROM staging ON CONFLICT (id) DO UPDATE SET region = EXCLUDED.region, " +
      "amount = EXCLUDED.amount, ratio = EXCLUDED.ratio, label = EXCLUDED.label, day = EXCLUDED.day;",
      "COMMIT;",
    ].join("\n"),
  );
  const routineDir = join(dir, "lakerun");
  await writeRoutine(routineDir, pg, {
    table: "bench_upsert",
    source: staging,
    mode: "upsert",
    upsert_keys: ["id"],
  });
  return {
    name: `upsert ${UPSERT_ROWS.toLocaleString("en-US")} rows into a ${
      UPSERT_ROWS.toLocaleString("en-US")
    }-row table`,
    bytes: Deno.statSync(file).size,
    rows: UPSERT_ROWS,
    results: new Map(),
    variants: [
      {
        name: "psql",
        prepare,
        command: ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", script],
        cwd: dir,
        env: pg.env,
        check,
      },
      {
        name: "lakerun",
        prepare,
        command: lakerunCommand(),
        cwd: routineDir,
        env: { [PASSWORD_ENV]: pg.password },
        check,
      },
    ],
  };
}

if (import.meta.main) await main();
