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
