/**
 * What the Glue tasks share: the params they read, the client they call Glue with, how they poll, and the
 * small pieces of reporting both use.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { AwsJsonClient, AwsServiceError } from "../../lib/aws/json_client.ts";
import type { CloudRunEntry, CloudRunLedger } from "../../lib/cloud/ledger.ts";
import { type PollAnswer, type PollOptions, PollTimeoutError, pollUntil } from "../../lib/cloud/poll.ts";
import type { GlueParams } from "./params.ts";

export type { GlueParams } from "./params.ts";

/**
 * What tests and the benchmark may hand a task besides its context: a client with explicit credentials and
 * short retry delays, a time scale for a fake whose clock runs fast, a smaller GetJobRuns page. lakerun itself
 * passes none.
 */
export interface GlueTaskOptions {
  /** The Glue client; default: one for the routine's `aws` block and the default credential chain. */
  client?: AwsJsonClient;
  /**
   * How many times faster than real time the service's clock runs: every poll interval (and the timeout) is
   * divided by it, so a 10-minute job on a fake's scaled clock is polled as lakerun polls a real one. Default 1.
   */
  timeScale?: number;
  /** GetJobRuns page size (1–200). Default 200. */
  pageSize?: number;
}

/** The longest wait between two status checks. */
export const MAX_POLL_INTERVAL_MS = 30_000;

/**
 * How far a run's or crawl's start may precede the ledger entry and still be taken for the one this step
 * started: allows for the difference between this machine's clock and AWS's.
 */
export const CLOCK_SKEW_MS = 5 * 60_000;

/** How long stopping a run or crawl may take once the step was interrupted (lakerun grants 4 s). */
export const STOP_TIMEOUT_MS = 3_000;

/** The Glue client of a task: throttling and retries are logged, never fatal. */
export function glueClient(context: TaskContext<GlueParams>, options: GlueTaskOptions): AwsJsonClient {
  return options.client ?? new AwsJsonClient("glue", {
    settings: context.aws,
    onRetry: ({ operation, code, attempt, delayMs }) =>
      context.log(
        `Glue ${operation}: ${code}; retrying in ${(delayMs / 1000).toFixed(1)} s (retry ${attempt})`,
      ),
  });
}

/** The poll options of a task: `poll_interval` as the first interval, `timeout` as the limit. */
export function pollOptionsOf(context: TaskContext<GlueParams>, options: GlueTaskOptions): PollOptions {
  const { params } = context;
  const scale = options.timeScale ?? 1;
  return {
    firstIntervalMs: (params.poll_interval * 1000) / scale,
    maxIntervalMs: MAX_POLL_INTERVAL_MS / scale,
    timeoutMs: params.timeout === undefined ? undefined : (params.timeout * 1000) / scale,
    signal: context.signal,
  };
}

/** A job run or crawl that a task waits for, and stops when the wait ends otherwise than by its end. */
export interface Watched<T> {
  /** One status check: the state, and whether it is final. */
  check(signal: AbortSignal): Promise<PollAnswer<T>>;
  /** Stops the run or crawl (within {@link STOP_TIMEOUT_MS}), logging `why` and what happened; true if stopped. */
  stop(why: string): Promise<boolean>;
  /** How the log names it before each new state: `run jr_1`, `crawler raw-sales`. */
  label: string;
  /** How a timeout's error names it: `Glue job clean-sales run jr_1`, `Glue crawler raw-sales`. */
  title: string;
  /** The step's ledger, and the entry the run or crawl is recorded in. */
  ledger: CloudRunLedger;
  ledgerKey: string;
}

/**
 * Polls `watched.check` until it answers done ({@link pollOptionsOf}), logging each new state, and resolves
 * to the last answer's value. When the wait ends otherwise (the step interrupted, its `timeout` reached, a
 * check failing), stops the run or crawl first (`watched.stop`, with the reason), ends its ledger entry as
 * failed if it was stopped, then rethrows; a timeout as `<title> still <state> after <timeout> s (the step's
 * timeout)`, with `: stopped it` when it was.
 */
export async function waitOrStop<T>(
  context: TaskContext<GlueParams>,
  options: GlueTaskOptions,
  watched: Watched<T>,
): Promise<T> {
  const { signal, params } = context;
  let last: string | undefined;
  try {
    const answer = await pollUntil(async () => {
      const current = await watched.check(signal);
      if (current.state !== last) {
        last = current.state;
        context.log(`${watched.label}: ${last}`);
      }
      return current;
    }, pollOptionsOf(context, options));
    return answer.value;
  } catch (error) {
    const why = signal.aborted
      ? String((signal.reason as Error)?.message ?? signal.reason ?? "interrupted")
      : error instanceof PollTimeoutError
      ? `timeout (${params.timeout} s)`
      : `waiting failed (${(error as Error).message})`;
    const stopped = await watched.stop(why);
    if (stopped) await watched.ledger.ended(watched.ledgerKey, "failed");
    if (error instanceof PollTimeoutError && !signal.aborted) {
      throw new Error(
        `${watched.title} still ${error.lastState} after ${params.timeout} s (the step's timeout)` +
          (stopped ? ": stopped it" : ""),
      );
    }
    throw error;
  }
}

/**
 * True when a failed call may still have been carried out by Glue: no answer (a network failure or a
 * timeout), or a server error. A 4xx answer (invalid input, not found, too many runs) means it was not.
 */
export function isAmbiguous(error: unknown): boolean {
  if (error instanceof AwsServiceError) {
    return error.code === "NetworkError" || (error.status ?? 0) >= 500 ||
      error.code === "OperationTimeoutException" || error.code === "InternalServiceException";
  }
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

/** Epoch milliseconds of an awsJson1_1 timestamp (epoch seconds), or NaN. */
export function epochMs(value: unknown): number {
  return typeof value === "number" ? value * 1000 : typeof value === "string" ? Date.parse(value) : NaN;
}

/** The error a task reports when the step's params lack what the task needs. */
export function missingParam(task: string, param: string, what: string): Error {
  return new Error(`${task} needs ${param} (${what}); this step has none`);
}

/**
 * What both Glue tasks hold while they run: the step's context and options, a Glue client, and the routine
 * run's ledger with this task's entry in it (which says whether an earlier attempt started the job or crawl).
 */
export abstract class GlueTask {
  protected readonly context: TaskContext<GlueParams>;
  protected readonly options: GlueTaskOptions;
  protected readonly ledger: CloudRunLedger;
  protected readonly client: AwsJsonClient;
  /** This task's ledger entry, once {@link CloudRunLedger.begin} gave it. */
  protected entry!: CloudRunEntry;

  protected constructor(context: TaskContext<GlueParams>, options: GlueTaskOptions, ledger: CloudRunLedger) {
    this.context = context;
    this.options = options;
    this.ledger = ledger;
    this.client = glueClient(context, options);
  }

  protected get log(): (message: string) => void {
    return this.context.log;
  }
}
