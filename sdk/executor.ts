/**
 * The executor contract: what a built-in executor or a user plugin default-exports.
 *
 * An executor module must not import zod at run time: its `params` is a function that receives zod from
 * lakerun. Parameters are validated in the parent process, and the Worker that runs the tasks then loads
 * only the executor's own code, which keeps a sandboxed step cheap to start.
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

/** The zod namespace handed to {@link ExecutorDefinition.params}. */
export type Zod = typeof z;

/** Deno permission scopes for one step. Every path is absolute once resolved by lakerun. */
export interface PermissionScope {
  /** Files and folders the step may read. */
  read?: string[];
  /** Files and folders the step may write. */
  write?: string[];
  /** `host:port` pairs (or hosts) the step may connect to. */
  net?: string[];
  /** Environment variables the step may read (`AWS_*` wildcards allowed). */
  env?: string[];
  /** Programs the step may start. Note: a started program is not confined by Deno's sandbox. */
  run?: string[];
}

/** Everything a permission function may use besides the params. */
export interface PermissionContext {
  /** Resolves a path from the routine against the folder lakerun was started in. */
  resolve(path: string): string;
  /** The folder lakerun was started in. */
  cwd: string;
  /** The routine-level `s3` block, when the routine has one. */
  s3?: S3Settings;
  /**
   * The tasks this step runs, so a scope can leave out what only other tasks need. lakerun always sets it;
   * when absent (a definition called outside a routine), assume every task.
   */
  tasks?: readonly string[];
}

/** The routine-level `"s3"` block: connection settings for every S3 location in the routine. */
export interface S3Settings {
  endpoint?: string;
  region?: string;
  force_path_style?: boolean;
  checksum_mode?: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
}

/** An event a task reports; the orchestrator adds the step and task names. */
export type TaskEvent =
  | { type: "log"; message: string }
  | { type: "progress"; bytes: number; total?: number; label?: string }
  | { type: "moved"; files: number; bytes: number };

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
  /** The routine-level `s3` block, when the routine has one. */
  s3?: S3Settings;
  /** Reports an event to the console reporter. */
  report(event: TaskEvent): void;
  /** Shorthand for `report({ type: "log", message })`. */
  log(message: string): void;
  /** Aborted when the run is interrupted. */
  signal: AbortSignal;
  /** Values shared between the tasks of one step, in the order they run. */
  shared: Map<string, unknown>;
}

/** One task an executor offers. */
export interface TaskDefinition<P> {
  description: string;
  run(context: TaskContext<P>): Promise<void>;
}

/** The default export of an executor module. */
export interface ExecutorDefinition<S extends z.ZodType = z.ZodType> {
  /** The name routines use, e.g. `DownloaderExecutor`. */
  name: string;
  /** One or two sentences for `lakerun list` and the JSON Schema. */
  description: string;
  /** Builds the params schema from the zod namespace lakerun passes in. */
  params: (zod: Zod) => S;
  /** The exact permission scope a step with these params needs. */
  permissions(params: z.output<S>, context: PermissionContext): PermissionScope;
  /** The tasks a routine may name; nothing else can run. */
  tasks: Record<string, TaskDefinition<z.output<S>>>;
}

/**
 * Declares an executor; returns the definition unchanged, typed.
 *
 * @example
 * ```ts
 * export default defineExecutor({ name: "NoopExecutor", description: "Does nothing.",
 *   params: (z) => z.strictObject({}), permissions: () => ({}),
 *   tasks: { noop: { description: "Does nothing", run: async () => {} } } });
 * ```
 */
export function defineExecutor<S extends z.ZodType>(
  definition: ExecutorDefinition<S>,
): ExecutorDefinition<S> {
  return definition;
}
