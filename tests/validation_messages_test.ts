/**
 * Every validation message quotes the value the routine gave, for every kind of problem: zod's checks on an
 * executor's params (enums, types, ranges, patterns, formats, unions, literals, lists, nested objects, unknown
 * keys, missing values, an executor's own messages), the routine's own shape, and the `aws` block. Messages are
 * one line; long values are shortened. The plugin with params of every shape is in tests/fixtures/shape_plugins.
 *
 * Run: deno test -A tests/validation_messages_test.ts
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RoutineError } from "../orchestrator/errors.ts";
import { parseRoutine } from "../orchestrator/routine/routine.ts";
import type { TemplateScope } from "../orchestrator/routine/template.ts";
import { SecretMask } from "../lib/mask.ts";
import { lakerun, ROOT, tempDir } from "./support/lakerun.ts";

const PLUGINS = join(ROOT, "tests/fixtures/shape_plugins");

/** The problems of a routine, as `json.path: message`. */
async function problemsOf(routine: unknown, templates?: TemplateScope): Promise<string[]> {
  const error = await parseRoutine(JSON.stringify(routine, null, 2), {
    file: "/nowhere/r.json",
    label: "r.json",
    executorDirs: [PLUGINS],
    templates,
  }).then(() => undefined, (e) => e);
  assert.ok(error instanceof RoutineError, `invalid: ${error}`);
  for (const problem of error.problems) assert.ok(!problem.message.includes("\n"), "one line");
  return error.problems.map((problem) => `${problem.path}: ${problem.message}`);
}

const shapes = (params: Record<string, unknown>) => ({
  routine_name: "shapes",
  executors: { s: { executor: "ShapesExecutor", params: { required: "r", ...params }, tasks: ["nothing"] } },
});

Deno.test("a wrong param's message quotes the value given, whatever the check", async () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ mode: "shred" }, 'mode: "shred" is not one of "archive", "delete"'],
    [{ name: 42 }, "name: expected string, received number (42)"],
    [{ name: null }, "name: expected string, received null (null)"],
    [{ count: 0 }, "count: too small: expected number to be >=1, got 0"],
    [{ count: 11 }, "count: too big: expected number to be <=10, got 11"],
    [{ count: 2.5 }, "count: expected int, received number (2.5)"],
    [{ step: 7 }, "step: 7 is not a multiple of 5"],
    [{ slug: "Not Slug" }, 'slug: "Not Slug" does not match the pattern /^[a-z]+$/'],
    [{ link: "nope" }, 'link: "nope" is not a valid URL'],
    [{ bucket: "gs://b" }, 'bucket: "gs://b" does not start with "s3://"'],
    [{ short: "abcdef" }, 'short: too big: expected string to have <=3 characters, got "abcdef"'],
    [{ either: true }, "either: expected string or number, received boolean (true)"],
    [{ exactly: "y" }, 'exactly: "y" is not "x"'],
    [{ list: [] }, "list: too small: expected array to have >=1 items, got []"],
    [{ list: "a" }, 'list: expected array, received string ("a")'],
    [{ nested: { depth: "deep" } }, 'nested.depth: expected number, received string ("deep")'],
    [
      { nested: { depth: 1, width: 2 } },
      'nested.width: unknown param "width" for ShapesExecutor; allowed: depth',
    ],
    [{ nested: [1] }, "nested: expected object, received array ([1])"],
    [{ host: "Bad Host" }, 'host: must be a host name, got "Bad Host"'],
    [{ even: 3 }, "even: must be even, got 3"],
    [
      { mdoe: "archive" },
      "mdoe: unknown param \"mdoe\" for ShapesExecutor (did you mean 'mode'?); allowed: mode, name, count, step, slug, link, bucket, short, either, exactly, list, nested, host, even, required",
    ],
    [{ required: undefined }, "required: missing (expected string)"],
  ];
  for (const [params, expected] of cases) {
    const [problem] = await problemsOf(shapes(params));
    assert.equal(problem, `executors.s.params.${expected}`, JSON.stringify(params));
  }
});

Deno.test("a bad key of a {name: type} map is quoted once, as the key, never with the type it maps to", async () => {
  const athena = (params: Record<string, unknown>) => ({
    routine_name: "keys",
    executors: { p: { executor: "AthenaExecutor", params, tasks: ["query"] } },
  });
  assert.deepEqual(
    await problemsOf(
      athena({ query: "SELECT 1", columns: { Name: "string" }, partitioned_by: { "1dt": "date" } }),
    ),
    [
      'executors.p.params.columns.Name: column name "Name" must be lowercase letters, digits and _, not ' +
      "starting with a digit",
      'executors.p.params.partitioned_by["1dt"]: partition column name "1dt" must be lowercase letters, digits ' +
      "and _, not starting with a digit",
    ],
  );
  // a bad type under a good name still quotes the type
  assert.deepEqual(await problemsOf(athena({ query: "SELECT 1", columns: { name: "text" } })), [
    "executors.p.params.columns.name: must be a Hive column type (bigint, double, string, date, decimal(10,2), " +
    'array<string>, …), not "text"',
  ]);
});

Deno.test("a long or multi-line value is shortened to one line, with its length", async () => {
  const [long] = await problemsOf(shapes({ mode: "x".repeat(500) }));
  assert.equal(
    long,
    `executors.s.params.mode: "${"x".repeat(40)}…" (500 characters) is not one of "archive", "delete"`,
  );
  const [lines] = await problemsOf(shapes({ slug: "two\nlines" }));
  assert.equal(lines, 'executors.s.params.slug: "two\\nlines" does not match the pattern /^[a-z]+$/');
  const [object] = await problemsOf(shapes({ name: { a: "y".repeat(100) } }));
  assert.match(object, /^executors\.s\.params\.name: expected string, received object \(\{"a":"y{40,}…\)$/);
  assert.ok(object.length < 200);
});

Deno.test("the routine's own shape: each message quotes what was given", async () => {
  const step = { executor: "ShapesExecutor", params: { required: "r" }, tasks: ["nothing"] };
  const cases: Array<[unknown, string]> = [
    [{ routine_name: 7, executors: { s: step } }, "routine_name: must be a non-empty string, got 7"],
    [
      { routine_name: "x", executors: ["s"] },
      'executors: must be an object whose keys are executor names or step ids, got ["s"]',
    ],
    [
      { routine_name: "x", executors: { s: "ShapesExecutor" } },
      `executors.s: a step must be an object with 'params' and 'tasks', got "ShapesExecutor"`,
    ],
    [
      { routine_name: "x", executors: { s: { ...step, executor: 5 } } },
      "executors.s.executor: must be an executor name (string), got 5",
    ],
    [
      { routine_name: "x", executors: { s: { ...step, tasks: "nothing" } } },
      'executors.s.tasks: must be a non-empty list of task names (nothing), got "nothing"',
    ],
    [
      { routine_name: "x", executors: { s: { ...step, tasks: [1] } } },
      "executors.s.tasks[0]: must be a task name (string), got 1",
    ],
    [
      { routine_name: "x", executors: { s: { ...step, params: "r" } } },
      'executors.s.params: must be an object, got "r"',
    ],
    [
      { routine_name: "x", executors: { s: { ...step, taks: [] } } },
      "executors.s.taks: unknown key \"taks\" (did you mean 'tasks'?)",
    ],
    [
      { routine_name: "x", executors_dir: "https://example.com/p", executors: { s: step } },
      'executors_dir: must be a local folder, not a URL: "https://example.com/p"',
    ],
    [{ routine_name: "x", rutine: 1, executors: { s: step } }, 'rutine: unknown key "rutine"'],
    [
      { routine_name: "x", aws: { regoin: "eu-west-1" }, executors: { s: step } },
      "aws.regoin: unknown key \"regoin\" (did you mean 'region'?)",
    ],
    [
      { routine_name: "x", aws: { profile: 3 }, executors: { s: step } },
      "aws.profile: expected string, received number (3)",
    ],
  ];
  for (const [routine, expected] of cases) {
    const problems = await problemsOf(routine);
    assert.ok(
      problems.some((problem) => problem.startsWith(expected)),
      `${expected}\nnot in\n${problems.join("\n")}`,
    );
  }
});

Deno.test("a value that may be a secret is never quoted: its path and problem are, and ordinary values still", async () => {
  const redshift = (params: Record<string, unknown>) => ({
    routine_name: "r",
    executors: {
      RedshiftExecutor: {
        params: { workgroup_name: "lake", database: "dev", sql: "SELECT 1", ...params },
        tasks: ["execute"],
      },
    },
  });
  const postgres = (params: Record<string, unknown>) => ({
    routine_name: "r",
    executors: { PostgresExecutor: { params: { sql: "SELECT 1", ...params }, tasks: ["execute"] } },
  });
  const wire = { host: "127.0.0.1", database: "d", user: "u" };
  const at = (executor: string, path: string) => `executors.${executor}.params.${path}: `;
  const notShown = " (the value is not shown: it may hold a secret)";
  const keys = "aws_access_key_id=AKIAIOSFODNN7EXAMPLE;aws_secret_access_key=verySecretKey123";
  const cases: Array<[unknown, string, string]> = [
    [
      redshift({ copy_options: [`CREDENTIALS '${keys}'`] }),
      `${at("RedshiftExecutor", "copy_options[0]")}copy option CREDENTIALS is not allowed: ` +
      `authorization is the \`iam_role\` param; keys never belong in a routine${notShown}`,
      "verySecretKey123",
    ],
    [
      redshift({
        copy_options: ["ACCESS_KEY_ID 'AKIAIOSFODNN7EXAMPLE' SECRET_ACCESS_KEY 'verySecretKey123'"],
      }),
      `${at("RedshiftExecutor", "copy_options[0]")}copy option ACCESS_KEY_ID is not allowed: ` +
      `authorization is the \`iam_role\` param; keys never belong in a routine${notShown}`,
      "verySecretKey123",
    ],
    [
      // a credential in a value the option's own check quotes a part of
      redshift({ copy_options: ["REGION 'password=verySecretKey123'"] }),
      `${at("RedshiftExecutor", "copy_options[0]")}copy option REGION must be a region such as eu-west-1, ` +
      `not "***"${notShown}`,
      "verySecretKey123",
    ],
    [
      redshift({ iam_role: keys }),
      `${
        at("RedshiftExecutor", "iam_role")
      }is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME) or "default"${notShown}`,
      "verySecretKey123",
    ],
    [
      redshift({
        workgroup_name: undefined,
        cluster_identifier: "c",
        secret_arn: '{"password":"verySecretKey123"}',
      }),
      `${at("RedshiftExecutor", "secret_arn")}must be a Secrets Manager secret ARN${notShown}`,
      "verySecretKey123",
    ],
    [
      redshift({ workgroup_name: undefined, ...wire, password_env: "hunter2 secret value" }),
      `${at("RedshiftExecutor", "password_env")}must be an environment variable name${notShown}`,
      "hunter2",
    ],
    [
      postgres({ ...wire, password_env: "hunter2 secret value" }),
      `${at("PostgresExecutor", "password_env")}must be an environment variable name${notShown}`,
      "hunter2",
    ],
    [
      // at url, the param the routine has (not url.password)
      postgres({ url: "postgres://loader:s3cr3tPW@db.example.com/lake" }),
      `${
        at("PostgresExecutor", "url")
      }must not hold a password: put it in an environment variable and name that ` +
      `variable in password_env${notShown}`,
      "s3cr3tPW",
    ],
    [
      postgres({ url: "host=127.0.0.1 password=s3cr3tPW" }),
      `${at("PostgresExecutor", "url")}is not a URL (postgres://user@host:port/database)${notShown}`,
      "s3cr3tPW",
    ],
  ];
  for (const [routine, expected, secret] of cases) {
    const problems = await problemsOf(routine);
    assert.ok(problems.includes(expected), `${expected}\nnot in\n${problems.join("\n")}`);
    assert.ok(!problems.join("\n").includes(secret), problems.join("\n"));
  }
  // in the same executors, ordinary values are quoted as before; a param marked secret never is
  assert.deepEqual(await problemsOf(redshift({ copy_options: ["MAXERROR x"] })), [
    `${
      at("RedshiftExecutor", "copy_options[0]")
    }copy option MAXERROR takes a whole number, not "x", got "MAXERROR x"`,
  ]);
  assert.deepEqual(await problemsOf(postgres({ ...wire, password_env: "LAKE PW" })), [
    `${at("PostgresExecutor", "password_env")}must be an environment variable name${notShown}`,
  ]);
  assert.deepEqual(await problemsOf(postgres({ url: "mysql://u@h/d" })), [
    `${at("PostgresExecutor", "url")}must start with postgres:// or postgresql://${notShown}`,
  ]);
  assert.deepEqual(await problemsOf(redshift({ workgroup_name: "wg" })), [
    `${
      at("RedshiftExecutor", "workgroup_name")
    }must be a Redshift Serverless workgroup name (3–64 characters: lowercase letters, digits and hyphens), got "wg"`,
  ]);
  assert.deepEqual(await problemsOf(redshift({ database: 'a"b' })), [
    `${
      at("RedshiftExecutor", "database")
    }must be a database name (no double quote or control character), got "a\\"b"`,
  ]);

  // a value holding a secrets.* value is quoted masked: masked after being shortened, as before, it kept the
  // secret's first characters (the secret straddles the 40th character, where a long value is cut)
  const token = `Tok3n-${"v".repeat(20)}-xyz`;
  const mask = new SecretMask();
  const scope: TemplateScope = {
    date: "2024-01-31",
    env: () => undefined,
    secret: (name) => name === "TOK" ? token : undefined,
    mask,
  };
  const problems = await problemsOf(shapes({ mode: `${"x".repeat(35)}\${{ secrets.TOK }}` }), scope);
  assert.deepEqual(problems.map((line) => mask.mask(line)), [
    `executors.s.params.mode: "${"x".repeat(35)}***" is not one of "archive", "delete"`,
  ]);
  assert.ok(!problems.join("\n").includes("Tok3"), problems.join("\n"));

  // the command line: exit 2, the same line, the secret nowhere
  await using dir = await tempDir();
  await Deno.writeTextFile(
    join(dir.path, "r.json"),
    JSON.stringify(postgres({ url: "host=127.0.0.1 password=s3cr3tPW" })),
  );
  const result = await lakerun(["validate", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 2);
  assert.match(result.stderr + result.stdout, /params\.url: is not a URL .*it may hold a secret\)/);
  assert.ok(!(result.stderr + result.stdout).includes("s3cr3tPW"));
});

Deno.test("a param a listed task needs is missing: named with the tasks that need it, before anything runs", async () => {
  const postgres = (params: Record<string, unknown>, tasks: string[]) => ({
    routine_name: "x",
    executors: {
      PostgresExecutor: { params: { host: "localhost", database: "d", user: "u", ...params }, tasks },
    },
  });
  const cases: Array<[unknown, string[]]> = [
    [postgres({ source: "in" }, ["create_table", "load"]), [
      "executors.PostgresExecutor.params.table: missing: the create_table and load tasks need it",
    ]],
    [postgres({}, ["execute", "load"]), [
      "executors.PostgresExecutor.params.sql: missing: the execute task needs sql or sql_file",
      "executors.PostgresExecutor.params.table: missing: the load task needs it",
      "executors.PostgresExecutor.params.source: missing: the load task needs it",
    ]],
    // null is as good as absent
    [postgres({ table: "t", source: null }, ["load"]), [
      "executors.PostgresExecutor.params.source: missing: the load task needs it",
    ]],
    [{
      routine_name: "x",
      executors: { GlueExecutor: { params: { crawler_name: "c" }, tasks: ["start_job_run", "run_crawler"] } },
    }, ["executors.GlueExecutor.params.job_name: missing: the start_job_run task needs it"]],
  ];
  for (const [routine, expected] of cases) assert.deepEqual(await problemsOf(routine), expected);
  // what a task does not need may be left out
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/q.sql`, "SELECT 1");
  await parseRoutine(JSON.stringify(postgres({ sql_file: "q.sql" }, ["execute"])), {
    file: `${dir}/r.json`,
    label: "r",
    cwd: dir,
  });
  // a file param's file must be there before anything runs
  assert.deepEqual(await problemsOf(postgres({ sql_file: "missing.sql" }, ["execute"])), [
    `executors.PostgresExecutor.params.sql_file: "missing.sql" is not a file (looked for ${Deno.cwd()}/missing.sql)`,
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("every built-in task's needs name params of its executor's schema", async () => {
  const { builtinExecutors } = await import("../executors/registry.ts");
  const { paramsSchemaOf } = await import("../orchestrator/routine/routine.ts");
  let needs = 0;
  for (const [name, entry] of Object.entries(builtinExecutors)) {
    const definition = (await entry.load()).default;
    const shape = (paramsSchemaOf(definition) as unknown as { shape?: Record<string, unknown> }).shape;
    assert.ok(shape, `${name}: a strict object schema`);
    for (const [task, t] of Object.entries(definition.tasks)) {
      for (const param of (t.needs ?? []).flat()) {
        assert.ok(Object.hasOwn(shape, param), `${name}.${task} needs "${param}", which is not a param`);
        needs++;
      }
    }
  }
  assert.ok(needs >= 20, `${needs} needs declared`);
});

Deno.test("control characters in the routine name or a step id are refused, the value shown escaped", async () => {
  const step = { executor: "ShapesExecutor", params: { required: "r" }, tasks: ["nothing"] };
  const unsafe =
    // deno-lint-ignore no-control-regex -- control characters are what the test looks for
    /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]/;
  const cases: Array<[string, string, string]> = [
    [
      "evil\n::warning title=inj::injected\n../../x",
      "U+000A",
      '"evil\\n::warning title=inj::injected\\n../../x"',
    ],
    ["red\x1b[31m", "U+001B", '"red\\u001b[31m"'],
    ["tab\there", "U+0009", '"tab\\there"'],
    ["del\x7f", "U+007F", '"del\\u007f"'],
    ["csi\x9b2J", "U+009B", '"csi\\u009b2J"'],
    ["txt.\u202eexe", "U+202E", '"txt.\\u202eexe"'],
    ["daily\u200b", "U+200B", '"daily\\u200b"'],
    ["\ufeffdaily", "U+FEFF", '"\\ufeffdaily"'],
  ];
  for (const [name, code, shown] of cases) {
    const [byName] = await problemsOf({ routine_name: name, executors: { s: step } });
    assert.equal(
      byName,
      `routine_name: ${shown} holds the control character ${code}; names may not hold control characters ` +
        "(line breaks, tabs, escapes, C1 codes), bidirectional controls or invisible characters (zero-width, BOM)",
    );
    const byStep = await problemsOf({ routine_name: "x", executors: { [name]: step } });
    assert.equal(byStep.length, 1, byStep.join("\n"));
    assert.ok(
      byStep[0].startsWith(`executors[${shown}]: step id ${shown} holds the control character ${code}`),
    );
    for (const problem of [byName, ...byStep]) assert.ok(!unsafe.test(problem), JSON.stringify(problem));
  }
  assert.deepEqual(await problemsOf({ routine_name: "x", executors: { s: { ...step, description: 5 } } }), [
    "executors.s.description: must be text (a string), got 5",
  ]);
  for (const id of ["", " "]) {
    assert.deepEqual(await problemsOf({ routine_name: "x", executors: { [id]: step } }), [
      `executors[${JSON.stringify(id)}]: step id ${
        JSON.stringify(id)
      } is empty: name the step (plan, logs and steps.ID use it)`,
    ]);
  }
});

Deno.test("a message never prints a control character as it is, whatever the value quoted", async () => {
  const problems = await problemsOf({
    routine_name: "x",
    executors: { s: { executor: "Shapes\x9bExecutor", params: {}, tasks: ["nothing"] } },
  });
  assert.equal(problems.length, 1);
  assert.match(problems[0], /^executors\.s\.executor: unknown executor "Shapes\\u009bExecutor"/);
});

Deno.test("a long unknown name (task, executor, param, key) is quoted with the shared cut, not in full", async () => {
  const long = "t".repeat(100_000);
  const cut = `"${"t".repeat(40)}…" (100000 characters)`;
  const step = { executor: "ShapesExecutor", params: { required: "r" }, tasks: ["nothing"] };
  const cases: Array<[unknown, string]> = [
    [
      { routine_name: "x", executors: { s: { ...step, tasks: [long] } } },
      `executors.s.tasks[0]: ShapesExecutor has no task ${cut}; its tasks: nothing`,
    ],
    [
      { routine_name: "x", executors: { s: { ...step, executor: long } } },
      `executors.s.executor: unknown executor ${cut}; known: `,
    ],
    [
      { routine_name: "x", executors: { s: { ...step, params: { required: "r", [long]: 1 } } } },
      `unknown param ${cut} for ShapesExecutor; allowed: `,
    ],
    [{ routine_name: "x", [long]: 1, executors: { s: step } }, `unknown key ${cut}; allowed: `],
  ];
  for (const [routine, expected] of cases) {
    const problems = await problemsOf(routine);
    assert.equal(problems.length, 1, problems.join("\n").slice(0, 500));
    assert.ok(problems[0].includes(expected), problems[0].slice(0, 500));
    assert.ok(!problems[0].includes("t".repeat(100)), "not in full in the message");
  }
});

Deno.test("a step's access to lakerun's state folder is blamed on the param whose path gives it, not on a name", async () => {
  const { checkStateFolder } = await import("../orchestrator/run/permissions.ts");
  const refusal = async (
    params: Record<string, unknown>,
    tasks: string[],
    executor = "AthenaExecutor",
    stateRoot = ".lakerun",
  ) => {
    const text = JSON.stringify(
      { routine_name: "r", executors: { q: { executor, params, tasks } } },
      null,
      2,
    );
    const routine = await parseRoutine(text, {
      file: "/work/routine.json",
      label: "routine.json",
      cwd: "/work",
    });
    try {
      checkStateFolder(routine, { cwd: "/work", stateRoot });
    } catch (error) {
      assert.ok(error instanceof RoutineError, String(error));
      return error.problems.map((problem) => `${problem.path}: ${problem.message}`);
    }
    return [];
  };
  const athena = { output_location: "s3://athena-results/q/", query: "SELECT 1 FROM retail.sales" };
  assert.deepEqual(await refusal({ ...athena, database: "retail", results_to: "out.csv" }, ["query"]), [
    'executors.q.params.results_to: "out.csv" gives this step write access to /work, which holds lakerun\'s ' +
    "state folder /work/.lakerun (journals, locks, run records); choose a subfolder (such as " +
    '"results/out.csv") or another folder, or keep the state elsewhere with --state-dir',
  ]);
  // a database named like the results' folder is still not a path: the param with the path is named
  assert.match(
    (await refusal(
      { ...athena, database: "retail", results_to: "retail/out.csv" },
      ["query"],
      "AthenaExecutor",
      "retail/state",
    )).join(),
    /^executors\.q\.params\.results_to: "retail\/out\.csv" gives this step write access to \/work\/retail, which holds lakerun's state folder \/work\/retail\/state .*choose a subfolder \(such as "retail\/results\/out\.csv"\)/,
  );
  assert.match(
    (await refusal({ ...athena, database: "out", results_to: "./out.csv" }, ["query"])).join(),
    /^executors\.q\.params\.results_to: "\.\/out\.csv" gives this step write access to \/work,/,
  );
  // a folder param that is the folder itself: no subfolder hint (it would hold the state folder still)
  assert.deepEqual(
    await refusal({ parent_directory: ".", dump_directory: "../staging", archive_or_delete: "delete" }, [
      "transfer",
    ], "StagingExecutor"),
    [
      // read: a step that only transfers may not write its landing folder
      'executors.q.params.parent_directory: "." gives this step read access to /work, which holds ' +
      "lakerun's state folder /work/.lakerun (journals, locks, run records); choose another folder, or keep " +
      "the state elsewhere with --state-dir",
    ],
  );
});

Deno.test("a refusal for reaching lakerun's state folder suggests a path that is accepted", async () => {
  const { checkStateFolder } = await import("../orchestrator/run/permissions.ts");
  const problems = async (params: Record<string, unknown>, tasks: string[], executor: string) => {
    const text = JSON.stringify({ routine_name: "r", executors: { q: { executor, params, tasks } } });
    const routine = await parseRoutine(text, {
      file: "/work/routine.json",
      label: "routine.json",
      cwd: "/work",
    });
    try {
      checkStateFolder(routine, { cwd: "/work", stateRoot: ".lakerun" });
    } catch (error) {
      assert.ok(error instanceof RoutineError, String(error));
      return error.problems.map((problem) => problem.message);
    }
    return [];
  };
  const download = (landing: string, unzip: string | null) => ({
    requests_arguments: { url: "https://example.com/a.zip" },
    landing_directory: landing,
    unzip,
  });
  const athena = { output_location: "s3://athena-results/q/", query: "SELECT 1", database: "retail" };
  const cases: Array<
    [Record<string, unknown>, string[], string, string, (value: string) => Record<string, unknown>]
  > = [
    // the file lands in .lakerun itself: "x" would land in the folder that holds it, "results/x" beside it
    [download(".lakerun/x", null), ["download"], "DownloaderExecutor", "results/x", (v) => download(v, null)],
    [download(".lakerun/x", "unzip"), ["download"], "DownloaderExecutor", "x", (v) => download(v, "unzip")],
    [
      download("/work/.lakerun/a/b", "unzip"),
      ["download"],
      "DownloaderExecutor",
      "/work/a/b",
      (v) => download(v, "unzip"),
    ],
    [{ ...athena, results_to: "out.csv" }, ["query"], "AthenaExecutor", "results/out.csv", (v) => ({
      ...athena,
      results_to: v,
    })],
    [{ ...athena, results_to: ".lakerun/out.csv" }, ["query"], "AthenaExecutor", "results/out.csv", (v) => ({
      ...athena,
      results_to: v,
    })],
  ];
  for (const [params, tasks, executor, suggested, withValue] of cases) {
    const [message, ...more] = await problems(params, tasks, executor);
    assert.equal(more.length, 0);
    assert.match(message, new RegExp(`\\(such as ${JSON.stringify(suggested).replaceAll(".", "\\.")}\\)`));
    assert.ok(!/such as "[^"]*\.lakerun/.test(message), message);
    assert.deepEqual(await problems(withValue(suggested), tasks, executor), [], `${suggested} is accepted`);
  }
});

Deno.test("an S3 folder param of Athena says what is wrong with the location, as every S3 location param does", async () => {
  const athena = (params: Record<string, unknown>) => ({
    routine_name: "a",
    executors: { AthenaExecutor: { params: { query: "SELECT 1", ...params }, tasks: ["query"] } },
  });
  const rule =
    "must be 3–63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit";
  assert.deepEqual(await problemsOf(athena({ output_location: "s3://ab/o/" })), [
    `executors.AthenaExecutor.params.output_location: invalid S3 location "s3://ab/o/": the bucket name "ab" ${rule}`,
  ]);
  // the same words as a StagingExecutor folder's
  const staging = {
    routine_name: "s",
    executors: {
      StagingExecutor: {
        params: { parent_directory: "in", dump_directory: "s3://ab/o/" },
        tasks: ["transfer"],
      },
    },
  };
  assert.deepEqual(await problemsOf(staging), [
    `executors.StagingExecutor.params.dump_directory: invalid S3 location "s3://ab/o/": the bucket name "ab" ${rule}`,
  ]);
  assert.deepEqual(
    await problemsOf(athena({ location: "s3://lake/a/../b", output_location: "gs://lake/o/" })),
    [
      `executors.AthenaExecutor.params.location: invalid S3 location "s3://lake/a/../b": empty, '.' or '..' segment in the prefix`,
      'executors.AthenaExecutor.params.output_location: must be an s3://bucket/folder/ location, not "gs://lake/o/"',
    ],
  );
});

Deno.test("a plugin's ParamError names one param by a string, or a value inside one by a path", async () => {
  const refusing = (params: Record<string, unknown>) => ({
    routine_name: "refusing",
    executors: { r: { executor: "RefusingExecutor", params, tasks: ["nothing"] } },
  });
  assert.deepEqual(await problemsOf(refusing({ mode: "shred" })), [
    'executors.r.params.mode: mode "shred" is not supported',
  ]);
  assert.deepEqual(await problemsOf(refusing({ source: { url: "ftp://example.com/a.zip" } })), [
    "executors.r.params.source.url: unsupported URL scheme ftp: in ftp://example.com/a.zip",
  ]);
});

Deno.test("a routine's problems are printed alike, one or many: file:line:col lines, with no 'lakerun:' prefix", async () => {
  await using dir = await tempDir();
  const step = (params: Record<string, unknown>) => ({
    executor: "RefusingExecutor",
    params,
    tasks: ["nothing"],
  });
  const one = { routine_name: "one", executors: { a: step({ mode: "shred" }) } };
  const two = { routine_name: "two", executors: { a: step({ mode: "shred" }), b: step({ mode: 3 }) } };
  for (const [name, routine] of [["one.json", one], ["two.json", two]] as const) {
    await Deno.writeTextFile(join(dir.path, name), JSON.stringify(routine, null, 2));
  }
  const validate = (file: string) => lakerun(["validate", "--executors", PLUGINS, file], { cwd: dir.path });
  const single = await validate("one.json");
  assert.equal(single.code, 2, single.stderr);
  assert.equal(single.stderr, 'one.json:7:17: executors.a.params.mode: mode "shred" is not supported\n');
  const many = await validate("two.json");
  assert.equal(many.code, 2, many.stderr);
  assert.equal(
    many.stderr,
    'two.json:7:17: executors.a.params.mode: mode "shred" is not supported\n' +
      "two.json:16:17: executors.b.params.mode: expected string, received number (3)\n",
  );
  // a mistake of the command line is no routine problem: lakerun's name still says who speaks
  const usage = await lakerun(["validate", "--executors", "nowhere", "one.json"], { cwd: dir.path });
  assert.equal(usage.stderr, "lakerun: --executors nowhere: no such folder\n");
});
