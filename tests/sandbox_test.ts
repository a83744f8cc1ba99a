/**
 * The permission sandbox: each step's Worker gets exactly its scope, and a refusal fails that step with a
 * message naming the step and the resource, leaving the parent and the other steps unaffected.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { lakerun, lakerunCommand, ROOT, runRoutineJson, tempDir } from "./support/lakerun.ts";

const PLUGINS = join(ROOT, "tests/fixtures/plugins");

function probeRoutine(task: string, target: string, extra: Record<string, unknown> = {}) {
  return {
    routine_name: "probe",
    executors: {
      first: { executor: "ProbeExecutor", params: { folder: "own" }, tasks: ["write_inside"] },
      probe: { executor: "ProbeExecutor", params: { folder: "own", target, ...extra }, tasks: [task] },
    },
  };
}

Deno.test("a step may write inside its scope", async () => {
  await using dir = await tempDir();
  const { error } = await runRoutineJson(probeRoutine("write_inside", ""), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.equal(error, undefined);
  assert.equal(await Deno.readTextFile(join(dir.path, "own/ok.txt")), "ok\n");
});

Deno.test("reading outside the scope fails the step, naming step and file; earlier steps' work stays", async () => {
  await using dir = await tempDir();
  const secret = join(dir.path, "secret.txt");
  await Deno.writeTextFile(secret, "s3cr3t");
  const { lines, error } = await runRoutineJson(probeRoutine("read_target", secret), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.ok(error, "the run must fail");
  assert.match(
    error.message,
    /step "probe" \(ProbeExecutor\) task 'read_target' failed: permission denied: read access to .*secret\.txt is outside this step's scope/,
  );
  assert.ok(!lines.join("\n").includes("s3cr3t"));
  assert.equal(
    await Deno.readTextFile(join(dir.path, "own/ok.txt")),
    "ok\n",
    "the first step's output is intact",
  );
});

Deno.test("writing outside the scope is refused and nothing is written", async () => {
  await using dir = await tempDir();
  const target = join(dir.path, "outside.txt");
  const { error } = await runRoutineJson(probeRoutine("write_target", target), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.match(error?.message ?? "", /permission denied: write access to .*outside\.txt/);
  await assert.rejects(Deno.stat(target), Deno.errors.NotFound);
});

Deno.test("a path that climbs out of the folder with .. is outside the scope", async () => {
  await using dir = await tempDir();
  const { error } = await runRoutineJson(probeRoutine("write_target", "own/../escaped.txt"), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.match(error?.message ?? "", /permission denied: write access to .*escaped\.txt/);
  await assert.rejects(Deno.stat(join(dir.path, "escaped.txt")), Deno.errors.NotFound);
});

Deno.test("an undeclared environment variable is refused; a declared one is readable", async () => {
  await using dir = await tempDir();
  Deno.env.set("LAKERUN_PROBE_ALLOWED", "yes");
  Deno.env.set("LAKERUN_PROBE_SECRET", "hidden");
  const allowed = await runRoutineJson(probeRoutine("read_env", "LAKERUN_PROBE_ALLOWED"), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.equal(allowed.error, undefined);
  assert.ok(allowed.lines.some((line) => line.includes("value: yes")));
  const denied = await runRoutineJson(probeRoutine("read_env", "LAKERUN_PROBE_SECRET"), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.match(
    denied.error?.message ?? "",
    /permission denied: env access to LAKERUN_PROBE_SECRET is outside this step's scope/,
  );
});

Deno.test("connecting to a host other than the declared one is refused", async () => {
  await using dir = await tempDir();
  const allowedServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("allowed"),
  );
  const otherServer = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("other"),
  );
  try {
    const host = `127.0.0.1:${allowedServer.addr.port}`;
    const ok = await runRoutineJson(probeRoutine("fetch_target", `http://${host}/`, { host }), {
      cwd: dir.path,
      executorDirs: [PLUGINS],
    });
    assert.equal(ok.error, undefined);
    assert.ok(ok.lines.some((line) => line.includes("status 200: allowed")));
    const other = `http://127.0.0.1:${otherServer.addr.port}/`;
    const denied = await runRoutineJson(probeRoutine("fetch_target", other, { host }), {
      cwd: dir.path,
      executorDirs: [PLUGINS],
    });
    assert.match(
      denied.error?.message ?? "",
      new RegExp(`permission denied: net access to 127\\.0\\.0\\.1:${otherServer.addr.port}`),
    );
  } finally {
    await allowedServer.shutdown();
    await otherServer.shutdown();
  }
});

Deno.test("starting a program is refused when the scope has no run permission", async () => {
  await using dir = await tempDir();
  const { error } = await runRoutineJson(probeRoutine("run_target", "true"), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.match(error?.message ?? "", /permission denied: run access to true/);
});

Deno.test("an uncaught error inside a step fails that step, not the parent", async () => {
  await using dir = await tempDir();
  const { error } = await runRoutineJson(probeRoutine("crash_unhandled", ""), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.match(error?.message ?? "", /task 'crash_unhandled' failed: .*boom from a timer/);
  // the parent still runs routines afterwards
  const again = await runRoutineJson(probeRoutine("write_inside", ""), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.equal(again.error, undefined);
});

/** `promise`, or a rejection after `ms` (a step that hangs lakerun fails the test instead of hanging it). */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${ms} ms: lakerun hangs`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

for (const [task, target] of [["exit_worker", ""], ["exit_worker", "later"], ["close_worker", ""]]) {
  Deno.test(`a step whose Worker ends without a word (${task}${target && " from a timer"}) fails its task instead of hanging`, async () => {
    await using dir = await tempDir();
    const { error } = await within(
      15_000,
      runRoutineJson(probeRoutine(task, target), { cwd: dir.path, executorDirs: [PLUGINS] }),
    );
    assert.equal(
      error?.message,
      `step "probe" (ProbeExecutor) task '${task}' failed: the step's Worker ended before task '${task}' did (a step must not call Deno.exit() or self.close())`,
    );
  });
}

Deno.test("a step whose Worker ended is a failed task like any other: continue_on_error lets the run go on", async () => {
  await using dir = await tempDir();
  const routine = probeRoutine("exit_worker", "");
  const { error, lines } = await within(
    15_000,
    runRoutineJson({
      ...routine,
      executors: {
        probe: { ...routine.executors.probe, continue_on_error: true },
        after: { executor: "ProbeExecutor", params: { folder: "after" }, tasks: ["write_inside"] },
      },
    }, { cwd: dir.path, executorDirs: [PLUGINS] }),
  );
  assert.equal(error, undefined, lines.join("\n"));
  assert.equal(await Deno.readTextFile(join(dir.path, "after/ok.txt")), "ok\n", "the next step ran");
  assert.ok(lines.some((line) => /step "probe" failed; continue_on_error/.test(line)), lines.join("\n"));
});

Deno.test("the command line: a step calling Deno.exit() fails with one line and exit 1; the record says failed", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "r.json"), JSON.stringify(probeRoutine("exit_worker", "")));
  const child = lakerunCommand(["run", "--executors", PLUGINS, "r.json"], { cwd: dir.path }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  const output = await child.output();
  clearTimeout(killer);
  const result = { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
  assert.equal(result.code, 1, result.stderr);
  assert.equal(
    result.stderr,
    `step "probe" (ProbeExecutor) task 'exit_worker' failed: the step's Worker ended before task 'exit_worker' did (a step must not call Deno.exit() or self.close())\n`,
  );
  const runs = JSON.parse((await lakerun(["runs", "--json", "r.json"], { cwd: dir.path })).stdout);
  assert.deepEqual([runs[0].status, runs[0].steps.probe.status], ["failed", "failed"]);
});

Deno.test("a plugin whose top-level code fails, exits or is refused by its scope fails its step in one line", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "plugins"));
  const sdk = new URL("../sdk/executor.ts", import.meta.url).href;
  const plugin = (topLevel: string) =>
    `import { defineExecutor } from ${JSON.stringify(sdk)};
const inWorker = typeof WorkerGlobalScope !== "undefined"; // lakerun's own check of the routine may
${topLevel}
export default defineExecutor({
  name: "TopExecutor",
  description: "Misbehaves at the top of its module.",
  params: (z) => z.strictObject({ folder: z.string() }),
  permissions: (params, { resolve }) => ({ write: [resolve(params.folder)] }),
  tasks: { hello: { description: "Logs", run: ({ log }) => log("hello") } },
});
`;
  await Deno.writeTextFile(
    join(dir.path, "r.json"),
    JSON.stringify({
      routine_name: "top",
      executors_dir: "plugins",
      executors: { TopExecutor: { params: { folder: "own" }, tasks: ["hello"] } },
    }),
  );
  const failed = `step "TopExecutor" (TopExecutor) task 'hello' failed: `;
  const cases = [
    {
      topLevel: 'const host = inWorker ? await Deno.readTextFile("/etc/hostname") : "";',
      message: "TopExecutor's module failed to load: permission denied: read access to /etc/hostname is " +
        "outside this step's scope",
    },
    {
      topLevel: 'if (inWorker) throw new Error("boom");',
      message: "TopExecutor's module failed to load: boom",
    },
    {
      topLevel: 'if (inWorker) Promise.reject(new Error("nobody awaits"));',
      message: "TopExecutor's module failed after it loaded: nobody awaits",
    },
    // before the fix, 3 runs in 7 never ended: the Worker was gone before the lifeline reached it
    {
      topLevel: "if (inWorker) Deno.exit(3);",
      message:
        "the step's Worker ended before task 'hello' did (a step must not call Deno.exit() or self.close())",
    },
  ];
  for (const { topLevel, message } of cases) {
    await Deno.writeTextFile(join(dir.path, "plugins/TopExecutor.ts"), plugin(topLevel));
    // whether the failure comes before or after the step's Worker listens is chance: several runs each
    for (let attempt = 0; attempt < 3; attempt++) {
      const child = lakerunCommand(["run", "--new-run", "r.json"], { cwd: dir.path }).spawn();
      const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      const output = await child.output();
      clearTimeout(killer);
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 1, `${topLevel}: ${stderr}`);
      assert.equal(stderr, `${failed}${message}\n`, topLevel);
    }
    const runs = JSON.parse((await lakerun(["runs", "--json", "r.json"], { cwd: dir.path })).stdout);
    assert.equal(runs[0].status, "failed");
  }
});

Deno.test("SIGINT while a step finishes its work regardless: exit 130 and its last line, no crash", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "r.json"), JSON.stringify(probeRoutine("spin", "")));
  const child = lakerunCommand(["run", "--executors", PLUGINS, "r.json"], { cwd: dir.path }).spawn();
  while (!(await Deno.stat(join(dir.path, "own/spinning.txt")).catch(() => undefined))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill("SIGINT");
  const output = await child.output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 130, stderr);
  assert.doesNotMatch(stderr, /Uncaught|TypeError| {4}at /);
  assert.equal(stderr.trim().split("\n").at(-1), "lakerun: interrupted by SIGINT", stderr);
});

Deno.test("the command line reports a denial in one line and exits 1", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(
    join(dir.path, "r.json"),
    JSON.stringify(probeRoutine("read_target", "/etc/hostname")),
  );
  const result = await lakerun(["run", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /^step "probe" \(ProbeExecutor\) task 'read_target' failed: permission denied: read access to \/etc\/hostname is outside this step's scope\n$/,
  );
  assert.doesNotMatch(result.stderr + result.stdout, / {4}at /, "no stack trace without --debug");
});

Deno.test("plan shows the exact scope each Worker gets", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(
    join(dir.path, "r.json"),
    JSON.stringify(probeRoutine("read_target", "x", { host: "example.org:8443" })),
  );
  const result = await lakerun(["plan", "--json", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stderr);
  const plan = JSON.parse(result.stdout);
  const probe = plan.steps[1];
  assert.equal(probe.id, "probe");
  assert.deepEqual(probe.permissions.net, ["example.org:8443"]);
  assert.deepEqual(probe.permissions.env, ["LAKERUN_PROBE_ALLOWED"]);
  assert.deepEqual(probe.permissions.run, []);
  const real = await Deno.realPath(dir.path);
  assert.ok(
    probe.permissions.write.includes(join(real, "own")) ||
      probe.permissions.write.includes(join(dir.path, "own")),
  );
  assert.ok(probe.permissions.write.some((p: string) => p.includes("/.lakerun/")), "the step's state folder");
  assert.equal(probe.permissions.write.length, 2);
});

Deno.test("a step's helper thread has exactly the step's permissions", async () => {
  await using dir = await tempDir();
  const secret = join(dir.path, "secret.txt");
  await Deno.writeTextFile(secret, "s3cr3t");
  const { lines, error } = await runRoutineJson(probeRoutine("helper_access", secret), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.equal(error, undefined);
  assert.equal(await Deno.readTextFile(join(dir.path, "own/ok.txt")), "ok from a helper\n");
  assert.ok(lines.some((line) => /wrote .*own\/ok\.txt/.test(line)), lines.join("\n"));
  assert.ok(
    lines.some((line) => /NotCapable: Requires read access to .*secret\.txt/.test(line)),
    lines.join("\n"),
  );
  assert.ok(!lines.join("\n").includes("s3cr3t"));
});

Deno.test("a step's helper threads end with the step", async () => {
  await using dir = await tempDir();
  const ticks = join(dir.path, "own/ticks.txt");
  const { lines, error } = await runRoutineJson(probeRoutine("helper_ticking", ticks), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.equal(error, undefined, lines.join("\n"));
  const atEnd = (await Deno.readTextFile(ticks)).length;
  assert.ok(atEnd > 0, "the helper ran");
  await new Promise((done) => setTimeout(done, 200));
  assert.equal((await Deno.readTextFile(ticks)).length, atEnd, "nothing written after the step ended");
});

Deno.test("a helper thread's uncaught error is told to its owner; the step goes on", async () => {
  await using dir = await tempDir();
  const { lines, error } = await runRoutineJson(probeRoutine("helper_crash", ""), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.equal(error, undefined);
  assert.ok(lines.some((line) => /told: .*helper boom/.test(line)), lines.join("\n"));
});

Deno.test("helper threads: only from blob: URLs, at most four at a time", async () => {
  await using dir = await tempDir();
  const { lines, error } = await runRoutineJson(probeRoutine("helper_limits", ""), {
    cwd: dir.path,
    executorDirs: [PLUGINS],
  });
  assert.equal(error, undefined);
  const text = lines.join("\n");
  assert.match(text, /helper thread refused: a helper thread runs from a blob: URL only/);
  assert.match(text, /after 4: helper thread refused: at most 4 helper threads/);
  assert.match(text, /then 1 more/, "ended helpers free their places");
});

Deno.test("a plugin asking for network access Deno cannot grant (*, a URL) is refused at validation, naming the step", async () => {
  await using dir = await tempDir();
  for (const host of ["*", "http://example.com", "a b:80"]) {
    await Deno.writeTextFile(
      join(dir.path, "r.json"),
      JSON.stringify(probeRoutine("write_inside", "", { host })),
    );
    const result = await lakerun(["validate", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
    assert.equal(result.code, 2, result.stderr);
    assert.ok(
      result.stderr.startsWith("r.json:1:") &&
        result.stderr.includes(
          `executors.probe: ProbeExecutor asks for network access to ${
            JSON.stringify(host)
          }, which is no host`,
        ),
      result.stderr,
    );
  }
  // hosts Deno grants pass
  for (const host of ["example.com", "example.com:443", "127.0.0.1:8080", "[::1]:9000"]) {
    await Deno.writeTextFile(
      join(dir.path, "r.json"),
      JSON.stringify(probeRoutine("write_inside", "", { host })),
    );
    const result = await lakerun(["validate", "--executors", PLUGINS, "r.json"], { cwd: dir.path });
    assert.equal(result.code, 0, `${host}: ${result.stderr}`);
  }
});
