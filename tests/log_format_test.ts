/**
 * `--log-format json` (one JSON object per line on standard output, every string masked), `--quiet` (only errors
 * and the last line) in both formats, and the command-line checks of both flags. Runs the command line as a user
 * would, with the test plugin in tests/fixtures/log_plugins.
 *
 * Run: deno test -A tests/log_format_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lakerun, ROOT, tempDir } from "./support/lakerun.ts";

const PLUGINS = join(ROOT, "tests/fixtures/log_plugins");
const SECRET = "hunter2-Sekr3t";

/** A routine that stages one file, then runs the echo plugin with `echo` params. */
async function routine(dir: string, echo: Record<string, unknown>): Promise<string> {
  await Deno.mkdir(join(dir, "in"), { recursive: true });
  await Deno.writeTextFile(join(dir, "in/a.csv"), "a,b\n1,2\n");
  await Deno.writeTextFile(
    join(dir, "r.json"),
    JSON.stringify(
      {
        routine_name: "logged",
        executors: {
          StagingExecutor: { params: { parent_directory: "in", dump_directory: "out" }, tasks: ["transfer"] },
          echo: {
            executor: "EchoExecutor",
            params: { message: "hello", value: "v", ...echo },
            tasks: ["echo"],
          },
        },
      },
      null,
      2,
    ),
  );
  return "r.json";
}

const parseLines = (stdout: string) => stdout.trimEnd().split("\n").map((line) => JSON.parse(line));

Deno.test("--log-format json: one object per line, run id on each, figures on task_finished, the last line run_finished", async () => {
  await using dir = await tempDir();
  const file = await routine(dir.path, {});
  const result = await lakerun(["run", "--executors", PLUGINS, "--log-format", "json", file], {
    cwd: dir.path,
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  const lines = parseLines(result.stdout);
  assert.deepEqual(lines.map((line) => [line.event, line.step ?? "", line.task ?? ""]), [
    ["run_started", "", ""],
    ["step_started", "StagingExecutor", ""],
    ["task_started", "StagingExecutor", "transfer"],
    ["output", "StagingExecutor", "transfer"], // files
    ["output", "StagingExecutor", "transfer"], // bytes
    ["output", "StagingExecutor", "transfer"], // path
    ["task_finished", "StagingExecutor", "transfer"],
    ["step_finished", "StagingExecutor", ""],
    ["step_started", "echo", ""],
    ["task_started", "echo", "echo"],
    ["log", "echo", "echo"],
    ["output", "echo", "echo"],
    ["output", "echo", "echo"],
    ["task_finished", "echo", "echo"],
    ["step_finished", "echo", ""],
    ["run_finished", "", ""],
  ]);
  const [stateFile] = (await Array.fromAsync(Deno.readDir(join(dir.path, ".lakerun"))))
    .map((entry) => join(dir.path, ".lakerun", entry.name, "run.json"));
  const state = JSON.parse(await Deno.readTextFile(stateFile));
  for (const line of lines) {
    assert.deepEqual(Object.keys(line).slice(0, 3), ["time", "level", "run_id"]);
    assert.ok(!Number.isNaN(Date.parse(line.time)));
    assert.equal(line.run_id, state.runId);
    assert.equal(line.routine, "logged");
    assert.equal(typeof line.message, "string");
  }
  const [transfer] = lines.filter((line) => line.event === "task_finished");
  assert.deepEqual([transfer.files, transfer.bytes, typeof transfer.ms], [1, 8, "number"]);
  assert.deepEqual(lines.filter((line) => line.event === "step_finished").map((line) => line.status), [
    "succeeded",
    "succeeded",
  ]);
  assert.deepEqual(lines.find((line) => line.event === "log").message, "hello");
  assert.deepEqual(
    lines.filter((line) => line.event === "output").map((line) => [line.name, line.value]),
    [["files", 1], ["bytes", 8], ["path", join(await Deno.realPath(dir.path), "out")], ["greeting", "v"], [
      "count",
      3,
    ]],
  );
  assert.deepEqual([lines.at(-1).level, lines.at(-1).status], ["info", "succeeded"]);
});

Deno.test("--log-format json masks secrets in every string and ends a failed run with an error line", async () => {
  await using dir = await tempDir();
  const file = await routine(dir.path, {
    message: "token ${{ secrets.LAKERUN_TEST_SECRET }}",
    value: "${{ secrets.LAKERUN_TEST_SECRET }}",
    fail: true,
  });
  const result = await lakerun(["run", "--executors", PLUGINS, "--log-format", "json", file], {
    cwd: dir.path,
    env: { LAKERUN_TEST_SECRET: SECRET },
  });
  assert.equal(result.code, 1);
  assert.ok(!result.stdout.includes(SECRET) && !result.stderr.includes(SECRET));
  const lines = parseLines(result.stdout);
  assert.equal(lines.find((line) => line.event === "log").message, "token ***");
  assert.equal(lines.find((line) => line.name === "greeting").value, "***");
  const failed = lines.find((line) => line.event === "task_failed");
  assert.deepEqual([failed.level, failed.step, failed.task, failed.message], [
    "error",
    "echo",
    "echo",
    "echo failed: refused ***",
  ]);
  // the failed step's end is logged too
  const ended = lines.find((line) => line.event === "step_finished" && line.step === "echo");
  assert.deepEqual([ended?.level, ended?.status], ["info", "failed"]);
  assert.deepEqual([lines.at(-1).event, lines.at(-1).level, lines.at(-1).status], [
    "run_finished",
    "error",
    "failed",
  ]);
});

Deno.test("--log-format json: an invalid routine is an invalid line per problem with file, line and column", async () => {
  await using dir = await tempDir();
  const step = `    "StagingExecutor": { "params": { "parent_directory": 3 }, "tasks": ["transfer"] }`;
  await Deno.writeTextFile(
    join(dir.path, "r.json"),
    ["{", '  "routine_name": "x",', '  "executors": {', step, "  }", "}"].join("\n"),
  );
  const result = await lakerun(["run", "--log-format", "json", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 2);
  const lines = parseLines(result.stdout);
  const column = (text: string) => step.indexOf(text) + 1;
  assert.deepEqual(lines.map((line) => [line.event, line.file, line.line, line.col, line.path]), [
    // in the file's order: a missing param is placed at its object
    ["invalid", "r.json", 4, column('{ "parent'), "executors.StagingExecutor.params.dump_directory"],
    ["invalid", "r.json", 4, column("3 }"), "executors.StagingExecutor.params.parent_directory"],
    ["run_finished", undefined, undefined, undefined, undefined],
  ]);
  assert.equal(
    lines[1].message,
    `r.json:4:${
      column("3 }")
    }: executors.StagingExecutor.params.parent_directory: expected string, received number (3)`,
  );
  assert.equal(lines[2].status, "invalid");
  assert.equal(result.stderr.trim().split("\n").length, 2, "standard error still lists every problem");
});

Deno.test("--quiet prints only the failed task and the last line; in JSON only error lines and run_finished", async () => {
  await using dir = await tempDir();
  const file = await routine(dir.path, {});
  const ok = await lakerun(["run", "--executors", PLUGINS, "--quiet", file], { cwd: dir.path });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^✓ done in \d/);
  assert.equal(ok.stdout.trim().split("\n").length, 1, ok.stdout);

  await routine(dir.path, { fail: true });
  const failed = await lakerun(["run", "--executors", PLUGINS, "--quiet", file], { cwd: dir.path });
  assert.equal(failed.code, 1);
  assert.deepEqual(failed.stdout.trimEnd().split("\n").map((line) => line.replace(/\d[\d.]* m?s$/, "T")), [
    "  ✗ echo failed: refused v",
    "✗ failed after T",
  ]);

  const json = await lakerun(["run", "--executors", PLUGINS, "--quiet", "--log-format", "json", file], {
    cwd: dir.path,
  });
  assert.equal(json.code, 1);
  assert.deepEqual(parseLines(json.stdout).map((line) => [line.level, line.event]), [
    ["error", "task_failed"],
    ["error", "run_finished"],
  ]);
});

Deno.test("--log-format takes text or json, and both flags are options of 'run' only", async () => {
  for (
    const [args, message] of [
      [["run", "--log-format", "xml", "r.json"], /--log-format: "xml" is not one of "text", "json"/],
      [["validate", "--log-format", "json", "r.json"], /--log-format is an option of 'run', not 'validate'/],
      [["plan", "--quiet", "r.json"], /--quiet is an option of 'run', not 'plan'/],
    ] as Array<[string[], RegExp]>
  ) {
    const result = await lakerun(args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split("\n").length, 1);
  }
});

Deno.test("--log-format json: a command line that exits 2 ends with run_finished invalid, as an invalid routine does", async () => {
  await using dir = await tempDir();
  const file = await routine(dir.path, {});
  for (
    const args of [
      ["--date", "2024-13-01"],
      ["--max-parallel", "x y"],
      ["--resume", "--run-id", "True"],
      ["--every", "day"],
      // refused by the table of which command takes which option
      ["--state-dir="],
      ["--iam"],
    ]
  ) {
    const result = await lakerun(["run", "--executors", PLUGINS, "--log-format", "json", ...args, file], {
      cwd: dir.path,
    });
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    const lines = parseLines(result.stdout);
    assert.deepEqual(lines.map((line) => [line.event, line.status]), [["error", undefined], [
      "run_finished",
      "invalid",
    ]], args.join(" "));
  }
});

Deno.test("--log-format json in a backfill: every line is JSON, the dates and the tally as note lines", async () => {
  await using dir = await tempDir();
  const file = await routine(dir.path, { message: "for ${{ run.date }}" });
  const result = await lakerun(
    [
      "run",
      "--executors",
      PLUGINS,
      "--log-format",
      "json",
      "--from",
      "2024-02-28",
      "--to",
      "2024-03-01",
      "--every",
      "day",
      file,
    ],
    { cwd: dir.path },
  );
  assert.equal(result.code, 0, result.stderr);
  const lines = parseLines(result.stdout);
  assert.deepEqual(
    lines.filter((line) => line.step === "echo" && line.event === "log").map((line) => line.message),
    [
      "for 2024-02-28",
      "for 2024-02-29",
      "for 2024-03-01",
    ],
  );
  assert.equal(lines.filter((line) => line.event === "run_finished").length, 3);
  assert.deepEqual(lines.filter((line) => line.event === "run_started").map((line) => line.date), [
    "2024-02-28",
    "2024-02-29",
    "2024-03-01",
  ]);
  const notes = lines.filter((line) => line.event === "note").map((line) => line.message);
  assert.equal(notes.length, 4, notes.join("\n"));
  assert.match(notes.at(-1), /3 succeeded, 0 failed/);
});

Deno.test("the last error line cannot start a workflow command: each of its lines is defused", async () => {
  await using dir = await tempDir();
  const file = await routine(dir.path, {
    value: "first\n::warning title=injected::from a message",
    fail: true,
  });
  const result = await lakerun(["run", "--executors", PLUGINS, file], {
    cwd: dir.path,
    env: { GITHUB_ACTIONS: "true" },
  });
  assert.equal(result.code, 1);
  const lines = `${result.stdout}\n${result.stderr}`.split(/\r\n|\r|\n/);
  assert.ok(lines.some((line) => line.includes("warning title=injected")), result.stderr);
  assert.ok(!lines.some((line) => /^\s*::warning/.test(line)), `${result.stdout}\n${result.stderr}`);
});
