/**
 * The text of a Redshift `COPY … FROM 's3://…'` statement, built from params without letting any of them
 * change the statement's shape: every identifier is quoted, every string is a quoted literal, the IAM role must
 * look like a role ARN, and each extra option (`copy_options`) must be a COPY option keyword from
 * {@link COPY_OPTIONS}, its value checked against the kind the keyword takes (a literal, a whole number, one
 * of a few keywords) and written back by lakerun, never as typed.
 *
 * ```
 * COPY "raw"."sales_stage" ("id", "amount") FROM 's3://lake/staging/sales/' IAM_ROLE 'arn:aws:iam::123456789012:role/load'
 *   FORMAT AS CSV IGNOREHEADER 1 DATEFORMAT 'auto'
 * ```
 *
 * (one line in reality). Options that lakerun sets from other params are refused in `copy_options`: the format
 * (`format`), the authorization (`iam_role`; keys never belong in a routine), and `MANIFEST` / `NOLOAD` /
 * `SSH`, which change what is loaded. `IGNOREHEADER` may be given to replace lakerun's default of 1 for CSV.
 *
 * @module
 */
import { columnIdentifiers, columnsOfNames, quoteIdentifier, quoteLiteral } from "../tables/identifiers.ts";

/** The file formats COPY reads for lakerun. */
export type CopyFormat = "csv" | "json" | "parquet";

/** What kind of value a COPY option takes. */
type OptionValue =
  | { kind: "none" }
  | { kind: "literal"; optional?: boolean; check?: (value: string) => string | undefined }
  | { kind: "integer"; max?: number }
  | { kind: "keyword"; keywords: readonly string[]; optional?: boolean };

/** How lakerun accepts and writes one COPY option. */
interface OptionRule {
  value: OptionValue;
  /** The formats it applies to. Default: csv and json. */
  formats?: readonly CopyFormat[];
  /** Written `NULL AS '…'` rather than `NULL '…'`. */
  as?: boolean;
}

const TEXT: readonly CopyFormat[] = ["csv", "json"];
const ALL: readonly CopyFormat[] = ["csv", "json", "parquet"];
const flag = (formats: readonly CopyFormat[] = TEXT): OptionRule => ({ value: { kind: "none" }, formats });
const oneCharacter = (value: string) => [...value].length === 1 ? undefined : "must be a single character";
const ON_OFF = ["ON", "OFF", "TRUE", "FALSE"] as const;

/**
 * The COPY options `copy_options` may hold, by keyword, with the value each takes (Redshift's "COPY parameter
 * reference": data conversion, compression and load-operation parameters; `DELIMITER` and `QUOTE` for CSV).
 * Parquet takes only the few Redshift supports for columnar files.
 */
export const COPY_OPTIONS: Readonly<Record<string, OptionRule>> = Object.freeze({
  ACCEPTANYDATE: flag(),
  ACCEPTINVCHARS: { value: { kind: "literal", optional: true, check: oneCharacter }, formats: ALL },
  BLANKSASNULL: flag(),
  BZIP2: flag(),
  COMPROWS: { value: { kind: "integer" } },
  COMPUPDATE: { value: { kind: "keyword", keywords: [...ON_OFF, "PRESET"], optional: true } },
  DATEFORMAT: { value: { kind: "literal" } },
  DELIMITER: { value: { kind: "literal", check: oneCharacter }, formats: ["csv"] },
  EMPTYASNULL: flag(),
  ENCODING: { value: { kind: "keyword", keywords: ["UTF8", "UTF16", "UTF16LE", "UTF16BE"] } },
  EXPLICIT_IDS: flag(ALL),
  FILLRECORD: flag(ALL),
  GZIP: flag(),
  IGNOREBLANKLINES: flag(),
  IGNOREHEADER: { value: { kind: "integer", max: 1000 }, formats: ["csv"] },
  LZOP: flag(),
  MAXERROR: { value: { kind: "integer" } },
  NULL: { value: { kind: "literal" }, as: true },
  QUOTE: { value: { kind: "literal", check: oneCharacter }, formats: ["csv"], as: true },
  REGION: {
    value: {
      kind: "literal",
      check: (value) =>
        /^[a-z]{2}(-[a-z]+)+-\d+$/.test(value) ? undefined : "must be a region such as eu-west-1",
    },
  },
  ROUNDEC: flag(),
  SERIALIZETOJSON: flag(["parquet"]),
  STATUPDATE: { value: { kind: "keyword", keywords: ON_OFF, optional: true }, formats: ALL },
  TIMEFORMAT: { value: { kind: "literal" } },
  TRIMBLANKS: flag(),
  TRUNCATECOLUMNS: flag(),
  ZSTD: flag(),
});

/** Keywords refused in `copy_options`, with the reason given. */
const REFUSED: Readonly<Record<string, string>> = {
  FORMAT: "the format is set by the `format` param",
  CSV: "the format is set by the `format` param",
  JSON: "the format is set by the `format` param",
  PARQUET: "the format is set by the `format` param",
  ORC: "lakerun loads csv, json or parquet (the `format` param)",
  AVRO: "lakerun loads csv, json or parquet (the `format` param)",
  FIXEDWIDTH: "lakerun loads csv, json or parquet (the `format` param)",
  SHAPEFILE: "lakerun loads csv, json or parquet (the `format` param)",
  IAM_ROLE: "the role is the `iam_role` param",
  CREDENTIALS: "authorization is the `iam_role` param; keys never belong in a routine",
  ACCESS_KEY_ID: "authorization is the `iam_role` param; keys never belong in a routine",
  SECRET_ACCESS_KEY: "authorization is the `iam_role` param; keys never belong in a routine",
  SESSION_TOKEN: "authorization is the `iam_role` param; keys never belong in a routine",
  MASTER_SYMMETRIC_KEY: "encrypted sources are not supported; keys never belong in a routine",
  ENCRYPTED: "encrypted sources are not supported; keys never belong in a routine",
  MANIFEST: "the files loaded are every object under `source`",
  SSH: "the files loaded are every object under `source`",
  NOLOAD: "copy_from_s3 loads the files; NOLOAD would load nothing and still replace or merge",
  ESCAPE: "ESCAPE cannot be used with CSV (Redshift refuses it); quoted CSV fields need no escapes",
  REMOVEQUOTES: "REMOVEQUOTES cannot be used with CSV (Redshift refuses it)",
  READRATIO: "READRATIO applies to DynamoDB sources only",
};

/** One validated COPY option, ready to be written. */
export interface CopyOption {
  /** The keyword, upper-case. */
  keyword: string;
  /** The SQL text lakerun writes for it, e.g. `DATEFORMAT 'auto'`, `MAXERROR 10`, `NULL AS '\\N'`. */
  sql: string;
  /** The value as text (quotes removed), when the option has one. */
  value?: string;
}

/**
 * Checks one `copy_options` entry (`KEYWORD`, `KEYWORD value`, `KEYWORD AS value`; a value is a whole number,
 * a keyword, a word, or text in single quotes with `''` for a quote) and returns how lakerun writes it.
 * Returns a problem sentence instead when the entry is not allowed; see {@link parseCopyOption} to throw.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyOptionProblem, parseCopyOption } from "./redshift_copy.ts";
 *
 * assert.equal(parseCopyOption("dateformat 'auto'", "csv").sql, "DATEFORMAT 'auto'");
 * assert.equal(parseCopyOption("DATEFORMAT AS auto", "csv").sql, "DATEFORMAT 'auto'");
 * assert.equal(parseCopyOption("NULL AS '\\N'", "csv").sql, "NULL AS '\\\\N'");
 * assert.equal(parseCopyOption("MAXERROR 10", "csv").sql, "MAXERROR 10");
 * assert.equal(parseCopyOption("DELIMITER AS ';'", "csv").value, ";");
 * assert.equal(parseCopyOption("TIMEFORMAT 'x'' IAM_ROLE ''y'", "csv").sql, "TIMEFORMAT 'x'' IAM_ROLE ''y'");
 * assert.match(copyOptionProblem("MAXERROR 1; DROP TABLE t", "csv")!, /MAXERROR takes a whole number/);
 * assert.match(copyOptionProblem("CREDENTIALS 'aws_access_key_id=…'", "csv")!, /keys never belong/);
 * assert.match(copyOptionProblem("REGION 'eu-west-1'", "parquet")!, /not with format parquet/);
 * ```
 */
export function copyOptionProblem(entry: string, format: CopyFormat): string | undefined {
  try {
    parseCopyOption(entry, format);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * Like {@link copyOptionProblem}, but returns the {@link CopyOption} and throws an Error naming the option's
 * keyword when it is not allowed. The message never quotes the whole entry (an entry such as `CREDENTIALS '…'`
 * holds keys): validation adds it when it may show it.
 */
export function parseCopyOption(entry: string, format: CopyFormat): CopyOption {
  const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+(?:AS\b\s*)?([\s\S]*?))?\s*$/i.exec(entry);
  if (!match) throw new Error("copy option does not start with a COPY option keyword");
  const keyword = match[1].toUpperCase();
  const rest = match[2] ?? "";
  if (REFUSED[keyword]) throw new Error(`copy option ${keyword} is not allowed: ${REFUSED[keyword]}`);
  const rule = COPY_OPTIONS[keyword];
  if (!rule) {
    throw new Error(
      `${keyword} is not a COPY option lakerun accepts (one of ${Object.keys(COPY_OPTIONS).join(", ")})`,
    );
  }
  const formats = rule.formats ?? TEXT;
  if (!formats.includes(format)) {
    throw new Error(`copy option ${keyword} applies to ${formats.join(" or ")}, not with format ${format}`);
  }
  const value = optionValue(keyword, rule.value, rest);
  if (value === undefined) return { keyword, sql: keyword };
  return { keyword, sql: `${keyword}${rule.as ? " AS" : ""} ${value.sql}`, value: value.text };
}

/** An option's value as SQL and as text (undefined: none), or throws naming the option. */
function optionValue(
  keyword: string,
  rule: OptionValue,
  rest: string,
): { sql: string; text: string } | undefined {
  const text = rest.trim();
  const fail = (problem: string) => new Error(`copy option ${keyword} ${problem}`);
  switch (rule.kind) {
    case "none":
      if (text !== "") throw fail("takes no value");
      return undefined;
    case "integer": {
      if (!/^\d{1,9}$/.test(text)) throw fail(`takes a whole number, not ${JSON.stringify(text)}`);
      const n = Number(text);
      if (rule.max !== undefined && n > rule.max) throw fail(`must be at most ${rule.max}`);
      return { sql: String(n), text: String(n) };
    }
    case "keyword": {
      if (text === "" && rule.optional) return undefined;
      const word = text.toUpperCase();
      if (!rule.keywords.includes(word)) {
        throw fail(`takes one of ${rule.keywords.join(", ")}, not ${JSON.stringify(text)}`);
      }
      return { sql: word, text: word };
    }
    case "literal": {
      if (text === "" && rule.optional) return undefined;
      const value = unquote(text);
      if (value === undefined) {
        throw fail(`takes a value in single quotes (or one word), not ${JSON.stringify(text)}`);
      }
      const problem = rule.check?.(value);
      if (problem) throw fail(`${problem}, not ${JSON.stringify(value)}`);
      return { sql: quoteLiteral(value, "redshift"), text: value };
    }
  }
}

/** The text of `'…'` (doubled quotes undone) or of one bare word; undefined for anything else. */
function unquote(text: string): string | undefined {
  const quoted = /^'((?:[^']|'')*)'$/s.exec(text);
  if (quoted) return quoted[1].replaceAll("''", "'");
  return /^[A-Za-z0-9_.:/+-]+$/.test(text) ? text : undefined;
}

const ROLE_ARN = /^arn:aws(?:-[a-z]+)*:iam::\d{12}:role\/[A-Za-z0-9+=,.@_\/-]{1,512}$/;

/**
 * Why `role` cannot be COPY's `IAM_ROLE`: it must be `default` (the cluster's default role) or one role ARN,
 * or several chained with commas (`arn:…:role/a,arn:…:role/b`). Undefined when it can.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { iamRoleProblem } from "./redshift_copy.ts";
 *
 * assert.equal(iamRoleProblem("arn:aws:iam::123456789012:role/load"), undefined);
 * assert.equal(iamRoleProblem("default"), undefined);
 * assert.match(iamRoleProblem("arn:aws:iam::1:role/x' CREDENTIALS 'y")!, /not an IAM role ARN/);
 * ```
 */
export function iamRoleProblem(role: string): string | undefined {
  if (role === "default") return undefined;
  const parts = role.split(",");
  const bad = parts.findIndex((part) => !ROLE_ARN.test(part));
  if (bad === -1) return undefined;
  // the role is not quoted: what is pasted here instead of a role may be keys
  const which = parts.length > 1 ? `role ${bad + 1} of ${parts.length} in the chain ` : "";
  return `${which}is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME) or "default"`;
}

/** What {@link redshiftCopySql} needs. */
export interface RedshiftCopySpec {
  /** Omit for a temporary table. */
  schema?: string;
  table: string;
  /** The columns the files fill, in file order; default: every column of the table, in order. Not for parquet. */
  columns?: readonly string[];
  /** `s3://bucket/prefix`: every object whose key starts with the prefix is loaded. */
  source: string;
  /** The role Redshift reads S3 with: `default` or role ARNs (see {@link iamRoleProblem}). */
  iamRole: string;
  format: CopyFormat;
  /** Extra options, each checked by {@link parseCopyOption}. */
  options?: readonly string[];
}

/**
 * The COPY statement, on one line. CSV files skip one header line (`IGNOREHEADER 1`) unless `options` give
 * another `IGNOREHEADER`; JSON is read with `'auto ignorecase'` (keys matched to column names); parquet
 * columns are matched by position, so no column list is written for it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redshiftCopySql } from "./redshift_copy.ts";
 *
 * assert.equal(
 *   redshiftCopySql({
 *     schema: "raw", table: "sales", columns: ["id", "amount"], source: "s3://lake/staging/sales/",
 *     iamRole: "arn:aws:iam::123456789012:role/load", format: "csv", options: ["DATEFORMAT 'auto'"],
 *   }),
 *   `COPY "raw"."sales" ("id", "amount") FROM 's3://lake/staging/sales/' ` +
 *     `IAM_ROLE 'arn:aws:iam::123456789012:role/load' FORMAT AS CSV IGNOREHEADER 1 DATEFORMAT 'auto'`,
 * );
 * assert.equal(
 *   redshiftCopySql({ table: "stage", source: "s3://lake/p/", iamRole: "default", format: "parquet" }),
 *   `COPY "stage" FROM 's3://lake/p/' IAM_ROLE default FORMAT AS PARQUET`,
 * );
 * ```
 * @throws Error naming the problem for a bad role, source, option, or a repeated option.
 */
export function redshiftCopySql(spec: RedshiftCopySpec): string {
  const roleProblem = iamRoleProblem(spec.iamRole);
  if (roleProblem) throw new Error(`iam_role: ${roleProblem}`);
  if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/|$)/.test(spec.source)) {
    throw new Error(`source ${JSON.stringify(spec.source)} is not an s3://bucket/prefix URL`);
  }
  const options = (spec.options ?? []).map((entry) => parseCopyOption(entry, spec.format));
  const seen = new Set<string>();
  for (const option of options) {
    if (seen.has(option.keyword)) throw new Error(`copy_options: ${option.keyword} is given twice`);
    seen.add(option.keyword);
  }
  const target = [spec.schema, spec.table].filter((part) => part !== undefined)
    .map((part) => quoteIdentifier(part as string, "redshift")).join(".");
  const columns = spec.columns && spec.columns.length > 0 && spec.format !== "parquet"
    ? ` (${spec.columns.map((column) => quoteIdentifier(column, "redshift")).join(", ")})`
    : "";
  const role = spec.iamRole === "default" ? "default" : quoteLiteral(spec.iamRole, "redshift");
  const parts = [`COPY ${target}${columns} FROM ${quoteLiteral(spec.source, "redshift")} IAM_ROLE ${role}`];
  const quote = options.find((option) => option.keyword === "QUOTE");
  switch (spec.format) {
    case "csv":
      parts.push(quote ? `FORMAT AS CSV ${quote.sql}` : "FORMAT AS CSV");
      if (!seen.has("IGNOREHEADER")) parts.push("IGNOREHEADER 1");
      break;
    case "json":
      parts.push("FORMAT AS JSON 'auto ignorecase'");
      break;
    case "parquet":
      parts.push("FORMAT AS PARQUET");
      break;
  }
  for (const option of options) if (option !== quote) parts.push(option.sql);
  return parts.join(" ");
}

/** A JSON key that lakerun's naming rule puts in a column whose name is not the key's, ignoring case. */
export interface JsonKeyMismatch {
  key: string;
  column: string;
}

/**
 * The JSON keys that COPY's `FORMAT AS JSON 'auto ignorecase'` would not load into the column lakerun's naming
 * rule gives them ({@link columnsOfNames}, as `create_table` named the columns): COPY matches a key to a column
 * only by its name, ignoring case, so `Order ID` never fills `order_id`, which loads NULL without an error.
 * `columns` are the columns COPY fills; a key that names none of them, by either rule, is not returned (COPY
 * skips it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonKeyMismatches } from "./redshift_copy.ts";
 *
 * const columns = ["order_id", "amount", "customer"];
 * assert.deepEqual(jsonKeyMismatches(["Order ID", "Amount €", "Customer"], columns), [
 *   { key: "Order ID", column: "order_id" },
 *   { key: "Amount €", column: "amount" },
 * ]);
 * assert.deepEqual(jsonKeyMismatches(["ORDER_ID", "amount", "note"], columns), []);
 * // "ID" and "id" made the columns id and id_2: COPY fills id from both (ignoring case), id_2 from none
 * assert.deepEqual(jsonKeyMismatches(["ID", "id"], ["id", "id_2"]), [{ key: "ID", column: "id_2" }]);
 * ```
 */
export function jsonKeyMismatches(keys: readonly string[], columns: readonly string[]): JsonKeyMismatch[] {
  const unique = [...new Set(keys)];
  // the keys that name no column map to names of their own, outside `columns`
  const known = new Set(columns);
  const names = [...columns, ...columnIdentifiers(unique).filter((name) => !known.has(name))];
  const mapped = columnsOfNames(unique, names, { unknown: (key) => `no column for ${key}` });
  return unique.flatMap((key, index) =>
    known.has(mapped[index]) && key.toLowerCase() !== mapped[index].toLowerCase()
      ? [{ key, column: mapped[index] }]
      : []
  );
}

/**
 * The sentence refusing a JSON load whose keys COPY would not match to their columns ({@link jsonKeyMismatches}).
 */
export function jsonKeysMessage(mismatches: readonly JsonKeyMismatch[], where: string): string {
  const pairs = mismatches.map(({ key, column }) => `${JSON.stringify(key)} → ${column}`).join(", ");
  return `the JSON keys of ${where} differ from the columns they fill other than by case (${pairs}): ` +
    "Redshift's COPY (FORMAT AS JSON 'auto ignorecase') matches a key to a column by its name, ignoring case " +
    "only, and would load NULL into those columns without an error; rename the keys in the files to the " +
    "column names (or create the table with columns named as the keys)";
}
