/** Console output: one line per task with what it moved, and download progress for terminals and CI logs. */
import assert from "node:assert/strict";
import { consoleReporter } from "../orchestrator/cli/reporter.ts";
import { formatBytes, formatDuration } from "../lib/format.ts";
import type { Step } from "../orchestrator/routine/routine.ts";

const step = { id: "fetch", index: 1, executor: { name: "DownloaderExecutor" } } as unknown as Step;

Deno.test("sizes and durations read naturally", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(200 * 1024 * 1024), "200.0 MiB");
  assert.equal(formatDuration(12), "12 ms");
  assert.equal(formatDuration(1234), "1.2 s");
  assert.equal(formatDuration(125_000), "2 min 5 s");
});

Deno.test("a task's line says what it moved; a step id that is not the executor's name shows both", () => {
  const lines: string[] = [];
  const reporter = consoleReporter({ write: (line) => lines.push(line) });
  reporter.stepStarted(step, 2);
  reporter.stepMessage(step, { type: "task-start", task: "download" });
  reporter.stepMessage(step, {
    type: "event",
    task: "download",
    event: { type: "moved", files: 3, bytes: 3 * 1024 * 1024 },
  });
  reporter.stepMessage(step, { type: "task-end", task: "download", ms: 1500 });
  reporter.stepMessage(step, {
    type: "task-failed",
    task: "post",
    ms: 1,
    error: { message: "no staged copy", stack: "at x" },
  });
  // a message of several lines (a database's DETAIL and HINT) reads as one item: its other lines indented
  reporter.stepMessage(step, {
    type: "task-failed",
    task: "load",
    ms: 1,
    error: { message: 'value too long\nDETAIL: row 3\nHINT: widen "name"' },
  });
  reporter.warning?.("step changed\nsince the last attempt");
  assert.deepEqual(lines.join("\n").split("\n"), [
    "[1/2] fetch (DownloaderExecutor)",
    "  ✓ download  3 files, 3.0 MiB  1.5 s",
    "  ✗ post failed: no staged copy",
    "  ✗ load failed: value too long",
    "      DETAIL: row 3",
    '      HINT: widen "name"',
    "! step changed",
    "  since the last attempt",
  ]);
});

Deno.test("steps running at once: a line after another step's skip line is headed by its step again", () => {
  const lines: string[] = [];
  const reporter = consoleReporter({ write: (line) => lines.push(line) });
  const slow = { id: "b", index: 2, executor: { name: "DownloaderExecutor" } } as unknown as Step;
  const skipped = { id: "d", index: 4, executor: { name: "DownloaderExecutor" } } as unknown as Step;
  reporter.stepStarted(slow, 5);
  reporter.stepSkipped?.(skipped, 'step "a" failed');
  reporter.stepMessage(slow, { type: "task-end", task: "download", ms: 2100 });
  assert.deepEqual(lines, [
    "[2/5] b (DownloaderExecutor)",
    '[4/5] d (DownloaderExecutor) skipped: step "a" failed',
    "[2/5] b (DownloaderExecutor) …",
    "  ✓ download  2.1 s",
  ]);
});

Deno.test("without a terminal, progress is a line every interval with size, rate and ETA", () => {
  const lines: string[] = [];
  const reporter = consoleReporter({ write: (line) => lines.push(line), progressInterval: 0 });
  reporter.stepMessage(step, { type: "task-start", task: "download" });
  const progress = (bytes: number) =>
    reporter.stepMessage(step, {
      type: "event",
      task: "download",
      event: { type: "progress", bytes, total: 100 * 1024 * 1024, label: "http://h/x.zip" },
    });
  progress(10 * 1024 * 1024);
  progress(20 * 1024 * 1024);
  assert.equal(lines.length, 2);
  assert.match(lines[1], /^ {4}http:\/\/h\/x\.zip: 20\.0 MiB of 100\.0 MiB {2}[\d.]+ [KMG]iB\/s {2}ETA /);
});

Deno.test("on a terminal, progress redraws one live line and clears it before the next output", () => {
  const lines: string[] = [];
  const live: string[] = [];
  const reporter = consoleReporter({
    write: (line) => lines.push(line),
    progressLine: (text) => live.push(text),
  });
  reporter.stepMessage(step, { type: "task-start", task: "download" });
  reporter.stepMessage(step, {
    type: "event",
    task: "download",
    event: { type: "progress", bytes: 5, total: 10 },
  });
  reporter.stepMessage(step, { type: "task-end", task: "download", ms: 10 });
  assert.equal(live.length, 2);
  assert.match(live[0], /5 B of 10 B/);
  assert.equal(live[1], "", "cleared");
  assert.deepEqual(lines, ["  ✓ download  10 ms"]);
});

Deno.test("names with line breaks or escapes print on their line, and no line can start a workflow command", async () => {
  const { defuseCommands } = await import("../orchestrator/cli/workflow_commands.ts");
  // what validation refuses, given to the reporter anyway
  const evil = {
    id: "step\n::error::pwned",
    index: 1,
    executor: { name: "StagingExecutor" },
  } as unknown as Step;
  const routine = { name: "evil\n::warning title=inj::injected\x1b[2J", steps: [evil] } as never;
  const lines: string[] = [];
  const reporter = consoleReporter({ write: (line) => lines.push(line) });
  reporter.routineStarted(routine);
  reporter.stepStarted(evil, 1);
  reporter.stepMessage(evil, { type: "task-start", task: "transfer" });
  reporter.stepMessage(evil, {
    type: "event",
    task: "transfer",
    event: { type: "log", message: "from a server:\n::error::remote\r  ##[error]x" },
  });
  reporter.stepMessage(evil, { type: "task-failed", task: "transfer", ms: 1, error: { message: "a\n::b" } });
  assert.deepEqual(lines.slice(0, 2), [
    "lakerun · evil\\n::warning title=inj::injected\\u001b[2J · 1 step",
    "[1/1] step\\n::error::pwned (StagingExecutor)",
  ]);
  const physical = lines.join("\n").split(/\r\n|\r|\n/);
  for (const line of physical) assert.doesNotMatch(line, /^\s*(::|##\[)/, JSON.stringify(line));
  // a carriage return from data is escaped (it would overwrite the line on a terminal)
  assert.ok(physical.includes("    :\u200b:error::remote\\r  ##[error]x"), JSON.stringify(physical));
  assert.equal(defuseCommands("ok\r\n::x\n\u0085::y"), "ok\r\n:\u200b:x\n\u0085:\u200b:y");
});

Deno.test("the last line says done, failed, or interrupted when the run's signal was aborted", () => {
  const last = (ok: boolean, signal?: AbortSignal) => {
    const lines: string[] = [];
    consoleReporter({ write: (line) => lines.push(line), signal }).routineFinished(ok, 1900);
    return lines.at(-1);
  };
  const aborted = new AbortController();
  aborted.abort(new DOMException("interrupted by SIGINT", "AbortError"));
  assert.equal(last(true), "✓ done in 1.9 s");
  assert.equal(last(false), "✗ failed after 1.9 s");
  assert.equal(last(false, new AbortController().signal), "✗ failed after 1.9 s");
  assert.equal(last(false, aborted.signal), "✗ interrupted after 1.9 s");
});

Deno.test("control characters from data are escaped in every failure, log and warning line, in text, JSON and GitHub modes", async () => {
  const { jsonLogReporter } = await import("../orchestrator/cli/json_log.ts");
  const { workflowCommand } = await import("../orchestrator/cli/github.ts");
  const data =
    'invalid input syntax for type bigint: "a\x1b]0;TITLE\x07\x1b[2J\n::error title=inj::INJECTED\u009b31m\u202e"';
  // deno-lint-ignore no-control-regex -- control characters are what the test looks for
  const raw = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;
  const lines: string[] = [];
  const reporter = consoleReporter({ write: (line) => lines.push(line), debug: true });
  reporter.stepStarted(step, 1);
  reporter.stepMessage(step, { type: "event", task: "load", event: { type: "log", message: data } });
  reporter.stepMessage(step, {
    type: "task-failed",
    task: "load",
    ms: 1,
    error: { message: data, stack: data },
  });
  reporter.warning?.(data);
  reporter.stepSkipped?.(step, data);
  for (const line of lines) assert.ok(!raw.test(line), JSON.stringify(line));
  assert.ok(lines.some((line) => line.includes("a\\u001b]0;TITLE\\u0007\\u001b[2J")), lines.join("\n"));
  const json: string[] = [];
  const logs = jsonLogReporter({ write: (line: string) => json.push(line) });
  logs.stepMessage(step, { type: "task-failed", task: "load", ms: 1, error: { message: data } });
  for (const line of json) {
    assert.ok(!raw.test(line) && !/[\u0080-\u009f\u202a-\u202e]/.test(line), line);
    JSON.parse(line); // still JSON
  }
  // the value itself is kept in JSON (only escaped for the terminal)
  assert.ok(
    json.some((line) => JSON.parse(line).message.includes("\u001b]0;TITLE\u0007\u001b[2J")),
    json.join("\n"),
  );
  const command = workflowCommand("error", { title: "lakerun" }, data);
  assert.ok(!raw.test(command), command);
});
