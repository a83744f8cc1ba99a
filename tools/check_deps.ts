/**
 * The dependency check `deno task check` runs (std's `lint:circular`, plus lakerun's layering):
 *
 * - `lib/` imports only `lib/`, `node:` built-ins and npm packages: it knows nothing of routines or executors;
 * - `sdk/` (the executor contract) imports only `lib/`;
 * - an executor imports only `sdk/`, `lib/` and its own folder; `executors/registry.ts` only the executors;
 * - `orchestrator/` never imports an executor: it reaches them through `executors/registry.ts`;
 * - no import circle anywhere (type-only imports included).
 *
 * Usage: `deno run --allow-read tools/check_deps.ts [ROOT]`; prints one line per problem and exits 1 when
 * there is any.
 *
 * @module
 */
import { dirname, join, normalize, relative } from "node:path";

/** A module of the project and the project modules it imports. */
export type ImportGraph = Map<string, string[]>;

const SOURCE_DIRS = ["lib", "sdk", "executors", "orchestrator"];
const ROOT_FILES = ["main.ts"];

/** Reads every `.ts` module under the project's source folders (and main.ts) with its relative imports. */
export async function importGraph(root: string): Promise<ImportGraph> {
  const graph: ImportGraph = new Map();
  const files: string[] = [...ROOT_FILES];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(join(root, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) files.push(path);
    }
  };
  for (const dir of SOURCE_DIRS) {
    try {
      await walk(dir);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  for (const file of files) {
    let text: string;
    try {
      text = await Deno.readTextFile(join(root, file));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw error;
    }
    graph.set(file, importsOf(text).map((spec) => normalize(join(dirname(file), spec))));
  }
  return graph;
}

/**
 * The relative module specifiers a source imports or re-exports, statically or by a literal `import()`,
 * outside comments.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { importsOf } from "./check_deps.ts";
 *
 * const source = `import type { A } from "./a.ts";\nexport * from "../b.ts";\n// import "./c.ts";\nconst d = await import("./d.ts");\nimport { z } from "zod";`;
 * assert.deepEqual(importsOf(source), ["./a.ts", "../b.ts", "./d.ts"]);
 * ```
 */
export function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const specs: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm;
  for (const match of code.matchAll(pattern)) specs.push(match[1]);
  return specs;
}

/** The layer a project module belongs to. */
function layerOf(path: string): string {
  if (path === "executors/registry.ts") return "registry";
  return path.split("/")[0];
}

/** The executor folder of a module under `executors/` (`executors/staging`), or the file itself. */
function executorUnit(path: string): string {
  const parts = path.split("/");
  return parts.length > 2 ? parts.slice(0, 2).join("/") : path;
}

/** Problems with the layering rules, one line each. */
export function layeringProblems(graph: ImportGraph): string[] {
  const problems: string[] = [];
  for (const [from, targets] of graph) {
    const layer = layerOf(from);
    for (const to of targets) {
      const target = layerOf(to);
      let allowed: boolean;
      switch (layer) {
        case "lib":
          allowed = target === "lib";
          break;
        case "sdk":
          allowed = target === "lib" || target === "sdk";
          break;
        case "executors":
          allowed = target === "lib" || target === "sdk" ||
            (target === "executors" && executorUnit(from) === executorUnit(to));
          break;
        case "registry":
          allowed = target === "sdk" || target === "executors";
          break;
        case "orchestrator":
          allowed = target !== "executors";
          break;
        default:
          allowed = true;
      }
      if (!allowed) problems.push(`${from} imports ${to}: ${RULES[layer]}`);
    }
  }
  return problems;
}

const RULES: Record<string, string> = {
  lib: "lib/ imports only lib/, node: built-ins and npm packages",
  sdk: "sdk/ imports only lib/",
  executors: "an executor imports only sdk/, lib/ and its own folder",
  registry: "executors/registry.ts imports only sdk/ and the executors",
  orchestrator: "the orchestrator reaches executors only through executors/registry.ts",
};

/**
 * Every import circle, as the list of modules around it (Tarjan's strongly connected components).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { importCycles } from "./check_deps.ts";
 *
 * const graph = new Map([["a.ts", ["b.ts"]], ["b.ts", ["a.ts"]], ["c.ts", ["a.ts"]]]);
 * assert.deepEqual(importCycles(graph), [["a.ts", "b.ts"]]);
 * ```
 */
export function importCycles(graph: ImportGraph): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const lowlinks = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string) => {
    indices.set(node, index);
    lowlinks.set(node, index++);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        if (!graph.has(next)) continue;
        visit(next);
        lowlinks.set(node, Math.min(lowlinks.get(node)!, lowlinks.get(next)!));
      } else if (onStack.has(next)) {
        lowlinks.set(node, Math.min(lowlinks.get(node)!, indices.get(next)!));
      }
    }
    if (lowlinks.get(node) === indices.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      const selfImport = graph.get(node)?.includes(node) ?? false;
      if (component.length > 1 || selfImport) cycles.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!indices.has(node)) visit(node);
  return cycles;
}

/** Every problem of the project at `root`: layering, then circles. */
export async function dependencyProblems(root: string): Promise<string[]> {
  const graph = await importGraph(root);
  return [
    ...layeringProblems(graph),
    ...importCycles(graph).map((cycle) => `import circle among: ${cycle.join(", ")}`),
  ];
}

if (import.meta.main) {
  const root = Deno.args[0] ?? join(dirname(new URL(import.meta.url).pathname), "..");
  const problems = await dependencyProblems(root);
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) Deno.exit(1);
  console.log(`dependencies: ${(await importGraph(root)).size} modules, layering kept, no import circle`);
  void relative;
}
