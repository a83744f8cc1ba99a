/**
 * Names and literals in SQL, in one place. Identifiers are data: a CSV header or JSON key becomes a safe
 * column name here, and every name and string that lakerun puts into SQL is quoted here.
 *
 * | dialect      | identifiers             | string literals                                   |
 * | ------------ | ----------------------- | ------------------------------------------------- |
 * | `athena`     | `` `a``b` `` (Hive DDL) | `'it\'s'`, backslash escapes (Hive's lexer)       |
 * | `athena-dml` | `"a""b"` (Trino)        | `'it''s'`                                         |
 * | `postgres`   | `"a""b"`                | `'it''s'`, or `E'a\\b'` when it holds a backslash |
 * | `redshift`   | `"a""b"`                | `'it''s'`, backslashes doubled                    |
 *
 * @module
 */

/** Where the SQL runs: Athena DDL is Hive's grammar, Athena queries are Trino's. */
export type SqlDialect = "athena" | "athena-dml" | "postgres" | "redshift";

/** Options of {@link columnIdentifiers}. */
export interface IdentifierOptions {
  /**
   * Longest name, in characters (all ASCII). Default 127 (Redshift's limit; Glue allows 255). PostgreSQL
   * keeps only 63 bytes of a name and silently cuts the rest, so pass 63 for tables loaded into PostgreSQL.
   */
  maxLength?: number;
}

/** The default longest column name: Redshift's 127 bytes, within Glue's 255. */
export const MAX_IDENTIFIER_LENGTH = 127;

/**
 * Turns header texts into unique column names valid in Athena/Glue, PostgreSQL and Redshift alike:
 * `[a-z_][a-z0-9_]*`. Accents are dropped where Unicode decomposition leaves ASCII (`Prénom` → `prenom`);
 * other characters become `_`, runs of `_` collapse and `_` made from them at either end is dropped. An empty
 * result becomes `col_<position>` (after the other names: a header named `col_3` keeps its name), a leading
 * digit gets a `_` prefix, and a repeated name gets `_2`, `_3`, … skipping names that another header already
 * has.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { columnIdentifiers } from "./identifiers.ts";
 *
 * assert.deepEqual(
 *   columnIdentifiers(["Prénom", "名前", "x\"; DROP TABLE y; --", "2nd", "Name", "name", "name_2"]),
 *   ["prenom", "col_2", "x_drop_table_y", "_2nd", "name", "name_3", "name_2"],
 * );
 * ```
 */
export function columnIdentifiers(headers: readonly string[], options: IdentifierOptions = {}): string[] {
  const maxLength = options.maxLength ?? MAX_IDENTIFIER_LENGTH;
  if (!Number.isInteger(maxLength) || maxLength < 8) {
    throw new Error(`maxLength must be an integer ≥ 8, not ${maxLength}`);
  }
  const generated = headers.map((header) => identifierBase(header) === "");
  const bases = headers.map((header, index) =>
    truncate(identifierBase(header) || `col_${index + 1}`, maxLength)
  );
  const taken = new Set(bases);
  const used = new Set<string>();
  const names: string[] = new Array(headers.length);
  // a header's own name first, then the generated col_<position> ones: a real `col_3` keeps its name
  for (const pass of [false, true]) {
    bases.forEach((base, index) => {
      if (generated[index] !== pass) return;
      const name = used.has(base) ? firstFreeName(base, maxLength, taken, used) : base;
      used.add(name);
      names[index] = name;
    });
  }
  return names;
}

/**
 * The table column each name fills (a CSV header's fields, a file's keys), for loading by name: the column of
 * that exact name, else the one inference names it ({@link columnIdentifiers}: `Prénom` → `prenom`). When two
 * names would fill one column that way, the columns inference gives the whole list are used if the table has
 * them all, as a table created from the same header has (`a b,a_b` fill `a_b`, `a_b_2`; `id,id` fill `id`,
 * `id_2`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { columnsOfNames } from "./identifiers.ts";
 *
 * const unknown = (name: string) => `no column for ${name}`;
 * assert.deepEqual(columnsOfNames(["price", "Qty"], ["qty", "price"], { unknown }), ["price", "qty"]);
 * assert.deepEqual(columnsOfNames(["a b", "a_b"], ["a_b", "a_b_2"], { unknown }), ["a_b", "a_b_2"]);
 * assert.throws(() => columnsOfNames(["id", "name"], ["id"], { unknown }), /no column for name/);
 * assert.throws(() => columnsOfNames(["a b", "a_b"], ["a_b"], { unknown }), /"a b" and "a_b" both fill column a_b/);
 * ```
 * @throws Error with `unknown(name)` for a name that fills no column, or naming two names that fill one.
 */
export function columnsOfNames(
  names: readonly string[],
  tableColumns: readonly string[],
  options: IdentifierOptions & { unknown: (name: string) => string },
): string[] {
  const inferred = columnIdentifiers(names, options);
  const columns = new Set(tableColumns);
  const taken = new Map<string, string>();
  let conflict: string | undefined;
  const mapped = names.map((name, index) => {
    const column = columns.has(name) ? name : columns.has(inferred[index]) ? inferred[index] : undefined;
    if (column === undefined) throw new Error(options.unknown(name));
    const other = taken.get(column);
    if (other !== undefined) {
      conflict ??= `${JSON.stringify(other)} and ${JSON.stringify(name)} both fill column ${column}`;
    }
    taken.set(column, name);
    return column;
  });
  if (conflict === undefined) return mapped;
  // names are unique once inferred: a table made from this header has exactly those
  if (inferred.every((column) => columns.has(column))) return inferred;
  throw new Error(conflict);
}

/** The header as `[a-z0-9_]`, before the empty and uniqueness rules; may be empty. */
function identifierBase(header: string): string {
  const ascii = header.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase();
  const words = ascii.split(/[^a-z0-9_]+/); // an empty first or last word: other characters at that end
  while (words.at(0) === "") words.shift();
  while (words.at(-1) === "") words.pop();
  const name = words.join("_").replace(/_+/g, "_");
  return /^[0-9]/.test(name) ? `_${name}` : name;
}

function truncate(name: string, maxLength: number): string {
  return name.length > maxLength ? name.slice(0, maxLength) : name;
}

function firstFreeName(base: string, maxLength: number, taken: Set<string>, used: Set<string>): string {
  for (let n = 2;; n++) {
    const suffix = `_${n}`;
    const candidate = truncate(base, maxLength - suffix.length) + suffix;
    if (!taken.has(candidate) && !used.has(candidate)) return candidate;
  }
}

/**
 * Quotes a name for `dialect`: backticks for Athena DDL (Hive), double quotes for Athena queries, PostgreSQL
 * and Redshift, with the quote character doubled inside. Always quote: it keeps reserved words and odd
 * characters harmless.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quoteIdentifier } from "./identifiers.ts";
 *
 * assert.equal(quoteIdentifier("order", "athena"), "`order`");
 * assert.equal(quoteIdentifier("a`b", "athena"), "`a``b`");
 * assert.equal(quoteIdentifier('x"; DROP TABLE y; --', "postgres"), '"x""; DROP TABLE y; --"');
 * assert.equal(quoteIdentifier("sales", "athena-dml"), '"sales"');
 * ```
 * @throws Error for an empty name or one holding a NUL character.
 */
export function quoteIdentifier(name: string, dialect: SqlDialect): string {
  if (name === "") throw new Error("an SQL name cannot be empty");
  refuseNul(name, "an SQL name");
  const quote = dialect === "athena" ? "`" : '"';
  return quote + name.replaceAll(quote, quote + quote) + quote;
}

/**
 * Quotes a string literal for `dialect`. Hive (Athena DDL) and Redshift read backslash escapes inside
 * literals, so there backslashes are escaped too; a value can never end the literal early.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quoteLiteral } from "./identifiers.ts";
 *
 * assert.equal(quoteLiteral("it's", "athena-dml"), "'it''s'");
 * assert.equal(quoteLiteral("s3://b/p\\", "athena"), "'s3://b/p\\\\'");
 * assert.equal(quoteLiteral("it's", "athena"), "'it\\'s'");
 * assert.equal(quoteLiteral("\t", "athena"), "'\\t'");
 * assert.equal(quoteLiteral("a\\b", "postgres"), "E'a\\\\b'");
 * assert.equal(quoteLiteral("a\\b'c", "redshift"), "'a\\\\b''c'");
 * ```
 * @throws Error when the value holds a NUL character.
 */
export function quoteLiteral(value: string, dialect: SqlDialect): string {
  refuseNul(value, "an SQL string");
  switch (dialect) {
    case "athena":
      return `'${value.replace(/[\\'\n\r\t]/g, (char) => HIVE_ESCAPES[char])}'`;
    case "athena-dml":
      return `'${value.replaceAll("'", "''")}'`;
    case "postgres":
      // E'' reads the same whatever standard_conforming_strings says; plain '' is kept when it can be.
      return value.includes("\\")
        ? `E'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`
        : `'${value.replaceAll("'", "''")}'`;
    case "redshift":
      return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
  }
}

const HIVE_ESCAPES: Record<string, string> = {
  "\\": "\\\\",
  "'": "\\'",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

function refuseNul(text: string, what: string): void {
  if (text.includes("\u0000")) {
    throw new Error(`${what} cannot hold a NUL character: ${JSON.stringify(text)}`);
  }
}

/** A table name split into schema (Athena: database) and table. */
export interface TableName {
  schema: string;
  table: string;
}

/**
 * Splits `"table"` or `"schema.table"` as a user writes it in params. Parts in double quotes or backticks are
 * taken as written (a doubled quote stands for one), so `"my.schema"."T"` keeps its dot and capital; bare
 * parts must be letters, digits, `_` or `$` and are lowercased, as PostgreSQL, Redshift and Athena do.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTableName } from "./identifiers.ts";
 *
 * assert.deepEqual(parseTableName("Sales", "public"), { schema: "public", table: "sales" });
 * assert.deepEqual(parseTableName('"my.schema"."T"', "public"), { schema: "my.schema", table: "T" });
 * assert.throws(() => parseTableName("raw.", "public"), /table name "raw\." has an empty part/);
 * ```
 * @throws Error naming the input when a part is empty, a quote does not close, a bare part holds other
 * characters, or there are more than two parts.
 */
export function parseTableName(input: string, defaultSchema: string): TableName {
  const parts = splitNameParts(input);
  if (parts.length > 2) {
    throw new Error(
      `table name ${JSON.stringify(input)} has ${parts.length} parts; write "table" or "schema.table"`,
    );
  }
  return parts.length === 2
    ? { schema: parts[0], table: parts[1] }
    : { schema: defaultSchema, table: parts[0] };
}

function splitNameParts(input: string): string[] {
  const text = input.trim();
  const fail = (problem: string) => new Error(`table name ${JSON.stringify(input)} ${problem}`);
  if (text === "") throw fail("is empty");
  refuseNul(text, "a table name");
  const parts: string[] = [];
  let position = 0;
  for (;;) {
    const quote = text[position];
    if (quote === '"' || quote === "`") {
      const { value, end } = readQuotedPart(text, position, quote, fail);
      parts.push(value);
      position = end;
    } else {
      const dot = text.indexOf(".", position);
      const end = dot === -1 ? text.length : dot;
      parts.push(bareNamePart(text.slice(position, end), fail));
      position = end;
    }
    if (position >= text.length) return parts;
    if (text[position] !== ".") throw fail(`needs a "." after a quoted part, at character ${position + 1}`);
    position++;
  }
}

function readQuotedPart(
  text: string,
  start: number,
  quote: string,
  fail: (problem: string) => Error,
): { value: string; end: number } {
  let value = "";
  let position = start + 1;
  for (;;) {
    const close = text.indexOf(quote, position);
    if (close === -1) throw fail("has a quote that never closes");
    value += text.slice(position, close);
    if (text[close + 1] !== quote) {
      if (value === "") throw fail("has an empty part");
      return { value, end: close + 1 };
    }
    value += quote;
    position = close + 2;
  }
}

function bareNamePart(part: string, fail: (problem: string) => Error): string {
  if (part === "") throw fail("has an empty part");
  if (!/^[\p{L}_][\p{L}\p{N}_$]*$/u.test(part)) {
    throw fail(
      `has a part ${JSON.stringify(part)} that is not letters, digits, _ and $: write it in double quotes`,
    );
  }
  return part.toLowerCase();
}
