/**
 * A FAKE of the Amazon Redshift Data API, backed by a real PostgreSQL 15 (`tests/support/postgres.ts`).
 *
 * Why a fake: moto 5.2.1's redshift-data is unusable from a JavaScript client (it sends ISO timestamps where
 * awsJson1_1 wants epoch numbers, never leaves STARTED, and has no BatchExecuteStatement; see
 * `/work/shared/notes/aws-stand-ins.md` §1.4), and no real Redshift is reachable from here. This server
 * speaks the Data API's wire format and runs the SQL it receives on PostgreSQL, so a test sees real
 * transactions, real rows and real SQL errors. It is not Redshift: what PostgreSQL accepts differs, and the
 * one Redshift statement lakerun needs that PostgreSQL lacks, `COPY … FROM 's3://…'`, is EMULATED (below).
 * Only loopback (`127.0.0.1`) is ever bound.
 *
 * **Wire format** (awsJson1_1, as the botocore model `redshift-data/2019-12-20` describes it): `POST /` with
 * `X-Amz-Target: RedshiftData.<Op>` and a JSON body; answers are `application/x-amz-json-1.1`; timestamps are
 * epoch seconds (numbers, millisecond precision). Errors are HTTP 400 (500 for `InternalServerException`)
 * with `{"__type": Name, "message": …}` and an `x-amzn-ErrorType: Name` header. A SigV4 `Authorization`
 * header is recorded, never verified.
 *
 * **Operations:**
 * - `ExecuteStatement` (`Sql`) and `BatchExecuteStatement` (`Sqls`, 1–40): need `Database` and exactly one of
 *   `ClusterIdentifier` / `WorkgroupName`; `DbUser` only with a cluster. They answer at once with an `Id`;
 *   the SQL then runs in the background on a NEW PostgreSQL session (as the Data API gives each statement its
 *   own session), connected as the test server's superuser to the database named by `Database` (`DbUser` and
 *   `SecretArn` are recorded only). A batch runs its statements in ONE PostgreSQL transaction (`BEGIN` …
 *   `COMMIT`): all or nothing; the first failing statement rolls everything back. A single statement runs in
 *   autocommit. `Parameters` are refused (not emulated).
 * - `ClientToken`: the same token with the same request answers the same `Id` and runs nothing again; the
 *   same token with another request answers `ValidationException` ("Idempotent parameters do not match").
 * - `DescribeStatement`: `Status` SUBMITTED → PICKED → STARTED → FINISHED | FAILED | ABORTED, `Error`
 *   (`ERROR: <PostgreSQL's message>`), `CreatedAt`, `UpdatedAt`, `Duration` (nanoseconds, -1 until it ends),
 *   `HasResultSet`, `ResultRows` (rows returned or affected; -1 for statements that report none, such as DDL),
 *   `RedshiftPid` (the PostgreSQL backend pid), `RedshiftQueryId` (a counter), `QueryString`, the identity
 *   members, and for a batch `SubStatements` (`Id` = `<batchId>:<n>`). In a failed batch, statements before
 *   the failing one read FINISHED (their work rolled back), the failing one FAILED, the rest ABORTED.
 * - `GetStatementResult` (`Id` of a statement, or `<batchId>:<n>` of a batch's statement): `Records` of typed
 *   fields (`{longValue}` for int2/int4/int8, `{doubleValue}` for float4/float8, `{booleanValue}`,
 *   `{stringValue}` for everything else, numeric included, as PostgreSQL's text; `{isNull: true}`),
 *   `ColumnMetadata`, `TotalNumRows`, paged by `NextToken` ({@link RedshiftDataFakeOptions.pageSize} rows a
 *   page). A statement without a result set, or not FINISHED: `ValidationException`.
 * - `CancelStatement`: a statement not yet STARTED becomes ABORTED and never runs; a running one is
 *   cancelled with `pg_cancel_backend` (its transaction rolls back) and reads ABORTED; `{Status: true}`. A
 *   finished one: `ValidationException`.
 * - Faults: {@link RedshiftDataFake.throttle} answers the next calls of an operation with
 *   `ThrottlingException` ("Rate exceeded"); {@link RedshiftDataFake.fail} with any error, optionally after
 *   the operation took effect (a reply lost after the statement was submitted). {@link RedshiftDataFake.script}
 *   holds matching statements SUBMITTED / PICKED for a while before they run.
 *
 * **`COPY … FROM 's3://…'` emulation.** A statement that starts with `COPY` and reads from `s3://` is
 * recorded ({@link CopyRecord}) and emulated, never sent to PostgreSQL as written. The fake parses exactly
 * this grammar (case-insensitive keywords; identifiers bare or in double quotes; literals in single quotes
 * with `''` and Redshift's backslash escapes):
 *
 * ```
 * COPY table [ ( column [, …] ) ] FROM 's3://bucket/prefix' IAM_ROLE { 'arn…' | default }
 *   FORMAT [AS] CSV [ QUOTE [AS] 'c' ]  (or: CSV [ QUOTE … ])
 *   [ DELIMITER [AS] 'c' ] [ IGNOREHEADER [AS] n ] [ NULL AS 'text' ] [ GZIP ]
 *   [ REGION [AS] '…' ] [ DATEFORMAT [AS] 'auto' ] [ TIMEFORMAT [AS] 'auto' ] [ STATUPDATE … ] [ COMPUPDATE … ]
 * ```
 *
 * - It lists the objects of the S3 server given in {@link RedshiftDataFakeOptions.s3} whose keys start with
 *   the prefix (Redshift's rule: a key prefix, not a folder), in key order; none: the statement fails with
 *   "S3ServiceException: The specified S3 prefix '…' does not exist".
 * - Each object (gunzipped with GZIP) loses its first `IGNOREHEADER` lines and is fed to
 *   `COPY table (columns) FROM STDIN WITH (FORMAT csv, DELIMITER, QUOTE, NULL)` on the statement's session,
 *   inside the batch's transaction. Rows loaded: the sum over the files (`ResultRows`).
 * - A bad value (PostgreSQL rejects the COPY): the statement FAILS with Redshift's message "Load into table
 *   'T' failed.  Check 'stl_load_errors' system table for details.", the batch rolls back, and ONE row is
 *   inserted (committed) into the table `public.sys_load_error_detail`, which the fake creates shaped like
 *   Redshift's view (blank-padded `character(n)` text columns): `file_name` (the `s3://` URL), `line_number`
 *   (the line in the file, header lines counted), `column_name`, `column_type` (PostgreSQL's type name: `numeric`, `int8`, …),
 *   `raw_field_value`, `error_message` (PostgreSQL's message, not Redshift's wording), `error_code`
 *   (approximated: 1207 bad number syntax, 1202 extra columns, 1203 missing columns, 1204 value too long,
 *   1205 bad date/time, else 1200), `start_time` (UTC), `query_id`, `session_id`, `table_id`, `raw_line`.
 * - NOT emulated: `FORMAT JSON`, `PARQUET`, and every other format; `MANIFEST`, `MAXERROR`, `EMPTYASNULL`,
 *   `BLANKSASNULL`, `ACCEPTINVCHARS`, `TRUNCATECOLUMNS` and every option not listed above; date formats
 *   other than `'auto'`. Such a COPY FAILS with "redshift_data_fake: … is not emulated", so a test can never
 *   pass on semantics the fake does not have. Empty CSV fields load as PostgreSQL does (unquoted: NULL, `""`:
 *   empty text); Redshift loads an unquoted empty field into a VARCHAR column as an empty string unless
 *   EMPTYASNULL. The IAM role is recorded, not checked; the fake reads S3 with its own credentials.
 *
 * Choices NOT verified against AWS (the model does not say): the exact text of error messages, the
 * sub-statement states of a failed batch, `ResultRows` of DDL, and rejecting `GetStatementResult` on a batch
 * Id.
 *
 * ```ts ignore
 * const pg = await startPostgres();
 * await using fake = await startRedshiftDataFake({ postgres: pg, s3: { endpoint, region: "us-east-1" } });
 * // point lakerun's aws.endpoints.redshift_data at fake.endpoint, then:
 * fake.statements[0].sqls; fake.copies[0].files; fake.callsOf("BatchExecuteStatement").length;
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
// @ts-types="@types/pg"
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { S3Settings } from "../../lib/aws/settings.ts";
import { openS3Location } from "../../lib/aws/s3/storage.ts";
import type { PostgresTestServer } from "./postgres.ts";
import {
  AwsJsonError,
  awsJsonResponse,
  epochSeconds,
  FaultQueue,
  type Json,
  type LoopbackServer,
  parseJsonBody,
  serveLoopback,
} from "./aws_json.ts";
import { canonicalJson } from "../../lib/canonical_json.ts";

// ------------------------------------------------------------------------------------------------ types

/** A statement's `Status`. */
export type StatementStatus = "SUBMITTED" | "PICKED" | "STARTED" | "FINISHED" | "FAILED" | "ABORTED";

/** One request the fake received. */
export interface RedshiftDataCall {
  /** `X-Amz-Target`, e.g. `RedshiftData.DescribeStatement`. */
  target: string;
  /** The part after the dot. */
  operation: string;
  /** The parsed JSON body (`{}` when empty or not JSON). */
  body: Record<string, unknown>;
  /** Whether an `Authorization` header was present (never verified). */
  signed: boolean;
  /** HTTP status of the answer. */
  status: number;
  /** `__type` of the error answered, if any. */
  errorType?: string;
  /** The whole request as text (headers and body), to grep for secrets. */
  raw: string;
}

/** One SQL statement of a statement (a batch has several). */
export interface SubStatementRecord {
  /** `<batchId>:<n>` in a batch; the statement's own Id otherwise. */
  id: string;
  sql: string;
  status: StatementStatus;
  error?: string;
  /** Rows returned or affected; -1 when PostgreSQL reports none. */
  resultRows: number;
  hasResultSet: boolean;
  redshiftQueryId: number;
  createdAt: number;
  updatedAt: number;
  durationNs: number;
  /** The result set, as PostgreSQL's text (`null` for NULL). */
  result?: { fields: FieldInfo[]; rows: (string | null)[][] };
}

/** A result column as PostgreSQL described it. */
export interface FieldInfo {
  name: string;
  dataTypeID: number;
  dataTypeSize: number;
  dataTypeModifier: number;
}

/** One ExecuteStatement or BatchExecuteStatement, as the fake recorded and ran it. */
export interface StatementRecord {
  id: string;
  kind: "single" | "batch";
  /** The request body. */
  request: Record<string, unknown>;
  sqls: string[];
  clientToken?: string;
  database: string;
  clusterIdentifier?: string;
  workgroupName?: string;
  dbUser?: string;
  secretArn?: string;
  status: StatementStatus;
  error?: string;
  createdAt: number;
  updatedAt: number;
  /** When it reached FINISHED, FAILED or ABORTED (epoch ms). */
  endedAt?: number;
  /** How many times its SQL was sent to PostgreSQL: 0 or 1 (never more, whatever the retries). */
  runs: number;
  /** The PostgreSQL backend that ran it. */
  pid?: number;
  subStatements: SubStatementRecord[];
  /** CancelStatement was accepted for it. */
  cancelRequested: boolean;
}

/** An emulated `COPY … FROM 's3://…'`. */
export interface CopyRecord {
  /** The statement's Id (`<batchId>:<n>` in a batch). */
  statementId: string;
  sql: string;
  table: string;
  columns: string[];
  source: string;
  iamRole: string;
  /** The `s3://` URLs loaded, in order. */
  files: string[];
  rows: number;
  /** The load error, when a value was refused. */
  loadError?: { file: string; line?: number; column?: string; rawValue?: string; reason: string };
}

/** How statements matching a script are held before they run. */
export interface StatementScript {
  /** SUBMITTED for this long (default 0)… */
  submittedForMs?: number;
  /** …then PICKED for this long (default 0), then STARTED: the SQL runs. */
  pickedForMs?: number;
  /** How many statements it applies to (default: unlimited). */
  times?: number;
}

/** An error for {@link RedshiftDataFake.fail}. */
export interface FailOptions {
  /** `__type`, e.g. `InternalServerException`. */
  type: string;
  message?: string;
  /** Default 400 (500 for `InternalServerException`). */
  status?: number;
  /** Carry the operation out first, then answer the error (a reply lost after the work was done). */
  applied?: boolean;
}

/** Options of {@link startRedshiftDataFake}. */
export interface RedshiftDataFakeOptions {
  /** Where the SQL runs. */
  postgres: PostgresTestServer;
  /** The S3 server emulated COPYs read from (credentials from `AWS_ACCESS_KEY_ID`/`…SECRET…`). */
  s3?: S3Settings;
  /** Rows per GetStatementResult page. Default 1000. */
  pageSize?: number;
}

/** A running fake; see the module documentation. */
export interface RedshiftDataFake extends AsyncDisposable {
  /** `http://127.0.0.1:PORT` */
  readonly endpoint: string;
  readonly port: number;
  /** Every request, in order (throttled and failed ones included). */
  readonly calls: readonly RedshiftDataCall[];
  /** The calls of one operation. */
  callsOf(operation: string): RedshiftDataCall[];
  /** Every ExecuteStatement / BatchExecuteStatement accepted, oldest first. */
  readonly statements: readonly StatementRecord[];
  statement(id: string): StatementRecord | undefined;
  /** Every emulated COPY, oldest first. */
  readonly copies: readonly CopyRecord[];
  /** Holds the statements whose SQL contains `match` (or for which it returns true) before they run. */
  script(match: string | ((sqls: readonly string[]) => boolean), script: StatementScript): void;
  /** Answers the next `count` calls of `operation` with `ThrottlingException`. */
  throttle(operation: string, count?: number): void;
  /** Answers the next `count` calls of `operation` with the given error. */
  fail(operation: string, count: number, error: FailOptions): void;
  /** Resolves when no statement is waiting or running. */
  idle(): Promise<void>;
  /** Cancels what runs, stops the server and closes its PostgreSQL sessions. */
  stop(): Promise<void>;
}

// ------------------------------------------------------------------------------------------------ helpers

const PREFIX = "RedshiftData.";
const TERMINAL: ReadonlySet<StatementStatus> = new Set(["FINISHED", "FAILED", "ABORTED"]);
const LOAD_FAILED = (table: string) =>
  `Load into table '${table}' failed.  Check 'stl_load_errors' system table for details.`;

/** An error answered to the client. */
/** An error answered to the client: `{ __type, message }`, as the Redshift Data API sends it. */
const fakeError = (type: string, message: string, status = 400) =>
  new AwsJsonError(type, message, {}, status, "message");

const validation = (message: string) => fakeError("ValidationException", message);

function optionalString(body: Json, member: string): string | undefined {
  const value = body[member];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || value === "") throw validation(`${member} must be a non-empty string`);
  return value;
}

function requiredString(body: Json, member: string): string {
  const value = optionalString(body, member);
  if (value === undefined) {
    throw validation(
      `1 validation error detected: Value null at '${member.charAt(0).toLowerCase()}${
        member.slice(1)
      }' failed to satisfy constraint: Member must not be null`,
    );
  }
  return value;
}

/** `'…'` for PostgreSQL, standard_conforming_strings on. */
const pgLiteral = (value: string) => `'${value.replaceAll("'", "''")}'`;
const pgIdentifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

// ------------------------------------------------------------------------------------------------ COPY parsing

/** What the fake understood of a Redshift COPY. */
interface ParsedCopy {
  table: string[];
  columns: string[];
  source: string;
  iamRole: string;
  delimiter: string;
  quote: string;
  ignoreHeader: number;
  nullAs?: string;
  gzip: boolean;
}

type CopyToken = { kind: "word" | "ident" | "string" | "number" | "punct"; text: string };

/** Not something the emulation covers: the statement fails with this. */
class NotEmulated extends Error {}

/** Splits Redshift SQL into words, quoted identifiers, literals, numbers and punctuation. */
function tokenize(sql: string): CopyToken[] {
  const tokens: CopyToken[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (/\s/.test(c)) {
      i++;
    } else if (sql.startsWith("--", i)) {
      while (i < sql.length && sql[i] !== "\n") i++;
    } else if (c === '"') {
      let text = "";
      for (i++;; i++) {
        if (i >= sql.length) throw new NotEmulated("an identifier's quote never closes");
        if (sql[i] === '"' && sql[i + 1] === '"') {
          text += '"';
          i++;
        } else if (sql[i] === '"') {
          i++;
          break;
        } else {
          text += sql[i];
        }
      }
      tokens.push({ kind: "ident", text });
    } else if (c === "'") {
      let text = "";
      for (i++;; i++) {
        if (i >= sql.length) throw new NotEmulated("a string literal never closes");
        if (sql[i] === "'" && sql[i + 1] === "'") {
          text += "'";
          i++;
        } else if (sql[i] === "'") {
          i++;
          break;
        } else if (sql[i] === "\\" && i + 1 < sql.length) {
          const next = sql[++i];
          text += next === "t" ? "\t" : next === "n" ? "\n" : next === "r" ? "\r" : next;
        } else {
          text += sql[i];
        }
      }
      tokens.push({ kind: "string", text });
    } else if (/[A-Za-z_]/.test(c)) {
      const word = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(sql.slice(i))![0];
      tokens.push({ kind: "word", text: word.toUpperCase() });
      i += word.length;
    } else if (/\d/.test(c)) {
      const number = /^\d+/.exec(sql.slice(i))![0];
      tokens.push({ kind: "number", text: number });
      i += number.length;
    } else if ("(),.;".includes(c)) {
      tokens.push({ kind: "punct", text: c });
      i++;
    } else {
      throw new NotEmulated(`unexpected character ${JSON.stringify(c)}`);
    }
  }
  while (tokens.at(-1)?.text === ";") tokens.pop();
  return tokens;
}

/** True for a Redshift COPY from S3, which PostgreSQL cannot run. */
function isS3Copy(sql: string): boolean {
  return /^\s*(?:--[^\n]*\n\s*)*copy\b/i.test(sql) && /\bfrom\s+'s3:\/\//i.test(sql);
}

/** Parses the COPY grammar of the module documentation; throws {@link NotEmulated} for anything else. */
function parseCopy(sql: string): ParsedCopy {
  const tokens = tokenize(sql);
  let at = 0;
  const peek = () => tokens[at];
  const next = () => {
    const token = tokens[at++];
    if (!token) throw new NotEmulated("the statement ends early");
    return token;
  };
  const word = (expected: string) => {
    const token = next();
    if (token.kind !== "word" || token.text !== expected) {
      throw new NotEmulated(`expected ${expected}, found ${JSON.stringify(token.text)}`);
    }
  };
  const isWord = (text: string) => peek()?.kind === "word" && peek()!.text === text;
  const skipAs = () => {
    if (isWord("AS")) at++;
  };
  const name = () => {
    const token = next();
    if (token.kind === "ident") return token.text;
    if (token.kind === "word") return token.text.toLowerCase();
    throw new NotEmulated(`expected a name, found ${JSON.stringify(token.text)}`);
  };
  const literal = () => {
    const token = next();
    if (token.kind !== "string") throw new NotEmulated(`expected a quoted value, found ${token.text}`);
    return token.text;
  };

  word("COPY");
  const table = [name()];
  if (peek()?.text === ".") {
    at++;
    table.push(name());
  }
  const columns: string[] = [];
  if (peek()?.text === "(") {
    at++;
    for (;;) {
      columns.push(name());
      const token = next();
      if (token.text === ")") break;
      if (token.text !== ",") throw new NotEmulated(`expected , or ) in the column list`);
    }
  }
  word("FROM");
  const source = literal();
  if (!isWord("IAM_ROLE")) {
    throw new NotEmulated(
      `authorization ${JSON.stringify(peek()?.text ?? "")} is not emulated (only IAM_ROLE)`,
    );
  }
  at++;
  const role = next();
  if (!(role.kind === "string" || (role.kind === "word" && role.text === "DEFAULT"))) {
    throw new NotEmulated("IAM_ROLE needs a quoted ARN or default");
  }
  const parsed: ParsedCopy = {
    table,
    columns,
    source,
    iamRole: role.kind === "string" ? role.text : "default",
    delimiter: ",",
    quote: '"',
    ignoreHeader: 0,
    gzip: false,
  };
  let csv = false;
  const csvQuote = () => {
    csv = true;
    if (isWord("QUOTE")) {
      at++;
      skipAs();
      parsed.quote = literal();
    }
  };
  while (at < tokens.length) {
    const token = next();
    if (token.kind !== "word") throw new NotEmulated(`unexpected ${JSON.stringify(token.text)}`);
    switch (token.text) {
      case "FORMAT": {
        skipAs();
        const format = next();
        if (format.text !== "CSV") throw new NotEmulated(`FORMAT ${format.text} is not emulated (only CSV)`);
        csvQuote();
        break;
      }
      case "CSV":
        csvQuote();
        break;
      case "QUOTE":
        skipAs();
        parsed.quote = literal();
        break;
      case "DELIMITER":
        skipAs();
        parsed.delimiter = literal();
        break;
      case "IGNOREHEADER": {
        skipAs();
        const n = next();
        if (n.kind !== "number") throw new NotEmulated("IGNOREHEADER needs a number");
        parsed.ignoreHeader = Number(n.text);
        break;
      }
      case "NULL":
        word("AS");
        parsed.nullAs = literal();
        break;
      case "GZIP":
        parsed.gzip = true;
        break;
      case "REGION":
        skipAs();
        literal();
        break;
      case "DATEFORMAT":
      case "TIMEFORMAT": {
        skipAs();
        const format = literal();
        if (format.toLowerCase() !== "auto") {
          throw new NotEmulated(`${token.text} '${format}' is not emulated (only 'auto')`);
        }
        break;
      }
      case "STATUPDATE":
      case "COMPUPDATE":
        if (["ON", "OFF", "TRUE", "FALSE", "PRESET"].includes(peek()?.text ?? "")) at++;
        break;
      default:
        throw new NotEmulated(`COPY option ${token.text} is not emulated`);
    }
  }
  if (!csv) throw new NotEmulated("only FORMAT CSV is emulated (the statement names no format)");
  return parsed;
}

// ------------------------------------------------------------------------------------------------ results

const TYPE_NAMES: Record<number, string> = {
  16: "bool",
  20: "int8",
  21: "int2",
  23: "int4",
  25: "text",
  700: "float4",
  701: "float8",
  1042: "bpchar",
  1043: "varchar",
  1082: "date",
  1114: "timestamp",
  1184: "timestamptz",
  1700: "numeric",
};

function fieldOf(value: string | null, typeId: number): Json {
  if (value === null) return { isNull: true };
  if (typeId === 16) return { booleanValue: value === "t" };
  if (typeId === 20 || typeId === 21 || typeId === 23) return { longValue: Number(value) };
  if ((typeId === 700 || typeId === 701) && Number.isFinite(Number(value))) {
    return { doubleValue: Number(value) };
  }
  return { stringValue: value };
}

function columnMetadata(field: FieldInfo): Json {
  const typeName = TYPE_NAMES[field.dataTypeID] ?? `oid${field.dataTypeID}`;
  const numeric = [20, 21, 23, 700, 701, 1700].includes(field.dataTypeID);
  const modifier = field.dataTypeModifier;
  return {
    name: field.name,
    label: field.name,
    typeName,
    nullable: 1,
    isSigned: numeric,
    isCurrency: false,
    isCaseSensitive: [25, 1042, 1043].includes(field.dataTypeID),
    length: [1042, 1043].includes(field.dataTypeID) && modifier > 4 ? modifier - 4 : field.dataTypeSize,
    precision: field.dataTypeID === 1700 && modifier > 4 ? ((modifier - 4) >> 16) & 0xffff : 0,
    scale: field.dataTypeID === 1700 && modifier > 4 ? (modifier - 4) & 0xffff : 0,
    schemaName: "",
    tableName: "",
  };
}

/** A pagination token bound to one statement. */
const encodeToken = (id: string, position: number) => btoa(JSON.stringify({ id, position }));

function decodeToken(token: string, id: string): number {
  try {
    const parsed = JSON.parse(atob(token));
    if (parsed.id === id && Number.isInteger(parsed.position)) return parsed.position;
  } catch {
    // fall through
  }
  throw validation("Invalid NextToken");
}

/** Redshift's load error codes, approximated from PostgreSQL's errors. */
function loadErrorCode(error: { code?: string; message: string }): number {
  if (error.code === "22P02") return 1207;
  if (/extra data after last expected column/.test(error.message)) return 1202;
  if (/missing data for column/.test(error.message)) return 1203;
  if (error.code === "22001") return 1204;
  if (error.code === "22007" || error.code === "22008") return 1205;
  return 1200;
}

const SYS_LOAD_ERROR_DETAIL = `CREATE TABLE IF NOT EXISTS public.sys_load_error_detail (
  user_id integer, query_id bigint, transaction_id bigint, session_id integer,
  database_name character(128), table_id integer, start_time timestamp without time zone,
  file_name character(256), line_number bigint, column_name character(127), column_type character(10),
  column_length character(10), position integer, error_code integer, error_message character(512),
  raw_line character(1024), raw_field_value character(1024)
)`;

// ------------------------------------------------------------------------------------------------ the fake

class Fake implements RedshiftDataFake {
  readonly calls: RedshiftDataCall[] = [];
  readonly statements: StatementRecord[] = [];
  readonly copies: CopyRecord[] = [];
  readonly #options: RedshiftDataFakeOptions;
  readonly #tokens = new Map<string, { id: string; fingerprint: string }>();
  readonly #faults = new FaultQueue("redshift_data_fake");
  readonly #scripts: Array<
    { match: (sqls: readonly string[]) => boolean; script: StatementScript; left: number }
  > = [];
  readonly #running = new Set<Promise<void>>();
  #server: LoopbackServer | undefined;
  #queryId = 1000;

  constructor(options: RedshiftDataFakeOptions) {
    this.#options = options;
  }

  async listen(): Promise<void> {
    await this.#admin((client) => client.query(SYS_LOAD_ERROR_DETAIL));
    this.#server = serveLoopback((req) => this.#handle(req));
  }

  get port(): number {
    return this.#server!.port;
  }

  get endpoint(): string {
    return this.#server!.endpoint;
  }

  callsOf(operation: string): RedshiftDataCall[] {
    return this.calls.filter((call) => call.operation === operation || call.target === operation);
  }

  statement(id: string): StatementRecord | undefined {
    return this.statements.find((statement) => statement.id === id);
  }

  script(match: string | ((sqls: readonly string[]) => boolean), script: StatementScript): void {
    const matcher = typeof match === "string"
      ? (sqls: readonly string[]) => sqls.some((s) => s.includes(match))
      : match;
    this.#scripts.push({ match: matcher, script, left: script.times ?? Infinity });
  }

  throttle(operation: string, count = 1): void {
    this.#addFault(operation, count, () => fakeError("ThrottlingException", "Rate exceeded"), false);
  }

  fail(operation: string, count: number, error: FailOptions): void {
    const status = error.status ?? (error.type === "InternalServerException" ? 500 : 400);
    const make = () =>
      fakeError(error.type, error.message ?? `redshift_data_fake: injected ${error.type}`, status);
    this.#addFault(operation, count, make, error.applied ?? false);
  }

  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  async stop(): Promise<void> {
    for (const statement of this.statements) {
      if (!TERMINAL.has(statement.status)) await this.#cancel(statement).catch(() => {});
    }
    await this.idle();
    await this.#server?.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #addFault(operation: string, count: number, error: () => AwsJsonError, applied: boolean): void {
    this.#faults.add(operation.startsWith(PREFIX) ? operation : PREFIX + operation, count, error, applied);
  }

  async #handle(req: Request): Promise<Response> {
    const target = req.headers.get("x-amz-target") ?? "";
    const text = await req.text();
    const call: RedshiftDataCall = {
      target,
      operation: target.slice(target.indexOf(".") + 1),
      body: {},
      signed: req.headers.has("authorization"),
      status: 0,
      raw: `${[...req.headers].map(([k, v]) => `${k}: ${v}`).join("\n")}\n\n${text}`,
    };
    this.calls.push(call);
    let answer: Json | AwsJsonError;
    try {
      answer = await this.#dispatch(req, call, text);
    } catch (error) {
      answer = error instanceof AwsJsonError
        ? error
        : fakeError("InternalServerException", `redshift_data_fake bug: ${error}`, 500);
    }
    call.status = answer instanceof AwsJsonError ? answer.status : 200;
    if (answer instanceof AwsJsonError) call.errorType = answer.type;
    return awsJsonResponse(answer);
  }

  async #dispatch(req: Request, call: RedshiftDataCall, text: string): Promise<Json> {
    if (req.method !== "POST" || new URL(req.url).pathname !== "/" || !call.target.startsWith(PREFIX)) {
      throw fakeError("UnknownOperationException", `redshift_data_fake: no operation ${call.target}`);
    }
    call.body = parseJsonBody(text, "redshift_data_fake");
    const handlers: Record<string, (body: Json) => Json | Promise<Json>> = {
      ExecuteStatement: (body) => this.#execute(body, "single"),
      BatchExecuteStatement: (body) => this.#execute(body, "batch"),
      DescribeStatement: (body) => this.#describe(body),
      GetStatementResult: (body) => this.#result(body),
      CancelStatement: (body) => this.#cancelCall(body),
    };
    const handler = handlers[call.operation];
    if (!handler) {
      throw fakeError("UnknownOperationException", `redshift_data_fake: no operation ${call.target}`);
    }
    const fault = this.#faults.take(call.target);
    if (fault && !fault.applied) throw fault.error();
    const answer = await handler(call.body);
    if (fault) throw fault.error();
    return answer;
  }

  // ---------------------------------------------------------------------------------------- operations

  #execute(body: Json, kind: "single" | "batch"): Json {
    const sqls = kind === "single" ? [requiredString(body, "Sql")] : this.#sqls(body);
    const database = requiredString(body, "Database");
    const clusterIdentifier = optionalString(body, "ClusterIdentifier");
    const workgroupName = optionalString(body, "WorkgroupName");
    if ((clusterIdentifier === undefined) === (workgroupName === undefined)) {
      throw validation("Either ClusterIdentifier or WorkgroupName must be specified, not both");
    }
    const dbUser = optionalString(body, "DbUser");
    const secretArn = optionalString(body, "SecretArn");
    if (dbUser !== undefined && secretArn !== undefined) {
      throw validation("Specify DbUser or SecretArn, not both");
    }
    if (dbUser !== undefined && workgroupName !== undefined) {
      throw validation("DbUser is not supported with WorkgroupName (serverless)");
    }
    if (body.Parameters !== undefined) throw validation("redshift_data_fake: Parameters are not emulated");
    const clientToken = optionalString(body, "ClientToken");
    if (clientToken !== undefined && clientToken.length > 64) {
      throw validation("ClientToken must be 1 to 64 characters");
    }
    if (clientToken !== undefined) {
      const { ClientToken: _, ...rest } = body;
      const fingerprint = `${kind}:${canonicalJson(rest)}`;
      const known = this.#tokens.get(clientToken);
      if (known) {
        if (known.fingerprint !== fingerprint) throw validation("Idempotent parameters do not match");
        return this.#executeAnswer(this.statement(known.id)!);
      }
      const statement = this.#create(body, kind, sqls, {
        database,
        clusterIdentifier,
        workgroupName,
        dbUser,
        secretArn,
        clientToken,
      });
      this.#tokens.set(clientToken, { id: statement.id, fingerprint });
      return this.#executeAnswer(statement);
    }
    return this.#executeAnswer(
      this.#create(body, kind, sqls, { database, clusterIdentifier, workgroupName, dbUser, secretArn }),
    );
  }

  #sqls(body: Json): string[] {
    const sqls = body.Sqls;
    if (!Array.isArray(sqls) || sqls.length < 1 || sqls.length > 40) {
      throw validation("Sqls must hold 1 to 40 statements");
    }
    if (!sqls.every((sql) => typeof sql === "string" && sql.trim() !== "")) {
      throw validation("every member of Sqls must be a non-empty string");
    }
    return sqls as string[];
  }

  #executeAnswer(statement: StatementRecord): Json {
    const answer: Json = {
      Id: statement.id,
      CreatedAt: epochSeconds(statement.createdAt),
      Database: statement.database,
    };
    if (statement.clusterIdentifier) answer.ClusterIdentifier = statement.clusterIdentifier;
    if (statement.workgroupName) answer.WorkgroupName = statement.workgroupName;
    if (statement.dbUser) answer.DbUser = statement.dbUser;
    if (statement.secretArn) answer.SecretArn = statement.secretArn;
    return answer;
  }

  #create(
    request: Json,
    kind: "single" | "batch",
    sqls: string[],
    identity: Pick<
      StatementRecord,
      "database" | "clusterIdentifier" | "workgroupName" | "dbUser" | "secretArn" | "clientToken"
    >,
  ): StatementRecord {
    const now = Date.now();
    const id = crypto.randomUUID();
    const statement: StatementRecord = {
      id,
      kind,
      request,
      sqls,
      ...identity,
      status: "SUBMITTED",
      createdAt: now,
      updatedAt: now,
      runs: 0,
      cancelRequested: false,
      subStatements: sqls.map((sql, index) => ({
        id: kind === "batch" ? `${id}:${index + 1}` : id,
        sql,
        status: "SUBMITTED",
        resultRows: -1,
        hasResultSet: false,
        redshiftQueryId: 0,
        createdAt: now,
        updatedAt: now,
        durationNs: -1,
      })),
    };
    this.statements.push(statement);
    const slot = this.#scripts.find((s) => s.left > 0 && s.match(sqls));
    if (slot) slot.left--;
    const task = this.#run(statement, slot?.script ?? {}).catch((error) => {
      this.#end(statement, "FAILED", `redshift_data_fake bug: ${error}`);
    });
    this.#running.add(task);
    task.finally(() => this.#running.delete(task));
    return statement;
  }

  #describe(body: Json): Json {
    const id = requiredString(body, "Id");
    const statement = this.statement(id);
    if (!statement) throw fakeError("ResourceNotFoundException", `Query does not exist: ${id}`);
    const main = statement.subStatements[0];
    const answer: Json = {
      Id: statement.id,
      Status: statement.status,
      CreatedAt: epochSeconds(statement.createdAt),
      UpdatedAt: epochSeconds(statement.updatedAt),
      Database: statement.database,
      Duration: statement.endedAt === undefined ? -1 : (statement.endedAt - statement.createdAt) * 1_000_000,
      HasResultSet: statement.kind === "single" ? main.hasResultSet : false,
      ResultRows: statement.kind === "single" ? main.resultRows : -1,
      ResultSize: -1,
      RedshiftPid: statement.pid ?? 0,
      RedshiftQueryId: statement.kind === "single" ? main.redshiftQueryId : 0,
    };
    if (statement.kind === "single") answer.QueryString = main.sql;
    if (statement.error !== undefined) answer.Error = statement.error;
    if (statement.clusterIdentifier) answer.ClusterIdentifier = statement.clusterIdentifier;
    if (statement.workgroupName) answer.WorkgroupName = statement.workgroupName;
    if (statement.dbUser) answer.DbUser = statement.dbUser;
    if (statement.secretArn) answer.SecretArn = statement.secretArn;
    if (statement.kind === "batch") {
      answer.SubStatements = statement.subStatements.map((sub) => {
        const data: Json = {
          Id: sub.id,
          Status: sub.status,
          QueryString: sub.sql,
          CreatedAt: epochSeconds(sub.createdAt),
          UpdatedAt: epochSeconds(sub.updatedAt),
          Duration: sub.durationNs,
          HasResultSet: sub.hasResultSet,
          ResultRows: sub.resultRows,
          ResultSize: -1,
          RedshiftQueryId: sub.redshiftQueryId,
        };
        if (sub.error !== undefined) data.Error = sub.error;
        return data;
      });
    }
    return answer;
  }

  #result(body: Json): Json {
    const id = requiredString(body, "Id");
    const [statementId, part] = id.split(":");
    const statement = this.statement(statementId);
    if (!statement) throw fakeError("ResourceNotFoundException", `Query does not exist: ${id}`);
    if (statement.kind === "batch" && part === undefined) {
      throw validation("A batch has no result of its own: ask for <Id>:<n>");
    }
    const sub = part === undefined
      ? statement.subStatements[0]
      : statement.subStatements[Number(part) - 1] ?? (() => {
        throw fakeError("ResourceNotFoundException", `Query does not exist: ${id}`);
      })();
    if (sub.status !== "FINISHED" || !sub.result) {
      throw validation("Query does not have result. Please check query status with DescribeStatement.");
    }
    const pageSize = this.#options.pageSize ?? 1000;
    const start = body.NextToken === undefined ? 0 : decodeToken(String(body.NextToken), id);
    const rows = sub.result.rows.slice(start, start + pageSize);
    const answer: Json = {
      Records: rows.map((row) => row.map((value, i) => fieldOf(value, sub.result!.fields[i].dataTypeID))),
      ColumnMetadata: sub.result.fields.map(columnMetadata),
      TotalNumRows: sub.result.rows.length,
    };
    if (start + pageSize < sub.result.rows.length) answer.NextToken = encodeToken(id, start + pageSize);
    return answer;
  }

  async #cancelCall(body: Json): Promise<Json> {
    const id = requiredString(body, "Id");
    const statement = this.statement(id);
    if (!statement) throw fakeError("ResourceNotFoundException", `Query does not exist: ${id}`);
    if (TERMINAL.has(statement.status)) {
      throw validation(`Could not cancel a query that is already in ${statement.status} state.`);
    }
    await this.#cancel(statement);
    return { Status: true };
  }

  async #cancel(statement: StatementRecord): Promise<void> {
    statement.cancelRequested = true;
    if (statement.status === "SUBMITTED" || statement.status === "PICKED") {
      this.#end(statement, "ABORTED");
      return;
    }
    if (statement.pid === undefined) return;
    // a cancel that reaches the backend between two statements is lost: repeat it until the statement ends
    const pid = statement.pid;
    await this.#admin((client) => client.query("SELECT pg_cancel_backend($1)", [pid]));
    const repeat = (async () => {
      for (let i = 0; i < 50 && !TERMINAL.has(statement.status); i++) {
        await delay(100);
        if (!TERMINAL.has(statement.status)) {
          await this.#admin((client) => client.query("SELECT pg_cancel_backend($1)", [pid])).catch(() => {});
        }
      }
    })();
    this.#running.add(repeat);
    repeat.finally(() => this.#running.delete(repeat));
  }

  // ---------------------------------------------------------------------------------------- running

  async #run(statement: StatementRecord, script: StatementScript): Promise<void> {
    if (script.submittedForMs) await delay(script.submittedForMs);
    if (statement.cancelRequested) return;
    this.#set(statement, "PICKED");
    if (script.pickedForMs) await delay(script.pickedForMs);
    if (statement.cancelRequested) return;
    const client = this.#client(statement.database);
    try {
      await client.connect();
    } catch (error) {
      this.#end(statement, "FAILED", `FATAL: ${(error as Error).message}`);
      return;
    }
    try {
      statement.pid = (await client.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
      if (statement.cancelRequested) {
        this.#end(statement, "ABORTED");
        return;
      }
      this.#set(statement, "STARTED");
      statement.runs++;
      const batch = statement.kind === "batch";
      if (batch) await client.query("BEGIN");
      let failed: { index: number; error: string; loadError?: () => Promise<void> } | undefined;
      for (const [index, sub] of statement.subStatements.entries()) {
        sub.status = "STARTED";
        sub.redshiftQueryId = ++this.#queryId;
        const started = Date.now();
        try {
          if (statement.cancelRequested) throw new Error("canceling statement due to user request");
          await this.#runOne(client, statement, sub);
          sub.status = "FINISHED";
        } catch (error) {
          const e = error as Error & { code?: string; pending?: () => Promise<void> };
          failed = {
            index,
            error: e instanceof NotEmulated ? `redshift_data_fake: ${e.message}` : `ERROR: ${e.message}`,
            loadError: e.pending,
          };
          sub.status = statement.cancelRequested ? "ABORTED" : "FAILED";
          sub.error = failed.error;
        }
        sub.updatedAt = Date.now();
        sub.durationNs = (sub.updatedAt - started) * 1_000_000;
        if (failed) break;
      }
      if (failed) {
        if (batch) await client.query("ROLLBACK").catch(() => {});
        for (const sub of statement.subStatements.slice(failed.index + 1)) sub.status = "ABORTED";
        await failed.loadError?.();
        this.#end(statement, statement.cancelRequested ? "ABORTED" : "FAILED", failed.error);
        return;
      }
      if (batch) await client.query("COMMIT");
      this.#end(statement, "FINISHED");
    } catch (error) {
      this.#end(
        statement,
        statement.cancelRequested ? "ABORTED" : "FAILED",
        `ERROR: ${(error as Error).message}`,
      );
    } finally {
      await client.end().catch(() => {});
    }
  }

  async #runOne(client: pg.Client, statement: StatementRecord, sub: SubStatementRecord): Promise<void> {
    if (isS3Copy(sub.sql)) {
      sub.resultRows = await this.#copy(client, statement, sub);
      return;
    }
    const result = await client.query({
      text: sub.sql,
      rowMode: "array",
      types: { getTypeParser: () => (value: string) => value },
    } as pg.QueryConfig);
    const last = Array.isArray(result) ? result.at(-1) : result;
    const fields = (last?.fields ?? []) as FieldInfo[];
    sub.hasResultSet = fields.length > 0;
    sub.resultRows = last?.rowCount ?? -1;
    if (sub.hasResultSet) {
      sub.result = {
        fields: fields.map(({ name, dataTypeID, dataTypeSize, dataTypeModifier }) => ({
          name,
          dataTypeID,
          dataTypeSize,
          dataTypeModifier,
        })),
        rows: last!.rows as (string | null)[][],
      };
    }
  }

  /** Emulates a Redshift COPY from S3; resolves to the rows loaded. */
  async #copy(client: pg.Client, statement: StatementRecord, sub: SubStatementRecord): Promise<number> {
    const copy = parseCopy(sub.sql);
    const record: CopyRecord = {
      statementId: sub.id,
      sql: sub.sql,
      table: copy.table.join("."),
      columns: copy.columns,
      source: copy.source,
      iamRole: copy.iamRole,
      files: [],
      rows: 0,
    };
    this.copies.push(record);
    const files = await this.#s3Files(copy.source);
    const table = copy.table.map(pgIdentifier).join(".");
    const tableName = copy.table.at(-1)!;
    // column types, read before the COPY (an aborted transaction answers nothing)
    const types = new Map<string, string>(
      (await client.query(
        "SELECT a.attname AS name, t.typname AS type FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid " +
          "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        [table],
      )).rows.map((row) => [row.name, row.type]),
    );
    const options = [
      "FORMAT csv",
      `DELIMITER ${pgLiteral(copy.delimiter)}`,
      `QUOTE ${pgLiteral(copy.quote)}`,
      ...(copy.nullAs === undefined ? [] : [`NULL ${pgLiteral(copy.nullAs)}`]),
    ];
    const columns = copy.columns.length ? ` (${copy.columns.map(pgIdentifier).join(", ")})` : "";
    const sql = `COPY ${table}${columns} FROM STDIN WITH (${options.join(", ")})`;
    for (const file of files) {
      if (statement.cancelRequested) {
        throw Object.assign(new Error("canceling statement due to user request"));
      }
      let text = new TextDecoder().decode(copy.gzip ? await gunzip(file.bytes) : file.bytes);
      let skipped = 0;
      for (; skipped < copy.ignoreHeader && text !== ""; skipped++) {
        const end = text.indexOf("\n");
        text = end === -1 ? "" : text.slice(end + 1);
      }
      const stream = client.query(copyFrom(sql));
      try {
        await pipeline(Readable.from([Buffer.from(text)]), stream);
      } catch (error) {
        const e = error as Error & { code?: string; where?: string };
        if (e.code === "57014") throw e; // cancelled
        const where = /line (\d+)(?:, column ([^:]+))?(?:: (?:"([\s\S]*)"|(null input)))?/.exec(
          e.where ?? "",
        );
        const loadError: CopyRecord["loadError"] = { file: file.url, reason: e.message };
        if (where) {
          loadError.line = Number(where[1]) + skipped;
          if (where[2]) loadError.column = where[2];
          if (where[3] !== undefined && where[2]) loadError.rawValue = where[3];
        }
        record.loadError = loadError;
        const lines = text.split("\n");
        const rawLine = where ? lines[Number(where[1]) - 1] ?? "" : "";
        const failure = new Error(LOAD_FAILED(tableName)) as Error & { pending: () => Promise<void> };
        failure.pending = () =>
          client.query(
            "INSERT INTO public.sys_load_error_detail (user_id, query_id, transaction_id, session_id, " +
              "database_name, table_id, start_time, file_name, line_number, column_name, column_type, " +
              "column_length, position, error_code, error_message, raw_line, raw_field_value) VALUES " +
              "(100, $1, $1, $2, $3, 0, now() AT TIME ZONE 'UTC', $4, $5, $6, $7, '', 0, $8, $9, $10, $11)",
            [
              sub.redshiftQueryId,
              statement.pid,
              statement.database,
              file.url,
              loadError.line ?? null,
              loadError.column ?? "",
              (loadError.column ? types.get(loadError.column) ?? "" : "").slice(0, 10),
              loadErrorCode(e),
              e.message.slice(0, 512),
              rawLine.slice(0, 1024),
              (loadError.rawValue ?? "").slice(0, 1024),
            ],
          ).then(() => {});
        throw failure;
      }
      record.files.push(file.url);
      record.rows += (stream as unknown as { rowCount: number }).rowCount;
    }
    return record.rows;
  }

  /** The objects whose keys start with the prefix of `source`, in key order, with their bytes. */
  async #s3Files(source: string): Promise<Array<{ url: string; bytes: Uint8Array }>> {
    const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(source);
    if (!match) throw new Error(`S3ServiceException: invalid source ${source}`);
    const [, bucket, key] = match;
    const slash = key.lastIndexOf("/");
    const folder = slash === -1 ? "" : key.slice(0, slash);
    const namePrefix = key.slice(slash + 1);
    const storage = openS3Location(`s3://${bucket}${folder ? `/${folder}` : ""}`, this.#options.s3);
    const files: Array<{ url: string; bytes: Uint8Array }> = [];
    for await (const file of storage.list()) {
      if (!file.path.startsWith(namePrefix)) continue;
      const bytes = new Uint8Array(await new Response(await storage.read(file.path)).arrayBuffer());
      files.push({ url: `s3://${bucket}/${folder ? `${folder}/` : ""}${file.path}`, bytes });
    }
    if (files.length === 0) {
      throw new Error(`S3ServiceException: The specified S3 prefix '${key}' does not exist`);
    }
    return files;
  }

  #set(statement: StatementRecord, status: StatementStatus): void {
    statement.status = status;
    statement.updatedAt = Date.now();
    if (status === "STARTED" || status === "FINISHED") return; // the run loop moves each statement on
    for (const sub of statement.subStatements) {
      if (!TERMINAL.has(sub.status)) sub.status = TERMINAL.has(status) ? "ABORTED" : status;
    }
  }

  #end(statement: StatementRecord, status: "FINISHED" | "FAILED" | "ABORTED", error?: string): void {
    if (TERMINAL.has(statement.status)) return;
    this.#set(statement, status);
    statement.endedAt = statement.updatedAt;
    if (error !== undefined && status !== "FINISHED") statement.error = error;
  }

  #client(database: string): pg.Client {
    const server = this.#options.postgres;
    return new pg.Client({
      host: server.host,
      port: server.port,
      user: server.user,
      password: server.password,
      database,
    });
  }

  async #admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = this.#client(this.#options.postgres.database);
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function gunzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Starts the fake on `127.0.0.1` with a free port, after creating `public.sys_load_error_detail` in the
 * PostgreSQL server's database. Stop it with `stop()` (or `await using`).
 */
export async function startRedshiftDataFake(options: RedshiftDataFakeOptions): Promise<RedshiftDataFake> {
  const fake = new Fake(options);
  await fake.listen();
  return fake;
}
