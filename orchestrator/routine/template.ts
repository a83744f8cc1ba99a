/**
 * The `${{ … }}` template language of step params: a small, safe expression language with names, filters
 * and literals, and no code evaluation.
 *
 * ```text
 * template   = { text | "${{" expression "}}" }
 * expression = head { "|" filter }
 * head       = name | string
 * name       = "run.date" | "run.id" | "env." NAME | "secrets." NAME | "steps." ID ".outputs." KEY
 * filter     = word [ "(" [ literal { "," literal } ] ")" ]
 * literal    = string | number          string = '…' or "…" (a backslash takes the next character as is)
 * ```
 *
 * - `run.date` is the run's logical date (`YYYY-MM-DD`, `--date`, default today in UTC); `run.id` the run's
 *   id; `env.NAME` a variable of lakerun's environment; `secrets.NAME` a secret, from `--secrets-file` or the
 *   environment, masked in everything lakerun prints; `steps.ID.outputs.KEY` a value an earlier step
 *   reported (`ID` must run before: earlier in the file, or among the step's `depends_on`, direct or not).
 * - Filters: `add_days(n)`, `sub_days(n)`, `add_months(n)`, `sub_months(n)`, `add_quarters(n)`,
 *   `sub_quarters(n)`, `add_years(n)`, `sub_years(n)` (months clamp to the month's end: 2020-01-31 plus one
 *   month is 2020-02-29), `month_start`, `month_end`, `quarter_start`, `quarter_end`, `year_start`,
 *   `year_end`, `format('yyyy/MM/dd')` (tokens: see lib/dates.ts), `upper`, `lower`.
 * - A string without `${{` is never touched. A string that is exactly one `${{ … }}` takes the value's type
 *   (a number a step reported stays a number); otherwise the values are written into the text.
 * - Rendering is single-pass: a value is never read again as a template, so a secret or an environment
 *   variable holding `${{` is just text. To write `${{` itself, write `${{ '${{' }}`.
 * - Every template is parsed and checked when the routine is loaded: a syntax error, an unknown name or
 *   filter, bad filter arguments, a missing variable or secret are validation problems (exit 2) naming the
 *   JSON path and quoting the expression. `run.*`, `env.*` and `secrets.*` are resolved then, before the
 *   params are validated; `steps.*` and `run.id` when the step is about to run, after which the params are
 *   validated again.
 *
 * @module
 */
import type { SecretMask } from "../../lib/mask.ts";
import {
  addDays,
  addMonths,
  addQuarters,
  addYears,
  type CalendarDate,
  DateError,
  dateProblem,
  formatDate,
  monthEnd,
  monthStart,
  parseDate,
  patternProblem,
  quarterEnd,
  quarterStart,
  today,
  yearEnd,
  yearStart,
} from "../../lib/dates.ts";
import { nearestName, UsageError } from "../errors.ts";
import type { JsonPath } from "./json.ts";

/** A value a template produces. */
export type TemplateValue = string | number | boolean;

/** One filter applied in an expression: its name and literal arguments. */
export interface FilterCall {
  name: string;
  args: Array<string | number>;
}

/** A parsed `${{ … }}` expression. */
export interface Expression {
  /** The expression as written, `${{` and `}}` included (for messages). */
  source: string;
  /** A name (`["run", "date"]`) or a string literal. */
  head: { name: string[] } | { literal: string };
  filters: FilterCall[];
}

/** A parsed template: text and expressions, in order. */
export interface Template {
  source: string;
  parts: Array<string | Expression>;
}

/** A template that cannot be parsed, names something unknown, or cannot be resolved. */
export class TemplateError extends Error {
  /** @param path where the template is, relative to the step's params, when known */
  constructor(message: string, readonly path?: JsonPath) {
    super(message);
    this.name = "TemplateError";
  }
}

/** What names resolve to. */
export interface TemplateScope {
  /** `run.date`, `YYYY-MM-DD`. */
  date: string;
  /** `run.id`; absent until the run has begun. */
  runId?: string;
  /** `env.NAME`: a variable of lakerun's environment, or `undefined` when unset. */
  env(name: string): string | undefined;
  /** `secrets.NAME`: the secret's value, or `undefined` when there is none. */
  secret(name: string): string | undefined;
  /** Outputs of the steps that ran (by step id, then name); absent until the run has begun. */
  outputs?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Receives every secret value used, and every value computed from one. */
  mask?: SecretMask;
}

/**
 * The scope of a routine loaded without one: today's date (UTC), and lakerun's environment for `env.*` and
 * `secrets.*`.
 */
export function defaultTemplateScope(): TemplateScope {
  const variable = (name: string) => Deno.env.get(name);
  return { date: formatDate(today()), env: variable, secret: variable };
}

/** Whether `text` holds a template (anything else is left exactly as written). */
export function hasTemplate(text: string): boolean {
  return text.includes("${{");
}

// ---- tokens and parsing ----

type Token =
  | { kind: "word"; text: string }
  | { kind: "number"; value: number; text: string }
  | { kind: "string"; value: string; text: string }
  | { kind: "." | "|" | "(" | ")" | "," | "end"; text: string };

function tokenize(body: string, source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fail = (what: string): never => {
    throw new TemplateError(`${what} in ${JSON.stringify(source)}`);
  };
  while (i < body.length) {
    const ch = body[i];
    if (/\s/.test(ch)) {
      i++;
    } else if (".|(),".includes(ch)) {
      tokens.push({ kind: ch as "." | "|" | "(" | ")" | ",", text: ch });
      i++;
    } else if (ch === "'" || ch === '"') {
      let value = "";
      let j = i + 1;
      for (; j < body.length && body[j] !== ch; j++) {
        if (body[j] === "\\") j++;
        if (j < body.length) value += body[j];
      }
      if (j >= body.length) fail(`unterminated string ${body.slice(i)}`);
      tokens.push({ kind: "string", value, text: body.slice(i, j + 1) });
      i = j + 1;
    } else {
      const number = /^-?\d+(\.\d+)?(?![\w-])/.exec(body.slice(i));
      const word = /^[A-Za-z_][\w-]*/.exec(body.slice(i));
      if (number) {
        tokens.push({ kind: "number", value: Number(number[0]), text: number[0] });
        i += number[0].length;
      } else if (word) {
        tokens.push({ kind: "word", text: word[0] });
        i += word[0].length;
      } else {
        fail(`unexpected ${JSON.stringify(body.slice(i).match(/^\S+/)![0])}`);
      }
    }
  }
  tokens.push({ kind: "end", text: "end of expression" });
  return tokens;
}

/**
 * Parses `text` into text parts and checked expressions.
 *
 * @throws {TemplateError} for a syntax error, an unknown name or filter, or bad filter arguments; the message
 * quotes the expression.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTemplate } from "./template.ts";
 *
 * const template = parseTemplate("data/${{ run.date | format('yyyy/MM') }}/sales.csv");
 * assert.equal(template.parts.length, 3);
 * assert.deepEqual(template.parts[1], {
 *   source: "${{ run.date | format('yyyy/MM') }}",
 *   head: { name: ["run", "date"] },
 *   filters: [{ name: "format", args: ["yyyy/MM"] }],
 * });
 * assert.throws(() => parseTemplate("${{ run.date | fromat('yyyy') }}"), /unknown filter "fromat" \(did you mean 'format'\? filters: /);
 * assert.throws(() => parseTemplate("${{ run.date | format('yyyy) }}"), /has a ' that is never closed/);
 * assert.throws(() => parseTemplate("${{ run.id | add_days(1) }}"), /add_days needs a date, and run.id is not one/);
 * assert.throws(() => parseTemplate("${{ run.date"), /"\$\{\{ run.date" has no closing "}}"/);
 * ```
 */
export function parseTemplate(text: string): Template {
  const parts: Template["parts"] = [];
  let at = 0;
  while (at < text.length) {
    const start = text.indexOf("${{", at);
    if (start < 0) {
      parts.push(text.slice(at));
      break;
    }
    if (start > at) parts.push(text.slice(at, start));
    const { end, quote } = closingBraces(text, start + 3);
    if (end < 0) {
      throw new TemplateError(
        `${JSON.stringify(text.slice(start))} has ${
          quote ? `a ${quote} that is never closed` : 'no closing "}}"'
        }`,
      );
    }
    parts.push(parseExpression(text.slice(start + 3, end), text.slice(start, end + 2)));
    at = end + 2;
  }
  return { source: text, parts };
}

/**
 * Where the `}}` closing an expression that starts at `from` is (quotes respected): `end` -1 when there is
 * none, with `quote` the quote character left open at the end of the text, if any.
 */
function closingBraces(text: string, from: number): { end: number; quote?: string } {
  let quote: string | undefined;
  for (let i = from; i < text.length; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === "}" && text[i + 1] === "}") {
      return { end: i };
    }
  }
  return { end: -1, quote };
}

function parseExpression(body: string, source: string): Expression {
  const tokens = tokenize(body, source);
  let i = 0;
  const quoted = JSON.stringify(source);
  const fail = (what: string): never => {
    throw new TemplateError(`${what} in ${quoted}`);
  };
  const expect = (kind: Token["kind"], what: string): Token => {
    const token = tokens[i];
    if (token.kind !== kind) fail(`expected ${what}, found ${describe(token)}`);
    i++;
    return token;
  };

  let head: Expression["head"];
  if (tokens[0].kind === "end") fail("empty expression");
  if (tokens[0].kind === "string") {
    head = { literal: tokens[0].value };
    i++;
  } else {
    const name = [
      expect("word", "a name (run.date, run.id, env.NAME, secrets.NAME, steps.ID.outputs.KEY)").text,
    ];
    while (tokens[i].kind === ".") {
      i++;
      name.push(expect("word", 'a name after "."').text);
    }
    head = { name };
    const problem = nameProblem(name);
    if (problem) fail(problem);
  }
  const filters: FilterCall[] = [];
  while (tokens[i].kind === "|") {
    i++;
    const name = expect("word", 'a filter name after "|"').text;
    const args: Array<string | number> = [];
    if (tokens[i].kind === "(") {
      i++;
      if (tokens[i].kind !== ")") {
        for (;;) {
          const token = tokens[i];
          if (token.kind === "string" || token.kind === "number") args.push(token.value);
          else fail(`expected a string or number argument to ${name}, found ${describe(token)}`);
          i++;
          if (tokens[i].kind === ",") i++;
          else break;
        }
      }
      expect(")", `")" closing the arguments of ${name}`);
    }
    const problem = filterProblem(name, args);
    if (problem) fail(problem);
    filters.push({ name, args });
  }
  if (tokens[i].kind !== "end") {
    fail(`expected "|" or "}}", found ${describe(tokens[i])}`);
  }
  // run.id is never a date: a date filter on it could only fail once the run has begun
  const dateFilter = filters.find((filter) => filter.name !== "upper" && filter.name !== "lower");
  if ("name" in head && head.name.join(".") === "run.id" && dateFilter) {
    fail(`${dateFilter.name} needs a date, and run.id is not one (run.date is the run's date)`);
  }
  return { source, head, filters };
}

function describe(token: Token): string {
  return token.kind === "end" ? "the end of the expression" : JSON.stringify(token.text);
}

// ---- names ----

const NAME_FORMS = "run.date, run.id, env.NAME, secrets.NAME, steps.ID.outputs.KEY";
const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function nameProblem(name: string[]): string | undefined {
  const written = JSON.stringify(name.join("."));
  const unknown = (hint?: string) =>
    `unknown name ${written}${hint ? ` (did you mean '${hint}'?)` : ""}; names: ${NAME_FORMS}`;
  switch (name[0]) {
    case "run":
      if (name.length === 2 && (name[1] === "date" || name[1] === "id")) return undefined;
      return unknown(nearestName(name.join("."), ["run.date", "run.id"]));
    case "env":
    case "secrets":
      if (name.length !== 2) return unknown();
      if (!VARIABLE.test(name[1])) {
        return `${written}: ${JSON.stringify(name[1])} is not a variable name (letters, digits and _)`;
      }
      return undefined;
    case "steps":
      if (name.length === 4 && name[2] === "outputs") return undefined;
      return `${written}: a step's value is written steps.ID.outputs.KEY`;
    default:
      return unknown(nearestName(name[0], ["run", "env", "secrets", "steps"]));
  }
}

/** Whether the expression can be resolved only once the run has begun (`run.id`, `steps.*`). */
export function isDeferred(expression: Expression): boolean {
  if (!("name" in expression.head)) return false;
  const [root, key] = expression.head.name;
  return root === "steps" || (root === "run" && key === "id");
}

/**
 * The step ids a template's expressions read outputs of.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTemplate, stepsUsedBy } from "./template.ts";
 *
 * const template = parseTemplate("s3://b/${{ steps.load.outputs.prefix }}/${{ run.date }}");
 * assert.deepEqual(stepsUsedBy(template), ["load"]);
 * ```
 */
export function stepsUsedBy(template: Template): string[] {
  const ids: string[] = [];
  for (const part of template.parts) {
    if (typeof part !== "string" && "name" in part.head && part.head.name[0] === "steps") {
      if (!ids.includes(part.head.name[1])) ids.push(part.head.name[1]);
    }
  }
  return ids;
}

// ---- filters ----

type DateFilter = (date: CalendarDate, n: number) => CalendarDate;

const SHIFTS: Record<string, { unit: string; apply: DateFilter }> = {
  add_days: { unit: "days", apply: addDays },
  sub_days: { unit: "days", apply: (d, n) => addDays(d, -n) },
  add_months: { unit: "months", apply: addMonths },
  sub_months: { unit: "months", apply: (d, n) => addMonths(d, -n) },
  add_quarters: { unit: "quarters", apply: addQuarters },
  sub_quarters: { unit: "quarters", apply: (d, n) => addQuarters(d, -n) },
  add_years: { unit: "years", apply: addYears },
  sub_years: { unit: "years", apply: (d, n) => addYears(d, -n) },
};

const PERIOD_EDGES: Record<string, (date: CalendarDate) => CalendarDate> = {
  month_start: monthStart,
  month_end: monthEnd,
  quarter_start: quarterStart,
  quarter_end: quarterEnd,
  year_start: yearStart,
  year_end: yearEnd,
};

/** Every filter name, for messages and docs. */
export const FILTER_NAMES: readonly string[] = [
  ...Object.keys(SHIFTS),
  ...Object.keys(PERIOD_EDGES),
  "format",
  "upper",
  "lower",
];

function filterProblem(name: string, args: Array<string | number>): string | undefined {
  const count = (n: number) => `${n} argument${n === 1 ? "" : "s"}`;
  if (Object.hasOwn(SHIFTS, name)) {
    const unit = SHIFTS[name].unit;
    if (args.length !== 1) {
      return `${name} takes 1 argument (a whole number of ${unit}), got ${count(args.length)}`;
    }
    if (typeof args[0] !== "number" || !Number.isSafeInteger(args[0])) {
      return `${name} takes a whole number of ${unit}, got ${JSON.stringify(args[0])}`;
    }
    return undefined;
  }
  if (Object.hasOwn(PERIOD_EDGES, name) || name === "upper" || name === "lower") {
    return args.length === 0 ? undefined : `${name} takes no arguments, got ${count(args.length)}`;
  }
  if (name === "format") {
    if (args.length !== 1) {
      return `format takes 1 argument (a pattern such as 'yyyy/MM/dd'), got ${count(args.length)}`;
    }
    if (typeof args[0] !== "string") return `format takes a pattern string, got ${args[0]}`;
    return patternProblem(args[0]);
  }
  const hint = nearestName(name, FILTER_NAMES);
  return `unknown filter ${JSON.stringify(name)} (${hint ? `did you mean '${hint}'? ` : ""}filters: ${
    FILTER_NAMES.join(", ")
  })`;
}

function applyFilter(value: TemplateValue, filter: FilterCall): TemplateValue {
  const { name, args } = filter;
  if (name === "upper") return String(value).toUpperCase();
  if (name === "lower") return String(value).toLowerCase();
  if (typeof value !== "string" || dateProblem(value)) {
    throw new TemplateError(`${name} needs a date (YYYY-MM-DD), got ${JSON.stringify(value)}`);
  }
  const date = parseDate(value);
  if (name === "format") return formatDate(date, args[0] as string);
  const shifted = Object.hasOwn(SHIFTS, name)
    ? SHIFTS[name].apply(date, args[0] as number)
    : PERIOD_EDGES[name](date);
  return formatDate(shifted);
}

// ---- evaluation ----

/**
 * Environment variable names that say they hold a credential (`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
 * `PGPASSWORD`, `DB_PASS`, `DB_PWD`, `GITHUB_TOKEN`, `STRIPE_KEY`…): their values are masked even when read as
 * `env.NAME` (`PWD`, the current folder, is not one).
 */
const CREDENTIAL_NAME =
  /PASSWORD|PASSWD|PASSPHRASE|(?:^|_)(?:PG)?PASS(?:$|_)|_PWD(?:$|_)|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL|_KEY$/i;

/**
 * The value of one expression in `scope`. A secret's value, and every value a filter computes from it, is
 * added to `scope.mask`.
 *
 * @throws {TemplateError} when a name has no value (an unset variable or secret, a step output not
 * reported, `run.id` before the run began) or a filter cannot apply; the message quotes the expression.
 */
export function evaluateExpression(expression: Expression, scope: TemplateScope): TemplateValue {
  const quoted = JSON.stringify(expression.source);
  try {
    let value: TemplateValue;
    let secret = false;
    if ("literal" in expression.head) {
      value = expression.head.literal;
    } else {
      const [root, key, , output] = expression.head.name;
      if (root === "run" && key === "date") value = scope.date;
      else if (root === "run") {
        if (scope.runId === undefined) throw new TemplateError("run.id is known only once the run has begun");
        value = scope.runId;
      } else if (root === "env") {
        const found = scope.env(key);
        if (found === undefined) throw new TemplateError(`environment variable ${key} is not set`);
        value = found;
        // a variable whose name says it holds a credential is masked as a secret is, whoever wrote env.
        secret = CREDENTIAL_NAME.test(key) && found.length >= 4;
        if (secret) scope.mask?.add(found);
      } else if (root === "secrets") {
        const found = scope.secret(key);
        if (found === undefined) {
          throw new TemplateError(
            `secret ${key} is not set (neither in --secrets-file nor in the environment)`,
          );
        }
        if (found.length < 4) {
          throw new TemplateError(`secret ${key} is shorter than 4 characters: too short to mask`);
        }
        scope.mask?.add(found);
        value = found;
        secret = true;
      } else {
        value = stepOutput(scope, key, output);
      }
    }
    for (const filter of expression.filters) value = applyFilter(value, filter);
    if (secret && typeof value === "string" && value.length > 0) {
      if (value.length < 4) {
        throw new TemplateError(
          "a value computed from a secret is shorter than 4 characters: too short to mask",
        );
      }
      scope.mask?.add(value);
    }
    return value;
  } catch (error) {
    if (error instanceof TemplateError || error instanceof DateError) {
      throw new TemplateError(`${error.message} in ${quoted}`);
    }
    throw error;
  }
}

function stepOutput(scope: TemplateScope, id: string, key: string): TemplateValue {
  if (scope.outputs === undefined) {
    throw new TemplateError(`steps.${id}.outputs.${key} is known only once step "${id}" has run`);
  }
  const outputs = Object.hasOwn(scope.outputs, id) ? scope.outputs[id] : undefined;
  if (outputs === undefined) throw new TemplateError(`step "${id}" has not run, so it has no outputs`);
  if (!Object.hasOwn(outputs, key)) {
    const names = Object.keys(outputs);
    throw new TemplateError(
      `step "${id}" reported no output "${key}" (${
        names.length ? `its outputs: ${names.join(", ")}` : "it reported none"
      })`,
    );
  }
  const value = outputs[key];
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return value;
  throw new TemplateError(`output "${key}" of step "${id}" is not a string, number or boolean`);
}

/**
 * The value of a template in `scope`: a template that is exactly one expression gives that value as it is
 * (a number stays a number); otherwise the text with each value written in.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { evaluateTemplate, parseTemplate } from "./template.ts";
 *
 * const scope = { date: "2020-01-31", env: () => undefined, secret: () => undefined };
 * const value = (text: string) => evaluateTemplate(parseTemplate(text), scope);
 * assert.equal(value("${{ run.date | add_months(1) }}"), "2020-02-29");
 * assert.equal(value("${{ run.date | sub_days(31) | quarter_end | format('yyyy/MM/dd') }}"), "2019/12/31");
 * assert.equal(value("survey-${{ run.date | format('MMMM-yyyy') | lower }}.zip"), "survey-january-2020.zip");
 * assert.equal(value("${{ '${{' }} stays"), "${{ stays");
 * ```
 */
export function evaluateTemplate(template: Template, scope: TemplateScope): TemplateValue {
  const { parts } = template;
  if (parts.length === 1 && typeof parts[0] !== "string") return evaluateExpression(parts[0], scope);
  return parts.map((part) => (typeof part === "string" ? part : String(evaluateExpression(part, scope))))
    .join("");
}

// ---- params ----

/** A templated string in a step's params. */
export interface ParamTemplate {
  /** Where it is, relative to the params object. */
  path: JsonPath;
  template: Template;
  /** Resolved when the step is about to run (it uses `run.id` or `steps.*`). */
  deferred: boolean;
  /** The value at load, when not deferred. */
  value?: TemplateValue;
}

/** A step's params after the templates known at load were resolved. */
export interface StepTemplates {
  /** The params with every non-deferred template replaced by its value; deferred ones as written. */
  params: Record<string, unknown>;
  /** Every templated string, in document order. */
  templates: ParamTemplate[];
}

/** Options for {@link resolveParamTemplates}. */
export interface ResolveOptions {
  /** Receives each problem with its path relative to the params. */
  report(path: JsonPath, message: string): void;
  /** Why the step may not read `steps.ID` outputs, or `undefined` when it may. */
  stepReferenceProblem?(id: string): string | undefined;
}

/**
 * Finds every templated string in `params` (nested objects and lists included), parses and checks it, and
 * resolves those that do not need the run. Returns `undefined` when `params` holds no template (it is then
 * used exactly as written), and `null` when a problem was reported.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveParamTemplates } from "./template.ts";
 *
 * const scope = { date: "2024-06-30", env: (n: string) => (n === "BUCKET" ? "lake" : undefined), secret: () => undefined };
 * const problems: string[] = [];
 * const report = (path: ReadonlyArray<string | number>, message: string) => problems.push(`${path.join(".")}: ${message}`);
 * const resolved = resolveParamTemplates(
 *   { to: "s3://${{ env.BUCKET }}/${{ run.date | format('yyyy') }}/", files: ["${{ steps.a.outputs.name }}"], n: 1 },
 *   scope,
 *   { report },
 * );
 * assert.deepEqual({ ...resolved!.params }, { to: "s3://lake/2024/", files: ["${{ steps.a.outputs.name }}"], n: 1 });
 * assert.deepEqual(resolved!.templates.map((t) => [t.path, t.deferred]), [[["to"], false], [["files", 0], true]]);
 *
 * assert.equal(resolveParamTemplates({ to: "${{ env.NOPE }}" }, scope, { report }), null);
 * assert.deepEqual(problems, ['to: environment variable NOPE is not set in "${{ env.NOPE }}"']);
 * assert.equal(resolveParamTemplates({ to: "plain" }, scope, { report }), undefined);
 * ```
 */
export function resolveParamTemplates(
  params: Record<string, unknown>,
  scope: TemplateScope,
  options: ResolveOptions,
): StepTemplates | null | undefined {
  const templates: ParamTemplate[] = [];
  let failed = false;
  const visit = (value: unknown, path: JsonPath): unknown => {
    if (typeof value === "string") {
      if (!hasTemplate(value)) return value;
      const found = checkString(value, path, scope, options);
      if (!found) {
        failed = true;
        return value;
      }
      templates.push(found);
      return found.deferred ? value : found.value;
    }
    if (Array.isArray(value)) return value.map((item, i) => visit(item, [...path, i]));
    if (typeof value === "object" && value !== null) {
      const copy: Record<string, unknown> = Object.create(null);
      for (const [key, item] of Object.entries(value)) copy[key] = visit(item, [...path, key]);
      return copy;
    }
    return value;
  };
  const resolved = visit(params, []) as Record<string, unknown>;
  if (failed) return null;
  return templates.length ? { params: resolved, templates } : undefined;
}

function checkString(
  text: string,
  path: JsonPath,
  scope: TemplateScope,
  options: ResolveOptions,
): ParamTemplate | undefined {
  let template: Template;
  try {
    template = parseTemplate(text);
  } catch (error) {
    if (!(error instanceof TemplateError)) throw error;
    options.report(path, error.message);
    return undefined;
  }
  let ok = true;
  let deferred = false;
  for (const part of template.parts) {
    if (typeof part === "string") continue;
    if (isDeferred(part)) {
      deferred = true;
      const id = "name" in part.head && part.head.name[0] === "steps" ? part.head.name[1] : undefined;
      const problem = id === undefined ? undefined : options.stepReferenceProblem?.(id);
      if (problem) {
        options.report(path, `${problem} in ${JSON.stringify(part.source)}`);
        ok = false;
      }
      continue;
    }
    try {
      evaluateExpression(part, scope); // what is known now is checked now, even in a deferred string
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      options.report(path, error.message);
      ok = false;
    }
  }
  if (!ok) return undefined;
  return deferred
    ? { path, template, deferred }
    : { path, template, deferred, value: evaluateTemplate(template, scope) };
}

/**
 * The params of a step about to run: `templates.params` with each deferred template resolved in `scope`
 * (which now has the run id and the outputs of the steps that ran).
 *
 * @throws {TemplateError} when a value is missing, with the param's `path`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveDeferredParams, resolveParamTemplates } from "./template.ts";
 *
 * const scope = { date: "2024-06-30", env: () => undefined, secret: () => undefined };
 * const loaded = resolveParamTemplates({ rows: "${{ steps.load.outputs.rows }}" }, scope, { report: () => {} })!;
 * const params = resolveDeferredParams(loaded, { ...scope, runId: "r1", outputs: { load: { rows: 42 } } });
 * assert.deepEqual({ ...params }, { rows: 42 });
 * ```
 */
export function resolveDeferredParams(
  templates: StepTemplates,
  scope: TemplateScope,
): Record<string, unknown> {
  const params = copyJson(templates.params) as Record<string, unknown>;
  for (const { path, template, deferred } of templates.templates) {
    if (!deferred) continue;
    let value: TemplateValue;
    try {
      value = evaluateTemplate(template, scope);
    } catch (error) {
      if (error instanceof TemplateError) throw new TemplateError(error.message, path);
      throw error;
    }
    let parent: any = params;
    for (const key of path.slice(0, -1)) parent = parent[key];
    parent[path[path.length - 1]] = value;
  }
  return params;
}

/**
 * `params` with the numbers and booleans that deferred templates gave at the `failing` paths (or inside or
 * around them) written as text: a step's output `42` for a param that takes a string becomes `"42"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { deferredValuesAsText, resolveParamTemplates } from "./template.ts";
 *
 * const scope = { date: "2024-06-30", env: () => undefined, secret: () => undefined };
 * const t = "${{ steps.load.outputs.rows }}";
 * const loaded = resolveParamTemplates({ label: t, count: t }, scope, { report: () => {} })!;
 * const params = deferredValuesAsText({ label: 42, count: 42 }, loaded, [["label"]]);
 * assert.deepEqual({ ...params }, { label: "42", count: 42 });
 * ```
 */
export function deferredValuesAsText(
  params: Record<string, unknown>,
  templates: StepTemplates,
  failing: ReadonlyArray<ReadonlyArray<PropertyKey>>,
): Record<string, unknown> {
  const copy = copyJson(params) as Record<string, unknown>;
  for (const template of templates.templates) {
    if (!failing.some((path) => isDeferredPath(path, { params, templates: [template] }))) continue;
    let parent: any = copy;
    for (const key of template.path.slice(0, -1)) parent = parent?.[key];
    const key = template.path[template.path.length - 1];
    const value = parent?.[key];
    if (typeof value === "number" || typeof value === "boolean") parent[key] = String(value);
  }
  return copy;
}

/** A deep copy of JSON data whose objects, like the parser's, have no prototype. */
function copyJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copyJson);
  if (typeof value === "object" && value !== null) {
    const copy: Record<string, unknown> = Object.create(null);
    for (const [key, item] of Object.entries(value)) copy[key] = copyJson(item);
    return copy;
  }
  return value;
}

/**
 * Why step `from` may not read the outputs of step `to`, or `undefined` when it may: `to` must run before
 * `from` — when the routine uses `depends_on`, `to` must be among `from`'s dependencies (direct or not);
 * otherwise it must come earlier in the file.
 *
 * @param ids every step id of the routine, in file order
 * @param dependsOn a step's `depends_on` list, or `undefined` when it has none
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepReferenceProblem } from "./template.ts";
 *
 * const ids = ["download", "stage", "load"];
 * const none = () => undefined;
 * assert.equal(stepReferenceProblem("load", "download", ids, none), undefined);
 * assert.match(stepReferenceProblem("download", "load", ids, none)!, /runs after/);
 * const deps = (id: string) => ({ load: ["stage"], stage: ["download"] } as Record<string, string[]>)[id];
 * assert.equal(stepReferenceProblem("load", "download", ids, deps), undefined); // through "stage"
 * assert.match(stepReferenceProblem("stage", "load", ids, deps)!, /not among the steps "stage" depends on/);
 * ```
 */
export function stepReferenceProblem(
  from: string,
  to: string,
  ids: readonly string[],
  dependsOn: (id: string) => readonly string[] | undefined,
): string | undefined {
  if (!ids.includes(to)) {
    const hint = nearestName(to, ids);
    return `no step ${JSON.stringify(to)} in this routine${
      hint ? ` (did you mean '${hint}'?)` : ""
    }; steps: ${ids.join(", ")}`;
  }
  if (to === from) return `step ${JSON.stringify(from)} cannot use its own outputs`;
  if (ids.some((id) => dependsOn(id) !== undefined)) {
    const seen = new Set<string>();
    const pending = [...(dependsOn(from) ?? [])];
    while (pending.length) {
      const id = pending.pop()!;
      if (id === to) return undefined;
      if (seen.has(id)) continue;
      seen.add(id);
      pending.push(...(dependsOn(id) ?? []));
    }
    return `step ${JSON.stringify(to)} is not among the steps ${
      JSON.stringify(from)
    } depends on, so its outputs may not be known yet (add it to depends_on)`;
  }
  if (ids.indexOf(to) > ids.indexOf(from)) {
    return `step ${JSON.stringify(to)} runs after ${JSON.stringify(from)}, so its outputs are not known yet`;
  }
  return undefined;
}

/**
 * {@link stepReferenceProblem} for step `from` of a routine file whose raw `executors` object is `steps`.
 */
export function referenceChecker(
  from: string,
  ids: readonly string[],
  steps: Record<string, unknown>,
): (to: string) => string | undefined {
  const dependsOn = (id: string) => {
    const list = (steps[id] as { depends_on?: unknown } | undefined)?.depends_on;
    return Array.isArray(list) ? list.filter((item): item is string => typeof item === "string") : undefined;
  };
  return (to) => stepReferenceProblem(from, to, ids, dependsOn);
}

/**
 * Whether a params problem at `path` may come from a template resolved only when the step runs (the path is
 * inside such a value, or contains one): the params are then validated again once it is resolved.
 */
export function isDeferredPath(
  path: ReadonlyArray<PropertyKey>,
  templates: StepTemplates | undefined,
): boolean {
  return (templates?.templates ?? []).some(({ path: at, deferred }) => {
    if (!deferred) return false;
    const n = Math.min(at.length, path.length);
    for (let i = 0; i < n; i++) if (at[i] !== path[i]) return false;
    return true;
  });
}

/** Whether a step's params hold templates resolved only when it runs (`run.id`, `steps.*`). */
export function hasDeferredTemplates(templates: StepTemplates | undefined): boolean {
  return templates?.templates.some((template) => template.deferred) ?? false;
}

/**
 * The secrets of a `--secrets-file`: one `NAME=VALUE` per line. Blank lines and lines starting with `#` are
 * skipped; `export ` before the name is allowed; spaces around the name and the value are dropped; a value
 * wrapped in single or double quotes is taken between them as it is (no escapes, no `$` expansion, no
 * multi-line values). A name given twice is refused. Messages name the line, never a value.
 *
 * @param label how the file is named in messages
 * @throws {UsageError} for a line that is not `NAME=VALUE`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSecretsFile } from "./template.ts";
 *
 * const secrets = parseSecretsFile("# prod\nAPI_TOKEN=abc123==\nexport DB_PASSWORD = 'p#ss word'\n", "prod.env");
 * assert.deepEqual([...secrets], [["API_TOKEN", "abc123=="], ["DB_PASSWORD", "p#ss word"]]);
 * assert.throws(() => parseSecretsFile("TOKEN abc", "prod.env"), /^UsageError: prod.env:1: expected NAME=VALUE$/);
 * ```
 */
export function parseSecretsFile(text: string, label: string): Map<string, string> {
  const secrets = new Map<string, string>();
  text.replace(/^\uFEFF/, "").split(/\r?\n/).forEach((line, i) => {
    const where = `${label}:${i + 1}`;
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(trimmed);
    if (!match) throw new UsageError(`${where}: expected NAME=VALUE`);
    const [, name, rest] = match;
    let value = rest.trim();
    const quote = value[0];
    if ((quote === "'" || quote === '"') && value.length >= 2 && value.endsWith(quote)) {
      value = value.slice(1, -1);
    } else if (quote === "'" || quote === '"') {
      throw new UsageError(`${where}: the value of ${name} has no closing ${quote}`);
    }
    if (secrets.has(name)) throw new UsageError(`${where}: ${name} is given twice`);
    secrets.set(name, value);
  });
  return secrets;
}
