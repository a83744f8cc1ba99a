/**
 * GitHub Actions reads a line of a job's output that starts with `::` or `##[` (after leading blanks) as a
 * workflow command: text lakerun prints that came from a routine, a server or an error must never be one.
 * Kept apart from the reporters so that the command line's last error line is defused too without loading
 * them.
 *
 * @module
 */

/**
 * `text` with every line of it that GitHub would take for a workflow command (`::…` or `##[…`, after leading
 * blanks) defused by a zero-width space between its first two characters, so that it prints as text; lines are
 * split where GitHub splits them (`\n`, `\r`). Other lines unchanged.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defuseCommands } from "./workflow_commands.ts";
 *
 * assert.equal(defuseCommands("  ::add-mask::x"), "  :\u200b:add-mask::x");
 * assert.equal(defuseCommands("##[group]x"), "#\u200b#[group]x");
 * assert.equal(defuseCommands("a ::b"), "a ::b");
 * assert.equal(defuseCommands("step\n::error::pwned\r::warning::x"), "step\n:\u200b:error::pwned\r:\u200b:warning::x");
 * ```
 */
export function defuseCommands(text: string): string {
  return text.split(/(\r\n|\r|\n)/).map((part, i) => (i % 2 ? part : defuseLine(part))).join("");
}

function defuseLine(line: string): string {
  // GitHub trims .NET's white space (U+0085 included) before it looks for a command
  const start = line.length - line.replace(/^[\s\u0085]+/, "").length;
  const head = line.slice(start, start + 3);
  if (head.startsWith("::") || head === "##[") {
    return `${line.slice(0, start + 1)}\u200b${line.slice(start + 1)}`;
  }
  return line;
}
