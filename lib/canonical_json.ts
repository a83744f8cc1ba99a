/**
 * {@link canonicalJson}: the JSON of a value with every object's keys sorted, so that equal values give equal
 * text whatever the order their members were made in (to hash or compare them).
 *
 * @module
 */

/**
 * `JSON.stringify(value)` with the keys of every object sorted, at every level; members whose value is
 * `undefined` are left out, as `JSON.stringify` leaves them out, and `undefined` itself is `null`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalJson } from "./canonical_json.ts";
 *
 * assert.equal(canonicalJson({ b: [2, { d: 4, c: 3 }], a: 1 }), '{"a":1,"b":[2,{"c":3,"d":4}]}');
 * assert.equal(canonicalJson({ a: undefined, b: null }), '{"b":null}');
 * assert.equal(canonicalJson(undefined), "null");
 * ```
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, item) =>
      item && typeof item === "object" && !Array.isArray(item)
        ? Object.fromEntries(Object.keys(item).sort().map((key) => [key, item[key]]))
        : item,
  ) ?? "null";
}
