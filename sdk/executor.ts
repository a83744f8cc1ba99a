/**
 * The executor contract: what a built-in executor or a user plugin default-exports.
 *
 * An executor module must not import zod at run time: its `params` is a function that receives zod from
 * lakerun. Parameters are validated in the parent process, and the Worker that runs the tasks then loads
 * only the executor's own code, which keeps a sandboxed step cheap to start.
 *
 * Plugins import this module as `@lakerun/lakerun/executor` (the `./executor` export of lakerun's deno.json)
 * or by path from a checkout (`…/lakerun/sdk/executor.ts`), and may use lakerun's `lib/` building blocks.
 *
 * @example
 * ```ts
 * import { defineExecutor } from "./executor.ts";
 *
 * export default defineExecutor({
 *   name: "HelloExecutor",
 *   description: "Writes a greeting file.",
 *   params: (z) => z.strictObject({ folder: z.string().describe("Where to write hello.txt") }),
 *   permissions: (params, { resolve }) => ({ write: [resolve(params.folder)] }),
 *   tasks: {
 *     hello: {
 *       description: "Writes hello.txt",
 *       run: async ({ params, resolve }) => {
 *         await Deno.writeTextFile(`${resolve(params.folder)}/hello.txt`, "hello\n");
 *       },
 *     },
 *   },
 * });
 * ```
 *
 * @module
 */
import type { z } from "zod";
import type { PermissionScope } from "../lib/scope.ts";
import type { AwsSettings, S3Settings } from "../lib/aws/settings.ts";
import type { IamStatement } from "../lib/aws/iam.ts";

/** The zod namespace handed to {@link ExecutorDefinition.params}. */
export type Zod = typeof z;

export type { PermissionScope } from "../lib/scope.ts";
export type { AwsSettings, S3Settings } from "../lib/aws/settings.ts";
export type { IamPolicy, IamStatement } from "../lib/aws/iam.ts";

/** Everything a permission function may use besides the params. */
export interface PermissionContext {
  /** Resolves a path from the routine against the folder lakerun was started in. */
  resolve(path: string): string;
  /** The folder lakerun was started in. */
  cwd: string;
  /** The routine's `aws` block, when it has one: settings every AWS service shares. */
  aws?: AwsSettings;
  /** S3 connection settings: the routine's `s3` block completed from its `aws` block, when it has either. */
  s3?: S3Settings;
  /**
   * The tasks this step runs, so a scope can leave out what only other tasks need. lakerun always sets it;
   * when absent (a definition called outside a routine), assume every task.
   */
  tasks?: readonly string[];
}

/** An event a task reports; the orchestrator adds the step and task names. */
export type TaskEvent =
  | { type: "log"; message: string }
  | { type: "progress"; bytes: number; total?: number; label?: string }
  | { type: "moved"; files: number; bytes: number }
  /**
   * A value later steps may use as `${{ steps.ID.outputs.NAME }}` (a query id, a row count, a file name),
   * also shown in the run record, the GitHub job summary and the `GITHUB_OUTPUT` outputs.
   */
  | { type: "output"; name: string; value: string | number | boolean };

/** What a task function receives. */
export interface TaskContext<P> {
  /** The step's params, validated, with defaults applied. */
  params: P;
  /** The step's id in the routine. */
  stepId: string;
  /** The routine's name. */
  routineName: string;
  /** The folder lakerun was started in. */
  cwd: string;
  /** Resolves a path from the routine against {@link TaskContext.cwd}. */
  resolve(path: string): string;
  /** A folder only this step may write, for journals and temporary files; kept between runs. */
  stateDir: string;
  /**
   * The routine run this task belongs to: the same id again when lakerun re-runs a run that failed or was
   * interrupted, a new one after a run that succeeded. A task that starts work elsewhere (a cloud job) keys
   * its records on it (`lib/cloud/ledger.ts`), so that a re-run reattaches instead of starting it twice.
   */
  runId: string;
  /** The routine's `aws` block, when it has one: settings every AWS service shares. */
  aws?: AwsSettings;
  /** S3 connection settings: the routine's `s3` block completed from its `aws` block, when it has either. */
  s3?: S3Settings;
  /** Reports an event to the console reporter. */
  report(event: TaskEvent): void;
  /** Shorthand for `report({ type: "log", message })`. */
  log(message: string): void;
  /**
   * `text` with the secret values this step's params hold replaced by `***`. lakerun masks every line it
   * prints and stores, but only whole values: a task that shortens text which may hold a secret (a
   * statement's first words in an error) masks it first, so that no part of a secret survives the cut.
   */
  mask(text: string): string;
  /** Aborted when the run is interrupted. */
  signal: AbortSignal;
  /** Values shared between the tasks of one step, in the order they run. */
  shared: Map<string, unknown>;
}

/** One task an executor offers. */
export interface TaskDefinition<P> {
  description: string;
  /**
   * The params this task cannot run without, beyond those every step needs (the schema's required ones):
   * each a param name, or a list of names one of which must be given. lakerun checks them with the rest of
   * the routine, before anything runs, and `lakerun list` shows them.
   */
  needs?: ReadonlyArray<string | readonly string[]>;
  /**
   * The outputs the task reports (`report({ type: "output", name, value })`), by name, each with what it
   * holds: documentation only (the executor reference and `lakerun list` show them), nothing checks it.
   * Outputs belong to the step, so tasks of one step share a name only for the same meaning.
   */
  outputs?: Readonly<Record<string, string>>;
  run(context: TaskContext<P>): Promise<void>;
}

/** The default export of an executor module. */
export interface ExecutorDefinition<S extends z.ZodType = z.ZodType> {
  /** The name routines use, e.g. `DownloaderExecutor`. */
  name: string;
  /** One or two sentences for `lakerun list` and the JSON Schema. */
  description: string;
  /**
   * Builds the params schema from the zod namespace lakerun passes in. Validation messages quote the value
   * they are about; mark a param whose value may be a secret (or where one gets pasted by mistake) with
   * `.meta({ secret: true })` and its messages never quote it. Messages of your own need not quote values:
   * lakerun adds the value when it may show it. An issue about a map's key (`path: [key]`) names the key as
   * its `input`, and the key is then the value quoted, not what it maps to.
   */
  params: (zod: Zod) => S;
  /**
   * The exact permission scope a step with these params needs. lakerun calls it when it checks a routine:
   * an error it throws makes the routine invalid (exit 2, nothing runs), located at the param a
   * {@link ParamError} names, else at the param whose value the message quotes.
   */
  permissions(params: z.output<S>, context: PermissionContext): PermissionScope;
  /**
   * The AWS IAM statements a step with these params needs (`lakerun plan --iam`), exactly the actions and
   * resources its tasks use. Executors that touch no AWS resource leave it out.
   */
  iam?(params: z.output<S>, context: PermissionContext): IamStatement[];
  /**
   * What `iam` cannot grant because the params do not say it (a resource only the AWS account knows): lines
   * `lakerun plan --iam` prints on standard error, each naming the step.
   */
  iamNotes?(params: z.output<S>, context: PermissionContext): string[];
  /**
   * Lines `lakerun plan` shows under the step's permissions, for what the scope cannot say: e.g. how a
   * program the step starts is confined on this machine. Runs in lakerun's own process, never in the Worker.
   */
  planNotes?(params: z.output<S>, context: PermissionContext): Promise<string[]>;
  /** The tasks a routine may name; nothing else can run. */
  tasks: Record<string, TaskDefinition<z.output<S>>>;
}

/**
 * A problem with one param that its schema cannot express (a URL scheme, a location's form), thrown by
 * `permissions`: the routine is invalid, and the message is shown at the param (inside the step's params), as
 * `routine.json:LINE:COL: executors.STEP.params.PARAM: message`. The message shows the value given (redacted
 * where it may hold a credential, as a URL's query).
 *
 * `new ParamError(param, message, options?)`: `param` is one param's name (`"mode"`), or the path to a value
 * inside a param, one key or list index each (`["source", "url"]`, `["columns", 2, "type"]`); a name is never
 * split, dots included.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ParamError } from "./executor.ts";
 *
 * const mode = new ParamError("mode", 'mode "shred" is not supported');
 * assert.deepEqual(mode.path, ["mode"]);
 * const url = new ParamError(["source", "url"], "unsupported URL scheme ftp:");
 * assert.deepEqual(url.path, ["source", "url"]);
 * assert.equal(url.message, "unsupported URL scheme ftp:");
 * ```
 */
export class ParamError extends Error {
  /** Where the problem is inside the step's params: keys and list indexes. */
  readonly path: ReadonlyArray<string | number>;

  /** A problem with the param named `param` (or at the path `param` inside the params), told by `message`. */
  constructor(param: string | ReadonlyArray<string | number>, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ParamError";
    this.path = typeof param === "string" ? [param] : [...param];
  }
}

/**
 * The validated params type of an executor's schema function, for typing helpers outside the task table.
 *
 * @example
 * ```ts
 * import type { ParamsOf, Zod } from "./executor.ts";
 *
 * const params = (z: Zod) => z.strictObject({ folder: z.string() });
 * const example: ParamsOf<typeof params> = { folder: "data" };
 * ```
 */
/**
 * Refuses (a {@link ParamError} on `param`, saying `problem` and where it looked) a file param whose file is
 * not there, from a `permissions` function: the routine is then refused before anything runs, not when the
 * step reaches the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ParamError, requireFile } from "./executor.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/q.sql`, "SELECT 1");
 * requireFile(`${dir}/q.sql`, "sql_file", '"q.sql" is not a file');
 * assert.throws(
 *   () => requireFile(`${dir}/nope.sql`, "sql_file", '"nope.sql" is not a file'),
 *   (e) => e instanceof ParamError && e.path[0] === "sql_file" && /"nope\.sql" is not a file \(looked for /.test(e.message),
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function requireFile(path: string, param: string, problem: string): void {
  let isFile = false;
  try {
    isFile = Deno.statSync(path).isFile;
  } catch {
    // not there
  }
  if (!isFile) throw new ParamError([param], `${problem} (looked for ${path})`);
}

export type ParamsOf<F extends (zod: Zod) => z.ZodType> = z.output<ReturnType<F>>;

/**
 * Declares an executor; returns the definition unchanged, typed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineExecutor } from "./executor.ts";
 *
 * const noop = defineExecutor({ name: "NoopExecutor", description: "Does nothing.",
 *   params: (z) => z.strictObject({}), permissions: () => ({}),
 *   tasks: { noop: { description: "Does nothing", run: async () => {} } } });
 * assert.deepEqual(Object.keys(noop.tasks), ["noop"]);
 * ```
 */
export function defineExecutor<S extends z.ZodType>(
  definition: ExecutorDefinition<S>,
): ExecutorDefinition<S> {
  return definition;
}
