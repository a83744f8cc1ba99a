/**
 * `${{ … }}` templates: the language (names, filters, literals, syntax errors), the date filters on leap
 * years, month ends and quarter ends, validation through the command line (exit 2, one line per problem with
 * its JSON path and the expression quoted), values resolved at load and just before a step runs (the params
 * then validated again, the step's scope computed from them), secrets masked in every channel lakerun writes
 * to, and `plan` showing resolved values.
 *
 * Run: `deno test -A tests/template_test.ts`
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SecretMask } from "../lib/mask.ts";
import {
  evaluateTemplate,
  parseTemplate,
  resolveParamTemplates,
  type TemplateScope,
  type TemplateValue,
} from "../orchestrator/routine/template.ts";
import { listRuns } from "../orchestrator/run/records.ts";
import { lakerun, ROOT, tempDir } from "./support/lakerun.ts";

const PLUGINS = join(ROOT, "tests/fixtures/template_plugins");

const scopeOf = (date: string, extra: Partial<TemplateScope> = {}): TemplateScope => ({
  date,
  env: () => undefined,
  secret: () => undefined,
  ...extra,
});

const valueOf = (text: string, date: string, extra: Partial<TemplateScope> = {}): TemplateValue =>
  evaluateTemplate(parseTemplate(text), scopeOf(date, extra));

/** Writes a routine of EchoExecutor steps (`executor` filled in) to `dir/r.json`; returns its text. */
async function echoRoutine(dir: string, steps: Record<string, Record<string, unknown>>): Promise<string> {
  const executors = Object.fromEntries(
    Object.entries(steps).map(([id, step]) => [id, { executor: "EchoExecutor", tasks: ["echo"], ...step }]),
  );
  const text = JSON.stringify({ routine_name: "templates", executors_dir: PLUGINS, executors }, null, 2);
  await Deno.writeTextFile(join(dir, "r.json"), text);
  return text;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(path));
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Every file under `dir` (recursively) with its text. */
async function filesUnder(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = join(path, entry.name);
      if (entry.isDirectory) await walk(full);
      else if (entry.isFile) files.set(full, await Deno.readTextFile(full));
    }
  };
  await walk(dir).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  return files;
}

// ---- the language ----

Deno.test("date filters: days, months, quarters and years, across leap years and month ends", () => {
  const cases: Array<[string, string, string]> = [
    ["add_days(1)", "2020-02-28", "2020-02-29"], // leap year
    ["add_days(1)", "2021-02-28", "2021-03-01"],
    ["add_days(1)", "1900-02-28", "1900-03-01"], // a century: not a leap year
    ["add_days(1)", "2000-02-28", "2000-02-29"], // divisible by 400: a leap year
    ["sub_days(1)", "2020-03-01", "2020-02-29"],
    ["add_days(366)", "2020-01-01", "2021-01-01"],
    ["add_days(-1)", "2021-01-01", "2020-12-31"],
    ["sub_days(-1)", "2020-12-31", "2021-01-01"],
    ["add_months(1)", "2020-01-31", "2020-02-29"], // clamped to the month's end
    ["add_months(1)", "2021-01-31", "2021-02-28"],
    ["add_months(1)", "2020-02-29", "2020-03-29"], // clamping, not month-end keeping
    ["add_months(1) | month_end", "2020-02-29", "2020-03-31"],
    ["sub_months(3)", "2020-05-31", "2020-02-29"],
    ["add_months(-1)", "2020-03-31", "2020-02-29"],
    ["add_months(12)", "2019-12-15", "2020-12-15"],
    ["sub_months(13)", "2020-01-15", "2018-12-15"],
    ["add_quarters(1)", "2019-11-30", "2020-02-29"],
    ["add_quarters(1)", "2020-03-31", "2020-06-30"],
    ["sub_quarters(1) | quarter_end", "2024-05-17", "2024-03-31"],
    ["add_years(1)", "2020-02-29", "2021-02-28"],
    ["sub_years(4)", "2024-02-29", "2020-02-29"],
    ["month_start", "2024-02-17", "2024-02-01"],
    ["month_end", "2024-02-17", "2024-02-29"],
    ["month_end", "2023-02-17", "2023-02-28"],
    ["month_end", "1900-02-01", "1900-02-28"],
    ["month_end", "2000-02-01", "2000-02-29"],
    ["quarter_start", "2024-08-31", "2024-07-01"],
    ["year_start", "2024-08-31", "2024-01-01"],
    ["year_end", "2024-08-31", "2024-12-31"],
    ["sub_days(1) | quarter_end", "2024-01-01", "2023-12-31"],
  ];
  for (const [filters, date, expected] of cases) {
    assert.equal(valueOf(`\${{ run.date | ${filters} }}`, date), expected, `${date} | ${filters}`);
  }
  const quarterEnds = ["03-31", "03-31", "03-31", "06-30", "06-30", "06-30"]
    .concat(["09-30", "09-30", "09-30", "12-31", "12-31", "12-31"]);
  for (let month = 1; month <= 12; month++) {
    for (const day of ["01", "15"]) {
      const date = `2024-${String(month).padStart(2, "0")}-${day}`;
      assert.equal(valueOf("${{ run.date | quarter_end }}", date), `2024-${quarterEnds[month - 1]}`, date);
    }
  }
});

Deno.test("format tokens, upper and lower", () => {
  const cases: Array<[string, string]> = [
    ["YYYY", "2024"],
    ["yyyy", "2024"],
    ["MM", "06"],
    ["DD", "09"],
    ["dd", "09"],
    ["YYYY-MM-DD", "2024-06-09"],
    ["yyyy/MM/dd", "2024/06/09"],
    ["yyyyMMdd", "20240609"],
    ["MMMM", "June"],
    ["MMM", "Jun"],
    ["D/M/YY", "9/6/24"],
    ["Q", "2"],
    ["MMMM-yyyy", "June-2024"],
  ];
  for (const [pattern, expected] of cases) {
    assert.equal(valueOf(`\${{ run.date | format('${pattern}') }}`, "2024-06-09"), expected, pattern);
  }
  assert.equal(valueOf('${{ run.date | format("MMMM-yyyy") | lower }}', "2024-06-09"), "june-2024");
  assert.equal(valueOf("${{ run.date | format('MMM') | upper }}", "2024-06-09"), "JUN");
  assert.equal(valueOf("${{ run.date }}", "2024-06-09"), "2024-06-09", "run.date is YYYY-MM-DD");
  assert.equal(valueOf("${{ '2020-01-31' | add_months(1) }}", "2024-06-09"), "2020-02-29", "a literal date");
});

Deno.test("text around expressions is kept; one expression alone keeps its type; single-pass rendering", () => {
  const outputs = { load: { rows: 42, ok: true, name: "sales" } };
  const extra = {
    outputs,
    runId: "r-1",
    env: (name: string) =>
      ({ HOLDS_TEMPLATE: "${{ secrets.X }}", EMPTY: "" } as Record<string, string>)[name],
  };
  const at = (text: string) => valueOf(text, "2024-06-30", extra);
  assert.equal(at("${{ steps.load.outputs.rows }}"), 42);
  assert.equal(at("${{ steps.load.outputs.ok }}"), true);
  assert.equal(at(" ${{ steps.load.outputs.rows }}"), " 42", "with text around it: a string");
  assert.equal(at("${{ steps.load.outputs.name }}-${{ run.id }}.csv"), "sales-r-1.csv");
  assert.equal(
    at("a ${{run.date|format('yyyy')}} b ${{  run.date  |  add_days( -1 )  }}"),
    "a 2024 b 2024-06-29",
  );
  assert.equal(at("${{ env.HOLDS_TEMPLATE }}"), "${{ secrets.X }}", "a value is never read as a template");
  assert.equal(at("[${{ env.EMPTY }}]"), "[]");
  assert.equal(at("${{ '${{' }} run.date }}"), "${{ run.date }}", "how to write ${{ itself");
  assert.equal(at("${{ 'a }} b' }}"), "a }} b", "}} inside a string literal");
  assert.equal(at("${{ 'it\\'s' }}"), "it's");
  assert.equal(at("}} and {{ x }} and $HOME and ${x}"), "}} and {{ x }} and $HOME and ${x}");
});

Deno.test("syntax errors, unknown names and filters, bad arguments: one message quoting the expression", () => {
  const cases: Array<[string, RegExp]> = [
    ["${{ run.date", /^"\$\{\{ run\.date" has no closing "}}"$/],
    [
      "${{ run.date | format('yyyy }}",
      /^"\$\{\{ run\.date \| format\('yyyy }}" has a ' that is never closed$/,
    ],
    ["${{ run.date", /has no closing "}}"/],
    [
      "${{ run.id | upper | format('yyyy') }}",
      /^format needs a date, and run\.id is not one \(run\.date is the run's date\)/,
    ],
    ["${{ }}", /^empty expression in "\$\{\{ }}"$/],
    ["${{ run.dat }}", /^unknown name "run\.dat" \(did you mean 'run\.date'\?\); names: run\.date, run\.id,/],
    ["${{ today }}", /^unknown name "today"; names: /],
    ["${{ constructor }}", /^unknown name "constructor"/],
    ["${{ run.__proto__ }}", /^unknown name "run\.__proto__"/],
    ["${{ eval('1') }}", /^unknown name "eval"/],
    ["${{ env }}", /^unknown name "env"/],
    ["${{ env.A-B }}", /"A-B" is not a variable name/],
    ["${{ secrets.A.B }}", /^unknown name "secrets\.A\.B"/],
    ["${{ steps.load.output.rows }}", /a step's value is written steps\.ID\.outputs\.KEY/],
    [
      "${{ run.date | fromat('yyyy') }}",
      /^unknown filter "fromat" \(did you mean 'format'\? filters: add_days,/,
    ],
    ["${{ run.date | add_days }}", /^add_days takes 1 argument \(a whole number of days\), got 0 arguments/],
    ["${{ run.date | add_days(1, 2) }}", /got 2 arguments/],
    ["${{ run.date | add_days(1.5) }}", /^add_days takes a whole number of days, got 1\.5/],
    ["${{ run.date | add_months('1') }}", /^add_months takes a whole number of months, got "1"/],
    ["${{ run.date | quarter_end(1) }}", /^quarter_end takes no arguments, got 1 argument/],
    ["${{ run.date | format() }}", /^format takes 1 argument/],
    ["${{ run.date | format(3) }}", /^format takes a pattern string, got 3/],
    ["${{ run.date | format('yyyy-mm-dd') }}", /^unknown format token "mm" in "yyyy-mm-dd"/],
    ["${{ run.date | format('YYYYY') }}", /^unknown format token "YYYYY"/],
    ["${{ run.date + 1 }}", /^unexpected "\+" in/],
    ["${{ run.date run.id }}", /^expected "\|" or "}}", found "run" in/],
    ["${{ run.date | }}", /^expected a filter name after "\|", found the end of the expression in/],
    ["${{ run.date | add_days(1 }}", /^expected "\)" closing the arguments of add_days/],
    ["${{ run.date | add_days(x) }}", /^expected a string or number argument to add_days, found "x"/],
    ["${{ 'unterminated }}", /has a ' that is never closed/],
  ];
  for (const [text, expected] of cases) {
    assert.throws(() => parseTemplate(text), (error: Error) => {
      assert.equal(error.name, "TemplateError", text);
      assert.match(error.message, expected, text);
      const closed = text.endsWith("}}") && !/has no closing|never closed/.test(error.message);
      if (closed) assert.ok(error.message.endsWith(` in ${JSON.stringify(text)}`), error.message);
      return true;
    });
  }
});

Deno.test("values that cannot be computed are errors quoting the expression", () => {
  const cases: Array<[string, Partial<TemplateScope>, RegExp]> = [
    [
      "${{ env.LAKERUN_NOPE }}",
      {},
      /^environment variable LAKERUN_NOPE is not set in "\$\{\{ env\.LAKERUN_NOPE }}"$/,
    ],
    [
      "${{ secrets.NOPE }}",
      {},
      /^secret NOPE is not set \(neither in --secrets-file nor in the environment\)/,
    ],
    [
      "${{ secrets.PIN }}",
      { secret: () => "123" },
      /^secret PIN is shorter than 4 characters: too short to mask/,
    ],
    [
      "${{ run.date | format('MMMM') | add_days(1) }}",
      {},
      /add_days needs a date \(YYYY-MM-DD\), got "June"/,
    ],
    ["${{ 'soon' | quarter_end }}", {}, /quarter_end needs a date \(YYYY-MM-DD\), got "soon"/],
    ["${{ '2023-02-29' | format('yyyy') }}", {}, /format needs a date/],
    ["${{ run.date | add_years(8000) }}", {}, /date out of range \(years 0001-9999\)/],
    ["${{ run.id }}", {}, /run\.id is known only once the run has begun/],
    ["${{ steps.a.outputs.n }}", {}, /steps\.a\.outputs\.n is known only once step "a" has run/],
    ["${{ steps.a.outputs.n }}", { outputs: {} }, /step "a" has not run, so it has no outputs/],
    [
      "${{ steps.a.outputs.n }}",
      { outputs: { a: { m: 1, k: 2 } } },
      /^step "a" reported no output "n" \(its outputs: m, k\)/,
    ],
  ];
  for (const [text, extra, expected] of cases) {
    assert.throws(
      () => valueOf(text, "2024-06-30", extra),
      (error: Error) => expected.test(error.message),
      text,
    );
  }
});

Deno.test("secrets, and values computed from them, are registered in the mask", () => {
  const mask = new SecretMask();
  const secret = (name: string) =>
    ({ TOKEN: "tok-en-Secret", SHORT: "abcd" } as Record<string, string>)[name];
  const at = (text: string) => valueOf(text, "2024-06-30", { secret, mask });
  assert.equal(at("Bearer ${{ secrets.TOKEN }}"), "Bearer tok-en-Secret");
  assert.equal(at("${{ secrets.TOKEN | upper }}"), "TOK-EN-SECRET");
  assert.equal(at("${{ secrets.SHORT | lower }}"), "abcd");
  assert.deepEqual([...mask.values].sort(), ["TOK-EN-SECRET", "abcd", "tok-en-Secret"]);
  assert.equal(mask.mask("x TOK-EN-SECRET tok-en-Secret y"), "x *** *** y");
});

Deno.test("params: nested objects and lists are walked; strings without ${{ are left as they are", () => {
  const problems: string[] = [];
  const report = (path: ReadonlyArray<string | number>, message: string) =>
    problems.push(`${path.join(".")}: ${message}`);
  const params = {
    a: { b: [{ c: "${{ run.date | format('yyyy') }}" }, "plain {{ x }}", 3, null, true] },
    d: "${{ steps.s.outputs.k }}",
  };
  const resolved = resolveParamTemplates(params, scopeOf("2024-06-30"), { report })!;
  assert.deepEqual(JSON.parse(JSON.stringify(resolved.params)), {
    a: { b: [{ c: "2024" }, "plain {{ x }}", 3, null, true] },
    d: "${{ steps.s.outputs.k }}",
  });
  assert.deepEqual(resolved.templates.map((t) => [t.path.join("."), t.deferred, t.value]), [
    ["a.b.0.c", false, "2024"],
    ["d", true, undefined],
  ]);
  assert.equal(
    resolveParamTemplates({ a: ["$x", "{{ y }}", "}}"] }, scopeOf("2024-06-30"), { report }),
    undefined,
  );
  assert.equal(
    resolveParamTemplates({ a: ["${{ nope }}", { b: "${{ run.date | nope }}" }] }, scopeOf("2024-06-30"), {
      report,
    }),
    null,
  );
  assert.equal(problems.length, 2);
  assert.match(problems[0], /^a\.0: unknown name "nope"/);
  assert.match(problems[1], /^a\.1\.b: unknown filter "nope"/);
});

// ---- through the command line ----

Deno.test("lakerun validate: every template problem on its own line, with file:line:col, JSON path and the expression; exit 2, nothing runs", async () => {
  await using dir = await tempDir();
  const text = await echoRoutine(dir.path, {
    first: {
      params: {
        out: "o/${{ run.date | fromat('yyyy') }}.json",
        list: [{ name: "${{ env.LAKERUN_TEST_UNSET_VARIABLE }}" }],
        outputs: { a: "${{ steps.second.outputs.x }}" },
        // not a template: its problem is shown with the templates' (a template's problem hides nothing)
        quarter: "5",
      },
    },
    second: {
      params: {
        out: "o/b.json",
        text: "${{ steps.nope.outputs.x }}",
        count: "${{ steps.second.outputs.n }}",
      },
    },
  });
  for (const command of ["validate", "run", "plan"]) {
    const result = await lakerun([command, "r.json"], { cwd: dir.path });
    assert.equal(result.code, 2, `${command}: ${result.stderr}`);
    const lines = result.stderr.trim().split("\n");
    const expected = [
      `executors.first.params.out: unknown filter "fromat" (did you mean 'format'? filters: add_days, sub_days, add_months, sub_months, add_quarters, sub_quarters, add_years, sub_years, month_start, month_end, quarter_start, quarter_end, year_start, year_end, format, upper, lower) in "\${{ run.date | fromat('yyyy') }}"`,
      `executors.first.params.list[0].name: environment variable LAKERUN_TEST_UNSET_VARIABLE is not set in "\${{ env.LAKERUN_TEST_UNSET_VARIABLE }}"`,
      `executors.first.params.outputs.a: step "second" runs after "first", so its outputs are not known yet in "\${{ steps.second.outputs.x }}"`,
      'executors.first.params.quarter: "5" is not one of "1", "2", "3"',
      `executors.second.params.text: no step "nope" in this routine; steps: first, second in "\${{ steps.nope.outputs.x }}"`,
      `executors.second.params.count: step "second" cannot use its own outputs in "\${{ steps.second.outputs.n }}"`,
    ];
    assert.equal(lines.length, expected.length, result.stderr);
    for (const [i, line] of lines.entries()) {
      const match = /^(?:lakerun: )?r\.json:(\d+):(\d+): (.*)$/.exec(line);
      assert.ok(match, line);
      assert.equal(match[3], expected[i]);
    }
    // the position is the value's: the line of the first problem holds the template
    const outLine = Number(/^(?:lakerun: )?r\.json:(\d+)/.exec(lines[0])![1]);
    assert.ok(text.split("\n")[outLine - 1].includes("fromat"), text.split("\n")[outLine - 1]);
  }
  assert.equal(await exists(join(dir.path, "o")), false, "nothing ran");
});

Deno.test("steps.ID must be an earlier step, or among the step's depends_on (direct or not) when the routine uses depends_on", async () => {
  await using dir = await tempDir();
  await echoRoutine(dir.path, {
    a: { params: { out: "o/a.json" } },
    b: { params: { out: "o/b.json" } },
    c: { params: { out: "o/c.json", text: "${{ steps.b.outputs.x }}" }, depends_on: ["b"] },
    d: {
      params: { out: "o/d.json", text: "${{ steps.b.outputs.x }} ${{ steps.a.outputs.x }}" },
      depends_on: ["c"],
    },
  });
  const result = await lakerun(["validate", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 2, result.stderr);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(
    lines[0],
    /executors\.d\.params\.text: step "a" is not among the steps "d" depends on, so its outputs may not be known yet \(add it to depends_on\) in "\$\{\{ steps\.a\.outputs\.x }}"$/,
  );
});

Deno.test("a routine without templates is used exactly as written", async () => {
  await using dir = await tempDir();
  const text = "price {{ x }} $HOME ${y} }} $ {{";
  await echoRoutine(dir.path, { first: { params: { out: "o/a.json", text, list: [{ name: "${ z }" }] } } });
  const result = await lakerun(["run", "r.json"], { cwd: dir.path });
  assert.equal(result.code, 0, result.stderr);
  const params = await readJson(join(dir.path, "o/a.json"));
  assert.equal(params.text, text);
  assert.deepEqual(params.list, [{ name: "${ z }" }]);
  const plan = JSON.parse((await lakerun(["plan", "--json", "r.json"], { cwd: dir.path })).stdout);
  assert.equal(plan.date, undefined, "no run.date shown for a routine without templates");
  assert.equal(plan.steps[0].templates, undefined);
});

Deno.test("run: run.date, env, step outputs (typed), run.id; a step's scope comes from its resolved params", async () => {
  await using dir = await tempDir();
  await echoRoutine(dir.path, {
    first: {
      params: {
        out: "o/first.json",
        text: "${{ run.date | format('yyyy/MM/dd') }} in ${{ env.LAKERUN_T_REGION }}",
        outputs: { rows: 42, name: "sales-${{ run.date | quarter_end }}", folder: "deep/er" },
      },
    },
    second: {
      params: {
        out: "${{ steps.first.outputs.folder }}/second.json",
        count: "${{ steps.first.outputs.rows }}",
        fail_when: "${{ steps.first.outputs.rows }}", // a string param: the number as text
        text: "${{ steps.first.outputs.name }}@${{ run.id }}",
        list: [{ name: "${{ steps.first.outputs.name | upper }}" }],
      },
    },
  });
  const env = { LAKERUN_T_REGION: "eu-west-1" };
  const plan = await lakerun(["plan", "r.json", "--date", "2024-05-17"], { cwd: dir.path, env });
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /run in this order \(run\.date 2024-05-17\)/);
  assert.match(plan.stdout, /text = "2024\/05\/17 in eu-west-1"/);
  assert.match(
    plan.stdout,
    /out = \$\{\{ steps\.first\.outputs\.folder }}\/second\.json \(when the step runs\)/,
  );
  assert.match(
    plan.stdout,
    /permissions: computed when the step runs, from the params its templates resolve to/,
  );

  const result = await lakerun(["run", "r.json", "--date", "2024-05-17"], { cwd: dir.path, env });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const first = await readJson(join(dir.path, "o/first.json"));
  assert.equal(first.text, "2024/05/17 in eu-west-1");
  assert.deepEqual(first.outputs, { rows: 42, name: "sales-2024-06-30", folder: "deep/er" });
  // written where only the resolved `out` lets the step's Worker write
  const second = await readJson(join(dir.path, "deep/er/second.json"));
  const [record] = await listRuns(join(dir.path, ".lakerun"), "templates");
  assert.equal(record.date, "2024-05-17");
  assert.equal(second.count, 42, "a number output stays a number");
  assert.equal(second.fail_when, "42", "and is written as text for a param that takes a string");
  assert.equal(second.text, `sales-2024-06-30@${record.runId}`);
  assert.deepEqual(second.list, [{ name: "SALES-2024-06-30" }]);
});

Deno.test("env.NAME of a variable whose name says it holds a credential is masked as a secret is", async () => {
  await using dir = await tempDir();
  await echoRoutine(dir.path, {
    first: {
      params: {
        out: "o/first.json",
        text:
          "${{ env.LAKERUN_T_REGION }} key=${{ env.LAKERUN_T_SECRET_ACCESS_KEY }} t=${{ env.LAKERUN_T_API_TOKEN }} " +
          "p=${{ env.LAKERUN_T_DB_PASS }} s=${{ env.LAKERUN_T_STRIPE_KEY }}",
      },
    },
  });
  const env = {
    LAKERUN_T_REGION: "eu-west-1",
    LAKERUN_T_SECRET_ACCESS_KEY: "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
    LAKERUN_T_API_TOKEN: "tok-8c1f2e",
    LAKERUN_T_DB_PASS: "DBPASS999",
    LAKERUN_T_STRIPE_KEY: "sk_live_STRIPE999",
  };
  for (const args of [["plan", "r.json"], ["plan", "--json", "r.json"], ["run", "r.json"]]) {
    const result = await lakerun(args, { cwd: dir.path, env });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const shown = result.stdout + result.stderr;
    assert.doesNotMatch(
      shown,
      /wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY|tok-8c1f2e|DBPASS999|STRIPE999/,
      args.join(" "),
    );
    if (args[1] !== "--json" && args[0] === "plan") {
      assert.match(shown, /text = "eu-west-1 key=\*\*\* t=\*\*\* p=\*\*\* s=\*\*\*"/, shown);
    }
  }
  // the step gets the values; the run record does not show them
  assert.equal(
    (await readJson(join(dir.path, "o/first.json"))).text,
    "eu-west-1 key=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY t=tok-8c1f2e p=DBPASS999 s=sk_live_STRIPE999",
  );
  for await (const entry of Deno.readDir(join(dir.path, ".lakerun"))) {
    if (!entry.isDirectory) continue;
    for await (const run of Deno.readDir(join(dir.path, ".lakerun", entry.name, "runs"))) {
      const text = await Deno.readTextFile(join(dir.path, ".lakerun", entry.name, "runs", run.name));
      assert.doesNotMatch(text, /wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY|tok-8c1f2e|DBPASS999|STRIPE999/);
    }
  }
});

Deno.test("run: params invalid once resolved, or an output never reported, fail the step with the param's path", async () => {
  await using dir = await tempDir();
  await echoRoutine(dir.path, {
    first: { params: { out: "o/first.json", outputs: { name: "sales" } } },
    second: { params: { out: "o/second.json", count: "${{ steps.first.outputs.name }}" } },
  });
  const invalid = await lakerun(["run", "r.json"], { cwd: dir.path });
  assert.equal(invalid.code, 1, invalid.stdout + invalid.stderr);
  assert.match(invalid.stdout + invalid.stderr, /executors\.second\.params\.count: .*(number|"sales")/);
  assert.equal(await exists(join(dir.path, "o/second.json")), false);

  await echoRoutine(dir.path, {
    first: { params: { out: "o/first.json", outputs: { name: "sales" } } },
    second: { params: { out: "o/second.json", text: "${{ steps.first.outputs.rows }}" } },
  });
  const missing = await lakerun(["run", "r.json"], { cwd: dir.path });
  assert.equal(missing.code, 1);
  assert.match(
    missing.stdout + missing.stderr,
    /executors\.second\.params\.text: step "first" reported no output "rows" \(its outputs: name\) in "\$\{\{ steps\.first\.outputs\.rows }}"/,
  );
});

Deno.test("plan --date shows resolved values and the scope computed from them", async () => {
  await using dir = await tempDir();
  await echoRoutine(dir.path, {
    first: {
      params: { out: "o/${{ run.date | sub_quarters(1) | quarter_end | format('yyyy/MM') }}/a.json" },
    },
  });
  const text = await lakerun(["plan", "r.json", "--date", "2020-05-03"], { cwd: dir.path });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /out = "o\/2020\/03\/a\.json"/);
  assert.match(
    text.stdout,
    new RegExp(`write  .*\\n\\s+${join(dir.path, "o/2020/03").replaceAll("/", "\\/")}\\n`),
  );
  const json = JSON.parse(
    (await lakerun(["plan", "--json", "r.json", "--date", "2021-01-10"], { cwd: dir.path })).stdout,
  );
  assert.equal(json.date, "2021-01-10");
  assert.equal(json.steps[0].params.out, "o/2020/12/a.json");
  assert.deepEqual(json.steps[0].templates, [{
    param: "out",
    template: "o/${{ run.date | sub_quarters(1) | quarter_end | format('yyyy/MM') }}/a.json",
    value: "o/2020/12/a.json",
  }]);
  assert.ok(json.steps[0].permissions.write.includes(join(dir.path, "o/2020/12")));
});

// ---- secrets ----

const ENV_SECRET = "env-Secret-7Qz9x";
const FILE_SECRET = "file-Secret-Pw4!";
const DERIVED = FILE_SECRET.toUpperCase();
const SECRETS = [ENV_SECRET, FILE_SECRET, DERIVED];

function assertNoSecret(where: string, text: string) {
  for (const [i, line] of text.split("\n").entries()) {
    for (const secret of SECRETS) assert.ok(!line.includes(secret), `${where}, line ${i + 1}: ${line}`);
  }
}

Deno.test("secrets: masked in console lines, errors, plan (text and JSON), validation errors and run records; the step gets the value", async () => {
  await using dir = await tempDir();
  const secretsFile = join(dir.path, "secrets.env");
  await Deno.writeTextFile(
    secretsFile,
    `# test\nDB_PASSWORD="${FILE_SECRET}"\nUNUSED_ONE=${"x".repeat(12)}\n`,
  );
  const env = { LAKERUN_T_TOKEN: ENV_SECRET, LAKERUN_T_TEMPLATE: "${{ secrets.DB_PASSWORD }}" };
  await echoRoutine(dir.path, {
    first: {
      params: {
        out: "o/first.json",
        text:
          "token=${{ secrets.LAKERUN_T_TOKEN }} pw=${{ secrets.DB_PASSWORD }} up=${{ secrets.DB_PASSWORD | upper }}",
        outputs: { echoed: "${{ secrets.LAKERUN_T_TOKEN }}", literal: "${{ env.LAKERUN_T_TEMPLATE }}" },
      },
    },
    second: {
      params: { out: "o/second.json", text: "again ${{ steps.first.outputs.echoed }}" },
      tasks: ["fail"],
    },
  });
  const args = ["--secrets-file", secretsFile];
  const run = await lakerun(["run", "r.json", ...args, "--debug"], { cwd: dir.path, env });
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assertNoSecret("run stdout", run.stdout);
  assertNoSecret("run stderr", run.stderr);
  assert.match(run.stdout, /text: token=\*\*\* pw=\*\*\* up=\*\*\*/, "the task's log line, masked");
  assert.match(run.stdout, /output echoed = "\*\*\*"/);
  assert.match(run.stdout + run.stderr, /could not use again \*\*\*/, "the task's error, masked");
  // the step got the values themselves (and a variable's `${{` was not read as a template)
  const first = await readJson(join(dir.path, "o/first.json"));
  assert.equal(first.text, `token=${ENV_SECRET} pw=${FILE_SECRET} up=${DERIVED}`);
  assert.deepEqual(first.outputs, { echoed: ENV_SECRET, literal: "${{ secrets.DB_PASSWORD }}" });
  // nothing lakerun stored holds a secret: run records, run state, journals
  const stored = await filesUnder(join(dir.path, ".lakerun"));
  assert.ok([...stored.keys()].some((path) => path.includes("/runs/")), "a run record was written");
  for (const [path, content] of stored) assertNoSecret(path, content);

  for (const planArgs of [["plan", "r.json"], ["plan", "--json", "r.json"]]) {
    const plan = await lakerun([...planArgs, ...args], { cwd: dir.path, env });
    assert.equal(plan.code, 0, plan.stderr);
    assertNoSecret(planArgs.join(" "), plan.stdout + plan.stderr);
    assert.match(plan.stdout, /token=\*\*\* pw=\*\*\* up=\*\*\*/);
  }

  // a validation error quoting a resolved value
  await echoRoutine(dir.path, {
    first: { params: { out: "o/a.json", quarter: "${{ secrets.DB_PASSWORD }}" } },
  });
  const invalid = await lakerun(["validate", "r.json", ...args], { cwd: dir.path, env });
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /executors\.first\.params\.quarter/);
  assertNoSecret("validate stderr", invalid.stdout + invalid.stderr);
});

Deno.test("secrets: a step's sandbox gets the value, never the permission to read the variable", async () => {
  await using dir = await tempDir();
  await echoRoutine(dir.path, {
    first: {
      params: { out: "o/a.json", text: "${{ secrets.LAKERUN_T_TOKEN }}", variable: "LAKERUN_T_TOKEN" },
      tasks: ["echo", "read_env"],
    },
  });
  const result = await lakerun(["run", "r.json"], { cwd: dir.path, env: { LAKERUN_T_TOKEN: ENV_SECRET } });
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout + result.stderr, /read_env failed: .*env access to "?LAKERUN_T_TOKEN"?/);
  assertNoSecret("output", result.stdout + result.stderr);
  assert.equal((await readJson(join(dir.path, "o/a.json"))).text, ENV_SECRET);
});

Deno.test("secrets: unset, too short, a bad --secrets-file: exit 2 without printing any value", async () => {
  await using dir = await tempDir();
  await echoRoutine(dir.path, {
    // the same secret twice in one string: each problem is said once
    first: { params: { out: "o/a.json", text: "${{ secrets.LAKERUN_T_PIN }}:${{ secrets.LAKERUN_T_PIN }}" } },
  });
  const unset = await lakerun(["validate", "r.json"], { cwd: dir.path });
  assert.equal(unset.code, 2);
  assert.match(unset.stderr, /executors\.first\.params\.text: secret LAKERUN_T_PIN is not set/);
  const short = await lakerun(["validate", "r.json"], { cwd: dir.path, env: { LAKERUN_T_PIN: "123" } });
  assert.equal(short.code, 2);
  assert.match(short.stderr, /secret LAKERUN_T_PIN is shorter than 4 characters: too short to mask/);
  assert.equal(short.stderr.trim().split("\n").length, 1, short.stderr);

  const file = join(dir.path, "s.env");
  for (
    const [content, message] of [
      [`OK=fine-value\nLAKERUN_T_PIN ${FILE_SECRET}\n`, /s\.env:2: expected NAME=VALUE$/],
      [`LAKERUN_T_PIN='${FILE_SECRET}\n`, /s\.env:1: the value of LAKERUN_T_PIN has no closing '$/],
      [
        `LAKERUN_T_PIN=${FILE_SECRET}\nLAKERUN_T_PIN=${FILE_SECRET}\n`,
        /s\.env:2: LAKERUN_T_PIN is given twice$/,
      ],
    ] as Array<[string, RegExp]>
  ) {
    await Deno.writeTextFile(file, content);
    const result = await lakerun(["validate", "r.json", "--secrets-file", file], { cwd: dir.path });
    assert.equal(result.code, 2, content);
    assert.match(result.stderr.trim(), message);
    assertNoSecret("stderr", result.stderr);
  }
  const missing = await lakerun(["validate", "r.json", "--secrets-file", "nope.env"], { cwd: dir.path });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--secrets-file nope\.env: cannot read it \(no such file\)/);
  // the file's value is used before the environment's
  await Deno.writeTextFile(file, `LAKERUN_T_PIN=${FILE_SECRET}\n`);
  const used = await lakerun(["run", "r.json", "--secrets-file", file], {
    cwd: dir.path,
    env: { LAKERUN_T_PIN: ENV_SECRET },
  });
  assert.equal(used.code, 0, used.stderr);
  assert.equal((await readJson(join(dir.path, "o/a.json"))).text, `${FILE_SECRET}:${FILE_SECRET}`);
});

Deno.test("date options: malformed or conflicting ones exit 2 with one line", async () => {
  await using dir = await tempDir();
  await echoRoutine(dir.path, { first: { params: { out: "o/a.json", text: "${{ run.date }}" } } });
  const cases: Array<[string[], RegExp]> = [
    [["--date", "2023-02-29"], /--date: "2023-02-29" is not a date: February 2023 has 28 days/],
    [["--date", "30/06/2024"], /--date: "30\/06\/2024" is not a date: expected YYYY-MM-DD/],
    [["--from", "2024-01-31"], /a backfill needs both --from and --to/],
    [["--from", "2024-01-31", "--to", "2024-03-31"], /a backfill needs --every \(day, month, quarter\)/],
    [
      ["--from", "2024-01-31", "--to", "2024-03-31", "--every", "week"],
      /--every: "week" is not one of day, month, quarter/,
    ],
    [
      ["--from", "2024-03-31", "--to", "2024-01-31", "--every", "month"],
      /--to 2024-01-31 is before --from 2024-03-31/,
    ],
    [
      ["--from", "2024-01-31", "--to", "2024-13-01", "--every", "month"],
      /--to: "2024-13-01" is not a date: month 13/,
    ],
    [
      ["--date", "2024-01-31", "--from", "2024-01-31", "--to", "2024-02-29", "--every", "month"],
      /--date runs one date/,
    ],
    [["--keep-going"], /--keep-going is for backfills/],
    [["--every", "day"], /--every needs --from and --to/],
  ];
  for (const [flags, message] of cases) {
    const result = await lakerun(["run", "r.json", ...flags], { cwd: dir.path });
    assert.equal(result.code, 2, `${flags.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
  const plan = await lakerun(["plan", "r.json", "--every", "day"], { cwd: dir.path });
  assert.equal(plan.code, 2);
  assert.match(plan.stderr, /--every is an option of 'run', not 'plan'/);
  assert.equal(await exists(join(dir.path, "o")), false, "nothing ran");
});
