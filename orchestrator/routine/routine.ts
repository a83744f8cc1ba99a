/**
 * Loads a routine file and validates all of it before anything runs: its JSON, its shape, every executor
 * and task name, and every step's params against the executor's schema. Each problem is one line naming
 * the file, line, column and JSON path.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { type ExecutorDefinition, ParamError, type PermissionContext } from "../../sdk/executor.ts";
import {
  AWS_ROUTINE_BLOCKS,
  type AwsSettings,
  type S3Settings,
  s3SettingsOf,
} from "../../lib/aws/settings.ts";
import { looksLikeCredential, type SecretMask } from "../../lib/mask.ts";
import { redactUrl } from "../../lib/http/request.ts";
import { concatBytes } from "../../lib/streams.ts";
import { nearestName, RoutineError, type RoutineProblem, UsageError } from "../errors.ts";
import { ExecutorCatalog, PluginError, type ResolvedExecutor } from "../executors.ts";
import {
  formatJsonPath,
  type JsonPath,
  JsonSyntaxError,
  type ParsedJson,
  parseJson,
  printable,
  quoteJson,
  UNSAFE_CHARACTERS,
} from "./json.ts";
import { checkDependencies, STEP_OPTION_KEYS, type StepOptions, stepOptionsOf } from "./step_options.ts";
import {
  defaultTemplateScope,
  deferredValuesAsText,
  hasDeferredTemplates,
  hasTemplate,
  isDeferredPath,
  referenceChecker,
  resolveDeferredParams,
  resolveParamTemplates,
  type StepTemplates,
  TemplateError,
  type TemplateScope,
} from "./template.ts";

/** One step of a routine: an executor with its params and the tasks to run, in order. */
export interface Step {
  /** The key in the routine's `executors` object. */
  id: string;
  /** 1-based position in the routine. */
  index: number;
  executor: ResolvedExecutor;
  /** Params after validation, with defaults applied. */
  params: Record<string, unknown>;
  tasks: string[];
  /** `retries`, `retry_delay`, `timeout`, `continue_on_error`, `depends_on` (see step_options.ts). */
  options: StepOptions;
  /** The `${{ … }}` templates of its params, when it has any (template.ts; see {@link resolveStepTemplates}). */
  templates?: StepTemplates;
}

/** A validated routine. */
export interface Routine {
  name: string;
  /** Absolute path of the routine file (or a label for routines built in memory). */
  file: string;
  steps: Step[];
  /** The `aws` block: settings every AWS service shares. */
  aws?: AwsSettings;
  /** S3 settings: the `s3` block completed from the `aws` block. */
  s3?: S3Settings;
  catalog: ExecutorCatalog;
  /**
   * Where a JSON path of the routine file stands, as problems name it: `file:line:column` (the file as named on
   * the command line), or the file alone. For the problems found after loading (the state folder's check).
   */
  locate?: (path: JsonPath) => string;
}

/** Options for {@link loadRoutine}. */
export interface LoadOptions {
  /** Plugin folders from the command line (`--executors`). */
  executorDirs?: string[];
  /** Folder that relative paths in the command line resolve against. Default: the current folder. */
  cwd?: string;
  /**
   * What `${{ … }}` templates in params resolve to at load (`run.date`, `env.*`, `secrets.*`, the mask).
   * Default: today's date in UTC and lakerun's environment.
   */
  templates?: TemplateScope;
}

const TOP_LEVEL_KEYS = [
  "$schema",
  "routine_name",
  "executors",
  "executors_dir",
  ...Object.keys(AWS_ROUTINE_BLOCKS),
];
const STEP_KEYS = ["executor", "params", "tasks", "description", ...STEP_OPTION_KEYS];

/**
 * Reads, parses and validates the routine file at `file`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadRoutine } from "./routine.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(
 *   `${dir}/routine.json`,
 *   JSON.stringify({
 *     routine_name: "staging",
 *     executors: {
 *       StagingExecutor: {
 *         params: { parent_directory: "landing", dump_directory: "staging" },
 *         tasks: ["transfer"],
 *       },
 *     },
 *   }),
 * );
 * const routine = await loadRoutine("routine.json", { cwd: dir });
 * assert.equal(routine.name, "staging");
 * assert.deepEqual(routine.steps.map((s) => [s.executor.name, s.tasks]), [
 *   ["StagingExecutor", ["transfer"]],
 * ]);
 * assert.equal(routine.steps[0].params.archive_or_delete, "archive"); // defaults applied
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @example Every problem is one line naming the file, line, column and JSON path
 * ```ts
 * import assert from "node:assert/strict";
 * import { RoutineError } from "../errors.ts";
 * import { loadRoutine } from "./routine.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const lines = ["{", '  "routine_name": "x",', '  "executors": { "DownloadExecutor": {} }', "}"];
 * await Deno.writeTextFile(`${dir}/bad.json`, lines.join("\n"));
 * const error = await loadRoutine("bad.json", { cwd: dir }).catch((e) => e);
 * assert.ok(error instanceof RoutineError);
 * assert.equal(error.problems.length, 1);
 * const [{ where, path, message }] = error.problems;
 * assert.deepEqual([where, path], ["bad.json:3:38", "executors.DownloadExecutor"]);
 * assert.match(message, /^unknown executor "DownloadExecutor" \(did you mean 'DownloaderExecutor'\?\)/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadRoutine(file: string, options: LoadOptions = {}): Promise<Routine> {
  const cwd = options.cwd ?? Deno.cwd();
  const absolute = resolve(cwd, file);
  const refuse = (reason: string, where = file) =>
    new RoutineError([{ where, path: "", message: `cannot read routine file: ${reason}` }]);
  let bytes: Uint8Array;
  try {
    if ((await Deno.stat(absolute)).isDirectory) throw refuse("is a folder, not a routine file");
    // read up to the limit only (a file, or a pipe such as <(…); not /dev/zero for ever)
    const chunks: Uint8Array[] = [];
    let size = 0;
    // (leaving the loop cancels the stream, which closes the file)
    for await (const chunk of (await Deno.open(absolute)).readable) {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size > MAX_ROUTINE_BYTES) throw refuse(`it holds more than ${MAX_ROUTINE_BYTES} bytes (16 MiB)`);
    }
    bytes = concatBytes(chunks);
  } catch (error) {
    if (error instanceof RoutineError) throw error;
    throw refuse(error instanceof Deno.errors.NotFound ? "no such file" : (error as Error).message);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const invalid = firstInvalidUtf8(bytes) ?? 0;
    const before = new TextDecoder().decode(bytes.subarray(0, invalid)).split("\n");
    const where = `${file}:${before.length}:${before.at(-1)!.length + 1}`;
    throw refuse(
      `byte 0x${bytes[invalid].toString(16).padStart(2, "0")} is not UTF-8 (JSON is UTF-8 text)`,
      where,
    );
  }
  return await parseRoutine(text, { ...options, cwd, file, label: file });
}

/** The largest routine file read (a routine is a few KB; a mistaken path could name a device or a dump). */
const MAX_ROUTINE_BYTES = 16 * 1024 * 1024;

/**
 * The offset of the first byte of `bytes` at which they stop being UTF-8, or `undefined` when they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstInvalidUtf8 } from "./routine.ts";
 *
 * assert.equal(firstInvalidUtf8(new TextEncoder().encode('{"a": "été"}')), undefined);
 * assert.equal(firstInvalidUtf8(new Uint8Array([0x7b, 0x22, 0x78, 0xff, 0xfe])), 3);
 * assert.equal(firstInvalidUtf8(new Uint8Array([0x61, 0xc3])), 1); // cut inside a character
 * ```
 */
export function firstInvalidUtf8(bytes: Uint8Array): number | undefined {
  const valid = (end: number) => {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, end), {
        stream: end < bytes.length,
      });
      return true;
    } catch {
      return false;
    }
  };
  if (valid(bytes.length)) return undefined;
  // the longest valid prefix (read as the start of a stream: a character cut at its end is not yet invalid)
  let [low, high] = [0, bytes.length];
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (valid(middle) && middle < bytes.length) low = middle;
    else high = middle - 1;
  }
  return low; // the byte that makes the prefix invalid
}

/** Validates routine text; `label` is how the file is named in messages. */
export async function parseRoutine(
  text: string,
  options: LoadOptions & { file: string; label: string },
): Promise<Routine> {
  const cwd = options.cwd ?? Deno.cwd();
  let doc: ParsedJson;
  try {
    doc = parseJson(text);
  } catch (error) {
    if (error instanceof JsonSyntaxError) {
      throw new RoutineError([{
        where: `${options.label}:${error.line}:${error.column}`,
        path: "",
        message: `invalid JSON: ${error.message.replace(/ at line \d+, column \d+$/, "")}`,
      }]);
    }
    throw error;
  }

  const problems: RoutineProblem[] = [];
  const locate = (path: JsonPath) => {
    const position = doc.positionOf(path);
    return position ? `${options.label}:${position.line}:${position.column}` : options.label;
  };
  const report = (path: JsonPath, message: string) => {
    problems.push({
      where: locate(path),
      path: path.length ? formatJsonPath(path) : "",
      // one line, printed as stored: a value quoted in a message cannot break the line or start a command
      message: printable(message),
    });
  };
  const fail = () => new RoutineError(problems);

  const root = doc.value;
  if (!isPlainObject(root)) {
    report([], "a routine must be a JSON object with 'routine_name' and 'executors'");
    throw fail();
  }
  checkKeys(root, [], TOP_LEVEL_KEYS, report);

  const name = root.routine_name;
  if (typeof name !== "string" || name.trim() === "") {
    report(
      ["routine_name"],
      name === undefined
        ? "missing (a non-empty string)"
        : `must be a non-empty string, got ${quoteValue(name)}`,
    );
  } else if (name.length > 200) {
    report(["routine_name"], `longer than 200 characters: ${quoteValue(name)}`);
  } else if (UNSAFE_CHARACTERS.test(name)) {
    report(["routine_name"], unsafeNameMessage(name));
  }

  // the command line's folders are the command line's mistake, not the routine's
  await checkExecutorDirs(options.executorDirs ?? [], cwd);
  const pluginDirs = [...(options.executorDirs ?? []).map((d) => resolve(cwd, d))];
  const routineDirs: Array<{ dir: string; path: JsonPath }> = [];
  const dirsValue = root.executors_dir;
  if (dirsValue !== undefined) {
    const list = Array.isArray(dirsValue) ? dirsValue : [dirsValue];
    list.forEach((dir, i) => {
      const path = Array.isArray(dirsValue) ? ["executors_dir", i] : ["executors_dir"];
      if (typeof dir !== "string" || dir === "") {
        report(path, `must be a folder path (string), got ${quoteValue(dir)}`);
      } else if (/^[a-z][a-z0-9+.-]*:/i.test(dir)) {
        report(path, `must be a local folder, not a URL: ${quoteValue(dir)}`);
      } else {
        // relative to the routine file, so a routine can ship with its plugins
        routineDirs.push({ dir: resolve(dirname(options.file), dir), path });
      }
    });
  }
  for (const { dir, path } of routineDirs) {
    const problem = await folderProblem(dir);
    if (problem) report(path, `plugin folder ${dir}: ${problem}`);
    pluginDirs.push(dir);
  }

  const aws = validateBlock("aws", root.aws, report) as AwsSettings | undefined;
  const s3 = s3SettingsOf({ aws, s3: validateBlock("s3", root.s3, report) as S3Settings | undefined });

  const catalog = new ExecutorCatalog(pluginDirs);
  const steps: Step[] = [];
  const executors = root.executors;
  if (executors === undefined) {
    report([], "missing 'executors' (an object of steps)");
  } else if (!isPlainObject(executors)) {
    report(
      ["executors"],
      `must be an object whose keys are executor names or step ids, got ${quoteValue(executors)}`,
    );
  } else {
    const ids = doc.keysOf(["executors"]);
    if (ids.length === 0) report(["executors"], "has no steps");
    const templates = { scope: options.templates ?? defaultTemplateScope(), ids, executors };
    for (const [i, id] of ids.entries()) {
      if (UNSAFE_CHARACTERS.test(id)) {
        report(["executors", id], `step id ${unsafeNameMessage(id)}`);
        continue;
      }
      if (id.trim() === "") {
        report(
          ["executors", id],
          `step id ${quoteValue(id)} is empty: name the step (plan, logs and steps.ID use it)`,
        );
        continue;
      }
      const step = await validateStep(id, executors[id], i + 1, catalog, report, templates, { cwd, aws, s3 });
      if (step) steps.push(step);
    }
    checkDependencies(ids, executors, report);
  }

  if (problems.length > 0) throw fail();
  return { name: name as string, file: options.file, steps, aws, s3, catalog, locate };
}

async function validateStep(
  id: string,
  value: unknown,
  index: number,
  catalog: ExecutorCatalog,
  report: (path: JsonPath, message: string) => void,
  templates: { scope: TemplateScope; ids: string[]; executors: Record<string, unknown> },
  settings: { cwd: string; aws?: AwsSettings; s3?: S3Settings },
): Promise<Step | undefined> {
  const at: JsonPath = ["executors", id];
  if (!isPlainObject(value)) {
    report(at, `a step must be an object with 'params' and 'tasks', got ${quoteValue(value)}`);
    return undefined;
  }
  checkKeys(value, at, STEP_KEYS, report);
  const options = stepOptionsOf(value, at, report);

  let executorName = id;
  if (value.executor !== undefined) {
    if (typeof value.executor !== "string") {
      report([...at, "executor"], `must be an executor name (string), got ${quoteValue(value.executor)}`);
      return undefined;
    }
    executorName = value.executor;
  }
  const executorPath = value.executor !== undefined ? [...at, "executor"] : at;

  let executor: ResolvedExecutor | undefined;
  try {
    executor = await catalog.find(executorName);
  } catch (error) {
    if (error instanceof PluginError) {
      report(executorPath, error.message);
      return undefined;
    }
    throw error;
  }
  if (!executor) {
    const known = await catalog.names();
    const hint = nearestName(executorName, known);
    report(
      executorPath,
      `unknown executor ${quoteValue(executorName)}${hint ? ` (did you mean '${hint}'?)` : ""}; known: ${
        known.join(", ")
      }${
        value.executor === undefined ? '; a step id that is not an executor name needs an "executor" key' : ""
      }`,
    );
    return undefined;
  }

  const definition = executor.definition;
  if (value.description !== undefined && typeof value.description !== "string") {
    report([...at, "description"], `must be text (a string), got ${quoteValue(value.description)}`);
  }
  let tasks: string[] = [];
  if (value.tasks === undefined) {
    report(at, `missing 'tasks' (a list of: ${Object.keys(definition.tasks).join(", ")})`);
  } else if (!Array.isArray(value.tasks) || value.tasks.length === 0) {
    report(
      [...at, "tasks"],
      `must be a non-empty list of task names (${Object.keys(definition.tasks).join(", ")}), got ${
        quoteValue(value.tasks)
      }`,
    );
  } else {
    tasks = value.tasks as string[];
    tasks.forEach((task, i) => {
      if (typeof task !== "string") {
        report([...at, "tasks", i], `must be a task name (string), got ${quoteValue(task)}`);
      } else if (!Object.hasOwn(definition.tasks, task)) {
        const hint = nearestName(task, Object.keys(definition.tasks));
        report(
          [...at, "tasks", i],
          `${executor.name} has no task ${quoteValue(task)}${
            hint ? ` (did you mean '${hint}'?)` : ""
          }; its tasks: ${Object.keys(definition.tasks).join(", ")}`,
        );
      }
    });
  }

  const rawParams = value.params ?? Object.create(null);
  if (!isPlainObject(rawParams)) {
    report([...at, "params"], `must be an object, got ${quoteValue(rawParams)}`);
    return undefined;
  }
  const templated = resolveParamTemplates(rawParams, templates.scope, {
    report: (path, message) => report([...at, "params", ...path], message),
    stepReferenceProblem: referenceChecker(id, templates.ids, templates.executors),
  });
  // a template's problem does not hide the step's other problems: the params are checked as written then,
  // leaving out what holds a template (its value is not known)
  const unresolved = templated === null ? templatePaths(rawParams) : [];
  const params = templated?.params ?? rawParams;
  const missing = missingTaskParams(definition, tasks, params);
  for (const { param, message } of missing) report([...at, "params", param], message);
  const parsed = paramsSchemaOf(definition).safeParse(params, { reportInput: true });
  if (!parsed.success) {
    const reported = (issue: z.core.$ZodIssue) =>
      issue.path.length === 1 && missing.some(({ param }) => param === issue.path[0]);
    const issues = parsed.error.issues.filter((issue) =>
      !isDeferredPath(issue.path, templated ?? undefined) && !unresolved.some((at) =>
        overlaps(at, issue.path)
      ) &&
      !reported(issue)
    );
    // only values resolved when the step runs are in question: validated again then
    if (issues.length === 0) {
      return missing.length || templated === null
        ? undefined
        : { id, index, executor, params, tasks, options, templates: templated };
    }
    for (const issue of issues) {
      const unknownParam = (key: string) => `unknown param ${quoteValue(key)} for ${executor.name}`;
      reportIssue(issue, [...at, "params"], unknownParam, report, params, paramsSchemaOf(definition), {
        mask: templates.scope.mask,
      });
    }
    return undefined;
  }
  if (missing.length || templated === null) return undefined;
  const step: Step = { id, index, executor, params: parsed.data as Record<string, unknown>, tasks, options };
  if (!hasDeferredTemplates(templated)) {
    // the scope its Worker gets: params it cannot be computed from (an ftp:// URL, "s3://" with no bucket)
    // are as invalid as a wrong type, and found now rather than when the step starts
    try {
      definition.permissions(step.params, permissionContext(settings, step, settings.cwd));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const where = error instanceof ParamError ? [...error.path] : paramShownIn(message, step.params);
      const value = where ? valueAt(step.params, where) : undefined;
      const secret = where !== undefined && isSecretParam(paramsSchemaOf(definition), where);
      // the executor's own words, which quote what they choose: any quote of a value that may be a secret goes
      const withheld = mayQuote(value, secret) ? undefined : replaceQuotes(message, value, '"***"');
      report(
        [...at, "params", ...(where ?? [])],
        withheld === undefined
          ? withQuotesMasked(message, value, templates.scope.mask)
          : withheld === message
          ? message
          : `${withheld} (${NOT_SHOWN})`,
      );
      return undefined;
    }
  }
  return templated ? { ...step, templates: templated } : step;
}

/** The paths of the strings in `params` that hold a `${{ … }}` template. */
function templatePaths(params: unknown, at: JsonPath = []): JsonPath[] {
  if (typeof params === "string") return hasTemplate(params) ? [at] : [];
  if (Array.isArray(params)) return params.flatMap((item, i) => templatePaths(item, [...at, i]));
  if (isPlainObject(params)) {
    return Object.entries(params).flatMap(([key, item]) => templatePaths(item, [...at, key]));
  }
  return [];
}

/** Whether one of two paths is the other or leads to it. */
function overlaps(a: ReadonlyArray<PropertyKey>, b: ReadonlyArray<PropertyKey>): boolean {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Checks the plugin folders given on the command line (`--executors DIR`): a folder that is not there is a
 * mistake of the command line (exit 2), named as it was given.
 *
 * @throws {UsageError} `--executors DIR: no such folder` (or `not a folder`) for the first that is not a folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UsageError } from "../errors.ts";
 * import { checkExecutorDirs } from "./routine.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await checkExecutorDirs([dir], "/");
 * await assert.rejects(
 *   () => checkExecutorDirs(["nonexistent"], dir),
 *   (error) => error instanceof UsageError && error.message === "--executors nonexistent: no such folder",
 * );
 * await Deno.remove(dir);
 * ```
 */
export async function checkExecutorDirs(dirs: readonly string[], cwd: string): Promise<void> {
  for (const dir of dirs) {
    const problem = await folderProblem(resolve(cwd, dir));
    if (problem) throw new UsageError(`--executors ${quoteArgument(dir)}: ${problem}`);
  }
}

/** Why `folder` cannot be a plugin folder (`no such folder`, `not a folder`), or `undefined`. */
async function folderProblem(folder: string): Promise<string | undefined> {
  try {
    return (await Deno.stat(folder)).isDirectory ? undefined : "not a folder";
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? "no such folder"
      : `cannot read it (${(error as Error).name})`;
  }
}

/** A command-line value as given, quoted only when it holds blanks, quotes or control characters. */
function quoteArgument(value: string): string {
  return value !== "" && !/[\s"'\\]/.test(value) && !UNSAFE_CHARACTERS.test(value) ? value : quoteJson(value);
}

/**
 * The message for a routine or step name holding a character it may not hold (see {@link UNSAFE_CHARACTERS}):
 * names are printed in logs, in GitHub's workflow commands and on terminals, where a line break or an escape
 * would start a line or a command of its own.
 */
function unsafeNameMessage(name: string): string {
  const code = name.match(UNSAFE_CHARACTERS)![0].charCodeAt(0);
  const hex = code.toString(16).toUpperCase().padStart(4, "0");
  return `${quoteValue(name)} holds the control character U+${hex}; names may not hold control characters ` +
    "(line breaks, tabs, escapes, C1 codes), bidirectional controls or invisible characters (zero-width, BOM)";
}

/**
 * The params that the step's `tasks` need (their `needs`) and `params` lacks: one problem per param, at the
 * first name of a list of alternatives, naming every task that needs it. A param set to `null` is missing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineExecutor } from "../../sdk/executor.ts";
 * import { missingTaskParams } from "./routine.ts";
 *
 * const tables = defineExecutor({
 *   name: "TablesExecutor",
 *   description: "Creates and loads a table.",
 *   params: (z) => z.strictObject({ table: z.string().optional(), source: z.string().optional(), sql: z.string().optional(), sql_file: z.string().optional() }),
 *   permissions: () => ({}),
 *   tasks: {
 *     create: { description: "Creates table", needs: ["table"], run: async () => {} },
 *     load: { description: "Loads source into table", needs: ["table", "source"], run: async () => {} },
 *     execute: { description: "Runs SQL", needs: [["sql", "sql_file"]], run: async () => {} },
 *   },
 * });
 * assert.deepEqual(missingTaskParams(tables, ["create", "load", "execute"], { source: "in" }), [
 *   { param: "table", message: "missing: the create and load tasks need it" },
 *   { param: "sql", message: "missing: the execute task needs sql or sql_file" },
 * ]);
 * assert.deepEqual(missingTaskParams(tables, ["execute"], { sql_file: "q.sql" }), []);
 * ```
 */
export function missingTaskParams(
  definition: ExecutorDefinition,
  tasks: readonly string[],
  params: Record<string, unknown>,
): Array<{ param: string; message: string }> {
  const given = (name: string) => params[name] !== undefined && params[name] !== null;
  const lacking = new Map<string, { names: readonly string[]; tasks: string[] }>();
  for (const task of tasks) {
    if (typeof task !== "string" || !Object.hasOwn(definition.tasks, task)) continue;
    for (const need of definition.tasks[task].needs ?? []) {
      const names: readonly string[] = typeof need === "string" ? [need] : need;
      if (names.some(given)) continue;
      const key = names.join(" or ");
      const entry = lacking.get(key) ?? { names, tasks: [] };
      if (!entry.tasks.includes(task)) entry.tasks.push(task);
      lacking.set(key, entry);
    }
  }
  return [...lacking.values()].map(({ names, tasks }) => {
    const who = tasks.length === 1
      ? `the ${tasks[0]} task needs`
      : `the ${tasks.slice(0, -1).join(", ")} and ${tasks.at(-1)} tasks need`;
    return { param: names[0], message: `missing: ${who} ${names.length === 1 ? "it" : names.join(" or ")}` };
  });
}

/**
 * The path of the param whose value `message` quotes (the longest such value), so that a problem an executor
 * reports in its own words is located in the routine. Values shorter than 4 characters count only in quotes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { paramShownIn } from "./routine.ts";
 *
 * const params = { source: { url: "ftp://example.com/a.zip" }, folder: "s3://", mode: "a" };
 * assert.deepEqual(paramShownIn("unsupported URL scheme ftp: in ftp://example.com/a.zip", params), ["source", "url"]);
 * assert.deepEqual(paramShownIn('invalid S3 location "s3://" (expected s3://bucket/prefix)', params), ["folder"]);
 * assert.equal(paramShownIn("a bad thing happened", params), undefined);
 * ```
 */
export function paramShownIn(message: string, params: unknown): JsonPath | undefined {
  let found: { path: JsonPath; length: number } | undefined;
  const walk = (value: unknown, path: JsonPath) => {
    if (typeof value === "string") {
      const shown = message.includes(JSON.stringify(value)) || (value.length >= 4 && message.includes(value));
      if (shown && value.length > (found?.length ?? -1)) found = { path, length: value.length };
    } else if (Array.isArray(value)) value.forEach((item, i) => walk(item, [...path, i]));
    else if (isPlainObject(value)) {
      for (const [key, item] of Object.entries(value)) walk(item, [...path, key]);
    }
  };
  walk(params, []);
  return found?.path;
}

/**
 * The step to run: its templates resolved only now (`run.id`, `steps.*`) given their values in `scope`, and
 * its params validated again. A step without such templates is returned as it is.
 *
 * @throws {Error} naming each param whose template has no value or whose value is invalid.
 */
export function resolveStepTemplates(step: Step, scope: TemplateScope): Step {
  if (!step.templates?.templates.some((template) => template.deferred)) return step;
  const at: JsonPath = ["executors", step.id, "params"];
  let params: Record<string, unknown>;
  try {
    params = resolveDeferredParams(step.templates, scope);
  } catch (error) {
    if (error instanceof TemplateError) {
      throw new Error(`${formatJsonPath([...at, ...(error.path ?? [])])}: ${error.message}`);
    }
    throw error;
  }
  const schema = paramsSchemaOf(step.executor.definition);
  const parsed = schema.safeParse(params, { reportInput: true });
  if (parsed.success) return { ...step, params: parsed.data as Record<string, unknown> };
  // a number or boolean an output gave, where the param takes a string: as text
  const failing = parsed.error.issues.map((issue) => issue.path);
  const asText = schema.safeParse(deferredValuesAsText(params, step.templates, failing));
  if (asText.success) return { ...step, params: asText.data as Record<string, unknown> };
  const problems: string[] = [];
  const unknownParam = (key: string) => `unknown param ${quoteValue(key)} for ${step.executor.name}`;
  for (const issue of parsed.error.issues) {
    const collect = (path: JsonPath, message: string) => problems.push(`${formatJsonPath(path)}: ${message}`);
    reportIssue(issue, at, unknownParam, collect, params, schema, { mask: scope.mask });
  }
  throw new Error(`invalid params once templates were resolved: ${problems.join("; ")}`);
}

/** The context handed to an executor's `permissions` function: the routine's AWS settings, the step's tasks. */
export function permissionContext(
  routine: Pick<Routine, "aws" | "s3">,
  step: Pick<Step, "tasks">,
  cwd: string,
): PermissionContext {
  return {
    cwd,
    resolve: (path: string) => resolve(cwd, path),
    aws: routine.aws,
    s3: routine.s3,
    tasks: step.tasks,
  };
}

const schemaCache = new WeakMap<ExecutorDefinition, z.ZodType>();

/**
 * The zod schema of an executor's params (built once per definition).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineExecutor } from "../../sdk/executor.ts";
 * import { paramsSchemaOf } from "./routine.ts";
 *
 * const hello = defineExecutor({
 *   name: "HelloExecutor",
 *   description: "Writes a greeting file.",
 *   params: (z) =>
 *     z.strictObject({
 *       folder: z.string().describe("Where to write hello.txt"),
 *       greeting: z.string().default("hello").describe("What to write"),
 *     }),
 *   permissions: (params, { resolve }) => ({ write: [resolve(params.folder)] }),
 *   tasks: { hello: { description: "Writes hello.txt", run: async () => {} } },
 * });
 * const schema = paramsSchemaOf(hello);
 * assert.equal(paramsSchemaOf(hello), schema); // built once
 * assert.deepEqual(schema.parse({ folder: "data" }), { folder: "data", greeting: "hello" });
 * assert.equal(schema.safeParse({ folder: "data", colour: "red" }).success, false); // unknown param
 * ```
 */
export function paramsSchemaOf(definition: ExecutorDefinition): z.ZodType {
  let schema = schemaCache.get(definition);
  if (!schema) {
    schema = definition.params(z);
    schemaCache.set(definition, schema);
  }
  return schema;
}

function reportIssue(
  issue: z.core.$ZodIssue,
  base: JsonPath,
  unknownKey: (key: string) => string,
  report: (path: JsonPath, message: string) => void,
  raw: unknown,
  schema: z.ZodType,
  options: { mask?: SecretMask } = {},
) {
  const relative = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
  const path = [...base, ...relative];
  if (issue.code === "unrecognized_keys") {
    const known = knownKeysAt(schema, relative);
    for (const key of issue.keys) {
      const hint = nearestName(key, known);
      report(
        [...path, key],
        `${unknownKey(key)}${hint ? ` (did you mean '${hint}'?)` : ""}; allowed: ${known.join(", ")}`,
      );
    }
    return;
  }
  const given = hasPath(raw, relative);
  if (!given && (issue.code === "invalid_type" || issue.code === "invalid_union")) {
    report(path, `missing (expected ${expectedOf(issue)})`);
    return;
  }
  if (issue.code === "invalid_union") {
    const inner = issue.errors.flat().find((e) => e.path.length > 0);
    if (inner) return reportIssue(inner, path, unknownKey, report, valueAt(raw, relative), schema, options);
  }
  // a check across params, at one the routine left out: its words alone, not every param as its input
  const acrossParams = issue.code === "custom" && isPlainObject(issue.input);
  // a problem with a map's key (its input is the key the path ends at): the key is the value, not what it maps to
  const aboutKey = (issue.code === "custom" || issue.code === "invalid_key") && relative.length > 0 &&
    issue.input === relative.at(-1);
  const value = aboutKey
    ? issue.input
    : given
    ? valueAt(raw, relative)
    : acrossParams
    ? undefined
    : issue.input;
  const secret = isSecretParam(schema, relative);
  report(path, describeIssue(issue, value, { withhold: !mayQuote(value, secret), mask: options.mask }));
}

/** What a message says in place of a value it must not quote. */
const NOT_SHOWN = "the value is not shown: it may hold a secret";

/**
 * Whether a message may quote `value`, a value the routine gave: not when it may be a secret, that is when
 * its param is marked secret in its schema (`secret`, see {@link isSecretParam}) or when it looks like a
 * credential whatever its param (`looksLikeCredential`, lib/mask.ts). Every validation message passes here,
 * so that an executor's schema need not care. (A value holding one of the run's `secrets.*` is quoted with
 * them masked, see {@link quoteValue}.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mayQuote } from "./routine.ts";
 *
 * assert.equal(mayQuote("wg", false), true);
 * assert.equal(mayQuote("hunter2 secret value", true), false); // a param marked secret
 * assert.equal(mayQuote("host=127.0.0.1 password=s3cr3tPW", false), false); // looks like a credential
 * ```
 */
export function mayQuote(value: unknown, secret: boolean): boolean {
  return value === undefined || !(secret || looksLikeCredential(value));
}

/**
 * True when the param at `path` of `schema` (or a param it is inside of) is marked `.meta({ secret: true })`:
 * a value that may be a secret itself or may hold one (a password variable's name, where a password gets
 * pasted; a connection URL; a secret ARN; an IAM role), which messages never quote.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import { isSecretParam } from "./routine.ts";
 *
 * const schema = z.strictObject({
 *   password_env: z.string().meta({ secret: true }).optional().describe("The password's variable."),
 *   keys: z.array(z.string()).meta({ secret: true }),
 *   name: z.string(),
 * });
 * assert.equal(isSecretParam(schema, ["password_env"]), true);
 * assert.equal(isSecretParam(schema, ["keys", 0]), true);
 * assert.equal(isSecretParam(schema, ["name"]), false);
 * // inside a record's values and a tuple's items
 * const request = z.strictObject({
 *   headers: z.record(z.string(), z.string().meta({ secret: true })),
 *   auth: z.tuple([z.string(), z.string().meta({ secret: true })]),
 * });
 * assert.equal(isSecretParam(request, ["headers", "Authorization"]), true);
 * assert.equal(isSecretParam(request, ["auth", 0]), false);
 * assert.equal(isSecretParam(request, ["auth", 1]), true);
 * ```
 */
export function isSecretParam(schema: z.ZodType, path: ReadonlyArray<string | number>): boolean {
  let current: any = schema;
  const secretHere = () => {
    for (let level = current; level; level = level._zod?.def?.innerType) {
      if (z.globalRegistry.get(level)?.secret === true) return true;
    }
    return false;
  };
  const unwrap = () => {
    while (current?._zod?.def?.innerType) current = current._zod.def.innerType;
  };
  if (secretHere()) return true;
  for (const key of path) {
    unwrap();
    const def = current?._zod?.def;
    current = def?.type === "array"
      ? def.element
      : def?.type === "record"
      ? def.valueType
      : def?.type === "tuple"
      ? (typeof key === "number" ? def.items[key] ?? def.rest : undefined)
      : current?.shape?.[key];
    if (current === undefined || current === null) return false;
    if (secretHere()) return true;
  }
  return false;
}

/** What {@link redactParam} shows in place of a value that may be a secret. */
export const REDACTED = "***";

/**
 * `value`, the param at `path` of `schema` (the step's params for `[]`), as `lakerun plan` shows it — the text
 * plan (templated values) and `plan --json` (every param) both: keys kept, and in place of anything that may
 * be a secret, `***`: a param marked `.meta({ secret: true })` (see {@link isSecretParam}: header and cookie
 * values, a basic-auth password, query parameters, `password_env`, a connection `url`…), a string that
 * looks like a credential (`looksLikeCredential`, lib/mask.ts), and the user info and query values of a URL
 * (shown as `redactUrl` shows it). The run's `secrets.*` are masked on top, as in every line printed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import { SecretMask } from "../../lib/mask.ts";
 * import { redactParam } from "./routine.ts";
 *
 * const schema = z.strictObject({
 *   url: z.string(),
 *   headers: z.record(z.string(), z.string().meta({ secret: true })),
 *   auth: z.tuple([z.string(), z.string().meta({ secret: true })]),
 *   note: z.string(),
 *   folder: z.string(),
 * });
 * assert.deepEqual(
 *   redactParam(schema, [], {
 *     url: "https://u:pw@host/x?token=abc",
 *     headers: { Authorization: "Bearer abcdefgh12345" },
 *     auth: ["bob", "hunter22"],
 *     note: "password=hunter22",
 *     folder: "data/landing",
 *   }),
 *   {
 *     url: "https://host/x?token=***",
 *     headers: { Authorization: "***" },
 *     auth: ["bob", "***"],
 *     note: "***",
 *     folder: "data/landing",
 *   },
 * );
 * assert.equal(redactParam(schema, ["auth", 1], "hunter22"), "***");
 * // the run's secrets are masked first: what they leave is not a credential
 * const mask = new SecretMask();
 * mask.add("hunter22");
 * assert.equal(redactParam(schema, ["note"], "password=hunter22", mask), "password=***");
 * ```
 */
export function redactParam(
  schema: z.ZodType,
  path: ReadonlyArray<string | number>,
  value: unknown,
  mask?: SecretMask,
): unknown {
  if (value === undefined || value === null) return value;
  if (isSecretParam(schema, path)) return REDACTED;
  if (Array.isArray(value)) return value.map((item, i) => redactParam(schema, [...path, i], item, mask));
  if (isPlainObject(value)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, redactParam(schema, [...path, key], item, mask)]),
    );
  }
  if (typeof value !== "string") return value;
  const masked = mask ? mask.mask(value) : value;
  const shown = /^[a-z][a-z0-9+.-]*:\/\/\S*[@?#]/i.test(masked) ? redactUrl(masked) : masked;
  // what is `***` already (a secret, a URL's query value) is no credential: only what is still shown is looked at
  return looksLikeCredential(shown.replace(ALREADY_HIDDEN, "")) ? REDACTED : shown;
}

/** A `***` and what introduces it (`token=***`, `"pw": "***"`, `PASSWORD '***'`). */
const ALREADY_HIDDEN = /["']?\s*[=:]\s*(["']?)\*\*\*\1|\s+'\*\*\*'/g;

/** A step's params as `lakerun plan` shows them: see {@link redactParam}. */
export function redactParams(step: Step, mask?: SecretMask): Record<string, unknown> {
  const schema = paramsSchemaOf(step.executor.definition);
  return redactParam(schema, [], step.params, mask) as Record<string, unknown>;
}

/**
 * `message` without any quote of `value` (whole or shortened, as JSON or as it is: each becomes `***`), and
 * saying that the value is not shown, for a value {@link mayQuote} refuses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withoutValue } from "./routine.ts";
 *
 * assert.equal(
 *   withoutValue('must be an environment variable name, not "hunter2 secret value"', "hunter2 secret value"),
 *   'must be an environment variable name, not "***" (the value is not shown: it may hold a secret)',
 * );
 * assert.equal(
 *   withoutValue('takes a whole number, not "1; password=x…"', "MAXERROR 1; password=xyz"),
 *   'takes a whole number, not "***" (the value is not shown: it may hold a secret)',
 * );
 * ```
 */
export function withoutValue(message: string, value: unknown): string {
  return `${replaceQuotes(message, value, '"***"')} (${NOT_SHOWN})`;
}

/**
 * `message` (an executor's words) with its quotes of `value` replaced by `value` quoted with the run's
 * secrets masked, when `value` holds one: the message may have quoted it shortened, cutting a secret the
 * mask of the output then no longer finds.
 */
function withQuotesMasked(message: string, value: unknown, mask: SecretMask | undefined): string {
  if (mask === undefined || mask.valuesIn(value).length === 0) return message;
  return replaceQuotes(message, value, quoteValue(value, undefined, mask));
}

/** `message` with `replacement` for each quote of `value` or of a part of it (whole or shortened), and `value`. */
function replaceQuotes(message: string, value: unknown, replacement: string): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  const out = message.replace(/"(?:[^"\\]|\\.)*"/g, (quoted) => {
    let content: string;
    try {
      content = JSON.parse(quoted);
    } catch {
      content = quoted.slice(1, -1);
    }
    const part = content.replace(/(?:…|\.\.\.)$/, "");
    return part.length >= 3 && text.includes(part) ? replacement : quoted;
  });
  return text.length >= 3 ? out.split(text).join(replacement) : out;
}

/**
 * One line saying what is wrong with `value` (the value the routine gave), for a zod issue: the value is
 * quoted (shortened when long, the run's secrets masked first, see {@link quoteValue}) unless `withhold` (a value
 * that may be a secret, see {@link mayQuote}); an executor's own message is kept, with the value added when the
 * message does not already show it, and its own quotes of a withheld value replaced by `***`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { z } from "zod";
 * import { describeIssue } from "./routine.ts";
 *
 * const schema = z.strictObject({ mode: z.enum(["archive", "delete"]), n: z.number().min(1) });
 * const parsed = schema.safeParse({ mode: "shred", n: 0 }, { reportInput: true });
 * const [mode, n] = parsed.error!.issues;
 * assert.equal(describeIssue(mode, "shred"), '"shred" is not one of "archive", "delete"');
 * assert.equal(describeIssue(n, 0), "too small: expected number to be >=1, got 0");
 * // a value that may be a secret (see mayQuote): the problem, not the value
 * assert.equal(
 *   describeIssue(mode, "shred", { withhold: true }),
 *   'is not one of "archive", "delete" (the value is not shown: it may hold a secret)',
 * );
 * ```
 */
export function describeIssue(
  issue: z.core.$ZodIssue,
  value: unknown,
  options: { withhold?: boolean; mask?: SecretMask } = {},
): string {
  if (options.withhold && value !== undefined) return describeWithheld(issue, value);
  const given = quoteValue(value, undefined, options.mask);
  const detail = issue as z.core.$ZodIssue & { prefix?: string; suffix?: string; includes?: string };
  if (!isDefaultMessage(issue)) {
    // the executor's own words; add the value unless they already show it
    const message = withQuotesMasked(issue.message, value, options.mask);
    const shown = message.includes(given) ||
      (typeof value === "string" && value.length >= 3 && message.includes(value)) ||
      showsRedacted(message, value);
    return shown || value === undefined ? message : `${message}, got ${given}`;
  }
  switch (issue.code) {
    case "invalid_value":
      return issue.values.length === 1
        ? `${given} is not ${quoteValue(issue.values[0])}`
        : `${given} is not one of ${issue.values.map((v) => quoteValue(v)).join(", ")}`;
    case "invalid_type":
    case "invalid_union":
      return `expected ${expectedOf(issue)}, received ${typeNameOf(value)} (${given})`;
    case "not_multiple_of":
      return `${given} is not a multiple of ${issue.divisor}`;
    case "invalid_format":
      if (issue.format === "regex") return `${given} does not match the pattern ${issue.pattern}`;
      if (issue.format === "starts_with") return `${given} does not start with ${quoteValue(detail.prefix)}`;
      if (issue.format === "ends_with") return `${given} does not end with ${quoteValue(detail.suffix)}`;
      if (issue.format === "includes") return `${given} does not contain ${quoteValue(detail.includes)}`;
      return `${given} is not a valid ${FORMAT_NAMES[issue.format] ?? issue.format}`;
    default: {
      const message = issue.message.replace(/^Invalid input: /, "");
      return `${message.charAt(0).toLowerCase()}${message.slice(1)}, got ${given}`;
    }
  }
}

/** {@link describeIssue} for a value it may not quote: what is wrong, in words that do not show it. */
function describeWithheld(issue: z.core.$ZodIssue, value: unknown): string {
  if (!isDefaultMessage(issue)) {
    const withheld = replaceQuotes(issue.message, value, '"***"');
    // a URL shown only as redactUrl shows it (no user info, no query value) is not shown
    return withheld === issue.message && showsRedacted(issue.message, value)
      ? issue.message
      : `${withheld} (${NOT_SHOWN})`;
  }
  switch (issue.code) {
    case "invalid_value":
      return `is not ${issue.values.length === 1 ? "" : "one of "}${
        issue.values.map((v) => quoteValue(v)).join(", ")
      } (${NOT_SHOWN})`;
    case "invalid_type":
    case "invalid_union":
      return `expected ${expectedOf(issue)}, received ${typeNameOf(value)} (${NOT_SHOWN})`;
    case "invalid_format":
      if (issue.format === "regex") return `does not match the pattern ${issue.pattern} (${NOT_SHOWN})`;
      return `is not a valid ${FORMAT_NAMES[issue.format] ?? issue.format} (${NOT_SHOWN})`;
    default: {
      const message = issue.message.replace(/^Invalid input: /, "");
      return withoutValue(`${message.charAt(0).toLowerCase()}${message.slice(1)}`, value);
    }
  }
}

/**
 * True when an executor's `message` shows `value`, a URL, as `redactUrl` makes it (user info removed, query
 * values `***`): its own quote, safe to print, so the value is not added to it.
 */
function showsRedacted(message: string, value: unknown): boolean {
  if (typeof value !== "string") return false;
  const redacted = redactUrl(value);
  return redacted !== value && redacted.length >= 3 && message.includes(redacted);
}

const FORMAT_NAMES: Record<string, string> = {
  url: "URL",
  email: "email address",
  uuid: "UUID",
  guid: "GUID",
  ipv4: "IPv4 address",
  ipv6: "IPv6 address",
  cidrv4: "IPv4 range",
  cidrv6: "IPv6 range",
  datetime: "ISO 8601 date and time",
  date: "date (YYYY-MM-DD)",
  time: "time (HH:MM[:SS])",
  duration: "ISO 8601 duration",
  base64: "base64 text",
  jwt: "JWT",
};

/** True when `issue.message` is zod's own wording (not an executor's `error`/`refine` message). */
function isDefaultMessage(issue: z.core.$ZodIssue): boolean {
  const localeError = z.core.globalConfig.localeError;
  if (!localeError) return true;
  const made = localeError(issue as unknown as Parameters<typeof localeError>[0]);
  const text = typeof made === "string" ? made : made?.message;
  return text === undefined || text === issue.message;
}

/** What an issue expected: `string`, or `string or number` for a union. */
function expectedOf(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type") return issue.expected;
  if (issue.code === "invalid_value") return issue.values.map((v) => quoteValue(v)).join(" or ");
  if (issue.code === "invalid_union") {
    const branches = issue.errors.map((branch) => branch[0]).filter((first) => first !== undefined);
    const names = [...new Set(branches.map(expectedOf))];
    return names.length > 0 ? names.join(" or ") : "another value";
  }
  return issue.message.replace(/^[A-Z][a-z]+ [a-z]+: /, "");
}

function typeNameOf(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}

/**
 * `value` as it stands in a routine file, for messages: JSON text on one line, long values shortened with their
 * length; `missing` for no value. The run's secrets are masked (`***`) before the value is shortened: a secret
 * cut in two would escape the mask of the output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SecretMask } from "../../lib/mask.ts";
 * import { quoteValue } from "./routine.ts";
 *
 * assert.equal(quoteValue("shred"), '"shred"');
 * assert.equal(quoteValue(42), "42");
 * assert.equal(quoteValue({ a: [1, 2] }), '{"a":[1,2]}');
 * assert.equal(quoteValue("two\nlines"), '"two\\nlines"');
 * assert.equal(quoteValue("\x1b[2J\u202e"), '"\\u001b[2J\\u202e"'); // escapes and bidi controls, escaped
 * assert.equal(quoteValue("x".repeat(100)), `"${"x".repeat(40)}…" (100 characters)`);
 * assert.equal(quoteValue(undefined), "missing");
 * const mask = new SecretMask();
 * mask.add("Tok3n-Value-xyz");
 * assert.equal(quoteValue(`${"x".repeat(35)}Tok3n-Value-xyz`, 60, mask), `"${"x".repeat(35)}***"`);
 * ```
 */
export function quoteValue(value: unknown, max = 60, mask?: SecretMask): string {
  if (value === undefined) return "missing";
  const hide = (text: string) => mask ? mask.mask(text) : text;
  if (typeof value === "string") return quoteJson(hide(value), max);
  let text: string;
  try {
    text = hide(JSON.stringify(value) ?? String(value));
  } catch {
    text = hide(String(value));
  }
  text = printable(text.replace(/[\r\n]+/g, " "));
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Validates a routine-level settings block (`aws`, `s3`) against its one schema; `undefined` when absent. */
function validateBlock(
  key: keyof typeof AWS_ROUTINE_BLOCKS,
  value: unknown,
  report: (path: JsonPath, message: string) => void,
): unknown {
  if (value === undefined) return undefined;
  const schema = AWS_ROUTINE_BLOCKS[key](z);
  const parsed = schema.safeParse(value, { reportInput: true });
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) {
    reportIssue(issue, [key], (name) => `unknown key ${quoteValue(name)}`, report, value, schema);
  }
  return undefined;
}

function checkKeys(
  object: Record<string, unknown>,
  at: JsonPath,
  allowed: string[],
  report: (path: JsonPath, message: string) => void,
) {
  for (const key of Object.keys(object)) {
    if (allowed.includes(key)) continue;
    const hint = nearestName(key, allowed);
    report(
      [...at, key],
      `unknown key ${quoteValue(key)}${hint ? ` (did you mean '${hint}'?)` : ""}; allowed: ${
        allowed.join(", ")
      }`,
    );
  }
}

/** Keys of the object schema found at `path` inside `schema` (optional, default and nullable unwrapped). */
function knownKeysAt(schema: z.ZodType, path: ReadonlyArray<string | number>): string[] {
  let current: any = schema;
  const unwrap = () => {
    while (current?._zod?.def?.innerType) current = current._zod.def.innerType;
  };
  unwrap();
  for (const key of path) {
    current = current?.shape?.[key];
    unwrap();
  }
  return current?.shape ? Object.keys(current.shape) : [];
}

function valueAt(value: unknown, path: ReadonlyArray<string | number>): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== "object" || current === null || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

function hasPath(value: unknown, path: ReadonlyArray<string | number>): boolean {
  if (path.length === 0) return value !== undefined;
  const parent = valueAt(value, path.slice(0, -1));
  return typeof parent === "object" && parent !== null && Object.hasOwn(parent, path[path.length - 1]);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
