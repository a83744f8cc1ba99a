/**
 * The `start_job_run` task: starts a run of a Glue job, or reattaches to the one this routine run already
 * started, and waits for it to end.
 *
 * - **Never twice.** Before StartJobRun the step opens an entry in its ledger (`lib/cloud/ledger.ts`), and
 *   the run carries the entry's token as the argument {@link RUN_MARKER_ARGUMENT}. The run's id is recorded
 *   the moment StartJobRun returns it. A re-run of an unfinished routine run reattaches to the recorded run;
 *   when lakerun died before recording it (or StartJobRun's answer was lost), the run is found by its marker
 *   with GetJobRuns (newest first, page by page, stopping at runs older than the entry; moto lists runs
 *   oldest first, and then every page is read). StartJobRun has no idempotency token, so it is never sent
 *   again after an ambiguous failure before that search. A start Glue refused (a 4xx answer: no such job,
 *   access denied, too many concurrent runs none of which is ours) or that was never sent (no credentials)
 *   ends the entry as failed: no run exists, and the next attempt starts afresh.
 * - **Never left running.** Ctrl-C, SIGTERM, the step's `timeout` or a failure while waiting stop the run
 *   (BatchStopJobRun) and say so. With `wait: false` the run is recorded and left to itself.
 * - **Cheap polling.** GetJobRun with adaptive backoff (`lib/cloud/poll.ts`); throttling is retried by the
 *   client and never fails the task.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { AwsServiceError, isRefusal } from "../../lib/aws/json_client.ts";
import { type CloudRunEntry, CloudRunLedger, fingerprintOf } from "../../lib/cloud/ledger.ts";
import { formatDuration } from "../../lib/format.ts";
import { pollUntil } from "../../lib/cloud/poll.ts";
import {
  CLOCK_SKEW_MS,
  epochMs,
  type GlueParams,
  GlueTask,
  type GlueTaskOptions,
  isAmbiguous,
  missingParam,
  pollOptionsOf,
  STOP_TIMEOUT_MS,
  waitOrStop,
} from "./common.ts";
import { RUN_MARKER_ARGUMENT } from "./params.ts";

export { RUN_MARKER_ARGUMENT };

/** Run states that end a run badly: the task fails with Glue's ErrorMessage. */
export const FAILED_RUN_STATES: ReadonlySet<string> = new Set([
  "FAILED",
  "TIMEOUT",
  "ERROR",
  "STOPPED",
  "EXPIRED",
]);

/** How long a superseded run stopped by a re-run is waited for to be STOPPED before the new run starts. */
const STOPPED_WAIT_MS = 5 * 60_000;

/** Run states of a run that is not over (it holds one of the job's concurrent-run slots). */
export const ACTIVE_RUN_STATES: ReadonlySet<string> = new Set(["STARTING", "RUNNING", "STOPPING", "WAITING"]);

const LEDGER_KEY = "start_job_run";
/** StartJobRun calls (each after an ambiguous failure and a marker search that found nothing). */
const MAX_START_ATTEMPTS = 3;
/** GetJobRuns pages read to name the runs that block a start (ConcurrentRunsExceededException). */
const MAX_ACTIVE_SCAN_PAGES = 5;

/** A Glue `JobRun`, as far as lakerun reads it. */
export interface JobRun {
  Id: string;
  JobName?: string;
  JobRunState: string;
  Arguments?: Record<string, string>;
  /** Epoch seconds. */
  StartedOn?: number;
  ErrorMessage?: string;
  /** Seconds. */
  ExecutionTime?: number;
  DPUSeconds?: number;
}

/**
 * The run's arguments as Glue takes them: every key with its leading `--`, every value a string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { glueArguments } from "./job_run.ts";
 *
 * assert.deepEqual(glueArguments({ day: "2024-05-01", "--workers": 4, dry: false }), {
 *   "--day": "2024-05-01",
 *   "--workers": "4",
 *   "--dry": "false",
 * });
 * ```
 */
export function glueArguments(args: Record<string, string | number | boolean>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(args).map(([key, value]) => [key.startsWith("--") ? key : `--${key}`, String(value)]),
  );
}

/**
 * Whether every run listed after this page of GetJobRuns started before `since` (epoch ms), so that a search
 * may stop: Glue lists runs newest first, so once a page reaches an older run the rest is older still. A page
 * not in that order (moto lists runs oldest first) proves nothing, and the search then reads every page.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { olderRunsFollow } from "./job_run.ts";
 *
 * const since = Date.parse("2024-05-01T12:00:00Z");
 * const at = (time: string) => ({ StartedOn: Date.parse(time) / 1000 });
 * assert.equal(olderRunsFollow([at("2024-05-01T12:05:00Z"), at("2024-05-01T11:00:00Z")], since), true);
 * assert.equal(olderRunsFollow([at("2024-05-01T11:00:00Z"), at("2024-05-01T12:05:00Z")], since), false);
 * assert.equal(olderRunsFollow([at("2024-05-01T12:05:00Z"), at("2024-05-01T12:01:00Z")], since), false);
 * ```
 */
export function olderRunsFollow(page: ReadonlyArray<Pick<JobRun, "StartedOn">>, since: number): boolean {
  const starts = page.map((run) => epochMs(run.StartedOn));
  if (starts.some(Number.isNaN)) return false;
  const newestFirst = starts.every((start, i) => i === 0 || start <= starts[i - 1]);
  return newestFirst && starts.some((start) => start < since);
}

/**
 * Runs the `start_job_run` task (see the module documentation).
 *
 * @example
 * ```ts ignore
 * await startJobRun(context); // context.params: { job_name: "clean-sales", arguments: { day: "2024-05-01" }, … }
 * ```
 */
export async function startJobRun(
  context: TaskContext<GlueParams>,
  options: GlueTaskOptions = {},
): Promise<void> {
  const jobName = context.params.job_name;
  if (!jobName) throw missingParam("start_job_run", "job_name", "the Glue job to run");
  const ledger = await CloudRunLedger.open(context.stateDir, context.runId, context.stepId);
  await new JobRunTask(context, options, jobName, ledger).run();
}

class JobRunTask extends GlueTask {
  readonly #job: string;
  readonly #arguments: Record<string, string>;
  /** The run this step started or reattached to, once known. */
  #runId: string | undefined;
  /** A StartJobRun was sent whose run id is not known yet. */
  #startInFlight = false;

  constructor(
    context: TaskContext<GlueParams>,
    options: GlueTaskOptions,
    job: string,
    ledger: CloudRunLedger,
  ) {
    super(context, options, ledger);
    this.#job = job;
    this.#arguments = glueArguments(context.params.arguments);
  }

  async run(): Promise<void> {
    const { params } = this.context;
    const fingerprint = fingerprintOf(
      "glue.start_job_run",
      this.#job,
      Object.entries(this.#arguments).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      params.worker_type ?? null,
      params.number_of_workers ?? null,
    );
    const { entry, reattach, superseded } = await this.ledger.begin(LEDGER_KEY, fingerprint);
    this.entry = entry;
    if (superseded) await this.#stopSuperseded(superseded);
    if (reattach && entry.state === "succeeded") {
      const figures = runFigures({
        executionTime: entry.result?.executionTime as number | undefined,
        dpuSeconds: entry.result?.dpuSeconds as number | undefined,
      });
      this.log(
        `run ${entry.id} of Glue job ${this.#job} already SUCCEEDED in an earlier attempt of this routine run` +
          `${figures ? ` (${figures})` : ""}: not starting another`,
      );
      this.context.shared.set("glue.job_run_id", entry.id);
      // what the first attempt reported, from what it recorded
      this.#reportRunId(entry.id!);
      this.#reportEnd({
        JobRunState: typeof entry.result?.state === "string" ? entry.result.state : "SUCCEEDED",
        ExecutionTime: entry.result?.executionTime as number | undefined,
        DPUSeconds: entry.result?.dpuSeconds as number | undefined,
      });
      return;
    }
    try {
      if (reattach && entry.id) {
        this.#runId = entry.id;
        this.log(
          `reattaching to run ${entry.id} of Glue job ${this.#job}, started by an earlier attempt of this routine run`,
        );
      } else if (reattach) {
        // an earlier attempt opened the entry and may have died between StartJobRun and recording the id
        const found = await this.#findMarkedRun(this.context.signal);
        if (found) {
          await this.#record(
            found.Id,
            `found run ${found.Id} of Glue job ${this.#job} (${found.JobRunState}) by its marker: an earlier ` +
              "attempt started it without recording it; reattaching",
          );
        }
      }
      if (!this.#runId) await this.#start();
      const runId = this.#runId!;
      this.context.shared.set("glue.job_run_id", runId);
      this.#reportRunId(runId);
      if (!params.wait) {
        if (reattach) await this.#checkOnce(runId);
        this.log(`not waiting (wait: false): run ${runId} goes on by itself, and lakerun will not stop it`);
        return;
      }
      await this.#wait(runId);
    } catch (error) {
      if (this.context.signal.aborted && this.#startInFlight) await this.#stopUnrecorded();
      throw error;
    }
  }

  /**
   * An earlier attempt of this routine run started a run of the job with other arguments (the routine changed
   * since): stopped if it still runs, so that the two never run side by side. Found by its marker when the
   * attempt died before recording its id.
   */
  async #stopSuperseded(earlier: CloudRunEntry): Promise<void> {
    const why = "an earlier attempt of this routine run started it with other arguments";
    const { signal } = this.context;
    const run = earlier.id
      ? await this.#getRun(earlier.id, signal).catch(() => undefined)
      : await this.#findMarkedRun(signal, 0, earlier);
    const id = earlier.id ?? run?.Id;
    if (!id) return; // never started
    if (run && !ACTIVE_RUN_STATES.has(run.JobRunState)) {
      this.log(
        `run ${id} of Glue job ${this.#job}, which ${why}, ended ${run.JobRunState}: starting the new one`,
      );
      return;
    }
    if (!(await this.#stop(id, why))) return;
    // a job that allows one run at a time would refuse the new one while the old one is STOPPING
    try {
      await pollUntil(async () => {
        const state = (await this.#getRun(id, signal)).JobRunState;
        return { done: !ACTIVE_RUN_STATES.has(state), state, value: state };
      }, { ...pollOptionsOf(this.context, this.options), timeoutMs: STOPPED_WAIT_MS });
    } catch (error) {
      if (this.context.signal.aborted) throw error;
      this.log(`run ${id} is not STOPPED yet (${(error as Error).message}): starting the new one anyway`);
    }
  }

  /** The output `job_run_id`. */
  #reportRunId(runId: string): void {
    this.context.report({ type: "output", name: "job_run_id", value: runId });
  }

  /** The outputs of a run seen to end well: `job_run_state`, `execution_time_seconds`, `dpu_seconds`. */
  #reportEnd(run: Pick<JobRun, "JobRunState" | "ExecutionTime" | "DPUSeconds">): void {
    const report = (name: string, value: string | number) =>
      this.context.report({ type: "output", name, value });
    report("job_run_state", run.JobRunState);
    if (typeof run.ExecutionTime === "number") report("execution_time_seconds", run.ExecutionTime);
    if (typeof run.DPUSeconds === "number") report("dpu_seconds", run.DPUSeconds);
  }

  /** Records the run's id in the ledger, then says so. */
  async #record(runId: string, message: string): Promise<void> {
    this.#runId = runId;
    this.#startInFlight = false;
    await this.ledger.started(LEDGER_KEY, runId);
    this.log(message);
  }

  async #start(): Promise<void> {
    const { params, signal } = this.context;
    const body: Record<string, unknown> = {
      JobName: this.#job,
      Arguments: { ...this.#arguments, [RUN_MARKER_ARGUMENT]: this.entry.token },
    };
    if (params.worker_type !== undefined) body.WorkerType = params.worker_type;
    if (params.number_of_workers !== undefined) body.NumberOfWorkers = params.number_of_workers;
    // Glue's own limit (minutes): the run ends even if lakerun is killed and never run again
    if (params.timeout !== undefined) body.Timeout = Math.max(1, Math.ceil(params.timeout / 60));
    for (let attempt = 1;; attempt++) {
      let failure: unknown;
      try {
        this.#startInFlight = true;
        const { JobRunId } = await this.client.call<{ JobRunId: string }>("StartJobRun", body, { signal });
        await this.#record(JobRunId, `started run ${JobRunId} of Glue job ${this.#job}`);
        return;
      } catch (error) {
        if (signal.aborted) throw error;
        failure = error;
      }
      if (failure instanceof AwsServiceError && failure.code === "ConcurrentRunsExceededException") {
        this.#startInFlight = false;
        return await this.#onConcurrentRunsExceeded(failure);
      }
      if (!isAmbiguous(failure)) {
        this.#startInFlight = false;
        // refused (no such job, access denied) or never sent (no credentials): Glue started no run, so the
        // next attempt starts afresh instead of searching for one by its marker
        if (isRefusal(failure)) await this.ledger.ended(LEDGER_KEY, "failed");
        throw failure;
      }
      const reason = failure instanceof Error ? failure.message : String(failure);
      this.log(
        `StartJobRun got no clear answer (${reason}): looking for a run carrying this step's marker before ` +
          "starting one again",
      );
      const found = await this.#findMarkedRun(signal) ?? await this.#findMarkedRun(signal, 2_000);
      if (found) {
        await this.#record(
          found.Id,
          `found run ${found.Id} of Glue job ${this.#job} by its marker: StartJobRun had started it; not starting another`,
        );
        return;
      }
      if (attempt >= MAX_START_ATTEMPTS) {
        this.#startInFlight = false;
        throw new Error(
          `StartJobRun of Glue job ${this.#job} failed ${attempt} times without a clear answer (last: ${reason}), ` +
            "and no run carries this step's marker",
        );
      }
      this.log(
        `no run carries the marker: starting again (attempt ${attempt + 1} of ${MAX_START_ATTEMPTS})`,
      );
    }
  }

  /**
   * A start refused because the job's concurrent runs are all taken: reattach if one is ours, else end the
   * entry as failed and explain.
   */
  async #onConcurrentRunsExceeded(failure: AwsServiceError): Promise<void> {
    const { ours, others } = await this.#activeRuns();
    if (ours) {
      await this.#record(
        ours.Id,
        `Glue job ${this.#job} is already running run ${ours.Id}, which carries this step's marker: reattaching`,
      );
      return;
    }
    // no run of ours is going and this start was refused: the next attempt starts afresh
    await this.ledger.ended(LEDGER_KEY, "failed");
    const listed = others.map((run) => {
      const started = epochMs(run.StartedOn);
      return `${run.Id} (${run.JobRunState}${
        Number.isNaN(started) ? "" : `, started ${new Date(started).toISOString()}`
      })`;
    });
    throw new Error(
      `Glue job ${this.#job} is already running and allows no more concurrent runs ` +
        `(${failure.code}${failure.awsMessage ? `: ${failure.awsMessage}` : ""})` +
        (listed.length ? `; running: ${listed.join(", ")}` : "") +
        `: wait for ${listed.length === 1 ? "it" : "them"} to end, stop ${
          listed.length === 1 ? "it" : "them"
        }, or raise the job's MaxConcurrentRuns`,
    );
  }

  /**
   * The run carrying the marker of `entry` (default: this task's): GetJobRuns page by page until a page shows
   * that every later run is older than the entry less {@link CLOCK_SKEW_MS} ({@link olderRunsFollow}). With `afterMs`, waits that long
   * first (a run just started may take a moment to be listed).
   */
  async #findMarkedRun(signal: AbortSignal, afterMs = 0, entry = this.entry): Promise<JobRun | undefined> {
    if (afterMs > 0) await delay(afterMs, signal);
    const since = Date.parse(entry.openedAt) - CLOCK_SKEW_MS;
    let found: JobRun | undefined;
    await this.#scanPages(signal, Infinity, (page) => {
      found = page.find((run) => run.Arguments?.[RUN_MARKER_ARGUMENT] === entry.token);
      return found !== undefined || olderRunsFollow(page, since);
    });
    return found;
  }

  /** The job's runs that are not over (at most {@link MAX_ACTIVE_SCAN_PAGES} pages), ours apart. */
  async #activeRuns(): Promise<{ ours?: JobRun; others: JobRun[] }> {
    let ours: JobRun | undefined;
    const others: JobRun[] = [];
    await this.#scanPages(this.context.signal, MAX_ACTIVE_SCAN_PAGES, (page) => {
      for (const run of page) {
        if (!ACTIVE_RUN_STATES.has(run.JobRunState)) continue;
        if (run.Arguments?.[RUN_MARKER_ARGUMENT] === this.entry.token) ours = run;
        else others.push(run);
      }
      return ours !== undefined;
    });
    return { ours, others };
  }

  /** Calls `visit` on the pages of the job's runs until it answers true or `maxPages` were read. */
  async #scanPages(signal: AbortSignal, maxPages: number, visit: (page: JobRun[]) => boolean): Promise<void> {
    let nextToken: string | undefined;
    for (let page = 0; page < maxPages; page++) {
      const answer = await this.client.call<{ JobRuns?: JobRun[]; NextToken?: string }>(
        "GetJobRuns",
        {
          JobName: this.#job,
          MaxResults: this.options.pageSize ?? 200,
          ...(nextToken ? { NextToken: nextToken } : {}),
        },
        { idempotent: true, signal },
      );
      if (visit(answer.JobRuns ?? [])) return;
      nextToken = answer.NextToken;
      if (!nextToken) return;
    }
  }

  async #getRun(runId: string, signal: AbortSignal): Promise<JobRun> {
    const { JobRun } = await this.client.call<{ JobRun: JobRun }>(
      "GetJobRun",
      { JobName: this.#job, RunId: runId, PredecessorsIncluded: false },
      { idempotent: true, signal },
    );
    return JobRun;
  }

  /** With `wait: false` on a re-run: the recorded run's state, failing the task if it ended badly. */
  async #checkOnce(runId: string): Promise<void> {
    const run = await this.#getRun(runId, this.context.signal);
    if (run.JobRunState === "SUCCEEDED") return await this.#succeeded(run);
    if (FAILED_RUN_STATES.has(run.JobRunState)) return await this.#failed(run);
    this.log(`run ${runId}: ${run.JobRunState}`);
  }

  /** Polls GetJobRun until the run ends; stops the run if the wait fails. */
  async #wait(runId: string): Promise<void> {
    const run = await waitOrStop(this.context, this.options, {
      label: `run ${runId}`,
      title: `Glue job ${this.#job} run ${runId}`,
      ledger: this.ledger,
      ledgerKey: LEDGER_KEY,
      stop: (why) => this.#stop(runId, why),
      check: async (signal) => {
        const current = await this.#getRun(runId, signal);
        const state = current.JobRunState;
        return { done: state === "SUCCEEDED" || FAILED_RUN_STATES.has(state), state, value: current };
      },
    });
    if (run.JobRunState === "SUCCEEDED") return await this.#succeeded(run);
    await this.#failed(run);
  }

  async #succeeded(run: JobRun): Promise<void> {
    const figures = runFigures({ executionTime: run.ExecutionTime, dpuSeconds: run.DPUSeconds });
    await this.ledger.ended(LEDGER_KEY, "succeeded", {
      state: run.JobRunState,
      ...(run.ExecutionTime !== undefined ? { executionTime: run.ExecutionTime } : {}),
      ...(run.DPUSeconds !== undefined ? { dpuSeconds: run.DPUSeconds } : {}),
    });
    this.log(
      `run ${run.Id} of Glue job ${this.#job} SUCCEEDED${figures ? `: ${figures}` : ""}`,
    );
    this.#reportEnd(run);
  }

  async #failed(run: JobRun): Promise<never> {
    await this.ledger.ended(LEDGER_KEY, "failed", { state: run.JobRunState });
    throw new Error(
      `Glue job ${this.#job} run ${run.Id} ended ${run.JobRunState}: ${
        run.ErrorMessage || "(Glue gave no ErrorMessage)"
      }`,
    );
  }

  /** Stops a run (BatchStopJobRun) within {@link STOP_TIMEOUT_MS}; says what happened; true if stopped. */
  async #stop(runId: string, why: string): Promise<boolean> {
    try {
      const answer = await this.client.call<{
        Errors?: Array<{ ErrorDetail?: { ErrorCode?: string; ErrorMessage?: string } }>;
      }>(
        "BatchStopJobRun",
        { JobName: this.#job, JobRunIds: [runId] },
        { idempotent: true, signal: AbortSignal.timeout(STOP_TIMEOUT_MS) },
      );
      const detail = answer.Errors?.[0]?.ErrorDetail;
      if (detail) {
        this.log(
          `${why}: could not stop run ${runId} of Glue job ${this.#job}: ${detail.ErrorCode ?? "error"}: ` +
            `${detail.ErrorMessage ?? ""}`,
        );
        return false;
      }
      this.log(
        `${why}: stopped run ${runId} of Glue job ${this.#job} (BatchStopJobRun accepted: STOPPING, then STOPPED)`,
      );
      return true;
    } catch (error) {
      this.log(
        `${why}: could not stop run ${runId} of Glue job ${this.#job} (${(error as Error).message}): ` +
          "it may still be running",
      );
      return false;
    }
  }

  /** Interrupted while StartJobRun was in flight: find the run it may have started, and stop it. */
  async #stopUnrecorded(): Promise<void> {
    const signal = AbortSignal.timeout(STOP_TIMEOUT_MS);
    let found: JobRun | undefined;
    try {
      found = await this.#findMarkedRun(signal);
    } catch (error) {
      this.log(
        `interrupted while starting a run of Glue job ${this.#job}; could not look for it ` +
          `(${(error as Error).message}): a run carrying marker ${this.entry.token} may be running`,
      );
      return;
    }
    if (!found) return;
    await this.ledger.started(LEDGER_KEY, found.Id);
    if (await this.#stop(found.Id, "interrupted while starting")) {
      await this.ledger.ended(LEDGER_KEY, "failed");
    }
  }
}

/** "execution time 2 min 5 s, 37.5 DPU-seconds", from what Glue gave; empty when it gave neither. */
function runFigures(run: { executionTime?: number; dpuSeconds?: number }): string {
  const figures: string[] = [];
  if (typeof run.executionTime === "number") {
    figures.push(`execution time ${formatDuration(run.executionTime * 1000)}`);
  }
  if (typeof run.dpuSeconds === "number") figures.push(`${run.dpuSeconds} DPU-seconds`);
  return figures.join(", ");
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
