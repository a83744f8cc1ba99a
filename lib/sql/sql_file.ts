/**
 * Reading the SQL file a param names (`query_file`, `sql_file`): one clear line when it is missing, empty, or
 * holds a `${{ … }}` template — lakerun resolves templates in a routine's params, never inside the files
 * they name, so such a file would reach the database as written (`WHERE dt = '${{ run.date }}'`, valid SQL
 * that matches nothing).
 *
 * @module
 */

/**
 * The text of the SQL file at `path`, which the routine's `param` names as `given`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSqlFile } from "./sql_file.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/daily.sql`, "SELECT 1;\nSELECT * FROM t WHERE dt = '${{ run.date }}';\n");
 * await assert.rejects(
 *   readSqlFile(`${dir}/daily.sql`, "sql_file", "daily.sql"),
 *   new Error(
 *     'sql_file "daily.sql" line 2 holds the template "${{ run.date }}": lakerun resolves templates in ' +
 *       "a routine's params, not inside the files they name, so it would reach the database as written; " +
 *       "put the SQL in the routine instead",
 *   ),
 * );
 * await Deno.writeTextFile(`${dir}/daily.sql`, "SELECT 1;\n");
 * assert.equal(await readSqlFile(`${dir}/daily.sql`, "sql_file", "daily.sql"), "SELECT 1;\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 * @throws Error naming `param` and `given` when the file cannot be read, is empty or holds a template.
 */
export async function readSqlFile(path: string, param: string, given: string): Promise<string> {
  const named = `${param} ${JSON.stringify(given)}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`${named} does not exist`);
    throw new Error(`cannot read ${named}: ${(error as Error).message}`);
  }
  if (text.trim() === "") throw new Error(`${named} is empty`);
  const at = text.indexOf("${{");
  if (at >= 0) {
    const line = text.slice(0, at).split("\n").length;
    const end = text.indexOf("}}", at);
    const template = end >= 0 && end - at < 80 ? text.slice(at, end + 2) : `${text.slice(at, at + 40)}…`;
    throw new Error(
      `${named} line ${line} holds the template ${JSON.stringify(template)}: lakerun resolves templates in ` +
        "a routine's params, not inside the files they name, so it would reach the database as written; " +
        "put the SQL in the routine instead",
    );
  }
  return text;
}
