/**
 * A strict JSON parser that remembers where every value stands, so errors can name `file:line:column`.
 *
 * Objects come back with a null prototype (a key such as `__proto__` is plain data), keys keep their file
 * order (even integer-like ones), and duplicate keys are refused instead of silently keeping the last.
 *
 * @module
 */
import { quoteJson } from "../../lib/printable.ts";

/** The escaping of text to print lives in lib/, for executors too; the orchestrator imports it from here. */
export { printable, printableLines, quoteJson, UNSAFE_CHARACTERS } from "../../lib/printable.ts";

/** A path into a JSON document: object keys and array indexes. */
export type JsonPath = ReadonlyArray<string | number>;

/** Line and column (both 1-based) of a value in the source text. */
export interface SourcePosition {
  line: number;
  column: number;
}

/** A parsed document and the positions of its values. */
export interface ParsedJson {
  value: unknown;
  /** Position of the value at `path`, or of its nearest parent that exists. */
  positionOf(path: JsonPath): SourcePosition | undefined;
  /** Keys of the object at `path` in file order. */
  keysOf(path: JsonPath): string[];
}

/** Invalid JSON; `line` and `column` say where. */
export class JsonSyntaxError extends Error {
  constructor(message: string, readonly line: number, readonly column: number) {
    super(`${message} at line ${line}, column ${column}`);
    this.name = "JsonSyntaxError";
  }
}

/** Longest key a rendered JSON path shows whole (as a JSON literal); a longer one is cut as values are. */
const PATH_KEY_MAX = 60;

/**
 * Renders a JSON path the way users write it: `executors.DownloaderExecutor.params.url`, `tasks[0]`; an odd key
 * as a JSON literal (`executors["my step"]`), cut when long.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatJsonPath } from "./json.ts";
 *
 * assert.equal(formatJsonPath(["executors", "StagingExecutor", "tasks", 1]), "executors.StagingExecutor.tasks[1]");
 * assert.equal(formatJsonPath(["executors", "my step\n"]), 'executors["my step\\n"]');
 * assert.equal(formatJsonPath(["k".repeat(100)]), `["${"k".repeat(40)}…" (100 characters)]`);
 * assert.equal(formatJsonPath([]), "(document)");
 * ```
 */
export function formatJsonPath(path: JsonPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(segment) && segment.length <= PATH_KEY_MAX) {
      out += out === "" ? segment : `.${segment}`;
    } else out += `[${quoteJson(segment, PATH_KEY_MAX)}]`;
  }
  return out === "" ? "(document)" : out;
}

const pathKey = (path: JsonPath) => JSON.stringify(path);

/** Line and column of `offset` in `text`; the column counts UTF-16 code units, as `text[i]` does. */
function positionAt(text: string, offset: number): SourcePosition {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

const MAX_DEPTH = 200;
const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/;
/** How far ahead {@linkcode NUMBER} looks: a longer number is cut there and what follows is refused. */
const NUMBER_LOOKAHEAD = 400;
const LITERALS = [["true", true], ["false", false], ["null", null]] as const;
const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

/**
 * Parses `text` as JSON, keeping positions and key order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseJson } from "./json.ts";
 *
 * const doc = parseJson('{"a": {"b": 1}}');
 * assert.deepEqual(doc.positionOf(["a", "b"]), { line: 1, column: 13 });
 * assert.deepEqual(doc.positionOf(["a"]), { line: 1, column: 7 });
 * // numbers are read as written, or refused
 * assert.equal((parseJson('{"n": 9007199254740991}').value as { n: number }).n, 9007199254740991);
 * assert.throws(() => parseJson('{"n": 9007199254740993}'), /integer 9007199254740993 has more digits than/);
 * assert.throws(() => parseJson('{"n": -1e400}'), /number -1e400 is out of range at line 1, column 7/);
 * ```
 */
export function parseJson(text: string): ParsedJson {
  return new JsonParser(text).parse();
}

/** One pass over one text: `#at` is the offset of the next character to read. */
class JsonParser {
  readonly #text: string;
  /** Offset of the value at each path (keyed by {@linkcode pathKey}). */
  readonly #positions = new Map<string, number>();
  /** Keys of the object at each path, in file order. */
  readonly #keyOrder = new Map<string, string[]>();
  #at = 0;

  constructor(text: string) {
    this.#text = text;
  }

  parse(): ParsedJson {
    if (this.#text.charCodeAt(0) === 0xfeff) this.#at = 1; // byte-order mark
    const value = this.#parseValue([], 0);
    this.#skipWhitespace();
    if (this.#at < this.#text.length) {
      this.#fail(`unexpected content after the document, ${this.#describe()}`);
    }
    return this.#result(value);
  }

  #result(value: unknown): ParsedJson {
    const text = this.#text;
    const positions = this.#positions;
    const keyOrder = this.#keyOrder;
    return {
      value,
      positionOf(path) {
        for (let n = path.length; n >= 0; n--) {
          const offset = positions.get(pathKey(path.slice(0, n)));
          if (offset !== undefined) return positionAt(text, offset);
        }
        return undefined;
      },
      keysOf(path) {
        return [...(keyOrder.get(pathKey(path)) ?? [])];
      },
    };
  }

  #parseValue(path: (string | number)[], depth: number): unknown {
    if (depth > MAX_DEPTH) this.#fail(`nesting deeper than ${MAX_DEPTH} levels`);
    this.#skipWhitespace();
    this.#positions.set(pathKey(path), this.#at);
    const c = this.#text[this.#at];
    if (c === "{") return this.#parseObject(path, depth);
    if (c === "[") return this.#parseArray(path, depth);
    if (c === '"') return this.#parseString();
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.#parseNumber();
    return this.#parseLiteral();
  }

  #parseObject(path: (string | number)[], depth: number): Record<string, unknown> {
    this.#at++; // {
    const object: Record<string, unknown> = Object.create(null);
    const keys: string[] = [];
    this.#keyOrder.set(pathKey(path), keys);
    this.#skipWhitespace();
    if (this.#consume("}")) return object;
    while (true) {
      const key = this.#parseKey(object);
      keys.push(key);
      object[key] = this.#parseValue([...path, key], depth + 1);
      if (this.#parseItemEnd("}")) return object;
    }
  }

  /** A key and its `:`; a key `object` already has is refused, at the key. */
  #parseKey(object: Record<string, unknown>): string {
    this.#skipWhitespace();
    if (this.#text[this.#at] !== '"') this.#fail(`expected a quoted key, ${this.#describe()}`);
    const keyAt = this.#at;
    const key = this.#parseString();
    if (Object.hasOwn(object, key)) this.#fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
    this.#skipWhitespace();
    if (this.#text[this.#at] !== ":") this.#fail(`expected ':' after key, ${this.#describe()}`);
    this.#at++;
    return key;
  }

  #parseArray(path: (string | number)[], depth: number): unknown[] {
    this.#at++; // [
    const array: unknown[] = [];
    this.#skipWhitespace();
    if (this.#consume("]")) return array;
    while (true) {
      array.push(this.#parseValue([...path, array.length], depth + 1));
      if (this.#parseItemEnd("]")) return array;
    }
  }

  /** After an item: `,` (more follow; false) or `close` (the list ends; true). */
  #parseItemEnd(close: "}" | "]"): boolean {
    this.#skipWhitespace();
    if (this.#consume(",")) return false;
    if (this.#consume(close)) return true;
    return this.#fail(`expected ',' or '${close}', ${this.#describe()}`);
  }

  #parseString(): string {
    const text = this.#text;
    const start = this.#at;
    this.#at++; // opening quote
    let out = "";
    let chunkStart = this.#at;
    while (true) {
      if (this.#at >= text.length) this.#fail("unterminated string", start);
      const c = text.charCodeAt(this.#at);
      if (c === 34) {
        out += text.slice(chunkStart, this.#at);
        this.#at++;
        return out;
      }
      if (c < 0x20) this.#fail("control character in string");
      if (c === 92) {
        out += text.slice(chunkStart, this.#at);
        out += this.#parseEscape();
        chunkStart = this.#at;
        continue;
      }
      this.#at++;
    }
  }

  /** The escape whose backslash is at `#at`; errors point at the backslash. */
  #parseEscape(): string {
    const e = this.#text[this.#at + 1];
    if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
      this.#at += 2;
      return ESCAPES[e];
    }
    if (e !== "u") return this.#fail("invalid escape");
    const hex = this.#text.slice(this.#at + 2, this.#at + 6);
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.#fail("invalid \\u escape");
    this.#at += 6;
    return String.fromCharCode(parseInt(hex, 16));
  }

  #parseNumber(): number {
    const match = NUMBER.exec(this.#text.slice(this.#at, this.#at + NUMBER_LOOKAHEAD));
    if (!match) return this.#fail(this.#describe());
    const [literal] = match;
    const value = Number(literal);
    // a number JavaScript cannot hold as written would reach a step other than the routine says (Python's json,
    // the notebook's, reads 12345678901234567890 exactly and 1e400 as infinity)
    if (!Number.isFinite(value)) this.#fail(`number ${literal} is out of range`);
    if (/^-?\d+$/.test(literal) && !Number.isSafeInteger(value)) {
      this.#fail(
        `integer ${literal} has more digits than lakerun reads exactly (at most ±9007199254740991): ` +
          `write it as a string, "${literal}"`,
      );
    }
    this.#at += literal.length;
    return value;
  }

  #parseLiteral(): boolean | null {
    for (const [word, value] of LITERALS) {
      if (this.#text.startsWith(word, this.#at)) {
        this.#at += word.length;
        return value;
      }
    }
    return this.#fail(this.#describe());
  }

  #skipWhitespace(): void {
    while (this.#at < this.#text.length) {
      const c = this.#text.charCodeAt(this.#at);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.#at++;
      else break;
    }
  }

  /** Reads `char` if it is next. */
  #consume(char: string): boolean {
    if (this.#text[this.#at] !== char) return false;
    this.#at++;
    return true;
  }

  #describe(offset = this.#at): string {
    return offset >= this.#text.length
      ? "unexpected end of input"
      : `unexpected ${JSON.stringify(this.#text[offset])}`;
  }

  #fail(message: string, offset = this.#at): never {
    const { line, column } = positionAt(this.#text, offset);
    throw new JsonSyntaxError(message, line, column);
  }
}
