/**
 * The SQL of a load into PostgreSQL or Redshift, around the COPY that the caller runs itself: what to run
 * before it (create the staging table, or empty the target), which table the COPY fills, and what to run
 * after it (append, replace or upsert the staged rows into the target). The caller runs all of it, COPY
 * included, in ONE transaction, so the target holds its old rows or the complete new load, never a part.
 *
 * | mode      | PostgreSQL                                               | Redshift                                  |
 * | --------- | -------------------------------------------------------- | ----------------------------------------- |
 * | `append`  | COPY into the target itself (`staging: "auto"`)          | staging table, then `INSERT … SELECT`     |
 * | `replace` | `TRUNCATE`, then COPY into the target (`"auto"`)         | staging, `DELETE FROM target`, `INSERT`   |
 * | `upsert`  | staging, `INSERT … ON CONFLICT (keys) DO UPDATE`         | staging, `MERGE INTO … USING staging`     |
 *
 * - Inside a transaction nothing COPY writes into the target is visible before COMMIT, so PostgreSQL needs no
 *   staging table for `append` and `replace`, and writing the rows once instead of twice halves the work.
 *   `staging: "always"` stages them anyway.
 * - Redshift's `TRUNCATE` commits the transaction it runs in, so `replace` there uses `DELETE`.
 * - `upsert` by `INSERT … ON CONFLICT` needs a unique index or constraint on exactly the keys; without one,
 *   pass `upsertMethod: "update_insert"` (update the target rows whose keys are staged, then insert the staged
 *   rows whose keys the target lacks). Every method writes only the loaded columns: a column the files do not
 *   fill keeps its value in a row they update. {@link upsertMethodProblem} says which applies.
 * - An upsert refuses staged rows that no method could write twice alike: a NULL key (it matches no row, so
 *   every run would add the row again) and a key staged more than once (which of its rows wins is unsaid).
 *   PostgreSQL's staging table makes the keys `NOT NULL`, so COPY names the line; the other cases fail a
 *   check statement ({@link LoadPlan}'s `checks`): an `INSERT` of NULL into a `NOT NULL` column of a small
 *   temporary table, from a `SELECT` that finds a row only when the rule is broken, which works the same on
 *   Redshift (no procedural SQL) and PostgreSQL.
 * - Every identifier is quoted (`lib/tables/identifiers.ts`); nothing from params reaches the SQL otherwise.
 *
 * @module
 */
import { quoteIdentifier, type TableName } from "../tables/identifiers.ts";

/** The databases a plan is written for. */
export type LoadDialect = "postgres" | "redshift";

/** What a load does with the target's rows. */
export type LoadMode = "append" | "replace" | "upsert";

/** How an upsert writes: `on_conflict` (PostgreSQL), `merge` (Redshift, PostgreSQL 15+), `update_insert`. */
export type UpsertMethod = "on_conflict" | "merge" | "update_insert";

/** What {@link loadPlan} needs. */
export interface LoadPlanSpec {
  dialect: LoadDialect;
  /** The table loaded into (it exists when the plan runs). */
  target: TableName;
  /** The target's columns the files fill, in the order the INSERT lists them. */
  columns: readonly string[];
  mode: LoadMode;
  /** The columns that identify a row (`upsert` only; each must be one of `columns`). */
  upsertKeys?: readonly string[];
  /** Default: `on_conflict` on PostgreSQL, `merge` on Redshift. */
  upsertMethod?: UpsertMethod;
  /** `auto` (default): COPY straight into the target where the database allows it (see the module doc). */
  staging?: "auto" | "always";
  /** The staging table's name, a temporary table. Default `lakerun_staging`. */
  stagingTable?: string;
}

/** The statements of a load, in the order they run, all in one transaction. */
export interface LoadPlan {
  /** True when COPY fills a temporary staging table rather than the target. */
  staged: boolean;
  /** The table COPY fills, quoted (`"lakerun_staging"` or `"schema"."table"`). */
  copyTable: string;
  /** Run before the COPY: create the staging table, or (direct `replace`) empty the target. */
  before: string[];
  /** Run after the COPY: move the staged rows into the target, drop the staging table. */
  after: string[];
  /** One sentence per choice the plan made, for the log. */
  notes: string[];
  /** The statements of `after` that fail when the staged rows break an upsert's rule, by their index. */
  checks: Map<number, LoadCheck>;
  /** The indexes in `after` of the statements whose row counts add up to the rows written; none when COPY's is. */
  writes: number[];
}

/** What a failing check statement of a {@link LoadPlan} found. */
export interface LoadCheck {
  /** `null_key`: a staged row's upsert key is NULL; `repeated_key`: a key is staged more than once. */
  problem: "null_key" | "repeated_key";
  /** The column of {@link CHECKS_TABLE} it inserts NULL into: the server's message names it. */
  column: "null_upsert_key" | "repeated_upsert_key";
  /** `repeated_key`: a query of the staging table showing one repeated key and how often it is staged. */
  example?: string;
}

/** The temporary table whose `NOT NULL` columns the check statements insert a NULL into, to fail. */
export const CHECKS_TABLE = "lakerun_upsert_checks";

/** The default name of the staging table. */
export const STAGING_TABLE = "lakerun_staging";

/**
 * The statements of a load.
 *
 * @example Upsert into PostgreSQL
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPlan } from "./load_plan.ts";
 *
 * const plan = loadPlan({
 *   dialect: "postgres",
 *   target: { schema: "sales", table: "orders" },
 *   columns: ["id", "amount"],
 *   mode: "upsert",
 *   upsertKeys: ["id"],
 * });
 * assert.equal(plan.copyTable, '"lakerun_staging"');
 * assert.deepEqual(plan.before, [
 *   'CREATE TEMPORARY TABLE "lakerun_staging" ON COMMIT DROP AS SELECT "id", "amount" FROM "sales"."orders" WITH NO DATA',
 *   'CREATE TEMPORARY TABLE "lakerun_upsert_checks" ' +
 *   '("null_upsert_key" INTEGER NOT NULL, "repeated_upsert_key" INTEGER NOT NULL) ON COMMIT DROP',
 *   'ALTER TABLE "lakerun_staging" ALTER COLUMN "id" SET NOT NULL',
 * ]);
 * assert.deepEqual(plan.after, [
 *   'INSERT INTO "lakerun_upsert_checks" SELECT 0, CAST(NULL AS INTEGER) FROM (SELECT 1 AS "one" ' +
 *   'FROM "lakerun_staging" GROUP BY "id" HAVING COUNT(*) > 1) AS "repeated" LIMIT 1',
 *   'INSERT INTO "sales"."orders" ("id", "amount") SELECT "id", "amount" FROM "lakerun_staging" ' +
 *   'ON CONFLICT ("id") DO UPDATE SET "amount" = EXCLUDED."amount"',
 * ]);
 * assert.equal(plan.checks.get(0)?.problem, "repeated_key"); // the first statement after COPY
 * assert.deepEqual(plan.writes, [1]);
 * ```
 *
 * @example Replace on Redshift: DELETE, because TRUNCATE would commit
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPlan } from "./load_plan.ts";
 *
 * const plan = loadPlan({ dialect: "redshift", target: { schema: "public", table: "t" }, columns: ["a"], mode: "replace" });
 * assert.deepEqual(plan.after, [
 *   'DELETE FROM "public"."t"',
 *   'INSERT INTO "public"."t" ("a") SELECT "a" FROM "lakerun_staging"',
 *   'DROP TABLE "lakerun_staging"',
 * ]);
 * ```
 * @throws Error when there are no columns, a column repeats, or an upsert lacks keys or names a key that is
 * not one of the columns.
 */
export function loadPlan(spec: LoadPlanSpec): LoadPlan {
  const { dialect, mode } = spec;
  checkColumns(spec);
  const q = (name: string) => quoteIdentifier(name, dialect);
  const target = qualifiedName(spec.target, dialect);
  const staging = q(spec.stagingTable ?? STAGING_TABLE);
  const notes: string[] = [];
  const direct = dialect === "postgres" && mode !== "upsert" && (spec.staging ?? "auto") === "auto";
  if (direct) {
    notes.push(
      mode === "replace"
        ? "replace: TRUNCATE, then COPY straight into the table, in one transaction (TRUNCATE locks the table: " +
          "readers wait until COMMIT, then see the new rows)"
        : "append: COPY straight into the table, in one transaction (nothing is visible before COMMIT)",
    );
    return {
      staged: false,
      copyTable: target,
      before: mode === "replace" ? [`TRUNCATE ${target}`] : [],
      after: [],
      notes,
      checks: new Map(),
      writes: [],
    };
  }

  const columns = spec.columns.map(q).join(", ");
  const before = [
    // only the loaded columns, with their types and without the target's constraints, defaults or identity:
    // a NOT NULL column the files do not fill gets its default in the target, by the INSERT (column list)
    // below. PostgreSQL drops it at COMMIT. Redshift: CREATE TABLE AS inherits no constraint, identity or
    // default (a LIKE copy would keep NOT NULL without the default, and COPY would fail on the missing
    // column); a plain scan of the target lets it take the target's distribution and sort keys
    dialect === "postgres"
      ? `CREATE TEMPORARY TABLE ${staging} ON COMMIT DROP AS SELECT ${columns} FROM ${target} WITH NO DATA`
      : `CREATE TEMPORARY TABLE ${staging} AS SELECT ${columns} FROM ${target} WHERE 1 = 0`,
  ];
  const insert = `INSERT INTO ${target} (${columns}) SELECT ${columns} FROM ${staging}`;
  const after: string[] = [];
  const checks = new Map<number, LoadCheck>();
  let writes: number[];
  if (mode === "append") {
    writes = [after.push(insert) - 1];
  } else if (mode === "replace") {
    writes = [
      after.push(dialect === "postgres" ? `TRUNCATE ${target}` : `DELETE FROM ${target}`, insert) - 1,
    ];
    if (dialect === "redshift") notes.push("replace: DELETE, not TRUNCATE, which would commit on Redshift");
  } else {
    const keys = spec.upsertKeys!.map(q);
    const method = spec.upsertMethod ?? (dialect === "postgres" ? "on_conflict" : "merge");
    const table = q(CHECKS_TABLE);
    before.push(
      `CREATE TEMPORARY TABLE ${table} ("null_upsert_key" INTEGER NOT NULL, "repeated_upsert_key" INTEGER NOT NULL)${
        dialect === "postgres" ? " ON COMMIT DROP" : ""
      }`,
    );
    const list = keys.join(", ");
    if (dialect === "postgres") {
      // COPY refuses a NULL key itself, naming its line
      before.push(...keys.map((key) => `ALTER TABLE ${staging} ALTER COLUMN ${key} SET NOT NULL`));
    } else {
      const where = `WHERE ${keys.map((key) => `${key} IS NULL`).join(" OR ")}`;
      checks.set(
        after.push(`INSERT INTO ${table} SELECT CAST(NULL AS INTEGER), 0 FROM ${staging} ${where} LIMIT 1`) -
          1,
        { problem: "null_key", column: "null_upsert_key" },
      );
    }
    checks.set(
      after.push(
        `INSERT INTO ${table} SELECT 0, CAST(NULL AS INTEGER) FROM (SELECT 1 AS "one" FROM ${staging} ` +
          `GROUP BY ${list} HAVING COUNT(*) > 1) AS "repeated" LIMIT 1`,
      ) - 1,
      {
        problem: "repeated_key",
        column: "repeated_upsert_key",
        example:
          `SELECT ${list}, COUNT(*) AS "times" FROM ${staging} GROUP BY ${list} HAVING COUNT(*) > 1 LIMIT 1`,
      },
    );
    const statements = upsertStatements(spec, method, target, staging);
    const first = after.length;
    after.push(...statements);
    // the rows written are the staged rows: UPDATE's count would add every row of a key the target already
    // holds twice (no unique index keeps it from doing so), and each staged row is updated or inserted once
    writes = method === "update_insert" ? [] : statements.map((_, i) => first + i);
    notes.push(UPSERT_NOTES[method](list));
  }
  if (dialect === "redshift") after.push(`DROP TABLE ${staging}`);
  if (dialect === "redshift" && mode === "upsert") after.push(`DROP TABLE ${q(CHECKS_TABLE)}`);
  return { staged: true, copyTable: staging, before, after, notes, checks, writes };
}

/**
 * The one-line message for a failed check of a plan into `table` (as shown), given the first row of the
 * check's `example` query when the caller could run it (a rolled-back transaction takes the staging table).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkFailure } from "./load_plan.ts";
 *
 * assert.equal(
 *   checkFailure(
 *     { problem: "repeated_key", column: "repeated_upsert_key" },
 *     { keys: ["id"], table: "public.t", example: { id: 2, times: 3 } },
 *   ),
 *   'the staged files hold the same upsert key (id) more than once (e.g. {"id":2} 3 times): ' +
 *     "an upsert into public.t needs each key once",
 * );
 * ```
 */
export function checkFailure(
  check: LoadCheck,
  options: { keys: readonly string[]; table: string; example?: Record<string, unknown> },
): string {
  const list = options.keys.join(", ");
  if (check.problem === "null_key") {
    return `a staged row's upsert key (${list}) is NULL: it matches no row of ${options.table}, ` +
      "so every run would add the row again";
  }
  const example = options.example;
  const shown = example
    ? ` (e.g. ${
      JSON.stringify(Object.fromEntries(Object.entries(example).filter(([k]) => k !== "times")))
    } ${example.times} times)`
    : "";
  return `the staged files hold the same upsert key (${list}) more than once${shown}: ` +
    `an upsert into ${options.table} needs each key once`;
}

const UPSERT_NOTES: Record<UpsertMethod, (keys: string) => string> = {
  on_conflict: (keys) => `upsert: INSERT … ON CONFLICT (${keys}) DO UPDATE from a staging table`,
  merge: (keys) => `upsert: MERGE on ${keys} from a staging table`,
  update_insert: (keys) =>
    `upsert: UPDATE the rows whose ${keys} are staged, then INSERT the staged rows with new ${keys}, ` +
    "from a staging table",
};

function upsertStatements(
  spec: LoadPlanSpec,
  method: UpsertMethod,
  target: string,
  staging: string,
): string[] {
  const q = (name: string) => quoteIdentifier(name, spec.dialect);
  const keys = spec.upsertKeys!;
  const others = spec.columns.filter((column) => !keys.includes(column));
  const columns = spec.columns.map(q).join(", ");
  const matches = keys.map((key) => `${target}.${q(key)} = ${staging}.${q(key)}`).join(" AND ");
  switch (method) {
    case "on_conflict": {
      const action = others.length === 0
        ? "DO NOTHING"
        : `DO UPDATE SET ${others.map((c) => `${q(c)} = EXCLUDED.${q(c)}`).join(", ")}`;
      return [
        `INSERT INTO ${target} (${columns}) SELECT ${columns} FROM ${staging} ON CONFLICT (${
          keys.map(q).join(", ")
        }) ${action}`,
      ];
    }
    case "merge": {
      // Redshift's MERGE needs both clauses; with keys only, the update sets a key to itself
      const updated = others.length > 0 ? others : [keys[0]];
      return [
        [
          `MERGE INTO ${target} USING ${staging} ON ${matches}`,
          `WHEN MATCHED THEN UPDATE SET ${updated.map((c) => `${q(c)} = ${staging}.${q(c)}`).join(", ")}`,
          `WHEN NOT MATCHED THEN INSERT (${columns}) VALUES (${
            spec.columns.map((c) => `${staging}.${q(c)}`).join(", ")
          })`,
        ].join("\n"),
      ];
    }
    case "update_insert": {
      // only the loaded columns are set: the others keep their values, as ON CONFLICT and MERGE keep them
      const update = others.length === 0
        ? []
        : [`UPDATE ${target} SET ${
          others.map((c) => `${q(c)} = ${staging}.${q(c)}`).join(", ")
        } FROM ${staging} WHERE ${matches}`];
      return [
        ...update,
        `INSERT INTO ${target} (${columns}) SELECT ${columns} FROM ${staging} WHERE NOT EXISTS (SELECT 1 FROM ${target} WHERE ${matches})`,
      ];
    }
  }
}

/**
 * Why `INSERT … ON CONFLICT (keys)` cannot be used, given the target's unique indexes (each a list of
 * column names, as `pg_index` lists the non-partial unique indexes and the primary key), or `undefined` when
 * one of them is on exactly the keys (in any order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { upsertMethodProblem } from "./load_plan.ts";
 *
 * assert.equal(upsertMethodProblem(["id"], [["id"]]), undefined);
 * assert.equal(upsertMethodProblem(["b", "a"], [["a", "b"]]), undefined);
 * assert.match(upsertMethodProblem(["id"], [["id", "day"]])!, /no unique index or constraint on exactly \("id"\)/);
 * ```
 */
export function upsertMethodProblem(
  keys: readonly string[],
  uniqueIndexes: readonly (readonly string[])[],
): string | undefined {
  const wanted = [...keys].sort().join("\u0000");
  if (uniqueIndexes.some((index) => [...index].sort().join("\u0000") === wanted)) return undefined;
  const list = keys.map((key) => quoteIdentifier(key, "postgres")).join(", ");
  const existing = uniqueIndexes.length === 0
    ? "it has none"
    : `it has ${
      uniqueIndexes.map((index) => `(${index.map((c) => quoteIdentifier(c, "postgres")).join(", ")})`).join(
        ", ",
      )
    }`;
  return `the table has no unique index or constraint on exactly (${list}) (${existing})`;
}

/**
 * `"schema"."table"`, each part quoted for `dialect`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { qualifiedName } from "./load_plan.ts";
 *
 * assert.equal(qualifiedName({ schema: "my schema", table: 'a"b' }, "postgres"), '"my schema"."a""b"');
 * ```
 */
export function qualifiedName(name: TableName, dialect: LoadDialect): string {
  return `${quoteIdentifier(name.schema, dialect)}.${quoteIdentifier(name.table, dialect)}`;
}

function checkColumns(spec: LoadPlanSpec): void {
  if (spec.columns.length === 0) throw new Error("a load needs at least one column");
  const seen = new Set<string>();
  for (const column of spec.columns) {
    if (seen.has(column)) throw new Error(`column ${JSON.stringify(column)} is listed twice`);
    seen.add(column);
  }
  if (spec.mode !== "upsert") return;
  const keys = spec.upsertKeys ?? [];
  if (keys.length === 0) throw new Error("an upsert needs upsert_keys: the columns that identify a row");
  for (const key of keys) {
    if (!seen.has(key)) {
      throw new Error(
        `upsert key ${JSON.stringify(key)} is not one of the loaded columns (${spec.columns.join(", ")})`,
      );
    }
  }
}
