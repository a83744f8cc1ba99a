/**
 * Runs a validated routine: steps in file order, each step's tasks in the order listed, every step in its
 * own sandbox. The runner knows nothing of any executor's internals.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { TaskFailedError } from "../errors.ts";
import { type ResolvedScope, routineStateDir, stepScope, stepStateDir } from "./permissions.ts";
import type { Reporter } from "../cli/reporter.ts";
import type { Routine, Step } from "../routine/routine.ts";
import { beginRun, endRun } from "./run_state.ts";
import { startStepSandbox, type StepSandbox } from "./sandbox.ts";
import { runStepTasks, type StepMessage, type StepRequest } from "./step_runtime.ts";

/** How many steps' Workers are started before they are needed. */
const PRESTART = Math.max(1, Number(Deno.env.get("LAKERUN_PRESTART") ?? 1));

/** Options for {@link runRoutine}. */
export interface RunOptions {
  /** Folder relative paths resolve against. Default: the current folder. */
  cwd?: string;
  /** Root of the step state folders. Default: `.lakerun` in `cwd`. */
  stateRoot?: string;
  reporter: Reporter;
  signal?: AbortSignal;
  /**
   * Called just before a step starts, with the outputs the steps before it reported (by step id, then
   * name): returns the step to run — e.g. with `${{ … }}` templates resolved — or throws to fail the step.
   * Default: the step unchanged.
   */
  prepareStep?: (step: Step, outputs: Readonly<Record<string, Record<string, unknown>>>) => Step | Promise<Step>;
  /**
   * Run every step inside lakerun's own process, with all its permissions. Only for measuring what the
   * sandbox costs; the command line never does this.
   */
  inProcess?: boolean;
}

/**
 * Runs every step of `routine`; throws {@link TaskFailedError} at the first failed task.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { consoleReporter } from "../cli/reporter.ts";
 * import { loadRoutine } from "../routine/routine.ts";
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
 * await Deno.remove(cwd, { recursive: true });
 * ```
 */
export async function runRoutine(routine: Routine, options: RunOptions): Promise<void> {
  const cwd = options.cwd ?? Deno.cwd();
  const stateRoot = resolve(cwd, options.stateRoot ?? ".lakerun");
  const reporter = options.reporter;
  const started = performance.now();
  const scopes: ResolvedScope[] = routine.steps.map((step) => stepScope(routine, step, { cwd, stateRoot }));
  await using _lock = await lockRoutine(stateRoot, routine.name);
  const run = await beginRun(routineStateDir(stateRoot, routine.name));
  reporter.routineStarted(routine);

  const sandboxFor = (i: number) =>
    options.inProcess || i >= routine.steps.length
      ? undefined
      : startStepSandbox(routine.steps[i].executor.moduleUrl, scopes[i]);
  // the next steps' Workers boot while a step works (booting is mostly another thread's work)
  const ahead: Array<StepSandbox | undefined> = [];
  for (let i = 0; i < PRESTART; i++) ahead.push(sandboxFor(i));
  try {
    for (const [i, step] of routine.steps.entries()) {
      const sandbox = ahead.shift();
      ahead.push(sandboxFor(i + PRESTART));
      const stateDir = stepStateDir(stateRoot, routine.name, step.id);
      await Deno.mkdir(stateDir, { recursive: true });
      const request: StepRequest = {
        moduleUrl: step.executor.moduleUrl,
        executor: step.executor.name,
        stepId: step.id,
        routineName: routine.name,
        params: step.params,
        tasks: step.tasks,
        cwd,
        stateDir,
        runId: run.runId,
        aws: routine.aws,
        s3: routine.s3,
      };
      reporter.stepStarted(step, routine.steps.length);
      let failure: StepMessage & { type: "task-failed" } | undefined;
      const onMessage = (message: StepMessage) => {
        if (message.type === "task-failed") failure = message;
        reporter.stepMessage(step, message);
      };
      if (sandbox) await sandbox.run(request, onMessage, options.signal);
      else await runInProcess(step, request, onMessage, options.signal);
      if (failure) {
        throw new TaskFailedError(step.id, step.executor.name, failure.task, failure.error.message);
      }
    }
    await endRun(routineStateDir(stateRoot, routine.name), run, "succeeded");
    reporter.routineFinished(true, performance.now() - started);
  } catch (error) {
    for (const sandbox of ahead) sandbox?.close();
    const interrupted = options.signal?.aborted ?? false;
    await endRun(routineStateDir(stateRoot, routine.name), run, interrupted ? "interrupted" : "failed")
      .catch(() => {});
    reporter.routineFinished(false, performance.now() - started);
    throw error;
  }
}

/** Another run of the same routine holds its lock. */
export class RoutineBusyError extends Error {
  constructor(routineName: string, lockFile: string) {
    super(`routine ${JSON.stringify(routineName)} is already running (lock held on ${lockFile})`);
    this.name = "RoutineBusyError";
  }
}

/**
 * Takes the routine's run lock (an OS file lock, released when the process ends however it ends), so that a
 * step may treat lakerun's temporary names in its folders as left-overs of a killed run.
 */
async function lockRoutine(stateRoot: string, routineName: string): Promise<AsyncDisposable> {
  const dir = routineStateDir(stateRoot, routineName);
  await Deno.mkdir(dir, { recursive: true });
  const lockFile = join(dir, "run.lock");
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

async function runInProcess(
  step: Step,
  request: StepRequest,
  onMessage: (m: StepMessage) => void,
  signal?: AbortSignal,
) {
  await runStepTasks(step.executor.definition, request, onMessage, signal ?? new AbortController().signal);
}
