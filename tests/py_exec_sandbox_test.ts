/**
 * The notebook's Python transform (`py_exec_path`) in its own sandbox, and lakerun's own state out of reach:
 *
 * - probe transforms try what a hostile or careless transform would: read `/etc/passwd`, write beside the
 *   staging folder, connect to a loopback server this test runs, start `/bin/sh`, read the parent process's
 *   environment through `/proc`, find a secret in `os.environ`. Each is refused under `best_effort` on this
 *   machine, and the task's error names the path or the connection; with `py_exec_sandbox: "off"` the same
 *   read succeeds, which shows that the refusals are the sandbox's;
 * - real transforms (a csv/json one using a temporary file and a child interpreter; the notebook's retail
 *   routine run as shipped) write byte for byte what `python3` run directly writes;
 * - `required` on a kernel without Landlock (simulated with a seccomp filter: tests/support/no_landlock.ts)
 *   fails before the transform runs, `best_effort` there runs it unconfined and says so, and `plan` reports
 *   which applies;
 * - a folder param that holds lakerun's state folder or lies inside it is refused by validate, plan and run
 *   (exit 2, nothing runs); archive entries inside `.git`, `.hg` or `.svn` folders are refused unless
 *   `allow_vcs_metadata`.
 *
 * Linux with Landlock (ABI 4 or later for the connect probe) and `python3` on PATH. Run alone with
 * `deno test -A tests/py_exec_sandbox_test.ts`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT, runRoutineJson, tempDir } from "./support/lakerun.ts";
import { treeOf } from "./support/trees.ts";
import { withoutLandlock } from "./support/no_landlock.ts";
import { buildZip, memorySink, streamOf } from "./support/zip_fixtures.ts";
import { extractZipFile, extractZipStream, ZipError } from "../lib/zip/mod.ts";

const decoder = new TextDecoder();

/** `lakerun ARGS` in `cwd`; with `noLandlock`, on a simulated kernel without Landlock. */
async function cli(
  args: string[],
  options: { cwd: string; env?: Record<string, string>; noLandlock?: boolean },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const lakerun = [
    "run",
    "-A",
    "--quiet",
    "--config",
    join(ROOT, "deno.json"),
    join(ROOT, "main.ts"),
    ...args,
  ];
  const { program, args: argv } = options.noLandlock
    ? withoutLandlock(Deno.execPath(), lakerun)
    : { program: Deno.execPath(), args: lakerun };
  const output = await new Deno.Command(program, {
    args: argv,
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
  }).output();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/** A routine with one StagingExecutor step transforming `data/landing` into `data/staging` with `tx/py_exec.py`. */
function transformRoutine(params: Record<string, unknown> = {}, tasks = ["transfer", "post_staging"]) {
  return {
    routine_name: "sandboxed transform",
    executors: {
      StagingExecutor: {
        params: {
          parent_directory: "data/landing",
          dump_directory: "data/staging",
          py_exec_path: "tx",
          ...params,
        },
        tasks,
      },
    },
  };
}

/** A test folder with `data/landing/a.csv` and `tx/py_exec.py` (its `main` body given). */
async function transformFolder(dir: string, body: string[]): Promise<void> {
  await Deno.mkdir(join(dir, "data/landing"), { recursive: true });
  await Deno.writeTextFile(join(dir, "data/landing/a.csv"), "Series_reference,Period\nA,2020.06\n");
  await Deno.mkdir(join(dir, "tx"), { recursive: true });
  await Deno.writeTextFile(
    join(dir, "tx/py_exec.py"),
    ["import os, socket, subprocess, sys", "def main(parent, dump, **args):", ...body.map((l) => `    ${l}`)]
      .join("\n") + "\n",
  );
}

/** Runs the probe transform `body` under `params`; returns the task's error (undefined when it succeeded). */
async function probe(dir: string, body: string[], params: Record<string, unknown> = {}) {
  await transformFolder(dir, body);
  const { error, lines } = await runRoutineJson(transformRoutine(params), { cwd: dir });
  return { message: error?.message, lines };
}

/** Asserts that a refused probe staged nothing and left the landing file where it was. */
async function assertNothingMoved(dir: string) {
  assert.deepEqual(await treeOf(join(dir, "data/staging"), { temporaries: true }), {}, "nothing staged");
  assert.deepEqual(
    Object.keys(await treeOf(join(dir, "data/landing"), { temporaries: true })),
    ["a.csv"],
    "landing untouched",
  );
}

Deno.test("lakerun killed with SIGKILL mid-transform: the transform ends too (its lifeline), never left running", async () => {
  await using dir = await tempDir();
  // the transform reads standard input too: it gets end of file at once (/dev/null), never the lifeline
  await transformFolder(dir.path, [
    "assert sys.stdin.read() == ''",
    'open(os.path.join(dump, "started"), "w").close()',
    "import time",
    "time.sleep(60)",
  ]);
  // the transform's output folder is a temporary one in data/staging
  const started = async () =>
    Object.keys(await treeOf(join(dir.path, "data/staging"), { temporaries: true }).catch(() => ({})))
      .some((path) => path.endsWith("/started"));
  await Deno.writeTextFile(
    join(dir.path, "routine.json"),
    JSON.stringify(transformRoutine({}, ["transfer"])),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--config",
      join(ROOT, "deno.json"),
      join(ROOT, "main.ts"),
      "routine.json",
    ],
    cwd: dir.path,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 30_000;
  while (!(await started())) {
    assert.ok(Date.now() < deadline, "the transform never started");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const transforms = async () =>
    (await new Deno.Command("pgrep", { args: ["-f", join(dir.path, "tx")], stdout: "piped" }).output()).stdout
      .length > 0;
  assert.ok(await transforms(), "the transform runs");
  child.kill("SIGKILL");
  await child.status;
  const gone = Date.now() + 5_000;
  while (await transforms()) {
    assert.ok(Date.now() < gone, "the transform still runs 5 s after lakerun was killed");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

Deno.test("a transform cannot read /etc/passwd; the error names the file; with py_exec_sandbox off it can", async () => {
  await using dir = await tempDir();
  const { message, lines } = await probe(dir.path, ["open('/etc/passwd').read()"]);
  assert.match(
    message ?? "",
    /task 'transfer' failed: permission denied: py_exec: read access to \/etc\/passwd is outside the transform's sandbox$/,
  );
  assert.ok(lines.some((l) => /transform confined by Landlock ABI \d+: read /.test(l)), lines.join("\n"));
  await assertNothingMoved(dir.path);

  const off = await probe(dir.path, ["open('/etc/passwd').read()"], { py_exec_sandbox: "off" });
  assert.equal(off.message, undefined, off.lines.join("\n"));
  assert.ok(off.lines.some((l) => l.includes("transform NOT confined: py_exec_sandbox is off")));
});

Deno.test("a transform cannot write outside its output folder (beside staging, its input, lakerun's state), named in the error", async () => {
  await using dir = await tempDir();
  for (const target of ["data/outside.csv", "data/landing/a.csv", ".lakerun/journal"]) {
    const path = join(dir.path, target);
    const { message } = await probe(dir.path, [`open(${JSON.stringify(path)}, 'w').write('x')`]);
    assert.match(
      message ?? "",
      new RegExp(`permission denied: py_exec: write access to ${path} is outside the transform's sandbox$`),
    );
    if (target !== "data/landing/a.csv") await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    await assertNothingMoved(dir.path);
    assert.equal(
      await Deno.readTextFile(join(dir.path, "data/landing/a.csv")),
      "Series_reference,Period\nA,2020.06\n",
      "the input is intact",
    );
  }
});

Deno.test("a transform cannot connect to a loopback server; the error names the address", async () => {
  await using dir = await tempDir();
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  const serving = (async () => {
    for await (const connection of listener) {
      accepted++;
      connection.close();
    }
  })().catch(() => {});
  const { port } = listener.addr;
  const { message } = await probe(dir.path, [
    `socket.create_connection(('127.0.0.1', ${port}), timeout=5).sendall(b'leak')`,
  ]);
  assert.match(
    message ?? "",
    new RegExp(
      `permission denied: py_exec: net access to 127\\.0\\.0\\.1:${port} is outside the transform's sandbox$`,
    ),
  );
  assert.equal(accepted, 0, "the server saw no connection");
  listener.close();
  await serving;
  await assertNothingMoved(dir.path);
});

Deno.test("a transform cannot start /bin/sh (only its interpreter runs); the error names the program", async () => {
  await using dir = await tempDir();
  const marker = join(dir.path, "data/staging-shell-ran");
  const { message } = await probe(dir.path, [
    `subprocess.run(['/bin/sh', '-c', 'touch ${marker}'], check=True)`,
  ]);
  assert.match(
    message ?? "",
    /permission denied: py_exec: run access to \/bin\/sh is outside the transform's sandbox$/,
  );
  await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
  await assertNothingMoved(dir.path);
});

Deno.test("a transform cannot read lakerun's environment through /proc/<parent>/environ", async () => {
  await using dir = await tempDir();
  const { message } = await probe(dir.path, ["open(f'/proc/{os.getppid()}/environ', 'rb').read()"]);
  assert.match(
    message ?? "",
    /permission denied: py_exec: read access to \/proc\/\d+\/environ is outside the transform's sandbox$/,
  );
});

Deno.test("a secret in lakerun's environment never reaches the transform; a variable named in py_exec_env does", async () => {
  await using dir = await tempDir();
  await transformFolder(dir.path, [
    "import json",
    "with open(os.path.join(dump, 'env.json'), 'w') as out:",
    "    json.dump(dict(os.environ), out, sort_keys=True)",
    "if any('sekrit' in value for value in os.environ.values()):",
    "    raise SystemExit('a secret leaked')",
  ]);
  await Deno.writeTextFile(
    join(dir.path, "routine.json"),
    JSON.stringify(transformRoutine({ py_exec_env: ["DECLARED"] })),
  );
  const env = {
    AWS_SECRET_ACCESS_KEY: "sekrit-aws-key",
    LAKERUN_PROBE_TOKEN: "sekrit-token",
    DECLARED: "named-in-py_exec_env",
    PYTHONUTF8: "1",
  };
  const result = await cli(["run", "routine.json"], { cwd: dir.path, env });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.ok(!(result.stdout + result.stderr).includes("sekrit"));
  const seen = JSON.parse(await Deno.readTextFile(join(dir.path, "data/staging/env.json")));
  assert.equal(seen.AWS_SECRET_ACCESS_KEY, undefined);
  assert.equal(seen.LAKERUN_PROBE_TOKEN, undefined);
  assert.equal(seen.DECLARED, "named-in-py_exec_env");
  assert.equal(seen.PYTHONUTF8, "1", "PYTHON* variables are passed");
  assert.ok(
    seen.PATH.endsWith(Deno.env.get("PATH")!),
    "PATH is passed (a version manager may prepend to it)",
  );
  for (const name of ["TMPDIR", "HOME"]) {
    assert.ok(seen[name].startsWith(join(dir.path, ".lakerun/")), `${name} is private: ${seen[name]}`);
  }
  const allowed =
    /^(PATH|LANG|LC_[A-Z_]+|TZ|PYTHON\w*|TMPDIR|HOME|DECLARED|PWD|SHLVL|_|PYENV_\w*|_PYENV_\w*)$/;
  for (const name of Object.keys(seen)) assert.match(name, allowed, "only the minimal environment");
  // the private folders are gone after the run
  const state = await treeOf(join(dir.path, ".lakerun"), { temporaries: true });
  assert.deepEqual(Object.keys(state).filter((path) => path.includes(".lakerun-tmp-py_exec-")), []);
});

/** A real transform: csv in, json out, through a temporary file and a child interpreter. */
const CSV_TO_JSON = [
  "import csv, json, os, subprocess, sys, tempfile",
  "",
  "def main(parent, dump, min_period='0000.00'):",
  "    rows = []",
  "    for name in sorted(os.listdir(parent)):",
  "        with open(os.path.join(parent, name), newline='') as f:",
  "            rows += [dict(r, file=name) for r in csv.DictReader(f) if r['Period'] >= min_period]",
  "    count = subprocess.run([sys.executable, '-c', 'import sys; print(len(sys.argv) - 1)', *[r['file'] for r in rows]],",
  "                           capture_output=True, text=True, check=True).stdout.strip()",
  "    with tempfile.NamedTemporaryFile('w', delete=False, suffix='.json') as tmp:",
  "        json.dump({'rows': rows, 'count': int(count)}, tmp, indent=1, sort_keys=True)",
  "    os.makedirs(os.path.join(dump, 'json'), exist_ok=True)",
  "    with open(tmp.name) as src, open(os.path.join(dump, 'json', 'rows.json'), 'w') as out:",
  "        out.write(src.read())",
  "    os.remove(tmp.name)",
  "    print(f'{count} rows')",
].join("\n");

/** What `python3` writes when it runs `py_exec.main(parent, dump, **args)` directly, unconfined. */
async function directRun(folder: string, parent: string, dump: string, args: Record<string, unknown>) {
  await Deno.mkdir(dump, { recursive: true });
  const script = "import sys, json; sys.path.insert(0, sys.argv[1]); import py_exec; " +
    "py_exec.main(sys.argv[2], sys.argv[3], **json.loads(sys.argv[4]))";
  const output = await new Deno.Command("python3", {
    args: ["-c", script, folder, parent, dump, JSON.stringify(args)],
    env: { PYTHONDONTWRITEBYTECODE: "1" },
  }).output();
  assert.ok(output.success, decoder.decode(output.stderr));
  return await treeOf(dump);
}

Deno.test("a csv/json transform (temporary file, child interpreter) writes under best_effort what python3 writes directly", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "data/landing"), { recursive: true });
  await Deno.writeTextFile(
    join(dir.path, "data/landing/a.csv"),
    "Series_reference,Period\nA,2019.03\nB,2021.06\n",
  );
  await Deno.writeTextFile(join(dir.path, "data/landing/b.csv"), "Series_reference,Period\nC,2022.12\n");
  await Deno.mkdir(join(dir.path, "tx"));
  await Deno.writeTextFile(join(dir.path, "tx/py_exec.py"), CSV_TO_JSON);
  const args = { min_period: "2020.01" };
  const expected = await directRun(
    join(dir.path, "tx"),
    join(dir.path, "data/landing"),
    join(dir.path, "direct"),
    args,
  );

  const { error, lines } = await runRoutineJson(
    transformRoutine({ py_exec_args: args, py_exec_sandbox: "required" }),
    { cwd: dir.path },
  );
  assert.equal(error, undefined, lines.join("\n"));
  assert.ok(lines.some((l) => l.includes("py_exec: 2 rows")), lines.join("\n"));
  assert.ok(lines.some((l) => /transform confined by Landlock ABI \d+/.test(l)));
  assert.deepEqual(await treeOf(join(dir.path, "data/staging"), { temporaries: true }), expected);
  assert.deepEqual(Object.keys(expected), ["json/rows.json"]);
});

Deno.test("the notebook's retail routine with its py_exec transform runs unchanged, confined, byte-identical", async () => {
  await using dir = await tempDir();
  const routine = JSON.parse(
    await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey_transform.json")),
  );
  const zip = join(ROOT, "routines/demo/retail_trade_survey.zip");
  routine.executors.DownloaderExecutor.params.requests_arguments.url = pathToFileURL(zip).href;
  await Deno.writeTextFile(join(dir.path, "routine_config.json"), JSON.stringify(routine, null, 2));
  await Deno.mkdir(join(dir.path, "routines/transforms/retail"), { recursive: true });
  await Deno.copyFile(
    join(ROOT, "routines/transforms/retail/py_exec.py"),
    join(dir.path, "routines/transforms/retail/py_exec.py"),
  );

  // the reference: the same archive extracted by Python, the same transform run by python3 directly
  const reference = join(dir.path, "reference");
  const unzip = await new Deno.Command("python3", {
    args: [
      "-c",
      "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])",
      zip,
      `${reference}/in`,
    ],
  }).output();
  assert.ok(unzip.success, decoder.decode(unzip.stderr));
  const expected = await directRun(
    join(ROOT, "routines/transforms/retail"),
    `${reference}/in`,
    `${reference}/out`,
    routine.executors.StagingExecutor.params.py_exec_args,
  );

  const result = await cli(["run", "routine_config.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /transform confined by Landlock ABI \d+: read /);
  assert.match(result.stdout, /py_exec: retail-trade-survey-sales\.csv: kept \d+ rows/);
  const staged = await treeOf(join(dir.path, "data/staging"), { temporaries: true });
  assert.equal(Object.keys(staged).length, 3);
  assert.deepEqual(staged, expected, "byte-identical to python3 run directly");
});

Deno.test("plan reports the transform's confinement on this machine, and on a kernel without Landlock", async () => {
  await using dir = await tempDir();
  await transformFolder(dir.path, ["pass"]);
  const write = (params: Record<string, unknown>) =>
    Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(transformRoutine(params)));

  await write({ py_exec_env: ["MY_TOKEN"] });
  const plan = await cli(["plan", "routine.json"], { cwd: dir.path });
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(
    plan.stdout,
    /py_exec transform \(py_exec_sandbox: best_effort\): confined by Landlock ABI \d+ on this machine/,
  );
  assert.match(
    plan.stdout,
    new RegExp(`read {3}the Python installation \\(.+\\), system libraries, ${dir.path}/tx, `),
  );
  assert.match(plan.stdout, /net {4}- \(no TCP bind or connect\)/);
  assert.match(
    plan.stdout,
    /env {4}PATH, LANG, LC_\*, TZ, PYTHON\*, MY_TOKEN, and a private TMPDIR and HOME/,
  );
  const json = JSON.parse((await cli(["plan", "--json", "routine.json"], { cwd: dir.path })).stdout);
  const [step] = json.steps;
  assert.deepEqual(step.permissions.env, ["LANG", "LC_*", "MY_TOKEN", "PATH", "PYTHON*", "TZ"]);
  assert.deepEqual(step.permissions.run, ["python3"]);
  assert.match(step.notes[0], /confined by Landlock ABI \d+ on this machine/);

  const unconfined = await cli(["plan", "routine.json"], { cwd: dir.path, noLandlock: true });
  assert.match(
    unconfined.stdout,
    /py_exec transform \(py_exec_sandbox: best_effort\): NOT confined on this machine \(this kernel has no Landlock/,
  );
  await write({ py_exec_sandbox: "required" });
  const required = await cli(["plan", "routine.json"], { cwd: dir.path, noLandlock: true });
  assert.match(
    required.stdout,
    /this machine cannot confine it \(.*\): transfer will fail before the transform runs/,
  );
  await write({ py_exec_sandbox: "off" });
  const off = await cli(["plan", "routine.json"], { cwd: dir.path });
  assert.match(off.stdout, /py_exec transform \(py_exec_sandbox: off\): NOT confined \(unsafe/);
});

Deno.test("required fails before the transform runs on a kernel without Landlock; best_effort runs it and says so", async () => {
  await using dir = await tempDir();
  const ran = join(dir.path, "transform-ran");
  await transformFolder(dir.path, [`open(${JSON.stringify(ran)}, 'w').write('ran')`]);
  await Deno.writeTextFile(
    join(dir.path, "routine.json"),
    JSON.stringify(transformRoutine({ py_exec_sandbox: "required" })),
  );
  const required = await cli(["run", "routine.json"], { cwd: dir.path, noLandlock: true });
  assert.equal(required.code, 1, required.stdout + required.stderr);
  assert.match(
    required.stderr,
    /py_exec_sandbox is 'required' but this machine cannot confine the transform: this kernel has no Landlock .*; the transform did not run/,
  );
  await assert.rejects(Deno.stat(ran), Deno.errors.NotFound, "the transform did not run");
  await assertNothingMoved(dir.path);

  await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(transformRoutine()));
  const bestEffort = await cli(["run", "routine.json"], { cwd: dir.path, noLandlock: true });
  assert.equal(bestEffort.code, 0, bestEffort.stdout + bestEffort.stderr);
  assert.match(
    bestEffort.stdout,
    /transform NOT confined: this kernel has no Landlock .*; it runs with your user's rights/,
  );
  assert.equal(await Deno.readTextFile(ran), "ran");
});

Deno.test("py_exec_env is validated: names only, never TMPDIR, only with py_exec_path", async () => {
  await using dir = await tempDir();
  await transformFolder(dir.path, ["pass"]);
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ py_exec_env: ["A B"] }, /params\.py_exec_env\[0\]: must be an environment variable name/],
    [{ py_exec_env: ["TMPDIR"] }, /params\.py_exec_env\[0\]: TMPDIR is always the transform's private/],
    [
      { py_exec_path: null, py_exec_env: ["X"] },
      /params\.py_exec_env: py_exec_env is only for a py_exec_path/,
    ],
    [{ py_exec_sandbox: "sometimes" }, /params\.py_exec_sandbox: .*best_effort/],
  ];
  for (const [params, message] of cases) {
    await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(transformRoutine(params)));
    const result = await cli(["validate", "routine.json"], { cwd: dir.path });
    assert.equal(result.code, 2, result.stdout + result.stderr);
    assert.match(result.stderr, message);
  }
});

Deno.test("a folder param that holds lakerun's state folder or lies inside it is refused before anything runs (exit 2)", async () => {
  await using dir = await tempDir();
  const zip = join(dir.path, "survey.zip");
  await Deno.writeFile(zip, buildZip([{ name: "a.csv", data: "a,b\n" }]));
  await Deno.mkdir(join(dir.path, "tx")); // the transform's code is there: only its folders are in question
  await Deno.writeTextFile(join(dir.path, "tx", "py_exec.py"), "def main(parent, dump):\n    pass\n");
  const download = (landing: string) => ({
    routine_name: "state",
    executors: {
      DownloaderExecutor: {
        params: {
          requests_arguments: { url: pathToFileURL(zip).href },
          landing_directory: landing,
          unzip: "unzip",
        },
        tasks: ["download"],
      },
    },
  });
  const cases: Array<{ routine: unknown; args?: string[]; message: RegExp }> = [
    {
      routine: download("."),
      message: new RegExp(
        `^routine\\.json:1:${
          JSON.stringify(download(".")).indexOf('"landing_directory":".') + 21
        }: executors\\.DownloaderExecutor\\.params\\.landing_directory: "\\." gives this step write access to ${dir.path}, which holds lakerun's state folder ${dir.path}/\\.lakerun`,
      ),
    },
    {
      routine: download(".lakerun/landing"),
      message:
        /params\.landing_directory: "\.lakerun\/landing" gives this step write access to .*\/\.lakerun\/landing, inside lakerun's state folder/,
    },
    {
      routine: download("data/landing"),
      args: ["--state-dir", "data/landing/state"],
      message:
        /params\.landing_directory: "data\/landing" gives this step write access to .*, which holds lakerun's state folder .*\/data\/landing\/state/,
    },
    {
      routine: transformRoutine(
        { parent_directory: ".", dump_directory: "../never-written", archive_or_delete: "delete" },
        ["transfer", "post_staging"],
      ),
      message: /params\.parent_directory: "\." gives this step write access/,
    },
    // through a symbolic link on the way, which Deno's grant follows (state → .lakerun, here → .)
    {
      routine: download("state/victim"),
      message:
        /params\.landing_directory: "state\/victim" gives this step write access to .*\/state\/victim \(it is .*\/\.lakerun\/victim\), inside lakerun's state folder .*\/\.lakerun \(journals, locks, run records\); choose another folder/,
    },
    {
      routine: download("here"),
      message:
        /params\.landing_directory: "here" gives this step write access to (.*)\/here \(it is \1\), which holds lakerun's state folder \1\/\.lakerun \(journals, locks, run records\); choose a subfolder \(such as "results\/here"\)/,
    },
  ];
  await Deno.symlink(".lakerun", join(dir.path, "state")); // dangling: the state folder is made by the run
  await Deno.symlink(".", join(dir.path, "here"));
  for (const { routine, args = [], message } of cases) {
    await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(routine));
    for (const command of ["validate", "plan", "run"]) {
      const result = await cli([command, ...args, "routine.json"], { cwd: dir.path });
      assert.equal(result.code, 2, `${command}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, message, `${command}: ${result.stderr}`);
    }
    await assert.rejects(Deno.stat(join(dir.path, "a.csv")), Deno.errors.NotFound, "nothing ran");
    await assert.rejects(Deno.stat(join(dir.path, ".lakerun")), Deno.errors.NotFound, "no state written");
  }

  // a landing folder beside the state folder is fine
  await Deno.writeTextFile(join(dir.path, "routine.json"), JSON.stringify(download("landing")));
  const fine = await cli(["run", "routine.json"], { cwd: dir.path });
  assert.equal(fine.code, 0, fine.stdout + fine.stderr);
  assert.equal(await Deno.readTextFile(join(dir.path, "landing/a.csv")), "a,b\n");
});

Deno.test("archive entries inside .git, .hg or .svn are refused unless allow_vcs_metadata, named in the error", async () => {
  await using dir = await tempDir();
  const zip = join(dir.path, "survey.zip");
  await Deno.writeFile(
    zip,
    buildZip([{ name: "a.csv", data: "a,b\n" }, {
      name: ".git/config",
      data: "[core]\n\tfsmonitor = touch pwned\n",
    }]),
  );
  const routine = (extra: Record<string, unknown>) => ({
    routine_name: "vcs",
    executors: {
      DownloaderExecutor: {
        params: {
          requests_arguments: { url: pathToFileURL(zip).href },
          landing_directory: "landing",
          unzip: "unzip",
          ...extra,
        },
        tasks: ["download"],
      },
    },
  });
  const refused = await runRoutineJson(routine({}), { cwd: dir.path });
  assert.match(
    refused.error?.message ?? "",
    /zip entry '\.git\/config': '\.git' is version-control metadata, which can make its tool run commands \(hooks, config\); allow_vcs_metadata: true extracts it$/,
  );
  assert.deepEqual(await treeOf(join(dir.path, "landing"), { temporaries: true }), {}, "nothing extracted");

  const allowed = await runRoutineJson(routine({ allow_vcs_metadata: true }), { cwd: dir.path });
  assert.equal(allowed.error, undefined, allowed.lines.join("\n"));
  assert.deepEqual(
    Object.keys(await treeOf(join(dir.path, "landing"), { temporaries: true })),
    [".git/config", "a.csv"],
  );
});

Deno.test("the VCS rule is the extraction's, whatever the sink (local folder or S3): streamed and from a file", async () => {
  await using dir = await tempDir();
  for (const name of [".git/hooks/post-checkout", "data/.HG/hgrc", ".svn/entries", "x/.git"]) {
    const zip = buildZip([{ name: "ok.csv", data: "1\n" }, { name, data: "x" }]);
    const streamed = await extractZipStream(streamOf(zip), memorySink()).catch((e) => e);
    assert.ok(streamed instanceof ZipError, name);
    assert.equal(streamed.entry, name);
    await Deno.writeFile(join(dir.path, "a.zip"), zip);
    const sink = memorySink();
    const fromFile = await extractZipFile(join(dir.path, "a.zip"), sink).catch((e) => e);
    assert.ok(fromFile instanceof ZipError, name);
    assert.equal(sink.files.size, 0, "refused before any data is read");
    const allowed = memorySink();
    await extractZipStream(streamOf(zip), allowed, { allowVcsMetadata: true });
    assert.deepEqual([...allowed.files.keys()], ["ok.csv", name]);
  }
  // names that merely look alike are files like any other
  const zip = buildZip([{ name: ".gitignore", data: "x" }, { name: "git/config", data: "x" }, {
    name: "a.svn",
    data: "x",
  }]);
  const sink = memorySink();
  await extractZipStream(streamOf(zip), sink);
  assert.equal(sink.files.size, 3);
});
