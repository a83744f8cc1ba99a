/**
 * The notebook's Python transform contract (`py_exec.main(parent, dump, **py_exec_args)`), run in a sandbox of
 * its own. Deno's permissions stop at the `python3` process a step starts, so lakerun confines it itself:
 *
 * - **environment**: `python3` starts with a minimal one: `PATH`, `LANG`, `LC_*`, `TZ`, the `PYTHON*`
 *   variables that are set, a private `TMPDIR` and `HOME` in the step's state folder, and the variables the
 *   routine names in `py_exec_env`. Nothing else (no `AWS_SECRET_ACCESS_KEY`, no token) reaches the transform.
 * - **Landlock** (Linux): lakerun's prelude (`landlock_prelude.py`, the same for every transform) restricts
 *   the interpreter and every process it starts before `py_exec` is imported: read the Python installation,
 *   `py_exec_path` and the input folder; read and write the output folder and the private folders; execute the
 *   interpreter only; no TCP bind or connect (Landlock ABI 4, Linux 6.7). `py_exec_sandbox` decides what
 *   happens where the kernel cannot: `best_effort` runs unconfined and says so, `required` fails before the
 *   transform runs, `off` never confines (unsafe).
 *
 * A refused access fails the transform with Python's `PermissionError`, and the task's error names it as the
 * Worker's refusals do: `permission denied: py_exec: read access to /etc/passwd is outside the transform's
 * sandbox`.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PermissionScope } from "../../sdk/executor.ts";
import { TEMP_PREFIX } from "../../lib/storage/mod.ts";

/** What `py_exec_sandbox` asks for: confine where the kernel can, always (or fail), or never. */
export type PySandboxMode = "best_effort" | "required" | "off";

/** The prelude lakerun hands to the interpreter (`python3 -c <prelude> <spec>`). */
export const PRELUDE_URL: URL = new URL("./landlock_prelude.py", import.meta.url);

/** Locale variables passed to the transform when set. */
export const LOCALE_ENV: readonly string[] = [
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "LC_NUMERIC",
  "LC_TIME",
  "LC_COLLATE",
  "LC_MONETARY",
  "LC_MESSAGES",
  "LC_PAPER",
  "LC_NAME",
  "LC_ADDRESS",
  "LC_TELEPHONE",
  "LC_MEASUREMENT",
  "LC_IDENTIFICATION",
];

/** The interpreter's own variables (CPython 3.8 to 3.14), passed to the transform when set. */
export const PYTHON_ENV: readonly string[] = [
  "PYTHONHOME",
  "PYTHONPATH",
  "PYTHONSAFEPATH",
  "PYTHONPLATLIBDIR",
  "PYTHONSTARTUP",
  "PYTHONOPTIMIZE",
  "PYTHONBREAKPOINT",
  "PYTHONDEBUG",
  "PYTHONINSPECT",
  "PYTHONUNBUFFERED",
  "PYTHONVERBOSE",
  "PYTHONCASEOK",
  "PYTHONDONTWRITEBYTECODE",
  "PYTHONPYCACHEPREFIX",
  "PYTHONHASHSEED",
  "PYTHONINTMAXSTRDIGITS",
  "PYTHONIOENCODING",
  "PYTHONNOUSERSITE",
  "PYTHONUSERBASE",
  "PYTHONEXECUTABLE",
  "PYTHONWARNINGS",
  "PYTHONFAULTHANDLER",
  "PYTHONTRACEMALLOC",
  "PYTHONPROFILEIMPORTTIME",
  "PYTHONASYNCIODEBUG",
  "PYTHONMALLOC",
  "PYTHONMALLOCSTATS",
  "PYTHONCOERCECLOCALE",
  "PYTHONDEVMODE",
  "PYTHONUTF8",
  "PYTHONWARNDEFAULTENCODING",
  "PYTHONNODEBUGRANGES",
  "PYTHONPERFSUPPORT",
  "PYTHON_PERF_JIT_SUPPORT",
  "PYTHON_CPU_COUNT",
  "PYTHON_FROZEN_MODULES",
  "PYTHON_GIL",
  "PYTHON_COLORS",
  "PYTHON_BASIC_REPL",
  "PYTHON_HISTORY",
  "PYTHON_JIT",
  "PYTHON_TLBC",
];

/** Variables the transform always gets, from lakerun's own environment. */
const BASE_ENV = ["PATH", "TZ", ...LOCALE_ENV, ...PYTHON_ENV];

/** Variable names a routine may list in `py_exec_env`. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The environment variables a step running a transform reads (to pass them on), for its permission scope:
 * the base set, with wildcards, then the routine's `py_exec_env`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pyExecEnvScope } from "./py_exec.ts";
 *
 * assert.deepEqual(pyExecEnvScope(["MY_TOKEN"]), ["PATH", "LANG", "LC_*", "TZ", "PYTHON*", "MY_TOKEN"]);
 * ```
 */
export function pyExecEnvScope(declared: readonly string[]): string[] {
  return [...new Set(["PATH", "LANG", "LC_*", "TZ", "PYTHON*", ...declared])];
}

/** The prelude's path, for the step's read scope (the Worker reads it to hand it to the interpreter). */
export function preludePath(): string | undefined {
  return PRELUDE_URL.protocol === "file:" ? fileURLToPath(PRELUDE_URL) : undefined;
}

/**
 * The permission scope a step needs to run a transform: read `py_exec_path` and the prelude, run the
 * interpreter, read the variables it passes on.
 */
export function pyExecScope(
  params: { python: string; py_exec_env: readonly string[] },
  folder: string,
): PermissionScope {
  const prelude = preludePath();
  return {
    read: prelude ? [folder, prelude] : [folder],
    run: [params.python],
    env: pyExecEnvScope(params.py_exec_env),
  };
}

/**
 * The transform's environment: the variables of {@link pyExecEnvScope} that are set in `source`, then a
 * private `TMPDIR` and `HOME` (a `HOME` named in `declared` is passed instead of the private one).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { minimalEnv } from "./py_exec.ts";
 *
 * const shell: Record<string, string> = {
 *   PATH: "/usr/bin",
 *   LANG: "C.UTF-8",
 *   PYTHONUTF8: "1",
 *   AWS_SECRET_ACCESS_KEY: "s3cr3t",
 *   MY_TOKEN: "t0k3n",
 * };
 * const env = minimalEnv((name) => shell[name], ["MY_TOKEN"], { tmp: "/state/tmp", home: "/state/home" });
 * assert.deepEqual(env, {
 *   PATH: "/usr/bin",
 *   LANG: "C.UTF-8",
 *   PYTHONUTF8: "1",
 *   MY_TOKEN: "t0k3n",
 *   TMPDIR: "/state/tmp",
 *   HOME: "/state/home",
 * });
 * ```
 */
export function minimalEnv(
  source: (name: string) => string | undefined,
  declared: readonly string[],
  folders: { tmp: string; home: string },
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...BASE_ENV, ...declared]) {
    const value = source(name);
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= "/usr/local/bin:/usr/bin:/bin";
  env.TMPDIR = folders.tmp;
  if (!declared.includes("HOME")) env.HOME = folders.home;
  return env;
}

/** What a run of the transform needs. */
export interface PyExecOptions {
  /** The interpreter, looked up on `PATH`. */
  python: string;
  /** `py_exec_path`, absolute: the folder holding `py_exec.py`. */
  folder: string;
  /** The folder the transform reads (the landing folder, or a local copy of it). */
  parent: string;
  /** The folder it writes (empty, made by the caller). */
  output: string;
  /** `py_exec_args`. */
  args: Record<string, unknown>;
  /** `py_exec_env`. */
  env: readonly string[];
  sandbox: PySandboxMode;
  /** The step's state folder: the private `TMPDIR` and `HOME` are made in it, and removed after. */
  stateDir: string;
  /** The interpreter's working folder. */
  cwd: string;
  signal: AbortSignal;
  log(message: string): void;
}

/** What the prelude reported about its confinement. */
interface Confinement {
  abi: number;
  python: string[];
  read: string[];
  write: string[];
  run: string[];
  network: boolean;
  scoped: boolean;
}

/** One line of the prelude's protocol on standard error. */
type PreludeReport =
  | { confined: Confinement }
  | { unconfined: string }
  | { unconfinable: string }
  | { refused: { access: string | null; target: string | null; sandbox: boolean }; error: string }
  | { probe: { abi: number | null; reason: string | null; python: string[]; run: string[] } };

const MARK = "lakerun-prelude: ";

let preludeText: string | undefined;

async function prelude(): Promise<string> {
  return preludeText ??= await Deno.readTextFile(PRELUDE_URL);
}

/**
 * Runs `py_exec.main(parent, output, **args)` from `folder` in the sandbox `options.sandbox` asks for; the
 * transform's standard output is logged line by line. Throws when it fails, naming a refused access.
 */
export async function runPyExec(options: PyExecOptions): Promise<void> {
  const source = await prelude();
  const privateDir = join(options.stateDir, `${TEMP_PREFIX}py_exec-${crypto.randomUUID()}`);
  const folders = { tmp: join(privateDir, "tmp"), home: join(privateDir, "home") };
  await Deno.mkdir(folders.tmp, { recursive: true });
  await Deno.mkdir(folders.home, { recursive: true });
  try {
    const spec = {
      mode: options.sandbox,
      lifeline: true, // the transform ends when lakerun does, however it ends (see runPrelude)
      folder: options.folder,
      parent: options.parent,
      dump: options.output,
      args: options.args,
      read: [options.folder, options.parent],
      write: [options.output, folders.tmp, folders.home],
    };
    const env = minimalEnv((name) => Deno.env.get(name), options.env, folders);
    await runPrelude(options, source, spec, env);
  } finally {
    await Deno.remove(privateDir, { recursive: true }).catch(() => {});
  }
}

async function runPrelude(
  options: PyExecOptions,
  source: string,
  spec: Record<string, unknown>,
  env: Record<string, string>,
): Promise<void> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(options.python, {
      args: ["-c", source, JSON.stringify(spec)],
      cwd: options.cwd,
      clearEnv: true,
      env,
      // the lifeline: held open, never written; the prelude ends the transform at its end of file, which the
      // kernel gives when this process is gone (even after SIGKILL), so no transform outlives lakerun
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal: options.signal,
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`${options.python} not found on PATH (needed by py_exec_path)`);
    }
    throw error;
  }
  const stderr: string[] = [];
  const reports: PreludeReport[] = [];
  const lifeline = child.stdin.getWriter();
  const [status] = await Promise.all([
    child.status.finally(() => lifeline.close().catch(() => {})),
    pumpLines(child.stdout, (line) => options.log(`py_exec: ${line}`)),
    pumpLines(child.stderr, (line) => {
      const report = protocolLine(line);
      if (report) {
        reports.push(report);
        if (reports.length === 1) options.log(describeReport(report));
        return;
      }
      stderr.push(line);
      if (stderr.length > 20) stderr.shift();
    }),
  ]);
  const unconfinable = reports.find((r) => "unconfinable" in r);
  if (unconfinable && "unconfinable" in unconfinable && status.code === 3) {
    throw new Error(
      `py_exec_sandbox is 'required' but this machine cannot confine the transform: ${unconfinable.unconfinable}; the transform did not run`,
    );
  }
  if (status.success) return;
  // stopped by the run (an interruption, the step's timeout): that, not the exit code it caused, is the reason
  options.signal.throwIfAborted();
  const refusal = reports.findLast((r) => "refused" in r);
  if (refusal && "refused" in refusal) {
    const { access, target, sandbox } = refusal.refused;
    if (sandbox && access && target) {
      throw new Error(
        `permission denied: py_exec: ${access} access to ${target} is outside the transform's sandbox`,
      );
    }
  }
  const tail = stderr.filter((l) => l.trim()).slice(-5).join(" | ");
  throw new Error(`py_exec failed (exit ${status.code})${tail ? `: ${tail}` : ""}`);
}

/** The prelude's report in a line of standard error, if it is one. */
function protocolLine(line: string): PreludeReport | undefined {
  if (!line.startsWith(MARK)) return undefined;
  try {
    return JSON.parse(line.slice(MARK.length));
  } catch {
    return undefined;
  }
}

/**
 * The line the task logs about the transform's confinement.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeConfinement } from "./py_exec.ts";
 *
 * const line = describeConfinement({
 *   abi: 7,
 *   python: ["/usr"],
 *   read: ["/work/tx", "/work/landing"],
 *   write: [
 *     "/work/staging/.lakerun-tmp-transform-1",
 *     "/state/.lakerun-tmp-py_exec-2/tmp",
 *     "/state/.lakerun-tmp-py_exec-2/home",
 *   ],
 *   run: ["/usr/bin/python3.12"],
 *   network: true,
 *   scoped: true,
 * });
 * assert.equal(
 *   line,
 *   "transform confined by Landlock ABI 7: read the Python installation (/usr), system libraries, " +
 *     "/work/tx, /work/landing; write /work/staging/.lakerun-tmp-transform-1, a private TMPDIR and HOME; " +
 *     "run /usr/bin/python3.12 only; no network (TCP); no signals or abstract sockets outside",
 * );
 * ```
 */
export function describeConfinement(c: Confinement): string {
  const write = c.write.filter((path) => !path.includes(`/${TEMP_PREFIX}py_exec-`));
  return [
    `transform confined by Landlock ABI ${c.abi}: read the Python installation (${
      c.python.slice(0, 1).join("")
    }), system libraries, ${c.read.join(", ")}`,
    `write ${[...write, "a private TMPDIR and HOME"].join(", ")}`,
    `run ${c.run.join(", ")} only`,
    c.network ? "no network (TCP)" : "network NOT confined (needs Landlock ABI 4, Linux 6.7)",
    ...(c.scoped ? ["no signals or abstract sockets outside"] : []),
  ].join("; ");
}

function describeReport(report: PreludeReport): string {
  if ("confined" in report) return describeConfinement(report.confined);
  if ("unconfined" in report) {
    return `transform NOT confined: ${report.unconfined}; it runs with your user's rights (minimal environment only)`;
  }
  if ("unconfinable" in report) return `transform cannot be confined: ${report.unconfinable}`;
  return JSON.stringify(report);
}

async function pumpLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + text).split("\n");
    rest = lines.pop()!;
    lines.forEach(onLine);
  }
  if (rest) onLine(rest);
}

/** What `lakerun plan` needs to describe a transform step. */
export interface PyExecPlan {
  python: string;
  sandbox: PySandboxMode;
  /** `py_exec_path`, absolute. */
  folder: string;
  /** `parent_directory`, resolved (or an `s3://` URL). */
  parent: string;
  /** `dump_directory`, resolved (or an `s3://` URL). */
  dump: string;
  env: readonly string[];
  cwd: string;
}

/**
 * Lines for `lakerun plan`: how the transform will be confined on this machine. Asks the interpreter (the
 * prelude's probe: the kernel's Landlock ABI, the Python installation), so it runs in lakerun's own process.
 */
export async function planPyExec(plan: PyExecPlan): Promise<string[]> {
  const env = `env    ${pyExecEnvScope(plan.env).join(", ")}, and a private TMPDIR and HOME`;
  const head = `py_exec transform (py_exec_sandbox: ${plan.sandbox})`;
  if (plan.sandbox === "off") {
    return [`${head}: NOT confined (unsafe: it runs with your user's rights)`, `  ${env}`];
  }
  const probe = await probeSandbox(plan.python, plan.cwd);
  if (typeof probe === "string") return [`${head}: ${probe}`, `  ${env}`];
  if (probe.abi === null) {
    return plan.sandbox === "required"
      ? [
        `${head}: this machine cannot confine it (${probe.reason}): transfer will fail before the transform runs`,
        `  ${env}`,
      ]
      : [
        `${head}: NOT confined on this machine (${probe.reason}): it runs with your user's rights`,
        `  ${env}`,
      ];
  }
  const s3 = (location: string) => /^s3:\/\//i.test(location);
  const parent = s3(plan.parent) ? `a local copy of ${plan.parent}` : plan.parent;
  const output = s3(plan.dump) ? `a local folder uploaded to ${plan.dump}` : `a new folder in ${plan.dump}`;
  return [
    `${head}: confined by Landlock ABI ${probe.abi} on this machine`,
    `  read   the Python installation (${probe.python[0]}), system libraries, ${plan.folder}, ${parent}`,
    `  write  its output (${output}), a private TMPDIR and HOME in the step's state folder`,
    `  run    ${probe.run[0] ?? plan.python} only`,
    probe.abi >= 4
      ? `  net    - (no TCP bind or connect)`
      : `  net    NOT confined (Landlock ABI ${probe.abi}: network rules need ABI 4, Linux 6.7)`,
    `  ${env}`,
  ];
}

/** The prelude's probe: this machine's Landlock ABI (or why there is none), or why the probe failed. */
async function probeSandbox(
  python: string,
  cwd: string,
): Promise<{ abi: number | null; reason: string | null; python: string[]; run: string[] } | string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(python, {
      args: ["-c", await prelude(), JSON.stringify({ probe: true })],
      cwd,
      clearEnv: true,
      env: minimalEnv((name) => Deno.env.get(name), [], { tmp: "/nonexistent", home: "/nonexistent" }),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return `${python} not found on PATH; transfer will fail`;
    throw error;
  }
  const lines = new TextDecoder().decode(output.stderr).split("\n");
  for (const line of lines) {
    const report = protocolLine(line);
    if (report && "probe" in report) return report.probe;
  }
  return `the probe of ${python} failed (exit ${output.code}): ${
    lines.filter((l) => l.trim()).slice(-1)[0] ?? ""
  }`;
}
