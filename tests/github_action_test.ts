/**
 * The GitHub Action, run without GitHub: action.yml parses and uses every input and output it declares, keeps
 * `${{ }}` out of its scripts, and names the cache after the runner, the Deno version and deno.lock; its run
 * step (`.github/action/run.sh`) is run here as the runner would run it — `GITHUB_ACTIONS=true`, the
 * `GITHUB_*` and `RUNNER_*` variables and files, the inputs as `LAKERUN_*` variables — on the demo routine, on a
 * failing routine with a secret, and on an invalid one, and the test reads what GitHub would read: workflow
 * commands on standard output, the job summary, the outputs (heredoc syntax), and the exit code.
 *
 * Run: deno test -A tests/github_action_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { ROOT, tempDir } from "./support/lakerun.ts";

const SECRET = "hunter2-Sekr3t%value";
const RUN_SH = join(ROOT, ".github/action/run.sh");
const DENO_SH = join(ROOT, ".github/action/deno.sh");

/** The test plugin (tests/fixtures/log_plugins), as a workspace would hold it: importing lakerun's SDK. */
const ECHO_PLUGIN = Deno.readTextFileSync(join(ROOT, "tests/fixtures/log_plugins/EchoExecutor.ts"))
  .replace('"../../../sdk/executor.ts"', JSON.stringify(`file://${ROOT}/sdk/executor.ts`));

/** What one run of the action's run step left. */
interface ActionRun {
  code: number;
  stdout: string;
  stderr: string;
  /** GITHUB_OUTPUT, parsed as GitHub does. */
  outputs: Record<string, string>;
  outputFile: string;
  summary: string;
}

/** A workspace with the echo plugin, as `actions/checkout` would leave one. */
async function workspace(root: string): Promise<string> {
  const ws = join(root, "ws");
  await Deno.mkdir(join(ws, "plugins"), { recursive: true });
  await Deno.mkdir(join(ws, "routines"), { recursive: true });
  await Deno.writeTextFile(join(ws, "plugins/EchoExecutor.ts"), ECHO_PLUGIN);
  return ws;
}

/** The environment of a composite action's step on a runner, with `inputs` as the action passes them. */
async function actionEnv(root: string, ws: string, inputs: Record<string, string>) {
  const runnerTemp = join(root, "runner-temp");
  await Deno.mkdir(runnerTemp, { recursive: true });
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? root,
    NO_COLOR: "1",
    GITHUB_ACTIONS: "true",
    GITHUB_WORKSPACE: ws,
    GITHUB_ACTION_PATH: ROOT,
    GITHUB_OUTPUT: join(runnerTemp, "output"),
    GITHUB_STEP_SUMMARY: join(runnerTemp, "summary.md"),
    GITHUB_ENV: join(runnerTemp, "env"),
    GITHUB_PATH: join(runnerTemp, "path"),
    RUNNER_TEMP: runnerTemp,
    RUNNER_TOOL_CACHE: join(root, "tool-cache"),
    RUNNER_OS: "Linux",
    RUNNER_ARCH: "X64",
    LAKERUN_DENO: Deno.execPath(),
    LAKERUN_EXECUTORS: "",
    LAKERUN_DATE: "",
    LAKERUN_RESUME: "false",
    LAKERUN_ARGS: "",
    ...inputs,
  };
  for (const name of ["DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value) env[name] = value;
  }
  for (const file of ["output", "summary.md", "env", "path"]) {
    await Deno.writeTextFile(join(runnerTemp, file), "");
  }
  return env;
}

/** Runs the action's run step (`exec bash run.sh`, as action.yml does) in the workspace. */
async function runAction(root: string, ws: string, inputs: Record<string, string>): Promise<ActionRun> {
  const env = await actionEnv(root, ws, inputs);
  const output = await new Deno.Command("bash", {
    args: [RUN_SH],
    cwd: ws,
    env,
    clearEnv: true,
    stdin: "null",
  })
    .output();
  const decoder = new TextDecoder();
  const outputText = await Deno.readTextFile(env.GITHUB_OUTPUT);
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    outputs: parseGitHubOutput(outputText),
    outputFile: outputText,
    summary: await Deno.readTextFile(env.GITHUB_STEP_SUMMARY),
  };
}

/** GITHUB_OUTPUT as the runner reads it: `name=value` lines and `name<<DELIMITER` … `DELIMITER` blocks. */
function parseGitHubOutput(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === "") continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name, delimiter] = heredoc;
      const end = lines.indexOf(delimiter, i + 1);
      assert.ok(end > i, `the value of ${name} ends with its delimiter`);
      values[name] = lines.slice(i + 1, end).join("\n");
      i = end;
      continue;
    }
    const equals = line.indexOf("=");
    assert.ok(equals > 0, `a GITHUB_OUTPUT line is name=value or name<<DELIMITER: ${line}`);
    values[line.slice(0, equals)] = line.slice(equals + 1);
  }
  return values;
}

/** Serves the demo's archive on loopback. */
function serveDemoArchive(): { url: string; [Symbol.asyncDispose](): Promise<void> } {
  const archive = Deno.readFileSync(join(ROOT, "routines/demo/retail_trade_survey.zip"));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(archive, { headers: { "content-type": "application/zip" } }),
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/retail_trade_survey.zip`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

const commands = (stdout: string) => stdout.split("\n").filter((line) => line.startsWith("::"));

Deno.test("action.yml: a composite action whose inputs reach run.sh through env, outputs come from lakerun", async () => {
  const action = parseYaml(await Deno.readTextFile(join(ROOT, "action.yml")));
  assert.equal(action.runs.using, "composite");
  assert.deepEqual(Object.keys(action.inputs), [
    "routine",
    "executors",
    "date",
    "resume",
    "args",
    "deno-version",
  ]);
  assert.deepEqual(Object.keys(action.outputs), ["run-id", "status", "outputs"]);
  assert.equal(action.inputs.routine.required, true);
  const steps = action.runs.steps as Array<Record<string, any>>;
  const scripts = await Promise.all([RUN_SH, DENO_SH].map((file) => Deno.readTextFile(file)));

  // no expression is ever part of a script's text (script injection): inputs arrive as variables
  for (const step of steps) {
    if (step.run !== undefined) {
      assert.ok(!String(step.run).includes("${{"), `step '${step.name}' has no \${{ }} in run`);
    }
  }
  // every input is passed to a step as a variable, and every such variable is read by the scripts
  const envOfInput = new Map<string, string>();
  for (const step of steps) {
    for (const [name, value] of Object.entries(step.env ?? {})) {
      const input = /^\$\{\{ inputs\.([a-z-]+) \}\}$/.exec(String(value));
      if (input) envOfInput.set(input[1], name);
      assert.ok(
        scripts.some((script) => script.includes(`$${name}`) || script.includes(`\${${name}`)) ||
          name.startsWith("DENO_"),
        `${name} is read by a script`,
      );
    }
  }
  for (const input of Object.keys(action.inputs)) assert.ok(envOfInput.has(input), `input ${input} is used`);
  // every output is the run step's output of the same name
  const run = steps.find((step) => step.id === "run")!;
  assert.match(String(run.run), /^exec bash "\$GITHUB_ACTION_PATH\/\.github\/action\/run\.sh"$/);
  for (const [name, output] of Object.entries(action.outputs as Record<string, { value: string }>)) {
    assert.equal(output.value, `\${{ steps.run.outputs.${name} }}`);
  }
  // Deno and DENO_DIR are cached under a key that deno.sh locate computes; installed only on a miss
  const restore = steps.findIndex((step) => step.uses === "actions/cache/restore@v4");
  const save = steps.findIndex((step) => step.uses === "actions/cache/save@v4");
  for (const cache of [steps[restore], steps[save]]) {
    assert.equal(cache.with.key, "${{ steps.deno.outputs.key }}");
    assert.deepEqual(String(cache.with.path).trim().split("\n"), [
      "${{ steps.deno.outputs.tool-dir }}",
      "${{ steps.deno.outputs.deno-dir }}",
    ]);
  }
  assert.equal(steps[save].if, "steps.cache.outputs.cache-hit != 'true'");
  assert.equal(steps[restore].id, "cache");
  const install = steps.find((step) => String(step.run ?? "").includes('deno.sh" install'))!;
  assert.equal(install.if, "steps.cache.outputs.cache-hit != 'true'");
  // restored, installed on a miss, saved at once, then run
  assert.deepEqual([restore, steps.indexOf(install), save, steps.indexOf(run)], [1, 2, 3, 4]);
  assert.equal(run.env.DENO_DIR, "${{ steps.deno.outputs.deno-dir }}");
  assert.equal(run.env.LAKERUN_DENO, "${{ steps.deno.outputs.deno }}");
});

Deno.test("deno.sh locate: a tool folder per version and runner, a cache key with deno.lock's hash", async () => {
  await using dir = await tempDir();
  const env = await actionEnv(dir.path, dir.path, { LAKERUN_DENO_VERSION: "2.9.6", RUNNER_ARCH: "ARM64" });
  const locate = await new Deno.Command("bash", { args: [DENO_SH, "locate"], env, clearEnv: true }).output();
  assert.equal(locate.code, 0, new TextDecoder().decode(locate.stderr));
  const outputs = parseGitHubOutput(await Deno.readTextFile(env.GITHUB_OUTPUT));
  const lock = await Deno.readFile(join(ROOT, "deno.lock"));
  const hash = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", lock)))
    .map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
  const tool = join(dir.path, "tool-cache/lakerun/deno-2.9.6-Linux-ARM64");
  assert.deepEqual(outputs, {
    deno: `${tool}/bin/deno`,
    "tool-dir": `${tool}/bin`,
    "deno-dir": `${tool}/deno-dir`,
    key: `lakerun-deno-Linux-ARM64-2.9.6-${hash}`,
  });

  const hostile = await actionEnv(dir.path, dir.path, { LAKERUN_DENO_VERSION: "2.9.6; touch pwned" });
  const refused = await new Deno.Command("bash", {
    args: [DENO_SH, "locate"],
    env: hostile,
    clearEnv: true,
    cwd: dir.path,
  })
    .output();
  assert.equal(refused.code, 2);
  assert.match(
    new TextDecoder().decode(refused.stdout),
    /^::error title=lakerun::deno-version must be a version/,
  );
  await assert.rejects(Deno.stat(join(dir.path, "pwned")), Deno.errors.NotFound);
});

Deno.test("the demo through the action: a group per step, outputs, a job summary, quoted args", async () => {
  await using dir = await tempDir();
  await using server = serveDemoArchive();
  const ws = await workspace(dir.path);
  const demo = JSON.parse(await Deno.readTextFile(join(ROOT, "routines/demo.json")));
  delete demo.$schema;
  demo.executors.DownloaderExecutor.params.requests_arguments.url = server.url;
  demo.executors.echo = {
    executor: "EchoExecutor",
    params: { message: "  ::warning::a line from a remote server", value: "hello" },
    tasks: ["echo"],
  };
  await Deno.writeTextFile(join(ws, "routines/demo.json"), JSON.stringify(demo, null, 2));

  const run = await runAction(dir.path, ws, {
    LAKERUN_ROUTINE: "routines/demo.json",
    LAKERUN_EXECUTORS: "plugins\n",
    LAKERUN_ARGS: `--state-dir "state dir" --max-parallel 1`,
  });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(commands(run.stdout), [
    "::group::DownloaderExecutor",
    "::endgroup::",
    "::group::StagingExecutor",
    "::endgroup::",
    "::group::echo (EchoExecutor)",
    "::endgroup::",
  ]);
  // a log line that reads as a workflow command is printed as text
  assert.ok(run.stdout.includes("  :\u200b:warning::a line from a remote server"), run.stdout);
  assert.ok(!run.stdout.split("\n").some((line) => line.trimStart().startsWith("::warning")));
  // the quoted --state-dir reached lakerun as one argument
  assert.ok((await Deno.stat(join(ws, "state dir"))).isDirectory);

  assert.deepEqual(Object.keys(run.outputs), ["run-id", "status", "outputs"]);
  assert.match(run.outputs["run-id"], /^\d{8}T\d{6}Z-[0-9a-f]{8}$/);
  assert.equal(run.outputs.status, "succeeded");
  // the steps' outputs by step: the demo's downloader and staging report what they landed and staged
  const workspaceRoot = await Deno.realPath(ws);
  assert.deepEqual(JSON.parse(run.outputs.outputs), {
    DownloaderExecutor: { files: 3, bytes: 60948, path: join(workspaceRoot, "data/landing") },
    StagingExecutor: {
      files: 3,
      bytes: 60948,
      path: join(workspaceRoot, "data/staging"),
      archived_files: 3,
      archived_bytes: 60948,
    },
    echo: { greeting: "hello", count: 3 },
  });

  assert.ok(
    run.summary.startsWith("### lakerun · retail\\_trade\\_survey\\_demo · ✅ succeeded\n"),
    run.summary,
  );
  assert.ok(run.summary.includes(`**run** ${run.outputs["run-id"]}`));
  assert.match(
    run.summary,
    /\n\| DownloaderExecutor \| download \| ✅ succeeded \| \d+ ms \| 3 \| 59\.5 KiB \| files = 3<br>bytes = 60948<br>path = \S+\/data\/landing \|\n/,
  );
  assert.match(run.summary, /\n\| StagingExecutor \| post\\_staging \| ✅ succeeded \| /);
  assert.match(
    run.summary,
    /\n\| echo \(EchoExecutor\) \| echo \| ✅ succeeded \| \d+ ms \| 2 \| 2\.0 KiB \| greeting = hello<br>count = 3 \|\n/,
  );
});

Deno.test("a failing routine with a secret: masked first and everywhere, an error annotation, status failed", async () => {
  await using dir = await tempDir();
  const ws = await workspace(dir.path);
  await Deno.writeTextFile(
    join(ws, "routines/leak.json"),
    JSON.stringify(
      {
        routine_name: "leak",
        executors: {
          echo: {
            executor: "EchoExecutor",
            params: {
              message: "token is ${{ secrets.LAKERUN_TEST_SECRET }}",
              value: "${{ secrets.LAKERUN_TEST_SECRET }}",
              fail: true,
            },
            tasks: ["echo"],
          },
        },
      },
      null,
      2,
    ),
  );
  const run = await runAction(dir.path, ws, {
    LAKERUN_ROUTINE: "routines/leak.json",
    LAKERUN_EXECUTORS: "plugins",
    LAKERUN_TEST_SECRET: SECRET,
  });
  assert.equal(run.code, 1, run.stderr);
  const lines = run.stdout.split("\n");
  assert.equal(lines[0], "::add-mask::hunter2-Sekr3t%25value", "the mask comes before anything else");
  const escaped = SECRET.replaceAll("%", "%25");
  for (const [i, line] of lines.entries()) {
    if (i > 0) {
      assert.ok(!line.includes(SECRET) && !line.includes(escaped), `stdout line ${i} shows the secret`);
    }
  }
  for (
    const [channel, text] of [["stderr", run.stderr], ["summary", run.summary], ["outputs", run.outputFile]]
  ) {
    assert.ok(!text.includes(SECRET) && !text.includes(escaped), `${channel} shows the secret`);
  }
  assert.ok(run.stdout.includes("    token is ***\n"));
  assert.ok(
    lines.includes(
      "::error title=step echo failed::step \"echo\" (EchoExecutor) task 'echo' failed: refused ***",
    ),
    run.stdout,
  );
  assert.equal(run.outputs.status, "failed");
  assert.deepEqual(JSON.parse(run.outputs.outputs), { echo: { greeting: "***", count: 3 } });
  assert.ok(run.summary.startsWith("### lakerun · leak · ❌ failed\n"));
  assert.ok(run.summary.includes("| echo (EchoExecutor) | echo | ❌ failed |"));
  assert.ok(run.summary.includes("- step echo, task echo: refused \\*\\*\\*"), run.summary);
});

Deno.test("a backfill through the action: status is the worst of its dates, not the last date's", async () => {
  await using dir = await tempDir();
  const ws = await workspace(dir.path);
  await Deno.writeTextFile(
    join(ws, "routines/dated.json"),
    JSON.stringify({
      routine_name: "dated",
      executors: {
        StagingExecutor: {
          params: { parent_directory: "landing-${{ run.date }}", dump_directory: "staging-${{ run.date }}" },
          tasks: ["transfer"],
        },
      },
    }),
  );
  // the first date's landing folder is missing: it fails; the second succeeds
  await Deno.mkdir(join(ws, "landing-2024-05-31"));
  const run = await runAction(dir.path, ws, {
    LAKERUN_ROUTINE: "routines/dated.json",
    LAKERUN_ARGS: "--from 2024-04-30 --to 2024-05-31 --every month --keep-going",
  });
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assert.equal(run.outputs.status, "failed", run.outputFile);
  assert.match(run.summary, /2024-04-30/);
});

Deno.test("an invalid routine: 10 annotations at the routine's lines, the rest in the log, status invalid", async () => {
  await using dir = await tempDir();
  const ws = await workspace(dir.path);
  const step = (fail: string) => ({
    executor: "EchoExecutor",
    params: { message: "m", value: "v", fail },
    tasks: ["echo"],
  });
  const executors: Record<string, unknown> = { secretive: step("${{ secrets.LAKERUN_TEST_SECRET }}") };
  for (let i = 1; i <= 11; i++) executors[`bad${i}`] = step(`maybe ${i}`);
  const text = JSON.stringify({ routine_name: "broken", executors }, null, 2);
  await Deno.writeTextFile(join(ws, "routines/broken.json"), text);

  const run = await runAction(dir.path, ws, {
    LAKERUN_ROUTINE: join(ws, "routines/broken.json"), // annotations name it relative to the workspace
    LAKERUN_EXECUTORS: "plugins",
    LAKERUN_TEST_SECRET: SECRET,
  });
  assert.equal(run.code, 2, run.stderr);
  const annotations = commands(run.stdout).filter((line) => line.startsWith("::error"));
  assert.equal(annotations.length, 10, run.stdout);
  const fileLines = text.split("\n");
  for (const annotation of annotations.slice(0, 9)) {
    const match =
      /^::error file=routines\/broken\.json,line=(\d+),col=(\d+),title=invalid routine::executors\.(\w+)\.params\.fail: expected boolean, received string \("(.*)"\)$/
        .exec(annotation);
    assert.ok(match, annotation);
    // the annotation points at the value in the routine file
    assert.equal(
      fileLines[Number(match[1]) - 1].slice(Number(match[2]) - 1),
      `"${match[4] === "***" ? "${{ secrets.LAKERUN_TEST_SECRET }}" : match[4]}"`,
    );
  }
  assert.match(
    annotations[0],
    /executors\.secretive\.params\.fail: expected boolean, received string \("\*\*\*"\)$/,
  );
  assert.equal(annotations[9], "::error title=lakerun::3 more problems, see the log");
  // every problem is on standard error, one line each, the secret masked there too
  assert.equal(run.stderr.trim().split("\n").length, 12, run.stderr);
  for (const text of [run.stdout.split("\n").slice(1).join("\n"), run.stderr, run.summary, run.outputFile]) {
    assert.ok(!text.includes(SECRET));
  }
  assert.equal(run.outputs.status, "invalid");
  assert.equal(run.outputs["run-id"], "");
  assert.ok(run.summary.startsWith("### lakerun · routines/broken.json · ⚠️ invalid\n"), run.summary);
  assert.equal(
    run.summary.split("\n").filter((line) => line.startsWith(`- ${ws}/routines/broken.json:`)).length,
    12,
  );
});

Deno.test("run.sh execs lakerun: the runner's SIGINT on cancel reaches it, which stops the step and exits 130", async () => {
  await using dir = await tempDir();
  const ws = await workspace(dir.path);
  await Deno.writeTextFile(
    join(ws, "routines/wait.json"),
    JSON.stringify({
      routine_name: "wait",
      executors: {
        echo: { executor: "EchoExecutor", params: { message: "m", value: "v", wait: true }, tasks: ["echo"] },
      },
    }),
  );
  const env = await actionEnv(dir.path, ws, {
    LAKERUN_ROUTINE: "routines/wait.json",
    LAKERUN_EXECUTORS: "plugins",
  });
  // in a process group of its own, so that the test can end it whatever happens
  const child = new Deno.Command("bash", {
    args: [RUN_SH],
    cwd: ws,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  const guard = setTimeout(() => Deno.kill(-child.pid, "SIGKILL"), 15_000);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  while (!stdout.includes("waiting for an interrupt")) {
    const { value, done } = await reader.read();
    if (done) break;
    stdout += value;
  }
  const sent = performance.now();
  child.kill("SIGINT"); // the process the runner started: bash, replaced by deno through exec
  const drained = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      stdout += value;
    }
  })();
  const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text(), drained]);
  clearTimeout(guard);
  const stopped = performance.now() - sent;
  assert.equal(status.code, 130, stderr);
  assert.ok(stopped < 5000, `stopped within 5 s, not ${Math.round(stopped)} ms`);
  assert.match(stderr, /interrupted \(SIGINT\)/);
  assert.equal(parseGitHubOutput(await Deno.readTextFile(env.GITHUB_OUTPUT)).status, "interrupted");
  // the log's last line says so too, as the status does
  assert.match(stdout, /\n✗ interrupted after [\d.]+ m?s\n/);
  assert.doesNotMatch(stdout, /✗ failed after/);
});

Deno.test("steps that run at the same time get a group each, one after the other, never interleaved", async () => {
  await using dir = await tempDir();
  const ws = await workspace(dir.path);
  const step = (message: string) => ({
    executor: "EchoExecutor",
    params: { message, value: message, pause_ms: 500 },
    tasks: ["echo"],
    depends_on: [],
  });
  await Deno.writeTextFile(
    join(ws, "routines/parallel.json"),
    JSON.stringify({ routine_name: "parallel", executors: { a: step("from a"), b: step("from b") } }),
  );
  const run = await runAction(dir.path, ws, {
    LAKERUN_ROUTINE: "routines/parallel.json",
    LAKERUN_EXECUTORS: "plugins",
    LAKERUN_ARGS: "--max-parallel 2",
  });
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.split("\n");
  const groupOf = (id: string) => {
    const start = lines.indexOf(`::group::${id} (EchoExecutor)`);
    const end = lines.indexOf("::endgroup::", start);
    assert.ok(start >= 0 && end > start, `a group for ${id}: ${run.stdout}`);
    return lines.slice(start + 1, end);
  };
  for (const [id, other] of [["a", "b"], ["b", "a"]]) {
    const group = groupOf(id);
    assert.ok(group.includes(`    from ${id}`) && group.includes(`    from ${id} again`), group.join("\n"));
    assert.ok(!group.some((line) => line.includes(`from ${other}`)), `no line of ${other} in ${id}'s group`);
  }
  assert.deepEqual(JSON.parse(run.outputs.outputs), {
    a: { greeting: "from a", count: 3 },
    b: { greeting: "from b", count: 3 },
  });
});

Deno.test("no workflow of this repository runs on its pushes or pull requests: releases on tags, the rest by hand", async () => {
  const triggers: Record<string, unknown> = {};
  for await (const entry of Deno.readDir(join(ROOT, ".github/workflows"))) {
    const workflow = parseYaml(await Deno.readTextFile(join(ROOT, ".github/workflows", entry.name)));
    triggers[entry.name] = workflow.on;
    for (
      const job of Object.values(
        workflow.jobs as Record<string, { steps: Array<{ run?: string; name?: string }> }>,
      )
    ) {
      for (const step of job.steps) {
        if (step.run) assert.ok(!step.run.includes("${{"), `${entry.name}: no expression in '${step.name}'`);
      }
    }
  }
  assert.deepEqual(triggers, {
    "release.yml": { push: { tags: ["v*"] } },
    "action-selftest.yml": { workflow_dispatch: null },
  });
});

Deno.test("parallel steps in groups: no repeated headers, lines of no step after the open group, one annotation per tolerated failure", async () => {
  const { GitHubRun } = await import("../orchestrator/cli/github.ts");
  const { consoleReporter } = await import("../orchestrator/cli/reporter.ts");
  const { parseRoutine } = await import("../orchestrator/routine/routine.ts");
  await using dir = await tempDir();
  const staging = (from: string) => ({
    executor: "StagingExecutor",
    params: { parent_directory: from, dump_directory: `${from}-out` },
    tasks: ["transfer"],
  });
  const text = JSON.stringify({
    routine_name: "par",
    executors: {
      a: { ...staging("a"), continue_on_error: true, depends_on: [] },
      b: { ...staging("b"), depends_on: [] },
      c: { ...staging("c"), depends_on: ["b"] },
    },
  });
  const routine = await parseRoutine(text, {
    file: join(dir.path, "r.json"),
    label: "r.json",
    cwd: dir.path,
  });
  const [a, b, c] = routine.steps;
  const lines: string[] = [];
  const env = { summaryFile: join(dir.path, "summary.md"), outputFile: join(dir.path, "output") };
  const github = new GitHubRun({ write: (line) => lines.push(line), env, cwd: dir.path });
  const reporter = github.reporter({ inner: (write, { grouped }) => consoleReporter({ write, grouped }) });
  reporter.routineStarted(routine);
  reporter.stepStarted(a, 3);
  reporter.stepStarted(b, 3);
  reporter.stepMessage(a, { type: "task-start", task: "transfer" });
  reporter.stepMessage(b, { type: "task-start", task: "transfer" });
  reporter.stepMessage(a, { type: "task-failed", task: "transfer", ms: 1, error: { message: "no a" } });
  // as the runner says them: while b's group is open
  reporter.warning?.('step "a" failed; continue_on_error: the run goes on (no a)', a);
  reporter.stepSkipped?.(c, 'step "b" failed');
  reporter.stepMessage(b, { type: "task-failed", task: "transfer", ms: 1, error: { message: "no b" } });
  reporter.routineFinished(false, 5);
  assert.deepEqual(lines, [
    "lakerun · par · 3 steps",
    "::group::a (StagingExecutor)",
    "[1/3] a (StagingExecutor)",
    "  ✗ transfer failed: no a",
    "::endgroup::",
    "::group::b (StagingExecutor)",
    "[2/3] b (StagingExecutor)",
    "  ✗ transfer failed: no b",
    "::endgroup::",
    '! step "a" failed; continue_on_error: the run goes on (no a)',
    '[3/3] c (StagingExecutor) skipped: step "b" failed',
    "✗ failed after 5 ms",
    "::warning title=step a failed::step \"a\" (StagingExecutor) task 'transfer' failed: no a (continue_on_error)",
    "::error title=step b failed::step \"b\" (StagingExecutor) task 'transfer' failed: no b",
  ]);
});

Deno.test("a retried step: a warning annotation, a group per try, no error once a try succeeds", async () => {
  const { GitHubRun } = await import("../orchestrator/cli/github.ts");
  const { consoleReporter } = await import("../orchestrator/cli/reporter.ts");
  const { parseRoutine } = await import("../orchestrator/routine/routine.ts");
  await using dir = await tempDir();
  const text = JSON.stringify({
    routine_name: "flaky",
    executors: {
      s: {
        executor: "StagingExecutor",
        params: { parent_directory: "a", dump_directory: "b" },
        tasks: ["transfer"],
      },
    },
  });
  const routine = await parseRoutine(text, {
    file: join(dir.path, "r.json"),
    label: "r.json",
    cwd: dir.path,
  });
  const [step] = routine.steps;
  const lines: string[] = [];
  const env = { summaryFile: join(dir.path, "summary.md"), outputFile: join(dir.path, "output") };
  const github = new GitHubRun({ write: (line) => lines.push(line), env, cwd: dir.path });
  const reporter = github.reporter({ inner: (write) => consoleReporter({ write }) });
  reporter.routineStarted(routine);
  reporter.stepStarted(step, 1);
  reporter.stepMessage(step, { type: "task-start", task: "transfer" });
  reporter.stepMessage(step, {
    type: "task-failed",
    task: "transfer",
    ms: 5,
    error: { message: "throttled" },
  });
  // as the runner gives it: the failed task's error, which names the step
  const { TaskFailedError } = await import("../orchestrator/errors.ts");
  reporter.stepRetry?.(step, 2, 1500, new TaskFailedError("s", "StagingExecutor", "transfer", "throttled"));
  reporter.stepMessage(step, { type: "task-start", task: "transfer" });
  reporter.stepMessage(step, { type: "task-end", task: "transfer", ms: 7 });
  reporter.stepMessage(step, { type: "done" });
  reporter.routineFinished(true, 20);
  assert.deepEqual(lines.filter((line) => line.startsWith("::")), [
    "::group::s (StagingExecutor)",
    "::endgroup::",
    "::warning title=step s%3A retrying::step \"s\" (StagingExecutor) task 'transfer' failed: throttled; attempt 2 in 1.5 s",
    "::group::s (StagingExecutor), try 2",
    "::endgroup::",
  ]);
  const summary = await Deno.readTextFile(env.summaryFile);
  assert.ok(summary.includes("| s (StagingExecutor) | transfer | ✅ succeeded | 7 ms |"), summary);
  assert.match(await Deno.readTextFile(env.outputFile), /^status<<(\S+)\nsucceeded\n\1$/m);
});

/** The lines GitHub reads, one per physical line, as the runner splits output (`\n`, `\r`). */
const physicalLines = (text: string) => text.split(/\r\n|\r|\n/);

Deno.test("workflow commands cannot be injected through names: refused with the routine, status invalid", async () => {
  await using dir = await tempDir();
  const ws = await workspace(dir.path);
  const text = JSON.stringify({
    routine_name: "evil\n::warning title=inj::injected\n../../x",
    executors: {
      "step\n::error::pwned": {
        executor: "StagingExecutor",
        params: { parent_directory: "in", dump_directory: "out" },
        tasks: ["transfer"],
      },
    },
  });
  await Deno.writeTextFile(join(ws, "routines/evil.json"), text);
  const run = await runAction(dir.path, ws, { LAKERUN_ROUTINE: "routines/evil.json" });
  assert.equal(run.code, 2, run.stderr);
  for (const line of [...physicalLines(run.stdout), ...physicalLines(run.stderr)]) {
    assert.doesNotMatch(line, /^\s*::(warning title=inj|error::pwned)/, JSON.stringify(line));
  }
  const annotations = commands(run.stdout);
  assert.equal(annotations.length, 2, run.stdout);
  assert.match(
    annotations[0],
    /^::error file=routines\/evil\.json,line=1,col=17,title=invalid routine::routine_name: /,
  );
  assert.match(
    annotations[1],
    /^::error file=routines\/evil\.json,line=1,col=\d+,title=invalid routine::executors\["step\\n::error::pwned"\]: /,
  );
  assert.equal(run.outputs.status, "invalid");
});

Deno.test("GitHub mode defuses every line of what it prints, names and messages a task or server gave included", async () => {
  const { GitHubRun } = await import("../orchestrator/cli/github.ts");
  const { consoleReporter } = await import("../orchestrator/cli/reporter.ts");
  // names validation refuses, given to the reporter anyway
  const step = {
    id: "step\n::error::pwned",
    index: 1,
    executor: { name: "StagingExecutor" },
    tasks: ["transfer"],
    options: {},
  } as never;
  const routine = { name: "evil\n::warning title=inj::injected", steps: [step] } as never;
  const lines: string[] = [];
  const github = new GitHubRun({ write: (line) => lines.push(line), env: {} });
  const reporter = github.reporter({ inner: (write) => consoleReporter({ write }) });
  reporter.routineStarted(routine);
  reporter.stepStarted(step, 1);
  reporter.stepMessage(step, { type: "task-start", task: "transfer" });
  reporter.stepMessage(step, {
    type: "event",
    task: "transfer",
    event: { type: "log", message: "server said:\n::error::remote\r##[error]x" },
  });
  reporter.stepMessage(step, {
    type: "task-failed",
    task: "transfer",
    ms: 1,
    error: { message: "x\n::add-mask::y" },
  });
  reporter.routineFinished(false, 5);
  github.text("a note\n::error::from a note");
  const commandLines = physicalLines(lines.join("\n")).filter((line) => /^\s*(::|##\[)/.test(line));
  assert.deepEqual(commandLines, [
    "::group::step%0A::error::pwned (StagingExecutor)",
    "::endgroup::",
    '::error title=step step%0A%3A%3Aerror%3A%3Apwned failed::step "step\\n::error::pwned" (StagingExecutor) ' +
    "task 'transfer' failed: x%0A::add-mask::y",
  ]);
});

Deno.test("--log-format json in GitHub mode: standard output holds JSON lines only, workflow commands go to standard error", async () => {
  await using dir = await tempDir();
  const ws = await workspace(dir.path);
  await Deno.writeTextFile(
    join(ws, "routines/leak.json"),
    JSON.stringify({
      routine_name: "leak",
      executors: {
        echo: {
          executor: "EchoExecutor",
          params: { message: "token is ${{ secrets.LAKERUN_TEST_SECRET }}", value: "v", fail: true },
          tasks: ["echo"],
        },
      },
    }),
  );
  const run = await runAction(dir.path, ws, {
    LAKERUN_ROUTINE: "routines/leak.json",
    LAKERUN_EXECUTORS: "plugins",
    LAKERUN_ARGS: "--log-format json",
    LAKERUN_TEST_SECRET: SECRET,
  });
  assert.equal(run.code, 1, run.stderr);
  const lines = run.stdout.trimEnd().split("\n");
  assert.ok(lines.length > 3, run.stdout);
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
  assert.ok(!run.stdout.includes(SECRET), "stdout shows the secret");
  const stderr = run.stderr.split("\n");
  assert.equal(stderr[0], "::add-mask::hunter2-Sekr3t%25value", run.stderr);
  assert.ok(stderr.some((line) => line.startsWith("::error title=step echo failed::")), run.stderr);
  assert.equal(run.outputs.status, "failed");
});

Deno.test("the job summary masks a secret that spans lines in an output", async () => {
  const { formatJobSummary } = await import("../orchestrator/cli/github.ts");
  const { SecretMask } = await import("../lib/mask.ts");
  const mask = new SecretMask();
  mask.add("line-one-secret\nline-two-secret");
  const task = { name: "echo", status: "succeeded" as const, ms: 1, files: 0, bytes: 0 };
  const summary = formatJobSummary({
    routine: "r",
    status: "succeeded",
    started: "2026-01-01T00:00:00.000Z",
    problems: [],
    steps: [{
      id: "e",
      executor: "EchoExecutor",
      status: "succeeded",
      continueOnError: false,
      tries: 1,
      tasks: [{ ...task, outputs: [["val", "tok=line-one-secret\nline-two-secret"], ["n", 1]] }],
    }],
  }, { mask });
  assert.ok(!/line-one|line-two/.test(summary), summary);
  assert.ok(summary.includes("| val = tok=\\*\\*\\*<br>n = 1 |"), summary);
});

Deno.test("a command line that exits 2 gives status invalid, as an invalid routine does", async () => {
  await using dir = await tempDir();
  const ws = await workspace(dir.path);
  await Deno.writeTextFile(
    join(ws, "routines/ok.json"),
    JSON.stringify({
      routine_name: "ok",
      executors: {
        StagingExecutor: { params: { parent_directory: "in", dump_directory: "out" }, tasks: ["transfer"] },
      },
    }),
  );
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ LAKERUN_DATE: "2024-13-01" }, /--date: "2024-13-01" is not a date/],
    // a value that looks like an option is still the value
    [{ LAKERUN_DATE: "--help" }, /--date: "--help" is not a date/],
    [{ LAKERUN_RESUME: "True" }, /no run "True" of routine "ok"/],
    [{ LAKERUN_ARGS: "--max-parallel 'x y'" }, /--max-parallel: "x y" is not a whole number/],
    // refused before lakerun knows its command and its log format
    [{ LAKERUN_ARGS: "--bogus" }, /unknown option '--bogus'/],
    [{ LAKERUN_ARGS: "--log-format xml" }, /--log-format: "xml" is not one of/],
  ];
  for (const [inputs, message] of cases) {
    const run = await runAction(dir.path, ws, { LAKERUN_ROUTINE: "routines/ok.json", ...inputs });
    const what = JSON.stringify(inputs);
    assert.equal(run.code, 2, `${what}: ${run.stderr}`);
    assert.match(run.stderr, message, what);
    assert.equal(run.outputs.status, "invalid", what);
    const annotations = commands(run.stdout);
    assert.equal(annotations.length, 1, `${what}: ${run.stdout}`);
    assert.match(annotations[0], /^::error title=lakerun::/, what);
    assert.match(run.summary, /⚠️ invalid/, what);
  }
});

Deno.test("inputs the action's script itself refuses: status invalid, one error annotation, exit 2", async () => {
  await using dir = await tempDir();
  const ws = await workspace(dir.path);
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ LAKERUN_ROUTINE: "" }, /^::error title=lakerun::the action's 'routine' input is required$/],
    [
      { LAKERUN_ROUTINE: "routines/ok.json", LAKERUN_ARGS: "--state-dir don't" },
      /^::error title=lakerun::the action's 'args' input cannot be split into arguments \(unmatched single quote\): --state-dir don't$/,
    ],
    [
      { LAKERUN_ROUTINE: "routines/ok.json", LAKERUN_ARGS: "'a\n::warning::b" },
      /^::error title=lakerun::the action's 'args' input cannot .*: 'a%0A::warning::b$/,
    ],
  ];
  for (const [inputs, annotation] of cases) {
    const run = await runAction(dir.path, ws, inputs);
    const what = JSON.stringify(inputs);
    assert.equal(run.code, 2, `${what}: ${run.stderr}`);
    assert.equal(run.outputs.status, "invalid", what);
    const annotations = commands(run.stdout);
    assert.equal(annotations.length, 1, `${what}: ${run.stdout}`);
    assert.match(annotations[0], annotation, what);
  }
});
