/**
 * JSON parsed with every number kept as its source text, so that a 64-bit id or a long decimal keeps every
 * digit (`JSON.parse` alone turns `9007199254740993` into `9007199254740992`). Column inference reads the
 * text to type a column; a load writes it out unchanged.
 *
 * @module
 */

/**
 * `JSON.rawJSON(text)` (V8's, in Deno 2; not yet in TypeScript's lib): a value `JSON.stringify` writes as
 * `text` itself, which must be a JSON number, string, boolean or null.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rawJson } from "./json_numbers.ts";
 *
 * assert.equal(JSON.stringify({ n: rawJson("1.10"), big: [rawJson("9007199254740993")] }), '{"n":1.10,"big":[9007199254740993]}');
 * ```
 */
export function rawJson(text: string): unknown {
  return (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(text);
}

/** A JSON number with its source text. Serializes back as that text ({@link rawJson}): every digit kept. */
export class JsonNumber {
  constructor(readonly source: string) {}
  toJSON(): unknown {
    return rawJson(this.source);
  }
}

type Reviver = (this: unknown, key: string, value: unknown, context?: { source?: string }) => unknown;

const keepSource: Reviver = (_key, value, context) =>
  typeof value === "number" && context?.source !== undefined ? new JsonNumber(context.source) : value;

/**
 * `JSON.parse(text)` with every number a {@link JsonNumber}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsonNumber, parseJsonKeepingNumbers } from "./json_numbers.ts";
 *
 * const row = parseJsonKeepingNumbers('{"id": 9007199254740993, "price": 1.10, "name": "a"}') as Record<
 *   string,
 *   unknown
 * >;
 * assert.deepEqual(row.id, new JsonNumber("9007199254740993"));
 * assert.equal((row.price as JsonNumber).source, "1.10");
 * assert.equal(row.name, "a");
 * assert.ok(parseJsonKeepingNumbers("7") instanceof JsonNumber);
 * // written back as it was
 * assert.equal(JSON.stringify(parseJsonKeepingNumbers('{"f": 1.10, "k": [9007199254740993]}')), '{"f":1.10,"k":[9007199254740993]}');
 * ```
 * @throws SyntaxError when `text` is not JSON.
 */
export function parseJsonKeepingNumbers(text: string): unknown {
  return (JSON.parse as (text: string, reviver: Reviver) => unknown)(text, keepSource);
}
