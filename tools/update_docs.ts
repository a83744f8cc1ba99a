/**
 * Regenerates the documentation that is derived from the executors' param schemas: the executor reference
 * in README.md and `schema/routine.schema.json`. Run with `deno task docs`; tests fail when either is stale.
 *
 * @module
 */
import { ExecutorCatalog } from "../orchestrator/executors.ts";
import { executorReferenceMarkdown, routineJsonSchema } from "../orchestrator/routine/schema.ts";

const root = new URL("../", import.meta.url);
const catalog = new ExecutorCatalog();

const schemaFile = new URL("schema/routine.schema.json", root);
await Deno.writeTextFile(schemaFile, JSON.stringify(await routineJsonSchema(catalog), null, 2) + "\n");

const readmeFile = new URL("README.md", root);
const readme = await Deno.readTextFile(readmeFile);
const start = "<!-- executor-reference:start -->";
const end = "<!-- executor-reference:end -->";
const from = readme.indexOf(start);
const to = readme.indexOf(end);
if (from < 0 || to < from) throw new Error("README.md has no executor-reference markers");
const reference = (await executorReferenceMarkdown(catalog)).trim();
await Deno.writeTextFile(
  readmeFile,
  `${readme.slice(0, from + start.length)}\n\n${reference}\n\n${readme.slice(to)}`,
);
console.log("updated README.md executor reference and schema/routine.schema.json");
