/**
 * What can be proved here about `deno compile` (which cannot run on these machines: it downloads the `denort`
 * runtime): the module graph builds, and the compile task's `--include` list covers every module and file
 * that lakerun loads by URL at run time rather than by static import (step Workers, the demo's files).
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import denoConfig from "../deno.json" with { type: "json" };
import { builtinExecutors } from "../executors/registry.ts";
import { ROOT } from "./support/lakerun.ts";

const includes = [...denoConfig.tasks.compile.matchAll(/--include (\S+)/g)].map((m) => m[1]);
const covered = (path: string) =>
  includes.some((inc) => (inc.endsWith("/") ? path.startsWith(inc) : path === inc));

async function graphOf(module: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), { args: ["info", "--json", module], cwd: ROOT })
    .output();
  assert.ok(output.success, `deno info ${module} failed: ${new TextDecoder().decode(output.stderr)}`);
  const info = JSON.parse(new TextDecoder().decode(output.stdout));
  for (const m of info.modules) assert.equal(m.error, undefined, `${m.specifier}: ${m.error}`);
  return info.modules
    .map((m: { specifier: string }) => m.specifier)
    .filter((s: string) => s.startsWith("file://"))
    .map((s: string) => relative(ROOT, new URL(s).pathname));
}

Deno.test("the module graph of main.ts builds without errors", async () => {
  const graph = await graphOf("main.ts");
  for (
    const module of [
      "orchestrator/run/runner.ts",
      "executors/registry.ts",
      "executors/downloader/mod.ts",
      "executors/staging/mod.ts",
    ]
  ) {
    assert.ok(graph.includes(module), `${module} is in the graph`);
  }
});

Deno.test("every module a step Worker loads is embedded: in main.ts's graph or in --include", async () => {
  const mainGraph = new Set(await graphOf("main.ts"));
  const workerRoots = [
    "orchestrator/run/step_worker.ts",
    ...Object.values(builtinExecutors).map((e) => relative(ROOT, new URL(e.url).pathname)),
  ];
  for (const root of workerRoots) {
    for (const module of await graphOf(root)) {
      assert.ok(
        mainGraph.has(module) || covered(module),
        `${module} (loaded by a step Worker) is neither in main.ts's graph nor --include'd`,
      );
    }
  }
  assert.ok(
    covered("orchestrator/run/step_worker.ts"),
    "the Worker runtime is loaded by URL, so it must be --include'd",
  );
});

Deno.test("every file read through import.meta.url at run time is --include'd", async () => {
  const sources: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(join(ROOT, dir))) {
      if (entry.isDirectory) await walk(`${dir}/${entry.name}`);
      else if (entry.name.endsWith(".ts")) sources.push(`${dir}/${entry.name}`);
    }
  };
  for (const dir of ["orchestrator", "executors", "lib", "sdk"]) await walk(dir);
  let found = 0;
  for (const source of sources) {
    const text = await Deno.readTextFile(join(ROOT, source));
    for (const match of text.matchAll(/new URL\("([^"]+)", import\.meta\.url\)/g)) {
      const target = relative(ROOT, join(ROOT, source, "..", match[1]));
      found++;
      assert.ok(
        covered(target) || target.endsWith(".ts"),
        `${source} reads ${target} at run time; add --include ${target}`,
      );
    }
  }
  assert.ok(found >= 3, "the scan found the demo's files and the Worker runtime");
});
