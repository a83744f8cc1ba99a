/**
 * Step options: how the runner runs a step, written beside its `params` and `tasks` — `retries`,
 * `retry_delay`, `timeout`, `continue_on_error` and `depends_on`. One zod schema describes them for the JSON
 * Schema of routine files; the checks here turn a bad value into one line that quotes it, and refuse
 * dependencies on unknown steps, on the step itself, and cycles.
 *
 * @module
 */
import { z } from "zod";
import { nearestName } from "../errors.ts";
import type { JsonPath } from "./json.ts";

/** How a step runs, with defaults applied. */
export interface StepOptions {
  /** Extra attempts after a failed one (0: none). */
  retries: number;
  /** Seconds before the first retry; each later retry waits up to twice as long (full jitter). */
  retryDelay: number;
  /** Seconds an attempt may take before it is aborted and fails; `undefined`: no limit. */
  timeout?: number;
  /** A failure of this step does not fail the run, and steps that depend on it still run. */
  continueOnError: boolean;
  /** Step ids this step waits for; `undefined` when the step has no `depends_on` key. */
  dependsOn?: string[];
}

/** The keys a step may hold besides `executor`, `params`, `tasks` and `description`. */
export const STEP_OPTION_KEYS = [
  "retries",
  "retry_delay",
  "timeout",
  "continue_on_error",
  "depends_on",
] as const;

/** Default `retry_delay`, in seconds. */
export const DEFAULT_RETRY_DELAY = 10;

/** Longest wait before a retry, in seconds, however many retries came before. */
export const MAX_RETRY_WAIT = 600;

/** The zod schema of the step options (for the JSON Schema of routine files). */
export const stepOptionsSchema = (zod: typeof z) =>
  zod.strictObject({
    retries: zod.number().int().min(0).max(100).default(0).describe(
      "Attempts after a failed one (0–100). Each retry runs the step's tasks again, from the first, in a fresh Worker, under the same run id.",
    ),
    retry_delay: zod.number().min(0).max(3600).default(DEFAULT_RETRY_DELAY).describe(
      `Seconds before the first retry (0–3600, default ${DEFAULT_RETRY_DELAY}); retry n waits a random time up to retry_delay × 2^(n-1), at most ${MAX_RETRY_WAIT} s.`,
    ),
    timeout: zod.number().positive().max(604_800).optional().describe(
      'Seconds an attempt may take (at most 7 days): then the step is aborted (its temporary files removed, its cloud jobs stopped) and fails with "timed out after N s".',
    ),
    continue_on_error: zod.boolean().default(false).describe(
      "When the step fails, the run goes on: steps that depend on it still run and the run's exit code stays 0 if nothing else failed.",
    ),
    depends_on: zod.array(zod.string().min(1)).optional().describe(
      "Step ids this step waits for. When any step has depends_on, steps run as soon as what they depend on is done, at most --max-parallel (default 2) at a time; otherwise in file order, one at a time.",
    ),
  });

const EXPECTED: Record<typeof STEP_OPTION_KEYS[number], string> = {
  retries: "a whole number from 0 to 100",
  retry_delay: "a number of seconds from 0 to 3600",
  timeout: "a number of seconds greater than 0 (at most 604800, 7 days)",
  continue_on_error: "true or false",
  depends_on: "a list of step ids",
};

type Report = (path: JsonPath, message: string) => void;

/**
 * The options of the step at `at` (`["executors", id]`), each bad value reported as one line quoting it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepOptionsOf } from "./step_options.ts";
 *
 * const problems: string[] = [];
 * const report = (path: ReadonlyArray<string | number>, message: string) =>
 *   problems.push(`${path.join(".")}: ${message}`);
 * const options = stepOptionsOf({ retries: 2, depends_on: ["download"] }, ["executors", "load"], report);
 * assert.deepEqual(options, { retries: 2, retryDelay: 10, continueOnError: false, dependsOn: ["download"] });
 * stepOptionsOf({ retries: -1, timeout: "10m", depends_on: "download" }, ["executors", "load"], report);
 * assert.deepEqual(problems, [
 *   "executors.load.retries: -1 is not a whole number from 0 to 100",
 *   'executors.load.timeout: "10m" is not a number of seconds greater than 0 (at most 604800, 7 days)',
 *   'executors.load.depends_on: "download" is not a list of step ids (write ["download"])',
 * ]);
 * ```
 */
export function stepOptionsOf(value: Record<string, unknown>, at: JsonPath, report: Report): StepOptions {
  const shape = stepOptionsSchema(z).shape;
  const parsed: Record<string, unknown> = {};
  for (const key of STEP_OPTION_KEYS) {
    if (!Object.hasOwn(value, key)) continue;
    const given = value[key];
    if (key === "depends_on") {
      parsed[key] = dependsOnOf(given, [...at, key], report);
      continue;
    }
    const result = shape[key].safeParse(given);
    if (result.success) parsed[key] = result.data;
    else report([...at, key], `${quote(given)} is not ${EXPECTED[key]}`);
  }
  const options: StepOptions = {
    retries: (parsed.retries as number | undefined) ?? 0,
    retryDelay: (parsed.retry_delay as number | undefined) ?? DEFAULT_RETRY_DELAY,
    continueOnError: (parsed.continue_on_error as boolean | undefined) ?? false,
  };
  if (parsed.timeout !== undefined) options.timeout = parsed.timeout as number;
  if (parsed.depends_on !== undefined) options.dependsOn = parsed.depends_on as string[];
  return options;
}

function dependsOnOf(given: unknown, at: JsonPath, report: Report): string[] | undefined {
  if (!Array.isArray(given)) {
    const hint = typeof given === "string" ? ` (write ${JSON.stringify([given])})` : "";
    report(at, `${quote(given)} is not ${EXPECTED.depends_on}${hint}`);
    return undefined;
  }
  const ids: string[] = [];
  given.forEach((item, i) => {
    if (typeof item !== "string" || item === "") report([...at, i], `${quote(item)} is not a step id`);
    else ids.push(item);
  });
  return ids;
}

/**
 * Refuses `depends_on` entries that name no step of the routine, the step itself, or a step already listed,
 * and every cycle (once, at the `depends_on` of its first step in file order).
 *
 * @param ids the routine's step ids, in file order
 * @param steps the raw `executors` object of the routine file
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkDependencies } from "./step_options.ts";
 *
 * const problems: string[] = [];
 * const report = (path: ReadonlyArray<string | number>, message: string) =>
 *   problems.push(`${path.join(".")}: ${message}`);
 * const steps = {
 *   a: { depends_on: ["c"] },
 *   b: { depends_on: ["a", "b", "lod"] },
 *   c: { depends_on: ["b"] },
 *   load: {},
 * };
 * checkDependencies(Object.keys(steps), steps, report);
 * assert.deepEqual(problems, [
 *   'executors.b.depends_on.1: "b" is this step: a step cannot depend on itself',
 *   "executors.b.depends_on.2: \"lod\" is not a step of this routine (did you mean 'load'?); steps: a, b, c, load",
 *   'executors.a.depends_on: "a" → "c" → "b" → "a" is a cycle: these steps would wait for each other forever',
 * ]);
 * ```
 */
export function checkDependencies(
  ids: readonly string[],
  steps: Record<string, unknown>,
  report: Report,
): void {
  const edges = new Map<string, string[]>();
  for (const id of ids) {
    const list = (steps[id] as { depends_on?: unknown } | undefined)?.depends_on;
    if (!Array.isArray(list)) continue;
    const at: JsonPath = ["executors", id, "depends_on"];
    const kept: string[] = [];
    list.forEach((dependency, i) => {
      if (typeof dependency !== "string" || dependency === "") return; // reported with the step's options
      if (dependency === id) {
        report([...at, i], `${quote(dependency)} is this step: a step cannot depend on itself`);
      } else if (!ids.includes(dependency)) {
        const hint = nearestName(dependency, ids);
        report(
          [...at, i],
          `${quote(dependency)} is not a step of this routine${
            hint ? ` (did you mean '${hint}'?)` : ""
          }; steps: ${ids.join(", ")}`,
        );
      } else if (kept.includes(dependency)) {
        report([...at, i], `${quote(dependency)} is listed twice`);
      } else {
        kept.push(dependency);
      }
    });
    edges.set(id, kept);
  }
  for (const cycle of cyclesOf(ids, edges)) {
    report(
      ["executors", cycle[0], "depends_on"],
      `${
        [...cycle, cycle[0]].map(quote).join(" → ")
      } is a cycle: these steps would wait for each other forever`,
    );
  }
}

/** One cycle per strongly connected group of steps, each starting at its first step in file order. */
function cyclesOf(ids: readonly string[], edges: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const inCycle = new Set<string>();
  const done = new Set<string>();
  for (const start of ids) {
    if (done.has(start) || inCycle.has(start)) continue;
    // depth-first from `start`, in file order; a path back to a step on the stack is a cycle
    const stack: string[] = [];
    const onStack = new Set<string>();
    const visit = (id: string) => {
      stack.push(id);
      onStack.add(id);
      for (const next of edges.get(id) ?? []) {
        if (onStack.has(next)) {
          const cycle = stack.slice(stack.indexOf(next));
          if (!cycle.some((member) => inCycle.has(member))) {
            cycle.forEach((member) => inCycle.add(member));
            const first = cycle.reduce((a, b) => (ids.indexOf(a) <= ids.indexOf(b) ? a : b));
            const from = cycle.indexOf(first);
            cycles.push([...cycle.slice(from), ...cycle.slice(0, from)]);
          }
        } else if (!done.has(next)) {
          visit(next);
        }
      }
      stack.pop();
      onStack.delete(id);
      done.add(id);
    };
    visit(start);
  }
  return cycles;
}

function quote(value: unknown): string {
  return value === undefined ? "undefined" : JSON.stringify(value);
}

/**
 * True when the steps run as their `depends_on` allow (some step has the key), not one after another in file
 * order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runsByDependencies } from "./step_options.ts";
 *
 * const options = { retries: 0, retryDelay: 10, continueOnError: false };
 * assert.equal(runsByDependencies([{ options }]), false);
 * assert.equal(runsByDependencies([{ options }, { options: { ...options, dependsOn: [] } }]), true);
 * ```
 */
export function runsByDependencies(steps: ReadonlyArray<{ options: StepOptions }>): boolean {
  return steps.some((step) => step.options.dependsOn !== undefined);
}

/**
 * How `lakerun plan` says the steps run: in file order, or as their `depends_on` allow.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scheduleSummary } from "./step_options.ts";
 *
 * assert.equal(scheduleSummary([{ options: { retries: 0, retryDelay: 10, continueOnError: false } }]), "run in this order");
 * ```
 */
export function scheduleSummary(steps: ReadonlyArray<{ options: StepOptions }>): string {
  return runsByDependencies(steps)
    ? "each run once the steps in its depends_on are done, at most --max-parallel (default 2) at a time"
    : "run in this order";
}

/**
 * The lines `lakerun plan` shows for a step's options (none for a step with the defaults). In a routine whose
 * steps run by their `depends_on` (`scheduled`), every step says what it waits for: one without `depends_on`
 * starts at once, as one with `depends_on: []` does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepOptionLines } from "./step_options.ts";
 *
 * assert.deepEqual(
 *   stepOptionLines({ retries: 2, retryDelay: 5, timeout: 600, continueOnError: true, dependsOn: ["a", "b"] }),
 *   [
 *     "   depends on: a, b",
 *     "   options: retries 2 (first wait up to 5 s, doubling) · timeout 600 s · continue_on_error",
 *   ],
 * );
 * assert.deepEqual(stepOptionLines({ retries: 0, retryDelay: 10, continueOnError: false, dependsOn: [] }), [
 *   "   depends on: nothing (starts at once)",
 * ]);
 * const noKey = { retries: 0, retryDelay: 10, continueOnError: false };
 * assert.deepEqual(stepOptionLines(noKey, "   ", true), ["   depends on: nothing (starts at once)"]);
 * assert.deepEqual(stepOptionLines(noKey), []); // file order: nothing to say
 * ```
 */
export function stepOptionLines(options: StepOptions, indent = "   ", scheduled = false): string[] {
  const lines: string[] = [];
  if (options.dependsOn || scheduled) {
    const list = options.dependsOn?.length ? options.dependsOn.join(", ") : "nothing (starts at once)";
    lines.push(`${indent}depends on: ${list}`);
  }
  const parts: string[] = [];
  if (options.retries > 0) {
    parts.push(`retries ${options.retries} (first wait up to ${options.retryDelay} s, doubling)`);
  }
  if (options.timeout !== undefined) parts.push(`timeout ${options.timeout} s`);
  if (options.continueOnError) parts.push("continue_on_error");
  if (parts.length) lines.push(`${indent}options: ${parts.join(" · ")}`);
  return lines;
}

/**
 * A step's options as `plan --json` shows them, under their routine-file names, defaults included:
 * `depends_on` is `null` in a routine run in file order, `[]` for a step that starts at once in one whose steps
 * run by their `depends_on` (`scheduled`), with the key or without.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepOptionsJson } from "./step_options.ts";
 *
 * const noKey = { retries: 0, retryDelay: 10, continueOnError: false };
 * assert.equal(stepOptionsJson(noKey).depends_on, null);
 * assert.deepEqual(stepOptionsJson(noKey, true).depends_on, []);
 * ```
 */
export function stepOptionsJson(options: StepOptions, scheduled = false): Record<string, unknown> {
  return {
    retries: options.retries,
    retry_delay: options.retryDelay,
    timeout: options.timeout ?? null,
    continue_on_error: options.continueOnError,
    depends_on: options.dependsOn ?? (scheduled ? [] : null),
  };
}
