/**
 * Computes the permission scope of each step: the executor's own `permissions(params)`, resolved to
 * absolute paths, plus the step's state folder. The same scope is shown by `lakerun plan` and handed to the
 * step's Worker, where the runtime enforces it.
 *
 * @module
 */
import { isAbsolute, join, resolve } from "node:path";
import type { PermissionContext, PermissionScope } from "../../sdk/executor.ts";
import { SCOPE_KINDS } from "../../lib/scope.ts";
import type { Routine, Step } from "../routine/routine.ts";

/** A step's scope with every list resolved, sorted and free of duplicates. */
export interface ResolvedScope {
  read: string[];
  write: string[];
  net: string[];
  env: string[];
  run: string[];
}

export { SCOPE_KINDS };

/**
 * The folder where a step keeps its journal and temporary files: `<stateRoot>/<routine>/<step>`, each
 * name reduced to a safe file name (a routine name such as `../x` cannot leave the state folder).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepStateDir } from "./permissions.ts";
 *
 * assert.equal(
 *   stepStateDir("/work/.lakerun", "retail trade survey", "DownloaderExecutor"),
 *   "/work/.lakerun/retail-trade-survey-5b56574a/DownloaderExecutor-75357e93",
 * );
 * assert.equal(
 *   stepStateDir("/work/.lakerun", "../x", "StagingExecutor"),
 *   "/work/.lakerun/x-5c237dda/StagingExecutor-dd13958f",
 * );
 * ```
 */
export function stepStateDir(stateRoot: string, routineName: string, stepId: string): string {
  return join(routineStateDir(stateRoot, routineName), safeFileName(stepId));
}

/** The folder holding a routine's step folders and its run lock. */
export function routineStateDir(stateRoot: string, routineName: string): string {
  return join(stateRoot, safeFileName(routineName));
}

/**
 * A file name made from untrusted text: safe characters kept, the rest replaced, plus a short hash of the
 * original so that different names never collide.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { safeFileName } from "./permissions.ts";
 *
 * assert.equal(safeFileName("../x"), "x-5c237dda");
 * assert.equal(safeFileName("a b"), "a-b-10a3f9f2");
 * assert.equal(safeFileName("a-b"), "a-b-2a89df63"); // same readable part, another hash
 * ```
 */
export function safeFileName(text: string): string {
  const readable = text.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60) || "unnamed";
  let hash = 0x811c9dc5;
  for (const ch of new TextEncoder().encode(text)) hash = Math.imul(hash ^ ch, 0x01000193) >>> 0;
  return `${readable}-${hash.toString(16).padStart(8, "0")}`;
}

/** The context handed to an executor's `permissions` function. */
export function permissionContext(routine: Routine, step: Step, cwd: string): PermissionContext {
  return {
    cwd,
    resolve: (path: string) => resolve(cwd, path),
    aws: routine.aws,
    s3: routine.s3,
    tasks: step.tasks,
  };
}

/**
 * The scope a step's Worker gets: the executor's declared scope, resolved, plus its state folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseRoutine } from "../routine/routine.ts";
 * import { stepScope } from "./permissions.ts";
 *
 * const text = JSON.stringify({
 *   routine_name: "survey",
 *   executors: {
 *     DownloaderExecutor: {
 *       params: {
 *         requests_arguments: { url: "https://example.com/data.zip" },
 *         landing_directory: "data/landing",
 *       },
 *       tasks: ["download"],
 *     },
 *   },
 * });
 * const routine = await parseRoutine(text, { file: "/work/survey.json", label: "survey.json" });
 * const scope = stepScope(routine, routine.steps[0], { cwd: "/work", stateRoot: ".lakerun" });
 * assert.deepEqual(scope, {
 *   read: ["/work/.lakerun/survey-5d222127/DownloaderExecutor-75357e93", "/work/data"],
 *   write: ["/work/.lakerun/survey-5d222127/DownloaderExecutor-75357e93", "/work/data"],
 *   net: ["example.com:443"],
 *   env: [],
 *   run: [],
 * });
 * ```
 */
export function stepScope(
  routine: Routine,
  step: Step,
  options: { cwd: string; stateRoot: string },
): ResolvedScope {
  const declared: PermissionScope = step.executor.definition.permissions(
    step.params,
    permissionContext(routine, step, options.cwd),
  );
  const stateDir = stepStateDir(resolve(options.cwd, options.stateRoot), routine.name, step.id);
  const paths = (list: string[] | undefined) =>
    unique((list ?? []).map((p) => (isAbsolute(p) ? resolve(p) : resolve(options.cwd, p))));
  return {
    read: unique([...paths(declared.read), stateDir]),
    write: unique([...paths(declared.write), stateDir]),
    net: unique(declared.net ?? []),
    env: unique(declared.env ?? []),
    run: unique(declared.run ?? []),
  };
}

/** The permissions object for `new Worker(…, { deno: { permissions } })`: nothing beyond the scope. */
export function workerPermissions(scope: ResolvedScope): Deno.PermissionOptionsObject {
  const list = (items: string[]) => (items.length ? items : false);
  return {
    read: list(scope.read),
    write: list(scope.write),
    net: list(scope.net),
    env: list(scope.env),
    run: list(scope.run),
    ffi: false,
    sys: false,
    import: false,
  };
}

/** The scope as indented lines for `lakerun plan`. */
export function formatScope(scope: ResolvedScope, indent = "    "): string[] {
  return SCOPE_KINDS.flatMap((kind) => {
    const items = scope[kind].length ? scope[kind] : ["-"];
    return items.map((item, i) => `${indent}${(i === 0 ? kind : "").padEnd(7)}${item}`);
  });
}

function unique(items: string[]): string[] {
  return [...new Set(items)].sort();
}
