/**
 * Splits SQL text (a step's `sql` or `sql_file`) into its statements, so that they can run one by one inside
 * one transaction (PostgreSQL, with errors naming the statement) or be sent as a batch (the Redshift Data
 * API's `BatchExecuteStatement` takes a list).
 *
 * The splitter knows the lexical rules that can hide a `;`: string literals (`'it''s'`, `E'a\'b'`), quoted
 * identifiers (`"a;b"`), dollar quotes (`$$ … $$`, `$fn$ … $fn$`, as in function bodies), line comments
 * (`-- …`) and block comments, which nest in PostgreSQL (a `/*` inside one opens another). It does not parse SQL: a `;` outside
 * those ends a statement, and a statement that is only whitespace and comments is dropped.
 *
 * @module
 */

/** One statement of a script, and where it starts. */
export interface SqlStatement {
  /**
   * The statement's text without its ending `;`, from its first character outside comments (comments before
   * it are left out, comments inside it are kept), trimmed.
   */
  text: string;
  /** The line (from 1) of the statement's first character that is not whitespace or a comment. */
  line: number;
  /** Its position in the script, from 1 (statements that are only comments are not counted). */
  index: number;
}

/** Options of {@link splitStatements}. */
export interface SplitOptions {
  /**
   * Backslash escapes in plain `'…'` literals: `false` for PostgreSQL (standard_conforming_strings, the
   * default since 9.1), `true` for Redshift, which reads `\'` inside a literal as a quote. Default `false`.
   */
  backslashEscapes?: boolean;
}

/**
 * The statements of `script`, in order. Throws when a quote, a dollar quote or a block comment is still
 * open at the end: running such a script would run something else than what was meant.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitStatements } from "./statements.ts";
 *
 * const script = [
 *   "-- two statements; and a comment",
 *   "INSERT INTO t VALUES ('a;b', $$c;d$$);",
 *   "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;",
 *   "/* nothing /* nested; *\/ here *\/",
 * ].join("\n");
 * assert.deepEqual(splitStatements(script).map((s) => [s.index, s.line, s.text]), [
 *   [1, 2, "INSERT INTO t VALUES ('a;b', $$c;d$$)"],
 *   [2, 3, "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql"],
 * ]);
 * assert.throws(() => splitStatements("SELECT 'open"), /a string literal opened on line 1 is never closed/);
 * ```
 * @throws Error naming the line where an unclosed quote, dollar quote or comment starts.
 */
export function splitStatements(script: string, options: SplitOptions = {}): SqlStatement[] {
  const statements: SqlStatement[] = [];
  const lexer = new SqlLexer(script, options.backslashEscapes ?? false);
  let firstCode: number | undefined; // position of the statement's first character outside comments
  const finish = (end: number) => {
    if (firstCode !== undefined) {
      statements.push({
        text: script.slice(firstCode, end).trim(),
        line: lineAt(script, firstCode),
        index: statements.length + 1,
      });
    }
    firstCode = undefined;
  };
  for (const token of lexer.tokens()) {
    if (token.kind === "semicolon") finish(token.start);
    else if (token.kind !== "comment" && token.kind !== "space") firstCode ??= token.start;
  }
  finish(script.length);
  return statements;
}

/** Statements that end or start transactions, which would break the one transaction a task runs in. */
const TRANSACTION_CONTROL =
  /^(?:begin|commit|rollback|abort|end|start\s+transaction|savepoint|release|prepare\s+transaction|vacuum)\b/i;

/**
 * The first statement that controls transactions itself (`BEGIN`, `COMMIT`, `ROLLBACK`, `END`, `SAVEPOINT`,
 * `RELEASE`, `PREPARE TRANSACTION`, `START TRANSACTION`, `ABORT`) or cannot run inside one (`VACUUM`), or
 * `undefined`. A task that runs a script in one transaction refuses such a script up front: a `COMMIT` in the
 * middle would make the first half permanent even when the second half fails. Leading comments are skipped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitStatements, transactionControlStatement } from "./statements.ts";
 *
 * assert.equal(transactionControlStatement(splitStatements("INSERT INTO t VALUES (1); COMMIT;"))?.index, 2);
 * assert.equal(transactionControlStatement(splitStatements("SELECT 'begin'")), undefined);
 * ```
 */
export function transactionControlStatement(statements: readonly SqlStatement[]): SqlStatement | undefined {
  return statements.find((statement) => TRANSACTION_CONTROL.test(withoutLeadingComments(statement.text)));
}

/**
 * The statements of a script an `execute` task runs in one transaction, refusing (with an error saying why)
 * a quote or comment left open, a script of no statement, and a statement that ends or starts a transaction
 * itself (see {@link transactionControlStatement}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { transactionScript } from "./statements.ts";
 *
 * assert.equal(transactionScript("DELETE FROM t; INSERT INTO t VALUES (1)").length, 2);
 * assert.throws(() => transactionScript("-- only a comment"), { message: "holds no statement" });
 * assert.throws(
 *   () => transactionScript("DELETE FROM t; COMMIT;"),
 *   /^Error: statement 2 \(line 1\) controls the transaction itself \(COMMIT\); execute runs every statement/,
 * );
 * ```
 */
export function transactionScript(script: string, options: SplitOptions = {}): SqlStatement[] {
  const statements = splitStatements(script, options);
  if (statements.length === 0) throw new Error("holds no statement");
  const control = transactionControlStatement(statements);
  if (control) {
    throw new Error(
      `statement ${control.index} (line ${control.line}) controls the transaction itself (${
        controlKeyword(control.text)
      }); ` +
        "execute runs every statement in one transaction, so leave it out",
    );
  }
  return statements;
}

/**
 * A statement's first words on one line, for messages (at most 40 characters, then `…`). `mask` (a task's
 * `context.mask`) replaces secrets before the text is cut: a secret cut in two would no longer be recognised
 * by the masking of what lakerun prints, and its first part would show.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstWords } from "./statements.ts";
 *
 * assert.equal(firstWords("INSERT INTO t\n  VALUES (1)"), "INSERT INTO t VALUES (1)");
 * const sql = "ALTER ROLE loader PASSWORD 'Tok3n-Value-xyz'";
 * assert.equal(firstWords(sql), "ALTER ROLE loader PASSWORD 'Tok3n-Value-…"); // part of it
 * const mask = (text: string) => text.replaceAll("Tok3n-Value-xyz", "***");
 * assert.equal(firstWords(sql, mask), "ALTER ROLE loader PASSWORD '***'");
 * ```
 */
export function firstWords(text: string, mask: (text: string) => string = (text) => text): string {
  const flat = mask(text).replace(/\s+/g, " ");
  return flat.length > 40 ? `${flat.slice(0, 40)}…` : flat;
}

/** The keywords of a statement {@link transactionControlStatement} found (`COMMIT`, `START TRANSACTION`). */
function controlKeyword(text: string): string {
  const keyword = TRANSACTION_CONTROL.exec(withoutLeadingComments(text))?.[0] ?? "";
  return keyword.toUpperCase().replace(/\s+/g, " ");
}

/**
 * How many `?` placeholders `sql` has outside string literals, quoted identifiers and comments: the values an
 * engine that binds them in order (Athena's execution parameters) must be given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { placeholderCount } from "./statements.ts";
 *
 * assert.equal(placeholderCount("SELECT * FROM t WHERE a = ? AND b = '?' -- c = ?\n AND \"d?\" = ?"), 2);
 * assert.throws(() => placeholderCount("SELECT 'open"), /never closed/);
 * ```
 * @throws Error naming the line where an unclosed quote or comment starts.
 */
export function placeholderCount(sql: string): number {
  let count = 0;
  for (const token of new SqlLexer(sql, false).tokens()) {
    if (token.kind === "code" && sql[token.start] === "?") count++;
  }
  return count;
}

/** The text after its leading comments and whitespace. */
function withoutLeadingComments(text: string): string {
  for (const token of new SqlLexer(text, false).tokens()) {
    if (token.kind !== "comment" && token.kind !== "space") return text.slice(token.start);
  }
  return "";
}

/** The line (from 1) of position `offset` in `text`. */
function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) line++;
  return line;
}

type TokenKind = "space" | "comment" | "quoted" | "semicolon" | "code";

interface Token {
  kind: TokenKind;
  start: number;
}

/** Just enough of SQL's lexical structure to find the `;` that end statements. */
class SqlLexer {
  #position = 0;

  constructor(readonly text: string, readonly backslashEscapes: boolean) {}

  *tokens(): Generator<Token> {
    const text = this.text;
    while (this.#position < text.length) {
      const start = this.#position;
      const char = text[start];
      const next = text[start + 1];
      if (/\s/.test(char)) {
        this.#position++;
        yield { kind: "space", start };
      } else if (char === "-" && next === "-") {
        const end = text.indexOf("\n", start);
        this.#position = end === -1 ? text.length : end + 1;
        yield { kind: "comment", start };
      } else if (char === "/" && next === "*") {
        this.#blockComment(start);
        yield { kind: "comment", start };
      } else if (char === "'") {
        this.#literal(start, start + 1, this.backslashEscapes || isEscapeStringPrefix(text, start));
        yield { kind: "quoted", start: this.#codeStart(start) };
      } else if (char === '"') {
        this.#closing('"', start, start + 1, "a quoted identifier");
        yield { kind: "quoted", start };
      } else if (char === "$" && this.#dollarQuote(start)) {
        yield { kind: "quoted", start };
      } else if (char === ";") {
        this.#position++;
        yield { kind: "semicolon", start };
      } else {
        this.#position++;
        yield { kind: "code", start };
      }
    }
  }

  /** Where the code that the literal at `quote` belongs to starts (an `E` prefix is part of it). */
  #codeStart(quote: number): number {
    return isEscapeStringPrefix(this.text, quote) ? quote - 1 : quote;
  }

  #blockComment(start: number): void {
    let depth = 0;
    let i = start;
    while (i < this.text.length) {
      if (this.text.startsWith("/*", i)) {
        depth++;
        i += 2;
      } else if (this.text.startsWith("*/", i)) {
        depth--;
        i += 2;
        if (depth === 0) {
          this.#position = i;
          return;
        }
      } else {
        i++;
      }
    }
    throw this.#unclosed("a block comment", start);
  }

  /** A `'…'` literal whose body starts at `from`; `''` is a quote, and `\x` an escape when `escapes`. */
  #literal(start: number, from: number, escapes: boolean): void {
    let i = from;
    while (i < this.text.length) {
      const char = this.text[i];
      if (escapes && char === "\\") {
        i += 2;
      } else if (char === "'") {
        if (this.text[i + 1] === "'") i += 2;
        else {
          this.#position = i + 1;
          return;
        }
      } else {
        i++;
      }
    }
    throw this.#unclosed("a string literal", start);
  }

  /** Up to the next `quote` not doubled. */
  #closing(quote: string, start: number, from: number, what: string): void {
    let i = from;
    while (i < this.text.length) {
      const close = this.text.indexOf(quote, i);
      if (close === -1) break;
      if (this.text[close + 1] === quote) {
        i = close + 2;
        continue;
      }
      this.#position = close + 1;
      return;
    }
    throw this.#unclosed(what, start);
  }

  /** A `$tag$ … $tag$` quote starting at `start`; false when the `$` starts none (a `$1` parameter). */
  #dollarQuote(start: number): boolean {
    const tag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(
      this.text.slice(start, start + 200),
    );
    if (!tag) return false;
    // a tag right after an identifier character is part of that identifier (e.g. a$b$), not a quote
    if (start > 0 && /[A-Za-z0-9_$]/.test(this.text[start - 1])) return false;
    const close = this.text.indexOf(tag[0], start + tag[0].length);
    if (close === -1) throw this.#unclosed(`a dollar quote ${tag[0]}`, start);
    this.#position = close + tag[0].length;
    return true;
  }

  #unclosed(what: string, start: number): Error {
    return new Error(`${what} opened on line ${lineAt(this.text, start)} is never closed`);
  }
}

/** An `E'…'` (or `e'…'`) literal: the `E` stands alone, not at the end of a longer name. */
function isEscapeStringPrefix(text: string, quote: number): boolean {
  const prefix = text[quote - 1];
  return (prefix === "E" || prefix === "e") && (quote < 2 || !/[A-Za-z0-9_$]/.test(text[quote - 2]));
}
