/**
 * Text from routines and data made safe to print: {@link printable} and {@link printableLines} escape what could
 * drive a terminal, forge a line or read other than it is stored.
 *
 * @module
 */

/**
 * Characters a name must not hold and a message must never print as they are: C0 controls (line breaks, tab,
 * ESC and so the terminal's escape sequences), DEL, C1 controls, the line and paragraph separators, the
 * bidirectional marks, embeddings, overrides and isolates that make text read other than it is stored, and the
 * invisible ones that make two names that look alike differ (zero-width space and joiners, word joiner, BOM).
 */
export const UNSAFE_CHARACTERS =
  // deno-lint-ignore no-control-regex -- control characters are what the pattern finds
  /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]/;

const UNSAFE_GLOBAL = new RegExp(UNSAFE_CHARACTERS.source, "g");
const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

/**
 * `text` with every {@link UNSAFE_CHARACTERS} character written as a JSON escape (`\n`, `\u001b`, `\u202e`), so
 * that it prints on one line and as stored; other text unchanged.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { printable } from "./printable.ts";
 *
 * assert.equal(printable("step\n::error::x"), "step\\n::error::x");
 * assert.equal(printable("\x1b[31mred\u202e"), "\\u001b[31mred\\u202e");
 * assert.equal(printable("données_2024"), "données_2024");
 * ```
 */
export function printable(text: string): string {
  return text.replace(
    UNSAFE_GLOBAL,
    (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * {@link printable} for text of several lines that lakerun prints as lines (an error's message, a log line, a
 * stack trace with `--debug`): every {@link UNSAFE_CHARACTERS} character escaped but the line breaks, so that
 * text from data (a database's message quoting a value, a file's content) can neither drive the terminal
 * (ESC, BEL, C1 controls) nor reorder what is shown (bidirectional controls).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { printableLines } from "./printable.ts";
 *
 * assert.equal(printableLines("a\x1b]0;TITLE\x07\x1b[2J\n::error::x\r\u202e"), "a\\u001b]0;TITLE\\u0007\\u001b[2J\n::error::x\\r\\u202e");
 * ```
 */
export function printableLines(text: string): string {
  return text.split("\n").map(printable).join("\n");
}

/**
 * `text` as a JSON string literal on one line, with the {@link UNSAFE_CHARACTERS} that `JSON.stringify` keeps
 * (DEL, C1 controls, separators, bidirectional controls) escaped too. Past `max` characters of that literal,
 * the start of `text` and its length: `"abc…" (100000 characters)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quoteJson } from "./printable.ts";
 *
 * assert.equal(quoteJson('a "b"\n'), '"a \\"b\\"\\n"');
 * assert.equal(quoteJson("x\u0085y\u202e"), '"x\\u0085y\\u202e"');
 * assert.equal(JSON.parse(quoteJson("x\u0085y\u202e")), "x\u0085y\u202e");
 * assert.equal(quoteJson("x".repeat(100), 60), `"${"x".repeat(40)}…" (100 characters)`);
 * ```
 */
export function quoteJson(text: string, max = Infinity): string {
  const quoted = printable(JSON.stringify(text));
  if (quoted.length <= max) return quoted;
  const characters = [...text];
  return `${
    quoteJson(characters.slice(0, max - 20).join("")).slice(0, -1)
  }…" (${characters.length} characters)`;
}
