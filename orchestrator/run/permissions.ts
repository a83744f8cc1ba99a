/**
 * Computes the permission scope of each step: the executor's own `permissions(params)`, resolved to
 * absolute paths, plus the step's state folder. The same scope is shown by `lakerun plan` and handed to the
 * step's Worker, where the runtime enforces it.
 *
 * @module
 */
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import type { PermissionScope } from "../../sdk/executor.ts";
import { SCOPE_KINDS } from "../../lib/scope.ts";
import { isWithinLocation, locationsOverlap, realLocation } from "../../lib/storage/locations.ts";
import { RoutineError, type RoutineProblem } from "../errors.ts";
import { formatJsonPath, type JsonPath, printable, quoteJson } from "../routine/json.ts";
import { permissionContext, type Routine, type Step } from "../routine/routine.ts";

/** A network permission Deno grants: a host name or IP address, with a port or not (`[::1]:8080`). */
const NET_HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** A step's scope with every list resolved, sorted and free of duplicates. */
export interface ResolvedScope {
  read: string[];
  write: string[];
  net: string[];
  env: string[];
  run: string[];
  sys: string[];
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

/** The routine's run lock: the file a run holds locked while it runs (see runner.ts). */
export function runLockFile(stateRoot: string, routineName: string): string {
  return join(routineStateDir(stateRoot, routineName), "run.lock");
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
 *   sys: [],
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
  const problems = stateFolderProblems(routine, step, paths(declared.read), paths(declared.write), options);
  // a host Deno cannot grant would fail the step's Worker at its start, naming no step: refused here
  for (const host of declared.net ?? []) {
    if (NET_HOST.test(host)) continue;
    problems.push({
      where: routine.locate?.(["executors", step.id]) ?? routine.file,
      path: formatJsonPath(["executors", step.id]),
      message: `${step.executor.name} asks for network access to ${
        quoteJson(host)
      }, which is no host or host:port (Deno grants no wildcard or URL); the step cannot run`,
    });
  }
  if (problems.length > 0) throw new RoutineError(problems);
  return {
    read: unique([...paths(declared.read), stateDir]),
    write: unique([...paths(declared.write), stateDir]),
    net: unique(declared.net ?? []),
    env: unique(declared.env ?? []),
    run: unique(declared.run ?? []),
    sys: unique(declared.sys ?? []),
  };
}

/**
 * Refuses, before anything runs, a routine in which a step could read or write lakerun's state folder
 * (`--state-dir`: journals, locks, run records): a folder param that holds it (`.`) or lies inside it. Each
 * step's scope is checked as {@link stepScope} does; a step whose scope needs its templates resolved first is
 * checked when it starts. Returns the scopes it computed, by step id (`lakerun plan` shows them).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RoutineError } from "../errors.ts";
 * import { parseRoutine } from "../routine/routine.ts";
 * import { checkStateFolder } from "./permissions.ts";
 *
 * const download = {
 *   params: { requests_arguments: { url: "https://example.com/data.zip" }, landing_directory: ".", unzip: "unzip" },
 *   tasks: ["download"],
 * };
 * const text = JSON.stringify({ routine_name: "survey", executors: { DownloaderExecutor: download } });
 * const routine = await parseRoutine(text, { file: "/work/survey.json", label: "survey.json", cwd: "/work" });
 * assert.throws(() => checkStateFolder(routine, { cwd: "/work", stateRoot: ".lakerun" }), (error) => {
 *   assert.ok(error instanceof RoutineError);
 *   assert.equal(
 *     error.message,
 *     "survey.json:1:151: executors.DownloaderExecutor.params.landing_directory: \".\" gives this step write access to " +
 *       "/work, which holds lakerun's state folder /work/.lakerun (journals, locks, run records); choose " +
 *       "another folder, or keep the state elsewhere with --state-dir",
 *   );
 *   return true;
 * });
 * ```
 */
export function checkStateFolder(
  routine: Routine,
  options: { cwd: string; stateRoot: string },
): Map<string, ResolvedScope> {
  const problems: RoutineProblem[] = [];
  const scopes = new Map<string, ResolvedScope>();
  for (const step of routine.steps) {
    try {
      scopes.set(step.id, stepScope(routine, step, options));
    } catch (error) {
      if (error instanceof RoutineError) problems.push(...error.problems);
      // any other error: the step's params need their templates first
    }
  }
  if (problems.length > 0) throw new RoutineError(problems);
  return scopes;
}

function stateFolderProblems(
  routine: Routine,
  step: Step,
  read: string[],
  write: string[],
  options: { cwd: string; stateRoot: string },
): RoutineProblem[] {
  const root = resolve(options.cwd, options.stateRoot);
  const label = relative(options.cwd, routine.file);
  const where = label && !label.startsWith("..") && !isAbsolute(label) ? label : routine.file;
  const problems: RoutineProblem[] = [];
  for (const path of unique([...write, ...read])) {
    // as written, and as Deno grants it: through the symbolic links on the way (`link/x`, link → .lakerun)
    const holds = isWithinLocation(path, root, absolute);
    if (!holds && !isWithinLocation(root, path, absolute)) continue;
    const real = realLocation(path);
    const param = paramNaming(step.params, path, options.cwd);
    const source = param ? `${JSON.stringify(param.value)} gives` : "its params give";
    const access = write.includes(path) ? "write" : "read";
    const relation = holds ? "which holds" : "inside";
    const through = real !== path && !isWithin(root, path) && !isWithin(path, root) ? ` (it is ${real})` : "";
    const suggestion = param && acceptedPath(routine, step, param, { ...options, root });
    const choose = suggestion === undefined
      ? "another folder"
      : suggestion.kind === "subfolder"
      ? `a subfolder (such as ${JSON.stringify(suggestion.value)}) or another folder`
      : `a path outside it (such as ${JSON.stringify(suggestion.value)})`;
    const at = ["executors", step.id, "params", ...(param?.path ?? [])];
    problems.push({
      // at the param's line and column in the routine file, as every problem of a routine is
      where: routine.locate?.(at) ?? where,
      path: formatJsonPath(at),
      message:
        `${source} this step ${access} access to ${path}${through}, ${relation} lakerun's state folder ${root} ` +
        `(journals, locks, run records); choose ${choose}, or keep the state elsewhere with --state-dir`,
    });
  }
  return problems;
}

/**
 * A value for the refused param that the step's scope would accept, to suggest: for a path inside the state
 * folder, the same path beside it (`.lakerun/x` → `x`, else `results/x`); for a file of the folder that holds the
 * state folder, that file one folder down (`out.csv` → `results/out.csv`). Each candidate is put in the step's
 * params and its scope computed again: one that still reaches the state folder (or that the executor refuses) is
 * never suggested. A value that holds the state folder itself (`.`) gets no suggestion.
 */
function acceptedPath(
  routine: Routine,
  step: Step,
  param: { path: JsonPath; value: string },
  options: { cwd: string; stateRoot: string; root: string },
): { kind: "subfolder" | "outside"; value: string } | undefined {
  const { cwd, root } = options;
  const resolved = resolve(cwd, param.value);
  const candidates: Array<{ kind: "subfolder" | "outside"; value: string }> = [];
  if (resolved !== root && isWithin(resolved, root)) {
    const rest = relative(root, resolved);
    for (const path of [join(dirname(root), rest), join(dirname(root), "results", rest)]) {
      // as the param gave it: relative to the current folder, unless it was absolute or that leaves it
      const shown = relative(cwd, path);
      const value = isAbsolute(param.value) || shown.startsWith("..") || isAbsolute(shown) ? path : shown;
      candidates.push({ kind: "outside", value });
    }
  } else if (!isWithin(root, resolved)) {
    const slash = param.value.lastIndexOf("/");
    const value = slash < 0
      ? `results/${param.value}`
      : `${param.value.slice(0, slash)}/results/${param.value.slice(slash + 1)}`;
    candidates.push({ kind: "subfolder", value });
  }
  return candidates.find(({ value }) => {
    try {
      const params = withValueAt(step.params, param.path, value);
      const declared = step.executor.definition.permissions(
        params,
        permissionContext(routine, step, cwd),
      );
      const paths = [...(declared.read ?? []), ...(declared.write ?? [])].map((p) => resolve(cwd, p));
      return !paths.some((path) => locationsOverlap(root, path, absolute));
    } catch {
      return false; // the executor refuses it: no suggestion
    }
  });
}

/** The `resolve` of `isWithinLocation` for paths resolved already: so compared also with their links followed. */
const absolute = (path: string) => path;

/** True when `path` is `folder` or inside it, as written. */
function isWithin(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith("/") ? folder : `${folder}/`);
}

/** `value` with the string at `path` replaced (copied along the path; nothing else is touched). */
function withValueAt(value: unknown, path: JsonPath, replacement: string): any {
  if (path.length === 0) return replacement;
  const [head, ...rest] = path;
  if (Array.isArray(value)) {
    const copy = [...value];
    copy[head as number] = withValueAt(value[head as number], rest, replacement);
    return copy;
  }
  const record = value as Record<string, unknown>;
  return { ...record, [head]: withValueAt(record[head], rest, replacement) };
}

/** A param name that says its value is a path: `landing_directory`, `results_to`, `py_exec_path`, `file`. */
const PATH_KEY = /(?:^|_)(?:dir|directory|folder|path|file|to|location|root|target|output|input)$/i;

/**
 * The param whose (local path) value gave the step access to `path`: one that resolves to `path` itself, else
 * one inside it (a file whose folder it is, the nearest first). Only values that may be paths are weighed: no
 * URL, a name or a value that says path (`…_directory`, `…_to`, a `/`, a leading `.`, a file extension), and
 * a space or line break only under a name that says path (SQL holds `/` too) — so `"database": "retail"` is
 * never taken for the folder `retail`, and `"landing_directory": "My Data"` is a path.
 * A value that does not say path is taken only when it resolves to `path` itself and no other param explains it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { paramNaming } from "./permissions.ts";
 *
 * const params = { database: "retail", query: "SELECT 1", results_to: "out.csv" };
 * assert.deepEqual(paramNaming(params, "/work", "/work"), { path: ["results_to"], value: "out.csv", exact: false });
 * assert.deepEqual(paramNaming({ landing_directory: "." }, "/work", "/work"), {
 *   path: ["landing_directory"],
 *   value: ".",
 *   exact: true,
 * });
 * assert.equal(paramNaming({ database: "retail" }, "/work", "/work"), undefined);
 * assert.deepEqual(paramNaming({ query: "SELECT a/b FROM t", landing_directory: "My Data/in" }, "/work", "/work"), {
 *   path: ["landing_directory"],
 *   value: "My Data/in",
 *   exact: false,
 * });
 * ```
 */
export function paramNaming(
  params: unknown,
  path: string,
  cwd: string,
): { path: JsonPath; value: string; exact: boolean } | undefined {
  const found: Array<{ path: JsonPath; value: string; exact: boolean; pathLike: boolean; depth: number }> =
    [];
  const walk = (value: unknown, at: JsonPath) => {
    if (typeof value === "string") {
      if (value === "" || /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return;
      const key = [...at].reverse().find((part) => typeof part === "string") as string | undefined;
      const keySaysPath = key !== undefined && PATH_KEY.test(key);
      if (/\s/.test(value) && !keySaysPath) return; // SQL or a message, not a path
      const pathLike = keySaysPath || /^[.~]|\/|\.[A-Za-z0-9]{1,8}$/.test(value);
      const resolved = resolve(cwd, value);
      const exact = resolved === path;
      const inside = resolved.startsWith(path.endsWith("/") ? path : `${path}/`);
      // a value that does not say path, inside the folder, is a name that happens to resolve there
      if (exact || (inside && pathLike)) {
        const depth = exact ? 0 : resolved.slice(path.length).split("/").filter(Boolean).length;
        found.push({ path: at, value, exact, pathLike, depth });
      }
    } else if (Array.isArray(value)) value.forEach((item, i) => walk(item, [...at, i]));
    else if (value && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) walk(item, [...at, key]);
    }
  };
  walk(params, []);
  // a path-like value first (exact, then the nearest file or folder inside), then a bare name that is exact
  const rank = (f: (typeof found)[number]) => (f.pathLike ? 0 : 1000) + f.depth;
  const best = found.sort((a, b) => rank(a) - rank(b))[0];
  return best && { path: best.path, value: best.value, exact: best.exact };
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
    sys: list(scope.sys) as Deno.PermissionOptionsObject["sys"],
    ffi: false,
    import: false,
  };
}

/** The scope as indented lines for `lakerun plan`. */
export function formatScope(scope: ResolvedScope, indent = "    "): string[] {
  return SCOPE_KINDS.flatMap((kind) => {
    const items = scope[kind].length ? scope[kind] : ["-"];
    // a path or host from the routine: escaped, so that it can neither forge a line nor drive the terminal
    return items.map((item, i) => `${indent}${(i === 0 ? kind : "").padEnd(7)}${printable(item)}`);
  });
}

function unique(items: string[]): string[] {
  return [...new Set(items)].sort();
}
