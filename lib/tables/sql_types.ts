/**
 * The PostgreSQL and Redshift column types a routine may write in `columns`: each database's own type names
 * and aliases, also in the spelling its catalog shows them (`double precision`, `character varying(256)`,
 * `timestamp without time zone`), with their `(…)` numbers and time zone words.
 *
 * A type is read word by word and written back from what was read (lowercase, single spaces, numbers
 * re-printed), so text that is not one of these types, such as `bigint); DROP TABLE x; --`, never reaches
 * the DDL it is spliced into.
 *
 * @module
 */

/** The databases whose column types are read here. */
export type SqlTypeDialect = "postgres" | "redshift";

/** One type name and what may follow it. */
interface TypeName {
  /** The words of the name, as the database spells them. */
  words: string[];
  /** How many `(…)` numbers it takes: [fewest, most]. Default none. */
  numbers?: [number, number];
  /** `(max)` instead of a number (Redshift's varchar). */
  max?: boolean;
  /** `with time zone` / `without time zone` may follow (time, timestamp). */
  zone?: boolean;
}

const names = (list: string, more: Omit<TypeName, "words"> = {}): TypeName[] =>
  list.split(",").map((name) => ({ words: name.trim().split(" "), ...more }));

/** PostgreSQL's built-in types a loaded table typically has, by every name PostgreSQL reads. */
const POSTGRES: TypeName[] = [
  ...names("smallint, int2, integer, int, int4, bigint, int8, real, float4, double precision, float8"),
  ...names("boolean, bool, text, date, json, jsonb, uuid, bytea, inet, cidr, macaddr, macaddr8, money, xml"),
  ...names("float", { numbers: [0, 1] }),
  ...names("numeric, decimal", { numbers: [0, 2] }),
  ...names("varchar, character varying, char, character, bpchar", { numbers: [0, 1] }),
  ...names("time, timestamp", { numbers: [0, 1], zone: true }),
  ...names("timetz, timestamptz, interval", { numbers: [0, 1] }),
];

/** Redshift's types and aliases (Redshift's "Data types" table). */
const REDSHIFT: TypeName[] = [
  ...names("smallint, int2, integer, int, int4, bigint, int8, real, float4, double precision, float8, float"),
  ...names("boolean, bool, text, bpchar, date, timetz, timestamptz, super, hllsketch, geometry, geography"),
  ...names("interval year to month, interval day to second"),
  ...names("numeric, decimal", { numbers: [0, 2] }),
  ...names("char, character, nchar", { numbers: [0, 1] }),
  ...names("varchar, character varying, nvarchar", { numbers: [0, 1], max: true }),
  ...names("varbyte, varbinary, binary varying", { numbers: [0, 1] }),
  ...names("time, timestamp", { zone: true }),
];

/** Each dialect's type names, longest first (a name of more words is tried before the one it starts with). */
const TYPES: Record<SqlTypeDialect, TypeName[]> = {
  postgres: longestFirst(POSTGRES),
  redshift: longestFirst(REDSHIFT),
};

/** Examples for the message about a type that is not one of these. */
const EXAMPLES: Record<SqlTypeDialect, string> = {
  postgres: "integer, numeric(10,2), varchar(20), double precision, timestamptz, jsonb, uuid",
  redshift: "integer, numeric(10,2), varchar(256), double precision, timestamptz, super",
};

/**
 * `type` as written in params, read as a `dialect` column type and written back in lowercase with single
 * spaces; `undefined` when it is not one (see {@link sqlTypeProblem} for the message).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sqlColumnType } from "./sql_types.ts";
 *
 * assert.equal(sqlColumnType("DOUBLE  PRECISION", "postgres"), "double precision");
 * assert.equal(sqlColumnType("Timestamp (3) With Time Zone", "postgres"), "timestamp(3) with time zone");
 * assert.equal(sqlColumnType("character varying(256)", "redshift"), "character varying(256)");
 * assert.equal(sqlColumnType("varchar(MAX)", "redshift"), "varchar(max)");
 * assert.equal(sqlColumnType("jsonb", "postgres"), "jsonb");
 * assert.equal(sqlColumnType("jsonb", "redshift"), undefined); // Redshift has no jsonb
 * assert.equal(sqlColumnType("bigint); DROP TABLE x; --", "postgres"), undefined);
 * ```
 */
export function sqlColumnType(type: string, dialect: SqlTypeDialect): string | undefined {
  const tokens = type.toLowerCase().match(/[a-z_][a-z0-9_]*|\d+|\S/g) ?? [];
  for (const name of TYPES[dialect]) {
    const written = readType(name, tokens);
    if (written !== undefined) return written;
  }
  return undefined;
}

/**
 * Why `type` is not a `dialect` column type lakerun declares, or `undefined` when it is one: one of lakerun's
 * own (`bigint`, `double`, `boolean`, `date`, `timestamp`, `string`) or one {@link sqlColumnType} reads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sqlTypeProblem } from "./sql_types.ts";
 *
 * assert.equal(sqlTypeProblem("double", "redshift"), undefined);
 * assert.equal(sqlTypeProblem("uuid", "postgres"), undefined);
 * assert.match(sqlTypeProblem("uuid", "redshift")!, /^"uuid" is not a column type lakerun declares in redshift/);
 * ```
 */
export function sqlTypeProblem(type: string, dialect: SqlTypeDialect): string | undefined {
  if (LAKERUN_TYPES.includes(type) || sqlColumnType(type, dialect) !== undefined) return undefined;
  return `${JSON.stringify(type)} is not a column type lakerun declares in ${dialect} ` +
    `(use bigint, double, boolean, date, timestamp, string, or a ${dialect} type such as ${
      EXAMPLES[dialect]
    })`;
}

/** lakerun's own column types (an inferred column has one), which `sqlCreateTable` maps per database. */
const LAKERUN_TYPES: readonly string[] = ["bigint", "double", "boolean", "date", "timestamp", "string"];

function longestFirst(list: TypeName[]): TypeName[] {
  return [...list].sort((a, b) => b.words.length - a.words.length);
}

/** `tokens` read as the type `name`, written back; `undefined` unless they are exactly that. */
function readType(name: TypeName, tokens: string[]): string | undefined {
  let next = 0;
  const accept = (token: string) => tokens[next] === token ? (next++, true) : false;
  for (const word of name.words) if (!accept(word)) return undefined;
  let written = name.words.join(" ");
  const [fewest, most] = name.numbers ?? [0, 0];
  const numbers: string[] = [];
  if (most > 0 && accept("(")) {
    do {
      const token = tokens[next++] ?? "";
      if (name.max && token === "max" && numbers.length === 0) numbers.push("max");
      else if (/^\d{1,10}$/.test(token)) numbers.push(String(Number(token)));
      else return undefined;
    } while (accept(","));
    if (!accept(")") || numbers.includes("max") && numbers.length > 1) return undefined;
  }
  if (numbers.length < fewest || numbers.length > most) return undefined;
  if (numbers.length > 0) written += `(${numbers.join(",")})`;
  if (name.zone && (accept("with") || accept("without"))) {
    const wordsRead = tokens[next - 1];
    if (!accept("time") || !accept("zone")) return undefined;
    written += ` ${wordsRead} time zone`;
  }
  return next === tokens.length ? written : undefined;
}
