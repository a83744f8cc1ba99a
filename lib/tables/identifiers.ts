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
 * result becomes `col_<position>`, and a leading digit gets a `_` prefix.
 *
 * When two headers would get one name, which gets it depends on the names, never on their order (so the same
 * header gets the same column in every file, whatever order the file gives them): a header that already is
 * a valid name keeps it (`id` before `ID`), then the others take their name, or `_2`, `_3`, … skipping
 * names that another header has, in the order of their texts (`ID` before `Id`), and last the generated
 * `col_<position>` ones (a header named `col_3` keeps its name). Only repeats of one text are named in order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { columnIdentifiers } from "./identifiers.ts";
 *
 * assert.deepEqual(
 *   columnIdentifiers(["Prénom", "名前", "x\"; DROP TABLE y; --", "2nd", "Name", "name", "name_2"]),
 *   ["prenom", "col_2", "x_drop_table_y", "_2nd", "name_3", "name", "name_2"],
 * );
 * assert.deepEqual(columnIdentifiers(["key", "id", "ID"]), ["key", "id", "id_2"]);
 * assert.deepEqual(columnIdentifiers(["ID", "key", "id"]), ["id_2", "key", "id"]);
 * ```
 */
export function columnIdentifiers(headers: readonly string[], options: IdentifierOptions = {}): string[] {
  return assignNames(headers, maxLengthOf(options), (header, base) => header === base);
}

/**
 * The table column each name fills (a CSV header's fields, a file's keys), for loading by name, by the rule
 * {@link columnIdentifiers} named the columns of a table created from them: a name that is a column of the
 * table fills that column; the others fill the column inference names them (`Prénom` → `prenom`), the
 * names that fill a column of their own name taken first. So a name fills the same column whatever the order
 * of the names (`id,ID` and `ID,id` both fill `id` from `id` and `id_2` from `ID`), as in the table
 * `create_table` made from them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { columnsOfNames } from "./identifiers.ts";
 *
 * const unknown = (name: string) => `no column for ${name}`;
 * assert.deepEqual(columnsOfNames(["price", "Qty"], ["qty", "price"], { unknown }), ["price", "qty"]);
 * assert.deepEqual(columnsOfNames(["a b", "a_b"], ["a_b", "a_b_2"], { unknown }), ["a_b_2", "a_b"]);
 * assert.deepEqual(columnsOfNames(["ID", "id"], ["id", "id_2"], { unknown }), ["id_2", "id"]);
 * assert.throws(() => columnsOfNames(["id", "name"], ["id"], { unknown }), /no column for name/);
 * assert.throws(() => columnsOfNames(["a b", "a_b"], ["a_b"], { unknown }), /no column for a b/);
 * ```
 * @throws Error with `unknown(name)` for a name that fills no column of the table.
 */
export function columnsOfNames(
  names: readonly string[],
  tableColumns: readonly string[],
  options: IdentifierOptions & { unknown: (name: string) => string },
): string[] {
  const columns = new Set(tableColumns);
  const mapped = assignNames(
    names,
    maxLengthOf(options),
    (name, base) => columns.has(name) || name === base,
  );
  mapped.forEach((column, index) => {
    if (!columns.has(column)) throw new Error(options.unknown(names[index]));
  });
  return mapped;
}

function maxLengthOf(options: IdentifierOptions): number {
  const maxLength = options.maxLength ?? MAX_IDENTIFIER_LENGTH;
  if (!Number.isInteger(maxLength) || maxLength < 8) {
    throw new Error(`maxLength must be an integer ≥ 8, not ${maxLength}`);
  }
  return maxLength;
}

/**
 * The rule of {@link columnIdentifiers}: the first header of each text that `ownName` says keeps its own
 * name; then the other headers with a name, in the order of their texts; then the generated `col_<position>`.
 */
function assignNames(
  headers: readonly string[],
  maxLength: number,
  ownName: (header: string, base: string) => boolean,
): string[] {
  const bases = headers.map((header) => truncate(identifierBase(header), maxLength));
  const names: (string | undefined)[] = new Array(headers.length);
  const used = new Set<string>();
  headers.forEach((header, index) => {
    if (bases[index] !== "" && !used.has(header) && ownName(header, bases[index])) {
      names[index] = header;
      used.add(header);
    }
  });
  const generated = bases.map((base, index) => base || truncate(`col_${index + 1}`, maxLength));
  const taken = new Set([...used, ...generated]);
  const byText = [...headers.keys()].filter((index) => names[index] === undefined && bases[index] !== "")
    .sort((a, b) => headers[a] < headers[b] ? -1 : headers[a] > headers[b] ? 1 : a - b);
  const byPosition = [...headers.keys()].filter((index) => bases[index] === "");
  for (const index of [...byText, ...byPosition]) {
    const base = generated[index];
    const name = used.has(base) ? firstFreeName(base, maxLength, taken, used) : base;
    used.add(name);
    names[index] = name;
  }
  return names as string[];
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
