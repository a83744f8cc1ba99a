/**
 * Glob patterns matched against whole `/`-separated relative paths, for selecting files.
 *
 * | syntax    | matches                                                                     |
 * | --------- | --------------------------------------------------------------------------- |
 * | `*`       | any characters except `/` (stays within one folder)                         |
 * | `**`      | as a whole path segment: zero or more folders (`2024/**`: everything below)   |
 * | `?`       | one character except `/`                                                    |
 * | `[abc]`   | one of the characters; ranges `[a-z]`, negation `[!abc]` or `[^abc]`        |
 * | `{a,b}`   | either alternative (alternatives may hold globs and nest)                   |
 * | `\x`      | the character `x` itself                                                    |
 *
 * A pattern matches the whole path: `*.csv` matches `a.csv` but not `2024/a.csv`. Braces without a comma
 * and an unclosed `[` or `{` are literal characters, as in the shell.
 *
 * @module
 */

/**
 * Compiles a glob to an anchored regular expression.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { globToRegExp } from "./glob.ts";
 *
 * assert.equal(globToRegExp("2024/**").test("2024/01/sales.csv"), true);
 * assert.equal(globToRegExp("*.{csv,tsv}").test("sales.tsv"), true);
 * assert.equal(globToRegExp("*.csv").test("2024/sales.csv"), false); // `*` never crosses a `/`
 * assert.throws(() => globToRegExp("[z-a]"), /invalid glob "\[z-a\]": Range out of order/);
 * ```
 * @throws Error when the pattern is invalid (see {@link globProblem}).
 */
export function globToRegExp(pattern: string): RegExp {
  const problem = structuralProblem(pattern);
  if (problem) throw new Error(`invalid glob ${JSON.stringify(pattern)}: ${problem}`);
  const chars = Array.from(pattern);
  try {
    return new RegExp(`^(?:${compile(chars, true, true)})$`, "su");
  } catch (error) {
    const reason = (error as Error).message.replace(/^Invalid regular expression: \/.*\/\w*: /s, "");
    throw new Error(`invalid glob ${JSON.stringify(pattern)}: ${reason}`);
  }
}

/**
 * Why `pattern` is not a usable glob, or `undefined` when it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { globProblem } from "./glob.ts";
 *
 * assert.equal(globProblem("2024/*.csv"), undefined);
 * assert.equal(
 *   globProblem("/data/*.csv"),
 *   "globs match paths relative to the location: remove the leading '/'",
 * );
 * assert.equal(globProblem("[z-a]"), "Range out of order in character class");
 * ```
 */
export function globProblem(pattern: string): string | undefined {
  const problem = structuralProblem(pattern);
  if (problem) return problem;
  try {
    globToRegExp(pattern);
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(/^invalid glob "(?:[^"\\]|\\.)*": /, "");
  }
}

/**
 * A predicate selecting paths that match at least one `include` glob (every path, when there are none) and
 * no `exclude` glob.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pathFilter } from "./glob.ts";
 *
 * const selected = pathFilter(["2024/**", "*.csv"], ["2024/tmp/**"]);
 * assert.equal(selected("2024/01/a.json"), true);
 * assert.equal(selected("a.csv"), true);
 * assert.equal(selected("2023/a.csv"), false); // `*` never crosses a `/`
 * assert.equal(selected("2024/tmp/a.csv"), false); // excluded
 * ```
 */
export function pathFilter(
  include: readonly string[],
  exclude: readonly string[],
): (path: string) => boolean {
  const includes = include.map(globToRegExp);
  const excludes = exclude.map(globToRegExp);
  return (path) =>
    (includes.length === 0 || includes.some((r) => r.test(path))) && !excludes.some((r) => r.test(path));
}

function structuralProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return "empty pattern";
  if (pattern.startsWith("/")) return "globs match paths relative to the location: remove the leading '/'";
  if (pattern.includes("\\") && /(^|[^\\])(\\\\)*\\$/.test(pattern)) return "pattern ends with a lone '\\'";
  return undefined;
}

/** Characters with a meaning in a regular expression outside a class (`u` mode). */
const REGEXP_SYNTAX = new Set(["^", "$", "\\", ".", "*", "+", "?", "(", ")", "[", "]", "{", "}", "|", "/"]);

function literal(ch: string): string {
  return REGEXP_SYNTAX.has(ch) ? `\\${ch}` : ch;
}

function classLiteral(ch: string): string {
  return ch === "\\" || ch === "]" || ch === "[" || ch === "^" || ch === "-" ? `\\${ch}` : ch;
}

/**
 * Compiles `chars` (code points). `segmentStart`/`segmentEnd`: whether the text before/after this piece is
 * a segment boundary (start or end of the path, or a `/`), which decides whether `**` is a globstar.
 */
function compile(chars: string[], segmentStart: boolean, segmentEnd: boolean): string {
  let out = "";
  let i = 0;
  const n = chars.length;
  while (i < n) {
    const ch = chars[i];
    if (ch === "\\") {
      out += literal(chars[i + 1]);
      i += 2;
    } else if (ch === "*") {
      let j = i;
      while (j < n && chars[j] === "*") j++;
      const startsSegment = i === 0 ? segmentStart : chars[i - 1] === "/";
      const endsSegment = j === n ? segmentEnd : chars[j] === "/";
      if (j - i >= 2 && startsSegment && endsSegment) {
        if (j < n) {
          out += "(?:.*/)?"; // `**/`: zero or more whole folders
          i = j + 1;
        } else {
          out += ".*"; // a trailing `**`: everything below
          i = j;
        }
      } else {
        out += "[^/]*";
        i = j;
      }
    } else if (ch === "?") {
      out += "[^/]";
      i++;
    } else if (ch === "[") {
      const parsed = parseClass(chars, i);
      if (parsed) {
        out += parsed.source;
        i = parsed.end;
      } else {
        out += "\\[";
        i++;
      }
    } else if (ch === "{") {
      const braces = parseBraces(chars, i);
      if (braces) {
        const startsSegment = i === 0 ? segmentStart : chars[i - 1] === "/";
        const endsSegment = braces.end === n ? segmentEnd : chars[braces.end] === "/";
        out += `(?:${braces.alternatives.map((alt) => compile(alt, startsSegment, endsSegment)).join("|")})`;
        i = braces.end;
      } else {
        out += "\\{";
        i++;
      }
    } else {
      out += literal(ch);
      i++;
    }
  }
  return out;
}

/** A `[...]` class starting at `start`, or `undefined` when it is not closed (then `[` is literal). */
function parseClass(chars: string[], start: number): { source: string; end: number } | undefined {
  let i = start + 1;
  let negated = false;
  if (chars[i] === "!" || chars[i] === "^") {
    negated = true;
    i++;
  }
  let body = "";
  let first = true;
  while (i < chars.length) {
    let ch = chars[i];
    if (ch === "]" && !first) {
      // a class never matches `/`: paths are matched segment by segment
      const source = negated ? `[^${body}/]` : `(?:(?!/)[${body}])`;
      return { source, end: i + 1 };
    }
    first = false;
    if (ch === "\\") {
      if (i + 1 >= chars.length) return undefined;
      ch = chars[++i];
    }
    if (chars[i + 1] === "-" && i + 2 < chars.length && chars[i + 2] !== "]") {
      let to = chars[i + 2];
      let next = i + 3;
      if (to === "\\") {
        if (i + 3 >= chars.length) return undefined;
        to = chars[i + 3];
        next = i + 4;
      }
      body += `${classLiteral(ch)}-${classLiteral(to)}`;
      i = next;
    } else {
      body += classLiteral(ch);
      i++;
    }
  }
  return undefined;
}

/**
 * A `{a,b}` group starting at `start`: its alternatives and the index after `}`; `undefined` when it is not
 * closed or has no top-level comma (then `{` is literal).
 */
function parseBraces(chars: string[], start: number): { alternatives: string[][]; end: number } | undefined {
  const alternatives: string[][] = [];
  let current: string[] = [];
  let depth = 0;
  let i = start + 1;
  while (i < chars.length) {
    const ch = chars[i];
    if (ch === "\\" && i + 1 < chars.length) {
      current.push(ch, chars[i + 1]);
      i += 2;
      continue;
    }
    if (ch === "[") {
      const parsed = parseClass(chars, i);
      if (parsed) {
        current.push(...chars.slice(i, parsed.end));
        i = parsed.end;
        continue;
      }
    }
    if (ch === "{") depth++;
    if (ch === "}") {
      if (depth === 0) {
        if (alternatives.length === 0) return undefined; // `{a}`: no comma, literal
        alternatives.push(current);
        return { alternatives, end: i + 1 };
      }
      depth--;
    }
    if (ch === "," && depth === 0) {
      alternatives.push(current);
      current = [];
    } else {
      current.push(ch);
    }
    i++;
  }
  return undefined;
}
