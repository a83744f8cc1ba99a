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

/** S3's rule for bucket names, as messages give it. */
export const BUCKET_NAME_RULE =
  "3–63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit";

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Why `url` is not an `s3://bucket/prefix` location that {@link parseS3Url} takes, in one line quoting it, or
 * `undefined` when it is one. Every S3 location param is checked with it, so that each says what is wrong
 * (no bucket, a bucket name S3 refuses and its rule, an empty, `.` or `..` segment) in the same words.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { s3LocationProblem } from "./url.ts";
 *
 * assert.equal(s3LocationProblem("s3://lake/raw/"), undefined);
 * assert.equal(s3LocationProblem("s3://"), 'invalid S3 location "s3://" (expected s3://bucket/prefix)');
 * assert.equal(
 *   s3LocationProblem("s3://ab/o/"),
 *   'invalid S3 location "s3://ab/o/": the bucket name "ab" must be 3–63 lowercase letters, digits, dots and ' +
 *     "hyphens, starting and ending with a letter or digit",
 * );
 * assert.match(s3LocationProblem("s3://lake/a//b")!, /empty, '\.' or '\.\.' segment/);
 * assert.equal(s3LocationProblem("data/x"), 'invalid S3 location "data/x" (expected s3://bucket/prefix)');
 * ```
 */
export function s3LocationProblem(url: string): string | undefined {
  const parts = s3Parts(url);
  return "problem" in parts ? parts.problem : undefined;
}

/** `url`'s bucket and prefix (no slash at either end), or what is wrong with it. */
function s3Parts(url: string): { bucket: string; prefix: string } | { problem: string } {
  const match = /^s3:\/\/([^/]*)\/?(.*)$/i.exec(url);
  if (!match || match[1] === "") {
    return { problem: `invalid S3 location ${JSON.stringify(url)} (expected s3://bucket/prefix)` };
  }
  if (!BUCKET_NAME.test(match[1])) {
    return {
      problem: `invalid S3 location ${JSON.stringify(url)}: the bucket name ${
        JSON.stringify(match[1])
      } must be ${BUCKET_NAME_RULE}`,
    };
  }
  const prefix = match[2].replace(/^\/+|\/+$/g, "");
  if (prefix && prefix.split("/").some((s) => s === "" || s === "." || s === "..")) {
    return {
      problem: `invalid S3 location ${JSON.stringify(url)}: empty, '.' or '..' segment in the prefix`,
    };
  }
  return { bucket: match[1], prefix };
}

/**
 * Splits `s3://bucket/prefix` into bucket and prefix (without leading or trailing `/`).
 *
 * @throws {Error} saying what is wrong ({@link s3LocationProblem}) for any other value.
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
  const parts = s3Parts(url);
  if ("problem" in parts) throw new Error(parts.problem);
  return parts;
}
