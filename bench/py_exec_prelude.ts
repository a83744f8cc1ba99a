/**
 * What lakerun's Landlock prelude adds to a py_exec transform's start: the same trivial transform (it writes
 * one small file) started the way lakerun did before the sandbox (`python3 -c` with a four-line runner, the
 * whole environment), through the prelude with `py_exec_sandbox: off` (minimal environment, no Landlock), and
 * through the prelude confined (`best_effort` on this machine). Start to exit of the interpreter, spawned by
 * Deno; the variants alternate spawn by spawn, so that they share the machine's state.
 *
 * The interpreter is the one `python3` resolves to (`sys.executable`), so that a version manager's shim (pyenv's
 * adds about 90 ms) does not hide the difference.
 *
 * Usage: deno run -A bench/py_exec_prelude.ts [--runs 3] [--spawns 20]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { minimalEnv, PRELUDE_URL } from "../executors/staging/py_exec.ts";
import { median } from "./measure.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "3" }, spawns: { type: "string", default: "20" } },
});
const runs = Math.max(3, Number(values.runs));
const spawns = Number(values.spawns);

const found = await new Deno.Command("python3", { args: ["-c", "import sys; print(sys.executable)"] })
  .output();
if (!found.success) throw new Error("python3 not found on PATH");
const python = new TextDecoder().decode(found.stdout).trim();
const version = new TextDecoder().decode(
  (await new Deno.Command(python, { args: ["-c", "import sys; print(sys.version.split()[0])"] }).output())
    .stdout,
).trim();
const prelude = await Deno.readTextFile(PRELUDE_URL);

const dir = await Deno.makeTempDir({ prefix: "lakerun-bench-prelude-" });
const folder = join(dir, "tx");
const parent = join(dir, "in");
const dump = join(dir, "out");
const tmp = join(dir, "tmp");
const home = join(dir, "home");
for (const path of [folder, parent, dump, tmp, home]) await Deno.mkdir(path, { recursive: true });
await Deno.writeTextFile(join(parent, "a.csv"), "a,b\n1,2\n");
await Deno.writeTextFile(
  join(folder, "py_exec.py"),
  "import os\ndef main(parent, dump):\n    open(os.path.join(dump, 'a.csv'), 'w').write(open(os.path.join(parent, 'a.csv')).read())\n",
);

const before = [
  "import sys, json",
  "sys.path.insert(0, sys.argv[1])",
  "import py_exec",
  "py_exec.main(sys.argv[2], sys.argv[3], **json.loads(sys.argv[4]))",
].join("\n");
const spec = (mode: string) =>
  JSON.stringify({ mode, folder, parent, dump, args: {}, read: [folder, parent], write: [dump, tmp, home] });
const env = minimalEnv((name) => Deno.env.get(name), [], { tmp, home });

const variants: Record<string, Deno.CommandOptions> = {
  "python3 -c (before the sandbox)": { args: ["-c", before, folder, parent, dump, "{}"] },
  "prelude, py_exec_sandbox off": { args: ["-c", prelude, spec("off")], clearEnv: true, env },
  "prelude, confined (Landlock)": { args: ["-c", prelude, spec("best_effort")], clearEnv: true, env },
};

async function once(options: Deno.CommandOptions): Promise<number> {
  const started = performance.now();
  const output = await new Deno.Command(python, { ...options, stdout: "null", stderr: "piped" }).output();
  const ms = performance.now() - started;
  if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
  return ms;
}

const names = Object.keys(variants);
for (const name of names) await once(variants[name]); // warm the page cache
const perRun: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
const all: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
for (let run = 0; run < runs; run++) {
  const times: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  for (let i = 0; i < spawns; i++) {
    for (const name of (run + i) % 2 ? [...names].reverse() : names) {
      times[name].push(await once(variants[name]));
    }
  }
  for (const name of names) {
    perRun[name].push(median(times[name]));
    all[name].push(...times[name]);
  }
  console.error(
    `run ${run + 1}/${runs}: ${names.map((n) => `${n} ${median(times[n]).toFixed(1)} ms`).join(", ")}`,
  );
}
const confined = new TextDecoder().decode(
  (await new Deno.Command(python, { ...variants[names[2]], stdout: "null", stderr: "piped" }).output())
    .stderr,
).split("\n")[0];
await Deno.remove(dir, { recursive: true });

// each run's median minus the baseline's median in the same run: the machine's load changes between runs
const added = (name: string) => median(perRun[name].map((ms, run) => ms - perRun[names[0]][run]));
const signed = (ms: number) => `${ms >= 0 ? "+" : ""}${ms.toFixed(1)}`;
console.log(
  `Python ${version} (${python}), ${Deno.build.os} ${Deno.osRelease()}, ${runs} runs × ${spawns} spawns of each ` +
    "variant, alternating.",
);
console.log(`The confined one reports: \`${confined.slice(0, 80)}…\`\n`);
console.log(
  "| start of the transform | median per run (ms) | fastest (ms) | added: median of per-run differences (ms) | added: fastest vs fastest (ms) |",
);
console.log("| --- | --- | --- | --- | --- |");
const fastest = (name: string) => Math.min(...all[name]);
for (const name of names) {
  const first = name === names[0];
  console.log(
    `| ${name} | ${perRun[name].map((v) => v.toFixed(1)).join(", ")} | ${fastest(name).toFixed(1)} | ${
      first ? "-" : signed(added(name))
    } | ${first ? "-" : signed(fastest(name) - fastest(names[0]))} |`,
  );
}
