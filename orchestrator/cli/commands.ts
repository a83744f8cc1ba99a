/**
 * What each `lakerun` command does, given options already parsed from the command line.
 *
 * @module
 */
import { ExecutorCatalog } from "../executors.ts";
import { formatScope, SCOPE_KINDS, stepScope } from "../run/permissions.ts";
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

/** `lakerun plan ROUTINE`: every step, its tasks and the exact permission scope its Worker will get. */
export async function planCommand(file: string, options: CommandOptions & { json?: boolean }): Promise<void> {
  const routine = await loadRoutine(file, { executorDirs: options.executorDirs });
  const cwd = Deno.cwd();
  const stateRoot = options.stateDir ?? ".lakerun";
  const steps = routine.steps.map((step) => ({ step, scope: stepScope(routine, step, { cwd, stateRoot }) }));
  const write = out(options);
  if (options.json) {
    write(JSON.stringify(
      {
        routine: routine.name,
        steps: steps.map(({ step, scope }) => ({
          id: step.id,
          executor: step.executor.name,
          tasks: step.tasks,
          permissions: Object.fromEntries(SCOPE_KINDS.map((kind) => [kind, scope[kind]])),
        })),
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
