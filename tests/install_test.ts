/**
 * `deno install -g`: the command the README gives installs a `lakerun` command (into a temporary
 * DENO_INSTALL_ROOT here) that prints its version and runs the demo from any folder, with the permissions, the
 * config (import map, unstable worker options) and the V8 flag of `deno task run`.
 *
 * Run: deno test -A tests/install_test.ts
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import denoConfig from "../deno.json" with { type: "json" };
import { ROOT, tempDir } from "./support/lakerun.ts";

/** The install command of the README, for a checkout at ROOT. */
export const INSTALL_ARGS = [
  "install",
  "-g",
  "-A",
  "-f",
  "-n",
  "lakerun",
  "--config",
  join(ROOT, "deno.json"),
  "--v8-flags=--max-semi-space-size=1",
  join(ROOT, "main.ts"),
];

Deno.test("deno install -g puts a lakerun command on the PATH that runs the demo from any folder", async () => {
  await using dir = await tempDir();
  const installRoot = join(dir.path, "install-root");
  const env = {
    DENO_INSTALL_ROOT: installRoot,
    PATH: `${join(installRoot, "bin")}:${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}`,
    NO_COLOR: "1",
  };
  const install = await new Deno.Command(Deno.execPath(), { args: INSTALL_ARGS, env, cwd: dir.path })
    .output();
  assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));
  const shim = await Deno.readTextFile(join(installRoot, "bin/lakerun"));
  assert.match(shim, /--allow-all/);
  assert.match(shim, /--v8-flags=--max-semi-space-size=1/);
  assert.match(shim, /--config /);

  // run by name, from a folder that is not the checkout
  const elsewhere = join(dir.path, "elsewhere");
  await Deno.mkdir(elsewhere);
  const run = (args: string[]) =>
    new Deno.Command("lakerun", { args, env, cwd: elsewhere, stdin: "null" }).output().then((output) => ({
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    }));
  const version = await run(["--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout, `lakerun ${denoConfig.version} (deno ${Deno.version.deno})\n`);

  const demo = await run(["demo", "--dir", "demo"]);
  assert.equal(demo.code, 0, demo.stderr);
  assert.match(demo.stdout, /✓ done in /);
  const staged = await Array.fromAsync(
    Deno.readDir(join(elsewhere, "demo/data/staging")),
    (entry) => entry.name,
  );
  assert.deepEqual(staged.sort(), [
    "regional",
    "retail-trade-survey-inventories.csv",
    "retail-trade-survey-sales.csv",
  ]);
});
