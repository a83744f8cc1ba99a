/**
 * `columns` is written the same way for every warehouse executor: AthenaExecutor's ordered `{name: type}` map
 * is also accepted by PostgresExecutor and RedshiftExecutor (beside their `[{name, type}]` list), so a routine
 * can describe a table once. A type is lakerun's own or one of the database's own names (as its catalog shows
 * them too), refused at its column otherwise.
 *
 * Run: deno test -A tests/columns_param_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lakerun, tempDir } from "./support/lakerun.ts";

const connection = { host: "db.example.org", database: "lake", user: "loader", password_env: "LAKE_PW" };

async function planOf(dir: string, executors: Record<string, unknown>) {
  const file = join(dir, "routine.json");
  await Deno.writeTextFile(file, JSON.stringify({ routine_name: "columns", executors }));
  return await lakerun(["plan", "--json", file], { cwd: dir, env: { LAKE_PW: "not-used-here" } });
}

Deno.test("PostgresExecutor and RedshiftExecutor take columns as a list or as Athena's {name: type} map", async () => {
  await using dir = await tempDir();
  const list = [{ name: "period", type: "date" }, { name: "value", type: "double" }];
  const map = { period: "date", value: "double" };
  for (const columns of [list, map]) {
    const result = await planOf(dir.path, {
      PostgresExecutor: {
        params: { ...connection, table: "retail.survey", columns },
        tasks: ["create_table"],
      },
      RedshiftExecutor: {
        params: { ...connection, table: "retail.survey", columns },
        tasks: ["create_table"],
      },
    });
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout);
    for (const step of plan.steps) assert.deepEqual(step.params.columns, list, step.id);
  }
});

Deno.test("a {name: type} map with a wrong type is refused naming the column and quoting the value", async () => {
  await using dir = await tempDir();
  const result = await planOf(dir.path, {
    PostgresExecutor: {
      params: { ...connection, table: "t", columns: { period: "date", value: 5 } },
      tasks: ["create_table"],
    },
  });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /executors\.PostgresExecutor\.params\.columns\.value: .*\(5\)/);
});

Deno.test("each database's own type names are declared; a type it lacks is refused at its column", async () => {
  await using dir = await tempDir();
  // what `\d` and information_schema show for the columns lakerun itself creates, and other common types
  const postgres = {
    val: "double precision",
    at: "timestamp with time zone",
    doc: "jsonb",
    uid: "uuid",
    ratio: "float8",
    label: "varchar",
    name: "character varying(20)",
  };
  const redshift = {
    val: "double precision",
    at: "timestamp without time zone",
    label: "character varying(256)",
    note: "varchar(max)",
    doc: "super",
  };
  const accepted = await planOf(dir.path, {
    PostgresExecutor: { params: { ...connection, table: "t", columns: postgres }, tasks: ["create_table"] },
    RedshiftExecutor: { params: { ...connection, table: "t", columns: redshift }, tasks: ["create_table"] },
  });
  assert.equal(accepted.code, 0, accepted.stderr);

  const refused = await planOf(dir.path, {
    PostgresExecutor: {
      params: { ...connection, table: "t", columns: { id: "bigint", val: "bigint; DROP TABLE t" } },
      tasks: ["create_table"],
    },
    RedshiftExecutor: {
      params: {
        ...connection,
        table: "t",
        columns: [{ name: "id", type: "bigint" }, { name: "doc", type: "jsonb" }],
      },
      tasks: ["create_table"],
    },
    redshift_map: {
      executor: "RedshiftExecutor",
      params: { ...connection, table: "t", columns: { id: "bigint", uid: "uuid" } },
      tasks: ["create_table"],
    },
  });
  assert.equal(refused.code, 2);
  const lines = refused.stderr.trim().split("\n").map((line) => line.replace(/^.*?: executors\./, ""));
  assert.deepEqual(lines, [
    'PostgresExecutor.params.columns.val: "bigint; DROP TABLE t" is not a column type lakerun declares in postgres (use bigint, double, boolean, date, timestamp, string, or a postgres type such as integer, numeric(10,2), varchar(20), double precision, timestamptz, jsonb, uuid)',
    'RedshiftExecutor.params.columns[1].type: "jsonb" is not a column type lakerun declares in redshift (use bigint, double, boolean, date, timestamp, string, or a redshift type such as integer, numeric(10,2), varchar(256), double precision, timestamptz, super)',
    'redshift_map.params.columns.uid: "uuid" is not a column type lakerun declares in redshift (use bigint, double, boolean, date, timestamp, string, or a redshift type such as integer, numeric(10,2), varchar(256), double precision, timestamptz, super)',
  ]);
});
