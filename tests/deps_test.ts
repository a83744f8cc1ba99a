/**
 * The dependency check (tools/check_deps.ts) that `deno task check` and CI run: the project keeps its
 * layering and has no import circle, and the check does catch each kind of violation.
 *
 * Run: deno test -A tests/deps_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { dependencyProblems } from "../tools/check_deps.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("lakerun itself: lib/ ← sdk/ ← executors/ ← orchestrator/ layering kept, no import circle", async () => {
  assert.deepEqual(await dependencyProblems(ROOT), []);
});

async function treeWith(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir();
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(join(root, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, path), text);
  }
  return root;
}

Deno.test("the check names each layering violation and each circle", async () => {
  const root = await treeWith({
    "main.ts": 'import "./orchestrator/cli.ts";',
    "lib/a.ts": 'import type { X } from "../orchestrator/cli.ts";\nexport const a = 1;',
    "lib/b.ts": 'import { c } from "./c.ts";\nexport const b = c;',
    "lib/c.ts": 'import { b } from "./b.ts";\nexport const c = b;',
    "sdk/executor.ts": 'import "../executors/x/mod.ts";',
    "executors/registry.ts": 'const x = () => import("./x/mod.ts");',
    "executors/x/mod.ts": 'import "../y/mod.ts";\nimport "./helper.ts";\nimport "../../lib/a.ts";',
    "executors/x/helper.ts": "export {};",
    "executors/y/mod.ts": "export {};",
    "orchestrator/cli.ts": 'import "../executors/registry.ts";\nimport "../executors/y/mod.ts";',
  });
  try {
    const problems = await dependencyProblems(root);
    assert.deepEqual(problems.sort(), [
      "executors/x/mod.ts imports executors/y/mod.ts: an executor imports only sdk/, lib/ and its own folder",
      "import circle among: executors/registry.ts, executors/x/mod.ts, lib/a.ts, orchestrator/cli.ts",
      "import circle among: lib/b.ts, lib/c.ts",
      "lib/a.ts imports orchestrator/cli.ts: lib/ imports only lib/, node: built-ins and npm packages",
      "orchestrator/cli.ts imports executors/y/mod.ts: the orchestrator reaches executors only through executors/registry.ts",
      "sdk/executor.ts imports executors/x/mod.ts: sdk/ imports only lib/",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
