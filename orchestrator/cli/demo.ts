/**
 * `lakerun demo`: runs the offline demo routine (`routines/demo.json`) against its sample archive, served on
 * loopback, in a folder of its own. Needs no network and nothing but lakerun.
 *
 * @module
 */
import { basename, delimiter, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type CommandOptions, runLoadedRoutine } from "./commands.ts";
import { parseRoutine } from "../routine/routine.ts";
import { UsageError } from "../errors.ts";

const DEMO_ROUTINE = new URL("../../routines/demo.json", import.meta.url);
const DEMO_ARCHIVE = new URL("../../routines/demo/retail_trade_survey.zip", import.meta.url);

/** The routine the demo ran, written into its folder, so that `plan` shows what each step got. */
const DEMO_FILE = "demo.json";

/**
 * Serves the demo archive on 127.0.0.1 and runs the demo routine in `dir` (default `./lakerun-demo`). The
 * routine as run (its URL on the port the archive was served on) is written to `dir/demo.json`, and the last
 * line is the command that plans it, which works from any folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { demoCommand } from "./demo.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const lines: string[] = [];
 * await demoCommand({ executorDirs: [], debug: false, dir, write: (line) => lines.push(line) });
 * assert.ok(lines.some((line) => line.startsWith("✓ done in ")));
 * assert.match(lines.at(-1)!, / plan demo\.json$/);
 * assert.ok(lines.at(-1)!.startsWith(`See the permissions each step got: cd ${dir} && `));
 * const staged = await Array.fromAsync(Deno.readDir(`${dir}/data/staging`), (entry) => entry.name);
 * assert.deepEqual(staged.sort(), [
 *   "regional",
 *   "retail-trade-survey-inventories.csv",
 *   "retail-trade-survey-sales.csv",
 * ]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function demoCommand(options: CommandOptions & { dir?: string }): Promise<void> {
  const dir = resolve(options.dir ?? "lakerun-demo");
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (error) {
    throw new UsageError(
      `--dir ${options.dir ?? "lakerun-demo"}: cannot make the demo's folder: ${reason(error)}`,
    );
  }
  const archive = await Deno.readFile(DEMO_ARCHIVE);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    if (new URL(request.url).pathname !== "/retail_trade_survey.zip") {
      return new Response("not found", { status: 404 });
    }
    return new Response(archive, {
      headers: {
        "content-type": "application/zip",
        "content-length": String(archive.byteLength),
        "accept-ranges": "bytes",
      },
    });
  });
  try {
    const routineDoc = JSON.parse(await Deno.readTextFile(DEMO_ROUTINE));
    routineDoc.executors.DownloaderExecutor.params.requests_arguments.url =
      `http://127.0.0.1:${server.addr.port}/retail_trade_survey.zip`;
    delete routineDoc.$schema; // relative to routines/, not to dir

    const text = `${JSON.stringify(routineDoc, null, 2)}\n`;
    const file = join(dir, DEMO_FILE);
    await Deno.writeTextFile(file, text);
    const routine = await parseRoutine(text, {
      file,
      label: join(options.dir ?? "lakerun-demo", DEMO_FILE),
      executorDirs: options.executorDirs,
    });
    const write = options.write ?? ((line: string) => console.log(line));
    write(`demo: serving the sample archive on http://127.0.0.1:${server.addr.port}/, working in ${dir}`);
    await runLoadedRoutine(routine, {
      ...options,
      cwd: dir,
      stateDir: options.stateDir ?? resolve(dir, ".lakerun"),
    });
    write("");
    write(`files now in ${dir}/data:`);
    for (const line of await tree(resolve(dir, "data"))) write(`  ${line}`);
    write("");
    // the routine's paths are relative to the folder it ran in: plan it from there
    const plan = [...(await lakerunCommand()), "plan", DEMO_FILE].map(shellWord).join(" ");
    write(`See the permissions each step got: cd ${shellWord(dir)} && ${plan}`);
  } finally {
    await server.shutdown();
  }
}

async function tree(root: string, prefix = ""): Promise<string[]> {
  const lines: string[] = [];
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const entry of Deno.readDir(root)) if (!entry.name.startsWith(".")) entries.push(entry);
  } catch {
    return lines;
  }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    if (entry.isDirectory) {
      lines.push(`${prefix}${entry.name}/`);
      lines.push(...(await tree(`${root}/${entry.name}`, `${prefix}  `)));
    } else {
      const size = (await Deno.lstat(`${root}/${entry.name}`)).size;
      lines.push(`${prefix}${entry.name}  (${size} bytes)`);
    }
  }
  return lines;
}

/**
 * The command that starts this lakerun, as words that work from any folder: the binary itself when compiled,
 * else Deno (by name when `deno` on the PATH is this one), `run -A`, the config and main module of this
 * lakerun (as `deno install` and `deno task` start it).
 */
export async function lakerunCommand(): Promise<string[]> {
  const deno = Deno.execPath();
  if (Deno.build.standalone) return [deno];
  const main = Deno.mainModule.startsWith("file:") ? fileURLToPath(Deno.mainModule) : Deno.mainModule;
  // a path for the hint, never read (a compiled binary returned above)
  const config = resolve(fileURLToPath(import.meta.url), "../../../deno.json");
  return [await onPath(deno) ?? deno, "run", "-A", "--config", config, main];
}

/** The name `program` is found by on the PATH (`deno`), or `undefined` when that name finds another program. */
async function onPath(program: string): Promise<string | undefined> {
  const name = basename(program);
  const real = await Deno.realPath(program).catch(() => program);
  for (const folder of (Deno.env.get("PATH") ?? "").split(delimiter)) {
    if (!folder) continue;
    const found = await Deno.realPath(join(folder, name)).catch(() => undefined);
    if (found !== undefined) return found === real ? name.replace(/\.exe$/i, "") : undefined;
  }
  return undefined;
}

/**
 * `word` as one word of a shell command line: as it is when it holds only safe characters, else in single
 * quotes (double quotes on Windows).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shellWord } from "./demo.ts";
 *
 * assert.equal(shellWord("/tmp/lakerun-demo"), "/tmp/lakerun-demo");
 * assert.equal(shellWord("/tmp/my demo"), Deno.build.os === "windows" ? '"/tmp/my demo"' : "'/tmp/my demo'");
 * if (Deno.build.os !== "windows") assert.equal(shellWord("it's"), "'it'\\''s'");
 * ```
 */
export function shellWord(word: string): string {
  if (/^[\w@%+=:,./-]+$/.test(word)) return word;
  if (Deno.build.os === "windows") return `"${word.replaceAll('"', '""')}"`;
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/** The operating system's reason, without its code and the path (the message names the folder). */
function reason(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  const text = message.replace(/\s*\(os error \d+\)[\s\S]*$/, "").split("\n")[0];
  return text.charAt(0).toLowerCase() + text.slice(1);
}
