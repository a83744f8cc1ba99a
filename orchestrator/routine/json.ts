/**
 * A strict JSON parser that remembers where every value stands, so errors can name `file:line:column`.
 *
 * Objects come back with a null prototype (a key such as `__proto__` is plain data), keys keep their file
 * order (even integer-like ones), and duplicate keys are refused instead of silently keeping the last.
 *
 * @module
 */

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

/** Renders a JSON path the way users write it: `executors.DownloaderExecutor.params.url`, `tasks[0]`. */
export function formatJsonPath(path: JsonPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === "" ? "(document)" : out;
}

const pathKey = (path: JsonPath) => JSON.stringify(path);

/**
 * Parses `text` as JSON, keeping positions and key order.
 *
 * @example
 * ```ts
 * const doc = parseJson('{"a": {"b": 1}}');
 * doc.positionOf(["a", "b"]); // { line: 1, column: 14 }
 * ```
 */
export function parseJson(text: string): ParsedJson {
  const positions = new Map<string, number>();
  const keyOrder = new Map<string, string[]>();
  let at = 0;

  const lineColumn = (offset: number): SourcePosition => {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < offset && i < text.length; i++) {
      if (text.charCodeAt(i) === 10) {
        line++;
        lineStart = i + 1;
      }
    }
    return { line, column: offset - lineStart + 1 };
  };
  const fail = (message: string, offset = at): never => {
    const { line, column } = lineColumn(offset);
    throw new JsonSyntaxError(message, line, column);
  };
  const skipSpace = () => {
    while (at < text.length) {
      const c = text.charCodeAt(at);
      if (c === 32 || c === 9 || c === 10 || c === 13) at++;
      else break;
    }
  };
  const describe = (offset: number) =>
    offset >= text.length ? "unexpected end of input" : `unexpected ${JSON.stringify(text[offset])}`;

  const parseString = (): string => {
    const start = at;
    at++; // opening quote
    let out = "";
    let chunkStart = at;
    while (true) {
      if (at >= text.length) fail("unterminated string", start);
      const c = text.charCodeAt(at);
      if (c === 34) {
        out += text.slice(chunkStart, at);
        at++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c === 92) {
        out += text.slice(chunkStart, at);
        const e = text[at + 1];
        const simple: Record<string, string> = {
          '"': '"',
          "\\": "\\",
          "/": "/",
          b: "\b",
          f: "\f",
          n: "\n",
          r: "\r",
          t: "\t",
        };
        if (e !== undefined && Object.hasOwn(simple, e)) {
          out += simple[e];
          at += 2;
        } else if (e === "u") {
          const hex = text.slice(at + 2, at + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("invalid \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          at += 6;
        } else {
          fail("invalid escape");
        }
        chunkStart = at;
        continue;
      }
      at++;
    }
  };

  const parseNumber = (): number => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(at, at + 400));
    if (!match) return fail(describe(at));
    at += match[0].length;
    return Number(match[0]);
  };

  const parseValue = (path: (string | number)[], depth: number): unknown => {
    if (depth > 200) fail("nesting deeper than 200 levels");
    skipSpace();
    positions.set(pathKey(path), at);
    const c = text[at];
    if (c === "{") {
      at++;
      const object: Record<string, unknown> = Object.create(null);
      const keys: string[] = [];
      keyOrder.set(pathKey(path), keys);
      skipSpace();
      if (text[at] === "}") {
        at++;
        return object;
      }
      while (true) {
        skipSpace();
        if (text[at] !== '"') fail(`expected a quoted key, ${describe(at)}`);
        const keyAt = at;
        const key = parseString();
        if (Object.hasOwn(object, key)) fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
        skipSpace();
        if (text[at] !== ":") fail(`expected ':' after key, ${describe(at)}`);
        at++;
        keys.push(key);
        object[key] = parseValue([...path, key], depth + 1);
        skipSpace();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at] === "}") {
          at++;
          return object;
        }
        fail(`expected ',' or '}', ${describe(at)}`);
      }
    }
    if (c === "[") {
      at++;
      const array: unknown[] = [];
      skipSpace();
      if (text[at] === "]") {
        at++;
        return array;
      }
      while (true) {
        array.push(parseValue([...path, array.length], depth + 1));
        skipSpace();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at] === "]") {
          at++;
          return array;
        }
        fail(`expected ',' or ']', ${describe(at)}`);
      }
    }
    if (c === '"') return parseString();
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return parseNumber();
    for (const [word, value] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return value;
      }
    }
    return fail(describe(at));
  };

  if (text.charCodeAt(0) === 0xfeff) at = 1; // byte-order mark
  const value = parseValue([], 0);
  skipSpace();
  if (at < text.length) fail(`unexpected content after the document, ${describe(at)}`);

  return {
    value,
    positionOf(path) {
      for (let n = path.length; n >= 0; n--) {
        const offset = positions.get(pathKey(path.slice(0, n)));
        if (offset !== undefined) return lineColumn(offset);
      }
      return undefined;
    },
    keysOf(path) {
      return [...(keyOrder.get(pathKey(path)) ?? [])];
    },
  };
}
