/**
 * `lakerun demo`: runs the offline demo routine (`routines/demo.json`) against its sample archive, served on
 * loopback, in a folder of its own. Needs no network and nothing but lakerun.
 *
 * @module
 */
import { resolve } from "node:path";
import { type CommandOptions, runLoadedRoutine } from "./commands.ts";
import { parseRoutine } from "../routine/routine.ts";

const DEMO_ROUTINE = new URL("../../routines/demo.json", import.meta.url);
const DEMO_ARCHIVE = new URL("../../routines/demo/retail_trade_survey.zip", import.meta.url);

/**
 * Serves the demo archive on 127.0.0.1 and runs the demo routine in `dir` (default `./lakerun-demo`).
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
    await Deno.mkdir(dir, { recursive: true });
    const routine = await parseRoutine(JSON.stringify(routineDoc, null, 2), {
      file: DEMO_ROUTINE.pathname,
      label: "routines/demo.json",
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
    write("See the permissions each step got: deno run -A main.ts plan routines/demo.json");
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
