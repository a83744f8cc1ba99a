/**
 * What can be proved here about `deno compile` (which cannot run on these machines: it downloads the `denort`
 * runtime): the module graph builds, and the compile task's `--include` list covers every module and file
 * that lakerun loads by URL at run time rather than by static import (step Workers, the demo's files).
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import denoConfig from "../deno.json" with { type: "json" };
import { builtinExecutors } from "../executors/registry.ts";
import { stepWorkerSource } from "../orchestrator/run/sandbox.ts";
import { parse as parseYaml } from "yaml";
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

/** The TypeScript modules in the compile task's --include'd folders and files. */
async function includedModules(): Promise<string[]> {
  const modules: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const info = await Deno.stat(join(ROOT, path));
    if (info.isFile) {
      if (path.endsWith(".ts")) modules.push(path);
      return;
    }
    for await (const entry of Deno.readDir(join(ROOT, path))) await walk(join(path, entry.name));
  };
  for (const include of includes) await walk(include.replace(/\/$/, ""));
  return modules;
}

/**
 * What `deno compile` embeds: main.ts's module graph and those of the modules in --include'd folders and files
 * (it analyzes the modules of an included folder since denoland/deno#27296, first released in v2.2.0).
 */
async function embeddedModules(): Promise<Set<string>> {
  const embedded = new Set(await graphOf("main.ts"));
  for (const root of await includedModules()) for (const module of await graphOf(root)) embedded.add(module);
  return embedded;
}

Deno.test("the module graph of main.ts builds without errors, and executors are loaded by URL, not in it", async () => {
  const graph = await graphOf("main.ts");
  for (const module of ["orchestrator/run/runner.ts", "executors/registry.ts"]) {
    assert.ok(graph.includes(module), `${module} is in the graph`);
  }
  // starting lakerun reads only the executors a routine names
  assert.ok(!graph.includes("executors/athena/mod.ts"), "executors are imported by computed URLs");
});

Deno.test("every module a step Worker loads is embedded: in main.ts's graph or an --include'd module's", async () => {
  const embedded = await embeddedModules();
  const workerRoots = [
    "orchestrator/run/step_worker.ts",
    ...Object.values(builtinExecutors).map((e) => relative(ROOT, new URL(e.url).pathname)),
  ];
  for (const root of workerRoots) {
    assert.ok(embedded.has(root), `${root} (a step Worker's root) is not embedded`);
    for (const module of await graphOf(root)) {
      assert.ok(embedded.has(module), `${module} (loaded by a step Worker) is not embedded`);
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

// ---- Workers in a compiled binary (issue 14) -------------------------------------------------------------
// A step's Worker starts from a blob: URL whose module statically imports the executor's and step_worker.ts's
// file: URLs; helper threads start from blob: URLs. deno compile loads blob: Worker modules since
// denoland/deno#34574 ("fix(compile): support workers loaded from blob URLs", commit 33936034e4, first released
// in v2.8.2; an ancestor of the tags v2.9.0 to v2.9.5 in denoland/deno). These tests check what can be checked
// here; the release workflow runs the demo with each compiled binary on its own platform.

/** The first Deno release whose compiled binaries load blob: Worker modules (denoland/deno#34574). */
const BLOB_WORKERS_SINCE = "2.8.2";

const versionAtLeast = (version: string, floor: string) => {
  const [a, b] = [version, floor].map((v) => v.split(".").map(Number));
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return true;
};

Deno.test("every executor folder is registered, so its Worker graph is among those checked above", async () => {
  const folders: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, "executors"))) {
    if (
      entry.isDirectory && (await Deno.stat(join(ROOT, "executors", entry.name, "mod.ts")).catch(() => null))
    ) {
      folders.push(`executors/${entry.name}/mod.ts`);
    }
  }
  const registered = Object.values(builtinExecutors).map((e) => relative(ROOT, new URL(e.url).pathname));
  assert.deepEqual(registered.sort(), folders.sort());
});

Deno.test("a step Worker's blob: module imports only embedded file: modules, statically", async () => {
  const embedded = await embeddedModules();
  for (const entry of Object.values(builtinExecutors)) {
    const source = stepWorkerSource(entry.url);
    assert.ok(!/\bimport\s*\(/.test(source), "no dynamic import in a step Worker's module");
    const specifiers = [...source.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    assert.equal(specifiers.length, 2, source);
    for (const specifier of specifiers) {
      assert.ok(specifier.startsWith("file://"), specifier);
      const path = relative(ROOT, new URL(specifier).pathname);
      assert.ok(embedded.has(path), `${path} (imported by a step Worker) is not embedded`);
    }
  }
});

Deno.test("helper threads' programs import only node: built-ins (nothing to embed)", async () => {
  const ranges = await Deno.readTextFile(join(ROOT, "lib/aws/s3/ranges.ts"));
  const program = /const rangeThreadSource = \(\) =>\s*`([\s\S]*?)\n`;/.exec(ranges)?.[1];
  assert.ok(program, "the range threads' program is found in lib/aws/s3/ranges.ts");
  const imports = [...program.matchAll(/import\s*\(\s*"([^"]+)"\s*\)|\bfrom\s+"([^"]+)"/g)].map((m) =>
    m[1] ?? m[2]
  );
  assert.deepEqual(imports, ["node:crypto"]);
});

Deno.test("Workers start only from blob: URLs, in the three places whose loading is checked here", async () => {
  const starts: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(join(ROOT, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) {
        const code = (await Deno.readTextFile(join(ROOT, path))).split("\n").filter((line) =>
          !/^\s*(\/\*|\*|\/\/)/.test(line)
        );
        for (const line of code) if (line.includes("new Worker(")) starts.push(path);
      }
    }
  };
  for (const dir of ["orchestrator", "lib", "executors", "sdk"]) await walk(dir);
  assert.deepEqual(starts.sort(), [
    "lib/helper_threads.ts",
    "orchestrator/run/sandbox.ts",
    "orchestrator/run/sandbox.ts",
  ]);
  const sandbox = await Deno.readTextFile(join(ROOT, "orchestrator/run/sandbox.ts"));
  assert.match(sandbox, /URL\.createObjectURL\(\s*new Blob\(\[stepWorkerSource\(executorModuleUrl\)\]/);
  assert.match(
    sandbox,
    /if \(!url\.startsWith\("blob:"\)\)/,
    "the host starts helper threads from blob: URLs only",
  );
});

Deno.test(`the Deno pinned for the action and the release has blob: Workers in compiled binaries (>= ${BLOB_WORKERS_SINCE})`, async () => {
  const action = parseYaml(await Deno.readTextFile(join(ROOT, "action.yml")));
  const release = parseYaml(await Deno.readTextFile(join(ROOT, ".github/workflows/release.yml")));
  const pinned = [action.inputs["deno-version"].default, release.env.DENO_VERSION];
  assert.equal(pinned[0], pinned[1], "the action and the release pin the same Deno");
  for (const version of [...pinned, Deno.version.deno]) {
    assert.ok(versionAtLeast(version, BLOB_WORKERS_SINCE), `Deno ${version} predates denoland/deno#34574`);
  }
});

Deno.test("the release workflow: the compile task's flags, five targets on their own runners, the demo, checksums", async () => {
  const release = parseYaml(await Deno.readTextFile(join(ROOT, ".github/workflows/release.yml")));
  assert.deepEqual(release.on, { push: { tags: ["v*"] } });
  const build = release.jobs.build;
  const matrix = build.strategy.matrix.include as Array<{ target: string; runner: string; binary: string }>;
  const native: Record<string, RegExp> = {
    "x86_64-unknown-linux-gnu": /^ubuntu-[\d.]+$/,
    "aarch64-unknown-linux-gnu": /^ubuntu-[\d.]+-arm$/,
    "x86_64-apple-darwin": /^macos-\d+-intel$/,
    "aarch64-apple-darwin": /^macos-\d+$/,
    "x86_64-pc-windows-msvc": /^windows-\d+$/,
  };
  assert.deepEqual(matrix.map((m) => m.target).sort(), Object.keys(native).sort());
  for (const { target, runner } of matrix) {
    assert.match(runner, native[target], `${target} builds on its own platform`);
  }
  const steps = build.steps as Array<{ name?: string; run?: string; uses?: string }>;
  for (const step of steps) {
    if (step.run) assert.ok(!step.run.includes("${{"), `no expression in '${step.name}'`);
  }
  const compile = steps.find((step) => step.name === "Compile")!.run!;
  const task = denoConfig.tasks.compile.replace(/ -o \S+ main\.ts$/, "");
  assert.ok(compile.includes(`${task} --target "$TARGET" -o "dist/$BINARY" main.ts`), compile);
  const smoke = steps.find((step) => step.name === "Smoke test on this runner")!.run!;
  assert.match(smoke, /"\$GITHUB_WORKSPACE\/dist\/\$BINARY" demo --dir /);
  assert.match(
    steps.find((step) => step.name === "Checksum")!.run!,
    /sha256sum "\$BINARY" > "\$BINARY\.sha256"/,
  );
  const attach = release.jobs.release.steps.map((step: { run?: string }) => step.run ?? "").join("\n");
  assert.match(attach, /sha256sum --check \*\.sha256/);
  assert.match(attach, /gh release upload "\$TAG" .* dist\/lakerun-\* dist\/SHA256SUMS/);
});
