/**
 * A FAKE of Amazon Athena and AWS Glue: a fake, for the behaviours moto lacks; everything else is tested
 * against moto.
 *
 * moto 5.2.1 (the stand-in in this machine image, see `/work/shared/notes/aws-stand-ins.md` §1.2–§1.3) has
 * no FAILED Athena query and no failed Glue job run, ignores Athena's `ClientRequestToken`, returns all
 * Athena result rows in one page, has no `BatchStopJobRun`, no `GetCrawlerMetrics`, only advances a crawl on
 * `ListCrawls` and reports the crawl status as "COMPLETED". This module answers those operations the way the
 * real services do, so the executors' failure, retry, paging and cancel paths can be tested. It is not a
 * general emulator: only the operations below exist, and only loopback (`127.0.0.1`) is ever bound.
 *
 * - Athena (`X-Amz-Target: AmazonAthena.<Op>`): StartQueryExecution, GetQueryExecution, GetQueryResults,
 *   StopQueryExecution.
 * - Glue (`AWSGlue.<Op>`): StartJobRun, GetJobRun, GetJobRuns, BatchStopJobRun, StartCrawler, GetCrawler,
 *   StopCrawler, GetCrawlerMetrics, GetTables.
 *
 * Wire format (awsJson1_1, as the botocore models `athena/2017-05-18` and `glue/2017-03-31` describe it):
 * `POST /` with `X-Amz-Target` and a JSON body; answers are `application/x-amz-json-1.1`, timestamps are
 * epoch seconds (numbers, millisecond precision). Errors are HTTP 400 with `{"__type": Name, "Message": …}`
 * and an `x-amzn-ErrorType: Name` header. The modelled exceptions of both services carry the message in
 * `Message` (capital M, the models' member name; the JS SDK reads `message` or `Message`); the unmodelled
 * Athena `ThrottlingException` ("Rate exceeded", what the API rate limit sends) carries it in `message`. A
 * SigV4 `Authorization` header is accepted and recorded, never verified; an unsigned request is accepted too.
 *
 * Scripting (in code, not over HTTP). Every query, job run and crawl follows a timeline of {@link Step}s:
 * - **by reads**: `states: ["QUEUED", "RUNNING", "SUCCEEDED"]` shows one state per *advancing read*
 *   (Athena `GetQueryExecution`, Glue `GetJobRun`, Glue `GetCrawler`): the 1st read answers QUEUED, the 2nd
 *   RUNNING, the 3rd and later SUCCEEDED. Other operations see the current state without advancing it.
 * - **by time**: `{ runningForMs: 3000, then: "SUCCEEDED" }` changes state at a wall-clock moment, whoever
 *   reads it; `completedAt` is exactly `submittedAt + queuedForMs + runningForMs` (on the fake's clock), so a
 *   benchmark can measure how late a poller noticed.
 * - `steps: [{ state, reads?, ms? }]` mixes both.
 *
 * Scripts are matched first-added-first (Athena by a predicate or a substring of `QueryString`; Glue per job
 * or crawler), each for `times` uses (default: unlimited); unmatched work gets the default timeline. Faults:
 * {@link AwsFake.throttle} answers the next N calls of an operation with throttling errors,
 * {@link AwsFake.fail} with any error (optionally after the operation took effect: a lost reply).
 *
 * Choices of this fake that are NOT verified against AWS (the botocore models do not say): the exact text of
 * error messages other than "Idempotent parameters do not match"; BatchStopJobRun's `ErrorDetail` for a run
 * that already ended (`InvalidInputException`); the default page sizes of GetJobRuns (100) and GetTables
 * (100); a GetQueryResults page of MaxResults rows counting the header row.
 *
 * ```ts ignore
 * await using fake = await startAwsFake();
 * fake.athena.script("FROM broken", {
 *   states: ["QUEUED", "RUNNING", "FAILED"],
 *   error: { ErrorMessage: "boom" },
 * });
 * fake.glue.scriptJob("etl", { runningForMs: 3000, then: "SUCCEEDED" });
 * fake.throttle("GetQueryExecution", 2);
 * // point an SDK client at fake.endpoint, then:
 * fake.callsOf("GetQueryExecution").length;
 * fake.athena.queries[0].completedAt;
 * ```
 *
 * @module
 */
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

/** Athena `QueryExecutionState`. */
export type AthenaState = "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
/** Glue `JobRunState`. */
export type JobRunState =
  | "STARTING"
  | "RUNNING"
  | "STOPPING"
  | "STOPPED"
  | "SUCCEEDED"
  | "FAILED"
  | "TIMEOUT"
  | "ERROR"
  | "WAITING"
  | "EXPIRED";
/** Glue `CrawlerState`. */
export type CrawlerState = "READY" | "RUNNING" | "STOPPING";
/** Glue `LastCrawlStatus`. */
export type LastCrawlStatus = "SUCCEEDED" | "CANCELLED" | "FAILED";

/**
 * One stage of a timeline. `state` is shown until `reads` advancing reads have answered it (default 1), or,
 * when `ms` is given, for `ms` milliseconds of the fake's clock whatever the reads. The last step holds
 * forever.
 */
export interface Step<S extends string> {
  state: S;
  reads?: number;
  ms?: number;
}

/** A state change: `state` was entered at `at` (epoch milliseconds on the fake's clock). */
export interface Transition<S extends string> {
  state: S;
  at: number;
}

/** Athena `AthenaError`, reported with a FAILED query. */
export interface AthenaError {
  /** 1 = system, 2 = user, 3 = other. */
  ErrorCategory: number;
  /** See the Athena error catalog; 1000 is "user error". */
  ErrorType: number;
  Retryable: boolean;
  ErrorMessage: string;
}

/** Athena `ColumnInfo`; `Type` defaults to `varchar`. */
export interface AthenaColumn {
  Name: string;
  Type?: string;
  Label?: string;
  CatalogName?: string;
  SchemaName?: string;
  TableName?: string;
  Precision?: number;
  Scale?: number;
  Nullable?: "NOT_NULL" | "NULLABLE" | "UNKNOWN";
  CaseSensitive?: boolean;
}

/** Athena `QueryExecutionStatistics`; the fake derives the times from the timeline unless scripted. */
export interface AthenaStatistics {
  DataScannedInBytes?: number;
  EngineExecutionTimeInMillis?: number;
  TotalExecutionTimeInMillis?: number;
  QueryQueueTimeInMillis?: number;
  ServicePreProcessingTimeInMillis?: number;
  QueryPlanningTimeInMillis?: number;
  ServiceProcessingTimeInMillis?: number;
}

/** The body of a `StartQueryExecution` request, as the fake received it. */
export interface StartQueryExecutionRequest {
  QueryString: string;
  ClientRequestToken?: string;
  WorkGroup?: string;
  ExecutionParameters?: string[];
  QueryExecutionContext?: { Database?: string; Catalog?: string };
  ResultConfiguration?: { OutputLocation?: string; [key: string]: unknown };
  [key: string]: unknown;
}

/** How a test picks the queries a script applies to: a substring of `QueryString`, or a predicate. */
export type AthenaMatch = string | ((request: StartQueryExecutionRequest) => boolean);

/**
 * How one Athena query behaves. Give at most one of `states`, `steps`, or the time schedule
 * (`queuedForMs` / `runningForMs` / `then`); without any, the query reads QUEUED, RUNNING, SUCCEEDED.
 */
export interface AthenaScript {
  /** One state per `GetQueryExecution`, the last held; RUNNING→QUEUED→RUNNING (a transient retry) is fine. */
  states?: AthenaState[];
  /** The general form of a timeline. */
  steps?: Step<AthenaState>[];
  /** Time schedule: QUEUED for this long (default 0)… */
  queuedForMs?: number;
  /** …then RUNNING for this long (default 0)… */
  runningForMs?: number;
  /** …then this state (default SUCCEEDED). */
  then?: "SUCCEEDED" | "FAILED" | "CANCELLED";
  /** The `AthenaError` of a FAILED query (defaults: category 2, type 1000, not retryable). */
  error?: Partial<AthenaError>;
  /** `Status.StateChangeReason` once terminal; for FAILED it defaults to the error message. */
  stateChangeReason?: string;
  /** Result columns; a string is a varchar column of that name. Default when `rows` is given: `_col0`… */
  columns?: Array<string | AthenaColumn>;
  /** Result data rows (`null` is an empty `Datum`, as Athena sends SQL NULL). */
  rows?: Array<Array<string | null>>;
  /** Whether row 0 of page 1 is the column-name header, as for SELECT (default: when there are columns). */
  headerRow?: boolean;
  /** Statistics to report instead of the derived ones. */
  statistics?: AthenaStatistics;
  /** Default: DDL / DML / UTILITY guessed from the first keyword. */
  statementType?: "DDL" | "DML" | "UTILITY";
  /** `UpdateCount` of GetQueryResults (default 0). */
  updateCount?: number;
  /** How many queries this script applies to (default: unlimited). */
  times?: number;
}

/** What the fake knows about one started Athena query. Getters read the timeline at call time. */
export interface AthenaQueryRecord {
  readonly id: string;
  /** The body of the StartQueryExecution call that created the query. */
  readonly request: StartQueryExecutionRequest;
  readonly queryString: string;
  readonly clientRequestToken: string | undefined;
  readonly workGroup: string;
  readonly executionParameters: string[] | undefined;
  readonly queryExecutionContext: StartQueryExecutionRequest["QueryExecutionContext"];
  readonly resultConfiguration: StartQueryExecutionRequest["ResultConfiguration"];
  /** StartQueryExecution calls answered with this id: 1, plus one per idempotent repeat of the token. */
  readonly starts: number;
  readonly submittedAt: number;
  readonly state: AthenaState;
  /** When the query became SUCCEEDED, FAILED or CANCELLED (epoch ms on the fake's clock). */
  readonly completedAt: number | undefined;
  /** When StopQueryExecution cancelled it. */
  readonly stoppedAt: number | undefined;
  readonly transitions: readonly Transition<AthenaState>[];
}

/**
 * How one Glue job run behaves. Give at most one of `states`, `steps`, or the time schedule; without any the
 * run reads STARTING, RUNNING, SUCCEEDED.
 */
export interface GlueJobScript {
  /** One state per `GetJobRun`, the last one held. */
  states?: JobRunState[];
  steps?: Step<JobRunState>[];
  /** Time schedule: STARTING for this long (default 0)… */
  startingForMs?: number;
  /** …then RUNNING for this long (default 0)… */
  runningForMs?: number;
  /** …then this state (default SUCCEEDED). */
  then?: "SUCCEEDED" | "FAILED" | "TIMEOUT" | "ERROR" | "EXPIRED" | "STOPPED";
  /** `ErrorMessage` in FAILED, ERROR, TIMEOUT and EXPIRED (a default names the state). */
  errorMessage?: string;
  /** `Attempt` (default 0). */
  attempt?: number;
  /** `ExecutionTime` in seconds (default: the time spent RUNNING, rounded). */
  executionTime?: number;
  DPUSeconds?: number;
  StateDetail?: string;
  /** After BatchStopJobRun the run reads STOPPING for this many GetJobRun calls (default 1), then STOPPED… */
  stoppingReads?: number;
  /** …or, if given, STOPPING lasts this many milliseconds. */
  stoppingForMs?: number;
  /** How many runs of the job this script applies to (default: unlimited). */
  times?: number;
}

/** What the fake knows about one Glue job run. */
export interface GlueJobRunRecord {
  readonly id: string;
  readonly jobName: string;
  /** The body of the StartJobRun call. */
  readonly request: Readonly<Record<string, unknown>>;
  /** DefaultArguments + Arguments + NonOverridableArguments, as Glue merges them. */
  readonly arguments: Readonly<Record<string, string>>;
  readonly workerType: string | undefined;
  readonly numberOfWorkers: number | undefined;
  readonly timeout: number;
  readonly previousRunId: string | undefined;
  readonly startedAt: number;
  readonly state: JobRunState;
  /** When the run reached a final state (SUCCEEDED, FAILED, TIMEOUT, ERROR, STOPPED, EXPIRED). */
  readonly completedAt: number | undefined;
  /** When BatchStopJobRun accepted it. */
  readonly stopRequestedAt: number | undefined;
  readonly transitions: readonly Transition<JobRunState>[];
}

/** A table a crawl writes to the catalog (or a test seeds with {@link GlueControl.addTable}). */
export interface GlueTableSpec {
  name: string;
  columns?: Array<{ Name: string; Type?: string }>;
  partitionKeys?: Array<{ Name: string; Type?: string }>;
  location?: string;
  parameters?: Record<string, string>;
}

/** A table in the fake catalog. */
export interface GlueTableRecord extends GlueTableSpec {
  readonly databaseName: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/**
 * How one crawl behaves. Without a schedule the crawler reads RUNNING, STOPPING, READY on successive
 * `GetCrawler` calls; `states` (e.g. `["RUNNING", "RUNNING", "READY"]`), `steps` or the time schedule
 * change it.
 * The crawl ends when the crawler becomes READY; `LastCrawl` is then filled in.
 */
export interface CrawlScript {
  states?: CrawlerState[];
  steps?: Step<CrawlerState>[];
  /** Time schedule: RUNNING for this long… */
  runningForMs?: number;
  /** …then STOPPING for this long (default 0), then READY. */
  stoppingForMs?: number;
  /** `LastCrawl.Status` at the end (default SUCCEEDED; a StopCrawler makes it CANCELLED). */
  outcome?: "SUCCEEDED" | "FAILED";
  /** `LastCrawl.ErrorMessage` of a FAILED crawl. */
  errorMessage?: string;
  /** Tables written to the crawler's database when the crawl SUCCEEDS (created, or updated if present). */
  tables?: GlueTableSpec[];
  /** Metrics to report instead of the counts of `tables`. */
  tablesCreated?: number;
  tablesUpdated?: number;
  tablesDeleted?: number;
  /** How many crawls this script applies to (default: unlimited). */
  times?: number;
}

/** What the fake knows about one crawl. */
export interface CrawlRecord {
  readonly id: string;
  readonly crawlerName: string;
  readonly startedAt: number;
  /** The crawler's state while this crawl is the current one. */
  readonly state: CrawlerState;
  /** `LastCrawl.Status`, once the crawl is over. */
  readonly status: LastCrawlStatus | undefined;
  /** When the crawler became READY again. */
  readonly completedAt: number | undefined;
  readonly stopRequestedAt: number | undefined;
  readonly transitions: readonly Transition<CrawlerState>[];
}

/** Scripting and introspection of the fake Athena. */
export interface AthenaControl {
  /** Adds a script for the queries that `match` (first added, first matched). */
  script(match: AthenaMatch, script?: AthenaScript): void;
  /** Forgets all scripts (queries already started keep theirs). */
  clearScripts(): void;
  /** Every query started, oldest first. */
  readonly queries: readonly AthenaQueryRecord[];
  query(id: string): AthenaQueryRecord | undefined;
}

/** Options of a fake Glue job (`ExecutionProperty.MaxConcurrentRuns` defaults to 1, as in Glue). */
export interface GlueJobOptions {
  maxConcurrentRuns?: number;
  defaultArguments?: Record<string, string>;
  nonOverridableArguments?: Record<string, string>;
  /** Job-level `Timeout` in minutes (default 2880). */
  timeout?: number;
}

/** Options of a fake crawler. */
export interface GlueCrawlerOptions {
  /** The database its tables go to (default `"default"`). */
  databaseName?: string;
}

/** Scripting and introspection of the fake Glue. */
export interface GlueControl {
  /** Defines (or redefines the options of) a job; StartJobRun on an unknown job: EntityNotFoundException. */
  createJob(name: string, options?: GlueJobOptions): void;
  /** Adds a script for the job's next runs (first added, first used); creates the job if needed. */
  scriptJob(jobName: string, script?: GlueJobScript): void;
  /** Every run of the job, oldest first. */
  runs(jobName: string): readonly GlueJobRunRecord[];
  /** Defines a crawler (StartCrawler on an unknown one answers EntityNotFoundException). */
  createCrawler(name: string, options?: GlueCrawlerOptions): void;
  /** Adds a script for the crawler's next crawls; creates the crawler if needed. */
  scriptCrawl(crawlerName: string, script?: CrawlScript): void;
  /** Every crawl of the crawler, oldest first. */
  crawls(crawlerName: string): readonly CrawlRecord[];
  /** Seeds a table (and its database) in the catalog GetTables reads. */
  addTable(databaseName: string, table: GlueTableSpec): void;
  /** The tables of a database, by name. */
  tables(databaseName: string): readonly GlueTableRecord[];
}

/** One request the fake received. */
export interface AwsCall {
  /** `X-Amz-Target`, e.g. `AmazonAthena.GetQueryExecution` (empty if absent). */
  target: string;
  service: "athena" | "glue" | "unknown";
  /** The part after the dot, e.g. `GetQueryExecution`. */
  operation: string;
  /** The parsed JSON body (`{}` when it was empty or not JSON). */
  body: Record<string, unknown>;
  /** When it arrived (epoch ms on the fake's clock). */
  at: number;
  /** Whether an `Authorization` header was present (never verified). */
  signed: boolean;
  authorization: string | undefined;
  contentType: string | undefined;
  /** HTTP status of the answer (0 while being handled). */
  status: number;
  /** `__type` of the error answered, if any. */
  errorType?: string;
}

/** An error for {@link AwsFake.fail}. */
export interface FailOptions {
  /** The `__type`, e.g. `InternalServerException`. */
  type: string;
  message?: string;
  /** Default 400 (500 is what AWS uses for `InternalServerException` / `InternalServiceException`). */
  status?: number;
  /** Extra members of the error body. */
  fields?: Record<string, unknown>;
  /** Carry the operation out first, then answer the error: a reply lost after the work was done. */
  applied?: boolean;
}

/** Options of {@link AwsFake.throttle}. */
export interface ThrottleOptions {
  /**
   * Default: `TooManyRequestsException` (with `Reason: CONCURRENT_QUERY_LIMIT_EXCEEDED`, the active-query
   * quota) for Athena StartQueryExecution; `ThrottlingException` ("Rate exceeded") for everything else.
   */
  type?: "ThrottlingException" | "TooManyRequestsException";
  message?: string;
}

/** Options of {@link startAwsFake}. */
export interface AwsFakeOptions {
  /** The clock of every timestamp and time schedule, in epoch milliseconds (default `Date.now`). */
  clock?: () => number;
}

/** A running fake; see the module documentation. */
export interface AwsFake extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`: the endpoint for both services. */
  readonly endpoint: string;
  readonly port: number;
  readonly athena: AthenaControl;
  readonly glue: GlueControl;
  /** Every request received, in order (including throttled and failed ones). */
  readonly calls: readonly AwsCall[];
  /** The calls of one operation, by name (`GetQueryExecution`) or by target (`AWSGlue.GetJobRun`). */
  callsOf(operation: string): AwsCall[];
  /** Answers the next `count` calls of `operation` with a throttling error; adds to any pending faults. */
  throttle(operation: string, count?: number, options?: ThrottleOptions): void;
  /** Answers the next `count` calls of `operation` with the given error. */
  fail(operation: string, count: number, error: FailOptions): void;
  /** The fake's clock. */
  now(): number;
  /** Shuts the server down and waits until it has finished. */
  stop(): Promise<void>;
}

// ------------------------------------------------------------------------------------------------ helpers

type Clock = () => number;
type Handler = (body: Json) => Json;

const ATHENA_TERMINAL: ReadonlySet<string> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
const GLUE_FINAL: ReadonlySet<string> = new Set([
  "STOPPED",
  "SUCCEEDED",
  "FAILED",
  "TIMEOUT",
  "ERROR",
  "EXPIRED",
]);
const GLUE_ACTIVE: ReadonlySet<string> = new Set(["STARTING", "RUNNING", "STOPPING", "WAITING"]);
const GLUE_STOPPABLE: ReadonlySet<string> = new Set(["STARTING", "RUNNING", "WAITING"]);
const GLUE_ERRORED: ReadonlySet<string> = new Set(["FAILED", "ERROR", "TIMEOUT", "EXPIRED"]);
const ACCOUNT = "123456789012";
const PREFIXES = { athena: "AmazonAthena.", glue: "AWSGlue." } as const;

const invalidRequest = (message: string) => new AwsJsonError("InvalidRequestException", message);
const invalidInput = (message: string) => new AwsJsonError("InvalidInputException", message);
const notFound = (message: string) => new AwsJsonError("EntityNotFoundException", message);

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

function lowerFirst(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/** The message AWS's request validation uses, e.g. for `MaxResults` out of range. */
function validationMessage(member: string, value: unknown, constraint: string): string {
  return `1 validation error detected: Value '${value}' at '${lowerFirst(member)}' failed to satisfy ` +
    `constraint: ${constraint}`;
}

function requiredString(body: Json, member: string, invalid: (m: string) => AwsJsonError): string {
  const value = body[member];
  if (typeof value !== "string" || value === "") {
    throw invalid(validationMessage(member, value ?? "null", "Member must not be null"));
  }
  return value;
}

function optionalString(
  body: Json,
  member: string,
  invalid: (m: string) => AwsJsonError,
): string | undefined {
  const value = body[member];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalid(`${member} must be a string`);
  return value;
}

function optionalInt(
  body: Json,
  member: string,
  range: [number, number],
  invalid: (m: string) => AwsJsonError,
): number | undefined {
  const value = body[member];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value)) throw invalid(`${member} must be an integer`);
  if (value < range[0]) {
    throw invalid(
      validationMessage(member, value, `Member must have value greater than or equal to ${range[0]}`),
    );
  }
  if (value > range[1]) {
    throw invalid(
      validationMessage(member, value, `Member must have value less than or equal to ${range[1]}`),
    );
  }
  return value;
}

function stringMap(body: Json, member: string, invalid: (m: string) => AwsJsonError): Record<string, string> {
  const value = body[member] ?? {};
  const ok = typeof value === "object" && !Array.isArray(value) &&
    Object.values(value as Json).every((v) => typeof v === "string");
  if (!ok) throw invalid(`${member} must be a map of strings`);
  return value as Record<string, string>;
}

/** An opaque pagination token, bound to one listing (`scope`). */
function encodeToken(scope: string, position: number): string {
  return btoa(JSON.stringify({ s: scope, p: position }));
}

function decodeToken(token: unknown, scope: string, invalid: (m: string) => AwsJsonError): number {
  try {
    const parsed = JSON.parse(atob(String(token)));
    if (parsed.s === scope && typeof parsed.p === "number") return parsed.p;
  } catch {
    // fall through
  }
  throw invalid("Invalid NextToken");
}

/** How long the history spent in `state` up to `end`. */
function timeIn<S extends string>(history: readonly Transition<S>[], state: S, end: number): number {
  let total = 0;
  history.forEach((t, i) => {
    if (t.state === state) total += (history[i + 1]?.at ?? end) - t.at;
  });
  return Math.max(0, Math.round(total));
}

// ------------------------------------------------------------------------------------------------ timelines

/** The states a work item goes through, advanced by reads or by the clock (see {@link Step}). */
class Timeline<S extends string> {
  readonly history: Transition<S>[] = [];
  #steps: Step<S>[];
  #index = 0;
  #enteredAt: number;
  #reads = 0;

  constructor(
    steps: Step<S>[],
    at: number,
    private readonly clock: Clock,
    private readonly onEnter: (state: S, at: number) => void = () => {},
  ) {
    this.#steps = steps;
    this.#enteredAt = at;
    this.history.push({ state: steps[0].state, at });
  }

  /** The state now, without counting a read. */
  current(): S {
    this.#settle(this.clock());
    return this.#steps[this.#index].state;
  }

  /** An advancing read: the state it answers, moving on first if the current step's reads are used up. */
  read(): S {
    const now = this.clock();
    this.#settle(now);
    const step = this.#steps[this.#index];
    if (!this.#isLast() && step.ms === undefined && this.#reads >= (step.reads ?? 1)) {
      this.#enter(this.#index + 1, now);
    }
    this.#reads++;
    return this.#steps[this.#index].state;
  }

  /** Abandons the rest of the script and follows `steps` from `at` (a stop or a cancel). */
  replace(steps: Step<S>[], at: number): void {
    this.#settle(at);
    this.#steps = steps;
    this.#enter(0, at);
  }

  /** When a state of `states` was first entered. */
  firstAt(states: ReadonlySet<string>): number | undefined {
    this.#settle(this.clock());
    return this.history.find((t) => states.has(t.state))?.at;
  }

  #isLast(): boolean {
    return this.#index === this.#steps.length - 1;
  }

  /** Moves through the timed steps whose time is up, each at its exact scheduled moment. */
  #settle(now: number): void {
    for (;;) {
      const ms = this.#steps[this.#index].ms;
      if (this.#isLast() || ms === undefined || this.#enteredAt + ms > now) return;
      this.#enter(this.#index + 1, this.#enteredAt + ms);
    }
  }

  #enter(index: number, at: number): void {
    this.#index = index;
    this.#enteredAt = at;
    this.#reads = 0;
    const state = this.#steps[index].state;
    this.history.push({ state, at });
    this.onEnter(state, at);
  }
}

/** The schedule fields shared by the three script kinds. */
interface ScheduleFields<S extends string> {
  states?: S[];
  steps?: Step<S>[];
}

/** Builds a timeline from `states`, `steps` or the timed schedule (`timed`: undefined when not given). */
function stepsOf<S extends string>(
  script: ScheduleFields<S>,
  timed: Step<S>[] | undefined,
  defaults: readonly S[],
): Step<S>[] {
  const given = [script.states, script.steps, timed].filter((x) => x !== undefined).length;
  if (given > 1) throw new TypeError("aws_fake: give only one of states, steps, or a ...ForMs/then schedule");
  const steps: Step<S>[] = script.steps ?? timed ??
    (script.states ?? defaults).map((state) => ({ state, reads: 1 }));
  if (steps.length === 0) throw new TypeError("aws_fake: a script needs at least one state");
  for (const step of steps) {
    if ((step.ms !== undefined && !(step.ms >= 0)) || (step.reads !== undefined && !(step.reads >= 0))) {
      throw new TypeError(`aws_fake: bad step ${JSON.stringify(step)}`);
    }
  }
  return steps.map((step) => ({ ...step }));
}

/** A timed schedule: the stages with a duration, then `last`; undefined if no field of it was given. */
function timedSteps<S extends string>(stages: Array<[S, number | undefined]>, last: S | undefined, end: S) {
  if (last === undefined && stages.every(([, ms]) => ms === undefined)) return undefined;
  const steps: Step<S>[] = stages.filter(([, ms]) => (ms ?? 0) > 0).map(([state, ms]) => ({ state, ms }));
  return [...steps, { state: last ?? end }];
}

/** Test-added scripts, first added first matched, each for a number of uses. */
class ScriptQueue<T extends { times?: number }, R> {
  #slots: Array<{ match: (request: R) => boolean; script: T; left: number }> = [];

  add(match: (request: R) => boolean, script: T): void {
    const times = script.times ?? Infinity;
    if (!(times > 0)) throw new TypeError("aws_fake: times must be positive");
    this.#slots.push({ match, script, left: times });
  }

  take(request: R): T | undefined {
    const slot = this.#slots.find((s) => s.left > 0 && s.match(request));
    if (!slot) return undefined;
    slot.left--;
    return slot.script;
  }

  clear(): void {
    this.#slots = [];
  }
}

// ------------------------------------------------------------------------------------------------ Athena

function athenaSteps(script: AthenaScript): Step<AthenaState>[] {
  const timed = timedSteps<AthenaState>(
    [["QUEUED", script.queuedForMs], ["RUNNING", script.runningForMs]],
    script.then,
    "SUCCEEDED",
  );
  return stepsOf(script, timed, ["QUEUED", "RUNNING", "SUCCEEDED"]);
}

function statementType(query: string): "DDL" | "DML" | "UTILITY" {
  if (/^\s*(EXPLAIN|DESCRIBE|SHOW)\b/i.test(query)) return "UTILITY";
  if (/^\s*CREATE\s+TABLE\b[\s\S]*\bAS\s+(SELECT|WITH)\b/i.test(query)) return "DML";
  if (/^\s*(ALTER|CREATE|DROP|MSCK)\b/i.test(query)) return "DDL";
  return "DML";
}

function columnInfo(column: string | AthenaColumn): Json {
  const c = typeof column === "string" ? { Name: column } : column;
  const type = c.Type ?? "varchar";
  return {
    CatalogName: "hive",
    SchemaName: "",
    TableName: "",
    Label: c.Name,
    Precision: type === "varchar" ? 2147483647 : 0,
    Scale: 0,
    Nullable: "UNKNOWN",
    CaseSensitive: type === "varchar",
    ...c,
    Type: type,
  };
}

function datum(value: string | null): Json {
  return value === null ? {} : { VarCharValue: value };
}

/** Parses and validates a StartQueryExecution body. */
function startRequest(body: Json): StartQueryExecutionRequest {
  requiredString(body, "QueryString", invalidRequest);
  const token = optionalString(body, "ClientRequestToken", invalidRequest);
  if (token !== undefined && (token.length < 32 || token.length > 128)) {
    const bound = token.length < 32 ? "greater than or equal to 32" : "less than or equal to 128";
    throw invalidRequest(validationMessage("ClientRequestToken", token, `Member must have length ${bound}`));
  }
  optionalString(body, "WorkGroup", invalidRequest);
  const params = body.ExecutionParameters;
  if (params !== undefined && !(Array.isArray(params) && params.every((p) => typeof p === "string"))) {
    throw invalidRequest("ExecutionParameters must be a list of strings");
  }
  return body as StartQueryExecutionRequest;
}

/** The parameters that must match when a ClientRequestToken is reused. */
function idempotentParameters(r: StartQueryExecutionRequest): string {
  return canonicalJson({
    QueryString: r.QueryString,
    WorkGroup: r.WorkGroup ?? "primary",
    QueryExecutionContext: r.QueryExecutionContext,
    ResultConfiguration: r.ResultConfiguration,
    ExecutionParameters: r.ExecutionParameters,
    ResultReuseConfiguration: r.ResultReuseConfiguration,
  });
}

class FakeQuery implements AthenaQueryRecord {
  starts = 1;
  stoppedAt: number | undefined;
  readonly timeline: Timeline<AthenaState>;

  constructor(
    readonly id: string,
    readonly request: StartQueryExecutionRequest,
    readonly script: AthenaScript,
    readonly submittedAt: number,
    clock: Clock,
  ) {
    this.timeline = new Timeline(athenaSteps(script), submittedAt, clock);
  }

  get queryString() {
    return this.request.QueryString;
  }
  get clientRequestToken() {
    return this.request.ClientRequestToken;
  }
  get workGroup() {
    return this.request.WorkGroup ?? "primary";
  }
  get executionParameters() {
    return this.request.ExecutionParameters;
  }
  get queryExecutionContext() {
    return this.request.QueryExecutionContext;
  }
  get resultConfiguration() {
    return this.request.ResultConfiguration;
  }
  get state() {
    return this.timeline.current();
  }
  get completedAt() {
    return this.timeline.firstAt(ATHENA_TERMINAL);
  }
  get transitions() {
    this.timeline.current();
    return [...this.timeline.history];
  }

  get statementType() {
    return this.script.statementType ?? statementType(this.queryString);
  }

  /** Page rows: the header (if any) then the data. */
  resultRows(): Json[] {
    const columns = this.columns();
    const header = this.script.headerRow ?? columns.length > 0;
    const rows = (this.script.rows ?? []).map((row) => ({ Data: row.map(datum) }));
    return header ? [{ Data: columns.map((c) => datum(String(c.Name))) }, ...rows] : rows;
  }

  columns(): Json[] {
    const width = this.script.rows?.[0]?.length ?? 0;
    const columns = this.script.columns ?? Array.from({ length: width }, (_, i) => `_col${i}`);
    return columns.map(columnInfo);
  }
}

class AthenaBackend implements AthenaControl {
  readonly #clock: Clock;
  readonly #scripts = new ScriptQueue<AthenaScript, StartQueryExecutionRequest>();
  readonly #queries: FakeQuery[] = [];
  readonly #byId = new Map<string, FakeQuery>();
  readonly #byToken = new Map<string, FakeQuery>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  script(match: AthenaMatch, script: AthenaScript = {}): void {
    athenaSteps(script); // validates
    const predicate = typeof match === "string"
      ? (r: StartQueryExecutionRequest) => r.QueryString.includes(match)
      : match;
    this.#scripts.add(predicate, script);
  }

  clearScripts(): void {
    this.#scripts.clear();
  }

  get queries(): readonly AthenaQueryRecord[] {
    return [...this.#queries];
  }

  query(id: string): AthenaQueryRecord | undefined {
    return this.#byId.get(id);
  }

  handlers(): Record<string, Handler> {
    return {
      StartQueryExecution: (body) => this.#start(body),
      GetQueryExecution: (body) => ({ QueryExecution: this.#describe(this.#find(body)) }),
      GetQueryResults: (body) => this.#results(body),
      StopQueryExecution: (body) => this.#stop(body),
    };
  }

  #start(body: Json): Json {
    const request = startRequest(body);
    const token = request.ClientRequestToken;
    const known = token === undefined ? undefined : this.#byToken.get(token);
    if (known) {
      if (idempotentParameters(known.request) !== idempotentParameters(request)) {
        throw invalidRequest("Idempotent parameters do not match");
      }
      known.starts++;
      return { QueryExecutionId: known.id };
    }
    const script = this.#scripts.take(request) ?? {};
    const query = new FakeQuery(
      crypto.randomUUID(),
      structuredClone(request),
      script,
      this.#clock(),
      this.#clock,
    );
    this.#queries.push(query);
    this.#byId.set(query.id, query);
    if (token !== undefined) this.#byToken.set(token, query);
    return { QueryExecutionId: query.id };
  }

  #find(body: Json): FakeQuery {
    const id = requiredString(body, "QueryExecutionId", invalidRequest);
    const query = this.#byId.get(id);
    if (!query) throw invalidRequest(`QueryExecution ${id} was not found`);
    return query;
  }

  #describe(query: FakeQuery): Json {
    const state = query.timeline.read();
    const output = query.request.ResultConfiguration?.OutputLocation;
    const ext = query.statementType === "DML" ? "csv" : "txt";
    return {
      QueryExecutionId: query.id,
      Query: query.queryString,
      StatementType: query.statementType,
      ResultConfiguration: {
        ...query.request.ResultConfiguration,
        ...(output ? { OutputLocation: `${output.replace(/\/?$/, "/")}${query.id}.${ext}` } : {}),
      },
      QueryExecutionContext: query.request.QueryExecutionContext ?? {},
      Status: this.#status(query, state),
      Statistics: this.#statistics(query),
      WorkGroup: query.workGroup,
      EngineVersion: { SelectedEngineVersion: "AUTO", EffectiveEngineVersion: "Athena engine version 3" },
    };
  }

  #status(query: FakeQuery, state: AthenaState): Json {
    const status: Json = { State: state, SubmissionDateTime: epochSeconds(query.submittedAt) };
    const completedAt = query.completedAt;
    if (completedAt !== undefined && ATHENA_TERMINAL.has(state)) {
      status.CompletionDateTime = epochSeconds(completedAt);
    }
    if (state === "FAILED") {
      const error = this.#error(query.script);
      status.AthenaError = error;
      status.StateChangeReason = query.script.stateChangeReason ?? error.ErrorMessage;
    } else if (ATHENA_TERMINAL.has(state) && query.script.stateChangeReason !== undefined) {
      status.StateChangeReason = query.script.stateChangeReason;
    }
    return status;
  }

  #error(script: AthenaScript): AthenaError {
    return {
      ErrorCategory: 2,
      ErrorType: 1000,
      Retryable: false,
      ErrorMessage: "aws_fake: the query FAILED (no error message scripted)",
      ...script.error,
    };
  }

  #statistics(query: FakeQuery): Json {
    const end = query.completedAt ?? this.#clock();
    const history = query.timeline.history;
    return {
      EngineExecutionTimeInMillis: timeIn(history, "RUNNING", end),
      DataScannedInBytes: 0,
      TotalExecutionTimeInMillis: Math.round(end - query.submittedAt),
      QueryQueueTimeInMillis: timeIn(history, "QUEUED", end),
      ServicePreProcessingTimeInMillis: 0,
      QueryPlanningTimeInMillis: 0,
      ServiceProcessingTimeInMillis: 0,
      ResultReuseInformation: { ReusedPreviousResult: false },
      ...query.script.statistics,
    };
  }

  #results(body: Json): Json {
    const query = this.#find(body);
    const state = query.state;
    if (state !== "SUCCEEDED") {
      throw invalidRequest(
        ATHENA_TERMINAL.has(state)
          ? `Query did not finish successfully. Final query state: ${state}`
          : `Query has not yet finished. Current state: ${state}`,
      );
    }
    const max = optionalInt(body, "MaxResults", [1, 1000], invalidRequest) ?? 1000;
    const scope = `results:${query.id}`;
    const start = body.NextToken === undefined ? 0 : decodeToken(body.NextToken, scope, invalidRequest);
    const rows = query.resultRows();
    const answer: Json = {
      UpdateCount: query.script.updateCount ?? 0,
      ResultSet: { Rows: rows.slice(start, start + max), ResultSetMetadata: { ColumnInfo: query.columns() } },
    };
    if (start + max < rows.length) answer.NextToken = encodeToken(scope, start + max);
    return answer;
  }

  #stop(body: Json): Json {
    const query = this.#find(body);
    if (!ATHENA_TERMINAL.has(query.state)) {
      const now = this.#clock();
      query.stoppedAt = now;
      query.timeline.replace([{ state: "CANCELLED" }], now);
    }
    return {};
  }
}

// ------------------------------------------------------------------------------------------------ Glue jobs

function jobSteps(script: GlueJobScript): Step<JobRunState>[] {
  const timed = timedSteps<JobRunState>(
    [["STARTING", script.startingForMs], ["RUNNING", script.runningForMs]],
    script.then,
    "SUCCEEDED",
  );
  return stepsOf(script, timed, ["STARTING", "RUNNING", "SUCCEEDED"]);
}

function stopSteps<S extends string>(stopping: S, end: S, reads?: number, ms?: number): Step<S>[] {
  return [ms === undefined ? { state: stopping, reads: reads ?? 1 } : { state: stopping, ms }, {
    state: end,
  }];
}

interface JobEntry {
  name: string;
  options: Required<GlueJobOptions>;
  scripts: ScriptQueue<GlueJobScript, Json>;
  runs: FakeRun[];
}

class FakeRun implements GlueJobRunRecord {
  stopRequestedAt: number | undefined;
  readonly arguments: Record<string, string>;
  readonly timeline: Timeline<JobRunState>;

  constructor(
    readonly id: string,
    readonly seq: number,
    readonly jobName: string,
    readonly request: Json,
    args: Record<string, string>,
    readonly timeout: number,
    readonly script: GlueJobScript,
    readonly startedAt: number,
    clock: Clock,
  ) {
    this.arguments = args;
    this.timeline = new Timeline(jobSteps(script), startedAt, clock);
  }

  get workerType() {
    return this.request.WorkerType as string | undefined;
  }
  get numberOfWorkers() {
    return this.request.NumberOfWorkers as number | undefined;
  }
  get previousRunId() {
    return this.request.JobRunId as string | undefined;
  }
  get state() {
    return this.timeline.current();
  }
  get completedAt() {
    return this.timeline.firstAt(GLUE_FINAL);
  }
  get transitions() {
    this.timeline.current();
    return [...this.timeline.history];
  }

  stop(at: number): void {
    this.stopRequestedAt = at;
    this.timeline.replace(
      stopSteps("STOPPING", "STOPPED", this.script.stoppingReads, this.script.stoppingForMs),
      at,
    );
  }

  describe(state: JobRunState, now: number): Json {
    const end = this.completedAt ?? now;
    const history = this.timeline.history;
    const optional: Json = {
      PreviousRunId: this.previousRunId,
      CompletedOn: GLUE_FINAL.has(state) ? epochSeconds(end) : undefined,
      ErrorMessage: GLUE_ERRORED.has(state)
        ? this.script.errorMessage ?? `aws_fake: the job run ended ${state} (no errorMessage scripted)`
        : undefined,
      WorkerType: this.workerType,
      NumberOfWorkers: this.numberOfWorkers,
      MaxCapacity: this.request.MaxCapacity,
      DPUSeconds: this.script.DPUSeconds,
      StateDetail: this.script.StateDetail,
      JobRunQueuingEnabled: this.request.JobRunQueuingEnabled,
    };
    return {
      Id: this.id,
      Attempt: this.script.attempt ?? 0,
      JobName: this.jobName,
      JobMode: "SCRIPT",
      StartedOn: epochSeconds(this.startedAt),
      LastModifiedOn: epochSeconds(history[history.length - 1].at),
      JobRunState: state,
      Arguments: this.arguments,
      PredecessorRuns: [],
      ExecutionTime: this.script.executionTime ?? Math.round(timeIn(history, "RUNNING", end) / 1000),
      Timeout: this.timeout,
      LogGroupName: "/aws-glue/jobs",
      GlueVersion: "4.0",
      ExecutionClass: (this.request.ExecutionClass as string | undefined) ?? "STANDARD",
      ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
    };
  }
}

// ------------------------------------------------------------------------------------------- Glue crawlers

function crawlSteps(script: CrawlScript): Step<CrawlerState>[] {
  const timed = timedSteps<CrawlerState>(
    [["RUNNING", script.runningForMs], ["STOPPING", script.stoppingForMs]],
    undefined,
    "READY",
  );
  return stepsOf(script, timed, ["RUNNING", "STOPPING", "READY"]);
}

interface CrawlResult {
  status: LastCrawlStatus;
  errorMessage?: string;
  tablesCreated: number;
  tablesUpdated: number;
  tablesDeleted: number;
}

class FakeCrawl implements CrawlRecord {
  stopRequestedAt: number | undefined;
  result: CrawlResult | undefined;
  readonly timeline: Timeline<CrawlerState>;

  constructor(
    readonly id: string,
    readonly crawlerName: string,
    readonly script: CrawlScript,
    readonly startedAt: number,
    clock: Clock,
    onFinish: (crawl: FakeCrawl, at: number) => void,
  ) {
    const onEnter = (state: CrawlerState, at: number) => {
      if (state === "READY" && !this.result) onFinish(this, at);
    };
    this.timeline = new Timeline(crawlSteps(script), startedAt, clock, onEnter);
  }

  get state() {
    return this.timeline.current();
  }
  get status() {
    this.timeline.current();
    return this.result?.status;
  }
  get completedAt() {
    return this.timeline.firstAt(new Set(["READY"]));
  }
  get transitions() {
    this.timeline.current();
    return [...this.timeline.history];
  }
  get runtimeMs() {
    return (this.completedAt ?? this.startedAt) - this.startedAt;
  }
}

interface CrawlerEntry {
  name: string;
  databaseName: string;
  createdAt: number;
  scripts: ScriptQueue<CrawlScript, Json>;
  crawls: FakeCrawl[];
}

function tableJson(t: GlueTableRecord): Json {
  return {
    Name: t.name,
    DatabaseName: t.databaseName,
    CreateTime: epochSeconds(t.createdAt),
    UpdateTime: epochSeconds(t.updatedAt),
    Retention: 0,
    StorageDescriptor: {
      Columns: (t.columns ?? []).map((c) => ({ Type: "string", ...c })),
      Location: t.location ?? "",
      Compressed: false,
      NumberOfBuckets: -1,
      SerdeInfo: {},
      StoredAsSubDirectories: false,
    },
    PartitionKeys: (t.partitionKeys ?? []).map((c) => ({ Type: "string", ...c })),
    TableType: "EXTERNAL_TABLE",
    Parameters: t.parameters ?? {},
    CreatedBy: `arn:aws:sts::${ACCOUNT}:assumed-role/aws-fake/crawler`,
    IsRegisteredWithLakeFormation: false,
    CatalogId: ACCOUNT,
  };
}

// ------------------------------------------------------------------------------------------------ Glue

class GlueBackend implements GlueControl {
  readonly #clock: Clock;
  readonly #jobs = new Map<string, JobEntry>();
  readonly #crawlers = new Map<string, CrawlerEntry>();
  readonly #databases = new Map<string, Map<string, GlueTableRecord>>();
  #seq = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  createJob(name: string, options: GlueJobOptions = {}): void {
    const job = this.#jobs.get(name);
    const merged = {
      maxConcurrentRuns: 1,
      defaultArguments: {},
      nonOverridableArguments: {},
      timeout: 2880,
      ...job?.options,
      ...options,
    };
    if (job) job.options = merged;
    else this.#jobs.set(name, { name, options: merged, scripts: new ScriptQueue(), runs: [] });
  }

  scriptJob(jobName: string, script: GlueJobScript = {}): void {
    jobSteps(script); // validates
    if (!this.#jobs.has(jobName)) this.createJob(jobName);
    this.#jobs.get(jobName)!.scripts.add(() => true, script);
  }

  runs(jobName: string): readonly GlueJobRunRecord[] {
    return [...(this.#jobs.get(jobName)?.runs ?? [])];
  }

  createCrawler(name: string, options: GlueCrawlerOptions = {}): void {
    const databaseName = options.databaseName ?? "default";
    const crawler = this.#crawlers.get(name);
    if (crawler) crawler.databaseName = databaseName;
    else {
      this.#crawlers.set(name, {
        name,
        databaseName,
        createdAt: this.#clock(),
        scripts: new ScriptQueue(),
        crawls: [],
      });
    }
    this.#database(databaseName);
  }

  scriptCrawl(crawlerName: string, script: CrawlScript = {}): void {
    crawlSteps(script); // validates
    if (!this.#crawlers.has(crawlerName)) this.createCrawler(crawlerName);
    this.#crawlers.get(crawlerName)!.scripts.add(() => true, script);
  }

  crawls(crawlerName: string): readonly CrawlRecord[] {
    return [...(this.#crawlers.get(crawlerName)?.crawls ?? [])];
  }

  addTable(databaseName: string, table: GlueTableSpec): void {
    this.#upsertTable(databaseName, table, this.#clock());
  }

  tables(databaseName: string): readonly GlueTableRecord[] {
    this.#settleCrawls();
    return [...(this.#databases.get(databaseName)?.values() ?? [])].sort((a, b) => a.name < b.name ? -1 : 1);
  }

  handlers(): Record<string, Handler> {
    return {
      StartJobRun: (body) => this.#startRun(body),
      GetJobRun: (body) => this.#getRun(body),
      GetJobRuns: (body) => this.#getRuns(body),
      BatchStopJobRun: (body) => this.#stopRuns(body),
      StartCrawler: (body) => this.#startCrawler(body),
      GetCrawler: (body) => this.#getCrawler(body),
      StopCrawler: (body) => this.#stopCrawler(body),
      GetCrawlerMetrics: (body) => this.#crawlerMetrics(body),
      GetTables: (body) => this.#getTables(body),
    };
  }

  // ---- job runs

  #job(body: Json): JobEntry {
    const name = requiredString(body, "JobName", invalidInput);
    const job = this.#jobs.get(name);
    if (!job) throw notFound(`Job ${name} not found`);
    return job;
  }

  #startRun(body: Json): Json {
    const job = this.#job(body);
    const args = stringMap(body, "Arguments", invalidInput);
    optionalString(body, "WorkerType", invalidInput);
    optionalInt(body, "NumberOfWorkers", [1, Number.MAX_SAFE_INTEGER], invalidInput);
    const timeout = optionalInt(body, "Timeout", [1, 10080], invalidInput) ?? job.options.timeout;
    const active = job.runs.filter((run) => GLUE_ACTIVE.has(run.state)).length;
    if (active >= job.options.maxConcurrentRuns) {
      throw new AwsJsonError("ConcurrentRunsExceededException", `Concurrent runs exceeded for ${job.name}`);
    }
    const merged = { ...job.options.defaultArguments, ...args, ...job.options.nonOverridableArguments };
    const script = job.scripts.take(body) ?? {};
    const id = `jr_${randomHex(32)}`;
    const now = this.#clock();
    const run = new FakeRun(
      id,
      ++this.#seq,
      job.name,
      structuredClone(body),
      merged,
      timeout,
      script,
      now,
      this.#clock,
    );
    job.runs.push(run);
    return { JobRunId: id };
  }

  #run(job: JobEntry, id: string): FakeRun {
    const run = job.runs.find((r) => r.id === id);
    if (!run) throw notFound(`Job run ${id} not found for job ${job.name}`);
    return run;
  }

  #getRun(body: Json): Json {
    const job = this.#job(body);
    const run = this.#run(job, requiredString(body, "RunId", invalidInput));
    const state = run.timeline.read();
    return { JobRun: run.describe(state, this.#clock()) };
  }

  #getRuns(body: Json): Json {
    const job = this.#job(body);
    const max = optionalInt(body, "MaxResults", [1, 200], invalidInput) ?? 100;
    const scope = `jobruns:${job.name}`;
    const before = body.NextToken === undefined ? Infinity : decodeToken(body.NextToken, scope, invalidInput);
    const newestFirst = job.runs.filter((run) => run.seq < before).reverse();
    const page = newestFirst.slice(0, max);
    const now = this.#clock();
    const answer: Json = { JobRuns: page.map((run) => run.describe(run.state, now)) };
    if (newestFirst.length > max) answer.NextToken = encodeToken(scope, page[page.length - 1].seq);
    return answer;
  }

  #stopRuns(body: Json): Json {
    const name = requiredString(body, "JobName", invalidInput);
    const ids = body.JobRunIds;
    if (
      !Array.isArray(ids) || ids.length < 1 || ids.length > 25 || !ids.every((id) => typeof id === "string")
    ) {
      throw invalidInput(
        validationMessage("JobRunIds", JSON.stringify(ids), "Member must have length between 1 and 25"),
      );
    }
    const job = this.#jobs.get(name);
    const now = this.#clock();
    const successes: Json[] = [];
    const errors: Json[] = [];
    for (const id of ids as string[]) {
      const run = job?.runs.find((r) => r.id === id);
      const error = (code: string, message: string) =>
        errors.push({ JobName: name, JobRunId: id, ErrorDetail: { ErrorCode: code, ErrorMessage: message } });
      if (!run) error("EntityNotFoundException", `Job run ${id} not found for job ${name}`);
      else if (GLUE_FINAL.has(run.state)) {
        error("InvalidInputException", `Job run ${id} is ${run.state}: it cannot be stopped`);
      } else {
        if (GLUE_STOPPABLE.has(run.state)) run.stop(now);
        successes.push({ JobName: name, JobRunId: id });
      }
    }
    return { SuccessfulSubmissions: successes, Errors: errors };
  }

  // ---- crawlers

  #crawler(body: Json): CrawlerEntry {
    const name = requiredString(body, "Name", invalidInput);
    const crawler = this.#crawlers.get(name);
    if (!crawler) throw notFound(`Crawler entry with name ${name} does not exist`);
    return crawler;
  }

  #crawlerState(crawler: CrawlerEntry): CrawlerState {
    return crawler.crawls[crawler.crawls.length - 1]?.state ?? "READY";
  }

  #startCrawler(body: Json): Json {
    const crawler = this.#crawler(body);
    if (this.#crawlerState(crawler) !== "READY") {
      throw new AwsJsonError(
        "CrawlerRunningException",
        `Crawler with name ${crawler.name} has already started`,
      );
    }
    const script = crawler.scripts.take(body) ?? {};
    const finish = (crawl: FakeCrawl, at: number) => this.#finishCrawl(crawler, crawl, at);
    crawler.crawls.push(
      new FakeCrawl(randomHex(16), crawler.name, script, this.#clock(), this.#clock, finish),
    );
    return {};
  }

  #finishCrawl(crawler: CrawlerEntry, crawl: FakeCrawl, at: number): void {
    const script = crawl.script;
    const status: LastCrawlStatus = crawl.stopRequestedAt !== undefined
      ? "CANCELLED"
      : script.outcome ?? "SUCCEEDED";
    let created = 0;
    let updated = 0;
    if (status === "SUCCEEDED") {
      for (const table of script.tables ?? []) {
        if (this.#upsertTable(crawler.databaseName, table, at)) updated++;
        else created++;
      }
    }
    crawl.result = {
      status,
      errorMessage: status === "FAILED"
        ? script.errorMessage ?? "aws_fake: the crawl FAILED (no errorMessage scripted)"
        : undefined,
      tablesCreated: script.tablesCreated ?? created,
      tablesUpdated: script.tablesUpdated ?? updated,
      tablesDeleted: script.tablesDeleted ?? 0,
    };
  }

  #getCrawler(body: Json): Json {
    const crawler = this.#crawler(body);
    const current = crawler.crawls[crawler.crawls.length - 1];
    const state = current ? current.timeline.read() : "READY";
    const last = crawler.crawls.filter((c) => c.result).pop();
    const now = this.#clock();
    const lastCrawl = last && {
      Status: last.result!.status,
      ...(last.result!.errorMessage ? { ErrorMessage: last.result!.errorMessage } : {}),
      LogGroup: "/aws-glue/crawlers",
      LogStream: crawler.name,
      MessagePrefix: last.id,
      StartTime: epochSeconds(last.startedAt),
    };
    return {
      Crawler: {
        Name: crawler.name,
        Role: `arn:aws:iam::${ACCOUNT}:role/aws-fake`,
        Targets: { S3Targets: [] },
        DatabaseName: crawler.databaseName,
        State: state,
        CrawlElapsedTime: state === "READY" || !current ? 0 : Math.round(now - current.startedAt),
        CreationTime: epochSeconds(crawler.createdAt),
        LastUpdated: epochSeconds(crawler.createdAt),
        Version: 1,
        ...(lastCrawl ? { LastCrawl: lastCrawl } : {}),
      },
    };
  }

  #stopCrawler(body: Json): Json {
    const crawler = this.#crawler(body);
    const state = this.#crawlerState(crawler);
    if (state === "READY") {
      throw new AwsJsonError("CrawlerNotRunningException", `Crawler with name ${crawler.name} isn't running`);
    }
    if (state === "STOPPING") {
      throw new AwsJsonError("CrawlerStoppingException", `Crawler with name ${crawler.name} is stopping`);
    }
    const crawl = crawler.crawls[crawler.crawls.length - 1];
    const now = this.#clock();
    crawl.stopRequestedAt = now;
    crawl.timeline.replace(stopSteps("STOPPING", "READY", undefined, crawl.script.stoppingForMs), now);
    return {};
  }

  #crawlerMetrics(body: Json): Json {
    const names = body.CrawlerNameList;
    if (names !== undefined && !(Array.isArray(names) && names.every((n) => typeof n === "string"))) {
      throw new AwsJsonError("InvalidInputException", "CrawlerNameList must be a list of strings");
    }
    const crawlers = names === undefined
      ? [...this.#crawlers.values()]
      : (names as string[]).flatMap((n) => this.#crawlers.get(n) ?? []);
    return { CrawlerMetricsList: crawlers.map((c) => this.#metrics(c)) };
  }

  #metrics(crawler: CrawlerEntry): Json {
    const running = this.#crawlerState(crawler) !== "READY";
    const done = crawler.crawls.filter((c) => c.result);
    const last = done[done.length - 1];
    const runtimes = done.map((c) => c.runtimeMs / 1000).sort((a, b) => a - b);
    const median = runtimes.length === 0
      ? 0
      : (runtimes[Math.floor((runtimes.length - 1) / 2)] + runtimes[Math.ceil((runtimes.length - 1) / 2)]) /
        2;
    return {
      CrawlerName: crawler.name,
      TimeLeftSeconds: 0,
      StillEstimating: running,
      LastRuntimeSeconds: last ? last.runtimeMs / 1000 : 0,
      MedianRuntimeSeconds: median,
      TablesCreated: last?.result?.tablesCreated ?? 0,
      TablesUpdated: last?.result?.tablesUpdated ?? 0,
      TablesDeleted: last?.result?.tablesDeleted ?? 0,
    };
  }

  // ---- catalog

  #database(name: string): Map<string, GlueTableRecord> {
    let db = this.#databases.get(name);
    if (!db) this.#databases.set(name, db = new Map());
    return db;
  }

  /** Creates or updates a table; true if it existed. */
  #upsertTable(databaseName: string, table: GlueTableSpec, at: number): boolean {
    const db = this.#database(databaseName);
    const existing = db.get(table.name);
    db.set(table.name, {
      ...structuredClone(table),
      databaseName,
      createdAt: existing?.createdAt ?? at,
      updatedAt: at,
    });
    return existing !== undefined;
  }

  /** Lets time-scheduled crawls that are over write their tables. */
  #settleCrawls(): void {
    for (const crawler of this.#crawlers.values()) this.#crawlerState(crawler);
  }

  #getTables(body: Json): Json {
    const name = requiredString(body, "DatabaseName", invalidInput);
    this.#settleCrawls();
    const db = this.#databases.get(name);
    if (!db) throw notFound(`Database ${name} not found.`);
    const max = optionalInt(body, "MaxResults", [1, 100], invalidInput) ?? 100;
    const pattern = this.#pattern(optionalString(body, "Expression", invalidInput));
    const scope = `tables:${name}:${body.Expression ?? ""}`;
    const start = body.NextToken === undefined ? 0 : decodeToken(body.NextToken, scope, invalidInput);
    const tables = this.tables(name).filter((t) => pattern.test(t.name));
    const answer: Json = { TableList: tables.slice(start, start + max).map(tableJson) };
    if (start + max < tables.length) answer.NextToken = encodeToken(scope, start + max);
    return answer;
  }

  #pattern(expression: string | undefined): RegExp {
    if (!expression) return /^/;
    try {
      return new RegExp(`^(?:${expression})$`);
    } catch {
      throw invalidInput(`Invalid Expression: ${expression}`);
    }
  }
}

// ------------------------------------------------------------------------------------------------ server

/** Which error a throttled call gets by default (see {@link ThrottleOptions.type}). */
function throttleError(
  service: "athena" | "glue",
  operation: string,
  options: ThrottleOptions,
): AwsJsonError {
  const type = options.type ??
    (service === "athena" && operation === "StartQueryExecution"
      ? "TooManyRequestsException"
      : "ThrottlingException");
  if (type === "TooManyRequestsException") {
    const message = options.message ??
      "You have exceeded the limit for the number of queries you can run concurrently. Please reduce the " +
        "number of concurrent queries submitted by this account. Contact customer support to request a " +
        "concurrent query limit increase.";
    return new AwsJsonError(type, message, { Reason: "CONCURRENT_QUERY_LIMIT_EXCEEDED" });
  }
  // Glue models ThrottlingException (member `Message`); for Athena it is the service-wide, unmodelled one.
  return new AwsJsonError(
    type,
    options.message ?? "Rate exceeded",
    {},
    400,
    service === "athena" ? "message" : "Message",
  );
}

function serviceOf(target: string): AwsCall["service"] {
  if (target.startsWith(PREFIXES.athena)) return "athena";
  if (target.startsWith(PREFIXES.glue)) return "glue";
  return "unknown";
}

class Fake implements AwsFake {
  readonly calls: AwsCall[] = [];
  readonly athena: AthenaBackend;
  readonly glue: GlueBackend;
  readonly #clock: Clock;
  readonly #handlers = new Map<string, Handler>();
  readonly #faults = new FaultQueue("aws_fake");
  #server: LoopbackServer | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
    this.athena = new AthenaBackend(clock);
    this.glue = new GlueBackend(clock);
    for (const [name, handler] of Object.entries(this.athena.handlers())) {
      this.#handlers.set(PREFIXES.athena + name, handler);
    }
    for (const [name, handler] of Object.entries(this.glue.handlers())) {
      this.#handlers.set(PREFIXES.glue + name, handler);
    }
  }

  listen(): void {
    this.#server = serveLoopback((req) => this.#handle(req));
  }

  get port(): number {
    return this.#server!.port;
  }

  get endpoint(): string {
    return this.#server!.endpoint;
  }

  now(): number {
    return this.#clock();
  }

  callsOf(operation: string): AwsCall[] {
    return this.calls.filter((c) => c.operation === operation || c.target === operation);
  }

  throttle(operation: string, count = 1, options: ThrottleOptions = {}): void {
    const target = this.#target(operation);
    const service = serviceOf(target) as "athena" | "glue";
    this.#faults.add(
      target,
      count,
      () => throttleError(service, target.slice(target.indexOf(".") + 1), options),
      false,
    );
  }

  fail(operation: string, count: number, error: FailOptions): void {
    const make = () =>
      new AwsJsonError(
        error.type,
        error.message ?? `aws_fake: injected ${error.type}`,
        error.fields,
        error.status ?? 400,
      );
    this.#faults.add(this.#target(operation), count, make, error.applied ?? false);
  }

  async stop(): Promise<void> {
    await this.#server?.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** The full target of an operation given by name or target; throws for operations the fake lacks. */
  #target(operation: string): string {
    const target = this.#handlers.has(operation)
      ? operation
      : [PREFIXES.athena + operation, PREFIXES.glue + operation].find((t) => this.#handlers.has(t));
    if (!target) throw new TypeError(`aws_fake: no operation ${operation}`);
    return target;
  }

  async #handle(req: Request): Promise<Response> {
    const target = req.headers.get("x-amz-target") ?? "";
    const call: AwsCall = {
      target,
      service: serviceOf(target),
      operation: target.slice(target.indexOf(".") + 1),
      body: {},
      at: this.#clock(),
      signed: req.headers.has("authorization"),
      authorization: req.headers.get("authorization") ?? undefined,
      contentType: req.headers.get("content-type") ?? undefined,
      status: 0,
    };
    this.calls.push(call);
    const text = await req.text();
    let result: Json | AwsJsonError;
    try {
      result = this.#dispatch(req, call, text);
    } catch (e) {
      result = e instanceof AwsJsonError
        ? e
        : new AwsJsonError("InternalFailure", `aws_fake bug: ${e}`, {}, 500, "message");
    }
    call.status = result instanceof AwsJsonError ? result.status : 200;
    if (result instanceof AwsJsonError) call.errorType = result.type;
    return awsJsonResponse(result);
  }

  #dispatch(req: Request, call: AwsCall, text: string): Json {
    let body: Json | AwsJsonError;
    try {
      body = call.body = parseJsonBody(text, "aws_fake");
    } catch (e) {
      body = e as AwsJsonError;
    }
    const handler = this.#handlers.get(call.target);
    if (req.method !== "POST" || new URL(req.url).pathname !== "/" || !handler) {
      throw new AwsJsonError(
        "UnknownOperationException",
        `aws_fake: no operation ${call.target || "(no X-Amz-Target)"}`,
      );
    }
    if (body instanceof AwsJsonError) throw body;
    const fault = this.#faults.take(call.target);
    if (fault && !fault.applied) throw fault.error();
    const answer = handler(body);
    if (fault) throw fault.error();
    return answer;
  }
}

/**
 * Starts the fake on `127.0.0.1` with a free port. Stop it with `stop()` (or `await using`).
 *
 * ```ts ignore
 * await using fake = await startAwsFake();
 * const athena = new AthenaClient({ endpoint: fake.endpoint, region: "us-east-1", credentials });
 * ```
 */
export function startAwsFake(options: AwsFakeOptions = {}): Promise<AwsFake> {
  const fake = new Fake(options.clock ?? Date.now);
  fake.listen();
  return Promise.resolve(fake);
}
