/**
 * Finds executors by name: the built-in registry first, then plugin folders. Names from a routine are data:
 * they are matched against the registry's own keys or against file names inside the plugin folders, and are
 * never used as a property lookup, an import path or a URL.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { builtinExecutors } from "../executors/registry.ts";
import type { ExecutorDefinition } from "../sdk/executor.ts";

/** An executor ready to validate params and run in a Worker. */
export interface ResolvedExecutor {
  name: string;
  definition: ExecutorDefinition;
  /** Module URL the step Worker imports. */
  moduleUrl: string;
  /** `builtin`, or the plugin folder it came from. */
  source: string;
}

/** A plugin file that exists but is not a valid executor module. */
export class PluginError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PluginError";
  }
}

/** Executor names a plugin folder can provide: letters, digits and `_`, starting with a letter. */
export const PLUGIN_NAME = /^[A-Za-z][A-Za-z0-9_]{0,99}$/;

/** Looks executors up by name in the built-in registry and then in plugin folders. */
export class ExecutorCatalog {
  readonly #pluginDirs: string[];
  readonly #cache = new Map<string, Promise<ResolvedExecutor | undefined>>();

  constructor(pluginDirs: string[] = []) {
    this.#pluginDirs = pluginDirs.map((dir) => resolve(dir));
  }

  /** Plugin folders searched, in order. */
  get pluginDirs(): readonly string[] {
    return this.#pluginDirs;
  }

  /** The executor called `name`, or `undefined`. */
  find(name: string): Promise<ResolvedExecutor | undefined> {
    let found = this.#cache.get(name);
    if (!found) {
      found = this.#load(name);
      this.#cache.set(name, found);
    }
    return found;
  }

  /** Every executor name available: built-ins, then plugins. */
  async names(): Promise<string[]> {
    const names = Object.keys(builtinExecutors);
    for (const dir of this.#pluginDirs) {
      for (const name of await pluginNamesIn(dir)) if (!names.includes(name)) names.push(name);
    }
    return names;
  }

  async #load(name: string): Promise<ResolvedExecutor | undefined> {
    if (Object.hasOwn(builtinExecutors, name)) {
      const entry = builtinExecutors[name];
      const module = await entry.load();
      return { name, definition: module.default, moduleUrl: entry.url, source: "builtin" };
    }
    if (!PLUGIN_NAME.test(name)) return undefined;
    for (const dir of this.#pluginDirs) {
      for (const file of [join(dir, `${name}.ts`), join(dir, name, "mod.ts")]) {
        if (!(await isFile(file))) continue;
        const moduleUrl = new URL(`file://${file}`).href;
        let module: { default?: unknown };
        try {
          module = await import(moduleUrl);
        } catch (error) {
          throw new PluginError(`plugin ${file} failed to load: ${(error as Error).message}`);
        }
        const definition = module.default;
        const problem = definitionProblem(definition, name);
        if (problem) throw new PluginError(`plugin ${file}: ${problem}`);
        return { name, definition: definition as ExecutorDefinition, moduleUrl, source: dir };
      }
    }
    return undefined;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isFile;
  } catch {
    return false;
  }
}

async function pluginNamesIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const name = entry.isFile ? entry.name.replace(/\.ts$/, "") : entry.name;
      if (
        PLUGIN_NAME.test(name) &&
        (entry.isDirectory ? await isFile(join(dir, name, "mod.ts")) : entry.name.endsWith(".ts"))
      ) {
        names.push(name);
      }
    }
  } catch {
    // a missing plugin folder is reported by validation, not here
  }
  return names.sort();
}

/** Why `value` is not a valid executor definition named `name`, or `undefined`. */
export function definitionProblem(value: unknown, name: string): string | undefined {
  if (typeof value !== "object" || value === null) return "has no default-exported executor definition";
  const d = value as Partial<ExecutorDefinition>;
  if (d.name !== name) {
    return `default export is named ${JSON.stringify(d.name)}, expected ${JSON.stringify(name)}`;
  }
  if (typeof d.description !== "string") return "definition has no description";
  if (typeof d.params !== "function") return "definition's params must be a function (zod) => schema";
  if (typeof d.permissions !== "function") return "definition has no permissions(params) function";
  if (typeof d.tasks !== "object" || d.tasks === null) return "definition has no task table";
  for (const [task, entry] of Object.entries(d.tasks)) {
    if (typeof entry?.run !== "function") return `task '${task}' has no run function`;
  }
  return undefined;
}
