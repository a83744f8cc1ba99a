/**
 * A PostgreSQL session for lakerun's steps, over the `pg` client: connect with a step's connection params
 * (TLS per `ssl`, the password read from the variable `password_env` names), run statements, stream a
 * `ReadableStream` through `COPY … FROM STDIN` with backpressure (never more than a chunk or two in memory),
 * cancel the running statement when the step is aborted, and turn the server's errors into one line.
 *
 * Cancelling: when the session's `signal` aborts, a COPY in progress is ended with CopyFail and any running
 * statement gets PostgreSQL's cancel request (a separate connection carrying the backend's pid and secret
 * key, what `pg_cancel_backend` does); the statement then fails with SQLSTATE 57014 and {@link
 * PostgresSession.cancelled} says so. Closing the session ends an open transaction without committing it.
 *
 * The password is handed to `pg` through a function, never stored in its config, and no message this module
 * makes holds it.
 *
 * @module
 */
import { connect as tcpConnect } from "node:net";
import { Buffer } from "node:buffer";
// @ts-types="@types/pg"
import pg from "pg";
import type { ConnectionTarget } from "./connection.ts";

/** Options of {@link connectPostgres}. */
export interface ConnectOptions {
  /** The password (when the server asks for one); read from `target.passwordEnv` by default. */
  password?: string;
  /** Aborting it cancels the running statement (see the module doc). */
  signal?: AbortSignal;
  /** Shown in `pg_stat_activity.application_name`. Default `lakerun`. */
  applicationName?: string;
  /** Give up connecting after this long. Default 30 s. */
  connectTimeoutMs?: number;
}

/** What a statement returned. */
export interface QueryResult<Row> {
  rows: Row[];
  /** Rows the statement inserted, updated, deleted or copied (`null` when it does not count rows). */
  rowCount: number | null;
}

/** Options of {@link PostgresSession.copyFrom}. */
export interface CopyOptions {
  /** Called with the bytes sent so far, after each chunk. */
  onBytes?(bytes: number): void;
}

/**
 * An error the server (or the connection) reported, with PostgreSQL's fields. Its message is one line: the
 * server's message, then its detail, hint and the position it names.
 */
export class PostgresError extends Error {
  /** SQLSTATE, e.g. `22P02`; `undefined` for a connection failure. */
  readonly code?: string;
  /** The server's message alone. */
  readonly serverMessage: string;
  readonly detail?: string;
  readonly hint?: string;
  /** The CONTEXT line, e.g. `COPY t, line 3, column amount: "abc"`. */
  readonly where?: string;
  /** The column a constraint names. */
  readonly column?: string;
  readonly constraint?: string;
  readonly table?: string;

  constructor(
    fields: {
      message: string;
      code?: string;
      detail?: string;
      hint?: string;
      where?: string;
      column?: string;
      constraint?: string;
      table?: string;
    },
    options?: ErrorOptions,
  ) {
    const extra = [fields.detail, fields.hint].filter((text): text is string => !!text).map(oneLine);
    super([oneLine(fields.message), ...extra].join("; "), options);
    this.name = "PostgresError";
    this.serverMessage = fields.message;
    this.code = fields.code;
    this.detail = fields.detail;
    this.hint = fields.hint;
    this.where = fields.where;
    this.column = fields.column;
    this.constraint = fields.constraint;
    this.table = fields.table;
  }
}

/** Where in a COPY's input the server found a bad row. */
export interface CopyErrorPosition {
  /** The input line (from 1, the header included), as the server counts it: a record's last line. */
  line: number;
  /** The column, when the error is about one value. */
  column?: string;
  /** The value (the server cuts long ones), or the whole line when there is no column. */
  value?: string;
}

/**
 * Reads the position out of a COPY error's CONTEXT line (`COPY t, line 3, column amount: "abc"`), or
 * `undefined` when it is not a COPY error. A constraint's column, which the CONTEXT does not name, comes
 * from the error's column field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyErrorPosition, PostgresError } from "./postgres_client.ts";
 *
 * const error = new PostgresError({
 *   message: 'invalid input syntax for type bigint: "abc"',
 *   code: "22P02",
 *   where: 'COPY orders, line 3, column amount: "abc"',
 * });
 * assert.deepEqual(copyErrorPosition(error), { line: 3, column: "amount", value: "abc" });
 * const notNull = new PostgresError({ message: "null value…", code: "23502", where: 'COPY t, line 2: ",b"', column: "id" });
 * assert.deepEqual(copyErrorPosition(notNull), { line: 2, column: "id", value: ",b" });
 * const json = new PostgresError({
 *   message: "invalid input syntax for type json",
 *   code: "22P02",
 *   where: 'JSON data, line 1: hello\nCOPY t, line 3, column doc: "hello"',
 * });
 * assert.deepEqual(copyErrorPosition(json), { line: 3, column: "doc", value: "hello" });
 * ```
 */
export function copyErrorPosition(error: PostgresError): CopyErrorPosition | undefined {
  // The value is the rest of the COPY CONTEXT line, in double quotes (a multi-line record keeps its breaks);
  // a type's own input may come first (`JSON data, line 1: …` for json and jsonb)
  const copyLine = error.where?.split(/\n(?=[A-Z][a-zA-Z/ ]+ )/).find((line) => line.startsWith("COPY ")) ??
    "";
  const match = /^COPY .*?, line (\d+)(?:, column ((?:[^:]|:(?! ))+?))?(?:: "([\s\S]*)")?$/m.exec(copyLine);
  if (!match) return undefined;
  const value = match[3];
  return {
    line: Number(match[1]),
    column: match[2] ?? error.column,
    value: value === undefined ? undefined : value,
  };
}

/** A session on one server connection. Use {@link connectPostgres} to make one. */
export class PostgresSession {
  #client: pg.Client;
  #target: ConnectionTarget;
  #signal?: AbortSignal;
  #onAbort = () => this.#cancelRunning();
  #running = 0;
  #copy?: CopyFromStream;
  #cancelled = false;
  #closed = false;

  /** @internal Made by {@link connectPostgres}. */
  constructor(client: pg.Client, target: ConnectionTarget, signal?: AbortSignal) {
    this.#client = client;
    this.#target = target;
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** The server process serving this session (`pg_backend_pid()`). */
  get pid(): number {
    return (this.#client as unknown as { processID: number }).processID;
  }

  /** True once the session's signal aborted while a statement ran, and the statement was cancelled. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /**
   * Runs one statement (with `$1`… `values`, sent separately: they are never spliced into the SQL).
   *
   * @throws PostgresError with the server's message; the signal's reason when it aborted before the start.
   */
  async query<Row = Record<string, unknown>>(sql: string, values?: unknown[]): Promise<QueryResult<Row>> {
    this.#signal?.throwIfAborted();
    this.#running++;
    try {
      const result = await this.#client.query({ text: sql, values });
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? null };
    } catch (error) {
      throw asPostgresError(error);
    } finally {
      this.#running--;
    }
  }

  /**
   * Runs `COPY … FROM STDIN` (`sql`) with `data` as its input, chunk by chunk: the next chunk is read only
   * once the socket took the previous one. Resolves to the number of rows copied. On failure the stream is
   * cancelled and the server's error (with its CONTEXT) is thrown; the transaction it ran in is then aborted.
   */
  async copyFrom(sql: string, data: ReadableStream<Uint8Array>, options: CopyOptions = {}): Promise<number> {
    if (this.#signal?.aborted) {
      await data.cancel().catch(() => {});
      this.#signal.throwIfAborted();
    }
    const copy = new CopyFromStream(sql, data, options.onBytes);
    this.#copy = copy;
    this.#running++;
    try {
      this.#client.query(copy as unknown as pg.QueryConfig);
      return await copy.done;
    } catch (error) {
      throw asPostgresError(error);
    } finally {
      this.#running--;
      this.#copy = undefined;
    }
  }

  /**
   * Runs `work` in a transaction: BEGIN, then COMMIT when it resolves, ROLLBACK when it throws (the error is
   * rethrown; a ROLLBACK that fails too, e.g. on a broken connection, is ignored: the server rolls back
   * when the connection ends).
   */
  async transaction<T>(work: () => Promise<T>): Promise<T> {
    await this.query("BEGIN");
    let result: T;
    try {
      result = await work();
    } catch (error) {
      if (!this.#cancelled) await this.query("ROLLBACK").catch(() => {});
      throw error;
    }
    await this.query("COMMIT");
    return result;
  }

  /**
   * Asks the server to cancel the statement this session runs (PostgreSQL's cancel request, on a separate
   * connection). Harmless when nothing runs.
   */
  async cancel(): Promise<void> {
    const client = this.#client as unknown as { processID?: number; secretKey?: number };
    if (client.processID === undefined || client.secretKey === undefined) return;
    await sendCancelRequest(this.#target.host, this.#target.port, client.processID, client.secretKey);
  }

  #cancelRunning(): void {
    if (this.#running === 0 || this.#closed) return;
    this.#cancelled = true;
    // a COPY receiving rows ends with CopyFail; anything else (a COPY still waiting for a lock included)
    // gets the cancel request
    if (this.#copy?.fail("cancelled: the step was interrupted") !== "sent") this.cancel().catch(() => {});
  }

  /** Ends the connection; an open transaction is rolled back by the server. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    await this.#client.end().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Connects to `target`. The password is `options.password`, else the value of the variable
 * `target.passwordEnv` names; with neither, a server that asks for a password gets an error saying to set
 * `password_env`.
 *
 * @example
 * ```ts ignore
 * await using session = await connectPostgres(connectionTarget(params), { signal: context.signal });
 * await session.transaction(async () => {
 *   await session.query('TRUNCATE "public"."t"');
 *   await session.copyFrom('COPY "public"."t" FROM STDIN (FORMAT csv, HEADER true)', await storage.read("t.csv"));
 * });
 * ```
 * @throws PostgresError for a refused login, an unreachable server, a TLS failure or a missing password.
 */
export async function connectPostgres(
  target: ConnectionTarget,
  options: ConnectOptions = {},
): Promise<PostgresSession> {
  const password = options.password ?? passwordFromEnv(target);
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.user,
    // a function: pg then neither keeps the password in its config nor reads PGPASSWORD or ~/.pgpass
    password: () => {
      if (password !== undefined) return Promise.resolve(password);
      return Promise.reject(
        new Error(
          "the server asks for a password: set password_env to the name of the environment variable holding it",
        ),
      );
    },
    ssl: await sslOptions(target),
    application_name: options.applicationName ?? "lakerun",
    client_encoding: "UTF8",
    sslnegotiation: "postgres",
    connectionTimeoutMillis: options.connectTimeoutMs ?? 30_000,
  } as pg.ClientConfig);
  // a broken connection is reported through the statement that was running; an idle one has nothing to say
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw connectionError(error, target);
  }
  return new PostgresSession(client, target, options.signal);
}

function passwordFromEnv(target: ConnectionTarget): string | undefined {
  if (!target.passwordEnv) return undefined;
  const value = Deno.env.get(target.passwordEnv);
  if (value === undefined) {
    throw new Error(`the environment variable ${target.passwordEnv} (password_env) is not set`);
  }
  return value;
}

async function sslOptions(target: ConnectionTarget): Promise<false | Record<string, unknown>> {
  if (target.ssl === "disable") return false;
  const ca = target.sslRootCert ? await Deno.readTextFile(target.sslRootCert) : undefined;
  if (target.ssl === "require") return { rejectUnauthorized: false };
  const options: Record<string, unknown> = { rejectUnauthorized: true };
  if (ca) options.ca = ca;
  if (target.ssl === "verify-ca") options.checkServerIdentity = () => undefined;
  return options;
}

function connectionError(error: unknown, target: ConnectionTarget): Error {
  const where = `${target.user}@${target.host}:${target.port}/${target.database}`;
  const base = asPostgresError(error);
  return new PostgresError(
    {
      message: `cannot connect to ${where}: ${base.serverMessage}`,
      code: base.code,
      detail: base.detail,
      hint: base.hint,
    },
    { cause: error },
  );
}

/** The error as a {@link PostgresError} (a server error keeps its fields; anything else its message). */
export function asPostgresError(error: unknown): PostgresError {
  if (error instanceof PostgresError) return error;
  if (error instanceof Error && error.name === "NotCapable") throw error; // a permission refusal stays one
  const fields = error as Partial<Record<string, string>> & { message?: string };
  const isServerError = error instanceof Error && typeof fields.code === "string" &&
    /^[0-9A-Z]{5}$/.test(fields.code);
  if (!isServerError) {
    return new PostgresError({ message: (error as Error)?.message || String(error) }, { cause: error });
  }
  return new PostgresError({
    message: fields.message ?? "",
    code: fields.code,
    detail: fields.detail,
    hint: fields.hint,
    where: fields.where,
    column: fields.column,
    constraint: fields.constraint,
    table: fields.table,
  }, { cause: error });
}

/** PostgreSQL's cancel request: a 16-byte message on a new connection, which the server closes. */
function sendCancelRequest(host: string, port: number, pid: number, secretKey: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const message = Buffer.alloc(16);
    message.writeInt32BE(16, 0);
    message.writeInt32BE(80877102, 4);
    message.writeInt32BE(pid, 8);
    message.writeInt32BE(secretKey, 12);
    const socket = tcpConnect({ host, port }, () => socket.end(message));
    const timer = setTimeout(() => socket.destroy(new Error("the cancel request got no answer")), 5000);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The parts of pg's connection a COPY uses. */
interface PgConnection {
  query(text: string): void;
  sendCopyFail(message: string): void;
  stream: {
    write(chunk: Uint8Array): boolean;
    once(event: "drain", listener: () => void): void;
    off?(event: "drain", listener: () => void): void;
  };
}

const COPY_DATA = 0x64;
const COPY_DONE = Buffer.from([0x63, 0, 0, 0, 4]);

/**
 * A `pg` "submittable" query: sends `COPY … FROM STDIN`, then, once the server answers CopyInResponse,
 * streams the input as CopyData messages, waiting for the socket to drain whenever it is full.
 */
class CopyFromStream {
  readonly done: Promise<number>;
  #resolve!: (rows: number) => void;
  #reject!: (error: unknown) => void;
  #connection?: PgConnection;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #rows = 0;
  #bytes = 0;
  /** `waiting` for CopyInResponse, `sending` rows, `ended` (CopyDone or CopyFail sent, or the server erred). */
  #state: "waiting" | "sending" | "ended" = "waiting";
  #failure?: string;
  #readError: unknown;

  constructor(
    readonly text: string,
    data: ReadableStream<Uint8Array>,
    readonly onBytes?: (bytes: number) => void,
  ) {
    this.#reader = data.getReader();
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** pg: it is this query's turn. */
  submit(connection: PgConnection): void {
    this.#connection = connection;
    connection.query(this.text);
  }

  /** pg: the server waits for the rows. */
  handleCopyInResponse(): void {
    if (this.#failure !== undefined) return this.#sendFail();
    this.#state = "sending";
    this.#pump().catch((error) => {
      // reading the input failed: tell the server, which answers with an error that ends the COPY
      this.#readError = error;
      this.fail(`reading the input failed: ${(error as Error)?.message ?? error}`);
    });
  }

  /**
   * Ends the COPY with CopyFail, so that the server stops and rolls back the statement, and cancels the input
   * stream. Returns `sent` when CopyFail went out, `later` when the server is not in COPY mode yet (it goes
   * out on CopyInResponse), `over` when the COPY already ended.
   */
  fail(message: string): "sent" | "later" | "over" {
    if (this.#state === "ended" || this.#failure !== undefined) return "over";
    this.#failure = message;
    this.#reader.cancel().catch(() => {});
    if (this.#state !== "sending") return "later";
    this.#sendFail();
    return "sent";
  }

  #sendFail(): void {
    this.#state = "ended";
    this.#connection?.sendCopyFail(this.#failure!);
  }

  async #pump(): Promise<void> {
    const stream = this.#connection!.stream;
    for (;;) {
      const { done, value } = await this.#reader.read();
      if (this.#state !== "sending" || this.#failure !== undefined) return;
      if (done) break;
      if (value.byteLength === 0) continue;
      const header = Buffer.allocUnsafe(5);
      header[0] = COPY_DATA;
      header.writeUInt32BE(value.byteLength + 4, 1);
      stream.write(header);
      const written = stream.write(value);
      this.#bytes += value.byteLength;
      this.onBytes?.(this.#bytes);
      if (!written) await new Promise<void>((resolve) => stream.once("drain", resolve));
    }
    this.#state = "ended";
    stream.write(COPY_DONE);
  }

  /** pg: "COPY n". */
  handleCommandComplete(message: { text?: string }): void {
    const match = /COPY (\d+)/.exec(message?.text ?? "");
    if (match) this.#rows = Number(match[1]);
  }

  /** pg: the server refused a row, or the COPY failed; pg calls nothing else for this query afterwards. */
  handleError(error: unknown): void {
    this.#state = "ended";
    this.#reader.cancel().catch(() => {});
    this.#reject(this.#readError ?? error);
  }

  /** pg: done; the rows are in (visible to this transaction). */
  handleReadyForQuery(): void {
    this.#resolve(this.#rows);
  }

  // pg calls these for ordinary queries; a COPY FROM STDIN gets none of them
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}
