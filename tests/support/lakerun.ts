/**
 * Test helpers: run the `lakerun` command line as a user would, or a routine in-process with captured output.
 *
 * @module
 */
import { join } from "node:path";
import { consoleReporter } from "../../orchestrator/cli/reporter.ts";
import { parseRoutine } from "../../orchestrator/routine/routine.ts";
import { runRoutine } from "../../orchestrator/run/runner.ts";
import { treeOf } from "./trees.ts";

/** The repository root. */
export const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** What a `lakerun` process did. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link lakerunCommand}. */
export interface CommandOptions {
  cwd?: string;
  env?: Record<string, string>;
  stdout?: "piped" | "null";
  stderr?: "piped" | "null";
}

/**
 * The command `deno run -A main.ts ARGS` in `cwd`, as the README shows; spawn it to kill it mid-run.
 *
 * @example
 * ```ts ignore
 * const child = lakerunCommand(["run", "routine.json"], { cwd: dir, stdout: "null" }).spawn();
 * child.kill("SIGKILL");
 * ```
 */
export function lakerunCommand(args: string[], options: CommandOptions = {}): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "--config", join(ROOT, "deno.json"), join(ROOT, "main.ts"), ...args],
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: options.stdout ?? "piped",
    stderr: options.stderr ?? "piped",
  });
}

/**
 * Runs `deno run -A main.ts ARGS` in `cwd`, as the README shows, and collects its output.
 *
 * @example
 * ```ts ignore
 * const { code, stdout } = await lakerun(["--version"]);
 * ```
 */
export async function lakerun(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const output = await lakerunCommand(args, options).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/**
 * Validates and runs routine JSON in-process (each step still in its Worker); returns the console lines and
 * the error, if any.
 *
 * @example
 * ```ts ignore
 * const { lines, error } = await runRoutineJson({ routine_name: "t", executors: {} }, { cwd: dir });
 * ```
 */
export async function runRoutineJson(
  routine: unknown,
  options: { cwd: string; executorDirs?: string[] },
): Promise<{ lines: string[]; error?: Error }> {
  const lines: string[] = [];
  const parsed = await parseRoutine(JSON.stringify(routine), {
    file: join(options.cwd, "routine.json"),
    label: "routine.json",
    cwd: options.cwd,
    executorDirs: options.executorDirs,
  });
  try {
    await runRoutine(parsed, {
      cwd: options.cwd,
      reporter: consoleReporter({ write: (line) => lines.push(line) }),
    });
    return { lines };
  } catch (error) {
    return { lines, error: error as Error };
  }
}

/** A fresh temporary folder, removed by the returned function. */
export async function tempDir(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: "lakerun-test-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/**
 * Every file under `dir` with its text (temporary names included; a symbolic link as `<symlink>`; `{}` when
 * `dir` does not exist), for tests that read what lakerun wrote. To compare folders or S3 prefixes with what
 * they should hold, use `treeOf` and `digests` (tests/support/trees.ts), which this walks with.
 */
export async function readTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of Object.keys(await treeOf(dir, { temporaries: true }))) {
    const full = join(dir, path);
    out[path] = (await Deno.lstat(full)).isSymlink ? "<symlink>" : await Deno.readTextFile(full);
  }
  return out;
}
