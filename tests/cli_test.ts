/**
 * The command line: exit codes, one-line errors naming file, line, JSON path, executor and task; hostile
 * names refused as unknown; nothing runs when any part of a routine is invalid.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import denoConfig from "../deno.json" with { type: "json" };
import { lakerun, ROOT, tempDir } from "./support/lakerun.ts";
import { digests, treeOf } from "./support/trees.ts";

async function write(dir: string, name: string, value: unknown): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, typeof value === "string" ? value : JSON.stringify(value, null, 2));
  return path;
}

const stagingStep = (extra: Record<string, unknown> = {}) => ({
  params: { parent_directory: "in", dump_directory: "out", ...extra },
  tasks: ["transfer"],
});

Deno.test("--version and --help exit 0", async () => {
  const version = await lakerun(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, new RegExp(`^lakerun ${denoConfig.version.replaceAll(".", "\\.")} \\(deno `));
  const help = await lakerun(["--help"]);
  assert.equal(help.code, 0);
  for (const command of ["[run]", "validate", "plan", "list", "schema", "demo"]) {
    assert.ok(help.stdout.includes(`lakerun ${command} `));
  }
});

Deno.test("the help's runs line names every column 'lakerun runs' prints, whichever command asks for help", async () => {
  const { runsTable } = await import("../orchestrator/run/records.ts");
  const columns = runsTable([])[0].split(/ {2,}/).map((title) => title.toLowerCase());
  assert.ok(columns.length >= 5, columns.join());
  for (const args of [["--help"], ["runs", "--help"], ["plan", "--help"]]) {
    const help = await lakerun(args);
    assert.equal(help.code, 0, help.stderr);
    // the runs line, with the line it wraps onto
    const runs = /^ {2}lakerun runs .*(?:\n {20,}\S.*)*/m.exec(help.stdout)![0].replace(/\s+/g, " ")
      .toLowerCase();
    for (const column of columns) {
      assert.ok(runs.includes(column), `${args.join(" ")}: ${column} in "${runs}"`);
    }
  }
});

Deno.test("a routine file that is not UTF-8 is refused at the first bad byte, never read as other text", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(
    join(dir.path, "r.json"),
    new Uint8Array([...new TextEncoder().encode('{\n  "routine_name": "x'), 0xff, 0xfe, 0x22, 0x7d]),
  );
  const result = await lakerun(["validate", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 2);
  assert.equal(
    result.stderr,
    "r.json:2:21: cannot read routine file: byte 0xff is not UTF-8 (JSON is UTF-8 text)\n",
  );
});

Deno.test("command-line mistakes exit 2 with one line", async () => {
  for (
    const [args, message] of [
      [[], /no routine given/],
      [["--nope"], /unknown option '--nope'/],
      [["run", "x.json", "--json"], /^lakerun: --json is an option of 'plan' and 'runs', not 'run'\n$/],
      [["list", "--markdown", "--iam"], /^lakerun: --iam is an option of 'plan', not 'list'\n$/],
      [["schema", "--dir", "d"], /^lakerun: --dir is an option of 'demo', not 'schema'\n$/],
      [["run", "x.json", "--state-dir="], /^lakerun: --state-dir: an empty value was given\n$/],
      [
        ["run", "x.json", "--date", "--from", "2024-01-01"],
        /^lakerun: --date needs a value; try 'lakerun --help'\n$/,
      ],
      [
        ["validate", "--executors", "a", "--executors", "-b", "x.json"],
        /^lakerun: --executors: "-b" starts with "-" and was taken for an option; to give it as the value, write --executors=-b\n$/,
      ],
      [
        ["validate", "x.json", "--date", "-2024-06-30"],
        /^lakerun: --date: "-2024-06-30" starts with "-" and was taken for an option; to give it as the value, write --date=-2024-06-30\n$/,
      ],
      [
        ["run", "x.json", "--date", "2024-01-01", "--date=2024-01-02"],
        /^lakerun: --date given twice, "2024-01-01" and "2024-01-02": give it once\n$/,
      ],
      [
        ["run", "x.json", "--resume", "20261201T075724Z-275042e9", "--run-id", "20261201T075724Z-275042e8"],
        /^lakerun: a run id \(--resume ID, --run-id ID\) given twice, "20261201T075724Z-275042e9" and "20261201T075724Z-275042e8": give it once\n$/,
      ],
      [["validate"], /'validate' takes exactly one routine file/],
      [["list", "extra"], /'list' takes no arguments/],
      [["frobnicate"], /'frobnicate' is neither a command/],
      [["missing.json"], /^missing\.json: cannot read routine file: no such file\n$/],
      [
        ["validate", "/dev/zero"],
        /^\/dev\/zero: cannot read routine file: it holds more than 16777216 bytes/,
      ],
      [["runs", "missing.json"], /^missing\.json: cannot read routine file: no such file\n$/],
    ] as Array<[string[], RegExp]>
  ) {
    const result = await lakerun(args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
});

Deno.test("invalid JSON names file, line and column; exit 2", async () => {
  await using dir = await tempDir();
  await write(dir.path, "r.json", '{\n  "routine_name": "x",\n  "executors": {,}\n}');
  const result = await lakerun(["validate", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 2);
  assert.equal(result.stderr, 'r.json:3:17: invalid JSON: expected a quoted key, unexpected ","\n');
});

Deno.test("every problem is listed, one line each, with its JSON path; nothing runs", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "in"));
  await Deno.writeTextFile(join(dir.path, "in/a.csv"), "a");
  await write(dir.path, "r.json", {
    routine_name: "x",
    executors: {
      StagingExecutor: stagingStep(), // valid, and first: it must not run
      DownloadExecutor: { params: {}, tasks: ["download"] },
      second: {
        executor: "StagingExecutor",
        params: { parent_directory: 3, dump_directory: "o", archive_or_delet: "x" },
        tasks: ["transfer", "trasnfer"],
      },
      third: { executor: "DownloaderExecutor", params: { landing_directory: "l" }, tasks: ["download"] },
    },
  });
  const result = await lakerun(["run", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 2);
  const lines = result.stderr.trim().split("\n");
  const expected = [
    /^r\.json:\d+:\d+: executors\.DownloadExecutor: unknown executor "DownloadExecutor" \(did you mean 'DownloaderExecutor'\?\); known: DownloaderExecutor, StagingExecutor/,
    // in the file's order
    /^r\.json:\d+:\d+: executors\.second\.params\.parent_directory: expected string, received number \(3\)$/,
    /^r\.json:\d+:\d+: executors\.second\.params\.archive_or_delet: unknown param "archive_or_delet" for StagingExecutor \(did you mean 'archive_or_delete'\?\)/,
    /^r\.json:\d+:\d+: executors\.second\.tasks\[1\]: StagingExecutor has no task "trasnfer" \(did you mean 'transfer'\?\); its tasks: transfer, post_staging$/,
    /^r\.json:\d+:\d+: executors\.third\.params\.requests_arguments: missing \(expected object\)$/,
  ];
  assert.equal(lines.length, expected.length, result.stderr);
  expected.forEach((pattern, i) => assert.match(lines[i], pattern));
  assert.equal(result.stdout, "", "nothing ran");
  await assert.rejects(Deno.stat(join(dir.path, "out")), Deno.errors.NotFound);
});

Deno.test("params a step's permissions cannot be computed from are invalid: exit 2 for run, validate and plan; nothing runs", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "in"));
  await Deno.writeTextFile(join(dir.path, "in/a.csv"), "a");
  const download = (url: string, landing: string) => ({
    executor: "DownloaderExecutor",
    params: { requests_arguments: { url }, landing_directory: landing },
    tasks: ["download"],
  });
  await write(dir.path, "r.json", {
    routine_name: "x",
    executors: {
      StagingExecutor: stagingStep(), // valid, and first: it must not run
      ftp: download("ftp://example.com/a.zip", "l"),
      typo: download("https//example.com/a.zip?token=s3cret", "l"),
      bucketless: download("https://example.com/a.zip", "s3://"),
      gcs: download("https://example.com/a.zip", "gs://lake/landing"),
      slash: download("https://example.com/a.zip", "s3:/lake/x"),
      slashes: download("https://example.com/a.zip", "s3:lake/x"),
    },
  });
  const expected = [
    /^r\.json:\d+:\d+: executors\.ftp\.params\.requests_arguments\.url: unsupported URL scheme ftp: in ftp:\/\/example\.com\/a\.zip \(http:\/\/, https:\/\/ and file:\/\/ are\)$/,
    /^r\.json:\d+:\d+: executors\.typo\.params\.requests_arguments\.url: not a valid URL: https\/\/example\.com\/a\.zip\?\*\*\*$/,
    /^r\.json:\d+:\d+: executors\.bucketless\.params\.landing_directory: invalid S3 location "s3:\/\/" \(expected s3:\/\/bucket\/prefix\)$/,
    /^r\.json:\d+:\d+: executors\.gcs\.params\.landing_directory: "gs:\/\/lake\/landing" is neither a local folder nor an s3:\/\/ location$/,
    /^r\.json:\d+:\d+: executors\.slash\.params\.landing_directory: "s3:\/lake\/x" is not an s3:\/\/ location: did you mean s3:\/\/lake\/x\?$/,
    /^r\.json:\d+:\d+: executors\.slashes\.params\.landing_directory: "s3:lake\/x" is not an s3:\/\/ location: did you mean s3:\/\/lake\/x\?$/,
  ];
  for (const command of ["run", "validate", "plan"]) {
    const result = await lakerun([command, "r.json"], { cwd: dir.path });
    assert.equal(result.code, 2, `${command}: ${result.stderr}`);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, expected.length, result.stderr);
    expected.forEach((pattern, i) => assert.match(lines[i], pattern));
    assert.ok(!result.stderr.includes("s3cret"), "a query value is redacted");
    assert.equal(result.stdout, "", "nothing ran");
  }
  await assert.rejects(Deno.stat(join(dir.path, "out")), Deno.errors.NotFound);
  await write(dir.path, "ok.json", { routine_name: "ok", executors: { StagingExecutor: stagingStep() } });
  const valid = await lakerun(["validate", "ok.json"], { cwd: dir.path });
  assert.equal(valid.code, 0, valid.stderr);
  assert.equal(valid.stdout, 'ok.json: valid (routine "ok", 1 step, 1 task)\n');
});

Deno.test("every location problem of a step is listed, with its other params' problems, one line each", async () => {
  await using dir = await tempDir();
  await write(dir.path, "r.json", {
    routine_name: "x",
    executors: {
      StagingExecutor: {
        params: {
          parent_directory: "gs://lake/landing",
          dump_directory: "s3://",
          archive_directory: "s3://Lake/archive",
          archive_or_delete: "shred",
        },
        tasks: ["transfer"],
      },
      DownloaderExecutor: {
        params: {
          requests_arguments: { url: "ftp://example.com/a.zip?sig=abc123" },
          landing_directory: "s3:/lake/x",
        },
        tasks: ["download"],
      },
      S3TransferExecutor: { params: { source: "s3:lake/a", destination: "file:///b" }, tasks: ["copy"] },
      AthenaExecutor: { params: { query: "SELECT 1", results_to: "gs://lake/out.csv" }, tasks: ["query"] },
    },
  });
  const result = await lakerun(["validate", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 2, result.stderr);
  const expected = [
    /^r\.json:6:29: executors\.StagingExecutor\.params\.parent_directory: "gs:\/\/lake\/landing" is neither a local folder nor an s3:\/\/ location$/,
    /^r\.json:7:27: executors\.StagingExecutor\.params\.dump_directory: invalid S3 location "s3:\/\/" \(expected s3:\/\/bucket\/prefix\)$/,
    /^r\.json:8:30: executors\.StagingExecutor\.params\.archive_directory: invalid S3 location "s3:\/\/Lake\/archive": the bucket name "Lake" must be 3–63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit$/,
    /^r\.json:9:30: executors\.StagingExecutor\.params\.archive_or_delete: "shred" is not one of "archive", "delete"$/,
    /^r\.json:\d+:\d+: executors\.DownloaderExecutor\.params\.requests_arguments\.url: unsupported URL scheme ftp: in ftp:\/\/example\.com\/a\.zip\?sig=\*\*\* \(http:\/\/, https:\/\/ and file:\/\/ are\)$/,
    /^r\.json:\d+:\d+: executors\.DownloaderExecutor\.params\.landing_directory: "s3:\/lake\/x" is not an s3:\/\/ location: did you mean s3:\/\/lake\/x\?$/,
    /^r\.json:\d+:\d+: executors\.S3TransferExecutor\.params\.source: "s3:lake\/a" is not an s3:\/\/ location: did you mean s3:\/\/lake\/a\?$/,
    /^r\.json:\d+:\d+: executors\.S3TransferExecutor\.params\.destination: "file:\/\/\/b" is neither a local folder nor an s3:\/\/ location$/,
    /^r\.json:\d+:\d+: executors\.AthenaExecutor\.params\.results_to: "gs:\/\/lake\/out\.csv" is neither a local folder nor an s3:\/\/ location$/,
  ];
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, expected.length, result.stderr);
  expected.forEach((pattern, i) => assert.match(lines[i], pattern));
  assert.ok(!result.stderr.includes("abc123"), "a query value of the URL is not shown");
});

Deno.test("a user name or password in an endpoint URL is refused with exit 2, naming the JSON path, never printed", async () => {
  await using dir = await tempDir();
  await write(dir.path, "r.json", {
    routine_name: "x",
    s3: { endpoint: "http://AKIAEXAMPLE:supersecret@127.0.0.1:5999" },
    aws: { endpoints: { athena: "https://user:hunter2@athena.example.com" } },
    executors: { StagingExecutor: stagingStep() },
  });
  for (const command of ["run", "validate", "plan"]) {
    const result = await lakerun([command, "r.json"], { cwd: dir.path });
    assert.equal(result.code, 2, `${command}: ${result.stderr}`);
    const lines = result.stderr.trim().split("\n");
    assert.deepEqual(lines.map((line) => line.replace(/^r\.json:\d+:\d+: /, "")).sort(), [
      "aws.endpoints.athena: must not hold a user name or password (user:secret@): credentials come from the " +
      "environment or the AWS profile (the value is not shown: it may hold a secret)",
      "s3.endpoint: must not hold a user name or password (user:secret@): credentials come from the " +
      "environment or the AWS profile (the value is not shown: it may hold a secret)",
    ], result.stderr);
    for (const secret of ["supersecret", "hunter2", "AKIAEXAMPLE"]) {
      assert.ok(
        !result.stderr.includes(secret) && !result.stdout.includes(secret),
        `${command} printed ${secret}`,
      );
    }
  }
});

Deno.test("hostile names are data: refused as unknown executors or tasks, never loaded", async () => {
  await using dir = await tempDir();
  const hostile = [
    "__proto__",
    "constructor",
    "toString",
    "../x",
    "file:///etc/passwd",
    "https://example.com/x.ts",
    "hasOwnProperty",
  ];
  for (const name of hostile) {
    await write(
      dir.path,
      "r.json",
      `{"routine_name": "x", "executors": {${JSON.stringify(name)}: {"params": {}, "tasks": ["t"]}}}`,
    );
    const asKey = await lakerun(["validate", "--executors", dir.path, "r.json"], { cwd: dir.path });
    assert.equal(asKey.code, 2, name);
    assert.ok(asKey.stderr.includes(`unknown executor ${JSON.stringify(name)}`), asKey.stderr);

    await write(dir.path, "r.json", {
      routine_name: "x",
      executors: { s: { executor: name, params: {}, tasks: ["t"] } },
    });
    const asExecutor = await lakerun(["validate", "r.json"], { cwd: dir.path });
    assert.equal(asExecutor.code, 2, name);
    assert.match(asExecutor.stderr, /executors\.s\.executor: unknown executor/);

    await write(dir.path, "r.json", {
      routine_name: name,
      executors: { StagingExecutor: { ...stagingStep(), tasks: [name] } },
    });
    const asTask = await lakerun(["validate", "r.json"], { cwd: dir.path });
    assert.equal(asTask.code, 2, name);
    assert.match(asTask.stderr, /StagingExecutor has no task/);
  }
});

Deno.test("a hostile routine name cannot move the state folder outside .lakerun", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "in"));
  await Deno.writeTextFile(join(dir.path, "in/a.csv"), "a");
  await write(dir.path, "r.json", {
    routine_name: "../../escape",
    executors: { StagingExecutor: stagingStep() },
  });
  const result = await lakerun(["run", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stderr);
  const top = [];
  for await (const entry of Deno.readDir(dir.path)) top.push(entry.name);
  assert.deepEqual(top.sort(), [".lakerun", "in", "out", "r.json"]);
});

Deno.test("one executor used twice, with step ids; a key that is an executor name stays valid", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "in"));
  await Deno.writeTextFile(join(dir.path, "in/a.csv"), "a");
  await write(dir.path, "r.json", {
    routine_name: "twice",
    executors: {
      StagingExecutor: stagingStep(),
      copy_again: {
        executor: "StagingExecutor",
        params: { parent_directory: "out", dump_directory: "out2" },
        tasks: ["transfer"],
      },
    },
  });
  const result = await lakerun(["r.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /\[1\/2\] StagingExecutor\n/);
  assert.match(result.stdout, /\[2\/2\] copy_again \(StagingExecutor\)\n/);
  assert.deepEqual(await treeOf(join(dir.path, "out2"), { temporaries: true }), digests({ "a.csv": "a" }));
});

Deno.test("a failed task exits 1 with a one-line reason, no stack trace", async () => {
  await using dir = await tempDir();
  await write(dir.path, "r.json", { routine_name: "x", executors: { StagingExecutor: stagingStep() } });
  const result = await lakerun(["run", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /^step "StagingExecutor" \(StagingExecutor\) task 'transfer' failed: .*in does not exist\n$/,
  );
  assert.match(result.stdout, /✗ transfer failed/);
  const debug = await lakerun(["run", "--debug", "r.json"], { cwd: dir.path });
  assert.match(debug.stdout + debug.stderr, / {4}at /, "--debug shows the stack");
});

Deno.test("list --markdown is the executor reference the README holds", async () => {
  const result = await lakerun(["list", "--markdown"]);
  assert.equal(result.code, 0, result.stderr);
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const start = readme.indexOf("<!-- executor-reference:start -->");
  const end = readme.indexOf("<!-- executor-reference:end -->");
  assert.ok(start > 0 && end > start, "README has the executor-reference markers");
  const inReadme = readme.slice(start, end).replace("<!-- executor-reference:start -->", "").trim();
  assert.equal(inReadme, result.stdout.trim(), "regenerate with: deno task docs");
});

Deno.test("list shows every executor with tasks, types and defaults", async () => {
  const result = await lakerun(["list"]);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^DownloaderExecutor\n/);
  assert.match(result.stdout, /\n {4}download {2}Downloads /);
  assert.match(result.stdout, /requests_arguments\.timeout +number \| \[number, number\], optional/);
  assert.match(result.stdout, /archive_or_delete +"archive" \| "delete", optional, default "archive"/);
});

Deno.test("the executor reference: a list of a union is (a | b)[], connection defaults are in the default column", async () => {
  const result = await lakerun(["list", "--markdown"]);
  assert.equal(result.code, 0, result.stderr);
  const sections = new Map(
    result.stdout.split(/^### /m).slice(1).map((part) => [part.slice(0, part.indexOf("\n")), part]),
  );
  const row = (executor: string, param: string) => {
    const line = sections.get(executor)!.split("\n").find((l) => l.startsWith(`| \`${param}\` |`));
    assert.ok(line, `${executor} ${param}`);
    const [type, required, fallback, description] = line.split(/ (?<!\\)\| /).slice(1);
    return { type, required, fallback, description };
  };
  assert.equal(row("AthenaExecutor", "parameters").type, "(string \\| number \\| boolean)[]");
  assert.equal(
    row("DownloaderExecutor", "requests_arguments.params").type,
    "object of string \\| number \\| boolean \\| null \\| (string \\| number \\| boolean)[]",
  );
  assert.equal(row("PostgresExecutor", "port").fallback, "`5432`");
  assert.equal(row("PostgresExecutor", "ssl").fallback, '`"disable"`');
  assert.equal(row("RedshiftExecutor", "port").fallback, "`5439`");
  assert.equal(row("RedshiftExecutor", "ssl").fallback, "`true`");
  for (const param of ["database", "table"]) {
    assert.match(row("AthenaExecutor", param).description, /Lowercase: only a-z, 0-9 and _\./);
  }
});

Deno.test("schema is the JSON Schema committed for editors, and it describes the demo routine", async () => {
  const result = await lakerun(["schema"]);
  assert.equal(result.code, 0);
  const schema = JSON.parse(result.stdout);
  const committed = JSON.parse(await Deno.readTextFile(join(ROOT, "schema/routine.schema.json")));
  assert.deepEqual(committed, schema, "regenerate with: deno task docs");
  const downloader = schema.properties.executors.properties.DownloaderExecutor;
  assert.deepEqual(downloader.properties.tasks.items.enum, ["download"]);
  assert.deepEqual(downloader.properties.params.required, ["requests_arguments", "landing_directory"]);
  assert.equal(downloader.properties.params.additionalProperties, false);
  const executors = Object.keys(schema.properties.executors.properties);
  assert.deepEqual(executors, [
    "DownloaderExecutor",
    "StagingExecutor",
    "S3TransferExecutor",
    "AthenaExecutor",
    "GlueExecutor",
    "PostgresExecutor",
    "RedshiftExecutor",
  ]);
  assert.equal(schema.properties.executors.additionalProperties.oneOf.length, executors.length);
});

Deno.test("the JSON Schema accepts every sample routine and flags a step lacking what its tasks need (Python's jsonschema)", async () => {
  await using dir = await tempDir();
  const schema = join(ROOT, "schema/routine.schema.json");
  const samples: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, "routines"))) {
    if (entry.isFile && entry.name.endsWith(".json")) samples.push(join(ROOT, "routines", entry.name));
  }
  const postgres = JSON.parse(
    await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey_postgres.json")),
  );
  delete postgres.executors.PostgresExecutor.params.source; // load needs it
  const athena = JSON.parse(await Deno.readTextFile(join(ROOT, "routines/retail_trade_survey_athena.json")));
  delete athena.executors.AthenaExecutor.params.query; // query needs query or query_file
  // a (connect, read) timeout pair of three: refused by lakerun, so by the schema too
  const demo = JSON.parse(await Deno.readTextFile(join(ROOT, "routines/demo.json")));
  demo.executors.DownloaderExecutor.params.requests_arguments.timeout = [1, 2, 3];
  const lacking = [
    await write(dir.path, "postgres.json", postgres),
    await write(dir.path, "athena.json", athena),
    await write(dir.path, "tuple.json", demo),
  ];
  const check = `
import json, sys
try:
    import jsonschema
except ImportError:
    sys.exit("Python's jsonschema module is missing (it comes with moto)")
validator = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))
for f in sys.argv[2:]:
    errors = list(validator.iter_errors(json.load(open(f))))
    print(f, "valid" if not errors else "invalid: " + " | ".join(e.message[-120:] for e in errors))
`;
  const output = await new Deno.Command("python3", { args: ["-c", check, schema, ...samples, ...lacking] })
    .output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  assert.ok(samples.length >= 8, samples.join(", "));
  assert.deepEqual(lines.slice(0, samples.length), samples.map((file) => `${file} valid`));
  assert.match(lines[samples.length], /postgres\.json invalid: .*'source' is a required property/);
  assert.match(
    lines[samples.length + 1],
    /athena\.json invalid: .* is not valid under any of the given schemas/,
  );
  assert.match(lines[samples.length + 2], /tuple\.json invalid: /);
});

Deno.test("executors_dir in a routine is relative to the routine file; plugins appear in list", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "routines/plugins"), { recursive: true });
  await Deno.copyFile(
    join(ROOT, "tests/fixtures/plugins/ProbeExecutor.ts"),
    join(dir.path, "routines/plugins/ProbeExecutor.ts"),
  );
  // the copied plugin imports lakerun's modules by relative paths: point them at this checkout
  const plugin = join(dir.path, "routines/plugins/ProbeExecutor.ts");
  await Deno.writeTextFile(plugin, (await Deno.readTextFile(plugin)).replaceAll('"../../../', `"${ROOT}/`));
  await write(join(dir.path, "routines"), "r.json", {
    routine_name: "p",
    executors_dir: "plugins",
    executors: { ProbeExecutor: { params: { folder: "own" }, tasks: ["write_inside"] } },
  });
  const result = await lakerun(["run", "routines/r.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    await Deno.readTextFile(join(dir.path, "own/ok.txt")),
    "ok\n",
    "paths in params stay relative to the current folder",
  );
  const list = await lakerun(["list", "--executors", join(dir.path, "routines/plugins")]);
  assert.match(list.stdout, /\nProbeExecutor {2}\(plugin: .*routines\/plugins\)\n/);
});

Deno.test("a broken plugin is an invalid routine, named", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "BadExecutor.ts"), "export default { name: 'Other' };\n");
  await write(dir.path, "r.json", {
    routine_name: "p",
    executors: { BadExecutor: { params: {}, tasks: ["x"] } },
  });
  const bad = await lakerun(["validate", "--executors", dir.path, "r.json"], { cwd: dir.path });
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /executors\.BadExecutor: plugin .*BadExecutor\.ts: default export is named "Other", expected "BadExecutor"/,
  );
});

Deno.test("a missing --executors folder is the command line's mistake, a missing executors_dir the routine's", async () => {
  await using dir = await tempDir();
  await write(dir.path, "r.json", { routine_name: "p", executors: { StagingExecutor: stagingStep() } });
  for (
    const command of [["validate", "r.json"], ["run", "r.json"], ["plan", "r.json"], ["list"], ["schema"]]
  ) {
    const missing = await lakerun([command[0], "--executors", "nowhere", ...command.slice(1)], {
      cwd: dir.path,
    });
    assert.equal(missing.code, 2, command[0]);
    assert.equal(missing.stderr, "lakerun: --executors nowhere: no such folder\n", command[0]);
  }
  const file = await lakerun(["validate", "--executors", "r.json", "r.json"], { cwd: dir.path });
  assert.equal(file.stderr, "lakerun: --executors r.json: not a folder\n");

  await Deno.mkdir(join(dir.path, "plugins"));
  const text = JSON.stringify(
    { routine_name: "p", executors_dir: ["plugins", "gone"], executors: { StagingExecutor: stagingStep() } },
    null,
    2,
  );
  await Deno.writeTextFile(join(dir.path, "d.json"), text);
  const gone = await lakerun(["validate", "d.json"], { cwd: dir.path });
  assert.equal(gone.code, 2);
  const [line, column] = positionIn(text, '"gone"');
  assert.equal(
    gone.stderr,
    `d.json:${line}:${column}: executors_dir[1]: plugin folder ${join(dir.path, "gone")}: no such folder\n`,
  );
});

/** Line and column (1-based) of the first `needle` in `text`. */
function positionIn(text: string, needle: string): [number, number] {
  const before = text.slice(0, text.indexOf(needle)).split("\n");
  return [before.length, before.at(-1)!.length + 1];
}

Deno.test("the demo's closing hint plans the routine it ran, from any folder; a --dir it cannot make exits 2", async () => {
  await using dir = await tempDir();
  const demoDir = join(dir.path, "my demo");
  await Deno.mkdir(join(dir.path, "a"));
  const demo = await lakerun(["demo", "--dir", demoDir], { cwd: join(dir.path, "a") });
  assert.equal(demo.code, 0, demo.stderr);
  const port = /serving the sample archive on http:\/\/127\.0\.0\.1:(\d+)\//.exec(demo.stdout)?.[1];
  assert.ok(port, demo.stdout);
  const hint = demo.stdout.trimEnd().split("\n").at(-1)!;
  const prefix = "See the permissions each step got: ";
  assert.ok(hint.startsWith(`${prefix}cd '${demoDir}' && `), hint);
  assert.ok(hint.endsWith(" plan demo.json"), hint);
  // run as a user would paste it, from another folder
  await Deno.mkdir(join(dir.path, "elsewhere"));
  const output = await new Deno.Command("sh", {
    args: ["-c", hint.slice(prefix.length)],
    cwd: join(dir.path, "elsewhere"),
  }).output();
  const plan = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(plan, new RegExp(`net {4}127\\.0\\.0\\.1:${port}\\n`), "the port the demo served on");
  assert.ok(plan.includes(` ${demoDir}/data/landing\n`), plan);
  // no "$schema" pointing at a schema beside routines/, which is not beside the demo's folder
  assert.equal(JSON.parse(await Deno.readTextFile(join(demoDir, "demo.json"))).$schema, undefined);

  await Deno.writeTextFile(join(dir.path, "file"), "");
  const bad = await lakerun(["demo", "--dir", "file/sub"], { cwd: dir.path });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^lakerun: --dir file\/sub: cannot make the demo's folder: not a directory\n$/);
});

Deno.test("plan --json shows params as the text plan does: credentials in URLs, headers, cookies, auth and query params are ***", async () => {
  await using dir = await tempDir();
  const credentials = [
    "PWURLsecret123",
    "QTOKENsecret",
    "HDRsecretTOKEN12345",
    "APIKEYsecret999",
    "COOKIEsecret777",
    "AUTHPWsecret456",
    "PARAMKEYsecret888",
    "NOTEsecret321",
    "TEMPLATEDsecret654",
  ];
  const file = await write(dir.path, "r.json", {
    routine_name: "plan_redaction",
    executors: {
      DownloaderExecutor: {
        params: {
          requests_arguments: {
            url: "http://alice:PWURLsecret123@127.0.0.1:18081/401?token=QTOKENsecret",
            headers: { Authorization: "Bearer HDRsecretTOKEN12345", "X-Api-Key": "APIKEYsecret999" },
            cookies: { session: "COOKIEsecret777" },
            auth: ["bob", "AUTHPWsecret456"],
            params: { api_key: "PARAMKEYsecret888", page: "${{ env.PLAN_PAGE }}" },
          },
          landing_directory: "data/landing",
        },
        tasks: ["download"],
      },
      second: {
        executor: "DownloaderExecutor",
        params: {
          requests_arguments: { url: "http://127.0.0.1:18081/x?key=${{ env.PLAN_QUERY_VALUE }}" },
          landing_directory: "data/second/",
        },
        tasks: ["download"],
      },
      PostgresExecutor: {
        params: {
          host: "127.0.0.1",
          database: "lake",
          user: "loader",
          password_env: "PLAN_PG_PASSWORD",
          sql: "ALTER ROLE loader PASSWORD 'NOTEsecret321'",
        },
        tasks: ["execute"],
      },
    },
  });
  const env = { PLAN_PAGE: "TEMPLATEDsecret654", PLAN_QUERY_VALUE: "TEMPLATEDsecret654" };
  const json = await lakerun(["plan", "--json", file], { cwd: dir.path, env });
  assert.equal(json.code, 0, json.stderr);
  const text = await lakerun(["plan", file], { cwd: dir.path, env });
  assert.equal(text.code, 0, text.stderr);
  for (const credential of credentials) {
    assert.ok(!json.stdout.includes(credential), `${credential} in plan --json:\n${json.stdout}`);
    assert.ok(!text.stdout.includes(credential), `${credential} in plan:\n${text.stdout}`);
  }
  // valid, useful JSON: the keys are kept, each value that may be a secret is ***
  const plan = JSON.parse(json.stdout);
  const request = plan.steps[0].params.requests_arguments;
  assert.equal(request.url, "http://127.0.0.1:18081/401?token=***");
  assert.deepEqual(request.headers, { Authorization: "***", "X-Api-Key": "***" });
  assert.deepEqual(request.cookies, { session: "***" });
  assert.deepEqual(request.auth, ["bob", "***"]);
  assert.deepEqual(request.params, { api_key: "***", page: "***" });
  assert.equal(plan.steps[0].params.unzip, null);
  assert.equal(plan.steps[0].templates[0].value, "***");
  assert.equal(plan.steps[1].params.requests_arguments.url, "http://127.0.0.1:18081/x?key=***");
  assert.equal(plan.steps[1].params.landing_directory, "data/second/");
  assert.equal(plan.steps[2].params.sql, "***"); // looks like a credential
  assert.equal(plan.steps[2].params.password_env, "***"); // marked secret: a password may be pasted there
  assert.equal(plan.steps[2].params.user, "loader");
  assert.match(text.stdout, /requests_arguments\.params\.page = "\*\*\*"/);
});
