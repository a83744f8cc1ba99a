/**
 * `s3://bucket/prefix` locations: recognising and splitting them.
 *
 * @module
 */

/**
 * True for an `s3://` location (any case of the scheme).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isS3Url } from "./url.ts";
 *
 * assert.equal(isS3Url("s3://lake/raw"), true);
 * assert.equal(isS3Url("data/landing"), false);
 * ```
 */
export function isS3Url(location: string): boolean {
  return /^s3:\/\//i.test(location);
}

/**
 * Splits `s3://bucket/prefix` into bucket and prefix (without leading or trailing `/`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseS3Url } from "./url.ts";
 *
 * assert.deepEqual(parseS3Url("s3://lake/raw/2024/"), { bucket: "lake", prefix: "raw/2024" });
 * assert.deepEqual(parseS3Url("s3://lake"), { bucket: "lake", prefix: "" });
 * assert.throws(() => parseS3Url("s3://lake/a/../b"), /'\.\.' segment/);
 * ```
 */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(url);
  if (!match || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(match[1])) {
    throw new Error(`invalid S3 location ${JSON.stringify(url)} (expected s3://bucket/prefix)`);
  }
  const prefix = match[2].replace(/^\/+|\/+$/g, "");
  if (prefix && prefix.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new Error(`invalid S3 location ${JSON.stringify(url)}: empty, '.' or '..' segment in the prefix`);
  }
  return { bucket: match[1], prefix };
}
