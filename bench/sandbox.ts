/**
 * What the per-step sandbox costs: a routine of 200 no-op steps run sandboxed (a Worker per step, as lakerun
 * always runs) and in-process (only possible through the API), and the start-up time of `lakerun --version`.
 *
 * Usage: deno run -A bench/sandbox.ts [--steps 200] [--runs 5]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import type { Reporter } from "../orchestrator/cli/reporter.ts";
import { parseRoutine } from "../orchestrator/routine/routine.ts";
import { runRoutine } from "../orchestrator/run/runner.ts";
import { median } from "./measure.ts";

const { values } = parseArgs({
  options: { steps: { type: "string", default: "200" }, runs: { type: "string", default: "5" } },
});
const steps = Number(values.steps);
const runs = Number(values.runs);
const root = new URL("../", import.meta.url).pathname;
const silent: Reporter = { routineStarted() {}, stepStarted() {}, stepMessage() {}, routineFinished() {} };

const cwd = await Deno.makeTempDir({ prefix: "lakerun-bench-" });
const routineDoc = {
  routine_name: "noop",
  executors: Object.fromEntries(
    Array.from(
      { length: steps },
      (_, i) => [`step${i}`, { executor: "NoopExecutor", params: {}, tasks: ["noop"] }],
    ),
  ),
};
const routine = await parseRoutine(JSON.stringify(routineDoc), {
  file: join(cwd, "noop.json"),
  label: "noop.json",
  cwd,
  executorDirs: [join(root, "bench/plugins")],
});

const results: Record<string, number[]> = { sandboxed: [], "in-process": [] };
for (let run = 0; run < runs + 1; run++) {
  for (const mode of ["sandboxed", "in-process"] as const) {
    const started = performance.now();
    await runRoutine(routine, { cwd, reporter: silent, inProcess: mode === "in-process" });
    const perStep = (performance.now() - started) / steps;
    if (run > 0) results[mode].push(perStep); // the first run warms caches
  }
}

const versionTimes: number[] = [];
for (let run = 0; run < runs; run++) {
  const started = performance.now();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", join(root, "deno.json"), join(root, "main.ts"), "--version"],
    stdout: "null",
  }).output();
  if (!output.success) throw new Error("lakerun --version failed");
  versionTimes.push(performance.now() - started);
}
await Deno.remove(cwd, { recursive: true });

const sandboxed = median(results.sandboxed);
const inProcess = median(results["in-process"]);
console.log(
  `sandbox cost, ${steps} no-op steps, median of ${runs} runs (Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores)`,
);
console.log(`| mode | ms per step |`);
console.log(`| --- | --- |`);
console.log(`| sandboxed (Worker per step) | ${sandboxed.toFixed(2)} |`);
console.log(`| in-process | ${inProcess.toFixed(2)} |`);
console.log(`| sandbox overhead | ${(sandboxed - inProcess).toFixed(2)} |`);
console.log(`| lakerun --version (whole process) | ${median(versionTimes).toFixed(0)} ms |`);
