/**
 * Runs a validated routine, every step in its own sandbox; the runner knows nothing of any executor's
 * internals.
 *
 * Scheduling: a routine without `depends_on` runs its steps in file order, one at a time, the next step's
 * Worker booting while a step works. As soon as one step has `depends_on`, every step starts when all the
 * steps it depends on are done (succeeded, or failed with `continue_on_error`), at most
 * {@link RunOptions.maxParallel} at a time, in file order among those ready; a step without `depends_on` then
 * waits for nothing. A step whose dependency failed (without `continue_on_error`) or was skipped is skipped;
 * in file order, every step after a failed one is.
 *
 * Each step: `prepareStep` (templates), then its tasks in a Worker; a failed attempt is retried `retries`
 * times in a fresh Worker after a jittered exponential wait (an interruption or a permission refusal is not
 * retried); an attempt longer than `timeout` is aborted and fails. The run's progress is kept in its run
 * record (records.ts), and `resume` continues a failed or interrupted run.
 *
 * @module
 */
import { resolve } from "node:path";
import { CloudRunLedger } from "../../lib/cloud/ledger.ts";
import { plural } from "../../lib/format.ts";
import type { SecretMask } from "../../lib/mask.ts";
import type { Reporter } from "../cli/reporter.ts";
import { RoutineBusyError, TaskFailedError } from "../errors.ts";
import type { Routine, Step } from "../routine/routine.ts";
import { MAX_RETRY_WAIT, runsByDependencies } from "../routine/step_options.ts";
import {
  checkStateFolder,
  type ResolvedScope,
  routineStateDir,
  runLockFile,
  stepScope,
  stepStateDir,
} from "./permissions.ts";
import {
  hashOf,
  listRuns,
  markKilledRuns,
  type OutputValue,
  recordedOutputs,
  resumeRerunReasons,
  routineHash,
  type RunRecord,
  RunRecorder,
  type RunStatus,
  startedFrom,
  type StepRecord,
} from "./records.ts";
import { beginRun, endRun, type RunState } from "./run_state.ts";
import { startStepSandbox, type StepSandbox } from "./sandbox.ts";
import {
  describeFailure,
  eventProblem,
  runStepTasks,
  type StepMessage,
  type StepRequest,
} from "./step_runtime.ts";

/** How many steps' Workers are started before they are needed (file order only). */
const PRESTART = Math.max(1, Number(Deno.env.get("LAKERUN_PRESTART") ?? 1));

/** Default of {@link RunOptions.maxParallel} (`--max-parallel`). */
export const DEFAULT_MAX_PARALLEL = 2;

/** Options for {@link runRoutine}. */
export interface RunOptions {
  /** Folder relative paths resolve against. Default: the current folder. */
  cwd?: string;
  /** Root of the step state folders. Default: `.lakerun` in `cwd`. */
  stateRoot?: string;
  reporter: Reporter;
  signal?: AbortSignal;
  /** The run's logical date (`YYYY-MM-DD`), stored in the run record. Default: none recorded. */
  date?: string;
  /** The run's secret values: masked in every error and output stored in the run record. */
  secrets?: SecretMask;
  /** Most steps running at once when the routine uses `depends_on`. Default 2. */
  maxParallel?: number;
  /**
   * A failed or interrupted run to continue (see `findResumableRun` in records.ts): same run id, its
   * succeeded steps skipped, their outputs kept — re-run, with a warning, when their executor, tasks or
   * resolved params changed or
   * when an output held a secret (the record has only `***`: see `resumeRerunReasons` in records.ts).
   */
  resume?: RunRecord;
  /**
   * Begin a new run even when the newest run (for this date) did not succeed, which a run otherwise continues
   * under its id, so that the cloud jobs and loads it completed are not done again (`--new-run`).
   */
  newRun?: boolean;
  /**
   * Called just before a step starts, with the outputs the steps before it reported (by step id, then
   * name) and the run's id and date: returns the step to run — e.g. with `${{ … }}` templates resolved — or throws to fail the step.
   * Default: the step unchanged.
   */
  prepareStep?: (
    step: Step,
    outputs: Readonly<Record<string, Record<string, unknown>>>,
    run: { runId: string; date?: string },
  ) => Step | Promise<Step>;
  /**
   * Run every step inside lakerun's own process, with all its permissions. Only for measuring what the
   * sandbox costs; the command line never does this.
   */
  inProcess?: boolean;
}

/**
 * Runs the steps of `routine`; throws the first failure that failed the run ({@link TaskFailedError} for a
 * task) once every running step ended, or, when `signal` aborted, after every running step was aborted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { consoleReporter } from "../cli/reporter.ts";
 * import { loadRoutine } from "../routine/routine.ts";
 * import { listRuns } from "./records.ts";
 * import { runRoutine } from "./runner.ts";
 *
 * const cwd = await Deno.makeTempDir();
 * await Deno.mkdir(`${cwd}/data/landing`, { recursive: true });
 * await Deno.writeTextFile(`${cwd}/data/landing/a.csv`, "a,b\n");
 * const params = { parent_directory: "data/landing", dump_directory: "data/staging" };
 * const step = { params, tasks: ["transfer", "post_staging"] };
 * const routine = { routine_name: "staging", executors: { StagingExecutor: step } };
 * await Deno.writeTextFile(`${cwd}/routine.json`, JSON.stringify(routine));
 *
 * const lines: string[] = [];
 * const reporter = consoleReporter({ write: (line) => lines.push(line) });
 * await runRoutine(await loadRoutine("routine.json", { cwd }), { cwd, reporter });
 * assert.equal(await Deno.readTextFile(`${cwd}/data/staging/a.csv`), "a,b\n");
 * assert.equal(await Deno.readTextFile(`${cwd}/data/archive/a.csv`), "a,b\n"); // post_staging archived it
 * assert.ok(lines.at(-1)!.startsWith("✓ done in "));
 * const [run] = await listRuns(`${cwd}/.lakerun`, "staging"); // the run record
 * assert.equal(run.status, "succeeded");
 * assert.equal(run.steps.StagingExecutor.tasks.post_staging.status, "succeeded");
 * await Deno.remove(cwd, { recursive: true });
 * ```
 */
export async function runRoutine(routine: Routine, options: RunOptions): Promise<void> {
  const cwd = options.cwd ?? Deno.cwd();
  const stateRoot = resolve(cwd, options.stateRoot ?? ".lakerun");
  checkStateFolder(routine, { cwd, stateRoot }); // before anything runs: no step may reach lakerun's state
  const resume = options.resume;
  if (resume && resume.routine !== routine.name) {
    throw new Error(`run ${resume.runId} is a run of routine ${JSON.stringify(resume.routine)}`);
  }
  await using _lock = await lockRoutine(stateRoot, routine.name);
  const routineDir = routineStateDir(stateRoot, routine.name);
  // under the lock, the runs recorded are settled. A plain run continues the newest run of its date (of any
  // date for a routine without one) started from this routine file when that run did not succeed, under its id:
  // cloud jobs it started are found again, even when runs for other dates came in between (a backfill re-run
  // after a failure). Runs of another file with the same routine_name are never continued (startedFrom).
  const path = resolve(cwd, routine.file);
  const newest = resume || options.newRun
    ? undefined
    : (await listRuns(stateRoot, routine.name)).find((record) =>
      record.date === options.date && startedFrom(record, path)
    );
  const unfinished = newest && newest.status !== "succeeded"
    ? { runId: newest.runId, attempt: newest.attempt, firstStarted: newest.firstStarted, date: options.date }
    : undefined;
  const state = await beginRun(routineDir, {
    date: options.date,
    fresh: !resume && !unfinished,
    resume: resume ? { ...resume, date: resume.date ?? options.date } : unfinished,
  });
  const run = new RoutineRun(routine, options, { cwd, stateRoot, state });
  let status: RunStatus = "failed";
  let unexpected: { error: unknown } | undefined;
  try {
    await markKilledRuns(stateRoot, routine.name, state.runId);
    await run.start();
    await run.schedule();
    status = run.status();
  } catch (error) {
    unexpected = { error };
    status = options.signal?.aborted ? "interrupted" : "failed";
  } finally {
    run.closeWorkers();
  }
  await endRun(routineDir, state, status).catch(() => {});
  await run.finish(status, unexpected);
}

type Outcome = "succeeded" | "failed" | "tolerated" | "skipped";

type AttemptResult =
  | { ok: true; outputs: Record<string, OutputValue> }
  | { ok: false; outputs: Record<string, OutputValue>; error: Error; permission: boolean };

type TaskFailure = StepMessage & { type: "task-failed" };

/** The state of one run of a routine while it runs. */
class RoutineRun {
  readonly #routine: Routine;
  readonly #options: RunOptions;
  readonly #reporter: Reporter;
  readonly #cwd: string;
  readonly #stateRoot: string;
  readonly #state: RunState;
  readonly #sequential: boolean;
  readonly #limit: number;
  readonly #started = performance.now();
  readonly #outcome = new Map<string, Outcome>();
  readonly #outputs: Record<string, Record<string, OutputValue>> = {};
  readonly #failures: Array<{ step: Step; error: unknown; tolerated: boolean }> = [];
  readonly #prestarted = new Map<string, { scope: ResolvedScope; sandbox: StepSandbox }>();
  #recorder?: RunRecorder;

  constructor(
    routine: Routine,
    options: RunOptions,
    where: { cwd: string; stateRoot: string; state: RunState },
  ) {
    this.#routine = routine;
    this.#options = options;
    this.#reporter = options.reporter;
    this.#cwd = where.cwd;
    this.#stateRoot = where.stateRoot;
    this.#state = where.state;
    this.#sequential = !runsByDependencies(routine.steps);
    const most = Math.floor(options.maxParallel ?? DEFAULT_MAX_PARALLEL);
    this.#limit = this.#sequential ? 1 : most >= 1 ? most : 1;
  }

  get #signal(): AbortSignal | undefined {
    return this.#options.signal;
  }

  get #record(): RunRecorder {
    return this.#recorder!;
  }

  /** Writes the run's first record and tells the reporter the routine started. */
  async start(): Promise<void> {
    const { runId, attempt, attemptStarted, started, date } = this.#state;
    const record: RunRecord = {
      version: 1,
      runId,
      routine: this.#routine.name,
      routineFile: this.#routine.file,
      routinePath: resolve(this.#cwd, this.#routine.file),
      routineHash: routineHash(this.#routine, this.#options.secrets),
      ...(date !== undefined ? { date } : {}),
      status: "running",
      attempt,
      started: attemptStarted,
      firstStarted: started,
      maxParallel: this.#limit,
      steps: Object.fromEntries(this.#routine.steps.map((step) => [step.id, pendingStep(step)])),
    };
    this.#recorder = await RunRecorder.start(this.#stateRoot, record, this.#options.secrets);
    this.#reporter.runStarted?.({ runId, attempt, ...(date !== undefined ? { date } : {}) });
    this.#reporter.routineStarted(this.#routine);
    const resume = this.#options.resume;
    if (resume && resume.routineHash !== record.routineHash) {
      this.#reporter.warning?.(
        `the routine changed since run ${resume.runId} was recorded: steps whose executor, tasks or resolved params changed run again`,
      );
    }
    if (this.#sequential) this.#routine.steps.slice(0, PRESTART).forEach((step) => this.#prestart(step));
  }

  /** Starts every step when it may start, until none is left or the run was interrupted. */
  async schedule(): Promise<void> {
    const running = new Map<string, Promise<void>>();
    for (;;) {
      let changed = true;
      while (changed && !this.#signal?.aborted) {
        changed = false;
        for (const step of this.#routine.steps) {
          if (this.#outcome.has(step.id) || running.has(step.id)) continue;
          const waitsFor = this.#waitsFor(step);
          const blocker = waitsFor.find((id) => ["failed", "skipped"].includes(this.#outcome.get(id) ?? ""));
          if (blocker) {
            this.#skip(step, blocker);
            changed = true;
          } else if (
            running.size < this.#limit &&
            waitsFor.every((id) => ["succeeded", "tolerated"].includes(this.#outcome.get(id) ?? ""))
          ) {
            const done = this.#runStep(step)
              .catch((error) => this.#failed(step, error))
              .then((outcome) => {
                this.#outcome.set(step.id, outcome);
                running.delete(step.id);
              });
            running.set(step.id, done);
            changed = true;
          }
        }
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
    // only a routine that skipped validation can get here with steps left: they wait for each other
    const stuck = this.#routine.steps.filter((step) => !this.#outcome.has(step.id));
    if (stuck.length > 0 && !this.#signal?.aborted) {
      const ids = stuck.map((step) => JSON.stringify(step.id)).join(", ");
      const error = new Error(`${ids} never started: their depends_on name unknown steps or form a cycle`);
      this.#failures.push({ step: stuck[0], error, tolerated: false });
    }
  }

  /** How the run ended, once {@link schedule} returned. */
  status(): RunStatus {
    if (this.#signal?.aborted) return "interrupted";
    return this.#failures.some((failure) => !failure.tolerated) ? "failed" : "succeeded";
  }

  /** Records the end of the run, tells the reporter, and throws what failed the run. */
  async finish(status: RunStatus, unexpected?: { error: unknown }): Promise<void> {
    const failure = unexpected ?? this.#failures.find((f) => !f.tolerated) ?? this.#failures[0];
    const error = status === "succeeded"
      ? undefined
      : failure?.error ?? this.#signal?.reason ?? new Error(`the run ${status}`);
    if (this.#recorder) {
      this.#record.update((record) => {
        record.status = status;
        record.ended = new Date().toISOString();
        if (error !== undefined) record.error = messageOf(error);
      });
      await this.#record.flush().catch((e) =>
        this.#reporter.warning?.(`could not write the run record: ${messageOf(e)}`)
      );
    }
    const tolerated = this.#failures.filter((f) => f.tolerated).map((f) => JSON.stringify(f.step.id));
    if (status === "succeeded" && tolerated.length > 0) {
      this.#reporter.warning?.(
        `${plural(tolerated.length, "step")} failed (${
          tolerated.join(", ")
        }), but with continue_on_error: the run succeeds`,
      );
    }
    if (status === "succeeded") await this.#forgetCloudJobs();
    this.#reporter.routineFinished(status === "succeeded", performance.now() - this.#started);
    if (error !== undefined) throw error;
  }

  /**
   * A run that succeeded is never continued: the records its steps kept of the cloud jobs and loads it
   * started (`lib/cloud/ledger.ts`) are removed, so that only those of runs that may still be re-run stay.
   */
  async #forgetCloudJobs(): Promise<void> {
    for (const step of this.#routine.steps) {
      const stateDir = stepStateDir(this.#stateRoot, this.#routine.name, step.id);
      await CloudRunLedger.forgetRun(stateDir, this.#state.runId).catch((error) =>
        this.#reporter.warning?.(
          `could not tidy step ${JSON.stringify(step.id)}'s journal: ${messageOf(error)}`,
        )
      );
    }
  }

  /** Stops the Workers started ahead that no step used. */
  closeWorkers(): void {
    for (const { sandbox } of this.#prestarted.values()) sandbox.close();
    this.#prestarted.clear();
  }

  #waitsFor(step: Step): string[] {
    if (!this.#sequential) return step.options.dependsOn ?? [];
    return step.index > 1 ? [this.#routine.steps[step.index - 2].id] : [];
  }

  #skip(step: Step, blocker: string): void {
    const reason = `step ${JSON.stringify(blocker)} ${
      this.#outcome.get(blocker) === "skipped" ? "was skipped" : "failed"
    }`;
    this.#outcome.set(step.id, "skipped");
    this.#prestarted.get(step.id)?.sandbox.close();
    this.#prestarted.delete(step.id);
    this.#updateStep(step, (record) => {
      record.status = "skipped";
      record.error = reason;
    });
    this.#reporter.stepSkipped?.(step, reason);
  }

  async #runStep(step: Step): Promise<Outcome> {
    this.#updateStep(step, (record) => {
      Object.assign(record, { status: "running", started: now(), attempt: this.#state.attempt });
    });
    if (this.#sequential) {
      this.#routine.steps.slice(step.index, step.index + PRESTART).forEach((next) => this.#prestart(next));
    }
    let prepared: Step;
    try {
      prepared = this.#options.prepareStep
        ? await this.#options.prepareStep(step, structuredClone(this.#outputs), {
          runId: this.#state.runId,
          date: this.#state.date,
        })
        : step;
    } catch (error) {
      this.#reporter.stepStarted(step, this.#routine.steps.length);
      const task = step.tasks[0];
      this.#reporter.stepMessage(step, { type: "task-failed", task, ms: 0, error: describeFailure(error) });
      return this.#failed(step, error);
    }
    const paramsHash = hashOf(prepared.params, this.#options.secrets);
    this.#updateStep(step, (record) => (record.paramsHash = paramsHash));
    const previous = this.#options.resume?.steps[step.id];
    if (previous?.status === "succeeded") {
      const now = { paramsHash, executor: prepared.executor.name, tasks: prepared.tasks };
      const { changed, secretOutputs } = resumeRerunReasons(previous, now);
      if (changed.length === 0 && secretOutputs.length === 0) return this.#reuse(step, previous);
      const id = JSON.stringify(step.id);
      this.#reporter.warning?.(
        changed.length > 0
          ? `step ${id}: ${
            changed.join(" and ")
          } since it succeeded in run ${this.#state.runId}: running it again`
          : `step ${id}: ${secretOutputs.length === 1 ? "its output" : "its outputs"} ${
            secretOutputs.map((name) => JSON.stringify(name)).join(", ")
          } held a secret, which run records store only as ***: running it again rather than hand *** on`,
        step,
      );
    }
    this.#reporter.stepStarted(step, this.#routine.steps.length);
    let result: AttemptResult;
    for (let attempt = 1;; attempt++) {
      result = await this.#attempt(step, prepared, attempt);
      if (result.ok || this.#signal?.aborted || attempt > step.options.retries || result.permission) break;
      const delayMs = retryWait(step.options.retryDelay, attempt);
      this.#reporter.stepRetry?.(step, attempt + 1, delayMs, result.error);
      if (!(await sleep(delayMs, this.#signal))) break;
    }
    this.#outputs[step.id] = result.outputs;
    if (!result.ok) return this.#failed(step, result.error);
    this.#updateStep(step, (record) => {
      Object.assign(record, { status: "succeeded", ended: now(), error: undefined });
    });
    return "succeeded";
  }

  /** A step `--resume` need not run again: it succeeded with the same resolved params. */
  #reuse(step: Step, previous: StepRecord): Outcome {
    this.#outputs[step.id] = { ...previous.outputs };
    this.#updateStep(step, (record) => Object.assign(record, previous));
    this.#reporter.stepSkipped?.(
      step,
      `succeeded in attempt ${previous.attempt ?? 1} of run ${this.#state.runId} (--resume)`,
      previous.outputs,
    );
    return "succeeded";
  }

  #failed(step: Step, error: unknown): Outcome {
    const tolerated = step.options.continueOnError && !this.#signal?.aborted;
    this.#failures.push({ step, error, tolerated });
    this.#updateStep(step, (record) => {
      Object.assign(record, { status: "failed", ended: now(), error: messageOf(error) });
      if (tolerated) record.continueOnError = true;
    });
    if (tolerated) {
      this.#reporter.warning?.(
        `step ${JSON.stringify(step.id)} failed; continue_on_error: the run goes on (${messageOf(error)})`,
        step,
      );
    }
    return tolerated ? "tolerated" : "failed";
  }

  /** One attempt of a step: its tasks in a fresh Worker, aborted at `timeout` or when the run is. */
  async #attempt(step: Step, prepared: Step, attempt: number): Promise<AttemptResult> {
    const outputs: Record<string, OutputValue> = {};
    this.#updateStep(step, (record) => {
      record.tries = attempt;
      record.outputs = {};
      record.tasks = Object.fromEntries(step.tasks.map((task) => [task, { status: "pending" }]));
    });
    const controller = new AbortController();
    const forward = () => controller.abort(this.#signal?.reason);
    this.#signal?.addEventListener("abort", forward, { once: true });
    const timeout = step.options.timeout;
    let timedOut = false;
    const timer = timeout === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`timed out after ${timeout} s`));
    }, timeout * 1000);
    let failure: TaskFailure | undefined;
    let task = step.tasks[0];
    const began = performance.now();
    const onMessage = (message: StepMessage) => {
      if (failure) return; // the step is being stopped: nothing it says after its failure counts
      const problem = message.type === "event" ? eventProblem(message.event) : undefined;
      if (problem !== undefined && message.type === "event") {
        // a report the console, the logs and the record cannot take fails the task, and the step is stopped
        message = {
          type: "task-failed",
          task: message.task,
          ms: performance.now() - began,
          error: { message: problem },
        };
        controller.abort(new Error(problem));
      }
      if (message.type === "task-failed" && timedOut) {
        message = { ...message, error: { message: `timed out after ${timeout} s` } };
      }
      if (message.type === "task-start") task = message.task;
      if (message.type === "task-failed") failure ??= message;
      this.#track(step, message, outputs);
      this.#reporter.stepMessage(step, message);
    };
    try {
      if (this.#signal?.aborted) throw this.#signal.reason;
      const stateDir = stepStateDir(this.#stateRoot, this.#routine.name, step.id);
      await Deno.mkdir(stateDir, { recursive: true });
      const request: StepRequest = {
        moduleUrl: prepared.executor.moduleUrl,
        executor: prepared.executor.name,
        stepId: step.id,
        routineName: this.#routine.name,
        params: prepared.params,
        tasks: prepared.tasks,
        cwd: this.#cwd,
        stateDir,
        runId: this.#state.runId,
        aws: this.#routine.aws,
        s3: this.#routine.s3,
        secrets: this.#options.secrets?.valuesIn(prepared.params) ?? [],
      };
      const scope = stepScope(this.#routine, prepared, { cwd: this.#cwd, stateRoot: this.#stateRoot });
      if (this.#options.inProcess) {
        await runStepTasks(prepared.executor.definition, request, onMessage, controller.signal);
      } else {
        await this.#sandboxFor(step, scope, attempt).run(request, onMessage, controller.signal);
      }
    } catch (error) {
      onMessage({ type: "task-failed", task, ms: performance.now() - began, error: describeFailure(error) });
    } finally {
      clearTimeout(timer);
      this.#signal?.removeEventListener("abort", forward);
    }
    if (timedOut && !failure) {
      const error = { message: `timed out after ${timeout} s` };
      onMessage({ type: "task-failed", task, ms: performance.now() - began, error });
    }
    if (!failure) return { ok: true, outputs };
    const { task: failedTask, error } = failure as TaskFailure;
    return {
      ok: false,
      outputs,
      permission: error.permission === true,
      error: new TaskFailedError(step.id, step.executor.name, failedTask, error.message),
    };
  }

  /** Keeps the run record in step with a step's messages. */
  #track(step: Step, message: StepMessage, outputs: Record<string, OutputValue>): void {
    switch (message.type) {
      case "task-start":
        return this.#updateStep(step, (record) => {
          record.tasks[message.task] = { status: "running", started: now() };
        });
      case "task-end":
        return this.#updateStep(step, (record) => {
          record.tasks[message.task] = { ...record.tasks[message.task], status: "succeeded", ended: now() };
        });
      case "task-failed":
        return this.#updateStep(step, (record) => {
          const task = record.tasks[message.task] ?? { status: "failed" };
          record.tasks[message.task] = {
            ...task,
            status: "failed",
            ended: now(),
            error: message.error.message,
          };
        });
      case "event":
        if (message.event.type !== "output") return;
        outputs[message.event.name] = message.event.value;
        return this.#updateStep(step, (record) => {
          record.outputs = recordedOutputs(outputs, this.#options.secrets);
        });
    }
  }

  #updateStep(step: Step, change: (record: StepRecord) => void): void {
    this.#record.update((record) => change(record.steps[step.id]));
  }

  /** Boots a step's Worker before it is needed (file order only; never for a step `--resume` may skip). */
  #prestart(step: Step): void {
    if (this.#options.inProcess || this.#prestarted.has(step.id) || this.#outcome.has(step.id)) return;
    if (this.#options.resume?.steps[step.id]?.status === "succeeded") return;
    let scope: ResolvedScope;
    try {
      scope = stepScope(this.#routine, step, { cwd: this.#cwd, stateRoot: this.#stateRoot });
    } catch {
      return; // its params need templates first: the step gets its Worker when it starts
    }
    this.#prestarted.set(step.id, { scope, sandbox: startStepSandbox(step.executor.moduleUrl, scope) });
  }

  /** The Worker booted ahead for the step's first attempt when its scope is still right, else a new one. */
  #sandboxFor(step: Step, scope: ResolvedScope, attempt: number): StepSandbox {
    const ahead = this.#prestarted.get(step.id);
    this.#prestarted.delete(step.id);
    if (ahead && attempt === 1 && JSON.stringify(ahead.scope) === JSON.stringify(scope)) return ahead.sandbox;
    ahead?.sandbox.close();
    return startStepSandbox(step.executor.moduleUrl, scope);
  }
}

function pendingStep(step: Step): StepRecord {
  return {
    status: "pending",
    executor: step.executor.name,
    taskList: [...step.tasks],
    tasks: Object.fromEntries(step.tasks.map((task) => [task, { status: "pending" }])),
    outputs: {},
  };
}

/**
 * Milliseconds to wait before retrying after failed attempt `failed` (1, 2…): "full jitter", a random time up
 * to `retryDelay × 2^(failed-1)` seconds, capped at {@link MAX_RETRY_WAIT} seconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { retryWait } from "./runner.ts";
 *
 * assert.equal(retryWait(10, 1, () => 0.999), 9990); // first retry: up to retry_delay
 * assert.equal(retryWait(10, 3, () => 0.5), 20_000); // third: up to 4 × retry_delay
 * assert.equal(retryWait(10, 20, () => 1), 600_000); // never more than 10 minutes
 * assert.equal(retryWait(10, 2, () => 0), 0);
 * ```
 */
export function retryWait(retryDelay: number, failed: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(MAX_RETRY_WAIT, retryDelay * 2 ** (failed - 1)) * 1000);
}

/** Waits `ms`; resolves `false` at once when `signal` aborts (clearing the timer). */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolvePromise) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolvePromise(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolvePromise(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function now(): string {
  return new Date().toISOString();
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Takes the routine's run lock (an OS file lock, released when the process ends however it ends), so that a
 * step may treat lakerun's temporary names in its folders as left-overs of a killed run; a
 * {@link RoutineBusyError} (exit 75) when another run holds it.
 */
async function lockRoutine(stateRoot: string, routineName: string): Promise<AsyncDisposable> {
  await Deno.mkdir(routineStateDir(stateRoot, routineName), { recursive: true });
  const lockFile = runLockFile(stateRoot, routineName);
  const file = await Deno.open(lockFile, { read: true, write: true, create: true });
  if (!(await file.tryLock(true))) {
    file.close();
    throw new RoutineBusyError(routineName, lockFile);
  }
  return {
    [Symbol.asyncDispose]: async () => {
      await file.unlock().catch(() => {});
      file.close();
    },
  };
}
