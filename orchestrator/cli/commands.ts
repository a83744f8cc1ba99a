/**
 * What each `lakerun` command does, given options already parsed from the command line.
 *
 * @module
 */
import { ExecutorCatalog } from "../executors.ts";
import {
  formatScope,
  permissionContext,
  type ResolvedScope,
  SCOPE_KINDS,
  stepScope,
} from "../run/permissions.ts";
import { type IamPolicy, type IamStatement, mergeStatements } from "../../lib/aws/iam.ts";
import { consoleReporter, terminalProgressLine } from "./reporter.ts";
import { loadRoutine, type Routine } from "../routine/routine.ts";
import { runRoutine } from "../run/runner.ts";
import { executorReferenceMarkdown, executorReferenceText, routineJsonSchema } from "../routine/schema.ts";

/** Options shared by the commands. */
export interface CommandOptions {
  /** Plugin folders (`--executors`). */
  executorDirs: string[];
  /** Root of the step state folders (`--state-dir`). */
  stateDir?: string;
  debug: boolean;
  /** Where output goes. Default: standard output. */
  write?: (line: string) => void;
  /** Where notes go (`plan --iam`). Default: standard error. */
  writeNote?: (line: string) => void;
  signal?: AbortSignal;
}

const out = (options: CommandOptions) => options.write ?? ((line: string) => console.log(line));

/** `lakerun run ROUTINE`: validates the whole routine, then runs it. */
export async function runCommand(file: string, options: CommandOptions): Promise<void> {
  const routine = await loadRoutine(file, { executorDirs: options.executorDirs });
  await runLoadedRoutine(routine, options);
}

/** Runs a routine that is already validated, with console output. */
export async function runLoadedRoutine(
  routine: Routine,
  options: CommandOptions & { cwd?: string },
): Promise<void> {
  const reporter = consoleReporter({
    write: out(options),
    progressLine: options.write ? undefined : terminalProgressLine(),
    debug: options.debug,
  });
  await runRoutine(routine, {
    reporter,
    signal: options.signal,
    stateRoot: options.stateDir,
    cwd: options.cwd,
  });
}

/** `lakerun validate ROUTINE`: checks everything a run would check, runs nothing. */
export async function validateCommand(file: string, options: CommandOptions): Promise<void> {
  const routine = await loadRoutine(file, { executorDirs: options.executorDirs });
  const tasks = routine.steps.reduce((n, step) => n + step.tasks.length, 0);
  out(options)(
    `${file}: valid (routine ${JSON.stringify(routine.name)}, ${routine.steps.length} steps, ${tasks} tasks)`,
  );
}

/**
 * `lakerun plan ROUTINE`: every step, its tasks and the exact permission scope its Worker will get. With
 * `iam`, the AWS IAM policy the routine needs instead (see {@link routineIam}); with `iam` and `json`, the plan
 * JSON with each step's statements (`iam_statements`) and the whole document (`iam_policy`).
 */
export async function planCommand(
  file: string,
  options: CommandOptions & { json?: boolean; iam?: boolean },
): Promise<void> {
  const routine = await loadRoutine(file, { executorDirs: options.executorDirs });
  const cwd = Deno.cwd();
  const stateRoot = options.stateDir ?? ".lakerun";
  const steps = routine.steps.map((step) => ({ step, scope: stepScope(routine, step, { cwd, stateRoot }) }));
  const write = out(options);
  const iam = options.iam ? routineIam(routine, steps, cwd) : undefined;
  const note = options.writeNote ?? ((line: string) => console.error(line));
  for (const line of iam?.notes ?? []) note(line);
  if (iam && !options.json) {
    write(JSON.stringify(iam.policy, null, 2));
    return;
  }
  if (options.json) {
    write(JSON.stringify(
      {
        routine: routine.name,
        steps: steps.map(({ step, scope }, i) => ({
          id: step.id,
          executor: step.executor.name,
          tasks: step.tasks,
          permissions: Object.fromEntries(SCOPE_KINDS.map((kind) => [kind, scope[kind]])),
          ...(iam ? { iam_statements: iam.steps[i] } : {}),
        })),
        ...(iam ? { iam_policy: iam.policy } : {}),
      },
      null,
      2,
    ));
    return;
  }
  write(
    `routine ${JSON.stringify(routine.name)} (${file}): ${steps.length} step${
      steps.length === 1 ? "" : "s"
    }, run in this order`,
  );
  for (const { step, scope } of steps) {
    const label = step.id === step.executor.name ? step.id : `${step.id} (${step.executor.name})`;
    write(`${step.index}. ${label}`);
    write(`   tasks: ${step.tasks.join(" → ")}`);
    write(`   permissions (enforced in the step's Worker; anything else is refused):`);
    for (const line of formatScope(scope, "     ")) write(line);
  }
}

/** What {@link routineIam} found. */
export interface RoutineIam {
  /** The policy document for the whole routine (the union over its steps). */
  policy: IamPolicy;
  /** Each step's own statements, merged, in step order (empty for a step that touches no AWS resource). */
  steps: IamStatement[][];
  /** Lines for standard error: an empty policy, or steps that reach AWS but declare no statements. */
  notes: string[];
}

/**
 * The IAM policy a routine needs: each step's `iam(params, context)`, with `context.tasks` the step's own
 * tasks so that only what they use is granted, merged into one document. An executor without `iam` that
 * touches no AWS contributes nothing; one whose permission scope reaches an `amazonaws.com` host cannot be
 * known, and is named in a note.
 */
export function routineIam(
  routine: Routine,
  steps: Array<{ step: Routine["steps"][number]; scope: ResolvedScope }>,
  cwd: string,
): RoutineIam {
  const notes: string[] = [];
  const unknown: string[] = [];
  const perStep = steps.map(({ step, scope }) => {
    const definition = step.executor.definition;
    if (!definition.iam) {
      const aws = scope.net.filter((host) => /(^|\.)amazonaws\.com(\.cn)?(:\d+)?$/i.test(host));
      if (aws.length > 0) {
        unknown.push(`${JSON.stringify(step.id)} (${step.executor.name}, reaches ${aws[0]})`);
      }
      return [];
    }
    return definition.iam(step.params, permissionContext(routine, step, cwd));
  });
  const policy = mergeStatements(perStep.flat());
  if (unknown.length > 0) {
    notes.push(
      `lakerun: not in the policy: ${unknown.join(", ")}: ${
        unknown.length === 1 ? "its executor declares" : "their executors declare"
      } no IAM statements (no iam()); add what ${unknown.length === 1 ? "it needs" : "they need"} by hand`,
    );
  } else if (policy.Statement.length === 0) {
    notes.push(
      `lakerun: routine ${JSON.stringify(routine.name)} touches no AWS resource: the policy has no statement`,
    );
  }
  return { policy, steps: perStep.map((statements) => mergeStatements(statements).Statement), notes };
}

/** `lakerun list`: executors, their tasks and params. */
export async function listCommand(options: CommandOptions & { markdown?: boolean }): Promise<void> {
  const catalog = new ExecutorCatalog(options.executorDirs);
  const text = options.markdown
    ? await executorReferenceMarkdown(catalog)
    : await executorReferenceText(catalog);
  out(options)(text.trimEnd());
}

/** `lakerun schema`: the JSON Schema of routine files. */
export async function schemaCommand(options: CommandOptions): Promise<void> {
  const schema = await routineJsonSchema(new ExecutorCatalog(options.executorDirs));
  out(options)(JSON.stringify(schema, null, 2));
}
