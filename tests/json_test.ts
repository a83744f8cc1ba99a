/** The routine JSON parser: positions, key order, duplicate keys and prototype-free objects. */
import assert from "node:assert/strict";
import { formatJsonPath, JsonSyntaxError, parseJson } from "../orchestrator/routine/json.ts";

Deno.test("values parse as JSON.parse would", () => {
  const text = '{"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n\\"q\\""], "b": {}, "c": []}';
  assert.deepEqual(JSON.parse(JSON.stringify(parseJson(text).value)), JSON.parse(text));
});

Deno.test("positions point at each value, by JSON path", () => {
  const doc = parseJson('{\n  "executors": {\n    "X": { "params": { "url": 5 } }\n  }\n}');
  assert.deepEqual(doc.positionOf(["executors", "X", "params", "url"]), { line: 3, column: 31 });
  assert.deepEqual(
    doc.positionOf(["executors", "X", "params", "missing"]),
    { line: 3, column: 22 },
    "nearest parent",
  );
});

Deno.test("keys keep file order, integer-like keys included", () => {
  const doc = parseJson('{"b": 1, "2": 2, "a": 3, "1": 4}');
  assert.deepEqual(doc.keysOf([]), ["b", "2", "a", "1"]);
});

Deno.test("__proto__ is a plain key, not a prototype", () => {
  const value = parseJson('{"__proto__": {"polluted": true}}').value as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(value), null);
  assert.ok(Object.hasOwn(value, "__proto__"));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("syntax errors give line and column", () => {
  const cases: Array<[string, number, number, RegExp]> = [
    ['{"a": 1,}', 1, 9, /expected a quoted key/],
    ['{\n  "a": tru\n}', 2, 8, /unexpected "t"/],
    ['{"a": "b"', 1, 10, /expected ',' or '}'/],
    ['{"a": 1} x', 1, 10, /unexpected content after the document/],
    ['{"a": 1, "a": 2}', 1, 10, /duplicate key "a"/],
    ['["\u0001"]', 1, 3, /control character/],
    ["", 1, 1, /unexpected end of input/],
  ];
  for (const [text, line, column, message] of cases) {
    assert.throws(() => parseJson(text), (error: unknown) => {
      assert.ok(error instanceof JsonSyntaxError, text);
      assert.equal(error.line, line, text);
      assert.equal(error.column, column, text);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("JSON paths read the way users write them", () => {
  assert.equal(
    formatJsonPath(["executors", "DownloaderExecutor", "tasks", 0]),
    "executors.DownloaderExecutor.tasks[0]",
  );
  assert.equal(formatJsonPath(["executors", "my step", "params"]), 'executors["my step"].params');
  assert.equal(formatJsonPath([]), "(document)");
});

/** Asserts that `text` is refused with a message matching `message` at `line`:`column`. */
function assertSyntaxError(text: string, line: number, column: number, message: RegExp) {
  assert.throws(() => parseJson(text), (error: unknown) => {
    assert.ok(error instanceof JsonSyntaxError, text);
    assert.equal(error.line, line, text);
    assert.equal(error.column, column, text);
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("a duplicate key deep inside an array is refused at the second key", () => {
  assertSyntaxError('[{"a": 1}, {"b": [{"c": 1, "c": 2}]}]', 1, 28, /duplicate key "c"/);
  assert.doesNotThrow(() => parseJson('[{"c": 1}, {"c": 2}]'), "the same key in sibling objects");
});

Deno.test("columns count UTF-16 code units, so they stay right after multi-byte characters", () => {
  const doc = parseJson('{"é": 1, "😀": 2, "x": 3}');
  assert.deepEqual(doc.positionOf(["é"]), { line: 1, column: 7 });
  assert.deepEqual(doc.positionOf(["😀"]), { line: 1, column: 16 });
  assert.deepEqual(doc.positionOf(["x"]), { line: 1, column: 24 });
  assertSyntaxError('{"é": 1, "😀": 2, "x": tru}', 1, 24, /unexpected "t"/);
});

Deno.test("array items have positions by index; CRLF line ends count as one line", () => {
  const doc = parseJson('{\r\n  "tasks": [\r\n    1,\r\n    {"a": 2}\r\n  ]\r\n}');
  assert.deepEqual(doc.positionOf(["tasks", 0]), { line: 3, column: 5 });
  assert.deepEqual(doc.positionOf(["tasks", 1, "a"]), { line: 4, column: 11 });
  assert.deepEqual(doc.positionOf(["tasks", 5]), { line: 2, column: 12 }, "nearest parent: the array");
  assert.deepEqual(doc.keysOf(["tasks", 1]), ["a"]);
  assert.deepEqual(doc.keysOf(["tasks"]), [], "an array has no keys");
});

Deno.test("keysOf returns a copy", () => {
  const doc = parseJson('{"a": 1}');
  doc.keysOf([]).push("b");
  assert.deepEqual(doc.keysOf([]), ["a"]);
});

Deno.test("a byte-order mark is skipped", () => {
  assert.deepEqual({ ...parseJson('\ufeff{"a": 1}').value as object }, { a: 1 });
});

Deno.test("nesting is limited to 200 levels", () => {
  assert.doesNotThrow(() => parseJson("[".repeat(201) + "]".repeat(201)));
  assertSyntaxError("[".repeat(202) + "]".repeat(202), 1, 202, /nesting deeper than 200 levels/);
});

Deno.test("string and number errors point where they start", () => {
  assertSyntaxError('{"a": "abc', 1, 7, /unterminated string/);
  assertSyntaxError('["ok", "a\\qb"]', 1, 10, /invalid escape/);
  assertSyntaxError('["ok", "a\\u12G4"]', 1, 10, /invalid \\u escape/);
  assertSyntaxError("[01]", 1, 3, /expected ',' or '\]', unexpected "1"/);
  assertSyntaxError("[1.]", 1, 3, /expected ',' or '\]', unexpected "."/);
  assertSyntaxError("[-]", 1, 2, /unexpected "-"/);
  assertSyntaxError('{"a" 1}', 1, 6, /expected ':' after key, unexpected "1"/);
});
