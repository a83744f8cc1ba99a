/**
 * What each `lakerun` command does, given options already parsed from the command line.
 *
 * @module
 */
import { ExecutorCatalog } from "../executors.ts";
import {
  checkStateFolder,
  formatScope,
  type ResolvedScope,
  SCOPE_KINDS,
  stepScope,
} from "../run/permissions.ts";
import { type IamPolicy, type IamStatement, mergeStatements } from "../../lib/aws/iam.ts";
import { consoleReporter, type InnerReporter, terminalProgressLine } from "./reporter.ts";
import { defuseCommands } from "./workflow_commands.ts";
import type { LogSession } from "./json_log.ts";
import {
  checkExecutorDirs,
  loadRoutine,
  paramsSchemaOf,
  permissionContext,
  redactParam,
  redactParams,
  resolveStepTemplates,
  type Routine,
  type Step,
} from "../routine/routine.ts";
import {
  defaultTemplateScope,
  hasDeferredTemplates,
  parseSecretsFile,
  type TemplateScope,
} from "../routine/template.ts";
import { formatJsonPath, printable, quoteJson } from "../routine/json.ts";
import { findResumableRun, type RunRecord } from "../run/records.ts";
import { resolve } from "node:path";
import { plural } from "../../lib/format.ts";
import { SecretMask } from "../../lib/mask.ts";
import {
  DATE_STEPS,
  dateProblem,
  dateSeries,
  type DateStep,
  formatDate,
  parseDate,
  today,
} from "../../lib/dates.ts";
import { RoutineBusyError, RoutineError, UsageError } from "../errors.ts";
import { runRoutine } from "../run/runner.ts";
import { listRuns, runsTable } from "../run/records.ts";
import {
  runsByDependencies,
  scheduleSummary,
  stepOptionLines,
  stepOptionsJson,
} from "../routine/step_options.ts";
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
  /** `--resume [RUN_ID]`: continue a failed or interrupted run (`runId` absent: the last one). */
  resume?: { runId?: string };
  /** `--new-run`: a new run even when the last one for the date did not succeed. */
  newRun?: boolean;
  /** `--max-parallel N`: most steps at a time when a routine uses `depends_on`. Default 2. */
  maxParallel?: number;
  /** Secret values: filled as templates resolve, replaced by `***` in every line a command prints. */
  secrets?: SecretMask;
  /** `--date YYYY-MM-DD`: the run's logical date, `run.date` in templates. Default: today in UTC. */
  date?: string;
  /** `--secrets-file FILE`: `NAME=VALUE` lines, read before the environment for `secrets.NAME`. */
  secretsFile?: string;
  /** `--log-format`, `--quiet` and GitHub Actions mode (json_log.ts). Default: the console reporter. */
  logs?: LogSession;
}

/** Options of `lakerun run`: a backfill runs the routine once per date from `from` to `to`. */
export interface RunCommandOptions extends CommandOptions {
  /** `--from YYYY-MM-DD`: the first date of a backfill. */
  from?: string;
  /** `--to YYYY-MM-DD`: the last date of a backfill (inclusive). */
  to?: string;
  /** `--every day|month|quarter`: the step between the dates of a backfill. */
  every?: string;
  /** `--keep-going`: a failed date does not stop the backfill. */
  keepGoing?: boolean;
}

const out = (options: CommandOptions) => options.write ?? ((line: string) => console.log(line));

/**
 * `lakerun run ROUTINE`: validates the whole routine, then runs it for its date (`--date`, default today in
 * UTC). With `--from`, `--to` and `--every`, a backfill: the routine is validated for every date first, then
 * run once per date, in order, each date its own run (its own run id); the first failed date stops it unless
 * `keepGoing`. Throws the failure (exit 1) when any date failed.
 */
export async function runCommand(file: string, options: RunCommandOptions): Promise<void> {
  const secrets = options.secrets ?? new SecretMask();
  const scope = await templateScopeOf(options, secrets);
  if (options.resume) return await resumeRun(file, options, scope, secrets);
  const dates = runDates(options);
  const routines: Routine[] = [];
  for (const date of dates) {
    try {
      routines.push(
        await loadRoutine(file, { executorDirs: options.executorDirs, templates: { ...scope, date } }),
      );
    } catch (error) {
      // a backfill's dates are all checked first: say which one a problem is for
      if (!(error instanceof RoutineError) || dates.length === 1) throw error;
      throw new RoutineError(
        error.problems.map((problem) => ({
          ...problem,
          message: `${problem.message} (for the date ${date})`,
        })),
      );
    }
  }
  const runOptions = { ...options, secrets };
  if (dates.length === 1 && options.from === undefined) {
    return await runLoadedRoutine(routines[0], { ...runOptions, templates: { ...scope, date: dates[0] } });
  }
  await backfill(routines, dates, scope, runOptions);
}

/**
 * `--resume [RUN_ID]`: continues the last failed or interrupted run (or the one named) with its own date:
 * the templates are resolved for that date, and the runner skips the steps that succeeded.
 */
async function resumeRun(
  file: string,
  options: RunCommandOptions,
  scope: TemplateScope,
  secrets: SecretMask,
): Promise<void> {
  const given = (["date", "from", "to", "every"] as const).filter((key) => options[key] !== undefined);
  if (given.length || options.keepGoing) {
    throw new UsageError(
      `--resume continues a run for the date it was run for: it takes no ${
        [...given, ...(options.keepGoing ? ["keep-going"] : [])].map((key) => `--${key}`).join(", ")
      }`,
    );
  }
  const load = (date: string) =>
    loadRoutine(file, { executorDirs: options.executorDirs, templates: { ...scope, date } });
  let routine = await load(scope.date);
  const stateRoot = resolve(Deno.cwd(), options.stateDir ?? ".lakerun");
  const record = await findResumableRun(stateRoot, routine.name, options.resume?.runId);
  if (!record) {
    const name = JSON.stringify(routine.name);
    throw new UsageError(
      `routine ${name} has no failed or interrupted run to resume (see 'lakerun runs ${file}')`,
    );
  }
  const date = record.date ?? scope.date;
  if (date !== scope.date) routine = await load(date);
  const templates = { ...scope, date };
  await runLoadedRoutine(routine, { ...options, secrets, date: record.date, templates, record });
}

/** Runs one routine per date, in order; see {@link runCommand}. */
async function backfill(
  routines: Routine[],
  dates: string[],
  scope: TemplateScope,
  options: RunCommandOptions & { secrets: SecretMask },
): Promise<void> {
  const write = masked(options.logs?.noteWriter(out(options)) ?? out(options), options.secrets);
  const failed: Array<{ date: string; error: unknown }> = [];
  let succeeded = 0;
  const summary = (last: string) =>
    `backfill ${dates[0]} → ${dates.at(-1)} (every ${options.every}): ${dates.length} date${
      dates.length === 1 ? "" : "s"
    }, ${succeeded} succeeded, ${failed.length} failed${last}`;
  for (const [i, date] of dates.entries()) {
    write(`── ${date} (${i + 1}/${dates.length}) ──`);
    try {
      await runLoadedRoutine(routines[i], { ...options, date, templates: { ...scope, date } });
      succeeded++;
    } catch (error) {
      // another run holds the routine's lock: every later date would find it so (exit 75, nothing ran)
      if (options.signal?.aborted || error instanceof RoutineBusyError) throw error;
      failed.push({ date, error });
      if (!options.keepGoing) {
        const notRun = dates.length - i - 1;
        write(summary(notRun ? `, ${notRun} not run (stopped at ${date}; --keep-going runs the rest)` : ""));
        throw error;
      }
      write(`✗ ${date}: ${(error as Error).message ?? String(error)}`);
    }
  }
  write(summary(failed.length ? ` (${failed.map((f) => f.date).join(", ")})` : ""));
  if (failed.length === 1) throw failed[0].error;
  if (failed.length > 1) {
    const list = failed.map((f) => f.date).join(", ");
    throw new Error(`backfill: ${failed.length} of ${dates.length} dates failed: ${list}`);
  }
}

/** The dates `lakerun run` runs for: `--date` (default today in UTC), or the backfill's series. */
export function runDates(options: RunCommandOptions): string[] {
  const { from, to, every } = options;
  const checkDate = (flag: string, value: string) => {
    const problem = dateProblem(value);
    if (problem) throw new UsageError(`--${flag}: ${problem}`);
    return value;
  };
  if (from === undefined && to === undefined) {
    if (every !== undefined) throw new UsageError("--every needs --from and --to");
    if (options.keepGoing) throw new UsageError("--keep-going is for backfills (--from, --to, --every)");
    return [options.date === undefined ? formatDate(today()) : checkDate("date", options.date)];
  }
  if (options.date !== undefined) {
    throw new UsageError("--date runs one date; a backfill takes --from and --to instead");
  }
  if (from === undefined || to === undefined) throw new UsageError("a backfill needs both --from and --to");
  if (every === undefined) throw new UsageError(`a backfill needs --every (${DATE_STEPS.join(", ")})`);
  if (!(DATE_STEPS as readonly string[]).includes(every)) {
    throw new UsageError(`--every: ${JSON.stringify(every)} is not one of ${DATE_STEPS.join(", ")}`);
  }
  const first = parseDate(checkDate("from", from));
  const last = parseDate(checkDate("to", to));
  if (formatDate(first) > formatDate(last)) throw new UsageError(`--to ${to} is before --from ${from}`);
  return dateSeries(first, last, every as DateStep).map((date) => formatDate(date));
}

/**
 * What templates resolve to for a command: `--date` (default today in UTC), the environment, and the
 * secrets of `--secrets-file` before the environment's. Every value of the secrets file (of 4 characters or
 * more; a shorter one is refused when a template uses it) is masked from the start; a secret taken from the
 * environment once a template uses it.
 */
export async function templateScopeOf(options: CommandOptions, secrets: SecretMask): Promise<TemplateScope> {
  const fromFile = new Map<string, string>();
  if (options.secretsFile !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(options.secretsFile);
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound ? "no such file" : (error as Error).name;
      throw new UsageError(`--secrets-file ${options.secretsFile}: cannot read it (${reason})`);
    }
    for (const [name, value] of parseSecretsFile(text, options.secretsFile)) {
      fromFile.set(name, value);
      if (value.length >= 4) secrets.add(value);
    }
  }
  if (options.date !== undefined) {
    const problem = dateProblem(options.date);
    if (problem) throw new UsageError(`--date: ${problem}`);
  }
  const scope = defaultTemplateScope();
  return {
    ...scope,
    date: options.date ?? scope.date,
    secret: (name) => fromFile.get(name) ?? Deno.env.get(name),
    mask: secrets,
  };
}

/** `write` with every secret value replaced by `***`, and no line that could start a workflow command. */
function masked(write: (line: string) => void, secrets: SecretMask | undefined): (line: string) => void {
  return (line) => write(defuseCommands(secrets ? secrets.mask(line) : line));
}

/** Runs a routine that is already validated, with console output. */
export async function runLoadedRoutine(
  routine: Routine,
  options: CommandOptions & { cwd?: string; templates?: TemplateScope; record?: RunRecord },
): Promise<void> {
  const consoleLines: InnerReporter = (write, { grouped }) =>
    consoleReporter({
      write,
      grouped,
      progressLine: options.write ? undefined : terminalProgressLine(),
      debug: options.debug,
      mask: options.secrets,
      signal: options.signal,
    });
  const scope = { ...(options.templates ?? defaultTemplateScope()), mask: options.secrets };
  const logged = options.logs?.reporter({
    console: consoleLines,
    mask: options.secrets,
    signal: options.signal,
    file: routine.file,
  });
  const reporter = logged ?? consoleLines(out(options), { grouped: false });
  // `steps.*` and `run.id` templates are resolved just before their step runs, the params validated again
  const prepareStep = (step: Step, outputs: TemplateScope["outputs"], run: { runId: string }) =>
    hasDeferredTemplates(step.templates)
      ? resolveStepTemplates(step, { ...scope, outputs, runId: run.runId })
      : step;
  await runRoutine(routine, {
    reporter,
    signal: options.signal,
    stateRoot: options.stateDir,
    cwd: options.cwd,
    maxParallel: options.maxParallel,
    // a routine's runs are keyed on their date when it has one: a failed date is not continued by another
    date: options.date ?? (routine.steps.some((step) => step.templates) ? scope.date : undefined),
    secrets: options.secrets,
    prepareStep,
    resume: options.record,
    newRun: options.newRun,
  });
}

/** `lakerun validate ROUTINE`: checks everything a run would check, runs nothing. */
export async function validateCommand(file: string, options: CommandOptions): Promise<void> {
  const secrets = options.secrets ?? new SecretMask();
  const templates = await templateScopeOf(options, secrets);
  const routine = await loadRoutine(file, { executorDirs: options.executorDirs, templates });
  checkStateFolder(routine, { cwd: Deno.cwd(), stateRoot: options.stateDir ?? ".lakerun" });
  const tasks = routine.steps.reduce((n, step) => n + step.tasks.length, 0);
  masked(out(options), secrets)(
    `${file}: valid (routine ${quoteJson(routine.name)}, ${plural(routine.steps.length, "step")}, ${
      plural(tasks, "task")
    })`,
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
  const secrets = options.secrets ?? new SecretMask();
  const templates = await templateScopeOf(options, secrets);
  const routine = await loadRoutine(file, { executorDirs: options.executorDirs, templates });
  const cwd = Deno.cwd();
  const stateRoot = options.stateDir ?? ".lakerun";
  // every step that could reach lakerun's state folder, each at its line and column, as validate and run say it
  const scopes = checkStateFolder(routine, { cwd, stateRoot });
  // a step whose params wait for `steps.*` or `run.id` gets its scope when it runs, from the resolved params
  const steps = routine.steps.map((step) => {
    const deferred = hasDeferredTemplates(step.templates);
    const scope = deferred
      ? emptyScope()
      : scopes.get(step.id) ?? stepScope(routine, step, { cwd, stateRoot });
    return { step, deferred, scope };
  });
  const write = masked(out(options), secrets);
  const iam = options.iam ? routineIam(routine, steps, cwd) : undefined;
  const note = masked(options.writeNote ?? ((line: string) => console.error(line)), secrets);
  for (const line of iam?.notes ?? []) note(line);
  if (iam && !options.json) {
    write(JSON.stringify(iam.policy, null, 2));
    return;
  }
  // steps run by their depends_on (any step has one): each says what it waits for, with the key or without
  const scheduled = runsByDependencies(routine.steps);
  // what a scope cannot say, e.g. how a transform's own sandbox applies on this machine
  const notes = await Promise.all(
    steps.map(({ step, deferred }) =>
      deferred
        ? []
        : step.executor.definition.planNotes?.(step.params, permissionContext(routine, step, cwd)) ?? []
    ),
  );
  if (options.json) {
    write(JSON.stringify(
      {
        routine: routine.name,
        ...(usesTemplates(routine) ? { date: templates.date } : {}),
        steps: steps.map(({ step, scope, deferred }, i) => ({
          id: step.id,
          executor: step.executor.name,
          tasks: step.tasks,
          ...stepOptionsJson(step.options, scheduled),
          params: redactParams(step, secrets),
          ...(step.templates ? { templates: planTemplates(step, secrets) } : {}),
          // `null`: computed when the step runs, from the params its templates resolve to
          permissions: deferred ? null : Object.fromEntries(SCOPE_KINDS.map((kind) => [kind, scope[kind]])),
          ...(notes[i].length ? { notes: notes[i] } : {}),
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
    `routine ${quoteJson(routine.name)} (${file}): ${steps.length} step${steps.length === 1 ? "" : "s"}, ${
      scheduleSummary(routine.steps)
    }${usesTemplates(routine) ? ` (run.date ${templates.date})` : ""}`,
  );
  for (const [i, { step, scope, deferred }] of steps.entries()) {
    const id = printable(step.id);
    const label = step.id === step.executor.name ? id : `${id} (${printable(step.executor.name)})`;
    write(`${step.index}. ${label}`);
    write(`   tasks: ${step.tasks.join(" → ")}`);
    for (const line of stepOptionLines(step.options, "   ", scheduled)) write(line);
    for (const line of templateLines(step, secrets)) write(line);
    if (deferred) {
      write(`   permissions: computed when the step runs, from the params its templates resolve to`);
      continue;
    }
    write(`   permissions (enforced in the step's Worker; anything else is refused):`);
    for (const line of formatScope(scope, "     ")) write(line);
    for (const line of notes[i]) write(`   ${line}`);
  }
}

/**
 * A step's templated params for the plan: where, as written, and the value (absent until the step runs),
 * redacted as the plan's params are ({@link redactParam}).
 */
function planTemplates(
  step: Step,
  mask?: SecretMask,
): Array<{ param: string; template: string; value?: unknown }> {
  const schema = paramsSchemaOf(step.executor.definition);
  return (step.templates?.templates ?? []).map(({ path, template, deferred, value }) => ({
    param: formatJsonPath(path),
    template: template.source,
    ...(deferred ? {} : { value: redactParam(schema, path, value, mask) }),
  }));
}

/** The plan's lines for a step's templated params: each resolved value, or when it will be resolved. */
function templateLines(step: Step, mask?: SecretMask): string[] {
  if (!step.templates) return [];
  return [
    `   params from templates:`,
    ...planTemplates(step, mask).map(({ param, template, value }) =>
      `     ${param} = ${value === undefined ? `${template} (when the step runs)` : JSON.stringify(value)}`
    ),
  ];
}

function usesTemplates(routine: Routine): boolean {
  return routine.steps.some((step) => step.templates);
}

function emptyScope(): ResolvedScope {
  return { read: [], write: [], net: [], env: [], run: [], sys: [] };
}

/** What {@link routineIam} found. */
export interface RoutineIam {
  /** The policy document for the whole routine (the union over its steps). */
  policy: IamPolicy;
  /** Each step's own statements, merged, in step order (empty for a step that touches no AWS resource). */
  steps: IamStatement[][];
  /**
   * Lines for standard error: what a step's executor says it cannot grant (`iamNotes`), an empty policy, or
   * steps that reach AWS but declare no statements.
   */
  notes: string[];
}

/**
 * The IAM policy a routine needs: each step's `iam(params, context)`, with `context.tasks` the step's own
 * tasks so that only what they use is granted, merged into one document. An executor without `iam` that
 * touches no AWS contributes nothing; one whose permission scope reaches an `amazonaws.com` host cannot be
 * known, and is named in a note, as is what an executor's `iamNotes` says its statements leave out.
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
    if (hasDeferredTemplates(step.templates)) {
      unknown.push(`${JSON.stringify(step.id)} (its params use values known only when it runs)`);
      return [];
    }
    if (!definition.iam) {
      const aws = scope.net.filter((host) => /(^|\.)amazonaws\.com(\.cn)?(:\d+)?$/i.test(host));
      if (aws.length > 0) {
        unknown.push(`${JSON.stringify(step.id)} (${step.executor.name}, reaches ${aws[0]})`);
      }
      return [];
    }
    const context = permissionContext(routine, step, cwd);
    for (const line of definition.iamNotes?.(step.params, context) ?? []) {
      notes.push(
        `lakerun: not in the policy: step ${JSON.stringify(step.id)} (${step.executor.name}): ${line}`,
      );
    }
    return definition.iam(step.params, context);
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
  await checkExecutorDirs(options.executorDirs, Deno.cwd());
  const catalog = new ExecutorCatalog(options.executorDirs);
  const text = options.markdown
    ? await executorReferenceMarkdown(catalog)
    : await executorReferenceText(catalog);
  out(options)(text.trimEnd());
}

/** `lakerun schema`: the JSON Schema of routine files. */
export async function schemaCommand(options: CommandOptions): Promise<void> {
  await checkExecutorDirs(options.executorDirs, Deno.cwd());
  const schema = await routineJsonSchema(new ExecutorCatalog(options.executorDirs));
  out(options)(JSON.stringify(schema, null, 2));
}

/**
 * `lakerun runs ROUTINE`: the routine's recorded runs, newest first, as a table (or the records as JSON).
 * ROUTINE is a routine file (its `routine_name` is read, nothing validated), or a routine name.
 */
export async function runsCommand(file: string, options: CommandOptions & { json?: boolean }): Promise<void> {
  const name = await routineNameOf(file);
  const stateRoot = resolve(Deno.cwd(), options.stateDir ?? ".lakerun");
  const runs = await listRuns(stateRoot, name);
  const write = out(options);
  if (options.json) return write(JSON.stringify(runs, null, 2));
  if (runs.length === 0) {
    return write(`no runs of routine ${JSON.stringify(name)} recorded under ${stateRoot}`);
  }
  for (const line of runsTable(runs)) write(line);
}

/** The `routine_name` of a routine file, or `file` itself when it names no file and does not end in `.json`. */
async function routineNameOf(file: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && !/\.json$/i.test(file)) return file;
    const reason = error instanceof Deno.errors.NotFound ? "no such file" : (error as Error).message;
    // said as run, validate and plan say it
    throw new RoutineError([{ where: file, path: "", message: `cannot read routine file: ${reason}` }]);
  }
  let name: unknown;
  try {
    name = JSON.parse(text)?.routine_name;
  } catch {
    throw new UsageError(`${file}: not JSON (check it with 'lakerun validate ${file}')`);
  }
  if (typeof name !== "string" || name === "") throw new UsageError(`${file}: has no routine_name`);
  return name;
}
