/**
 * `columns` is written the same way for every warehouse executor: AthenaExecutor's ordered `{name: type}` map
 * is also accepted by PostgresExecutor and RedshiftExecutor (beside their `[{name, type}]` list), so a routine
 * can describe a table once.
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
