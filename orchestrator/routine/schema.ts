/**
 * Generates documentation from the executors' param schemas: the JSON Schema of routine files (for editors)
 * and the executor reference shown by `lakerun list` and kept in the README.
 *
 * @module
 */
import { z } from "zod";
import type { ExecutorDefinition, TaskDefinition } from "../../sdk/executor.ts";
import { AWS_ROUTINE_BLOCKS } from "../../lib/aws/settings.ts";
import type { ExecutorCatalog } from "../executors.ts";
import { paramsSchemaOf } from "./routine.ts";
import { stepOptionsSchema } from "./step_options.ts";

type JsonSchema = Record<string, any>;

/**
 * `schema` with every tuple closed: zod writes a fixed-length tuple as `prefixItems` alone, which draft 2020-12
 * reads as "at least nothing, then anything"; lakerun refuses other lengths, so the schema says so
 * (`minItems`, `items: false`).
 */
function closeTuples(schema: JsonSchema): JsonSchema {
  if (Array.isArray(schema)) {
    schema.forEach((item) => typeof item === "object" && item !== null && closeTuples(item));
    return schema;
  }
  for (const value of Object.values(schema)) {
    if (typeof value === "object" && value !== null) closeTuples(value);
  }
  if (Array.isArray(schema.prefixItems) && !("items" in schema)) {
    schema.items = false;
    schema.minItems ??= schema.prefixItems.length;
  }
  return schema;
}

/** The JSON Schema of an executor's params, as users write them (defaults make params optional). */
export function paramsJsonSchema(definition: ExecutorDefinition): JsonSchema {
  const schema = z.toJSONSchema(paramsSchemaOf(definition), {
    io: "input",
    unrepresentable: "any",
  }) as JsonSchema;
  delete schema.$schema;
  return closeTuples(schema);
}

/** The JSON Schemas of the step options (`retries`, `timeout`, `depends_on`…), one per key. */
function stepOptionsJsonSchema(): Record<string, JsonSchema> {
  const schema = z.toJSONSchema(stepOptionsSchema(z), { io: "input", unrepresentable: "any" }) as JsonSchema;
  return closeTuples(schema).properties;
}

/** The JSON Schemas of the routine-level settings blocks (`aws`, `s3`), from their one zod schema each. */
function settingsBlocksJsonSchema(): Record<string, JsonSchema> {
  return Object.fromEntries(
    Object.entries(AWS_ROUTINE_BLOCKS).map(([key, schemaOf]) => {
      const schema = z.toJSONSchema(schemaOf(z), { io: "input", unrepresentable: "any" }) as JsonSchema;
      delete schema.$schema;
      return [key, closeTuples(schema)];
    }),
  );
}

/**
 * The JSON Schema (draft 2020-12) of routine files, generated from every executor the catalog knows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ExecutorCatalog } from "../executors.ts";
 * import { routineJsonSchema } from "./schema.ts";
 *
 * const catalog = new ExecutorCatalog();
 * const schema = await routineJsonSchema(catalog);
 * assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
 * const downloader = schema.properties.executors.properties.DownloaderExecutor; // a step's schema
 * assert.deepEqual(Object.keys(downloader.properties), [
 *   "executor", "description", "params", "tasks",
 *   "retries", "retry_delay", "timeout", "continue_on_error", "depends_on", // step options
 * ]);
 * assert.equal(downloader.description, (await catalog.find("DownloaderExecutor"))!.definition.description);
 * ```
 */
export async function routineJsonSchema(catalog: ExecutorCatalog): Promise<JsonSchema> {
  const named: Record<string, JsonSchema> = {};
  const withExecutorKey: JsonSchema[] = [];
  for (const name of await catalog.names()) {
    const executor = await catalog.find(name);
    if (!executor) continue;
    const definition = executor.definition;
    const step = (executorRequired: boolean): JsonSchema => ({
      type: "object",
      description: definition.description,
      properties: {
        executor: {
          const: name,
          description: "The executor this step runs (needed when the key is a step id).",
        },
        description: { type: "string" },
        params: paramsJsonSchema(definition),
        tasks: {
          type: "array",
          minItems: 1,
          items: { enum: Object.keys(definition.tasks) },
          description: Object.entries(definition.tasks).map(([task, t]) => `${task}: ${taskSummary(t)}`)
            .join("\n"),
        },
        ...stepOptionsJsonSchema(),
      },
      required: executorRequired ? ["executor", "tasks"] : ["tasks"],
      additionalProperties: false,
      ...taskNeedsJsonSchema(definition),
    });
    named[name] = step(false);
    withExecutorKey.push(step(true));
  }
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "https://lakerun.dev/schema/routine.json",
    title: "lakerun routine",
    type: "object",
    properties: {
      $schema: { type: "string" },
      routine_name: { type: "string", minLength: 1, maxLength: 200, description: "Name of the routine." },
      executors: {
        type: "object",
        description:
          'Steps, run in file order. A key is an executor name, or any step id with an "executor" key.',
        minProperties: 1,
        properties: named,
        additionalProperties: { oneOf: withExecutorKey },
      },
      executors_dir: {
        description: "Plugin folder(s), relative to the routine file.",
        oneOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
      },
      ...settingsBlocksJsonSchema(),
    },
    required: ["routine_name", "executors"],
    additionalProperties: false,
  };
}

/** One documented param, flattened (`requests_arguments.url`). */
export interface ParamRow {
  name: string;
  type: string;
  required: boolean;
  default?: unknown;
  description: string;
}

/**
 * The params of an executor as flat rows, nested objects expanded one level per dot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineExecutor } from "../../sdk/executor.ts";
 * import { paramRows } from "./schema.ts";
 *
 * const hello = defineExecutor({
 *   name: "HelloExecutor",
 *   description: "Writes a greeting file.",
 *   params: (z) =>
 *     z.strictObject({
 *       target: z.strictObject({
 *         folder: z.string().describe("Where to write hello.txt"),
 *       }).describe("Where to"),
 *       greeting: z.string().default("hello").describe("What to write"),
 *     }),
 *   permissions: (params, { resolve }) => ({ write: [resolve(params.target.folder)] }),
 *   tasks: { hello: { description: "Writes hello.txt", run: async () => {} } },
 * });
 * assert.deepEqual(paramRows(hello), [
 *   { name: "target", type: "object", required: true, default: undefined, description: "Where to" },
 *   {
 *     name: "target.folder",
 *     type: "string",
 *     required: true,
 *     default: undefined,
 *     description: "Where to write hello.txt",
 *   },
 *   { name: "greeting", type: "string", required: false, default: "hello", description: "What to write" },
 * ]);
 * ```
 */
export function paramRows(definition: ExecutorDefinition): ParamRow[] {
  const rows: ParamRow[] = [];
  const walk = (schema: JsonSchema, prefix: string) => {
    const required = new Set<string>(schema.required ?? []);
    for (const [key, property] of Object.entries<JsonSchema>(schema.properties ?? {})) {
      const name = prefix + key;
      rows.push({
        name,
        type: typeName(property),
        required: required.has(key),
        default: property.default,
        description: (property.description ?? "").replace(/\s+/g, " ").trim(),
      });
      const object = objectBranch(property);
      if (object?.properties) walk(object, `${name}.`);
    }
  };
  walk(paramsJsonSchema(definition), "");
  return rows;
}

function objectBranch(schema: JsonSchema): JsonSchema | undefined {
  if (schema.type === "object") return schema;
  for (const branch of schema.anyOf ?? schema.oneOf ?? []) if (branch.type === "object") return branch;
  return undefined;
}

function typeName(schema: JsonSchema): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v: unknown) => JSON.stringify(v)).join(" \\| ");
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return [...new Set(union.map(typeName))].join(" \\| ");
  if (schema.type === "array") {
    if (Array.isArray(schema.prefixItems)) return `[${schema.prefixItems.map(typeName).join(", ")}]`;
    const item = schema.items ? typeName(schema.items) : "any";
    // a list of a union: `(string | number)[]`, not `string | number[]` (read as a string or a list of numbers)
    return item.includes(" \\| ") ? `(${item})[]` : `${item}[]`;
  }
  if (schema.type === "object" && !schema.properties && typeof schema.additionalProperties === "object") {
    return `object of ${typeName(schema.additionalProperties)}`;
  }
  if (schema.type === "integer") return "integer";
  if (schema.type) return String(schema.type);
  return "any";
}

/**
 * The executor reference in Markdown: the same text `lakerun list --markdown` prints and the README holds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ExecutorCatalog } from "../executors.ts";
 * import { executorReferenceMarkdown } from "./schema.ts";
 *
 * const markdown = await executorReferenceMarkdown(new ExecutorCatalog());
 * const lines = markdown.split("\n");
 * assert.equal(lines[0], "### DownloaderExecutor");
 * const url = "| `requests_arguments.url` | string | yes |  | URL to download: http(s):// or file://. |";
 * assert.ok(lines.includes(url));
 * ```
 */
export async function executorReferenceMarkdown(catalog: ExecutorCatalog): Promise<string> {
  const out: string[] = [];
  for (const name of await catalog.names()) {
    const executor = await catalog.find(name);
    if (!executor) continue;
    const definition = executor.definition;
    out.push(`### ${name}`, "", definition.description, "", "| task | what it does |", "| --- | --- |");
    for (const [task, t] of Object.entries(definition.tasks)) out.push(`| \`${task}\` | ${taskSummary(t)} |`);
    out.push("", "| param | type | required | default | description |", "| --- | --- | --- | --- | --- |");
    for (const row of paramRows(definition)) {
      const fallback = row.default === undefined ? "" : `\`${JSON.stringify(row.default)}\``;
      const description = row.description.replaceAll("<", "&lt;").replaceAll(">", "&gt;");
      out.push(
        `| \`${row.name}\` | ${row.type} | ${row.required ? "yes" : "no"} | ${fallback} | ${description} |`,
      );
    }
    const outputs = taskOutputs(definition);
    if (outputs.length) {
      out.push(
        "",
        "| output (`${{ steps.ID.outputs.NAME }}`) | task | what it holds |",
        "| --- | --- | --- |",
      );
      for (const { name, tasks, description } of outputs) {
        out.push(`| \`${name}\` | ${tasks.map((t) => `\`${t}\``).join(", ")} | ${description} |`);
      }
    }
    out.push("");
  }
  return out.join("\n");
}

/**
 * What a step's listed tasks need (their `needs`), as JSON Schema: for each task that needs params, `if` the
 * step lists it, `then` its params hold them (one of each list of alternatives). Empty when no task needs any.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineExecutor } from "../../sdk/executor.ts";
 * import { taskNeedsJsonSchema } from "./schema.ts";
 *
 * const tables = defineExecutor({
 *   name: "TablesExecutor", description: "Loads a table.", permissions: () => ({}),
 *   params: (z) => z.strictObject({ table: z.string().optional(), sql: z.string().optional(), sql_file: z.string().optional() }),
 *   tasks: {
 *     load: { description: "Loads table.", needs: ["table"], run: async () => {} },
 *     execute: { description: "Runs SQL.", needs: [["sql", "sql_file"]], run: async () => {} },
 *     noop: { description: "Nothing.", run: async () => {} },
 *   },
 * });
 * const { allOf } = taskNeedsJsonSchema(tables);
 * assert.deepEqual(allOf![1], {
 *   if: { properties: { tasks: { contains: { const: "execute" } } }, required: ["tasks"] },
 *   then: { properties: { params: { anyOf: [{ required: ["sql"] }, { required: ["sql_file"] }] } }, required: ["params"] },
 * });
 * assert.deepEqual(taskNeedsJsonSchema({ ...tables, tasks: { noop: tables.tasks.noop } }), {});
 * ```
 */
export function taskNeedsJsonSchema(definition: ExecutorDefinition): { allOf?: JsonSchema[] } {
  const allOf = Object.entries(definition.tasks).filter(([, task]) => task.needs?.length).map(
    ([name, task]) => {
      const needs = task.needs!.map((need): JsonSchema =>
        typeof need === "string" ? { required: [need] } : { anyOf: need.map((one) => ({ required: [one] })) }
      );
      return {
        if: { properties: { tasks: { contains: { const: name } } }, required: ["tasks"] },
        then: {
          properties: { params: needs.length === 1 ? needs[0] : { allOf: needs } },
          required: ["params"],
        },
      };
    },
  );
  return allOf.length ? { allOf } : {};
}

/**
 * A task's description, followed by the params it needs beyond the always-required ones (its `needs`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { taskSummary } from "./schema.ts";
 *
 * const load = { description: "Loads source into table.", needs: ["table", ["columns", "source"]], run: async () => {} };
 * assert.equal(taskSummary(load), "Loads source into table. Needs: table; columns or source.");
 * const add = { description: "Adds partitions.", needs: ["table", "location"], run: async () => {} };
 * assert.equal(taskSummary(add), "Adds partitions. Needs: table, location.");
 * assert.equal(taskSummary({ description: "Does it.", run: async () => {} }), "Does it.");
 * ```
 */
export function taskSummary(task: TaskDefinition<unknown>): string {
  if (!task.needs?.length) return task.description;
  const needs = task.needs.map((need) => (typeof need === "string" ? need : need.join(" or ")));
  // "; " keeps "table; columns or source" from reading as "(table, columns) or source"
  const separator = task.needs.some((need) => typeof need !== "string") ? "; " : ", ";
  return `${task.description} Needs: ${needs.join(separator)}.`;
}

/**
 * The outputs an executor's tasks declare, in the order the tasks declare them: one entry per name and
 * description, so tasks that describe an output alike share an entry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineExecutor } from "../../sdk/executor.ts";
 * import { taskOutputs } from "./schema.ts";
 *
 * const copier = defineExecutor({
 *   name: "CopyExecutor", description: "Copies.", params: (z) => z.strictObject({}), permissions: () => ({}),
 *   tasks: {
 *     copy: { description: "Copies.", outputs: { files: "Files copied.", bytes: "Their bytes." }, run: async () => {} },
 *     sync: { description: "Syncs.", outputs: { files: "Files copied." }, run: async () => {} },
 *     move: { description: "Moves.", outputs: { files: "Files moved." }, run: async () => {} },
 *     noop: { description: "Nothing.", run: async () => {} },
 *   },
 * });
 * assert.deepEqual(taskOutputs(copier), [
 *   { name: "files", tasks: ["copy", "sync"], description: "Files copied." },
 *   { name: "bytes", tasks: ["copy"], description: "Their bytes." },
 *   { name: "files", tasks: ["move"], description: "Files moved." },
 * ]);
 * ```
 */
export function taskOutputs(
  definition: ExecutorDefinition,
): { name: string; tasks: string[]; description: string }[] {
  const entries = new Map<string, { name: string; tasks: string[]; description: string }>();
  for (const [task, t] of Object.entries(definition.tasks)) {
    for (const [name, description] of Object.entries(t.outputs ?? {})) {
      const key = JSON.stringify([name, description]);
      const entry = entries.get(key);
      if (entry) entry.tasks.push(task);
      else entries.set(key, { name, tasks: [task], description });
    }
  }
  return [...entries.values()];
}

/** The executor reference as plain text for the terminal. */
export async function executorReferenceText(catalog: ExecutorCatalog): Promise<string> {
  const out: string[] = [];
  for (const name of await catalog.names()) {
    const executor = await catalog.find(name);
    if (!executor) continue;
    const definition = executor.definition;
    out.push(`${name}${executor.source === "builtin" ? "" : `  (plugin: ${executor.source})`}`);
    out.push(`  ${definition.description}`);
    out.push("  tasks:");
    const taskWidth = Math.max(...Object.keys(definition.tasks).map((t) => t.length));
    for (const [task, t] of Object.entries(definition.tasks)) {
      out.push(`    ${task.padEnd(taskWidth)}  ${taskSummary(t)}`);
    }
    const outputs = taskOutputs(definition);
    if (outputs.length) {
      out.push("  outputs (${{ steps.ID.outputs.NAME }}):");
      const outputWidth = Math.max(...outputs.map((o) => o.name.length));
      for (const { name, tasks, description } of outputs) {
        out.push(`    ${name.padEnd(outputWidth)}  (${tasks.join(", ")}) ${description}`);
      }
    }
    out.push("  params:");
    const rows = paramRows(definition);
    const width = Math.max(...rows.map((r) => r.name.length));
    for (const row of rows) {
      const bits = [row.type.replaceAll("\\|", "|"), row.required ? "required" : "optional"];
      if (row.default !== undefined) bits.push(`default ${JSON.stringify(row.default)}`);
      out.push(
        `    ${row.name.padEnd(width)}  ${bits.join(", ")}${row.description ? ` — ${row.description}` : ""}`,
      );
    }
    out.push("");
  }
  return out.join("\n");
}
